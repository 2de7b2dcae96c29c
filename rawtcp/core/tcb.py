"""The transmission control block (RFC 9293 §3.3.1), grouped as the RFCs name its parts.

Sequence positions are unbounded integers, not wire numbers: the send side counts from ISS (0 = our SYN,
1.. = data, then our FIN), the receive side from IRS (0 = the peer's SYN). Window, MSS and byte counts
are in bytes. ``Endpoint`` owns one of each group and is the only writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rawtcp.core.reassembly import Reassembly
from rawtcp.core.rto import RtoEstimator, Timer
from rawtcp.core.sack import SackReporter
from rawtcp.core.segment import Option

# RFC 9293 §3.7.1: the MSS a sender must assume when the peer's SYN carries no MSS option.
DEFAULT_PEER_MSS = 536


@dataclass(slots=True)
class SendSequence:
    """Send sequence variables (RFC 9293 §3.3.1 Figure 3), positions counted from ISS."""

    iss: int                    # ISS, as on the wire
    iss_time: float = 0.0       # when ISS was read from the ISN clock (RFC 9293 §3.4.1)
    una: int = 0                # SND.UNA: oldest unacknowledged position
    nxt: int = 0                # SND.NXT: one past the highest position ever sent
    resend_from: int = 0        # go-back cursor: where sending resumes, behind SND.NXT after an RTO
    wnd: int = 0                # SND.WND, already scaled
    max_wnd: int = 0            # MAX.SND.WND (RFC 5961 §5.2): the largest window the peer offered
    wl1: int = 0                # SND.WL1: SEG.SEQ of the last window update (wire value)
    wl2: int = 0                # SND.WL2: SEG.ACK of the last window update (wire value)
    wscale: int = 0             # Snd.Wind.Shift (RFC 7323 §2.2): 0 unless both SYNs carried WScale
    small_end: int = 0          # end of the last segment sent short of SMSS (Linux's snd_sml, for Nagle)

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, iss: int, iss_time: float = 0.0, una: int = 0, nxt: int = 0, resend_from: int = 0, wnd: int = 0,
                 max_wnd: int = 0, wl1: int = 0, wl2: int = 0, wscale: int = 0, small_end: int = 0) -> None:
        self.iss = iss
        self.iss_time = iss_time
        self.una = una
        self.nxt = nxt
        self.resend_from = resend_from
        self.wnd = wnd
        self.max_wnd = max_wnd
        self.wl1 = wl1
        self.wl2 = wl2
        self.wscale = wscale
        self.small_end = small_end

    @property
    def syn_acked(self) -> bool:
        """Our SYN is acknowledged: SND.UNA has moved past ISS (RFC 9293 §3.10.7.4 fifth)."""
        return self.una > 0


@dataclass(slots=True)
class SendQueue:
    """What ``send()`` queued, from the oldest unacknowledged byte on, and our FIN once ``close()`` ran."""

    buf: bytearray = field(default_factory=bytearray)  # positions buf_pos.. (unacknowledged + unsent)
    buf_pos: int = 1            # position of buf[0]
    data_end: int = 1           # one past the last data position queued
    fin_queued: bool = False    # close() ran: a FIN follows the data
    fin_pos: int = -1           # position of our FIN once queued

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, buf_pos: int = 1, data_end: int = 1, fin_queued: bool = False, fin_pos: int = -1) -> None:
        self.buf = bytearray()
        self.buf_pos = buf_pos
        self.data_end = data_end
        self.fin_queued = fin_queued
        self.fin_pos = fin_pos


@dataclass(slots=True)
class ReceiveSequence:
    """Receive sequence variables (RFC 9293 §3.3.1 Figure 4) and RFC 7323's, positions counted from IRS."""

    mss: int                    # the peer's segment size as seen so far (Linux's rcv_mss; delayed ACKs)
    irs: int | None = None      # IRS, as on the wire; None until the peer's SYN arrived
    nxt: int = 0                # RCV.NXT
    wscale: int = 0             # Rcv.Wind.Shift (RFC 7323 §2.2): 0 unless both SYNs carried WScale
    adv_wnd: int = 0            # RCV.WND in the last segment we sent (bytes)
    adv_edge: int = 0           # RCV.NXT + RCV.WND as last advertised (receiver SWS avoidance)
    ts_recent: int = 0          # TS.Recent (RFC 7323 §4.3): the peer's TSval we echo
    ts_recent_time: float = 0.0  # TS.Recent.Age's origin (RFC 7323 §5.5: PAWS after 24 days idle)
    last_ack_sent: int = 0      # Last.ACK.sent (RFC 7323 §4.3)

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, mss: int, irs: int | None = None, nxt: int = 0, wscale: int = 0, adv_wnd: int = 0,
                 adv_edge: int = 0, ts_recent: int = 0, ts_recent_time: float = 0.0, last_ack_sent: int = 0) -> None:
        self.mss = mss
        self.irs = irs
        self.nxt = nxt
        self.wscale = wscale
        self.adv_wnd = adv_wnd
        self.adv_edge = adv_edge
        self.ts_recent = ts_recent
        self.ts_recent_time = ts_recent_time
        self.last_ack_sent = last_ack_sent


