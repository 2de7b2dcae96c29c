"""The CLI's exit codes and the one-line error every layer's failures become.

| code | meaning |
|------|---------|
| 0 | success |
| 1 | the operation failed (TCP gave up; no progress for `--wait` s; a check failed; compare found differences) |
| 2 | bad input: arguments, files, scripts; or an output that cannot be written (disk full, /dev/full) |
| 3 | unknown session |
| 4 | connection refused (RST answered our SYN) |
| 5 | no answer (retransmissions exhausted) |
| 6 | missing privileges |
| 7 | the lab is not up, or the lab could not be made |
| 8 | a system tool or facility is missing (nftables, tracefs, docker) |
| 130 | interrupted (SIGINT/SIGTERM), after cleaning up |
"""

from __future__ import annotations

import os

OK, FAILED, BAD_INPUT, UNKNOWN_SESSION, REFUSED, NO_ANSWER, NO_PRIVILEGE, NO_LAB, MISSING_TOOL = range(9)
INTERRUPTED = 130


class RawtcpError(Exception):
    """The base of every error rawtcp reports: a one-line message and an exit code from the table above.

    Each layer's error type subclasses it and sets its usual ``exit_code``; a raise site that means
    another code passes ``code``. The CLI reads ``exit_code`` and nothing else.
    """

    exit_code: int = FAILED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.exit_code = code


# CAP_NET_ADMIN=12, CAP_NET_RAW=13, CAP_SYS_ADMIN=21 (linux/capability.h)
_NEEDED_CAPS = {12: "CAP_NET_ADMIN", 13: "CAP_NET_RAW", 21: "CAP_SYS_ADMIN"}


def missing_capabilities() -> list[str]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
                    return [name for bit, name in _NEEDED_CAPS.items() if not eff >> bit & 1]
    except OSError:
        pass
    return [] if os.geteuid() == 0 else list(_NEEDED_CAPS.values())


def require_privileges(what: str = "this command") -> None:
    missing = missing_capabilities()
    if missing:
        raise RawtcpError(
            f"{what} needs root ({', '.join(missing)} missing): run it with sudo, "
            "or give the interpreter those capabilities",
            NO_PRIVILEGE,
        )
