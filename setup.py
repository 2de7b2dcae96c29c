"""rawtcp's build: the package as pyproject.toml describes it, with the hot path (rawtcp.compiled.MODULES:
the TCP core, the hub, the shared receive path, the nftables elements, the flood) compiled to C by mypyc.

mypyc compiles the typed Python as it is, no second implementation to keep in step, and the result runs
three to five times faster (`scripts/bench.py` records which build it measured). The build falls back to
plain Python, with a warning, when there is no C compiler or mypyc cannot compile; ``RAWTCP_PURE=1`` asks
for plain Python. The build records a digest of every compiled source, so that an edited source is never
shadowed by an old build (rawtcp/compiled.py).
"""

import os
import runpy
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
compiled = runpy.run_path(os.path.join(HERE, "rawtcp", "compiled.py"))
PACKAGE_DIR = os.path.join(HERE, "rawtcp")
STAMP_PATH = os.path.join(PACKAGE_DIR, compiled["STAMP"])


def _say(message: str) -> None:
    print(f"rawtcp build: {message}", file=sys.stderr)


def _drop_stamp() -> None:
    if os.path.exists(STAMP_PATH):
        os.remove(STAMP_PATH)


class OptionalBuildExt(build_ext):
    """A failed C build leaves a working pure-Python rawtcp, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 (compiler and linker failures come in many classes)
            _drop_stamp()
            _say(f"compiling the hot path failed ({exc}); rawtcp is installed as plain Python")


def ext_modules() -> list:
    _drop_stamp()
    if os.environ.get(compiled["PURE_ENV"]) == "1":
        _say(f"{compiled['PURE_ENV']}=1: plain Python")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not available: plain Python")
        return []
    sources = [os.path.relpath(compiled["source_path"](m, PACKAGE_DIR), HERE) for m in compiled["MODULES"]]
    try:
        extensions = mypycify(sources, opt_level="3", debug_level="0", group_name=compiled["GROUP"])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 (mypyc reports type errors by exiting)
        _say(f"mypyc cannot compile the hot path ({exc}): plain Python")
        return []
    with open(STAMP_PATH, "w", encoding="ascii") as f:
        f.write(compiled["stamp_text"](compiled["source_digests"](PACKAGE_DIR)))
    return extensions


os.chdir(HERE)  # mypycify takes paths relative to the project
setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