@dataclass(slots=True)
class ReceiveQueue:
    """Received bytes the user has not read, what arrived out of order, and the peer's FIN."""

    buf: bytearray = field(default_factory=bytearray)  # in order, from the last read() on
    ooo: Reassembly = field(default_factory=Reassembly)  # out of order, by position
    ooo_fin: int | None = None  # position of a FIN that arrived out of order
    fin: bool = False           # the peer's FIN arrived in order: no more data will come
    sack_report: SackReporter = field(default_factory=SackReporter)  # RFC 2018 §4 block order, D-SACK

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, ooo_fin: int | None = None, fin: bool = False) -> None:
        self.buf = bytearray()
        self.ooo = Reassembly()
        self.ooo_fin = ooo_fin
        self.fin = fin
        self.sack_report = SackReporter()


@dataclass(slots=True)
class Negotiated:
    """What the two SYNs settled (RFC 9293 §3.7.1 MSS, RFC 7323 §2.2 / §3.2, RFC 2018 §2)."""

    peer_mss: int = DEFAULT_PEER_MSS  # the peer's MSS option (clamped), or 536 without one
    peer_wscale: int | None = None  # the peer's WScale offer
    ts: bool = False            # both SYNs carried TSopt
    sack: bool = False          # both SYNs carried SACK-permitted

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, peer_mss: int = DEFAULT_PEER_MSS, peer_wscale: int | None = None, ts: bool = False,
                 sack: bool = False) -> None:
        self.peer_mss = peer_mss
        self.peer_wscale = peer_wscale
        self.ts = ts
        self.sack = sack


@dataclass(slots=True)
class Congestion:
    """RFC 5681 / RFC 6582 congestion control for a connection without SACK (with SACK, the window
    lives in ``core.recovery.SackRecovery``)."""

    cwnd: int = 0               # set when our SYN is acknowledged (RFC 6928 initial window)
    ssthresh: int = 1 << 30     # RFC 5681 §3.1: initially arbitrarily high
    dupacks: int = 0            # duplicate ACKs in a row (RFC 5681 §2)
    in_recovery: bool = False   # fast recovery (RFC 6582)
    recover: int = 0            # RFC 6582 "recover"

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, cwnd: int = 0, ssthresh: int = 1 << 30, dupacks: int = 0, in_recovery: bool = False,
                 recover: int = 0) -> None:
        self.cwnd = cwnd
        self.ssthresh = ssthresh
        self.dupacks = dupacks
        self.in_recovery = in_recovery
        self.recover = recover


@dataclass(slots=True)
class LossProbe:
    """Tail loss probe (RFC 8985 §7)."""

    arm: bool = False           # new data sent or ACKed: (re)start the probe timer
    end: int | None = None      # TLP.end_seq: SND.NXT when the probe went out
    retrans: bool = False       # the probe was a retransmission
    start: int = 0              # where the retransmitted probe began
    flight: int = 0             # FlightSize when the probe went out

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, arm: bool = False, end: int | None = None, retrans: bool = False, start: int = 0,
                 flight: int = 0) -> None:
        self.arm = arm
        self.end = end
        self.retrans = retrans
        self.start = start
        self.flight = flight


