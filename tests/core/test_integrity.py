"""Bulk transfer both ways between two cores through a seeded hostile wire: nothing lost or doubled."""

import hashlib
import random

import pytest

from rawtcp.core import State

from .helpers import EndpointPair


def hostile_run(p: EndpointPair, rng: random.Random, until: float, loss=0.2, reorder=0.1, dup=0.05) -> None:
    for _ in range(200000):
        p.pull()
        for name in ("a", "b"):
            q = p.queues[name]
            kept = []
            for seg in q:
                if rng.random() < loss:
                    continue
                kept.append(seg)
                if rng.random() < dup:
                    kept.append(seg)
            for i in range(len(kept) - 1):
                if rng.random() < reorder:
                    kept[i], kept[i + 1] = kept[i + 1], kept[i]
            p.queues[name] = kept
        if p.queues["a"] or p.queues["b"]:
            p.deliver()
            continue
        due = p.next_timer()
        if due is None or due > until:
            return
        p.t = due
        p.a.handle_timer(p.t)
        p.b.handle_timer(p.t)
    raise AssertionError("did not settle")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_both_ways_through_loss_reorder_duplication(seed):
    rng = random.Random(seed)
    cfg = {"rto_min": 0.2, "max_retries": 15, "msl2": 1.0}
    p = EndpointPair.client_server(client=dict(cfg), server={**cfg, "recv_buffer": 64 * 1024})
    up = rng.randbytes(256 * 1024)
    down = rng.randbytes(128 * 1024)
    hostile_run(p, rng, until=1e6)
    assert p.a.state is State.ESTABLISHED and p.b.state is State.ESTABLISHED
    sent_up = sent_down = 0
    for _ in range(10000):
        sent_up += p.a.send(up[sent_up:], p.t)
        sent_down += p.b.send(down[sent_down:], p.t)
        hostile_run(p, rng, until=p.t + 0.5)
        if sent_up == len(up) and sent_down == len(down) and not p.a.in_flight and not p.b.in_flight:
            break
    p.a.close(p.t)
    p.b.close(p.t)
    hostile_run(p, rng, until=p.t + 1e5)
    assert hashlib.sha256(p.received["b"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(p.received["a"]).digest() == hashlib.sha256(down).digest()
    assert p.a.retransmits > 0 and p.b.retransmits > 0
    assert p.a.state is State.CLOSED and p.b.state is State.CLOSED
