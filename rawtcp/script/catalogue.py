"""The lab catalogue: one self-checking exercise per question in SEED.md, in ``scripts/labs/``.

The files live in the package (rawtcp/script/labs, so an installed rawtcp has them);
``scripts/labs`` in the repository is a link to that folder.

A lab is a ``.pkt`` script (run exactly as ``rawtcp run`` runs any script) or, where the dialect
cannot say it, a Python scenario (a module with ``run(sc: Scenario) -> None``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rawtcp.script.errors import ScriptError


@dataclass(frozen=True)
class Lab:
    number: int
    name: str
    file: str
    summary: str

    @property
    def path(self) -> Path:
        return labs_dir() / self.file


LABS: tuple[Lab, ...] = (
    Lab(1, "handshake", "01-handshake.pkt", "Three-way handshake: who picks which ISN, what ack means, MSS."),
    Lab(2, "seed-exchange", "02-seed-exchange.pkt", "SEED.md's 10-segment exchange, client ISN 1000."),
    Lab(3, "syn-fin-seq", "03-syn-fin-seq.pkt", "SYN and FIN each consume one sequence number."),
    Lab(4, "lost-syn", "04-lost-syn.pkt", "A lost SYN: the kernel retransmits it after its 1 s initial RTO."),
    Lab(5, "lost-synack", "05-lost-synack.pkt", "A lost SYN-ACK: the listening kernel retransmits it."),
    Lab(6, "lost-final-ack", "06-lost-final-ack.pkt",
        "A lost final ACK: the server re-sends its SYN-ACK; data completes it."),
    Lab(7, "retransmit-data", "07-retransmit-data.pkt", "Unacknowledged data stays in the send buffer and is resent."),
    Lab(8, "half-close", "08-half-close.pkt", "Half-close: the server keeps sending after the client's FIN."),
    Lab(9, "time-wait", "09-time-wait.pkt", "TIME-WAIT: the active closer lingers and re-ACKs a repeated FIN."),
    Lab(10, "rst", "10-rst.pkt", "RST: a SYN to a closed port, and an abortive close (SO_LINGER 0)."),
    Lab(11, "simultaneous", "11-simultaneous.pkt", "Simultaneous open (crossed SYNs) and simultaneous close."),
    Lab(12, "syn-flood", "12-syn-flood.py", "SYN flood: a full backlog, then SYN cookies (tcp_syncookies)."),
    Lab(13, "isn-random", "13-isn-random.py", "ISN randomness: several connections, unrelated ISNs."),
    Lab(14, "handshake-data", "14-handshake-data.pkt",
        "Data on the handshake: on the third ACK; in a SYN without TFO."),
)


def labs_dir() -> Path:
    return Path(__file__).resolve().parent / "labs"


# The seed exchange and the questions the labs answer, shipped with the package (`rawtcp labs --lesson`).
LESSON = labs_dir() / "LESSON.md"


def find(name: str) -> Lab:
    """A lab by name, number or file name."""
    for lab in LABS:
        if name in (lab.name, str(lab.number), f"{lab.number:02d}", lab.file, Path(lab.file).stem):
            return lab
    names = ", ".join(lab.name for lab in LABS)
    raise ScriptError(name, None, f"no such lab (known: {names})")


def load_scenario(path: Path):  # type: ignore[no-untyped-def]
    """The ``run(sc)`` function of a Python lab."""
    spec = importlib.util.spec_from_file_location(f"rawtcp_lab_{path.stem.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise ScriptError(str(path), None, "cannot load this lab")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = getattr(module, "run", None)
    if body is None:
        raise ScriptError(str(path), None, "a Python lab needs a run(sc) function")
    return body


def run_lab(lab: Lab, watch_states: bool = True, pcap: str | None = None,  # type: ignore[no-untyped-def]
            ip_version: str = "ipv4", stack: str = "linux"):
    """Run one lab in fresh namespaces (over IPv6 with ``ip_version="ipv6"``) against ``stack``; a RunResult."""
    from rawtcp.script.runner import RunOptions, run_script

    path = lab.path
    if not path.exists():
        raise ScriptError(str(path), None, "lab file is missing")
    if path.suffix == ".py":
        from rawtcp.script.scenario import run_scenario

        if stack != "linux":  # the scenarios drive the kernel's own sysctls and sockets directly
            raise ScriptError(str(path), None, f"unsupported on stack {stack}: lab {lab.name} is a Python "
                                               "scenario written for the Linux kernel")

        return run_scenario(str(path), load_scenario(path), watch_states=watch_states, pcap=pcap,
                            ip_version=ip_version)
    return run_script(str(path), RunOptions(watch_states=watch_states, pcap=pcap, ip_version=ip_version,
                                            stack=stack))
