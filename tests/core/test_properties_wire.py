"""Property tests: two cores over a lossy, duplicating, reordering wire with latency, each side with SACK,
timestamps, Nagle and delayed ACK drawn on or off, the applications writing in random pieces at random
times. Every byte arrives exactly once, in order, both ways; the transfer and the close finish within a
bounded simulated time.

Examples per test come from the profile in tests/conftest.py (HYPOTHESIS_PROFILE=ci|long)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from rawtcp.core import Endpoint, EndpointConfig, State

from .helpers import CISN, CPORT, SISN, SPORT, Wire
from .test_properties import stream_bytes

FEATURES = st.fixed_dictionaries({"sack": st.booleans(), "timestamps": st.booleans(), "nagle": st.booleans(),
                                  "delayed_ack": st.booleans(), "wscale": st.sampled_from([None, 0, 7])})
# Writes: (delay before the write, its size).
WRITES = st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.3]), st.integers(1, 4000)), max_size=12)

# Bounds on simulated time, with rto_max 8 s and up to 20 % loss each way (ACKs too, so many losses cost
# a timeout and inflate RTT samples): the data must be through within TRANSFER_BASE plus one rto_max per
# segment it needs, on average, after the last write; both ends CLOSED within CLOSE_BOUND of the closes.
RTO_MAX = 8.0
TRANSFER_BASE = 30.0
CLOSE_BOUND = 150.0


@given(a=FEATURES, b=FEATURES, up=WRITES, down=WRITES, seed=st.integers(0, 2**32 - 1),
       loss=st.sampled_from([0.0, 0.02, 0.1, 0.2]), dup=st.sampled_from([0.0, 0.05]),
       jitter=st.sampled_from([0.0, 0.005, 0.05]), a_mss=st.sampled_from([1460, 536, 100]),
       b_buf=st.sampled_from([4 * 1024 * 1024, 6000, 1500]))
def test_every_byte_once_over_a_hostile_wire_with_every_feature_on_or_off(a, b, up, down, seed, loss, dup,
                                                                         jitter, a_mss, b_buf):
    rng = random.Random(seed)

    def fate(src: str, seg) -> list[float]:
        if rng.random() < loss:
            return []
        copies = 2 if rng.random() < dup else 1
        return [0.01 + rng.random() * jitter for _ in range(copies)]

    common = {"max_retries": 1000, "rto_max": RTO_MAX, "msl2": 1.0}
    wire = Wire(Endpoint(EndpointConfig(CPORT, SPORT, CISN, mss=a_mss, **a, **common)),
                Endpoint(EndpointConfig(SPORT, 0, SISN, recv_buffer=b_buf, **b, **common)), fate)
    wire.b.open_passive(0.0)
    wire.a.open_active(0.0)
    wire.advance(60.0)
    assert wire.a.state is State.ESTABLISHED and wire.b.state is State.ESTABLISHED
    assert wire.a.sack_ok == (a["sack"] and b["sack"]) and wire.a.ts_ok == (a["timestamps"] and b["timestamps"])

    expected = {"a": bytearray(), "b": bytearray()}  # what each side wrote
    pending = {"a": list(up), "b": list(down)}
    while pending["a"] or pending["b"]:
        name = "a" if pending["a"] and (not pending["b"] or rng.random() < 0.5) else "b"
        delay, size = pending[name].pop(0)
        wire.advance(wire.t + delay)
        chunk = stream_bytes(len(expected[name]) * 7 + (0 if name == "a" else 99), size)
        taken = wire.ep(name).send(chunk, wire.t)
        expected[name] += chunk[:taken]
    last_write = wire.t
    segments = sum(-(-len(expected[n]) // max(1, wire.ep(n).send_mss)) for n in "ab")
    bound = TRANSFER_BASE + RTO_MAX * segments
    # "a" wrote up to the server, "b" down to the client; each side reads what the other wrote
    for _ in range(10**6):
        if wire.received["b"] == expected["a"] and wire.received["a"] == expected["b"]:
            break
        due = wire.next_event()
        assert due is not None, "stalled with data undelivered"
        assert due - last_write < bound, f"transfer too slow: {segments} segments"
        wire.advance(due)
    assert bytes(wire.received["b"]) == bytes(expected["a"])
    assert bytes(wire.received["a"]) == bytes(expected["b"])

    wire.a.close(wire.t)
    wire.b.close(wire.t)
    wire.advance(wire.t + CLOSE_BOUND)
    assert wire.a.state is State.CLOSED and wire.b.state is State.CLOSED, (wire.a.state, wire.b.state)
    assert bytes(wire.received["b"]) == bytes(expected["a"])  # nothing more after the close
    assert bytes(wire.received["a"]) == bytes(expected["b"])
