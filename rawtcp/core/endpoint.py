"""One TCP connection as a sans-IO state machine (RFC 9293), with RFC 6298 timers, RFC 5681/6582
congestion control, RFC 5961 RST/SYN/ACK hardening and RFC 7323 window scaling.

Input: ``receive(segment, now)``, the user calls (``open_active``, ``send``, ``close`` …) and
``handle_timer(now)``. Output: ``segments_to_send(now)`` and ``next_event()``. Nothing here reads a clock.

Sequence numbers on the wire are mod 2**32; inside, positions are plain unbounded integers counted from
our ISS (send side: 0 = SYN, 1.. = data, then FIN) and from the peer's IRS (receive side), so every
comparison is an ordinary ``<`` and nothing breaks at the wrap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from rawtcp.core import seq as sq
from rawtcp.core.events import (
    ConnectionRefused,
    ConnectionReset,
    DataReceived,
    Event,
    PeerClosed,
    Retransmission,
    StateChanged,
    TimedOut,
)
from rawtcp.core.reassembly import Reassembly
from rawtcp.core.rto import (
    CLOCK_GRANULARITY,
    RTO_INITIAL,
    RTO_MAX,
    RTO_MIN_LINUX,
    RtoEstimator,
    Timer,
    TimerKind,
)
from rawtcp.core.sack import MAX_BLOCKS, MAX_BLOCKS_WITH_TS, SackReporter, Scoreboard
from rawtcp.core.segment import Flags, Option, Segment
from rawtcp.core.state import State
from rawtcp.core.transitions import Cause, defined, next_state

S = State

# RFC 9293 §3.7.1: the MSS a sender must assume when the peer's SYN carries no MSS option.
DEFAULT_PEER_MSS = 536
# The smallest peer MSS we send with: Linux's net.ipv4.tcp_min_snd_mss default, which stops a peer
# announcing MSS 1 from making us cut the stream into one-byte segments.
MIN_SND_MSS = 48
# RFC 9293 §3.1: the window field is 16 bits.
MAX_WINDOW_FIELD = 0xFFFF
# RFC 7323 §2.3: a shift above 14 is treated as 14.
MAX_WSCALE = 14
# Bound on separately owed pure ACKs, so an endpoint nobody pulls from cannot grow without limit.
MAX_OWED_ACKS = 64
# RFC 9293 §3.8.6.3 (MUST-40): an ACK is delayed less than 0.5 s; Linux delays at most 200 ms
# (TCP_DELACK_MAX), which is the default here.
ACK_DELAY_MAX = 0.5
ACK_DELAY_LINUX = 0.2
# Linux's window scale for its default 6 MB receive buffer maximum (net.ipv4.tcp_rmem), which also
# covers our 4 MB buffer (RFC 7323 §2.3).
LINUX_WSCALE = 7
# Linux's net.ipv4.tcp_invalid_ratelimit (500 ms): its per-socket RFC 5961 §7 limit on challenge ACKs and
# ACKs to out-of-window SYNs and pure ACKs (its per-netns tcp_challenge_ack_limit, 1000/s since 4.7, is
# unlimited since 6.0).
INVALID_RATELIMIT_LINUX = 0.5
# RFC 9293 §3.4.1: the ISN clock ticks about every 4 microseconds.
ISN_CLOCK_HZ = 250_000
# RFC 7323 §5.5: TS.Recent is invalid for PAWS after 24 days without an update.
PAWS_IDLE = 24 * 86400.0
# RFC 7323 §3.2: TSopt is 10 bytes, sent after two NOPs so it stays 4-byte aligned.
TSOPT_LEN = 12


def _ts_clock(now: float) -> int:
    """TSval: milliseconds of the caller's clock, modulo 2**32 (RFC 7323 §5.4: 1 ms to 1 s per tick)."""
    return int(now * 1000) % (1 << 32)


# States in which the peer may still send us data (its FIN not yet received).
_RECEIVING = (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2)
# States in which our data/FIN may be (re)transmitted once our SYN is acknowledged.
_SENDING = (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK)


class TcpError(Exception):
    """Misuse of the endpoint's user interface (RFC 9293 §3.10: "error: connection closing" …)."""


@dataclass
class EndpointConfig:
    local_port: int
    remote_port: int = 0            # 0 until learned (passive open learns it from the SYN)
    isn: int = 0                    # injected by the caller; the core never picks randomness
    mss: int = 1460                 # announced in our SYN (MSS option)
    window: int | None = None       # fixed advertised window (bytes) override; None = free buffer space
    recv_buffer: int = 4 * 1024 * 1024
    send_buffer: int = 4 * 1024 * 1024
    wscale: int | None = None       # offer window scaling with this shift in our SYN; None = don't offer
    rto_initial: float = RTO_INITIAL  # RFC 6298 §2.1
    rto_min: float = RTO_MIN_LINUX  # 200 ms as Linux; RFC 6298 §2.4 suggests 1 s (rto.RTO_MIN)
    rto_max: float = RTO_MAX        # RFC 6298 §2.5
    max_retries: int = 6            # retransmissions of one segment (SYN, data, FIN) before giving up
    msl2: float = 60.0              # TIME-WAIT duration (2*MSL), configurable
    dupack_threshold: int = 3       # RFC 5681 fast retransmit
    timestamps: bool = False        # RFC 7323: offer TSopt (used only if the peer's SYN carries it too)
    sack: bool = False              # RFC 2018: offer SACK-permitted (used only if the peer's SYN has it too)
    nagle: bool = False             # RFC 896 / RFC 9293 §3.7.4 (off = TCP_NODELAY)
    delayed_ack: bool = False       # RFC 9293 §3.8.6.3 (off = TCP_QUICKACK: every segment ACKed at once)
    ack_delay: float = ACK_DELAY_LINUX  # the delayed-ACK timeout; RFC 9293 MUST-40: under 0.5 s
    keepalive: float | None = None  # RFC 9293 §3.8.4: idle seconds before probing; None = off (Linux's
                                    # SO_KEEPALIVE default is off; its tcp_keepalive_time is 7200 s)
    keepalive_interval: float = 75.0  # Linux's tcp_keepalive_intvl
    keepalive_probes: int = 9       # Linux's tcp_keepalive_probes: unanswered probes before a reset
    challenge_ack_interval: float | None = None  # RFC 5961 §7 rate limit (None = unlimited)

    def __post_init__(self) -> None:
        problems = [
            (not 0 < self.local_port < 65536, f"local port {self.local_port} outside 1-65535"),
            (not 0 <= self.remote_port < 65536, f"remote port {self.remote_port} outside 0-65535"),
            (not 0 < self.mss < 65536, f"MSS {self.mss} outside 1-65535"),
            (self.window is not None and self.window < 0, f"window {self.window} is negative"),
            (self.wscale is not None and not 0 <= self.wscale <= MAX_WSCALE,
             f"window scale {self.wscale} outside 0-{MAX_WSCALE} (RFC 7323 §2.3)"),
            (self.recv_buffer < 0 or self.send_buffer < 0, "buffer sizes must not be negative"),
            (not 0 < self.rto_min <= self.rto_max, f"need 0 < rto_min <= rto_max, got {self.rto_min}, "
                                                  f"{self.rto_max}"),
            (self.rto_initial <= 0, f"rto_initial {self.rto_initial} must be positive"),
            (self.max_retries < 0, f"max_retries {self.max_retries} is negative"),
            (self.msl2 < 0, f"msl2 {self.msl2} is negative"),
            (self.dupack_threshold < 1, f"dupack_threshold {self.dupack_threshold} must be at least 1"),
            (not 0 < self.ack_delay < ACK_DELAY_MAX,
             f"ack_delay {self.ack_delay} outside (0, 500 ms) (RFC 9293 §3.8.6.3)"),
            (self.keepalive is not None and self.keepalive <= 0, f"keepalive {self.keepalive} must be positive"),
            (self.keepalive_interval <= 0 or self.keepalive_probes < 1,
             "keepalive_interval must be positive and keepalive_probes at least 1"),
            (self.challenge_ack_interval is not None and self.challenge_ack_interval < 0,
             f"challenge_ack_interval {self.challenge_ack_interval} is negative"),
        ]
        for bad, message in problems:
            if bad:
                raise TcpError(message)

    @classmethod
    def linux_like(cls, local_port: int, **overrides: Any) -> EndpointConfig:
        """What a Linux socket offers and does by default: ``mss,sackOK,TS,nop,wscale 7`` in the SYN,
        SACK recovery, timestamps with PAWS, Nagle, delayed ACKs, RTO minimum 200 ms, and per-socket
        challenge-ACK limiting. The plain constructor keeps the bare ``<mss>`` SYN of the SEED exchange."""
        settings: dict[str, Any] = {
            "local_port": local_port, "sack": True, "timestamps": True, "wscale": LINUX_WSCALE,
            "nagle": True, "delayed_ack": True, "ack_delay": ACK_DELAY_LINUX, "rto_min": RTO_MIN_LINUX,
            "challenge_ack_interval": INVALID_RATELIMIT_LINUX,
        }
        settings.update(overrides)
        return cls(**settings)


