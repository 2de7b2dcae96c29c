"""The SACK sender's loss recovery as Linux runs it (core/recovery.py), between two cores over a wire with
latency (25 ms each way, so a 50 ms round trip): RACK's time-based loss detection and its reordering window
(RFC 8985 §6), PRR (RFC 6937), slow start counting bytes (RFC 3465, Linux's tcp_slow_start), and undo of a
congestion response shown needless by D-SACK (RFC 2883, RFC 3708) or by timestamps (Eifel, RFC 3522).

The sender "a" is a client with Linux's defaults (SACK, timestamps, Nagle, RTO minimum 200 ms); the
receiver "b" ACKs every segment at once (TCP_QUICKACK) unless a test says otherwise, so each out-of-order
segment costs one duplicate ACK with SACK blocks, as it would from Linux."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from rawtcp.core import Endpoint, EndpointConfig, Retransmission, Segment

from .helpers import CISN, CPORT, SISN, SPORT, Wire

MSS = 1448  # 1460 less TSopt
ONE_WAY = 0.025
RTT = 2 * ONE_WAY
START = 1.0  # a TSval of 0 reads as "no echo", so the clock starts later


class Path:
    """The wire's ``fate``: ONE_WAY each way; given transmissions of the sender's data are delayed more
    (reordered) or lost; ``ack_delay(t)`` may change the return path's delay for what leaves at ``t``,
    which stays first-in first-out (a queue does not reorder). ``rate`` (bytes/s) serializes the sender's
    data through a bottleneck so that segments sent together arrive spaced out."""

    def __init__(self, rate: float | None = None) -> None:
        self.wire: Wire | None = None
        self.sends: Counter[int] = Counter()
        self.fates: dict[tuple[int, int], float | None] = {}
        self.ack_delay: Callable[[float], float] = lambda t: ONE_WAY
        self.rate = rate
        self._link_free = 0.0
        self._last_ack_arrival = 0.0

    def delay(self, seq: int, extra: float, nth: int = 1) -> None:
        """The ``nth`` transmission of the segment at ``seq`` arrives ``extra`` seconds late."""
        self.fates[(seq, nth)] = extra

    def drop(self, seq: int, nth: int = 1) -> None:
        """The ``nth`` transmission of the segment at ``seq`` is lost."""
        self.fates[(seq, nth)] = None

    def __call__(self, src: str, seg) -> list[float]:
        assert self.wire is not None
        now = self.wire.t
        if src == "b":
            arrival = max(now + self.ack_delay(now), self._last_ack_arrival)
            self._last_ack_arrival = arrival
            return [arrival - now]
        delay = ONE_WAY
        if self.rate is not None:
            self._link_free = max(self._link_free, now) + (len(seg.payload) + 52) / self.rate
            delay += self._link_free - now
        if seg.payload:
            self.sends[seg.seq] += 1
            fate = self.fates.get((seg.seq, self.sends[seg.seq]), 0.0)
            if fate is None:
                return []
            delay += fate
        return [delay]


def connect(path: Path | None = None, timestamps: bool = True, delayed_ack: bool = False,
            warm_up: int = 20) -> tuple[Wire, Path]:
    """An established linux-like pair, with ``warm_up`` segments sent and ACKed first so that the sender
    has RTT samples (SRTT, RACK's min RTT) and a window past the initial one."""
    path = path or Path()
    a = Endpoint(EndpointConfig.linux_like(CPORT, remote_port=SPORT, isn=CISN, timestamps=timestamps))
    b = Endpoint(EndpointConfig.linux_like(SPORT, isn=SISN, timestamps=timestamps, delayed_ack=delayed_ack))
    wire = Wire(a, b, path, t=START)
    path.wire = wire
    b.open_passive(wire.t)
    a.open_active(wire.t)
    wire.advance(wire.t + 0.5)
    if warm_up:
        send(wire, warm_up)
        wire.advance(wire.t + 1.0)
        assert wire.a.snd_una == wire.a.snd_nxt
    drain(wire.a)
    return wire, path


def send(wire: Wire, segments: int, tail: int = 0) -> list[int]:
    """Write ``segments`` full segments (and ``tail`` bytes more); returns their sequence numbers."""
    first = wire.a.snd_nxt + wire.a.unsent  # the next byte written
    taken = wire.a.send(bytes(segments * MSS + tail), wire.t)
    assert taken == segments * MSS + tail
    return [(first + i * MSS) % (1 << 32) for i in range(segments)]


def step(wire: Wire, until: float, watch: Callable[[Wire], None] | None = None) -> None:
    """Advance event by event up to ``until``, calling ``watch`` after each."""
    while True:
        due = wire.next_event()
        if due is None or due > until:
            wire.advance(until)
            return
        wire.advance(due)
        if watch is not None:
            watch(wire)


def drain(ep: Endpoint) -> list[Retransmission]:
    out = []
    while (event := ep.next_event()) is not None:
        if isinstance(event, Retransmission):
            out.append(event)
    return out


def in_recovery(ep: Endpoint) -> bool:
    """``Endpoint.in_recovery`` (the parent commit had only ``cc.in_recovery``)."""
    value = getattr(type(ep), "in_recovery", None)
    return ep.in_recovery if value is not None else ep.cc.in_recovery


def assert_all_delivered(wire: Wire, until: float) -> None:
    wire.advance(until)
    assert wire.a.snd_una == wire.a.snd_nxt and wire.a.unsent == 0


# ---------------------------------------------------------------- 1. reordering is not loss
def test_reordering_alone_is_not_loss_once_reordering_was_seen():
    # RFC 8985 §6.2: a segment is lost only once it has been out RACK.rtt + reo_wnd longer than one
    # sent after it that was delivered; once reordering was seen (step 3: a segment never resent was
    # delivered below the highest one delivered), reo_wnd is min_RTT/4 even with three or more segments
    # SACKed above the hole, so a segment 10 ms behind the three sent after it is simply waited for.
    # Linux (tcp_rack_detect_loss, tcp_rack_reo_wnd) neither retransmits nor reduces cwnd here; RFC 6675's
    # DupThresh fast-retransmits on the third SACK and halves the window every time.
    wire, path = connect()
    first, _ = send(wire, 2)
    path.delay(first, 0.010)  # the first overtaken by one segment: reordering seen, nothing SACKed thrice
    wire.advance(wire.t + 1.0)
    drain(wire.a)
    cwnd, ssthresh = wire.a.cwnd, wire.a.ssthresh
    lowest = [cwnd]
    for _ in range(4):
        seqs = send(wire, 4)
        path.delay(seqs[0], 0.010)  # arrives after the three sent behind it
        step(wire, wire.t + 1.0, lambda w: lowest.append(w.a.cwnd))
        assert wire.a.snd_una == wire.a.snd_nxt
    assert min(lowest) >= cwnd, (min(lowest) / MSS, cwnd / MSS)
    assert drain(wire.a) == [] and wire.a.retransmits == 0
    assert wire.a.ssthresh >= ssthresh and wire.a.cwnd >= cwnd
    assert not in_recovery(wire.a)


def test_a_dsack_for_a_needless_retransmission_makes_the_same_reordering_cost_nothing():
    # With no reordering seen yet, three SACKed segments above a hole make RACK's reordering window zero
    # (RFC 8985 §6.2 step 4, Linux's tp->reordering = 3): the first time a segment is 10 ms behind the
    # three after it, it is retransmitted, as Linux does. The retransmission's D-SACK (RFC 2883) shows
    # that was needless: reordering is seen and the window grows (step 4, RFC 8985 §6.2), so the same
    # reordering afterwards costs no retransmission at all (Linux: TCPSACKReorder, then quiet).
    wire, path = connect()
    seqs = send(wire, 4)
    path.delay(seqs[0], 0.010)
    wire.advance(wire.t + 1.0)
    first = drain(wire.a)
    assert [(r.reason, r.segment.seq) for r in first] == [("sack", seqs[0])]
    cwnd = wire.a.cwnd
    for _ in range(4):
        seqs = send(wire, 4)
        path.delay(seqs[0], 0.010)
        wire.advance(wire.t + 1.0)
        assert wire.a.snd_una == wire.a.snd_nxt
    assert drain(wire.a) == [] and wire.a.retransmits == 1
    assert wire.a.cwnd >= cwnd and not in_recovery(wire.a)


# ---------------------------------------------------------------- 2. undo of a spurious fast retransmit
def _spurious_fast_retransmit(timestamps: bool) -> None:
    wire, path = connect(timestamps=timestamps)
    seqs = send(wire, 4)
    path.delay(seqs[0], 0.010)
    t0 = wire.t
    before: list[tuple[int, int]] = []
    step(wire, t0 + RTT - 0.001)  # the flight is out; no ACK of it is back yet
    before.append((wire.a.cwnd, wire.a.ssthresh))
    step(wire, t0 + RTT + 0.001)  # the three SACKs: a fast retransmit, and recovery
    resent = drain(wire.a)
    assert [(r.reason, r.segment.seq) for r in resent] == [("sack", seqs[0])]
    rtx = resent[0]
    assert in_recovery(wire.a) and wire.a.ssthresh < before[0][1]
    # The original arrives 10 ms late and is ACKed; the retransmission arrives a duplicate and the
    # receiver reports it with a D-SACK, which is back one round trip after the retransmission.
    wire.advance(rtx.time + RTT + 0.001)
    cwnd, ssthresh = before[0]
    assert wire.a.cwnd >= cwnd and wire.a.ssthresh >= ssthresh
    assert not in_recovery(wire.a)
    assert_all_delivered(wire, wire.t + 1.0)


def test_spurious_fast_retransmit_is_undone():
    # RFC 3708 §3 / RFC 3522 §2 (Linux's tcp_try_undo_recovery, tcp_try_undo_dsack): reordering made the
    # sender retransmit, but the original arrived, its ACK echoing a TSval older than the retransmission
    # and the retransmission coming back as a D-SACK. Every retransmission of the episode was needless,
    # so Linux undoes the reduction: cwnd and ssthresh return to their values before it, recovery ends.
    _spurious_fast_retransmit(timestamps=True)


def test_spurious_fast_retransmit_is_undone_by_dsack_alone():
    # Without timestamps only the D-SACK tells (RFC 3708 §3). It arrives a round trip after the
    # retransmission, by when the original's ACK has ended recovery: Linux keeps undo_marker after
    # recovery (tcp_end_cwnd_reduction leaves it) and undoes on the late D-SACK in the Open state
    # (tcp_fastretrans_alert -> tcp_try_undo_dsack, counted as TCPDSACKUndo).
    _spurious_fast_retransmit(timestamps=False)


# ---------------------------------------------------------------- 3. undo of a spurious timeout (Eifel)
def test_spurious_rto_is_undone_by_timestamps():
    # The return path's delay jumps from 25 ms to 500 ms: every ACK of a flight is held past the RTO, which
    # fires and retransmits the head (cwnd 1 MSS, ssthresh halved, RFC 5681 §3.1). The ACKs then arrive
    # echoing the original's TSval, older than the retransmission's: RFC 3522 §2 (Eifel detection) shows
    # the timeout spurious, and RFC 4015 §3 / Linux's tcp_try_undo_loss restore cwnd and ssthresh instead
    # of slow-starting from one segment.
    wire, path = connect()
    t0 = wire.t
    path.ack_delay = lambda t: 0.5 if t0 <= t < t0 + 0.5 else ONE_WAY
    send(wire, 40)  # more than the window, so a loss probe sends new data, not a retransmission
    before: list[tuple[int, int]] = []

    def watch(w: Wire) -> None:
        if w.a.retransmits == 0:
            before[:] = [(w.a.cwnd, w.a.ssthresh)]

    step(wire, t0 + 0.5, watch)
    rtx = drain(wire.a)
    assert rtx and rtx[0].reason == "rto", [(r.reason, r.time - t0) for r in rtx]
    assert wire.a.cwnd <= MSS  # the timeout's response is in place
    cwnd, ssthresh = before[0]
    wire.advance(t0 + 0.5 + ONE_WAY + 0.001)  # the first ACKs of the flight are back
    assert wire.a.cwnd >= cwnd, (wire.a.cwnd / MSS, cwnd / MSS)
    assert wire.a.ssthresh >= ssthresh
    assert not in_recovery(wire.a)
    assert_all_delivered(wire, wire.t + 5.0)


# ---------------------------------------------------------------- 4. slow start counts bytes
def test_slow_start_grows_by_every_byte_acked_with_delayed_acks():
    # RFC 5681 §4.2: the receiver ACKs every second full segment. Linux's tcp_slow_start adds every
    # segment an ACK newly covers (RFC 3465's byte counting, L = 2 SMSS), so below ssthresh cwnd grows by
    # two MSS per such ACK and doubles each round trip; counting one MSS per ACK would grow it by half as
    # much. From ssthresh on (here after a loss) it is congestion avoidance: under one MSS per ACK.
    wire, path = connect(Path(rate=1.25e6), delayed_ack=True, warm_up=0)  # a 10 Mbit/s bottleneck
    growth: list[tuple[int, int, int, int]] = []
    core = wire.a

    class Watched:
        """The sender as the wire sees it: each arrival notes what it did to cwnd. (A wrapper, not a patched
        method: the compiled core's methods cannot be replaced.)"""

        def __getattr__(self, name: str) -> object:
            return getattr(core, name)

        def receive(self, seg: Segment, now: float) -> None:
            una, cwnd, ssthresh = core.snd_una, core.cwnd, core.ssthresh
            core.receive(seg, now)
            if not in_recovery(core):
                growth.append(((core.snd_una - una) % (1 << 32), core.cwnd - cwnd, cwnd, ssthresh))

    wire.a = Watched()  # type: ignore[assignment]
    cwnd0 = wire.a.cwnd
    seqs = send(wire, 800)
    path.drop(seqs[120])
    wire.advance(wire.t + 0.3)
    slow = [(grown, cwnd) for acked, grown, cwnd, ssthresh in growth if acked == 2 * MSS and cwnd < ssthresh]
    assert len(slow) >= 20, growth
    assert all(grown == 2 * MSS for grown, _ in slow), [(g / MSS, c / MSS) for g, c in slow]
    assert wire.a.cwnd > cwnd0 + 2 * MSS * (len(slow) // 2)
    wire.advance(wire.t + 2.0)
    avoid = [(grown, cwnd) for acked, grown, cwnd, ssthresh in growth if acked == 2 * MSS and cwnd >= ssthresh]
    assert len(avoid) >= 20 and all(0 < grown < MSS for grown, _ in avoid), [(g, c / MSS) for g, c in avoid]
    assert wire.a.snd_una == wire.a.snd_nxt and wire.a.unsent == 0


# ---------------------------------------------------------------- 5. the RACK reordering timer
def test_hole_with_one_segment_sacked_above_is_resent_by_the_reordering_timer():
    # A window-limited flight loses its next-to-last segment, so only the last one is SACKed: too few for
    # three duplicates (RFC 6675), and with more data queued behind the window RFC 5827's early retransmit
    # does not apply either. RFC 8985 §6.3: RACK arms its reordering timer for RACK.rtt + reo_wnd
    # (min_RTT/4: nothing reordered yet and fewer than three SACKed) after the hole was sent; when it
    # fires the hole is lost and goes out at once, a quarter RTT after the SACK, not when the data sent
    # on that ACK is SACKed a round trip later, nor at a loss probe or the RTO. Linux does the same
    # (ICSK_TIME_REO_TIMEOUT, tcp_rack_reo_timeout).
    wire, path = connect()
    t0 = wire.t
    flight = wire.a.cwnd // MSS
    seqs = send(wire, flight + 20)
    path.drop(seqs[flight - 2])
    wire.next_event()  # the window's worth goes out
    assert wire.a.snd_nxt == seqs[flight - 1] + MSS and wire.a.unsent > 0
    rto = wire.a.rto
    step(wire, t0 + rto - 0.001)
    rtx = [r for r in drain(wire.a) if r.segment.seq == seqs[flight - 2]]
    assert rtx, "the hole was not retransmitted before the RTO"
    sacked_at = t0 + RTT
    assert rtx[0].reason == "sack"
    assert sacked_at < rtx[0].time <= sacked_at + RTT / 2, rtx[0].time - sacked_at
    assert_all_delivered(wire, wire.t + 2.0)


# ---------------------------------------------------------------- 6. a lost retransmission
def test_lost_retransmission_is_resent_without_waiting_for_the_rto():
    # RFC 8985 §6.2 (and §2's motivation): RACK looks at send times, so a retransmission is lost like any
    # segment once something sent after it is delivered and RACK.rtt + reo_wnd have passed. The hole's
    # first retransmission is lost too; the new data PRR sent along with it (RFC 6937) is SACKed a round
    # trip later, and the hole goes out a third time then. Linux (tcp_rack_detect_loss on a
    # TCPCB_SACKED_RETRANS skb, TCPLostRetransmit) does not wait for the RTO; RFC 6675 can't tell.
    wire, path = connect()
    t0 = wire.t
    seqs = send(wire, 60)
    path.drop(seqs[5], nth=1)
    path.drop(seqs[5], nth=2)
    step(wire, t0 + 1.0)
    resends = [r for r in drain(wire.a) if r.segment.seq == seqs[5]]
    assert len(resends) >= 2, [(r.reason, r.time - t0) for r in resends]
    first, second = resends[:2]
    assert first.reason == "sack" and second.reason == "sack", [(r.reason, r.time - t0) for r in resends]
    assert second.time - first.time < wire.a.config.rto_min, second.time - first.time
    assert second.time - first.time <= RTT + 0.005
    assert_all_delivered(wire, wire.t + 2.0)


# ---------------------------------------------------------------- 7. the window grows only when it is used
def test_an_application_limited_sender_does_not_grow_its_window():
    # RFC 7661 §4 and Linux's tcp_is_cwnd_limited: ACKs grow cwnd only while the window limits what is
    # sent (in slow start: while cwnd is under twice the most that was out). An application writing two
    # segments per round trip leaves the initial window alone; it does not bank a burst for later.
    wire, _ = connect(warm_up=0)
    initial = wire.a.cwnd
    for _ in range(20):
        send(wire, 2)
        wire.advance(wire.t + 3 * RTT)
        assert wire.a.snd_una == wire.a.snd_nxt
    assert wire.a.cwnd == initial
    # A writer that fills the window grows it again, by every byte ACKed in slow start.
    send(wire, 40)
    wire.advance(wire.t + 4 * RTT)
    assert wire.a.cwnd > 2 * initial
