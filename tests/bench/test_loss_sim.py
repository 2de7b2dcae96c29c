"""scripts/loss_sim.py: the simulated loss-recovery transfer moves every byte, reproducibly (same seeds,
same times), and refuses bad input with a usage error. No root, no network."""

from __future__ import annotations

import pytest
from loss_sim import main, transfer

PATH = {"loss": 10.0, "reorder": 10.0, "duplicate": 5.0, "delay_ms": 50.0, "jitter_ms": 20.0}


def test_a_lossy_transfer_finishes_and_repeats_exactly() -> None:
    first = transfer(3, 30_000, PATH, quickack=False)
    assert first == transfer(3, 30_000, PATH, quickack=False)
    seconds, resent = first
    assert 0.1 < seconds < 60 and resent > 0  # a round trip at least, losses repaired, far from the limit
    clean, none = transfer(3, 30_000, {**PATH, "loss": 0.0, "reorder": 0.0, "duplicate": 0.0, "jitter_ms": 0.0},
                           quickack=False)
    assert none == 0 and clean < seconds  # the clean path resends nothing and is faster


def test_the_summary_line_and_bad_input(capsys) -> None:
    assert main(["--runs", "2", "--bytes", "5000"]) == 0
    assert capsys.readouterr().out.startswith("2 runs, 5000 B, 10% loss")
    with pytest.raises(SystemExit) as exc:
        main(["--runs", "0"])
    assert exc.value.code == 2
