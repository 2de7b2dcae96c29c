"""The demo's check against SEED.md's table: the same exchange passes, a different one is named in the
segment wording every other view uses."""

from __future__ import annotations

from rawtcp.session.demo import SEED_SHAPE, check_shape


def _records(shape: list[tuple[str, str, int, int | None, int]]) -> list[dict[str, object]]:
    return [{"dir": "out" if who == "client" else "in", "flags": flags, "rel_seq": seq, "rel_ack": ack,
             "len": length} for who, flags, seq, ack, length in shape]


def test_the_seed_exchange_matches() -> None:
    assert check_shape(_records(SEED_SHAPE)) == []


def test_a_different_segment_is_named_in_the_shared_wording() -> None:
    shape = list(SEED_SHAPE)
    shape[4] = ("server", "P.", 1, 21, 12)  # the kernel's reply is two bytes longer
    assert check_shape(_records(shape)) == [
        "segment 5: expected server [P.] seq 1 ack 21 len 10, got server [P.] seq 1 ack 21 len 12"]


def test_a_missing_segment_is_counted() -> None:
    assert check_shape(_records(SEED_SHAPE[:-1]))[0] == "9 segments on the wire, SEED.md has 10"
