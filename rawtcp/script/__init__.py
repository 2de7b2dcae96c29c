"""packetdrill-dialect scripts: the parser (pure, no network) and, later, the runner."""

from rawtcp.script.errors import ScriptError
from rawtcp.script.parser import parse, parse_file

__all__ = ["ScriptError", "parse", "parse_file"]
