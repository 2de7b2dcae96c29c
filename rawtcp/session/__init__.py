"""The loop that drives one endpoint over the wire, and the keeper that holds it between commands.

The driver reads the clock and hands ``now`` to the core, which never reads one.
"""
