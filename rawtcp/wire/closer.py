"""Closing many packet sockets quickly: a pool of threads, so their RCU waits overlap.

Releasing a bound AF_PACKET socket waits for an RCU grace period (``synchronize_net`` in
``packet_release``, 10-30 ms). ``PacketLink.close(wait=False)`` hands that wait to one background
thread, which then closes about 50 sockets a second: fine for one connection, far too slow for
thousands of probes or handshakes a second. Concurrent waiters share grace periods, so N threads close
about N times as many. The link is closed through its public API after ``dup``-ing its descriptor: the
close returns at once (the duplicate keeps the socket alive) and a pool thread closes the duplicate,
which is where the kernel then waits.
"""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import threading
from typing import Any

THREADS = 32


class ClosePool:
    def __init__(self, threads: int = THREADS) -> None:
        self._queue: queue.SimpleQueue[int | threading.Barrier | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"rawtcp-close-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Barrier):
                with contextlib.suppress(threading.BrokenBarrierError):
                    item.wait()
                continue
            with contextlib.suppress(OSError):
                os.close(item)  # releases the GIL while the kernel waits

    def close_link(self, link: Any) -> None:
        """Close a PacketLink (or anything with fileno()/close()) without waiting here."""
        fd = os.dup(link.fileno())
        link.close()  # not the last reference: returns at once
        self._queue.put(fd)

    def close_fd(self, fd: int) -> None:
        """Close a descriptor this pool now owns, without waiting here."""
        self._queue.put(fd)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every close queued so far has completed: each thread must reach the barrier, so
        each has finished whatever it took from the queue before it."""
        barrier = threading.Barrier(len(self._threads) + 1, timeout=timeout)
        for _ in self._threads:
            self._queue.put(barrier)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return False
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        for _ in self._threads:
            self._queue.put(None)


def raise_fd_limit() -> None:
    """Sockets awaiting their close count against RLIMIT_NOFILE: allow as many as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
