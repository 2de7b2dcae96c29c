"""Packet crafting above the wire layer: single probes (``probe``) and bounded SYN floods (``flood``).
The benchmark is not part of the package: scripts/bench.py (its harness in scripts/benchmark/)."""
