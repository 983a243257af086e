"""What the daemon, the simulator and the research tools share, and nothing else.

``clock`` is the one clock of a process (wall or virtual) that the daemon and the
simulator both run on; ``corporate_actions`` the split and dividend values with the price
adjustment they imply; ``timeframes`` the one table of bar timeframes and lengths;
``matching`` the price a bar gives a resting order (the simulator's exchange and the
signals replay fill by the same rule). Imports only the standard library: every other
package may import this one, so it sits below all of them and closes no cycle.
"""
