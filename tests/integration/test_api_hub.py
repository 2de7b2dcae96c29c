"""rawtcp.api.hub: many connections from the calling thread, which stays in its own namespace while the
hub's sockets, routes and nftables entries live in the lab's client namespace."""

from __future__ import annotations

import os
import time

import pytest

from rawtcp import api
from rawtcp.wire import netns, nft, shared

pytestmark = pytest.mark.integration


def test_a_lab_hub_echoes_many_connections_from_outside_the_namespace():
    pid = os.getpid()
    home = netns.current_inode()
    with api.Lab.up(client_ns=f"rtt-apihub-{pid}-c", server_ns=f"rtt-apihub-{pid}-s") as lab:
        h = lab.hub(ports=(30000, 30999))
        try:
            flows = [h.connect(lab.server_ip, lab.port, profile="bare") for _ in range(50)]
            assert netns.current_inode() == home  # the thread never stayed in the lab's namespace
            assert h.wait(lambda: all(f.established for f in flows), 10.0)
            for i, f in enumerate(flows):
                f.send(b"request %d" % i)
            assert h.wait(lambda: all(f.readable >= len(b"request %d" % i) for i, f in enumerate(flows)), 10.0)
            assert [f.read() for f in flows] == [b"request %d" % i for i in range(50)]
            for f in flows:
                f.close()
            assert h.wait(lambda: all(f.finished for f in flows), 10.0)
        finally:
            h.close()
        with netns.inside(lab.client_ns):
            assert [e for e in nft.RstGuard().entries() if e[2] == pid] == []
        assert shared.open_links() == []
        end = time.monotonic() + 5.0  # the listener writes its line after its close: a file cannot be awaited
        while len(records := [r for r in lab.listener_log() if r["received"]]) < 50 and time.monotonic() < end:
            time.sleep(0.01)
        assert len(records) == 50 and all(r["sent"] == r["received"] for r in records)
