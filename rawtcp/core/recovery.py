"""SACK-based loss recovery as Linux runs it by default: a retransmission queue with one record per
segment sent, RACK time-based loss detection (RFC 8985 §6), Proportional Rate Reduction in recovery
(RFC 6937), Reno's window (RFC 5681; slow start counts every delivered byte, as Linux's), and undo of a congestion
response that D-SACK (RFC 2883, RFC 3708) or timestamps (Eifel, RFC 3522 / RFC 4015) show was spurious.

Why not RFC 6675's DupThresh scoreboard: on a path that reorders (jitter alone does), three SACKed
segments above a hole prove nothing, and every false fast retransmit halves the window. RACK asks
instead whether a segment sent *before* one that arrived has been out longer than a round trip plus
a reordering allowance, which grows when D-SACKs show retransmissions were needless; and what D-SACK
or an old timestamp echo shows needless is undone.

Positions are the endpoint's unbounded integers; lengths, windows and pipe are in bytes. Sans-IO: the
caller passes ``now`` and every input.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass, field

# RFC 8985 §6.2: the reordering window starts at a quarter of the minimum RTT and grows by that step
# per round trip with a D-SACK; Linux caps the multiplier at 255 and resets it after 16 recoveries
# without one (tcp_rack_update_reo_wnd).
REO_WND_MULT_MAX = 255
REO_WND_PERSIST = 16
# RFC 8985 §6.2 step 4 / RFC 5681: with no reordering seen, this many SACKed segments make the
# reordering window zero (Linux's default tp->reordering).
DUPTHRESH = 3


def _tsval(t: float) -> int:
    """Our TSval for a send at time ``t`` (the endpoint's 1 ms timestamp clock)."""
    return int(t * 1000) % (1 << 32)


class CaState(enum.Enum):
    """Linux's congestion-avoidance states that matter here (tcp_ca_state)."""

    OPEN = "open"            # no loss being repaired: the window grows
    RECOVERY = "recovery"    # fast recovery after RACK marked a loss (RFC 6675 / RFC 6937)
    LOSS = "loss"            # after a retransmission timeout, until everything sent before it is ACKed

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Sent:
    """One segment on the retransmission queue, as it was sent (positions; FIN takes one)."""

    start: int
    end: int
    xmit: float                 # when it was last (re)transmitted
    sacked: bool = False        # the peer SACKed it
    lost: bool = False          # RACK or the RTO marked it lost; not resent since
    in_flight_rtx: bool = False  # a retransmission of it is in the network (Linux's SACKED_RETRANS)
    resent: bool = False        # retransmitted at least once (its ACK is ambiguous, RFC 8985 §6.2)

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, start: int, end: int, xmit: float, sacked: bool = False, lost: bool = False,
                 in_flight_rtx: bool = False, resent: bool = False) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.sacked = sacked
        self.lost = lost
        self.in_flight_rtx = in_flight_rtx
        self.resent = resent

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def pipe(self) -> int:
        """What it adds to the bytes in the network (RFC 6675 §4 SetPipe, Linux's packets_in_flight)."""
        if self.sacked:
            return 0
        return (0 if self.lost else self.size) + (self.size if self.in_flight_rtx else 0)


@dataclass(slots=True)
class AckSummary:
    """What one ACK did, for the caller's timers and RTT bookkeeping."""

    delivered: int = 0          # bytes newly ACKed or SACKed
    dsack: tuple[int, int] | None = None  # a D-SACK range the ACK reported
    undone: bool = False        # a spurious congestion response was undone

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, delivered: int = 0, dsack: tuple[int, int] | None = None, undone: bool = False) -> None:
        self.delivered = delivered
        self.dsack = dsack
        self.undone = undone


