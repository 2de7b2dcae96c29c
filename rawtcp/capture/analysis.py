"""Wireshark's TCP sequence analysis (``tcp.analysis.*``), replayed on a capture's segments.

A port of ``tcp_analyze_sequence_number`` in Wireshark's epan/dissectors/packet-tcp.c (checked against
tshark 4.0 frame by frame, see tests/capture/test_analysis.py), so the ladder marks exactly the
packets Wireshark's expert info marks. Per direction it keeps the highest next sequence number seen,
the last ACK and window sent, a duplicate-ACK counter and the segments not yet acknowledged; each
segment is then checked, in Wireshark's order (the order matters: a keep-alive is never a
retransmission, a fast retransmission is not also out-of-order)::

    zero window probe (ends the checks) · zero window · previous segment not captured · keep-alive ·
    window update · window full · keep-alive ACK (ends) · zero window probe ACK (ends) · duplicate ACK ·
    then, for a segment that carries data, SYN or FIN and does not advance:
    spurious retransmission · fast retransmission (>= 2 duplicate ACKs, within 20 ms) ·
    out-of-order (within the first RTT, 3 ms if unknown) · retransmission

All arithmetic is on absolute 32-bit sequence numbers, as Wireshark does (a value of 0 means "not
seen yet" there, and here too). Times are compared in whole microseconds: a float epoch timestamp
holds no more, and Wireshark's "< 3 ms" must not flip on a rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

from rawtcp.capture.decode import TcpPacket
from rawtcp.core.seq import MASK as SEQ_MASK

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_MAX_UNACKED = 1000  # TCP_MAX_UNACKED_SEGMENTS: beyond it Wireshark stops listing segments

# Marker names, in the order Wireshark's info column prints them (most important first).
RETRANSMISSION = "retransmission"
FAST_RETRANSMISSION = "fast retransmission"
SPURIOUS_RETRANSMISSION = "spurious retransmission"
OUT_OF_ORDER = "out-of-order"
LOST_SEGMENT = "previous segment not captured"
ACK_LOST_SEGMENT = "acked unseen segment"
DUPLICATE_ACK = "duplicate ack"
ZERO_WINDOW = "zero window"
ZERO_WINDOW_PROBE = "zero window probe"
ZERO_WINDOW_PROBE_ACK = "zero window probe ack"
WINDOW_FULL = "window full"
WINDOW_UPDATE = "window update"
KEEP_ALIVE = "keep-alive"
KEEP_ALIVE_ACK = "keep-alive ack"

MARKERS = (FAST_RETRANSMISSION, SPURIOUS_RETRANSMISSION, RETRANSMISSION, OUT_OF_ORDER, LOST_SEGMENT,
           ACK_LOST_SEGMENT, DUPLICATE_ACK, ZERO_WINDOW, ZERO_WINDOW_PROBE, ZERO_WINDOW_PROBE_ACK,
           WINDOW_FULL, WINDOW_UPDATE, KEEP_ALIVE, KEEP_ALIVE_ACK)

# Wireshark's own wording (the info column), for people who know it.
_LABELS = {
    RETRANSMISSION: "TCP Retransmission", FAST_RETRANSMISSION: "TCP Fast Retransmission",
    SPURIOUS_RETRANSMISSION: "TCP Spurious Retransmission", OUT_OF_ORDER: "TCP Out-Of-Order",
    LOST_SEGMENT: "TCP Previous segment not captured", ACK_LOST_SEGMENT: "TCP ACKed unseen segment",
    ZERO_WINDOW: "TCP ZeroWindow", ZERO_WINDOW_PROBE: "TCP ZeroWindowProbe",
    ZERO_WINDOW_PROBE_ACK: "TCP ZeroWindowProbeAck", WINDOW_FULL: "TCP Window Full",
    WINDOW_UPDATE: "TCP Window Update", KEEP_ALIVE: "TCP Keep-Alive", KEEP_ALIVE_ACK: "TCP Keep-Alive ACK",
}

# The tcp.analysis field each marker sets in tshark (fast and spurious also set "retransmission").
TSHARK_FIELDS = {
    RETRANSMISSION: "tcp.analysis.retransmission", FAST_RETRANSMISSION: "tcp.analysis.fast_retransmission",
    SPURIOUS_RETRANSMISSION: "tcp.analysis.spurious_retransmission", OUT_OF_ORDER: "tcp.analysis.out_of_order",
    LOST_SEGMENT: "tcp.analysis.lost_segment", ACK_LOST_SEGMENT: "tcp.analysis.ack_lost_segment",
    DUPLICATE_ACK: "tcp.analysis.duplicate_ack", ZERO_WINDOW: "tcp.analysis.zero_window",
    ZERO_WINDOW_PROBE: "tcp.analysis.zero_window_probe",
    ZERO_WINDOW_PROBE_ACK: "tcp.analysis.zero_window_probe_ack", WINDOW_FULL: "tcp.analysis.window_full",
    WINDOW_UPDATE: "tcp.analysis.window_update", KEEP_ALIVE: "tcp.analysis.keep_alive",
    KEEP_ALIVE_ACK: "tcp.analysis.keep_alive_ack",
}


@dataclass(frozen=True, slots=True)
class Analysis:
    """What Wireshark's expert info says about one segment."""

    markers: tuple[str, ...] = ()  # names from MARKERS, in that order
    dupack_num: int = 0  # n of "Dup ACK frame#n"
    dupack_frame: int = 0  # the frame that first carried the duplicated ACK

    def __bool__(self) -> bool:
        return bool(self.markers)

    def labels(self) -> list[str]:
        """``TCP Dup ACK 7#2``, ``TCP Fast Retransmission``… as Wireshark's info column has them."""
        out = []
        for name in self.markers:
            if name == DUPLICATE_ACK:
                out.append(f"TCP Dup ACK {self.dupack_frame}#{self.dupack_num}")
            else:
                out.append(_LABELS[name])
        return out

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"markers": list(self.markers)}
        if self.dupack_num:
            doc["dup_ack"] = {"number": self.dupack_num, "of_frame": self.dupack_frame}
        return doc


