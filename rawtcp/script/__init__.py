"""packetdrill-dialect scripts: the parser (pure, no network: parser.py), the runner against a stack in
a lab (runner.py), the suite runner (suite.py), the syscall agent (syscall_helper.py) and the labs."""

from rawtcp.script.errors import ScriptError
from rawtcp.script.parser import parse, parse_file

__all__ = ["ScriptError", "parse", "parse_file"]
