"""Strategies at work: one runner (queue and task) per strategy, bars handed over without a
gap, the broker's sessions, the jobs of each session and the scheduler that runs them.
Imports strategies, the domain and the execution layer's interfaces; never the node.
"""