NONE = Analysis()


def _gt(a: int, b: int) -> bool:  # GT_SEQ: a after b in sequence space
    return 0 < ((a - b) & SEQ_MASK) < 0x80000000


def _lt(a: int, b: int) -> bool:
    return _gt(b, a)


def _le(a: int, b: int) -> bool:
    return not _gt(a, b)


class _Flow:
    """One direction's analysis state (Wireshark's tcp_flow_t and tcp_analyze_seq_flow_info_t)."""

    __slots__ = ("dupacknum", "is_first_ack", "lastack", "lastacktime", "lastnondupack", "lastsegmentflags",
                 "maxseqtobeacked", "nextseq", "nextseqtime", "segments", "win_scale", "window")

    def __init__(self) -> None:
        self.nextseq = 0
        self.nextseqtime = 0
        self.lastack = 0
        self.lastacktime = 0
        self.lastnondupack = 0
        self.dupacknum = 0
        self.maxseqtobeacked = 0
        self.window = 0xFFFFFFFF  # "no window seen": a first zero-length segment is no window update
        self.win_scale = -1  # -1 unknown, -2 known unused, else the shift
        self.is_first_ack = True
        self.lastsegmentflags: frozenset[str] = frozenset()
        self.segments: list[list[int]] = []  # unacknowledged [seq, nextseq]


