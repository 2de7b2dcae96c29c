"""One TCP connection as a sans-IO state machine (RFC 9293), with RFC 6298 timers, RFC 5681/6582
congestion control (with SACK, core/recovery.py's RACK-TLP and PRR), RFC 5961 RST/SYN/ACK hardening and
RFC 7323 window scaling and timestamps.

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
from rawtcp.core.recovery import CaState, SackRecovery, Sent
from rawtcp.core.rto import (
    CLOCK_GRANULARITY,
    RTO_INITIAL,
    RTO_MAX,
    RTO_MIN_LINUX,
    RtoEstimator,
    Timer,
    TimerKind,
)
from rawtcp.core.sack import MAX_BLOCKS, MAX_BLOCKS_WITH_TS
from rawtcp.core.segment import Flags, Option, Segment
from rawtcp.core.state import State
from rawtcp.core.tcb import (
    DEFAULT_PEER_MSS,
    AckState,
    Congestion,
    LossProbe,
    Negotiated,
    ReceiveQueue,
    ReceiveSequence,
    Rtt,
    SendQueue,
    SendSequence,
    Timers,
)
from rawtcp.core.transitions import Cause, defined, next_state

S = State

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
# Linux's delayed-ACK engine (tcp_event_data_recv, tcp_send_delayed_ack): the ACK timeout (ATO) adapts
# to how fast data arrives, from TCP_ATO_MIN up to the RTT, never over ack_delay; and "quick ACK" mode
# ACKs every segment, up to TCP_MAX_QUICKACKS of them, at the start, after an idle gap longer than the
# RTO and after a duplicate segment (the peer is recovering: its window needs every ACK).
ATO_MIN = 0.04
MAX_QUICKACKS = 16
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
# Linux's PAWS window (TCP_PAWS_WINDOW): a TSval this many ticks older than TS.Recent still passes.
PAWS_TICKS_FORGIVEN = 1
# RFC 7323 §3.2: TSopt is 10 bytes, sent after two NOPs so it stays 4-byte aligned.
TSOPT_LEN = 12


def _ts_clock(now: float) -> int:
    """TSval: milliseconds of the caller's clock, modulo 2**32 (RFC 7323 §5.4: 1 ms to 1 s per tick)."""
    return int(now * 1000) % (1 << 32)


