"""The peer stack's own socket state beside our segments (the kernel's, or a user-space stack's).

State changes arrive asynchronously (a tracing thread, or the stack's agent), so records are held a
few milliseconds before they are annotated and released: long enough for the stack's reaction to a
segment we just sent to be read, short enough to feel live. Every record that carries the stack's
state names the stack (``stack``); its state changes say whose they are in ``who`` (``kernel`` for
Linux, else the stack's name: rawtcp.lab.stack.state_label).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
HOLD = 0.004  # seconds a record waits for the kernel's state events to be read
AFTER_SEND = 0.002  # the kernel has handled a segment we sent within this (veth delivers synchronously)


class KernelView:
    """Merges our records with the kernel socket's state events, in time order."""

    def __init__(self, watcher: Any, kernel_local: tuple[str, int] | None,
                 kernel_remote: tuple[str, int] | None, t0: float) -> None:
        from rawtcp.lab.stack import reaction_time, state_label

        self.watcher = watcher  # rawtcp.lab.kstate.KernelStateWatcher (or the agent's) or None
        self.stack: str = getattr(watcher, "stack", "linux")
        self.who = state_label(self.stack)
        # a user-space stack handles a segment in milliseconds, not microseconds: wait for its reaction
        extra = max(0.0, reaction_time(self.stack) - reaction_time("linux"))
        self.after_send = AFTER_SEND + extra
        self.hold = HOLD + extra
        self.local = kernel_local
        self.remote = kernel_remote
        self.t0 = t0
        self._pending: list[tuple[float, Record]] = []
        self._emitted_events = 0

    def set_peer(self, local: tuple[str, int], remote: tuple[str, int]) -> None:
        self.local, self.remote = local, remote

    def _events(self) -> list[Any]:
        if self.watcher is None or self.remote is None or self.local is None:
            return []
        return list(self.watcher.events_for(self.local, self.remote))

    def state_at(self, mono: float, events: list[Any] | None = None) -> str | None:
        """The kernel socket's state at ``mono`` (None before it existed)."""
        state = None
        for event in self._events() if events is None else events:
            if event.time <= mono:
                state = event.new
            else:
                break
        return state

    def current(self) -> str | None:
        if self.watcher is None or self.remote is None or self.local is None:
            return None
        return self.watcher.current(self.local, self.remote)

    def add(self, rec: Record, now: float) -> None:
        self._pending.append((now + (self.hold if self.watcher is not None else 0.0), rec))

    def next_due(self) -> float | None:
        return self._pending[0][0] if self._pending else None

    def release(self, now: float, emit: Callable[[Record], None], force: bool = False) -> None:
        """Annotate and emit, in time order, every record whose hold has passed (all with ``force``).

        A segment the kernel sent is shown with the state the kernel was in when it arrived; a segment
        we sent, with the state the kernel reached by handling it: its state just before our next
        record, or AFTER_SEND later if nothing followed (veth delivers synchronously, so the kernel's
        reaction precedes anything else we do).
        """
        self._pending.sort(key=lambda item: item[1]["t"])
        ready = [item for item in self._pending if force or item[0] <= now]
        if not ready:
            return
        if self.watcher is not None:
            # Everything the kernel did up to now must have been read before we annotate.
            self._catch_up(self.t0 + ready[-1][1]["t"] + self.after_send if force else 0.0)
        events = self._events()
        times = [self.t0 + rec["t"] for _, rec in self._pending]
        self._pending = self._pending[len(ready):] if not force else []
        horizon = 0.0
        for i, (_, rec) in enumerate(ready):
            mono = times[i]
            at = mono
            if rec.get("type") == "segment" and rec["dir"] == "out":
                following = [t for t in times[i + 1:] if t > mono]
                at = min([mono + self.after_send, *following[:1]])
            # Kernel transitions that happened before this record come out first, in order.
            self._emit_events_until(events, mono, emit)
            if self.watcher is not None and rec["type"] == "segment":
                rec["kernel_state"] = self.state_at(at, events)
                rec["stack"] = self.stack
            emit(rec)
            horizon = max(horizon, at)
        self._emit_events_until(events, horizon, emit)

    def _catch_up(self, until: float) -> None:
        """Before releasing everything: let the kernel's reaction to our last segment happen (at most
        AFTER_SEND) and be read by the tracing thread."""
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sync = getattr(self.watcher, "sync", None)
        if sync is not None:
            sync(0.1)

    def _emit_events_until(self, events: list[Any], until: float, emit: Callable[[Record], None]) -> None:
        while self._emitted_events < len(events) and events[self._emitted_events].time <= until:
            emit(self._kernel_record(events[self._emitted_events]))
            self._emitted_events += 1

    def flush_kernel(self, emit: Callable[[Record], None]) -> None:
        events = self._events()
        while self._emitted_events < len(events):
            emit(self._kernel_record(events[self._emitted_events]))
            self._emitted_events += 1

    def _kernel_record(self, event: Any) -> Record:
        return {"type": "state", "who": self.who, "stack": self.stack, "t": round(event.time - self.t0, 6),
                "old": event.old, "new": event.new}