class ConversationAnalysis:
    """The analysis of one TCP conversation; feed it every segment of the stream in capture order."""

    def __init__(self) -> None:
        self.flows = (_Flow(), _Flow())
        self.ts_mru_syn = 0  # microseconds, like every time below
        self.first_rtt = 0

    def segment(self, direction: int, pkt: TcpPacket, frame: int, ts: float) -> Analysis:
        """Analyse one segment sent in ``direction`` (0 client to server): Wireshark's markers for it."""
        flags, seq, ack = pkt.flags, pkt.seq, pkt.ack
        us = round(ts * 1e6)
        if flags & SYN and not flags & ACK:
            self.ts_mru_syn = us
        elif flags & (SYN | ACK) == ACK and self.ts_mru_syn and not self.first_rtt:
            self.first_rtt = us - self.ts_mru_syn  # the handshake's RTT bounds out-of-order
        result = self._analyze(direction, seq, ack, pkt.payload_len, flags, pkt.window, frame, us)
        fwd, rev = self.flows[direction], self.flows[1 - direction]
        if flags & SYN:  # window scaling is learnt from the handshake's options, after the analysis
            ws = next((v for k, v in pkt.options if k == "WScale"), None)
            if ws is not None:
                fwd.win_scale = min(int(ws), 14)
            if fwd.win_scale == -1:
                fwd.win_scale = rev.win_scale = -2
            elif flags & ACK and rev.win_scale == -2:
                fwd.win_scale = -2
        elif flags & ACK:
            fwd.is_first_ack = False
        return result

    def _analyze(self, d: int, seq: int, ack: int, seglen: int, flags: int, window: int, frame: int,
                 ts: int) -> Analysis:
        fwd, rev = self.flows[d], self.flows[1 - d]
        marks: set[str] = set()
        dupack_num = dupack_frame = 0
        nomore = (SYN | FIN | RST)
        checks_done = False

        if seglen == 1 and seq == fwd.nextseq and rev.window == 0:
            marks.add(ZERO_WINDOW_PROBE)
            checks_done = True
        if not checks_done:
            if window == 0 and not flags & nomore:
                marks.add(ZERO_WINDOW)
            if fwd.nextseq and _gt(seq, fwd.nextseq) and not flags & RST:
                marks.add(LOST_SEGMENT)
            if seglen <= 1 and seq == (fwd.nextseq - 1) & SEQ_MASK and not flags & nomore:
                marks.add(KEEP_ALIVE)
            if (seglen == 0 and window and window != fwd.window and seq == fwd.nextseq
                    and ack == fwd.lastack and not flags & nomore):
                marks.add(WINDOW_UPDATE)
            if seglen > 0 and rev.win_scale != -1 and not flags & nomore:
                shift = 0 if rev.is_first_ack or rev.win_scale == -2 else rev.win_scale
                if (seq + seglen) & SEQ_MASK == (rev.lastack + ((rev.window << shift) & SEQ_MASK)) & SEQ_MASK:
                    marks.add(WINDOW_FULL)
            same = (seglen == 0 and window == fwd.window and seq == fwd.nextseq and ack == fwd.lastack
                    and not flags & nomore)
            if same and window and KEEP_ALIVE in rev.lastsegmentflags:
                marks.add(KEEP_ALIVE_ACK)
                checks_done = True
            elif same and window == 0 and ZERO_WINDOW_PROBE in rev.lastsegmentflags:
                marks.add(ZERO_WINDOW_PROBE_ACK)
                checks_done = True
            elif same and window:
                fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                marks.add(DUPLICATE_ACK)
                dupack_num, dupack_frame = fwd.dupacknum, fwd.lastnondupack

        # finished_fwd: a new ACK value resets the duplicate-ACK count
        if ack != fwd.lastack:
            fwd.lastnondupack = frame
            fwd.dupacknum = 0
        # tshark 4.0 says it again when the other side sent something since (checked frame by frame).
        if rev.maxseqtobeacked and _gt(ack, rev.maxseqtobeacked) and flags & ACK:
            if rev.maxseqtobeacked != rev.nextseq:
                rev.maxseqtobeacked = rev.nextseq
                marks.add(ACK_LOST_SEGMENT)
            else:
                if rev.dupacknum == 0:
                    marks.add(ACK_LOST_SEGMENT)
                rev.dupacknum = -1

        if seglen > 0 or flags & (SYN | FIN):
            self._retransmission(fwd, rev, seq, seglen, flags, ts, marks)

        nextseq = (seq + seglen) & SEQ_MASK
        if (seglen or flags & (SYN | FIN)) and len(fwd.segments) < _MAX_UNACKED:
            if flags & (SYN | FIN):
                nextseq = (nextseq + 1) & SEQ_MASK
            fwd.segments.insert(0, [seq, nextseq])
        zwp = ZERO_WINDOW_PROBE in marks
        if (_gt(nextseq, fwd.nextseq) or not fwd.nextseq) and not zwp:
            fwd.nextseq = nextseq
            fwd.nextseqtime = ts
        if (seq == fwd.maxseqtobeacked or not fwd.maxseqtobeacked) and not zwp:
            fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastacktime = ts
        fwd.lastsegmentflags = frozenset(marks)
        self._acked(rev, ack)
        if not marks:
            return NONE
        return Analysis(tuple(m for m in MARKERS if m in marks), dupack_num, dupack_frame)

    def _retransmission(self, fwd: _Flow, rev: _Flow, seq: int, seglen: int, flags: int, ts: int,
                        marks: set[str]) -> None:
        if KEEP_ALIVE in marks:
            return
        not_advanced = bool(fwd.nextseq) and _lt(seq, fwd.nextseq)
        if seglen > 1 and (fwd.nextseq - 1) & SEQ_MASK == seq:
            not_advanced = False  # after a zero window probe: new data, not a retransmission
        if seglen > 0 and rev.lastack and _le((seq + seglen) & SEQ_MASK, rev.lastack):
            marks.add(SPURIOUS_RETRANSMISSION)  # every byte was acknowledged already
            return
        if not_advanced and rev.dupacknum >= 2 and rev.lastack == seq and ts - rev.lastacktime < 20_000:
            marks.add(FAST_RETRANSMISSION)
            return
        threshold = self.first_rtt or 3_000
        end = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & SEQ_MASK
        if not_advanced and ts - fwd.nextseqtime < threshold and fwd.nextseq != end:
            marks.add(OUT_OF_ORDER)
            return
        if not_advanced:
            marks.add(RETRANSMISSION)

    @staticmethod
    def _acked(rev: _Flow, ack: int) -> None:
        """Drop the other direction's segments this ACK covers (Wireshark's unacked list)."""
        keep = []
        for ual in rev.segments:
            if ack == ual[1]:
                continue
            if _gt(ack, ual[0]) and _le(ack, ual[1]):
                ual[0] = ack
                keep.append(ual)
            elif _gt(ual[1], ack):
                keep.append(ual)
        rev.segments = keep