class Endpoint:
    """One connection. See the module docstring; every state change goes through ``_set_state``."""

    def __init__(self, config: EndpointConfig) -> None:
        self._cfg = config
        self._state = S.CLOSED
        self._used = False
        self.trace: list[StateChanged] = []
        self._events: deque[Event] = deque()
        self.retransmits = 0
        self._timer: Timer | None = None
        self._rto = RtoEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self._remote_port = config.remote_port
        self._iss = config.isn % sq.MOD
        self._iss_time = 0.0             # when ISS was taken (the ISN clock's reading, RFC 9293 §3.4.1)
        self._passive = False
        self._reset_connection()

    # ------------------------------------------------------------------ per-connection variables
    def _reset_connection(self) -> None:
        """Fresh TCB contents (also used when SYN-RECEIVED falls back to LISTEN, RFC 9293 §3.10.7.4)."""
        # send side, positions relative to ISS
        self._una = 0                    # SND.UNA
        self._nxt = 0                    # next position to transmit (rewound to SND.UNA after an RTO)
        self._max = 0                    # SND.NXT of the RFC: one past the highest position ever sent
        self._sndbuf = bytearray()       # data from position _buf_pos on (unacknowledged + unsent)
        self._buf_pos = 1
        self._data_end = 1               # one past the last data position queued by send()
        self._fin_queued = False
        self._fin_pos = -1               # position of our FIN once queued
        self._snd_wnd = 0                # SND.WND, already scaled
        self._max_snd_wnd = 0            # RFC 5961 §5.2 MAX.SND.WND
        self._wl1 = 0                    # SND.WL1 / SND.WL2 (wire values)
        self._wl2 = 0
        self._peer_mss = DEFAULT_PEER_MSS
        self._peer_wscale: int | None = None
        self._ts_ok = False              # RFC 7323 §3.2: both SYNs carried TSopt
        self._ts_recent = 0              # RFC 7323 §4.3 TS.Recent: the peer's TSval we echo
        self._ts_recent_time = 0.0       # TS.Recent.Age's origin (RFC 7323 §5.5: PAWS after 24 days idle)
        self._seg_ts: tuple[int, int] | None = None  # TSopt of the segment being processed
        self._last_ack_sent = 0          # RFC 7323 §4.3 Last.ACK.sent, a receive-side position
        self._snd_wscale = 0
        self._rcv_wscale = 0
        self._resend_syn = False
        self._syn_retransmitted = False
        self._retries = 0
        self._head_since = 0.0
        self._probes = 0                 # zero-window probes sent since the window closed (backoff)
        self._unanswered = 0             # probes sent since the peer last sent an ACK (give-up count)
        self._last_heard = 0.0           # when the peer last sent an acceptable ACK
        self._sws_override = False       # the persist timer fired on a small window: send a runt once
        self._last_challenge = float("-inf")  # when we last sent a rate-limited challenge ACK
        self._ka_probes = 0              # keep-alive probes sent since the peer was last heard
        self._ka_last = 0.0              # when the last keep-alive probe went out
        # congestion control (RFC 5681, RFC 6582)
        self._cwnd = 0
        self._ssthresh = 1 << 30         # RFC 5681 §3.1: initially arbitrarily high
        self._dupacks = 0
        self._in_recovery = False
        self._recover = 0
        # SACK (RFC 2018 receiver, RFC 6675 sender)
        self._sack_ok = False            # both SYNs carried SACK-permitted
        self._scoreboard = Scoreboard()
        self._high_rxt = 0               # RFC 6675 HighRxt: one past the highest retransmitted position
        self._sack_report = SackReporter()
        # tail loss probe (RFC 8985 §7)
        self._arm_pto = False            # new data sent or ACKed: (re)start the probe timer
        self._tlp_end: int | None = None  # TLP.end_seq: SND.NXT when the probe went out
        self._tlp_retrans = False        # the probe was a retransmission
        self._tlp_start = 0              # where the retransmitted probe began
        self._tlp_flight = 0             # FlightSize when the probe went out
        self._owed_sack: list[tuple[Option, ...]] = []  # SACK options of the owed pure ACKs, in order
        # delayed ACK (RFC 9293 §3.8.6.3)
        self._ack_deadline: float | None = None
        self._unacked_rcv = 0            # in-order bytes received since our last ACK
        self._rcv_mss = min(self._cfg.mss, DEFAULT_PEER_MSS)  # the peer's segment size, as seen
        # RTT measurement (RFC 6298 §3 Karn: only segments sent once)
        self._rtt_pos: int | None = None
        self._rtt_time = 0.0
        # receive side, positions relative to IRS
        self._irs: int | None = None
        self._rcv_pos = 0
        self._rcvbuf = bytearray()
        self._ooo = Reassembly()
        self._rcv_fin_pos: int | None = None
        self._peer_fin = False
        self._last_adv = 0               # window (bytes) in the last segment we sent
        self._rcv_edge = 0               # RCV.NXT + RCV.WND as last advertised (receiver SWS avoidance)
        # output owed
        self._ctl_out: list[Segment] = []
        self._ack_now = False            # one ACK owed; any segment carrying ACK pays it
        self._acks_owed = 0              # pure ACKs owed one per segment (dupacks, challenge ACKs)

    # ------------------------------------------------------------------ read-only properties
    @property
    def state(self) -> State:
        return self._state

    @property
    def config(self) -> EndpointConfig:
        return self._cfg

    @property
    def iss(self) -> int:
        return self._iss

    @property
    def irs(self) -> int | None:
        """The peer's ISN, None until its SYN arrived."""
        return self._irs

    @property
    def snd_una(self) -> int:
        return sq.add(self._iss, self._una)

    @property
    def snd_nxt(self) -> int:
        """RFC 9293 SND.NXT: the next new sequence number (retransmissions don't move it back)."""
        return sq.add(self._iss, self._max)

    @property
    def snd_wnd(self) -> int:
        """The peer's receive window in bytes (scaled)."""
        return self._snd_wnd

    @property
    def rcv_nxt(self) -> int:
        return 0 if self._irs is None else sq.add(self._irs, self._rcv_pos)

    @property
    def rcv_wnd(self) -> int:
        """What we advertise, in bytes: the override, or honestly the free receive buffer space."""
        if self._cfg.window is not None:
            return max(0, self._cfg.window)
        free = max(0, self._cfg.recv_buffer - len(self._rcvbuf))
        return min(free, MAX_WINDOW_FIELD << self._rcv_wscale)

    @property
    def sack_ok(self) -> bool:
        """Both SYNs carried SACK-permitted (RFC 2018 §2)."""
        return self._sack_ok

    @property
    def ts_ok(self) -> bool:
        """Both SYNs carried TSopt (RFC 7323 §3.2)."""
        return self._ts_ok

    @property
    def peer_mss(self) -> int:
        return self._peer_mss

    @property
    def send_mss(self) -> int:
        # RFC 6691: the MSS counts no TCP options, so TSopt's 12 bytes (with NOPs) come off the payload.
        return max(1, min(self._peer_mss, self._cfg.mss) - (TSOPT_LEN if self._ts_ok else 0))

    @property
    def local_port(self) -> int:
        return self._cfg.local_port

    @property
    def remote_port(self) -> int:
        return self._remote_port

    @property
    def readable(self) -> int:
        return len(self._rcvbuf)

    @property
    def unsent(self) -> int:
        return max(0, self._data_end - max(self._max, 1))

    @property
    def in_flight(self) -> int:
        """Sequence space sent and not yet acknowledged (SYN and FIN count one each)."""
        return self._max - self._una

    @property
    def peer_fin(self) -> bool:
        return self._peer_fin

    @property
    def rto(self) -> float:
        return self._rto.rto

    @property
    def srtt(self) -> float | None:
        return self._rto.srtt

    @property
    def cwnd(self) -> int:
        return self._cwnd

    @property
    def ssthresh(self) -> int:
        return self._ssthresh

    @property
    def snd_wscale(self) -> int:
        """Shift applied to the peer's window field (0 unless both SYNs carried WScale)."""
        return self._snd_wscale

    @property
    def rcv_wscale(self) -> int:
        """Shift applied to our window field (0 unless both SYNs carried WScale)."""
        return self._rcv_wscale

    @property
    def timer(self) -> Timer | None:
        """The pending timer (kind and absolute deadline), if any."""
        return self._timer

    # ------------------------------------------------------------------ the one state changer
    def _set_state(self, cause: Cause, now: float) -> None:
        """Take the edge the transition table gives for (state, cause); an undefined pair raises."""
        old = self._state
        new = next_state(old, cause)
        self._state = new
        event = StateChanged(now, old, new, cause)
        self.trace.append(event)
        self._events.append(event)
        if new is S.TIME_WAIT:
            # RFC 9293 §3.10.7.4 eighth: start the time-wait timer, turn off the others.
            self._timer = Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2)
        elif new is S.CLOSED:
            self._timer = None
            self._ctl_out.clear()
            self._ack_now = False
            self._ack_deadline = None
            self._acks_owed = 0
            self._owed_sack.clear()
            self._ooo.clear()

    def _on_established(self) -> None:
        """Our SYN is acknowledged: set the initial congestion window."""
        mss = self.send_mss
        if self._syn_retransmitted:
            # RFC 5681 §3.1: a lost SYN or SYN-ACK limits the initial window to one segment;
            # RFC 6298 §5.7: and RTO restarts at 3 s when no RTT sample exists.
            self._cwnd = mss
            self._rto.reset_after_syn_loss()
        else:
            # RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)).
            self._cwnd = min(10 * mss, max(2 * mss, 14600))

    # ------------------------------------------------------------------ user calls (RFC 9293 §3.10.1-5)
    def open_active(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (active): queue the SYN, enter SYN-SENT."""
        self._check_fresh()
        if not 0 < self._remote_port < 65536:
            raise TcpError("active open needs a remote port (EndpointConfig.remote_port)")
        self._used = True
        self._passive = False
        self._iss_time = now
        self._set_state(Cause.OPEN_ACTIVE, now)

    def open_passive(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (passive): wait in LISTEN for one SYN."""
        self._check_fresh()
        self._used = True
        self._passive = True
        self._iss_time = now
        self._set_state(Cause.OPEN_PASSIVE, now)

    def _check_fresh(self) -> None:
        if self._used or self._state is not S.CLOSED:
            raise TcpError(f"endpoint already used (state {self._state}); make a new Endpoint")

    def send(self, data: bytes, now: float) -> int:
        """RFC 9293 §3.10.2 SEND: queue bytes; returns how many fit in the send buffer."""
        if self._state is S.CLOSED:
            raise TcpError("connection does not exist")
        if self._state is S.LISTEN:
            raise TcpError("connection not open (LISTEN): no peer yet")
        if self._fin_queued or self._state not in (S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT):
            raise TcpError(f"connection closing (state {self._state}): cannot send")
        room = max(0, self._cfg.send_buffer - len(self._sndbuf))
        chunk = bytes(data[:room])
        self._sndbuf += chunk
        self._data_end += len(chunk)
        return len(chunk)

    def shutdown(self, now: float) -> None:
        """RFC 9293 §3.10.4 CLOSE: queue our FIN after pending data (we can still receive)."""
        state = self._state
        if state is S.CLOSED:
            raise TcpError("connection does not exist")
        if not defined(state, Cause.CLOSE):
            return  # FIN-WAIT-1/2, CLOSING, LAST-ACK, TIME-WAIT: already closing; a repeated close is a no-op
        if state in (S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT):
            # RFC 9293 §3.10.4: the FIN goes after the queued data (LISTEN and SYN-SENT sent nothing to end).
            self._fin_queued = True
            self._fin_pos = self._data_end
        self._set_state(Cause.CLOSE, now)

    def close(self, now: float) -> None:
        """Same as shutdown for TCP: the FIN is the only thing a close puts on the wire."""
        self.shutdown(now)

    def abort(self, now: float) -> None:
        """RFC 9293 §3.10.5 ABORT: RST if the peer knows us, then CLOSED. No-op when already CLOSED."""
        state = self._state
        if state is S.CLOSED:
            return
        send_rst = state in (S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT)
        rst = Segment(self.local_port, self._remote_port, self.snd_nxt, 0, Flags.RST)
        self._set_state(Cause.ABORT, now)
        if send_rst:
            self._ctl_out.append(rst)

    def read(self, max_bytes: int = -1) -> bytes:
        """In-order received bytes; frees receive buffer (and may owe a window update ACK)."""
        n = len(self._rcvbuf) if max_bytes < 0 else min(max_bytes, len(self._rcvbuf))
        data = bytes(self._rcvbuf[:n])
        del self._rcvbuf[:n]
        if n and self._state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2) and not self._peer_fin:
            # RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): announce the window once it reopens to
            # a full segment, or the peer, seeing a window under one MSS, waits for its persist timer.
            threshold = self._sws_step()
            if self._last_adv < threshold <= self._advertisable():
                self._ack_now = True
        return data

    def _advertisable(self) -> int:
        return (min(self._sws_window() >> self._rcv_wscale, MAX_WINDOW_FIELD)) << self._rcv_wscale

    # ------------------------------------------------------------------ events and timers
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """The earliest deadline: the endpoint's one timer, or a delayed ACK falling due before it."""
        deadlines = [d for d in (self._ack_deadline, None if self._timer is None else self._timer.deadline)
                     if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._ack_deadline = None
            self._ack_now = True  # the delayed ACK is due
        timer = self._timer
        if timer is None or now < timer.deadline:
            return
        self._timer = None
        if timer.kind is TimerKind.TIME_WAIT:
            self._set_state(Cause.TIME_WAIT_EXPIRED, now)
        elif timer.kind is TimerKind.RETRANSMIT:
            self._on_retransmit_timeout(now)
        elif timer.kind is TimerKind.KEEPALIVE:
            self._on_keepalive_timeout(now)
        elif timer.kind is TimerKind.PROBE:
            self._on_probe_timeout(now)
        else:
            self._on_persist_timeout(now)
        self._rearm(now)

    def _on_keepalive_timeout(self, now: float) -> None:
        """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: probe an idle connection with SEG.SEQ = SND.NXT - 1 and no
        data (Linux's probe), which the peer must answer; reset it after keepalive_probes go unanswered."""
        if self._ka_probes >= self._cfg.keepalive_probes:
            rst = Segment(self.local_port, self._remote_port, self.snd_nxt, 0, Flags.RST)
            self._events.append(TimedOut(now, "keepalive", self._ka_probes, now - self._last_heard))
            self._set_state(Cause.KEEPALIVE_TIMEOUT, now)
            self._ctl_out.append(rst)
            return
        self._ka_probes += 1
        self._ka_last = now
        self._ctl_out.append(self._ack_segment(seqno=sq.add(self.snd_nxt, -1)))

    def _keepalive_timer(self) -> Timer | None:
        idle = self._cfg.keepalive
        if idle is None or self._state not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_2):
            return None
        if self._ka_probes == 0:
            return Timer(TimerKind.KEEPALIVE, self._last_heard + idle)
        return Timer(TimerKind.KEEPALIVE, self._ka_last + self._cfg.keepalive_interval)

    def _pto_allowed(self) -> bool:
        """RFC 8985 §7.2: a loss probe needs SACK, no loss recovery or timeout recovery under way, and
        no probe already outstanding."""
        return (self._sack_ok and self._state in _SENDING and self._una >= 1 and not self._in_recovery
                and self._retries == 0 and self._tlp_end is None and self._nxt >= self._max)

    def _pto(self) -> float:
        """RFC 8985 §7.2: PTO = 2 * SRTT, plus the worst-case delayed ACK when one segment is in flight;
        1 s before any RTT sample."""
        srtt = self._rto.srtt
        if srtt is None:
            return 1.0
        pto = 2 * srtt
        if self.in_flight <= self.send_mss:
            pto += ACK_DELAY_LINUX
        return max(pto, CLOCK_GRANULARITY)

    def _on_probe_timeout(self, now: float) -> None:
        """RFC 8985 §7.3: send one new segment if the window allows, else resend the last one; then the
        RTO timer runs again."""
        if self._max == self._una:
            return
        mss = self.send_mss
        room = self._una + self._snd_wnd - self._max
        segment: Segment | None = None
        if self._data_end > self._max and room > 0:
            pos = self._max
            n = min(mss, self._data_end - pos, room)
            fin = self._fin_queued and pos + n == self._fin_pos
            out: list[Segment] = []
            self._transmit(self._data_segment(pos, n, fin, psh=True), pos, now, out)
            self._ctl_out += out
            self._tlp_retrans = False
        else:
            holes = self._scoreboard.holes(self._una, self._max)
            if holes:
                start, end = holes[-1]
                sent_data_end = min(end, self._data_end)
                segment = self._segment_at(max(start, sent_data_end - mss) if sent_data_end > start else start)
            if segment is None:
                return
            self._emit_retransmission(segment, now, "tlp")
            self._tlp_retrans = True
            self._tlp_start = self._una + sq.diff(segment.seq, self.snd_una)
        self._tlp_end = self._max
        self._tlp_flight = self._max - self._una - self._scoreboard.sacked
        self._timer = Timer(TimerKind.RETRANSMIT, now + self._rto.rto)

    def _on_tlp_ack(self, seg: Segment, ack_pos: int) -> None:
        """RFC 8985 §7.4: once the ACKs reach past the probe, a probe that was a retransmission and is
        not reported as a duplicate (D-SACK, RFC 2883) repaired a loss: respond as to a fast
        retransmit, ssthresh = cwnd = FlightSize / 2 (RFC 5681 eq. (4))."""
        if self._tlp_end is None or ack_pos < self._tlp_end:
            return
        start, end = self._tlp_start, self._tlp_end
        self._tlp_end = None
        if not self._tlp_retrans:
            return
        for left, right in seg.sack_blocks:
            lo = self._una + sq.diff(left, self.snd_una)
            hi = self._una + sq.diff(right, self.snd_una)
            if hi <= ack_pos and lo < end and hi > start:
                return  # a D-SACK for the probe: the original arrived, nothing was lost
        mss = self.send_mss
        self._ssthresh = max(self._tlp_flight // 2, 2 * mss)
        self._cwnd = min(self._cwnd, self._ssthresh)

    def _on_retransmit_timeout(self, now: float) -> None:
        if self._max == self._una:
            return
        what = self._head_name()
        # The peer shrank its window to zero under data in flight: our retransmissions are window probes
        # now, and a peer that keeps answering is alive, so they don't count toward giving up (Linux).
        shrunk = self._una >= 1 and self._snd_wnd == 0 and now - self._last_heard <= self._cfg.rto_max
        if self._retries >= self._cfg.max_retries and not shrunk:
            self._events.append(TimedOut(now, what, self._retries, now - self._head_since))
            self._set_state(Cause.TIMEOUT, now)
            return
        if not shrunk:
            self._retries += 1
        if self._una == 0:
            self._syn_retransmitted = True
        # RFC 6298 §5.5 back off; §5.6 restart with the new RTO (done by _rearm).
        self._rto.backoff()
        mss = self.send_mss
        if self._una > 0:
            # RFC 5681 §3.1 eq. (4) and: cwnd = LW = 1 SMSS after a retransmission timeout.
            self._ssthresh = max(self.in_flight // 2, 2 * mss)
            self._cwnd = mss
        # RFC 6582 §4 / RFC 6675 §5.1: after a timeout, recover = highest sent, leave fast recovery.
        self._recover = self._max
        self._in_recovery = False
        self._dupacks = 0
        self._high_rxt = self._una
        self._tlp_end = None
        if self._retries >= 2:
            # RFC 2018 §8 / RFC 6675 §5.1: the peer may have reneged on what it SACKed; like Linux, keep
            # the scoreboard after one timeout but not after a second in a row.
            self._scoreboard.clear()
        segment = self._head_segment()
        # Go back: resume sending right after the retransmitted segment, within cwnd.
        self._nxt = self._una + segment.seg_len
        self._emit_retransmission(segment, now, "rto")

    def _on_persist_timeout(self, now: float) -> None:
        if not self._needs_persist():
            return
        if self._unanswered >= self._cfg.max_retries:
            self._events.append(TimedOut(now, "window probe", self._unanswered, now - self._head_since))
            self._set_state(Cause.TIMEOUT, now)
            return
        self._probes += 1
        self._unanswered += 1
        if self._snd_wnd > 0:
            # RFC 9293 §3.8.6.2.1 (4): the override timeout; send what fits the small window (Linux's
            # tcp_write_wakeup does the same from its probe timer).
            self._sws_override = True
            return
        # RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: probe the zero window. Like Linux, the probe is a bare
        # ACK with SEQ = SND.UNA - 1: out of window, so the peer must answer with its current window.
        self._ctl_out.append(self._ack_segment(seqno=sq.add(self.snd_una, -1)))

    def _persist_interval(self) -> float:
        return min(self._rto.rto * (1 << min(self._probes, 16)), self._cfg.rto_max)

    def _needs_persist(self) -> bool:
        """Nothing in flight, data queued, and a window too small to send it into: zero, or under SMSS,
        the queue and half the largest window (sender SWS avoidance, RFC 9293 §3.8.6.2.1)."""
        if not (self._state in _SENDING and self._una >= 1 and self._max == self._una
                and self._data_end > self._max):
            return False
        wnd = self._snd_wnd
        return wnd == 0 or (wnd < min(self.send_mss, self._data_end - self._max) and 2 * wnd < self._max_snd_wnd)

    def _rearm(self, now: float) -> None:
        """Keep the single timer consistent with what is outstanding (RFC 6298 §5.1, §5.2)."""
        state = self._state
        if state is S.TIME_WAIT:
            return
        if state in (S.CLOSED, S.LISTEN):
            self._timer = None
            return
        if self._max > self._una:
            if self._arm_pto and self._pto_allowed():
                # RFC 8985 §7.2: after new data went out or new data was ACKed, the loss probe timer,
                # never later than the RTO would fire.
                rto_deadline = now + self._rto.rto
                if self._timer is not None and self._timer.kind is TimerKind.RETRANSMIT:
                    rto_deadline = self._timer.deadline
                self._timer = Timer(TimerKind.PROBE, min(now + self._pto(), rto_deadline))
                if self._retries == 0:
                    self._head_since = now
            elif self._timer is None or self._timer.kind not in (TimerKind.RETRANSMIT, TimerKind.PROBE):
                self._timer = Timer(TimerKind.RETRANSMIT, now + self._rto.rto)
                if self._retries == 0:
                    self._head_since = now
            self._arm_pto = False
        elif self._needs_persist():
            if self._timer is None or self._timer.kind is not TimerKind.PERSIST:
                if self._unanswered == 0:
                    self._head_since = now
                self._timer = Timer(TimerKind.PERSIST, now + self._persist_interval())
        else:
            self._timer = self._keepalive_timer()

    # ------------------------------------------------------------------ segment building
    def _window_field(self, syn: bool = False) -> int:
        if syn:
            # RFC 7323 §2.2: the window in a SYN or SYN-ACK is never scaled.
            field = min(self.rcv_wnd, MAX_WINDOW_FIELD)
            self._last_adv = field
        else:
            field = min(self._sws_window() >> self._rcv_wscale, MAX_WINDOW_FIELD)
            self._last_adv = field << self._rcv_wscale
        # the peer's first data byte is IRS + 1: position 1, also before its SYN arrived
        self._rcv_edge = max(self._rcv_pos, 1) + self._last_adv
        return field

    def _sws_window(self) -> int:
        """RCV.WND to advertise (RFC 9293 §3.8.6.2.2, MUST-39): keep the right edge where it was until
        the free buffer can move it by min(RCV.BUFF / 2, MSS); a fixed window override is sent as is."""
        free = self.rcv_wnd
        if self._cfg.window is not None:
            return free
        current = min(max(0, self._rcv_edge - self._rcv_pos), free)
        room = self._cfg.recv_buffer - len(self._rcvbuf)  # RCV.BUFF - RCV.USER, before the field's cap
        return free if room - current >= self._sws_step() else current

    def _sws_step(self) -> int:
        return max(1, min(self._cfg.mss, self._cfg.recv_buffer // 2))

    def _syn_segment(self) -> Segment:
        options: list[Option] = [("MSS", self._cfg.mss)]
        # RFC 2018 §2: SACK-permitted in a SYN; in a SYN-ACK only if the peer's SYN had it.
        if self._cfg.sack and (self._irs is None or self._sack_ok):
            options.append(("SAckOK", b""))
        # RFC 7323 §2.2: offer WScale in a SYN; in a SYN-ACK only if the peer's SYN offered it.
        offer = self._cfg.wscale is not None and (self._irs is None or self._peer_wscale is not None)
        if offer:
            options += [("NOP", None), ("WScale", min(max(self._cfg.wscale or 0, 0), MAX_WSCALE))]
        if self._irs is None:
            return Segment(self.local_port, self._remote_port, self._iss, 0, Flags.SYN,
                           self._window_field(syn=True), tuple(options))
        return Segment(self.local_port, self._remote_port, self._iss, self.rcv_nxt, Flags.SYN | Flags.ACK,
                       self._window_field(syn=True), tuple(options))

    def _data_segment(self, pos: int, n: int, fin: bool, psh: bool) -> Segment:
        start = pos - self._buf_pos
        payload = bytes(self._sndbuf[start:start + n])
        flags = Flags.ACK
        if fin:
            flags |= Flags.FIN
        if psh and n:
            flags |= Flags.PSH
        return Segment(self.local_port, self._remote_port, sq.add(self._iss, pos), self.rcv_nxt, flags,
                       self._window_field(), (), payload)

    def _ack_segment(self, seqno: int | None = None) -> Segment:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 §3.10.7.4)."""
        return Segment(self.local_port, self._remote_port, self.snd_nxt if seqno is None else seqno,
                       self.rcv_nxt, Flags.ACK, self._window_field())

    def _head_segment(self) -> Segment:
        """The segment starting at SND.UNA, as it is retransmitted."""
        if self._una == 0:
            return self._syn_segment()
        sent_data_end = min(self._max, self._data_end)
        n = max(0, min(self.send_mss, sent_data_end - self._una))
        fin = self._fin_queued and self._una + n == self._fin_pos and self._max > self._fin_pos
        return self._data_segment(self._una, n, fin, psh=self._una + n == sent_data_end)

    def _head_name(self) -> str:
        if self._una == 0:
            return "SYN" if self._irs is None else "SYN-ACK"
        if self._fin_queued and self._una == self._fin_pos:
            return "FIN"
        return "data"

    def _emit_retransmission(self, segment: Segment, now: float, reason: str) -> None:
        self.retransmits += 1
        self._rtt_pos = None  # RFC 6298 §3 (Karn): never time a retransmitted segment
        self._ctl_out.append(segment)
        self._events.append(Retransmission(now, segment, reason))

    def _owe_ack(self) -> None:
        if self._acks_owed >= MAX_OWED_ACKS:
            return
        self._acks_owed += 1
        if self._sack_ok and self._irs is not None:
            # Each duplicate ACK reports the blocks as they stood when its segment arrived, so the
            # sender sees new SACK information in every one (RFC 2018 §4, RFC 6675 §2).
            self._owed_sack.append(self._sack_option(self._sack_limit()))

    def _owe_challenge_ack(self, seg: Segment, now: float) -> None:
        """An ACK for a segment we drop (out of window, a challenge per RFC 5961 §3.2/§4.2/§5.2, or
        PAWS). RFC 5961 §7: rate-limited, like Linux's per-socket net.ipv4.tcp_invalid_ratelimit,
        except for segments with data or FIN, which cannot be part of an ACK loop."""
        interval = self._cfg.challenge_ack_interval
        if interval is not None and (seg.seg_len == 0 or seg.has(Flags.SYN)):
            if now - self._last_challenge < interval:
                return
            self._last_challenge = now
        self._owe_ack()

    def _sack_limit(self) -> int:
        return MAX_BLOCKS_WITH_TS if self._ts_ok else MAX_BLOCKS

    def _sack_option(self, limit: int) -> tuple[Option, ...]:
        """NOP, NOP, SACK with the blocks due now (RFC 2018 §4), or nothing."""
        blocks = self._sack_report.blocks(self._ooo.blocks(), limit) if limit > 0 else []
        if not blocks or self._irs is None:
            return ()
        edges = tuple(sq.add(self._irs, p) for block in blocks for p in block)
        return (("NOP", None), ("NOP", None), ("SAck", edges))

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything due now: RSTs and retransmissions, pure ACKs owed, then new SYN/data/FIN."""
        state = self._state
        if self._resend_syn and self._max > 0 and state not in (S.CLOSED, S.LISTEN):
            # Our SYN(-ACK) again: simultaneous open (RFC 9293 §3.10.7.3) or a duplicate SYN. It is a
            # retransmission of ISS, so Karn's rule applies to it (RFC 6298 §3).
            self._resend_syn = False
            self._emit_retransmission(self._syn_segment(), now, "syn")
        out = self._ctl_out
        self._ctl_out = []
        if state in (S.CLOSED, S.LISTEN):
            self._ack_now = False
            self._acks_owed = 0
            self._owed_sack.clear()
            return out
        fresh: list[Segment] = []
        if state is not S.TIME_WAIT:
            fresh = self._fill(now)
        pure = self._acks_owed
        if not pure and self._ack_now and not any(s.has(Flags.ACK) for s in out + fresh):
            pure = 1
        if self._irs is not None and state is not S.SYN_SENT:
            for i in range(pure):
                ack = self._ack_segment()
                if i < len(self._owed_sack):
                    ack = Segment(ack.sport, ack.dport, ack.seq, ack.ack, ack.flags, ack.window,
                                  self._owed_sack[i])
                out.append(ack)
        self._ack_now = False
        self._acks_owed = 0
        self._owed_sack.clear()
        out += fresh
        self._rearm(now)
        if any(seg.has(Flags.ACK) for seg in out):
            self._last_ack_sent = self._rcv_pos
            self._ack_deadline = None  # the owed ACK went out, piggybacked or alone
            self._unacked_rcv = 0
        return [self._with_options(seg, now) for seg in out]

    def _fill(self, now: float) -> list[Segment]:
        """New (and go-back) transmissions within min(cwnd, SND.WND) (RFC 9293 §3.8.6, RFC 5681)."""
        out: list[Segment] = []
        if self._nxt == 0:
            if self._state in (S.SYN_SENT, S.SYN_RECEIVED, S.FIN_WAIT_1) and self._una == 0:
                # The first SYN(-ACK) also answers a SYN that came before it left: no second copy.
                self._resend_syn = False
                self._transmit(self._syn_segment(), 0, now, out)
            return out
        if self._una < 1 or self._state not in _SENDING:
            return out
        mss = self.send_mss
        if self._in_recovery and self._sack_ok:
            self._fill_recovery(now, out)
            return self._mark_psh(out)
        board = self._scoreboard
        for _ in range(1 << 20):  # bounded: each pass advances _nxt or stops
            pos = self._nxt
            sacked = 0
            if self._sack_ok:
                if pos < self._max:
                    # Going back after a timeout: what the peer SACKed needs no resending (RFC 6675 §5.1).
                    pos = self._nxt = board.skip(pos)
                # SACKed bytes have left the network: they use no congestion window (RFC 6675 pipe; with
                # the first duplicates this is RFC 3042's limited transmit)
                sacked = board.sacked_between(self._una, pos)
            avail = max(0, self._data_end - pos)
            usable = min(self._cwnd - (pos - self._una - sacked), self._snd_wnd - (pos - self._una))
            n = max(0, min(avail, mss, usable))
            if self._sack_ok and pos < self._max and (limit := board.next_sacked(pos)) is not None:
                n = min(n, limit - pos)
            if 0 < n < mss and pos >= self._max and not self._may_send_runt(n, avail, pos):
                n = 0
            fin = self._fin_queued and pos + n == self._fin_pos
            if n == 0 and not fin:
                break
            is_last = pos + n >= self._data_end
            seg = self._data_segment(pos, n, fin, psh=is_last)
            self._transmit(seg, pos, now, out)
        return self._mark_psh(out)

    def _may_send_runt(self, n: int, avail: int, pos: int) -> bool:
        """New data shorter than SMSS: RFC 9293 §3.8.6.2.1 (MUST-38) sends it only if (2) it is all
        that is queued (every write counts as pushed), (3) it is at least half the largest window the
        peer offered, or (4) the override timeout fired; Nagle (RFC 896) holds a short tail while
        data is unacknowledged, unless a FIN goes with it (as Linux does)."""
        if n == avail:
            fin = self._fin_queued and pos + n == self._fin_pos
            return not (self._cfg.nagle and self._max > self._una and not fin)
        if self._max > self._una:
            return False  # limited by window or cwnd with data in flight: an ACK will come
        if 2 * n >= self._max_snd_wnd or self._sws_override:
            self._sws_override = False
            return True
        return False

    @staticmethod
    def _mark_psh(out: list[Segment]) -> list[Segment]:
        """PSH on the last data segment of this burst."""
        for i in range(len(out) - 1, -1, -1):
            s = out[i]
            if s.payload:
                if not s.has(Flags.PSH):
                    out[i] = Segment(s.sport, s.dport, s.seq, s.ack, s.flags | Flags.PSH, s.window,
                                     s.options, s.payload, s.urgent)
                break
        return out

    def _fill_recovery(self, now: float, out: list[Segment]) -> None:
        """RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send what NextSeg names."""
        mss = self.send_mss
        board = self._scoreboard
        for _ in range(1 << 20):
            edge = board.lost_edge(self._dupthresh, mss)
            if self._cwnd - board.pipe(self._una, self._max, edge, self._high_rxt) < mss:
                return
            found = self._next_seg(edge)
            if found is None:
                return
            pos, seg = found
            if pos >= self._max:
                self._transmit(seg, pos, now, out)
            else:
                self._high_rxt = max(self._high_rxt, pos + seg.seg_len)
                self.retransmits += 1
                self._rtt_pos = None  # RFC 6298 §3 (Karn)
                self._events.append(Retransmission(now, seg, "sack"))
                out.append(seg)

    def _next_seg(self, edge: int | None) -> tuple[int, Segment] | None:
        """RFC 6675 §4 NextSeg: (1) the first lost un-SACKed segment above HighRxt, (2) new data, (3)
        an un-SACKed segment above HighRxt below the highest SACKed octet. (The optional rescue
        retransmission, rule (4), is left out: the RTO covers that case.)"""
        board = self._scoreboard
        holes = board.holes(max(self._high_rxt, self._una), self._max)
        if holes and edge is not None and holes[0][0] < edge:
            seg = self._segment_at(holes[0][0])
            if seg is not None:
                return holes[0][0], seg
        pos = self._max
        avail = max(0, self._data_end - pos)
        n = max(0, min(avail, self.send_mss, self._snd_wnd - (pos - self._una)))
        if 0 < n < min(avail, self.send_mss):
            n = 0  # RFC 9293 §3.8.6.2.1: no runts while data is outstanding
        fin = self._fin_queued and pos + n == self._fin_pos and pos <= self._fin_pos
        if n or fin:
            return pos, self._data_segment(pos, n, fin, psh=pos + n >= self._data_end)
        highest = board.highest()
        if holes and highest is not None and holes[0][0] < highest:
            seg = self._segment_at(holes[0][0])
            if seg is not None:
                return holes[0][0], seg
        return None

    def _transmit(self, seg: Segment, pos: int, now: float, out: list[Segment]) -> None:
        end = pos + seg.seg_len
        if pos < self._max:
            self.retransmits += 1
            self._rtt_pos = None
            self._events.append(Retransmission(now, seg, "rto"))
        else:
            self._arm_pto = True
            if self._rtt_pos is None:
                # RFC 6298 §3: time one fresh segment per round trip.
                self._rtt_pos = pos
                self._rtt_time = now
        self._nxt = end
        self._max = max(self._max, end)
        out.append(seg)

    # ------------------------------------------------------------------ segment arrival (RFC 9293 §3.10.7)
    def receive(self, seg: Segment, now: float) -> None:
        """Process one arriving segment. Never raises for any segment."""
        if seg.dport != self.local_port:
            return
        state = self._state
        if state is S.CLOSED:
            self._receive_closed(seg)
            return
        if self._remote_port and seg.sport != self._remote_port:
            return
        self._seg_ts = seg.timestamp if self._ts_ok else None
        if state is S.LISTEN:
            self._receive_listen(seg, now)
        elif state is S.SYN_SENT:
            self._receive_syn_sent(seg, now)
        else:
            self._receive_other(seg, now)
        self._rearm(now)

    def _paws_rejects(self, seg: Segment, now: float) -> bool:
        """RFC 7323 §3.2 and §5.3 R1, before the window check (Appendix D): once timestamps are in use a
        non-RST segment without TSopt is dropped, and one whose TSval is older than TS.Recent is not
        acceptable, unless TS.Recent has been idle for over 24 days (§5.5)."""
        if not self._ts_ok or seg.has(Flags.RST):
            return False
        ts = self._seg_ts
        if ts is None:
            return True
        if sq.lt(ts[0], self._ts_recent):
            if now - self._ts_recent_time > PAWS_IDLE:
                self._ts_recent, self._ts_recent_time = ts[0], now
                return False
            return True
        return False

    def _update_ts_recent(self, seg: Segment, now: float) -> None:
        """RFC 7323 §4.3 (2), after the window check (Appendix D): TS.Recent takes SEG.TSval when
        SEG.SEQ <= Last.ACK.sent, so a delayed ACK echoes the earliest segment it covers."""
        ts = self._seg_ts
        if ts is None or seg.has(Flags.RST):
            return
        seq_pos = self._rcv_pos + sq.diff(seg.seq, self.rcv_nxt)
        if seq_pos <= self._last_ack_sent and sq.le(self._ts_recent, ts[0]):
            self._ts_recent, self._ts_recent_time = ts[0], now

    def _with_options(self, seg: Segment, now: float) -> Segment:
        """Options added as the segment leaves: TSopt (RFC 7323 §3.2) on our SYN when offering and on
        everything once both SYNs had it, never on RST, TSval a 1 ms clock from the caller's time (§5.4);
        SACK blocks (RFC 2018 §4) on ACKs while data is held out of order or a D-SACK is due. Laid out
        as Linux lays them out: ``mss,sackOK,TS,nop,wscale`` in a SYN, ``nop,nop,TS,nop,nop,sack``."""
        if seg.has(Flags.RST):
            return seg
        options = list(seg.options)
        syn = seg.has(Flags.SYN)
        syn_only = syn and not seg.has(Flags.ACK)
        room = 40  # RFC 9293 §3.1: a data offset of 15 words leaves 40 bytes of options
        if self._ts_ok or (syn_only and self._cfg.timestamps):
            ts: Option = ("Timestamp", (_ts_clock(now), 0 if syn_only else self._ts_recent))
            if syn and ("SAckOK", b"") in options:
                options.insert(options.index(("SAckOK", b"")) + 1, ts)
            elif syn:
                options[1:1] = [("NOP", None), ("NOP", None), ts]
            else:
                options[0:0] = [("NOP", None), ("NOP", None), ts]
            room -= TSOPT_LEN
        if self._sack_ok and not syn and seg.has(Flags.ACK) and not seg.options:
            limit = self._sack_limit()
            if seg.payload:
                # a data segment keeps within the MSS (RFC 6691): only the blocks that still fit
                spare = min(self._peer_mss, self._cfg.mss) - len(seg.payload) - (40 - room)
                limit = min(limit, max(0, (spare - 4) // 8))
            options += self._sack_option(limit)
        if len(options) == len(seg.options):
            return seg
        return Segment(seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window, tuple(options),
                       seg.payload, seg.urgent)

    def _rst_for(self, seg: Segment) -> Segment:
        """A reset answering ``seg`` (RFC 9293 §3.10.7.1, also used by §3.10.7.2-4)."""
        if seg.has(Flags.ACK):
            return Segment(seg.dport, seg.sport, seg.ack, 0, Flags.RST)
        return Segment(seg.dport, seg.sport, 0, sq.add(seg.seq, seg.seg_len), Flags.RST | Flags.ACK)

    def _receive_closed(self, seg: Segment) -> None:
        # RFC 9293 §3.10.7.1: an incoming RST is discarded; anything else is answered with a RST.
        if not seg.has(Flags.RST):
            self._ctl_out.append(self._rst_for(seg))

    def _read_syn_options(self, seg: Segment) -> None:
        mss = seg.mss
        # RFC 9293 §3.7.1: without the option assume 536; ignore nonsense values, clamp tiny ones.
        self._peer_mss = max(mss, MIN_SND_MSS) if mss is not None and mss > 0 else DEFAULT_PEER_MSS
        ts = seg.timestamp
        # RFC 7323 §3.2: timestamps are used only if both SYNs carried TSopt.
        self._ts_ok = bool(self._cfg.timestamps and ts is not None)
        if ts is not None and self._ts_ok:
            self._ts_recent = ts[0]
            # the SYN-ACK's echo times our SYN (RFC 7323 §4.1), Karn permitting below
            self._seg_ts = ts
        ws = seg.wscale
        self._peer_wscale = None if ws is None else min(ws, MAX_WSCALE)
        self._sack_ok = self._cfg.sack and seg.sack_permitted
        if self._peer_wscale is not None and self._cfg.wscale is not None:
            # RFC 7323 §2.2: scaling only when both SYNs carried WScale.
            self._snd_wscale = self._peer_wscale
            self._rcv_wscale = min(max(self._cfg.wscale, 0), MAX_WSCALE)
        else:
            self._snd_wscale = self._rcv_wscale = 0

    def _receive_listen(self, seg: Segment, now: float) -> None:
        # RFC 9293 §3.10.7.2, first: an RST to a listener is ignored.
        if seg.has(Flags.RST):
            return
        # second: any ACK is bad here: <SEQ=SEG.ACK><CTL=RST>.
        if seg.has(Flags.ACK):
            self._ctl_out.append(self._rst_for(seg))
            return
        # third: a SYN opens the connection; the SYN-ACK goes out with the next segments_to_send.
        if seg.has(Flags.SYN):
            self._remote_port = seg.sport
            self._irs = seg.seq
            self._rcv_pos = 1
            self._read_syn_options(seg)
            self._snd_wnd = seg.window          # RFC 7323 §2.2: never scaled in a SYN
            self._max_snd_wnd = seg.window
            self._wl1, self._wl2 = seg.seq, 0
            # Data or FIN on the SYN is not accepted (Linux without TFO does the same); the peer resends.
            self._set_state(Cause.RCV_SYN, now)
        # fourth: anything else is dropped.

    def _receive_syn_sent(self, seg: Segment, now: float) -> None:
        # RFC 9293 §3.10.7.3 first: check the ACK.
        ack_ok = False
        if seg.has(Flags.ACK):
            ack_pos = self._una + sq.diff(seg.ack, self.snd_una)
            if not 0 < ack_pos <= self._max:
                if not seg.has(Flags.RST):
                    self._ctl_out.append(self._rst_for(seg))
                return
            ack_ok = True
        # second: RST. Acceptable only with an acceptable ACK: the peer refused us.
        if seg.has(Flags.RST):
            if ack_ok:
                self._events.append(ConnectionRefused(now))
                self._set_state(Cause.RCV_RST, now)
            return
        # fourth: SYN.
        if not seg.has(Flags.SYN):
            return
        self._irs = seg.seq
        self._rcv_pos = 1
        self._read_syn_options(seg)
        self._snd_wnd = seg.window
        self._max_snd_wnd = seg.window
        self._wl1, self._wl2 = seg.seq, seg.ack
        if ack_ok:
            self._last_heard = now
            self._ack_advance(self._una + sq.diff(seg.ack, self.snd_una), now)
            self._ack_now = True
            self._set_state(Cause.RCV_SYN_ACK, now)
            # "If there are other controls or text in the segment, continue processing at the sixth step."
            self._text_and_fin(seg, now)
        else:
            # Simultaneous open: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, enter SYN-RECEIVED.
            self._resend_syn = True
            self._set_state(Cause.RCV_SYN, now)

    def _acceptable(self, seg: Segment, wnd: int) -> bool:
        """RFC 9293 §3.10.7.4 first: the four-case sequence number test."""
        rcv_nxt = self.rcv_nxt
        length = seg.seg_len
        if seg.seq == rcv_nxt and wnd == 0:
            # RFC 9293 §3.10.7.4: with a zero window, still accept valid ACKs, URGs and RSTs (the text
            # is trimmed away below; a bare FIN is kept, as Linux does).
            return True
        if length == 0:
            return sq.in_window(seg.seq, rcv_nxt, wnd)
        if wnd == 0:
            return False
        return sq.in_window(seg.seq, rcv_nxt, wnd) or sq.in_window(sq.add(seg.seq, length - 1), rcv_nxt, wnd)

    def _receive_other(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4: SYN-RECEIVED and the synchronized states."""
        state = self._state
        shift = self._snd_wscale
        if seg.has(Flags.SYN) and self._una == 0 and seg.seq == self._irs:
            if not seg.has(Flags.ACK):
                # A retransmission of the SYN we answered: our SYN-ACK was lost, resend it now (Linux
                # does; by the letter of step one it would only get an ACK).
                self._resend_syn = True
                return
            # The peer's SYN-ACK in a simultaneous open (RFC 9293 Figure 8, line 6): its SYN is the one
            # we already hold, so process the rest of it as an ACK (Linux does the same). Its window is
            # a SYN's, never scaled (RFC 7323 §2.2).
            shift = 0
            seg = Segment(seg.sport, seg.dport, sq.add(seg.seq, 1), seg.ack, seg.flags & ~Flags.SYN,
                          seg.window, seg.options, seg.payload, seg.urgent)

        # first: sequence number check, PAWS ahead of the window test (RFC 7323 Appendix D).
        if self._paws_rejects(seg, now):
            if self._seg_ts is not None:
                # §5.3 R1: ACK the old duplicate; a segment lacking TSopt is just dropped (§3.2)
                self._owe_challenge_ack(seg, now)
            return
        wnd = self.rcv_wnd
        if not self._acceptable(seg, wnd):
            if seg.has(Flags.RST):
                return
            old = self._rcv_pos + sq.diff(seg.seq, self.rcv_nxt)
            if self._sack_ok and seg.payload and old + len(seg.payload) <= self._rcv_pos:
                self._sack_report.note_duplicate(old, old + len(seg.payload))  # RFC 2883 §4
            if (state is S.TIME_WAIT and seg.has(Flags.FIN)
                    and sq.add(seg.seq, len(seg.payload)) == sq.add(self.rcv_nxt, -1)):
                # The peer retransmitted its FIN: our last ACK was lost. Re-ACK and restart 2MSL
                # (RFC 9293 §3.10.7.4 eighth, TIME-WAIT).
                self._timer = Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2)
            self._owe_challenge_ack(seg, now)
            return
        self._update_ts_recent(seg, now)

        # second: RST (RFC 5961 §3.2: reset only when SEG.SEQ == RCV.NXT, else a challenge ACK).
        if seg.has(Flags.RST):
            if seg.seq != self.rcv_nxt:
                self._owe_challenge_ack(seg, now)
                return
            if state is S.SYN_RECEIVED and self._passive:
                self._back_to_listen(Cause.RCV_RST_PASSIVE, now)
            elif self._una == 0 and not self._passive:
                self._events.append(ConnectionRefused(now))
                self._set_state(Cause.RCV_RST, now)
            else:
                self._events.append(ConnectionReset(now))
                self._set_state(Cause.RCV_RST, now)
            return

        # fourth: SYN (RFC 5961 §4.2: challenge ACK; a passive SYN-RECEIVED goes back to LISTEN).
        if seg.has(Flags.SYN):
            if state is S.SYN_RECEIVED and self._passive:
                self._back_to_listen(Cause.RCV_SYN_PASSIVE, now)
            else:
                self._owe_challenge_ack(seg, now)
            return

        # fifth: ACK.
        if not seg.has(Flags.ACK):
            return
        ack_pos = self._una + sq.diff(seg.ack, self.snd_una)
        if self._una == 0:
            # SYN-RECEIVED (or FIN-WAIT-1 reached from it): the ACK must cover our SYN.
            if not 0 < ack_pos <= self._max:
                self._ctl_out.append(self._rst_for(seg))
                return
            self._snd_wnd = seg.window << shift
            self._max_snd_wnd = max(self._max_snd_wnd, self._snd_wnd)
            self._wl1, self._wl2 = seg.seq, seg.ack
            if self._snd_wnd:
                self._probes = 0
        if ack_pos > self._max:
            # RFC 9293: acknowledges something not yet sent -> ACK, drop.
            self._owe_challenge_ack(seg, now)
            return
        if ack_pos < self._una - self._max_snd_wnd:
            # RFC 5961 §5.2: far too old to be real -> ACK, drop.
            self._owe_challenge_ack(seg, now)
            return
        self._process_ack(seg, ack_pos, now, shift)
        if state is S.SYN_RECEIVED and self._una >= 1:
            self._set_state(Cause.RCV_ACK_OF_SYN, now)
        if self._fin_queued and self._una > self._fin_pos and defined(self._state, Cause.RCV_ACK_OF_FIN):
            # FIN-WAIT-1, CLOSING and LAST-ACK move on; FIN-WAIT-2 and TIME-WAIT already did.
            self._set_state(Cause.RCV_ACK_OF_FIN, now)
            if self._state is S.CLOSED:
                return

        # sixth: URG is not supported (RFC 9293 §3.8.5 lets it be ignored by applications that don't use it).
        # seventh and eighth: text and FIN.
        self._text_and_fin(seg, now)

    def _back_to_listen(self, cause: Cause, now: float) -> None:
        self._reset_connection()
        # The next SYN starts a new connection: a new ISS from the ISN clock, which keeps running from
        # the injected ISN (RFC 9293 §3.4.1), and the initial RTO (RFC 6298 §2.1).
        ticks = max(1, int((now - self._iss_time) * ISN_CLOCK_HZ))
        self._iss = sq.add(self._iss, ticks)
        self._iss_time = now
        self._rto = RtoEstimator(self._cfg.rto_initial, self._cfg.rto_min, self._cfg.rto_max)
        self._remote_port = self._cfg.remote_port
        self._timer = None
        self._set_state(cause, now)

    def _process_ack(self, seg: Segment, ack_pos: int, now: float, shift: int) -> None:
        """RFC 9293 §3.10.7.4 fifth (ESTABLISHED rules), with RFC 5681/6582 dupack handling. ``shift``
        scales the window field: SND.WIND.SCALE, or 0 for a SYN-ACK (RFC 7323 §2.2)."""
        self._unanswered = 0  # the peer answers: the persist timer's give-up count restarts
        self._last_heard = now
        self._ka_probes = 0
        old_wnd = self._snd_wnd
        newly_sacked = self._note_sack(seg, ack_pos, now) if self._sack_ok else 0
        if ack_pos > self._una:
            self._ack_advance(ack_pos, now)
            self._arm_pto = True
        elif self._sack_ok:
            if (ack_pos == self._una and self._max > self._una and not seg.payload
                    and not seg.has(Flags.SYN | Flags.FIN) and newly_sacked):
                # RFC 6675 §2: a duplicate acknowledgment is one that SACKs new data.
                self._dupacks += 1
        elif (ack_pos == self._una and self._max > self._una and not seg.payload
              and not seg.has(Flags.SYN | Flags.FIN) and (seg.window << shift) == old_wnd):
            # RFC 5681 §2: a duplicate acknowledgment.
            self._on_dupack(now)
        if self._sack_ok:
            self._on_tlp_ack(seg, ack_pos)
        if newly_sacked:
            self._maybe_enter_sack_recovery(now)
        # Window update (RFC 9293 §3.10.7.4: only from a segment newer than the last update).
        if ack_pos >= self._una and (sq.lt(self._wl1, seg.seq)
                                     or (self._wl1 == seg.seq and sq.le(self._wl2, seg.ack))):
            self._snd_wnd = seg.window << shift
            self._max_snd_wnd = max(self._max_snd_wnd, self._snd_wnd)
            self._wl1, self._wl2 = seg.seq, seg.ack
            if self._snd_wnd:
                self._probes = 0

    def _ack_advance(self, ack_pos: int, now: float) -> None:
        old_una = self._una
        acked = ack_pos - old_una
        mss = self.send_mss
        self._una = ack_pos
        self._nxt = max(self._nxt, ack_pos)
        drop = min(ack_pos, self._data_end) - self._buf_pos
        if drop > 0:
            del self._sndbuf[:drop]
            self._buf_pos += drop
        self._retries = 0
        echo = self._ts_rtt(now)
        if echo is not None:
            # RFC 7323 §4.1 (RTTM): the echoed TSval names the transmission this ACK answers, so every
            # ACK of new data is a sample, retransmissions included (the hole-filling segment's TSval is
            # echoed, §4.3 (3)); a sample collapses any backoff (RFC 6298 §5).
            self._rto.sample(echo)
            self._rtt_pos = None
        elif self._rtt_pos is not None and ack_pos > self._rtt_pos:
            self._rto.sample(now - self._rtt_time)
            self._rtt_pos = None
        self._dupacks = 0
        if self._sack_ok:
            self._scoreboard.advance(ack_pos)
            self._high_rxt = max(self._high_rxt, ack_pos)
        if old_una == 0:
            self._on_established()
        elif self._in_recovery and self._sack_ok:
            # RFC 6675 §5 (A): an ACK covering RecoveryPoint ends loss recovery (cwnd stays ssthresh);
            # a partial one only updates the scoreboard, and _fill sends what pipe allows (C).
            if ack_pos >= self._recover:
                self._in_recovery = False
        elif self._in_recovery:
            if ack_pos >= self._recover:
                # RFC 6582 §3.2 step 3, full acknowledgment, option (1): deflate to
                # min(ssthresh, max(FlightSize, SMSS) + SMSS), which avoids a burst, and leave recovery.
                self._cwnd = min(self._ssthresh, max(self.in_flight, mss) + mss)
                self._in_recovery = False
            else:
                # RFC 6582 §3.2 step 3, partial acknowledgment: resend the next hole, deflate.
                self._emit_retransmission(self._head_segment(), now, "fast")
                self._cwnd = max(self._cwnd - acked + (mss if acked >= mss else 0), mss)
        else:
            if self._cwnd < self._ssthresh:
                # RFC 5681 §3.1 slow start (RFC 3465 L=1: at most one SMSS per ACK).
                self._cwnd += min(acked, mss)
            else:
                # RFC 5681 §3.1 congestion avoidance, eq. (3).
                self._cwnd += max(1, mss * mss // max(self._cwnd, 1))
        # RFC 6298 §5.2/§5.3: stop the timer when all is acknowledged, else restart it.
        if self._max > self._una:
            # The RTO stays backed off until a new RTT sample collapses it (RFC 6298 §5, Karn).
            self._timer = Timer(TimerKind.RETRANSMIT, now + self._rto.rto)
            self._head_since = now
        elif self._timer is not None and self._timer.kind is TimerKind.RETRANSMIT:
            self._timer = None

    def _ts_rtt(self, now: float) -> float | None:
        """RTT from the TSecr of the segment being processed, in seconds, if it echoes one of ours."""
        ts = self._seg_ts
        if ts is None or ts[1] == 0:  # 0: no echo (as Linux reads it; our clock is 0 only at t=0)
            return None
        ms = sq.sub(_ts_clock(now), ts[1])
        return ms / 1000 if ms < sq.HALF else None

    @property
    def _dupthresh(self) -> int:
        """DupThresh, lowered by RFC 5827's early retransmit: with fewer than four segments outstanding
        and no new segment allowed out, one less than the segments outstanding (at least one), since
        three duplicates can never come and only the timer would be left."""
        thresh = max(1, self._cfg.dupack_threshold)
        oseg = -(-(self._max - self._una) // self.send_mss)
        can_send_new = self._data_end > self._max and self._una + self._snd_wnd > self._max
        if oseg < 4 and not can_send_new:
            thresh = min(thresh, max(1, oseg - 1))
        return thresh

    def _note_sack(self, seg: Segment, ack_pos: int, now: float) -> int:
        """Record the SACK blocks of an acceptable ACK on the scoreboard (RFC 6675 §5 (A)/(C) "update
        the scoreboard"); returns the number of newly SACKed bytes. A block below SND.UNA is a D-SACK
        (RFC 2883) and adds nothing."""
        base = max(self._una, ack_pos)
        ranges = []
        for left, right in seg.sack_blocks:
            start = self._una + sq.diff(left, self.snd_una)
            end = start + sq.sub(right, left)
            ranges.append((start, end))
        new = self._scoreboard.update(base, self._max, ranges)
        if self._rtt_pos is not None and any(a <= self._rtt_pos < b for a, b in new):
            # The timed segment, sent once, reached the peer (Linux samples SACKed segments too).
            if self._seg_ts is None:
                self._rto.sample(now - self._rtt_time)
            self._rtt_pos = None
        return sum(b - a for a, b in new)

    def _maybe_enter_sack_recovery(self, now: float) -> None:
        """RFC 6675 §5 (4): enter loss recovery once DupThresh duplicates came or IsLost(HighACK + 1),
        and not inside the last recovery. Checked on every ACK with new SACK information, as Linux
        does, since the ACK that advances SND.UNA may be the one that reveals the loss."""
        mss = self.send_mss
        if self._in_recovery or self._una <= self._recover or self._max <= self._una:
            return
        edge = self._scoreboard.lost_edge(self._dupthresh, mss)
        if self._dupacks < self._dupthresh and (edge is None or edge <= self._una):
            return
        # (4.1)-(4.2): RecoveryPoint = HighData; ssthresh = cwnd = FlightSize / 2 (RFC 5681 eq. (4)).
        self._recover = self._max
        self._ssthresh = max((self.in_flight - self._scoreboard.sacked) // 2, 2 * mss)
        self._cwnd = self._ssthresh
        self._in_recovery = True
        # (4.3): retransmit the first segment at once; HighRxt is its end. (4.5): _fill sends the rest.
        seg = self._segment_at(self._una)
        if seg is not None:
            self._high_rxt = self._una + seg.seg_len
            self._emit_retransmission(seg, now, "sack")

    def _segment_at(self, pos: int) -> Segment | None:
        """A retransmission starting at ``pos`` (already sent), up to SMSS and stopping at a SACKed block."""
        sent_data_end = min(self._max, self._data_end)
        limit = self._scoreboard.next_sacked(pos + 1) if self._sack_ok else None
        n = max(0, min(self.send_mss, sent_data_end - pos, (limit - pos) if limit is not None else 1 << 62))
        fin = self._fin_queued and pos + n == self._fin_pos and self._max > self._fin_pos
        if n == 0 and not fin:
            return None
        return self._data_segment(pos, n, fin, psh=pos + n == sent_data_end)

    def _on_dupack(self, now: float) -> None:
        self._dupacks += 1
        threshold = self._dupthresh
        mss = self.send_mss
        if self._dupacks >= threshold and not self._in_recovery and self._una > self._recover:
            # RFC 5681 §3.2 steps 2-4 with RFC 6582's recover guard: fast retransmit, enter recovery.
            self._ssthresh = max(self.in_flight // 2, 2 * mss)
            self._recover = self._max
            self._in_recovery = True
            self._emit_retransmission(self._head_segment(), now, "fast")
            self._cwnd = self._ssthresh + threshold * mss
        elif self._dupacks > threshold and self._in_recovery:
            # RFC 5681 §3.2 step 5: inflate by one segment per further duplicate.
            self._cwnd += mss

    def _text_and_fin(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4 seventh (segment text) and eighth (FIN), after trimming to the window."""
        start = self._rcv_pos + sq.diff(seg.seq, self.rcv_nxt)
        if seg.has(Flags.SYN):
            start += 1
        data = seg.payload
        fin = seg.has(Flags.FIN)
        fin_pos = start + len(data)
        # Trim what we already have (left edge).
        if start < self._rcv_pos:
            cut = min(self._rcv_pos - start, len(data))
            if cut:
                # a (partial) duplicate: the peer retransmitted, so tell it at once
                self._ack_now = True
                if self._sack_ok:
                    self._sack_report.note_duplicate(start, start + cut)  # RFC 2883 §4
            data = data[cut:]
            start += cut
            if fin_pos < self._rcv_pos:
                fin = False
        # Trim what lies beyond the window (right edge); a FIN behind trimmed data goes with it.
        right = self._rcv_pos + self.rcv_wnd
        if start + len(data) > right:
            data = data[:max(0, right - start)]
            fin = False
            self._ack_now = True
        if self._state not in _RECEIVING:
            # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer's FIN is already in; ignore text.
            if fin and self._state is S.TIME_WAIT:
                self._timer = Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2)
                self._ack_now = True
            return
        if data:
            if start == self._rcv_pos:
                fills_hole = len(self._ooo) > 0
                self._deliver(data, now)
                self._schedule_ack(len(data), now, immediate=fills_hole)
            elif start > self._rcv_pos:
                # Out of order: hold it and send a duplicate ACK at once (RFC 5681 §4.2) so the
                # peer's fast retransmit can work; with SACK it names the block (RFC 2018 §4).
                if self._sack_ok:
                    dup = self._ooo.overlap(start, start + len(data))
                    if dup is not None:
                        self._sack_report.note_duplicate(*dup)  # RFC 2883 §4
                    self._sack_report.note(start)
                self._ooo.add(start, data)
                self._owe_ack()
        if fin:
            fin_pos = start + len(data)
            if fin_pos == self._rcv_pos:
                self._receive_fin(now)
            elif fin_pos > self._rcv_pos:
                self._rcv_fin_pos = fin_pos
                if not data:
                    self._owe_ack()
        if self._rcv_fin_pos is not None and self._rcv_fin_pos == self._rcv_pos and not self._peer_fin:
            # A FIN that arrived out of order is now in order.
            self._receive_fin(now)

    def _schedule_ack(self, nbytes: int, now: float, immediate: bool) -> None:
        """In-order data arrived. Without delayed ACKs (like TCP_QUICKACK) ACK it now; with them
        (RFC 9293 §3.8.6.3, RFC 5681 §4.2) ACK at once when more than one full-sized segment is
        unacknowledged (so every second one) or the segment filled a hole, else within ack_delay."""
        self._rcv_mss = min(max(self._rcv_mss, nbytes), self._cfg.mss)  # Linux's rcv_mss estimate
        self._unacked_rcv += nbytes
        if not self._cfg.delayed_ack or immediate or self._unacked_rcv > self._rcv_mss:
            self._ack_now = True
        elif self._ack_deadline is None:
            self._ack_deadline = now + self._cfg.ack_delay

    def _deliver(self, data: bytes, now: float) -> None:
        self._rcvbuf += data
        self._rcv_pos += len(data)
        # Out-of-order data that now continues the stream (no byte delivered twice: the queue trims).
        more = self._ooo.pop(self._rcv_pos)
        if self._rcv_fin_pos is not None and more:
            more = more[:max(0, self._rcv_fin_pos - self._rcv_pos)]
        self._rcvbuf += more
        self._rcv_pos += len(more)
        self._events.append(DataReceived(now, len(data) + len(more)))

    def _receive_fin(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 eighth: the FIN is in order."""
        self._rcv_pos += 1
        self._rcv_fin_pos = None
        self._peer_fin = True
        self._ooo.clear()
        self._ack_now = True
        self._events.append(PeerClosed(now))
        # ESTABLISHED -> CLOSE-WAIT, FIN-WAIT-2 -> TIME-WAIT; FIN-WAIT-1 -> CLOSING: our FIN is not
        # acknowledged yet, else step five moved us to FIN-WAIT-2 (simultaneous close).
        self._set_state(Cause.RCV_FIN, now)
