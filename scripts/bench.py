#!/usr/bin/env python3
"""The benchmark: rawtcp beside kernel sockets, scapy, hping3 and tshark, in one run.

A thin wrapper around rawtcp.craft.bench (also ``rawtcp bench``):

    sudo python scripts/bench.py [--quick] [--json FILE] [--handshakes N]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rawtcp.craft.bench import main

if __name__ == "__main__":
    sys.exit(main())
