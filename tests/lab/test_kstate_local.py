"""sock_diag in this namespace (no root needed): the one-shot dump and the polling watcher."""

from __future__ import annotations

import socket

from rawtcp.lab.kstate import KernelStateWatcher, sock_diag_dump


def test_dump_sees_a_listener_and_both_ends_of_a_connection():
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as c:
            s, _ = lsock.accept()
            with s:
                here = c.getsockname()
                found = {(d.state, d.local, d.remote) for d in sock_diag_dump()}
    assert ("LISTEN", ("127.0.0.1", port), ("0.0.0.0", 0)) in found
    assert ("ESTABLISHED", here, ("127.0.0.1", port)) in found
    assert ("ESTABLISHED", ("127.0.0.1", port), here) in found


def test_polling_watcher_records_a_half_close():
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        port = lsock.getsockname()[1]
        with KernelStateWatcher(source="sock_diag").start({port}) as watcher:
            assert watcher.source == "sock_diag"
            c = socket.create_connection(("127.0.0.1", port))
            s, peer = lsock.accept()
            local = ("127.0.0.1", port)
            assert watcher.wait_for(local, peer, "ESTABLISHED", timeout=5)
            c.shutdown(socket.SHUT_WR)
            assert watcher.wait_for(local, peer, "CLOSE-WAIT", timeout=5)
            assert watcher.current(local, peer) == "CLOSE-WAIT"
            s.close()
            c.close()
            assert watcher.wait_for(local, peer, "CLOSED", timeout=5)
            assert watcher.sync()
    assert [e.new for e in watcher.events_for(local, peer)][-2:] == ["CLOSE-WAIT", "CLOSED"]
