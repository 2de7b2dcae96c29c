"""rawtcp: drive TCP by hand against a real Linux kernel."""

from rawtcp import compiled as _compiled

__version__ = "0.1.0"

# Before any module of the hot path is imported: its compiled build, or its sources when that build is stale.
_compiled.select()
