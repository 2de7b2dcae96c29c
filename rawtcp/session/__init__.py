"""The loop that drives one endpoint over the wire, and the keeper that holds it between commands.

This is the only layer that reads the clock.
"""
