"""The relay's per-frame decisions (netem's semantics), with a seeded random source."""

from __future__ import annotations

import random

from rawtcp.lab.relay import Impairment

FRAME = bytes(range(100))


def fate(now=10.0, **kwargs):
    return Impairment(rng=random.Random(7), **kwargs).fate(FRAME, now)


def test_nothing_set_passes_the_frame_at_once():
    assert fate() == [(10.0, FRAME)]


def test_certain_loss_and_certain_duplication():
    assert fate(loss=100) == []
    assert fate(duplicate=100) == [(10.0, FRAME), (10.0, FRAME)]


def test_corruption_flips_one_bit_past_the_ip_header():
    ((_, data),) = fate(corrupt=100)
    diff = [i for i in range(len(FRAME)) if data[i] != FRAME[i]]
    assert len(diff) == 1 and diff[0] >= 34 and bin(data[diff[0]] ^ FRAME[diff[0]]).count("1") == 1


def test_delay_jitter_and_reorder():
    imp = Impairment(delay_ms=50, jitter_ms=20, rng=random.Random(1))
    dues = [imp.fate(FRAME, 0.0)[0][0] for _ in range(500)]
    assert all(0.03 <= d <= 0.07 for d in dues) and max(dues) - min(dues) > 0.03
    # Reordered frames skip the delay (netem: "sent immediately"), the rest wait it out.
    assert fate(delay_ms=50, reorder=100) == [(10.0, FRAME)]
    assert fate(delay_ms=50, reorder=0)[0][0] == 10.05


def test_loss_rate_is_roughly_the_percentage():
    imp = Impairment(loss=20, rng=random.Random(3))
    lost = sum(not imp.fate(FRAME, 0.0) for _ in range(10_000))
    assert 1700 < lost < 2300