@dataclass(slots=True)
class SackRecovery:
    """The SACK sender's queue, RACK, PRR and undo state for one connection."""

    mss: int
    cwnd: int
    ssthresh: int = 1 << 30
    state: CaState = CaState.OPEN
    recover: int = 0            # RecoveryPoint (RFC 6675) / Linux's high_seq: SND.NXT at the loss
    queue: list[Sent] = field(default_factory=list)  # in position order, all above SND.UNA
    # RACK (RFC 8985 §6.1)
    rack_xmit: float = -math.inf  # RACK.xmit_ts: send time of the most recently sent delivered segment
    rack_end: int = 0           # RACK.end_seq
    rack_rtt: float = 0.0       # RACK.rtt
    min_rtt: float = math.inf   # RACK.min_RTT
    fack: int = 0               # RACK.fack: the highest end delivered so far
    reordering_seen: bool = False
    reo_wnd_mult: int = 1
    reo_wnd_persist: int = REO_WND_PERSIST
    dsack_round: int = -1       # the position a D-SACK last grew reo_wnd_mult at (once per round trip)
    reo_deadline: float | None = None  # when RACK's reordering timer should look again
    # PRR (RFC 6937 §3)
    prior_cwnd: int = 0
    prr_delivered: int = 0
    prr_out: int = 0
    # undo (RFC 3522, RFC 3708; Linux's undo_marker/undo_retrans/retrans_stamp)
    undo_marker: int | None = None  # SND.UNA when the response began; None: nothing to undo
    undo_cwnd: int = 0
    undo_ssthresh: int = 0
    undo_retrans: list[tuple[int, int]] = field(default_factory=list)  # resends not yet shown needless
    undo_resends: int = 0       # retransmissions since the response began
    retrans_stamp: int | None = None  # our TSval of the episode's first retransmission
    sacked_bytes: int = 0
    # RFC 7661 / Linux's tcp_cwnd_validate: whether cwnd limited what was sent in the current window,
    # and the most that was out in it; the window grows only when it is used.
    cwnd_limited: bool = False
    max_out: int = 0
    usage_end: int = 0          # SND.NXT when this window's tracking began

    # ------------------------------------------------------------------ the queue
    def on_send(self, start: int, end: int, now: float) -> None:
        """A new segment [start, end) left."""
        if end > start:
            self.queue.append(Sent(start, end, now))

    def on_resend(self, rec: Sent, now: float, tsval: int) -> None:
        """``rec`` was retransmitted (by recovery, the RTO or a loss probe)."""
        rec.xmit = now
        rec.lost = False
        rec.in_flight_rtx = True
        rec.resent = True
        if self.retrans_stamp is None:
            self.retrans_stamp = tsval
        if self.undo_marker is not None:
            self.undo_retrans.append((rec.start, rec.end))
            self.undo_resends += 1
        if self.state is CaState.RECOVERY:
            self.prr_out += rec.size

    def on_new_data_out(self, nbytes: int) -> None:
        if self.state is CaState.RECOVERY:
            self.prr_out += nbytes

    def note_usage(self, una: int, snd_nxt: int, pipe: int) -> None:
        """After a sending pass (Linux's tcp_cwnd_validate): remember, per window of data, whether cwnd
        was the limit (nothing more fits beside what is in the network) and the most that was out."""
        limited = pipe + self.mss > self.cwnd
        out = snd_nxt - una
        if una >= self.usage_end or limited or (not self.cwnd_limited and out > self.max_out):
            self.cwnd_limited = limited
            self.max_out = out
            self.usage_end = snd_nxt

    @property
    def pipe(self) -> int:
        return sum(r.pipe for r in self.queue)

    @property
    def sacked_segments(self) -> int:
        return sum(1 for r in self.queue if r.sacked)

    def next_lost(self) -> Sent | None:
        """The first segment marked lost and not resent since (Linux's tcp_xmit_retransmit_queue order)."""
        for rec in self.queue:
            if rec.lost and not rec.sacked:
                return rec
        return None

    def last_unsacked(self) -> Sent | None:
        for rec in reversed(self.queue):
            if not rec.sacked:
                return rec
        return None

    # ------------------------------------------------------------------ an arriving ACK
    def on_ack(self, una: int, blocks: list[tuple[int, int]], echo: int | None, now: float, srtt: float | None,
               snd_nxt: int) -> AckSummary:
        """SND.UNA is now ``una`` (it may not have moved); ``blocks`` are the ACK's SACK blocks as
        positions, first block first; ``echo`` its TSecr (None without timestamps). Marks what is
        delivered and lost and moves the window; the caller then sends what ``pipe``/``cwnd`` allow."""
        out = AckSummary()
        prior_una = self.queue[0].start if self.queue else una
        out.dsack = self._dsack(blocks, una, prior_una)
        if out.dsack is not None:
            self._on_dsack(out.dsack, snd_nxt)
        delivered: list[Sent] = []
        # cumulative ACK: every record wholly below una leaves the queue
        cut = 0
        while cut < len(self.queue) and self.queue[cut].end <= una:
            rec = self.queue[cut]
            if not rec.sacked:
                delivered.append(rec)
            else:
                self.sacked_bytes -= rec.size
            cut += 1
        del self.queue[:cut]
        if self.queue and self.queue[0].start < una:  # a partly ACKed segment: keep the rest
            head = self.queue[0]
            out.delivered += una - head.start
            head.start = una
        # SACK blocks (a D-SACK block is below SND.UNA or inside the next one, and was handled above)
        for start, end in blocks:
            if end <= una or (out.dsack is not None and (start, end) == out.dsack):
                continue
            i = max(0, bisect.bisect_right(self.queue, start, key=lambda r: r.start) - 1)
            while i < len(self.queue) and self.queue[i].start < end:
                rec = self.queue[i]
                if not rec.sacked and rec.start >= start and rec.end <= end:
                    rec.sacked = True
                    rec.lost = False
                    rec.in_flight_rtx = False
                    self.sacked_bytes += rec.size
                    delivered.append(rec)
                i += 1
        out.delivered += sum(r.size for r in delivered)
        for rec in sorted(delivered, key=lambda r: r.xmit):
            self._rack_update(rec, echo, now)
        if self.reordering_seen is False:
            for rec in delivered:
                if not rec.resent and rec.end < self.fack:
                    # RFC 8985 §6.2 step 3: delivered below what was already delivered, never resent
                    self.reordering_seen = True
        for rec in delivered:
            self.fack = max(self.fack, rec.end)

        # the congestion state (Linux's tcp_fastretrans_alert)
        if self.state is CaState.LOSS:
            if una > prior_una and self._may_undo(echo):
                self._undo(now, unmark=True)  # Eifel (RFC 3522) or D-SACK: the timeout was spurious
                out.undone = True
            elif una >= self.recover:
                self.state = CaState.OPEN
        elif self.state is CaState.RECOVERY:
            if una >= self.recover:
                if self._may_undo(echo):
                    self._undo(now, unmark=True)
                    out.undone = True
                else:
                    # RFC 6937 §3: cwnd = ssthresh on exit. The undo state stays: a D-SACK still on its
                    # way may show the episode needless (Linux's tcp_try_undo_dsack in Open).
                    self.cwnd = max(self.ssthresh, self.mss)
                    self.state = CaState.OPEN
            elif self._all_resends_needless():
                self._undo(now, unmark=False)  # every resend D-SACKed: nothing was lost
                out.undone = True
            elif una > prior_una and self._packet_delayed(echo) and not any(r.in_flight_rtx for r in self.queue):
                self._undo(now, unmark=True)  # the hole was filled by the original: reordering (Eifel)
                out.undone = True
        elif self._all_resends_needless():
            self._undo(now, unmark=False)  # a late D-SACK for the last episode's only resends
            out.undone = True
        newly_lost = self.detect_loss(now, srtt)
        if self.state is CaState.OPEN and any(r.lost for r in self.queue):
            self._enter_recovery(snd_nxt, una)
        if self.state is CaState.RECOVERY:
            self._prr(out.delivered, una_advanced=una > prior_una and not newly_lost)
        elif out.delivered and not out.undone:
            self._grow(out.delivered)
        if self.state is CaState.OPEN and not any(r.in_flight_rtx for r in self.queue):
            self.retrans_stamp = None
        return out

    def _dsack(self, blocks: list[tuple[int, int]], una: int, prior_una: int) -> tuple[int, int] | None:
        """RFC 2883 §4: the first block is a D-SACK if it lies below the cumulative ACK or inside the
        second block."""
        if not blocks:
            return None
        start, end = blocks[0]
        if end <= una or (len(blocks) > 1 and blocks[1][0] <= start and end <= blocks[1][1]):
            return (start, end)
        return None

    def _on_dsack(self, dsack: tuple[int, int], snd_nxt: int) -> None:
        start, end = dsack
        # RFC 3708 §3: a D-SACK for a retransmission of this episode shows that resend was needless.
        for i, (rs, re) in enumerate(self.undo_retrans):
            if rs < end and start < re:
                del self.undo_retrans[i]
                break
        # RFC 8985 §6.2 step 4: grow the reordering window, at most once per round trip.
        if self.dsack_round < 0 or self.fack >= self.dsack_round:
            self.reo_wnd_mult = min(self.reo_wnd_mult + 1, REO_WND_MULT_MAX)
            self.reo_wnd_persist = REO_WND_PERSIST
            self.dsack_round = snd_nxt
        self.reordering_seen = True

    def _rack_update(self, rec: Sent, echo: int | None, now: float) -> None:
        """RFC 8985 §6.2 step 2: the RTT and send time of the most recently sent delivered segment; an
        ACK of a resent segment counts only when it must be for the resend."""
        rtt = now - rec.xmit
        if rec.resent:
            # Which copy arrived? With timestamps the echo says (it predates the resend: the original);
            # without, a reply faster than any round trip cannot be for the resend (Linux's rule).
            if echo is not None and echo != 0:
                if ((echo - _tsval(rec.xmit)) % (1 << 32)) >= (1 << 31):
                    return
            elif rtt < self.min_rtt:
                return
        self.min_rtt = min(self.min_rtt, rtt)
        self.rack_rtt = rtt
        if rec.xmit > self.rack_xmit or (rec.xmit == self.rack_xmit and rec.end > self.rack_end):
            self.rack_xmit, self.rack_end = rec.xmit, rec.end

    def reo_wnd(self, srtt: float | None) -> float:
        """RFC 8985 §6.2 step 4 (as Linux's tcp_rack_reo_wnd)."""
        if not self.reordering_seen and (self.state is not CaState.OPEN or self.sacked_segments >= DUPTHRESH):
            return 0.0
        if math.isinf(self.min_rtt):
            return 0.0
        wnd = self.reo_wnd_mult * self.min_rtt / 4
        return min(wnd, srtt) if srtt is not None else wnd

    def detect_loss(self, now: float, srtt: float | None) -> bool:
        """RFC 8985 §6.2 step 5: a segment sent before the most recently delivered one is lost once it
        has been out RACK.rtt + reo_wnd. Sets ``reo_deadline`` for the ones not yet due; returns
        whether any segment was newly marked lost."""
        self.reo_deadline = None
        if math.isinf(self.rack_xmit):
            return False
        reo_wnd = self.reo_wnd(srtt)
        marked = False
        wait = 0.0
        for rec in self.queue:
            if rec.sacked or (rec.lost and not rec.in_flight_rtx):
                continue
            if not (rec.xmit < self.rack_xmit or (rec.xmit == self.rack_xmit and rec.end < self.rack_end)):
                continue
            remaining = rec.xmit + self.rack_rtt + reo_wnd - now
            if remaining <= 0:
                rec.lost = True
                rec.in_flight_rtx = False  # a lost resend: it is due again
                marked = True
            else:
                wait = max(wait, remaining)
        if wait > 0:
            self.reo_deadline = now + wait
        return marked

    def on_reorder_timeout(self, now: float, srtt: float | None, snd_nxt: int, una: int) -> None:
        """RFC 8985 §6.3: the reordering window has passed for a segment sent before a delivered one."""
        if self.detect_loss(now, srtt):
            if self.state is CaState.OPEN:
                self._enter_recovery(snd_nxt, una)
            if self.state is CaState.RECOVERY:
                self._prr(self.mss, una_advanced=False)  # as Linux's tcp_rack_reo_timeout: one segment

    # ------------------------------------------------------------------ the window
    def _enter_recovery(self, snd_nxt: int, una: int) -> None:
        """RFC 6937 §3 with Reno's ssthresh (RFC 5681 eq. (4) on cwnd, as Linux's tcp_reno_ssthresh)."""
        self._begin_undo(una)
        self.ssthresh = max(self.cwnd // 2, 2 * self.mss)
        self.prior_cwnd = max(self.cwnd, self.mss)
        self.prr_delivered = self.prr_out = 0
        self.recover = snd_nxt
        self.state = CaState.RECOVERY
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult, self.reo_wnd_persist = 1, REO_WND_PERSIST

    def _prr(self, delivered: int, una_advanced: bool) -> None:
        """RFC 6937 §3.1 (as Linux's tcp_cwnd_reduction): send in proportion to what is delivered while
        pipe is over ssthresh, then grow back to ssthresh no faster than slow start (PRR-SSRB, one
        segment more when SND.UNA advanced without new loss). An ACK delivering nothing changes nothing."""
        if delivered <= 0:
            return
        self.prr_delivered += delivered
        pipe = self.pipe
        if pipe > self.ssthresh:
            sndcnt = -(-self.prr_delivered * self.ssthresh // self.prior_cwnd) - self.prr_out
        else:
            sndcnt = max(self.prr_delivered - self.prr_out, delivered) + (self.mss if una_advanced else 0)
            sndcnt = min(self.ssthresh - pipe, sndcnt)
        if self.prr_out == 0:
            sndcnt = max(sndcnt, self.mss)  # the fast retransmit itself always goes out
        self.cwnd = max(pipe + max(sndcnt, 0), self.mss)

    def _grow(self, delivered: int) -> None:
        """Reno (RFC 5681 §3.1) counting every delivered byte, as Linux's tcp_slow_start and
        tcp_cong_avoid_ai do: slow start up to ssthresh, then one MSS per window delivered; only while
        cwnd limits the sender (in slow start: while it is under twice the most that was out), as
        Linux's tcp_is_cwnd_limited (RFC 7661 §4)."""
        if not (self.cwnd_limited or (self.cwnd < self.ssthresh and self.cwnd < 2 * self.max_out)):
            return
        if self.cwnd < self.ssthresh:
            step = min(delivered, self.ssthresh - self.cwnd)
            self.cwnd += step
            delivered -= step
        if delivered > 0 and self.cwnd >= self.ssthresh:
            self.cwnd += max(1, self.mss * delivered // self.cwnd)

    def on_timeout(self, una: int, snd_nxt: int, flight: int, forget_sacks: bool) -> None:
        """RFC 6298 §5.5 / RFC 5681 §3.1 (Linux's tcp_enter_loss): every segment not SACKed is lost,
        ssthresh halves unless a recovery already set it, cwnd is one segment."""
        if self.state is CaState.OPEN or una >= self.recover:
            self._begin_undo(una)
            self.ssthresh = max(min(self.cwnd, flight) // 2, 2 * self.mss)
        elif self.undo_marker is None:
            self._begin_undo(una)
        self.cwnd = self.mss
        for rec in self.queue:
            if forget_sacks and rec.sacked:
                rec.sacked = False
                self.sacked_bytes -= rec.size
            if not rec.sacked:
                rec.lost = True
                rec.in_flight_rtx = False
        self.recover = snd_nxt
        self.state = CaState.LOSS
        self.reo_deadline = None

    def _begin_undo(self, una: int) -> None:
        self.undo_marker = una
        self.undo_cwnd, self.undo_ssthresh = self.cwnd, self.ssthresh
        self.undo_retrans = []
        self.undo_resends = 0
        self.retrans_stamp = None

    def _packet_delayed(self, echo: int | None) -> bool:
        """Eifel detection (RFC 3522 §2): the ACK echoes a TSval older than our first retransmission,
        so the original, not the resend, reached the peer."""
        if self.undo_marker is None or self.retrans_stamp is None or echo is None or echo == 0:
            return False
        return ((echo - self.retrans_stamp) % (1 << 32)) >= (1 << 31)

    def _all_resends_needless(self) -> bool:
        """RFC 3708 §3 (Linux's tcp_try_undo_dsack): the episode resent something, and D-SACKs came
        back for every resend."""
        return self.undo_marker is not None and self.undo_resends > 0 and not self.undo_retrans

    def _may_undo(self, echo: int | None) -> bool:
        """Linux's tcp_may_undo: an episode whose every resend was D-SACKed, or Eifel says delayed."""
        return self._all_resends_needless() or self._packet_delayed(echo)

    def _undo(self, now: float, unmark: bool) -> None:
        """RFC 4015 §3 (Linux's tcp_undo_cwnd_reduction): restore the window as it was before the
        needless response; the segments are not lost after all."""
        self.cwnd = max(self.cwnd, self.undo_cwnd)
        self.ssthresh = max(self.ssthresh, self.undo_ssthresh)
        if unmark:
            for rec in self.queue:
                rec.lost = False
        self.undo_marker = None
        self.undo_retrans = []
        self.undo_resends = 0
        self.state = CaState.OPEN
        self.reordering_seen = True
