"""What the tests against PyTCP share: when they can run, and the passive open both stacks make alike."""

from __future__ import annotations

import importlib.util
import os

import pytest

# The optional extra and the TAP device PyTCP sits on (a container started without /dev/net/tun cannot
# make one). The reason names the extra: the Docker lab's plugin counts such skips as optional.
NEEDS_PYTCP = pytest.mark.skipif(
    importlib.util.find_spec("pytcp") is None or not os.path.exists("/dev/net/tun"),
    reason="needs rawtcp[pytcp] and /dev/net/tun (PyTCP's TAP device)",
)

# A passive open both stacks make alike: a SYN offering MSS alone is answered with MSS alone by both.
PASSIVE_OPEN = """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1000>
+0  > S. 0:0(0) ack 1 <...>
+0.01  < . 1:1(0) ack 1 win 65535
+0  accept(3, ..., ...) = 4
"""