# States in which the peer may still send us data (its FIN not yet received).
_RECEIVING = (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2)
# States in which our data/FIN may be (re)transmitted once our SYN is acknowledged.
_SENDING = (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK)
# Flag combinations made once: IntFlag's | is a Python-level call that looks the result up each time.
_SYN_ACK = Flags.SYN | Flags.ACK
_RST_ACK = Flags.RST | Flags.ACK
_SYN_FIN = Flags.SYN | Flags.FIN
# a data segment's flags, indexed by fin + 2 * psh
_DATA_FLAGS = (Flags.ACK, Flags.ACK | Flags.FIN, Flags.ACK | Flags.PSH, Flags.ACK | Flags.PSH | Flags.FIN)


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
        problem = self._problem()
        if problem is not None:
            raise TcpError(problem)

    def _problem(self) -> str | None:
        """The first setting out of range, in words; None when all are valid. Messages are built only for
        a bad setting: a configuration is made per connection, and validation is on that path."""
        if not 0 < self.local_port < 65536:
            return f"local port {self.local_port} outside 1-65535"
        if not 0 <= self.remote_port < 65536:
            return f"remote port {self.remote_port} outside 0-65535"
        if not 0 < self.mss < 65536:
            return f"MSS {self.mss} outside 1-65535"
        if self.window is not None and self.window < 0:
            return f"window {self.window} is negative"
        if self.wscale is not None and not 0 <= self.wscale <= MAX_WSCALE:
            return f"window scale {self.wscale} outside 0-{MAX_WSCALE} (RFC 7323 §2.3)"
        if self.recv_buffer < 0 or self.send_buffer < 0:
            return "buffer sizes must not be negative"
        if not 0 < self.rto_min <= self.rto_max:
            return f"need 0 < rto_min <= rto_max, got {self.rto_min}, {self.rto_max}"
        if self.rto_initial <= 0:
            return f"rto_initial {self.rto_initial} must be positive"
        if self.max_retries < 0:
            return f"max_retries {self.max_retries} is negative"
        if self.msl2 < 0:
            return f"msl2 {self.msl2} is negative"
        if self.dupack_threshold < 1:
            return f"dupack_threshold {self.dupack_threshold} must be at least 1"
        if not 0 < self.ack_delay < ACK_DELAY_MAX:
            return f"ack_delay {self.ack_delay} outside (0, 500 ms) (RFC 9293 §3.8.6.3)"
        if self.keepalive is not None and self.keepalive <= 0:
            return f"keepalive {self.keepalive} must be positive"
        if self.keepalive_interval <= 0 or self.keepalive_probes < 1:
            return "keepalive_interval must be positive and keepalive_probes at least 1"
        if self.challenge_ack_interval is not None and self.challenge_ack_interval < 0:
            return f"challenge_ack_interval {self.challenge_ack_interval} is negative"
        return None

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
    """One connection. See the module docstring; every state change goes through ``_set_state``.

    The TCB is grouped as RFC 9293 §3.3.1 and the RFCs after it name its parts (see ``core/tcb.py``):
    ``snd`` (SND.UNA, SND.NXT …), ``sndq``, ``rcv`` (RCV.NXT, IRS, TS.Recent …), ``rcvq``, ``opts``,
    ``cc``, ``tlp``, ``rtt``, ``timers`` and ``acks``. They hold positions, not wire numbers; callers
    read the properties below.
    """

    def __init__(self, config: EndpointConfig) -> None:
        self._cfg = config
        self._state = S.CLOSED
        self._used = False
        self._passive = False
        self.trace: list[StateChanged] = []
        self._events: deque[Event] = deque()
        self.retransmits = 0
        self._reset_connection(config.isn % sq.MOD, 0.0)

    # ------------------------------------------------------------------ per-connection variables
    def _reset_connection(self, iss: int, iss_time: float) -> None:
        """Fresh TCB contents (also used when SYN-RECEIVED falls back to LISTEN, RFC 9293 §3.10.7.4)."""
        cfg = self._cfg
        self._remote_port = cfg.remote_port
        self.snd = SendSequence(iss, iss_time)
        self.sndq = SendQueue()
        self.rcv = ReceiveSequence(mss=min(cfg.mss, DEFAULT_PEER_MSS))
        self.rcvq = ReceiveQueue()
        self.opts = Negotiated()
        self.cc = Congestion()
        self.rx: SackRecovery | None = None  # the SACK sender's recovery, once both SYNs had SACK-permitted
        self.tlp = LossProbe()
        # RFC 6298 §2.1: every connection starts from the initial RTO
        self.rtt = Rtt(RtoEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max))
        self.timers = Timers()
        self.acks = AckState()
        self._seg_ts: tuple[int, int] | None = None  # TSopt of the segment being processed
        self._resend_syn = False         # our SYN(-ACK) is owed again (simultaneous open, duplicate SYN)
        self._sws_override = False       # the persist timer fired on a small window: send a runt once
        self._ctl_out: list[Segment] = []  # RSTs, retransmissions and probes, ahead of new data

    def _set_timer(self, timer: Timer | None) -> None:
        """Start (or with None stop) the one tagged timer: retransmit, probe, persist, keep-alive or
        time-wait. The only place it is written."""
        self.timers.pending = timer

    # ------------------------------------------------------------------ read-only properties
    @property
    def state(self) -> State:
        return self._state

    @property
    def config(self) -> EndpointConfig:
        return self._cfg

    @property
    def iss(self) -> int:
        return self.snd.iss

    @property
    def irs(self) -> int | None:
        """The peer's ISN, None until its SYN arrived."""
        return self.rcv.irs

    @property
    def snd_una(self) -> int:
        return sq.add(self.snd.iss, self.snd.una)

    @property
    def snd_nxt(self) -> int:
        """RFC 9293 SND.NXT: the next new sequence number (retransmissions don't move it back)."""
        return sq.add(self.snd.iss, self.snd.nxt)

    @property
    def snd_wnd(self) -> int:
        """The peer's receive window in bytes (scaled)."""
        return self.snd.wnd

    @property
    def rcv_nxt(self) -> int:
        return 0 if self.rcv.irs is None else sq.add(self.rcv.irs, self.rcv.nxt)

    @property
    def rcv_wnd(self) -> int:
        """What we advertise, in bytes: the override, or honestly the free receive buffer space."""
        if self._cfg.window is not None:
            return max(0, self._cfg.window)
        free = max(0, self._cfg.recv_buffer - len(self.rcvq.buf))
        return min(free, MAX_WINDOW_FIELD << self.rcv.wscale)

    @property
    def sack_ok(self) -> bool:
        """Both SYNs carried SACK-permitted (RFC 2018 §2)."""
        return self.opts.sack

    @property
    def ts_ok(self) -> bool:
        """Both SYNs carried TSopt (RFC 7323 §3.2)."""
        return self.opts.ts

    @property
    def peer_mss(self) -> int:
        return self.opts.peer_mss

    @property
    def send_mss(self) -> int:
        # RFC 6691: the MSS counts no TCP options, so TSopt's 12 bytes (with NOPs) come off the payload.
        return max(1, min(self.opts.peer_mss, self._cfg.mss) - (TSOPT_LEN if self.opts.ts else 0))

    @property
    def local_port(self) -> int:
        return self._cfg.local_port

    @property
    def remote_port(self) -> int:
        return self._remote_port

    @property
    def readable(self) -> int:
        return len(self.rcvq.buf)

    @property
    def unsent(self) -> int:
        return max(0, self.sndq.data_end - max(self.snd.nxt, 1))

    @property
    def in_flight(self) -> int:
        """Sequence space sent and not yet acknowledged (SYN and FIN count one each)."""
        return self.snd.nxt - self.snd.una

    @property
    def peer_fin(self) -> bool:
        return self.rcvq.fin

    @property
    def rto(self) -> float:
        return self.rtt.estimator.rto

    @property
    def srtt(self) -> float | None:
        return self.rtt.estimator.srtt

    @property
    def cwnd(self) -> int:
        return self.rx.cwnd if self.rx is not None else self.cc.cwnd

    @property
    def ssthresh(self) -> int:
        return self.rx.ssthresh if self.rx is not None else self.cc.ssthresh

    @property
    def in_recovery(self) -> bool:
        """Repairing a loss: fast recovery, or (with SACK) recovery or timeout recovery."""
        return self.rx.state is not CaState.OPEN if self.rx is not None else self.cc.in_recovery

    @property
    def snd_wscale(self) -> int:
        """Shift applied to the peer's window field (0 unless both SYNs carried WScale)."""
        return self.snd.wscale

    @property
    def rcv_wscale(self) -> int:
        """Shift applied to our window field (0 unless both SYNs carried WScale)."""
        return self.rcv.wscale

    @property
    def timer(self) -> Timer | None:
        """The pending timer (kind and absolute deadline), if any."""
        return self.timers.pending

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
            self._set_timer(Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2))
        elif new is S.CLOSED:
            self._set_timer(None)
            self._ctl_out.clear()
            self.acks.now = False
            self.acks.deadline = None
            self.acks.owed = 0
            self.acks.owed_sack.clear()
            self.rcvq.ooo.clear()

    def _on_established(self) -> None:
        """Our SYN is acknowledged: set the initial congestion window."""
        mss = self.send_mss
        if self.timers.syn_retransmitted:
            # RFC 5681 §3.1: a lost SYN or SYN-ACK limits the initial window to one segment;
            # RFC 6298 §5.7: and RTO restarts at 3 s when no RTT sample exists.
            self.cc.cwnd = mss
            self.rtt.estimator.reset_after_syn_loss()
        else:
            # RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)).
            self.cc.cwnd = min(10 * mss, max(2 * mss, 14600))
        if self.opts.sack:
            self.rx = SackRecovery(mss=mss, cwnd=self.cc.cwnd)

    # ------------------------------------------------------------------ user calls (RFC 9293 §3.10.1-5)
    def open_active(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (active): queue the SYN, enter SYN-SENT."""
        self._check_fresh()
        if not 0 < self._remote_port < 65536:
            raise TcpError("active open needs a remote port (EndpointConfig.remote_port)")
        self._used = True
        self._passive = False
        self.snd.iss_time = now
        self._set_state(Cause.OPEN_ACTIVE, now)

    def open_passive(self, now: float) -> None:
        """RFC 9293 §3.10.1 OPEN (passive): wait in LISTEN for one SYN."""
        self._check_fresh()
        self._used = True
        self._passive = True
        self.snd.iss_time = now
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
        if self.sndq.fin_queued or self._state not in (S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT):
            raise TcpError(f"connection closing (state {self._state}): cannot send")
        room = max(0, self._cfg.send_buffer - len(self.sndq.buf))
        chunk = bytes(data[:room])
        self.sndq.buf += chunk
        self.sndq.data_end += len(chunk)
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
            self.sndq.fin_queued = True
            self.sndq.fin_pos = self.sndq.data_end
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
        n = len(self.rcvq.buf) if max_bytes < 0 else min(max_bytes, len(self.rcvq.buf))
        data = bytes(self.rcvq.buf[:n])
        del self.rcvq.buf[:n]
        if n and self._state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2) and not self.rcvq.fin:
            # RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): announce the window once it reopens to
            # a full segment, or the peer, seeing a window under one MSS, waits for its persist timer.
            threshold = self._sws_step()
            if self.rcv.adv_wnd < threshold <= self._advertisable():
                self.acks.now = True
        return data

    def _advertisable(self) -> int:
        return (min(self._sws_window() >> self.rcv.wscale, MAX_WINDOW_FIELD)) << self.rcv.wscale

    # ------------------------------------------------------------------ events and timers
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """The earliest deadline: the endpoint's one timer, or a delayed ACK falling due before it."""
        pending = self.timers.pending
        deadlines = [d for d in (self.acks.deadline, None if pending is None else pending.deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.acks.deadline is not None and now >= self.acks.deadline:
            self.acks.deadline = None
            self.acks.now = True  # the delayed ACK is due
        timer = self.timers.pending
        if timer is None or now < timer.deadline:
            return
        self._set_timer(None)
        if timer.kind is TimerKind.TIME_WAIT:
            self._set_state(Cause.TIME_WAIT_EXPIRED, now)
        elif timer.kind is TimerKind.RETRANSMIT:
            self._on_retransmit_timeout(now)
        elif timer.kind is TimerKind.KEEPALIVE:
            self._on_keepalive_timeout(now)
        elif timer.kind is TimerKind.PROBE:
            self._on_probe_timeout(now)
        elif timer.kind is TimerKind.REORDER:
            if self.rx is not None:  # RFC 8985 §6.3: RACK looks again once the reordering window passed
                self.rx.on_reorder_timeout(now, self.srtt, self.snd.nxt, self.snd.una)
        else:
            self._on_persist_timeout(now)
        self._rearm(now)

    def _on_keepalive_timeout(self, now: float) -> None:
        """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: probe an idle connection with SEG.SEQ = SND.NXT - 1 and no
        data (Linux's probe), which the peer must answer; reset it after keepalive_probes go unanswered."""
        if self.timers.ka_probes >= self._cfg.keepalive_probes:
            rst = Segment(self.local_port, self._remote_port, self.snd_nxt, 0, Flags.RST)
            self._events.append(TimedOut(now, "keepalive", self.timers.ka_probes, now - self.timers.last_heard))
            self._set_state(Cause.KEEPALIVE_TIMEOUT, now)
            self._ctl_out.append(rst)
            return
        self.timers.ka_probes += 1
        self.timers.ka_last = now
        self._ctl_out.append(self._ack_segment(seqno=sq.add(self.snd_nxt, -1)))

    def _keepalive_timer(self) -> Timer | None:
        idle = self._cfg.keepalive
        if idle is None or self._state not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_2):
            return None
        if self.timers.ka_probes == 0:
            return Timer(TimerKind.KEEPALIVE, self.timers.last_heard + idle)
        return Timer(TimerKind.KEEPALIVE, self.timers.ka_last + self._cfg.keepalive_interval)

    def _pto_allowed(self) -> bool:
        """RFC 8985 §7.2: a loss probe needs SACK, no loss recovery or timeout recovery under way, and
        no probe already outstanding."""
        return (self.rx is not None and self._state in _SENDING and self.rx.state is CaState.OPEN
                and self.timers.retries == 0 and self.tlp.end is None)

    def _pto(self) -> float:
        """RFC 8985 §7.2: PTO = 2 * SRTT, plus the worst-case delayed ACK when one segment is in flight;
        1 s before any RTT sample."""
        srtt = self.srtt
        if srtt is None:
            return 1.0
        pto = 2 * srtt
        if self.in_flight <= self.send_mss:
            pto += ACK_DELAY_LINUX
        return max(pto, CLOCK_GRANULARITY)

    def _on_probe_timeout(self, now: float) -> None:
        """RFC 8985 §7.3: send one new segment if the window allows, else resend the last one; then the
        RTO timer runs again."""
        if self.snd.nxt == self.snd.una:
            return
        mss = self.send_mss
        room = self.snd.una + self.snd.wnd - self.snd.nxt
        if self.sndq.data_end > self.snd.nxt and room > 0:
            pos = self.snd.nxt
            n = min(mss, self.sndq.data_end - pos, room)
            fin = self.sndq.fin_queued and pos + n == self.sndq.fin_pos
            out: list[Segment] = []
            self._transmit(self._data_segment(pos, n, fin, psh=True), pos, now, out)
            self._ctl_out += out
            self.tlp.retrans = False
        else:
            rec = self.rx.last_unsacked() if self.rx is not None else None
            if rec is None:
                return
            self._ctl_out.append(self._resend(rec, now, "tlp"))
            self.tlp.retrans = True
            self.tlp.start = rec.start
        self.tlp.end = self.snd.nxt
        self.tlp.flight = self.snd.nxt - self.snd.una - (self.rx.sacked_bytes if self.rx is not None else 0)
        self._set_timer(Timer(TimerKind.RETRANSMIT, now + self.rto))

    def _on_tlp_ack(self, seg: Segment, ack_pos: int, progress: bool) -> None:
        """RFC 8985 §7.4, as Linux's tcp_process_tlp_ack: a probe of new data, or one the peer reports
        as a duplicate (D-SACK, RFC 2883), or answered by a pure duplicate ACK at its end, repaired
        nothing. Once the ACKs go past the probe without that, it was the only copy to arrive: respond
        as to a loss, ssthresh = cwnd = FlightSize / 2 (RFC 5681 eq. (4)). An ACK exactly at the
        probe's end that made progress may be the original's: wait for the next one."""
        if self.tlp.end is None or ack_pos < self.tlp.end:
            return
        start, end = self.tlp.start, self.tlp.end
        if not self.tlp.retrans:
            self.tlp.end = None
            return
        for left, right in seg.sack_blocks:
            lo = self.snd.una + sq.diff(left, self.snd_una)
            hi = self.snd.una + sq.diff(right, self.snd_una)
            if hi <= ack_pos and lo < end and hi > start:
                self.tlp.end = None
                return  # a D-SACK for the probe: the original arrived, nothing was lost
        if ack_pos == end:
            if not progress:
                self.tlp.end = None  # a pure duplicate: both copies arrived
            return
        self.tlp.end = None
        if self.rx is not None:
            self.rx.ssthresh = max(self.tlp.flight // 2, 2 * self.send_mss)
            self.rx.cwnd = min(self.rx.cwnd, self.rx.ssthresh)

    def _on_retransmit_timeout(self, now: float) -> None:
        if self.snd.nxt == self.snd.una:
            return
        what = self._head_name()
        # The peer shrank its window to zero under data in flight: our retransmissions are window probes
        # now, and a peer that keeps answering is alive, so they don't count toward giving up (Linux).
        shrunk = self.snd.syn_acked and self.snd.wnd == 0 and now - self.timers.last_heard <= self._cfg.rto_max
        if self.timers.retries >= self._cfg.max_retries and not shrunk:
            self._events.append(TimedOut(now, what, self.timers.retries, now - self.timers.head_since))
            self._set_state(Cause.TIMEOUT, now)
            return
        if not shrunk:
            self.timers.retries += 1
        if not self.snd.syn_acked:
            self.timers.syn_retransmitted = True
        # RFC 6298 §5.5 back off; §5.6 restart with the new RTO (done by _rearm).
        self.rtt.estimator.backoff()
        self.rtt.rto_tsval = _ts_clock(now)
        self.tlp.end = None
        if self.rx is not None and self.snd.syn_acked:
            # Every segment not SACKed is lost; _fill resends them in order as the window opens, the
            # first one now. RFC 2018 §8: the peer may have reneged on what it SACKed; like Linux, keep
            # the SACKs after one timeout but not after a second in a row.
            self.rx.on_timeout(self.snd.una, self.snd.nxt, self.in_flight, forget_sacks=self.timers.retries >= 2)
            return
        mss = self.send_mss
        if self.snd.syn_acked:
            # RFC 5681 §3.1 eq. (4) and: cwnd = LW = 1 SMSS after a retransmission timeout.
            self.cc.ssthresh = max(self.in_flight // 2, 2 * mss)
            self.cc.cwnd = mss
        # RFC 6582 §4: after a timeout, recover = highest sent, leave fast recovery.
        self.cc.recover = self.snd.nxt
        self.cc.in_recovery = False
        self.cc.dupacks = 0
        segment = self._head_segment()
        # Go back: resume sending right after the retransmitted segment, within cwnd.
        self.snd.resend_from = self.snd.una + segment.seg_len
        self._emit_retransmission(segment, now, "rto")

    def _on_persist_timeout(self, now: float) -> None:
        if not self._needs_persist():
            return
        if self.timers.unanswered >= self._cfg.max_retries:
            self._events.append(TimedOut(now, "window probe", self.timers.unanswered, now - self.timers.head_since))
            self._set_state(Cause.TIMEOUT, now)
            return
        self.timers.probes += 1
        self.timers.unanswered += 1
        if self.snd.wnd > 0:
            # RFC 9293 §3.8.6.2.1 (4): the override timeout; send what fits the small window (Linux's
            # tcp_write_wakeup does the same from its probe timer).
            self._sws_override = True
            return
        # RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: probe the zero window. Like Linux, the probe is a bare
        # ACK with SEQ = SND.UNA - 1: out of window, so the peer must answer with its current window.
        self._ctl_out.append(self._ack_segment(seqno=sq.add(self.snd_una, -1)))

    def _persist_interval(self) -> float:
        return min(self.rto * (1 << min(self.timers.probes, 16)), self._cfg.rto_max)

    def _needs_persist(self) -> bool:
        """Nothing in flight, data queued, and a window too small to send it into: zero, or under SMSS,
        the queue and half the largest window (sender SWS avoidance, RFC 9293 §3.8.6.2.1)."""
        if not (self._state in _SENDING and self.snd.syn_acked and self.snd.nxt == self.snd.una
                and self.sndq.data_end > self.snd.nxt):
            return False
        wnd = self.snd.wnd
        return wnd == 0 or (wnd < min(self.send_mss, self.sndq.data_end - self.snd.nxt) and 2 * wnd < self.snd.max_wnd)

    def _rearm(self, now: float) -> None:
        """Keep the single timer consistent with what is outstanding (RFC 6298 §5.1, §5.2)."""
        state = self._state
        if state is S.TIME_WAIT:
            return
        if state in (S.CLOSED, S.LISTEN):
            self._set_timer(None)
            return
        pending = self.timers.pending
        if self.snd.nxt > self.snd.una:
            rto_deadline = now + self.rto
            if pending is not None and pending.kind is TimerKind.RETRANSMIT:
                rto_deadline = pending.deadline
            reorder = self.rx.reo_deadline if self.rx is not None else None
            if reorder is not None and reorder < rto_deadline:
                # RFC 8985 §6.3: RACK's reordering timer stands in for the retransmission timer until it
                # fires (a segment sent before a delivered one is still inside the reordering window).
                self._set_timer(Timer(TimerKind.REORDER, reorder))
            elif self.tlp.arm and self._pto_allowed():
                # RFC 8985 §7.2: after new data went out or new data was ACKed, the loss probe timer,
                # never later than the RTO would fire.
                self._set_timer(Timer(TimerKind.PROBE, min(now + self._pto(), rto_deadline)))
                if self.timers.retries == 0:
                    self.timers.head_since = now
            elif pending is None or pending.kind not in (TimerKind.RETRANSMIT, TimerKind.PROBE):
                self._set_timer(Timer(TimerKind.RETRANSMIT, now + self.rto))
                if self.timers.retries == 0:
                    self.timers.head_since = now
            self.tlp.arm = False
        elif self._needs_persist():
            if pending is None or pending.kind is not TimerKind.PERSIST:
                if self.timers.unanswered == 0:
                    self.timers.head_since = now
                self._set_timer(Timer(TimerKind.PERSIST, now + self._persist_interval()))
        else:
            self._set_timer(self._keepalive_timer())

    # ------------------------------------------------------------------ segment building
    def _window_field(self, syn: bool = False) -> int:
        if syn:
            # RFC 7323 §2.2: the window in a SYN or SYN-ACK is never scaled.
            field = min(self.rcv_wnd, MAX_WINDOW_FIELD)
            self.rcv.adv_wnd = field
        else:
            field = min(self._sws_window() >> self.rcv.wscale, MAX_WINDOW_FIELD)
            self.rcv.adv_wnd = field << self.rcv.wscale
        # the peer's first data byte is IRS + 1: position 1, also before its SYN arrived
        self.rcv.adv_edge = max(self.rcv.nxt, 1) + self.rcv.adv_wnd
        return field

    def _sws_window(self) -> int:
        """RCV.WND to advertise (RFC 9293 §3.8.6.2.2, MUST-39): keep the right edge where it was until
        the free buffer can move it by min(RCV.BUFF / 2, MSS); a fixed window override is sent as is."""
        free = self.rcv_wnd
        if self._cfg.window is not None:
            return free
        current = min(max(0, self.rcv.adv_edge - self.rcv.nxt), free)
        room = self._cfg.recv_buffer - len(self.rcvq.buf)  # RCV.BUFF - RCV.USER, before the field's cap
        return free if room - current >= self._sws_step() else current

    def _sws_step(self) -> int:
        return max(1, min(self._cfg.mss, self._cfg.recv_buffer // 2))

    def _syn_segment(self) -> Segment:
        options: list[Option] = [("MSS", self._cfg.mss)]
        # RFC 2018 §2: SACK-permitted in a SYN; in a SYN-ACK only if the peer's SYN had it.
        if self._cfg.sack and (self.rcv.irs is None or self.opts.sack):
            options.append(("SAckOK", b""))
        # RFC 7323 §2.2: offer WScale in a SYN; in a SYN-ACK only if the peer's SYN offered it.
        offer = self._cfg.wscale is not None and (self.rcv.irs is None or self.opts.peer_wscale is not None)
        if offer:
            options += [("NOP", None), ("WScale", min(max(self._cfg.wscale or 0, 0), MAX_WSCALE))]
        if self.rcv.irs is None:
            return Segment(self.local_port, self._remote_port, self.snd.iss, 0, Flags.SYN,
                           self._window_field(syn=True), tuple(options))
        return Segment(self.local_port, self._remote_port, self.snd.iss, self.rcv_nxt, _SYN_ACK,
                       self._window_field(syn=True), tuple(options))

    def _data_segment(self, pos: int, n: int, fin: bool, psh: bool) -> Segment:
        start = pos - self.sndq.buf_pos
        payload = bytes(self.sndq.buf[start:start + n])
        flags = _DATA_FLAGS[(1 if fin else 0) + (2 if psh and n else 0)]
        return Segment(self.local_port, self._remote_port, sq.add(self.snd.iss, pos), self.rcv_nxt, flags,
                       self._window_field(), (), payload)

    def _ack_segment(self, seqno: int | None = None) -> Segment:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 §3.10.7.4)."""
        return Segment(self.local_port, self._remote_port, self.snd_nxt if seqno is None else seqno,
                       self.rcv_nxt, Flags.ACK, self._window_field())

    def _head_segment(self) -> Segment:
        """The segment starting at SND.UNA, as it is retransmitted."""
        if not self.snd.syn_acked:
            return self._syn_segment()
        sent_data_end = min(self.snd.nxt, self.sndq.data_end)
        n = max(0, min(self.send_mss, sent_data_end - self.snd.una))
        fin = self.sndq.fin_queued and self.snd.una + n == self.sndq.fin_pos and self.snd.nxt > self.sndq.fin_pos
        return self._data_segment(self.snd.una, n, fin, psh=self.snd.una + n == sent_data_end)

    def _head_name(self) -> str:
        if not self.snd.syn_acked:
            return "SYN" if self.rcv.irs is None else "SYN-ACK"
        if self.sndq.fin_queued and self.snd.una == self.sndq.fin_pos:
            return "FIN"
        return "data"

    def _emit_retransmission(self, segment: Segment, now: float, reason: str) -> None:
        self.retransmits += 1
        self.rtt.timed_pos = None  # RFC 6298 §3 (Karn): never time a retransmitted segment
        self._ctl_out.append(segment)
        self._events.append(Retransmission(now, segment, reason))

    def _owe_ack(self) -> None:
        if self.acks.owed >= MAX_OWED_ACKS:
            return
        self.acks.owed += 1
        if self.opts.sack and self.rcv.irs is not None:
            # Each duplicate ACK reports the blocks as they stood when its segment arrived, so the
            # sender sees new SACK information in every one (RFC 2018 §4, RFC 6675 §2).
            self.acks.owed_sack.append(self._sack_option(self._sack_limit()))

    def _note_retransmission_we_hold(self, seg: Segment) -> int:
        """A dropped segment whose data begins below RCV.NXT is the peer retransmitting what we hold
        (its ACK was lost, or it timed out too early): quick ACKs while it recovers, and a D-SACK for
        the part we hold (RFC 2883 §4), as Linux's tcp_send_dupack does for every such drop, by the
        window or by PAWS. Returns where the data ends (a stream position), or -1 without such data."""
        if not seg.payload or self.rcv.irs is None:
            return -1
        start = self.rcv.nxt + sq.diff(seg.seq, self.rcv_nxt)
        if start >= self.rcv.nxt:
            return -1
        end = start + len(seg.payload)
        self._enter_quickack()
        if self.opts.sack:
            self.rcvq.sack_report.note_duplicate(start, min(end, self.rcv.nxt))
        return end

    def _owe_challenge_ack(self, seg: Segment, now: float) -> None:
        """An ACK for a segment we drop (out of window, a challenge per RFC 5961 §3.2/§4.2/§5.2, or
        PAWS). RFC 5961 §7: rate-limited, like Linux's per-socket net.ipv4.tcp_invalid_ratelimit,
        except for segments with data or FIN, which cannot be part of an ACK loop."""
        interval = self._cfg.challenge_ack_interval
        if interval is not None and (seg.seg_len == 0 or seg.has(Flags.SYN)):
            if now - self.acks.last_challenge < interval:
                return
            self.acks.last_challenge = now
        self._owe_ack()

    def _sack_limit(self) -> int:
        return MAX_BLOCKS_WITH_TS if self.opts.ts else MAX_BLOCKS

    def _sack_option(self, limit: int) -> tuple[Option, ...]:
        """NOP, NOP, SACK with the blocks due now (RFC 2018 §4), or nothing."""
        blocks = self.rcvq.sack_report.blocks(self.rcvq.ooo.blocks(), limit) if limit > 0 else []
        if not blocks or self.rcv.irs is None:
            return ()
        edges = tuple(sq.add(self.rcv.irs, p) for block in blocks for p in block)
        return (("NOP", None), ("NOP", None), ("SAck", edges))

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything due now: RSTs and retransmissions, pure ACKs owed, then new SYN/data/FIN."""
        state = self._state
        if self._resend_syn and self.snd.nxt > 0 and state not in (S.CLOSED, S.LISTEN):
            # Our SYN(-ACK) again: simultaneous open (RFC 9293 §3.10.7.3) or a duplicate SYN. It is a
            # retransmission of ISS, so Karn's rule applies to it (RFC 6298 §3).
            self._resend_syn = False
            self._emit_retransmission(self._syn_segment(), now, "syn")
        out = self._ctl_out
        self._ctl_out = []
        if state in (S.CLOSED, S.LISTEN):
            self.acks.now = False
            self.acks.owed = 0
            self.acks.owed_sack.clear()
            return out
        fresh: list[Segment] = []
        if state is not S.TIME_WAIT:
            fresh = self._fill(now)
        pure = self.acks.owed
        if not pure and self.acks.now and not any(s.has(Flags.ACK) for s in out + fresh):
            pure = 1
        if self.rcv.irs is not None and state is not S.SYN_SENT:
            for i in range(pure):
                ack = self._ack_segment()
                if i < len(self.acks.owed_sack):
                    ack = Segment(ack.sport, ack.dport, ack.seq, ack.ack, ack.flags, ack.window,
                                  self.acks.owed_sack[i])
                out.append(ack)
        self.acks.now = False
        self.acks.owed = 0
        self.acks.owed_sack.clear()
        out += fresh
        self._rearm(now)
        if any(seg.has(Flags.ACK) for seg in out):
            self.rcv.last_ack_sent = self.rcv.nxt
            self.acks.deadline = None  # the owed ACK went out, piggybacked or alone
            self.acks.unacked = 0
            sent = sum(1 for seg in out if seg.has(Flags.ACK))
            if self.acks.quick:
                # Linux's tcp_dec_quickack_mode: each ACK sent uses one up; the last one resets the ATO.
                self.acks.quick = max(0, self.acks.quick - sent)
                if not self.acks.quick:
                    self.acks.ato = ATO_MIN
        return [self._with_options(seg, now) for seg in out]

    def _fill(self, now: float) -> list[Segment]:
        """New (and go-back) transmissions within min(cwnd, SND.WND) (RFC 9293 §3.8.6, RFC 5681)."""
        out: list[Segment] = []
        if self.snd.nxt == 0:  # nothing sent yet: our SYN(-ACK) goes first
            if self._state in (S.SYN_SENT, S.SYN_RECEIVED, S.FIN_WAIT_1) and not self.snd.syn_acked:
                # The first SYN(-ACK) also answers a SYN that came before it left: no second copy.
                self._resend_syn = False
                self._transmit(self._syn_segment(), 0, now, out)
            return out
        if not self.snd.syn_acked or self._state not in _SENDING:
            return out
        if self.rx is not None:
            self._fill_sack(self.rx, now, out)
            return self._mark_psh(out)
        mss = self.send_mss
        for _ in range(1 << 20):  # bounded: each pass advances snd.resend_from or stops
            pos = self.snd.resend_from
            avail = max(0, self.sndq.data_end - pos)
            usable = min(self.cc.cwnd - (pos - self.snd.una), self.snd.wnd - (pos - self.snd.una))
            n = max(0, min(avail, mss, usable))
            if 0 < n < mss and pos >= self.snd.nxt and not self._may_send_runt(n, avail, pos):
                n = 0
            fin = self.sndq.fin_queued and pos + n == self.sndq.fin_pos
            if n == 0 and not fin:
                break
            is_last = pos + n >= self.sndq.data_end
            seg = self._data_segment(pos, n, fin, psh=is_last)
            self._transmit(seg, pos, now, out)
        return self._mark_psh(out)

    def _fill_sack(self, rx: SackRecovery, now: float, out: list[Segment]) -> None:
        """With SACK (Linux's tcp_xmit_retransmit_queue, then tcp_write_xmit): while the bytes in the
        network (RFC 6675 pipe) leave room in cwnd, resend what is marked lost, in order, then new data
        within SND.WND. A segment goes whole or not at all, except that one always may when none is out."""
        mss = self.send_mss
        wnd_end = self.snd.una + self.snd.wnd
        pipe = rx.pipe
        for _ in range(1 << 20):  # bounded: each pass sends a segment or stops
            room = rx.cwnd - pipe
            rec = rx.next_lost()
            if rec is not None and (rec.start < wnd_end or rec.start == self.snd.una):
                if room < min(rec.size, mss) and pipe > 0:
                    break
                out.append(self._resend(rec, now, "rto" if rx.state is CaState.LOSS else "sack"))
                pipe += rec.size
                continue
            pos = self.snd.nxt
            avail = max(0, self.sndq.data_end - pos)
            n = max(0, min(avail, mss, room, wnd_end - pos))
            if 0 < n < mss and not self._may_send_runt(n, avail, pos):
                n = 0
            fin = self.sndq.fin_queued and pos + n == self.sndq.fin_pos and (n > 0 or room > 0 or pipe == 0)
            if n == 0 and not fin:
                break
            seg = self._data_segment(pos, n, fin, psh=pos + n >= self.sndq.data_end)
            self._transmit(seg, pos, now, out)
            rx.on_new_data_out(seg.seg_len)
            pipe += seg.seg_len
        rx.note_usage(self.snd.una, self.snd.nxt, pipe)

    def _resend(self, rec: Sent, now: float, reason: str) -> Segment:
        """The segment ``rec`` recorded, sent again as it was first cut (RFC 6298 §3: Karn, untimed)."""
        rx = self.rx
        assert rx is not None
        data_end = min(rec.end, self.sndq.data_end)
        fin = self.sndq.fin_queued and rec.end == self.sndq.fin_pos + 1
        segment = self._data_segment(rec.start, max(0, data_end - rec.start), fin, psh=rec.end >= self.snd.nxt)
        rx.on_resend(rec, now, _ts_clock(now))
        self.retransmits += 1
        self.rtt.timed_pos = None
        self._events.append(Retransmission(now, segment, reason))
        return segment

    def _may_send_runt(self, n: int, avail: int, pos: int) -> bool:
        """New data shorter than SMSS: RFC 9293 §3.8.6.2.1 (MUST-38) sends it only if (2) it is all
        that is queued (every write counts as pushed), (3) it is at least half the largest window the
        peer offered, or (4) the override timeout fired. Nagle (RFC 896) as Linux runs it, Minshall's
        variant: a short tail waits only while an earlier short segment is unacknowledged, and never
        when a FIN goes with it."""
        if n == avail:
            fin = self.sndq.fin_queued and pos + n == self.sndq.fin_pos
            return not (self._cfg.nagle and self.snd.small_end > self.snd.una and not fin)
        if self.snd.nxt > self.snd.una:
            return False  # limited by window or cwnd with data in flight: an ACK will come
        if 2 * n >= self.snd.max_wnd or self._sws_override:
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

    def _transmit(self, seg: Segment, pos: int, now: float, out: list[Segment]) -> None:
        end = pos + seg.seg_len
        if pos < self.snd.nxt:
            self.retransmits += 1
            self.rtt.timed_pos = None
            self._events.append(Retransmission(now, seg, "rto"))
        else:
            self.tlp.arm = True
            if 0 < len(seg.payload) < self.send_mss:
                self.snd.small_end = end  # Minshall's Nagle: the last short segment sent
            if self.rx is not None:
                self.rx.on_send(pos, end, now)
            if self.rtt.timed_pos is None:
                # RFC 6298 §3: time one fresh segment per round trip.
                self.rtt.timed_pos = pos
                self.rtt.timed_at = now
        self.snd.resend_from = end
        self.snd.nxt = max(self.snd.nxt, end)
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
        self._seg_ts = seg.timestamp if self.opts.ts else None
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
        acceptable, unless TS.Recent has been idle for over 24 days (§5.5). As in Linux, one tick older
        is forgiven: reordering within a millisecond is not a wrapped sequence number."""
        if not self.opts.ts or seg.has(Flags.RST):
            return False
        ts = self._seg_ts
        if ts is None:
            return True
        if sq.lt(sq.add(ts[0], PAWS_TICKS_FORGIVEN), self.rcv.ts_recent):
            if now - self.rcv.ts_recent_time > PAWS_IDLE:
                self.rcv.ts_recent, self.rcv.ts_recent_time = ts[0], now
                return False
            return True
        return False

    def _update_ts_recent(self, seg: Segment, now: float) -> None:
        """RFC 7323 §4.3 (2), after the window check (Appendix D): TS.Recent takes SEG.TSval when
        SEG.SEQ <= Last.ACK.sent, so a delayed ACK echoes the earliest segment it covers."""
        ts = self._seg_ts
        if ts is None or seg.has(Flags.RST):
            return
        seq_pos = self.rcv.nxt + sq.diff(seg.seq, self.rcv_nxt)
        if seq_pos <= self.rcv.last_ack_sent and sq.le(self.rcv.ts_recent, ts[0]):
            self.rcv.ts_recent, self.rcv.ts_recent_time = ts[0], now

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
        if self.opts.ts or (syn_only and self._cfg.timestamps):
            ts: Option = ("Timestamp", (_ts_clock(now), 0 if syn_only else self.rcv.ts_recent))
            if syn and ("SAckOK", b"") in options:
                options.insert(options.index(("SAckOK", b"")) + 1, ts)
            elif syn:
                options[1:1] = [("NOP", None), ("NOP", None), ts]
            else:
                options[0:0] = [("NOP", None), ("NOP", None), ts]
            room -= TSOPT_LEN
        if self.opts.sack and not syn and seg.has(Flags.ACK) and not seg.options:
            limit = self._sack_limit()
            if seg.payload:
                # a data segment keeps within the MSS (RFC 6691): only the blocks that still fit
                spare = min(self.opts.peer_mss, self._cfg.mss) - len(seg.payload) - (40 - room)
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
        return Segment(seg.dport, seg.sport, 0, sq.add(seg.seq, seg.seg_len), _RST_ACK)

    def _receive_closed(self, seg: Segment) -> None:
        # RFC 9293 §3.10.7.1: an incoming RST is discarded; anything else is answered with a RST.
        if not seg.has(Flags.RST):
            self._ctl_out.append(self._rst_for(seg))

    def _read_syn_options(self, seg: Segment) -> None:
        mss = seg.mss
        # RFC 9293 §3.7.1: without the option assume 536; ignore nonsense values, clamp tiny ones.
        self.opts.peer_mss = max(mss, MIN_SND_MSS) if mss is not None and mss > 0 else DEFAULT_PEER_MSS
        ts = seg.timestamp
        # RFC 7323 §3.2: timestamps are used only if both SYNs carried TSopt.
        self.opts.ts = bool(self._cfg.timestamps and ts is not None)
        if ts is not None and self.opts.ts:
            self.rcv.ts_recent = ts[0]
            # the SYN-ACK's echo times our SYN (RFC 7323 §4.1), Karn permitting below
            self._seg_ts = ts
        ws = seg.wscale
        self.opts.peer_wscale = None if ws is None else min(ws, MAX_WSCALE)
        self.opts.sack = self._cfg.sack and seg.sack_permitted
        if self.opts.peer_wscale is not None and self._cfg.wscale is not None:
            # RFC 7323 §2.2: scaling only when both SYNs carried WScale.
            self.snd.wscale = self.opts.peer_wscale
            self.rcv.wscale = min(max(self._cfg.wscale, 0), MAX_WSCALE)
        else:
            self.snd.wscale = self.rcv.wscale = 0

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
            self.rcv.irs = seg.seq
            self.rcv.nxt = 1
            self._read_syn_options(seg)
            self.snd.wnd = seg.window          # RFC 7323 §2.2: never scaled in a SYN
            self.snd.max_wnd = seg.window
            self.snd.wl1, self.snd.wl2 = seg.seq, 0
            # Data or FIN on the SYN is not accepted (Linux without TFO does the same); the peer resends.
            self._set_state(Cause.RCV_SYN, now)
        # fourth: anything else is dropped.

    def _receive_syn_sent(self, seg: Segment, now: float) -> None:
        # RFC 9293 §3.10.7.3 first: check the ACK.
        ack_ok = False
        if seg.has(Flags.ACK):
            ack_pos = self.snd.una + sq.diff(seg.ack, self.snd_una)
            if not 0 < ack_pos <= self.snd.nxt:
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
        self.rcv.irs = seg.seq
        self.rcv.nxt = 1
        self._read_syn_options(seg)
        self.snd.wnd = seg.window
        self.snd.max_wnd = seg.window
        self.snd.wl1, self.snd.wl2 = seg.seq, seg.ack
        if ack_ok:
            self.timers.last_heard = now
            self._ack_advance(self.snd.una + sq.diff(seg.ack, self.snd_una), now)
            self.acks.now = True
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
        shift = self.snd.wscale
        if seg.has(Flags.SYN) and not self.snd.syn_acked and seg.seq == self.rcv.irs:
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
                self._note_retransmission_we_hold(seg)
                self._owe_challenge_ack(seg, now)
            return
        wnd = self.rcv_wnd
        if not self._acceptable(seg, wnd):
            if seg.has(Flags.RST):
                return
            if self._note_retransmission_we_hold(seg) >= self.rcv.last_ack_sent:
                # Linux's sequence check accepts a segment ending at Last.ACK.sent (RCV.WUP) for
                # TS.Recent: when our ACK of it was lost, the duplicate ACK echoes the retransmission,
                # not an original a whole timeout old that the sender would take as an RTT sample and
                # inflate its RTO with.
                self._update_ts_recent(seg, now)
            if (state is S.TIME_WAIT and seg.has(Flags.FIN)
                    and sq.add(seg.seq, len(seg.payload)) == sq.add(self.rcv_nxt, -1)):
                # The peer retransmitted its FIN: our last ACK was lost. Re-ACK and restart 2MSL
                # (RFC 9293 §3.10.7.4 eighth, TIME-WAIT).
                self._set_timer(Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2))
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
            elif not self.snd.syn_acked and not self._passive:
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
        ack_pos = self.snd.una + sq.diff(seg.ack, self.snd_una)
        if not self.snd.syn_acked:
            # SYN-RECEIVED (or FIN-WAIT-1 reached from it): the ACK must cover our SYN.
            if not 0 < ack_pos <= self.snd.nxt:
                self._ctl_out.append(self._rst_for(seg))
                return
            self.snd.wnd = seg.window << shift
            self.snd.max_wnd = max(self.snd.max_wnd, self.snd.wnd)
            self.snd.wl1, self.snd.wl2 = seg.seq, seg.ack
            if self.snd.wnd:
                self.timers.probes = 0
        if ack_pos > self.snd.nxt:
            # RFC 9293: acknowledges something not yet sent -> ACK, drop.
            self._owe_challenge_ack(seg, now)
            return
        if ack_pos < self.snd.una - self.snd.max_wnd:
            # RFC 5961 §5.2: far too old to be real -> ACK, drop.
            self._owe_challenge_ack(seg, now)
            return
        self._process_ack(seg, ack_pos, now, shift)
        if state is S.SYN_RECEIVED and self.snd.syn_acked:
            self._set_state(Cause.RCV_ACK_OF_SYN, now)
        if self.sndq.fin_queued and self.snd.una > self.sndq.fin_pos and defined(self._state, Cause.RCV_ACK_OF_FIN):
            # FIN-WAIT-1, CLOSING and LAST-ACK move on; FIN-WAIT-2 and TIME-WAIT already did.
            self._set_state(Cause.RCV_ACK_OF_FIN, now)
            if self._state is S.CLOSED:
                return

        # sixth: URG is not supported (RFC 9293 §3.8.5 lets it be ignored by applications that don't use it).
        # seventh and eighth: text and FIN.
        self._text_and_fin(seg, now)

    def _back_to_listen(self, cause: Cause, now: float) -> None:
        # The next SYN starts a new connection: a fresh TCB (the initial RTO, RFC 6298 §2.1, no timer)
        # and a new ISS from the ISN clock, which keeps running from the injected ISN (RFC 9293 §3.4.1).
        ticks = max(1, int((now - self.snd.iss_time) * ISN_CLOCK_HZ))
        self._reset_connection(sq.add(self.snd.iss, ticks), now)
        self._set_state(cause, now)

    def _process_ack(self, seg: Segment, ack_pos: int, now: float, shift: int) -> None:
        """RFC 9293 §3.10.7.4 fifth (ESTABLISHED rules), with RFC 5681/6582 dupack handling. ``shift``
        scales the window field: SND.WIND.SCALE, or 0 for a SYN-ACK (RFC 7323 §2.2)."""
        self.timers.unanswered = 0  # the peer answers: the persist timer's give-up count restarts
        self.timers.last_heard = now
        self.timers.ka_probes = 0
        old_wnd = self.snd.wnd
        if ack_pos > self.snd.una:
            self._ack_advance(ack_pos, now)
            self.tlp.arm = True
        elif (self.rx is None and ack_pos == self.snd.una and self.snd.nxt > self.snd.una and not seg.payload
              and not seg.has(_SYN_FIN) and (seg.window << shift) == old_wnd):
            # RFC 5681 §2: a duplicate acknowledgment.
            self._on_dupack(now)
        if self.rx is not None and self.snd.syn_acked:
            delivered = self._sack_ack(self.rx, seg, ack_pos, now)
            self._on_tlp_ack(seg, ack_pos, progress=delivered > 0 or bool(seg.payload))
        # Window update (RFC 9293 §3.10.7.4: only from a segment newer than the last update).
        if ack_pos >= self.snd.una and (sq.lt(self.snd.wl1, seg.seq)
                                     or (self.snd.wl1 == seg.seq and sq.le(self.snd.wl2, seg.ack))):
            self.snd.wnd = seg.window << shift
            self.snd.max_wnd = max(self.snd.max_wnd, self.snd.wnd)
            self.snd.wl1, self.snd.wl2 = seg.seq, seg.ack
            if self.snd.wnd:
                self.timers.probes = 0

    def _ack_advance(self, ack_pos: int, now: float) -> None:
        first = not self.snd.syn_acked
        acked = ack_pos - self.snd.una
        mss = self.send_mss
        self.snd.una = ack_pos
        self.snd.resend_from = max(self.snd.resend_from, ack_pos)
        drop = min(ack_pos, self.sndq.data_end) - self.sndq.buf_pos
        if drop > 0:
            del self.sndq.buf[:drop]
            self.sndq.buf_pos += drop
        self.timers.retries = 0
        echo = self._ts_rtt(now)
        if echo is not None:
            # RFC 7323 §4.1 (RTTM): the echoed TSval names the transmission this ACK answers, so every
            # ACK of new data is a sample, retransmissions included (the hole-filling segment's TSval is
            # echoed, §4.3 (3)); a sample collapses any backoff (RFC 6298 §5).
            self.rtt.estimator.sample(echo)
            self.rtt.timed_pos = None
        elif self.rtt.timed_pos is not None and ack_pos > self.rtt.timed_pos:
            self.rtt.estimator.sample(now - self.rtt.timed_at)
            self.rtt.timed_pos = None
        elif self._stale_echo():
            # No sample, but new data is ACKed after the timeout, so the path works again: collapse
            # the backoff, as Linux's per-ACK TS samples would (RFC 6298 §5, the note on collapsing).
            self.rtt.estimator.collapse()
        self.cc.dupacks = 0
        if first:
            self._on_established()
        elif self.rx is not None:
            pass  # the SACK sender's window moves in _sack_ack, with the SACK blocks in view
        elif self.cc.in_recovery:
            if ack_pos >= self.cc.recover:
                # RFC 6582 §3.2 step 3, full acknowledgment, option (1): deflate to
                # min(ssthresh, max(FlightSize, SMSS) + SMSS), which avoids a burst, and leave recovery.
                self.cc.cwnd = min(self.cc.ssthresh, max(self.in_flight, mss) + mss)
                self.cc.in_recovery = False
            else:
                # RFC 6582 §3.2 step 3, partial acknowledgment: resend the next hole, deflate.
                self._emit_retransmission(self._head_segment(), now, "fast")
                self.cc.cwnd = max(self.cc.cwnd - acked + (mss if acked >= mss else 0), mss)
        else:
            if self.cc.cwnd < self.cc.ssthresh:
                # RFC 5681 §3.1 slow start (RFC 3465 L=1: at most one SMSS per ACK).
                self.cc.cwnd += min(acked, mss)
            else:
                # RFC 5681 §3.1 congestion avoidance, eq. (3).
                self.cc.cwnd += max(1, mss * mss // max(self.cc.cwnd, 1))
        # RFC 6298 §5.2/§5.3: stop the timer when all is acknowledged, else restart it.
        if self.snd.nxt > self.snd.una:
            # The RTO stays backed off until a new RTT sample collapses it (RFC 6298 §5, Karn).
            self._set_timer(Timer(TimerKind.RETRANSMIT, now + self.rto))
            self.timers.head_since = now
        elif self.timers.pending is not None and self.timers.pending.kind is TimerKind.RETRANSMIT:
            self._set_timer(None)

    def _stale_echo(self) -> bool:
        """The segment echoes a TSval from before the last timeout: an ACK lost then and repeated since
        (out-of-order data leaves TS.Recent alone, RFC 7323 §4.3), whose age measures the outage, not
        the path."""
        ts = self._seg_ts
        return (ts is not None and ts[1] != 0 and self.rtt.rto_tsval is not None
                and sq.lt(ts[1], self.rtt.rto_tsval))

    def _ts_rtt(self, now: float) -> float | None:
        """RTT from the TSecr of the segment being processed, in seconds, if it echoes one of ours."""
        ts = self._seg_ts
        if ts is None or ts[1] == 0:  # 0: no echo (as Linux reads it; our clock is 0 only at t=0)
            return None
        if self._stale_echo():
            return None
        ms = sq.sub(_ts_clock(now), ts[1])
        return ms / 1000 if ms < sq.HALF else None

    @property
    def _dupthresh(self) -> int:
        """DupThresh, lowered by RFC 5827's early retransmit: with fewer than four segments outstanding
        and no new segment allowed out, one less than the segments outstanding (at least one), since
        three duplicates can never come and only the timer would be left."""
        thresh = max(1, self._cfg.dupack_threshold)
        oseg = -(-(self.snd.nxt - self.snd.una) // self.send_mss)
        can_send_new = self.sndq.data_end > self.snd.nxt and self.snd.una + self.snd.wnd > self.snd.nxt
        if oseg < 4 and not can_send_new:
            thresh = min(thresh, max(1, oseg - 1))
        return thresh

    def _sack_ack(self, rx: SackRecovery, seg: Segment, ack_pos: int, now: float) -> int:
        """Hand an acceptable ACK's cumulative point, SACK blocks (as positions) and TSecr to the SACK
        sender's recovery: it marks what was delivered and lost and moves the window. Returns the bytes
        newly ACKed or SACKed."""
        blocks = []
        for left, right in seg.sack_blocks:
            start = self.snd.una + sq.diff(left, self.snd_una)
            blocks.append((start, start + sq.sub(right, left)))
        ts = self._seg_ts
        summary = rx.on_ack(ack_pos, blocks, None if ts is None else ts[1], now, self.srtt, self.snd.nxt)
        timed = self.rtt.timed_pos
        if timed is not None and any(a <= timed < b for a, b in blocks):
            # The timed segment, sent once, reached the peer (Linux samples SACKed segments too).
            if ts is None:
                self.rtt.estimator.sample(now - self.rtt.timed_at)
            self.rtt.timed_pos = None
        return summary.delivered

    def _on_dupack(self, now: float) -> None:
        self.cc.dupacks += 1
        threshold = self._dupthresh
        mss = self.send_mss
        if self.cc.dupacks >= threshold and not self.cc.in_recovery and self.snd.una > self.cc.recover:
            # RFC 5681 §3.2 steps 2-4 with RFC 6582's recover guard: fast retransmit, enter recovery.
            self.cc.ssthresh = max(self.in_flight // 2, 2 * mss)
            self.cc.recover = self.snd.nxt
            self.cc.in_recovery = True
            self._emit_retransmission(self._head_segment(), now, "fast")
            self.cc.cwnd = self.cc.ssthresh + threshold * mss
        elif self.cc.dupacks > threshold and self.cc.in_recovery:
            # RFC 5681 §3.2 step 5: inflate by one segment per further duplicate.
            self.cc.cwnd += mss

    def _text_and_fin(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4 seventh (segment text) and eighth (FIN), after trimming to the window."""
        start = self.rcv.nxt + sq.diff(seg.seq, self.rcv_nxt)
        if seg.has(Flags.SYN):
            start += 1
        data = seg.payload
        fin = seg.has(Flags.FIN)
        fin_pos = start + len(data)
        # Trim what we already have (left edge).
        if start < self.rcv.nxt:
            cut = min(self.rcv.nxt - start, len(data))
            if cut:
                # a (partial) duplicate: the peer retransmitted, so tell it at once, and keep ACKing
                # every segment while it recovers (Linux's tcp_enter_quickack_mode)
                self.acks.now = True
                self._enter_quickack()
                if self.opts.sack:
                    self.rcvq.sack_report.note_duplicate(start, start + cut)  # RFC 2883 §4
            data = data[cut:]
            start += cut
            if fin_pos < self.rcv.nxt:
                fin = False
        # Trim what lies beyond the window (right edge); a FIN behind trimmed data goes with it.
        right = self.rcv.nxt + self.rcv_wnd
        if start + len(data) > right:
            data = data[:max(0, right - start)]
            fin = False
            self.acks.now = True
        if self._state not in _RECEIVING:
            # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer's FIN is already in; ignore text.
            if fin and self._state is S.TIME_WAIT:
                self._set_timer(Timer(TimerKind.TIME_WAIT, now + self._cfg.msl2))
                self.acks.now = True
            return
        if data:
            if start == self.rcv.nxt:
                fills_hole = len(self.rcvq.ooo) > 0
                self._deliver(data, now)
                self._schedule_ack(len(data), now, immediate=fills_hole)
            elif start > self.rcv.nxt:
                # Out of order: hold it and send a duplicate ACK at once (RFC 5681 §4.2) so the
                # peer's fast retransmit can work; with SACK it names the block (RFC 2018 §4).
                if self.opts.sack:
                    dup = self.rcvq.ooo.overlap(start, start + len(data))
                    if dup is not None:
                        self.rcvq.sack_report.note_duplicate(*dup)  # RFC 2883 §4
                    self.rcvq.sack_report.note(start)
                self.rcvq.ooo.add(start, data)
                self._owe_ack()
        if fin:
            fin_pos = start + len(data)
            if fin_pos == self.rcv.nxt:
                self._receive_fin(now)
            elif fin_pos > self.rcv.nxt:
                self.rcvq.ooo_fin = fin_pos
                if not data:
                    self._owe_ack()
        if self.rcvq.ooo_fin is not None and self.rcvq.ooo_fin == self.rcv.nxt and not self.rcvq.fin:
            # A FIN that arrived out of order is now in order.
            self._receive_fin(now)

    def _schedule_ack(self, nbytes: int, now: float, immediate: bool) -> None:
        """In-order data arrived. Without delayed ACKs (like TCP_QUICKACK) ACK it now; with them
        (RFC 9293 §3.8.6.3, RFC 5681 §4.2) ACK at once when more than one full-sized segment is
        unacknowledged (so every second one), the segment filled a hole or quick-ACK mode is on, else
        within the adaptive ACK timeout, as Linux does."""
        self.rcv.mss = min(max(self.rcv.mss, nbytes), self._cfg.mss)  # Linux's rcv_mss estimate
        self.acks.unacked += nbytes
        if not self._cfg.delayed_ack:
            self.acks.now = True
            return
        self._note_arrival(now)
        if immediate or self.acks.unacked > self.rcv.mss or self.acks.quick > 0:
            self.acks.now = True
        elif self.acks.deadline is None:
            self.acks.deadline = now + self._ack_timeout()

    def _note_arrival(self, now: float) -> None:
        """Linux's tcp_event_data_recv: the first data and data after a gap longer than the RTO turn
        quick-ACK mode on; closely spaced arrivals shrink the ACK timeout, slower ones set it."""
        acks = self.acks
        if acks.ato == 0:
            self._quickack(MAX_QUICKACKS)
            acks.ato = ATO_MIN
        else:
            gap = now - acks.last_arrival
            if gap <= ATO_MIN / 2:
                acks.ato = acks.ato / 2 + ATO_MIN / 2
            elif gap < acks.ato:
                acks.ato = min(acks.ato / 2 + gap, self.rto)
            elif gap > self.rto:
                self._quickack(MAX_QUICKACKS)
        acks.last_arrival = now

    def _quickack(self, most: int) -> None:
        """Linux's tcp_incr_quickack: ACK the next segments at once, as many as half the window holds
        (at least two, at most ``most``)."""
        count = min(max(2, self.rcv_wnd // (2 * max(1, self.rcv.mss))), most)
        self.acks.quick = max(self.acks.quick, count)

    def _enter_quickack(self) -> None:
        """Linux's tcp_enter_quickack_mode: quick ACKs, and the ACK timeout back to its minimum."""
        if self._cfg.delayed_ack:
            self._quickack(MAX_QUICKACKS)
            self.acks.ato = ATO_MIN

    def _ack_timeout(self) -> float:
        """Linux's tcp_send_delayed_ack: the ACK timeout, at most the RTT (but not under TCP_ATO_MIN)
        and never over ack_delay (RFC 9293 MUST-40: under 0.5 s)."""
        ato = self.acks.ato
        srtt = self.srtt
        if srtt is not None:
            ato = min(ato, max(srtt, ATO_MIN))
        return min(ato, self._cfg.ack_delay)

    def _deliver(self, data: bytes, now: float) -> None:
        self.rcvq.buf += data
        self.rcv.nxt += len(data)
        # Out-of-order data that now continues the stream (no byte delivered twice: the queue trims).
        more = self.rcvq.ooo.pop(self.rcv.nxt)
        if self.rcvq.ooo_fin is not None and more:
            more = more[:max(0, self.rcvq.ooo_fin - self.rcv.nxt)]
        self.rcvq.buf += more
        self.rcv.nxt += len(more)
        self._events.append(DataReceived(now, len(data) + len(more)))

    def _receive_fin(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 eighth: the FIN is in order."""
        self.rcv.nxt += 1
        self.rcvq.ooo_fin = None
        self.rcvq.fin = True
        self.rcvq.ooo.clear()
        self.acks.now = True
        self._events.append(PeerClosed(now))
        # ESTABLISHED -> CLOSE-WAIT, FIN-WAIT-2 -> TIME-WAIT; FIN-WAIT-1 -> CLOSING: our FIN is not
        # acknowledged yet, else step five moved us to FIN-WAIT-2 (simultaneous close).
        self._set_state(Cause.RCV_FIN, now)