@dataclass(slots=True)
class Rtt:
    """Round-trip time measurement (RFC 6298 §2-3)."""

    estimator: RtoEstimator     # SRTT, RTTVAR and RTO
    timed_pos: int | None = None  # the one fresh segment being timed (RFC 6298 §3, Karn: never resent)
    timed_at: float = 0.0       # when it was sent
    rto_tsval: int | None = None  # our TSval when the retransmission timer last fired

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, estimator: RtoEstimator, timed_pos: int | None = None, timed_at: float = 0.0,
                 rto_tsval: int | None = None) -> None:
        self.estimator = estimator
        self.timed_pos = timed_pos
        self.timed_at = timed_at
        self.rto_tsval = rto_tsval


@dataclass(slots=True)
class Timers:
    """The one tagged timer and the counts that decide when to give up (RFC 6298 §5, RFC 9293 §3.8.4)."""

    pending: Timer | None = None  # written only by Endpoint._set_timer
    retries: int = 0            # retransmissions of the segment at SND.UNA
    head_since: float = 0.0     # when that segment (or the persist episode) first went unanswered
    syn_retransmitted: bool = False  # RFC 5681 §3.1 / RFC 6298 §5.7: a lost SYN shapes the start
    probes: int = 0             # zero-window probes sent since the window closed (backoff)
    unanswered: int = 0         # probes sent since the peer last sent an ACK (give-up count)
    last_heard: float = 0.0     # when the peer last sent an acceptable ACK
    ka_probes: int = 0          # keep-alive probes sent since the peer was last heard
    ka_last: float = 0.0        # when the last keep-alive probe went out

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, pending: Timer | None = None, retries: int = 0, head_since: float = 0.0,
                 syn_retransmitted: bool = False, probes: int = 0, unanswered: int = 0, last_heard: float = 0.0,
                 ka_probes: int = 0, ka_last: float = 0.0) -> None:
        self.pending = pending
        self.retries = retries
        self.head_since = head_since
        self.syn_retransmitted = syn_retransmitted
        self.probes = probes
        self.unanswered = unanswered
        self.last_heard = last_heard
        self.ka_probes = ka_probes
        self.ka_last = ka_last


@dataclass(slots=True)
class AckState:
    """ACKs we owe (RFC 9293 §3.8.6.3 delayed ACKs, RFC 5961 §7 challenge ACK rate limit)."""

    now: bool = False           # one ACK owed; any segment carrying ACK pays it
    owed: int = 0               # pure ACKs owed one per segment (dupacks, challenge ACKs)
    owed_sack: list[tuple[Option, ...]] = field(default_factory=list)  # their SACK options, in order
    deadline: float | None = None  # when a delayed ACK falls due
    unacked: int = 0            # in-order bytes received since our last ACK
    quick: int = 0              # quick-ACK mode: segments still to ACK at once (Linux's icsk_ack.quick)
    ato: float = 0.0            # the adaptive ACK timeout (Linux's icsk_ack.ato); 0 before any data
    last_arrival: float = 0.0   # when in-order data last arrived (Linux's lrcvtime)
    last_challenge: float = float("-inf")  # when we last sent a rate-limited challenge ACK

    # Written out so that mypyc compiles it (tests/test_initializers.py keeps it to the fields).
    def __init__(self, now: bool = False, owed: int = 0, deadline: float | None = None, unacked: int = 0,
                 quick: int = 0, ato: float = 0.0, last_arrival: float = 0.0,
                 last_challenge: float = float("-inf")) -> None:
        self.now = now
        self.owed = owed
        self.owed_sack = []
        self.deadline = deadline
        self.unacked = unacked
        self.quick = quick
        self.ato = ato
        self.last_arrival = last_arrival
        self.last_challenge = last_challenge
