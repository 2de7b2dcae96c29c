"""The benchmark harness lives in scripts/benchmark/ (outside the package): its tests import it from there.
Appended, not prepended: scripts/ then shadows no module of the same name elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))
