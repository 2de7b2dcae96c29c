"""Retransmission timeout per RFC 6298, and the one tagged timer the endpoint runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# RFC 6298 §2: smoothing gains and the variance multiplier.
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
# RFC 6298 §2: G, the clock granularity. Time is a float argument here, so a millisecond is plenty.
CLOCK_GRANULARITY = 0.001
# RFC 6298 §2.1 initial RTO, §2.4 minimum, §2.5 maximum (defaults; EndpointConfig may override).
RTO_INITIAL = 1.0
RTO_MIN = 1.0
RTO_MAX = 60.0
# Linux's TCP_RTO_MIN (HZ/5): RFC 6298 §2.4's 1 s minimum is a SHOULD, and the note after it allows a
# lower one; EndpointConfig defaults to this one, as Linux does.
RTO_MIN_LINUX = 0.2
# RFC 6298 §5.7: after a retransmitted SYN (no RTT sample possible), data starts with RTO = 3 s.
RTO_AFTER_SYN_LOSS = 3.0


class TimerKind(enum.Enum):
    RETRANSMIT = "retransmit"
    PERSIST = "persist"
    TIME_WAIT = "time-wait"
    KEEPALIVE = "keepalive"
    PROBE = "probe"  # RFC 8985 §7 tail loss probe
    REORDER = "reorder"  # RFC 8985 §6.3 RACK reordering timer

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Timer:
    """The endpoint's single timer: at most one of retransmit / probe / reorder / persist / time-wait / keep-alive
    runs at a time (a delayed ACK's deadline is kept beside it: it must not displace a retransmission)."""

    kind: TimerKind
    deadline: float

    def __init__(self, kind: TimerKind, deadline: float) -> None:  # compiled, as Segment's
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "deadline", deadline)


class RtoEstimator:
    """SRTT / RTTVAR / RTO bookkeeping (RFC 6298 §2, §5.5 backoff). Karn's rule is the caller's job."""

    def __init__(self, initial: float = RTO_INITIAL, minimum: float = RTO_MIN,
                 maximum: float = RTO_MAX) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto = self._clamp(initial)

    def _clamp(self, value: float) -> float:
        # RFC 6298 §2.4 (round up to the minimum) and §2.5 (a maximum of at least 60 s is allowed).
        return min(max(value, self.minimum), self.maximum)

    def sample(self, r: float) -> None:
        """Feed one RTT measurement R (seconds) from a segment that was not retransmitted."""
        r = max(r, 0.0)
        if self.srtt is None or self.rttvar is None:
            # RFC 6298 §2.2: the first measurement.
            self.srtt = r
            self.rttvar = r / 2
        else:
            # RFC 6298 §2.3: RTTVAR first, using the old SRTT.
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - r)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        self.rto = self._clamp(self.srtt + max(CLOCK_GRANULARITY, K * self.rttvar))

    def backoff(self) -> None:
        """RFC 6298 §5.5: double the RTO when the retransmission timer expires."""
        self.rto = min(self.rto * 2, self.maximum)

    def collapse(self) -> None:
        """Undo §5.5's backoff: the RTO from the current SRTT/RTTVAR again (RFC 6298 §5, the note on
        "collapsing" RTO). No-op before the first sample and when nothing was backed off."""
        if self.srtt is not None and self.rttvar is not None:
            self.rto = self._clamp(self.srtt + max(CLOCK_GRANULARITY, K * self.rttvar))

    def reset_after_syn_loss(self) -> None:
        """RFC 6298 §5.7: the SYN was retransmitted and no sample exists, so start data at 3 s."""
        if self.srtt is None:
            self.rto = self._clamp(RTO_AFTER_SYN_LOSS)
