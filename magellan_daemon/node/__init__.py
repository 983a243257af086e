"""The daemon as a process: its lifecycle (startup, teardown, fatal paths), its modes,
its health report, operator commands and supervised tasks. Imports every layer below; only
the CLI imports it.
"""
