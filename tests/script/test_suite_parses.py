"""packetdrill's own Linux TCP suite parses unmodified, in each of run_all.py's three address modes.

Reads the scripts from /work/shared/packetdrill/tcp when that checkout is present (skipped otherwise);
nothing of the suite is copied here. The -D symbols are run_all.py's per variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rawtcp.script import parse_file
from rawtcp.script.ast import IcmpPacketEvent, PacketEvent
from rawtcp.script.check import check_script

SUITE = Path("/work/shared/packetdrill/tcp")

VARIANTS: dict[str, dict[str, str]] = {
    "ipv4": {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable", "CMSG_LEVEL_IP": "SOL_IP",
             "CMSG_TYPE_RECVERR": "IP_RECVERR"},
    "ipv4-mapped-ipv6": {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable",
                         "CMSG_LEVEL_IP": "SOL_IPV6", "CMSG_TYPE_RECVERR": "IPV6_RECVERR"},
    "ipv6": {"TFO_COOKIE": "c1d1e9742a47a9bc", "CMSG_LEVEL_IP": "SOL_IPV6", "CMSG_TYPE_RECVERR": "IPV6_RECVERR"},
}

# Options run_all.py passes on the command line, which replace a script's own.
COMMAND_LINE = ("ip_version", "local_ip", "remote_ip", "gateway_ip", "netmask_ip", "mtu")

# ICMP lines packetdrill itself refuses over ICMPv6 (IPv4 code names, or no CODE defined for ipv6).
REFUSED_OVER_ICMPV6 = {
    "fastopen/client/syn-data-icmp-unreach-frag-needed-with-seq.pkt": "bad ICMP code frag_needed",
    "fastopen/client/syn-data-icmp-unreach-frag-needed.pkt": "bad ICMP code frag_needed",
    "fastopen/server/icmp-baseline.pkt": "bad ICMP code CODE",
    "fastopen/server/icmp-before-accept.pkt": "bad ICMP code CODE",
    "fastopen/server/opt34/icmp-before-accept.pkt": "bad ICMP code host_unreachable",
}

SCRIPTS = sorted(SUITE.rglob("*.pkt")) if SUITE.is_dir() else []

pytestmark = pytest.mark.skipif(not SCRIPTS, reason=f"packetdrill's suite is not at {SUITE}")


def runs_in(path: Path, variant: str) -> bool:
    """run_all.py's rule: *v6.pkt scripts skip the IPv4 modes, *v4.pkt scripts skip IPv6."""
    if variant == "ipv6":
        return not path.name.endswith("v4.pkt")
    return not path.name.endswith("v6.pkt")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(SUITE)) for p in SCRIPTS])
def test_suite_script_parses(path: Path, variant: str) -> None:
    script = parse_file(path, VARIANTS[variant])
    assert script.events, path
    for event in script.events:
        if isinstance(event, PacketEvent | IcmpPacketEvent):
            assert event.direction in "<>"


class _AnyCall:
    """Every system call counts as supported: what the runner lacks is not the script's problem."""

    def __contains__(self, name: object) -> bool:
        return True


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(SUITE)) for p in SCRIPTS])
def test_suite_script_checks(path: Path, variant: str) -> None:
    if not runs_in(path, variant):
        pytest.skip(f"run_all.py does not run {path.name} as {variant}")
    found = check_script(path, VARIANTS[variant], variant, _AnyCall(), overrides=COMMAND_LINE)
    refused = REFUSED_OVER_ICMPV6.get(str(path.relative_to(SUITE))) if variant == "ipv6" else None
    assert [line.split(": ", 1)[1] for line in found] == ([refused] if refused else [])


def test_suite_is_all_there() -> None:
    # A guard against a silently emptied checkout: the suite has well over a hundred scripts.
    assert len(SCRIPTS) > 150
    assert any(isinstance(e, IcmpPacketEvent) for p in SCRIPTS for e in parse_file(p, VARIANTS["ipv4"]).events)
