"""Where a script runs: the kernel-under-test's namespace made to look like packetdrill's tun0, or the
Docker lab's listener container."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from rawtcp.script.errors import ScriptError

BIG_MTU = 65535  # veth's maximum: inbound segments of any size reach the kernel, as through tun
PATH_MTU = 1500  # packetdrill's tun0 MTU: what the kernel's route says
PATH_MTU6 = 1520  # run_all.py's --mtu for IPv6: the MSS stays 1460 under the larger header

# packetdrill's gtests/net/common/defaults.sh, applied before every script so that catalogue labs
# (which cannot call ../common/defaults.sh) see the same kernel settings as packetdrill's suite.
DEFAULT_SYSCTLS = {
    "net.ipv4.tcp_rmem": "4096 540000 15728640",
    "net.ipv4.tcp_wmem": "4096 262144 4194304",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_syn_retries": "5",
    "net.ipv4.tcp_synack_retries": "5",
    "net.ipv4.tcp_frto": "2",
    "net.ipv4.tcp_sack": "1",
    "net.ipv4.tcp_dsack": "1",
    "net.ipv4.tcp_reordering": "3",
    "net.ipv4.tcp_congestion_control": "cubic",
    "net.ipv4.tcp_slow_start_after_idle": "0",
    "net.ipv4.tcp_early_retrans": "4",
    "net.ipv4.tcp_recovery": "1",
    "net.ipv4.tcp_tso_win_divisor": "3",
    "net.ipv4.tcp_ecn": "0",
    "net.ipv4.tcp_pacing_ss_ratio": "200",
    "net.ipv4.tcp_pacing_ca_ratio": "120",
    "net.ipv4.tcp_fastopen": "0x70403",
    "net.ipv4.tcp_syncookies": "1",
}


def defaults_command() -> str:
    """A shell command that applies DEFAULT_SYSCTLS in the namespace it runs in, best effort.

    Written to /proc/sys directly: bare machines have no sysctl(8) (procps). Inside a container /proc/sys
    is read-only and is remounted read-write first (see WRITABLE_PROC_SYS).
    """
    from rawtcp.lab.topology import WRITABLE_PROC_SYS

    return WRITABLE_PROC_SYS + " ".join(f"echo '{value}' > /proc/sys/{key.replace('.', '/')} 2>/dev/null;"
                                        for key, value in DEFAULT_SYSCTLS.items())


def prepare_lab(cfg: Any, ip_version: str = "ipv4") -> None:
    """packetdrill's defaults.sh sysctls in the kernel's namespace, and tun0-like links (see below)."""
    subprocess.run(["ip", "netns", "exec", cfg.server_ns, "sh", "-c", defaults_command()], capture_output=True,
                   check=False, timeout=20)
    setup_links(cfg, ip_version)


def setup_links(cfg: Any, ip_version: str = "ipv4") -> None:
    """Make the veth behave like packetdrill's tun0 for what the kernel sees.

    packetdrill writes inbound packets into a tun device, which takes packets of any size, while a
    veth drops frames above the receiving end's MTU; scripts inject 2000-byte segments. So both
    ends get the largest MTU, and the kernel's route keeps packetdrill's path MTU: 1500 bytes over
    IPv4 (``mtu 1500``), and 1520 over IPv6 (run_all.py's ``--mtu=1520``, so the MSS is 1460 there
    too). The kernel derives its advertised MSS (1460) and its segment sizes from that route MTU, as
    on tun0; neither the MTU nor the MSS is pinned, so ICMP "fragmentation needed" / "packet too big"
    lower both, as they do on tun0.
    """
    from rawtcp.lab.process import run

    for ns, ifname in ((cfg.client_ns, cfg.client_if), (cfg.server_ns, cfg.server_if)):
        run(["ip", "-n", ns, "link", "set", "dev", ifname, "mtu", str(BIG_MTU)])
    if ip_version == "ipv6":
        net = f"{ipaddress.ip_interface(f'{cfg.server_ip6}/{cfg.prefix6}').network}"
        run(["ip", "-n", cfg.server_ns, "-6", "route", "replace", net, "dev", cfg.server_if, "proto", "kernel",
             "metric", "256", "mtu", str(PATH_MTU6)])
        run(["ip", "-n", cfg.server_ns, "-6", "route", "replace", f"{cfg.client_ip6}/128", "dev", cfg.server_if,
             "mtu", str(PATH_MTU6)])
        return
    net = f"{ipaddress.ip_interface(f'{cfg.server_ip}/{cfg.prefix}').network}"
    run(["ip", "-n", cfg.server_ns, "route", "replace", net, "dev", cfg.server_if, "proto", "kernel",
         "scope", "link", "src", cfg.server_ip, "mtu", str(PATH_MTU)])
    # packetdrill routes the remote address on its own (run via ``ip route add REMOTE dev tun0``), and
    # scripts change that route (``ip route change 192.0.2.1 via ... mtu lock 640``): the peer gets one too
    run(["ip", "-n", cfg.server_ns, "route", "replace", f"{cfg.client_ip}/32", "dev", cfg.server_if,
         "src", cfg.server_ip, "mtu", str(PATH_MTU)])


def inside(ns: str | None) -> Any:
    """Enter the peer's namespace (netns labs), or stay where we are (the Docker lab's rawtcp container)."""
    if ns is None:
        return contextlib.nullcontext()
    from rawtcp.wire import netns

    return netns.inside(ns)


@dataclass
class _DockerCfg:
    client_ip: str
    server_ip: str
    client_if: str
    helper: tuple[str, int, str] | None
    client_ns: str | None = None
    server_ns: str | None = None


@dataclass
class _DockerInfo:
    client_mac: str
    server_mac: str


def docker_target() -> tuple[_DockerCfg, _DockerInfo]:
    """``--lab docker``: rawtcp runs in the compose ``rawtcp`` container, the kernel under test is the
    ``listener`` container's, whose ``syscall_helper --serve`` performs the script's calls.

    Environment (set by docker/compose.yaml): RAWTCP_DOCKER_LOCAL (this container's address),
    RAWTCP_DOCKER_PEER (the listener's), RAWTCP_HELPER (host:port of the serving helper, default
    PEER:7700), RAWTCP_HELPER_TOKEN (shared secret). The kernel's sysctls are the listener's (fixed by
    compose at start: /proc/sys is read-only in a container); the script's own port is
    RAWTCP_DOCKER_SCRIPT_PORT (default 8081, as the listener's demo server holds 8080).
    """
    from rawtcp.wire.route import resolve

    peer = os.environ.get("RAWTCP_DOCKER_PEER")
    if not peer:
        raise ScriptError("--lab docker", None, "RAWTCP_DOCKER_PEER is not set: run it in the compose rawtcp "
                                                "container (docker compose -f docker/compose.yaml run rawtcp ...)")
    path = resolve(peer, src_ip=os.environ.get("RAWTCP_DOCKER_LOCAL") or None)
    if path.src_mac is None or path.dst_mac is None:
        raise ScriptError("--lab docker", None, f"{path.ifname} is not an Ethernet interface")
    host, _, port = os.environ.get("RAWTCP_HELPER", f"{peer}:7700").rpartition(":")
    cfg = _DockerCfg(path.src_ip, peer, path.ifname, (host, int(port), os.environ.get("RAWTCP_HELPER_TOKEN", "")))
    return cfg, _DockerInfo(path.src_mac.hex(":"), path.dst_mac.hex(":"))


