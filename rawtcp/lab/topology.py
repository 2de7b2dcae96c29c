"""The lab: two network namespaces joined by a veth pair, with a kernel TCP listener in one of them.

The link is dual-stack: IPv4 from the benchmarking range 198.18.0.0/15 and IPv6 from the
documentation prefix 2001:db8::/32 (RFC 3849; never routed). IPv6 addresses are added ``nodad``
and with duplicate address detection off, since a tentative address drops traffic for ~2 s; router
solicitations are off too. Both families get static neighbour entries, so the first SYN needs
neither ARP nor neighbour discovery. ``client_ip6=None`` makes an IPv4-only lab (IPv6 disabled).

Everything is created with iproute2 subprocesses (``ip``, ``tc``, ``ss``): they are the tools a user
would type, their errors are readable, and nothing here needs to enter a namespace itself.
A state file per lab (``/run/rawtcp/labs/<client_ns>.json``) records what was made and by whom,
so ``lab_down`` and ``reap_stale_labs`` can remove a lab left by a killed process.

Impairments use ``tc netem`` on each veth end's egress; on kernels built without netem the same
settings are applied by a user-space relay (``rawtcp.lab.relay``) that the link's egress is
redirected through (``tc`` clsact + mirred, both built into such kernels).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rawtcp.lab.errors import LabError
from rawtcp.lab.process import (
    pid_cmdline,
    run,
    spawn_ready,
    terminate,
)
from rawtcp.proc import pid_alive

STATE_DIR = Path("/run/rawtcp/labs")
NETNS_DIR = Path("/run/netns")
LISTENER_MODES = ("echo", "sink", "seed")
NO_NETEM_MESSAGE = ("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off): "
                    "network impairments are unavailable on this machine")
ROOT_MESSAGE = "rawtcp lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): run it with sudo"

# Capability bits (linux/capability.h): entering and creating namespaces needs both.
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21

# How long a listener may take to print "ready" (a cold Python start under `ip netns exec`).
_LISTENER_READY_TIMEOUT = 15.0


@dataclass
class LabConfig:
    """Names and addresses of one lab; the defaults are the lab `rawtcp lab up` makes."""

    client_ns: str = "rawtcp-client"
    server_ns: str = "rawtcp-server"
    client_if: str = "veth-c"
    server_if: str = "veth-s"
    client_ip: str = "198.18.0.1"
    server_ip: str = "198.18.0.2"
    prefix: int = 24
    port: int = 8080
    listener: str = "echo"
    client_ip6: str | None = "2001:db8::1"  # None (both): an IPv4-only lab
    server_ip6: str | None = "2001:db8::2"
    prefix6: int = 64
    stack: str = "linux"  # the TCP stack under test on the server side (rawtcp.lab.stack.STACKS)

    @property
    def dual_stack(self) -> bool:
        return self.client_ip6 is not None and self.server_ip6 is not None


@dataclass
class LabInfo:
    """What `lab_up` made."""

    config: LabConfig
    listener_pid: int | None
    listener_log: Path | None
    client_mac: str
    server_mac: str
    state_file: Path
    client_ip6: str | None = None  # the lab's IPv6 addresses, None for an IPv4-only lab
    server_ip6: str | None = None


@dataclass
class ListenerProcess:
    """A kernel listener started by `spawn_listener` (port is the bound one, useful with port 0)."""

    pid: int
    port: int
    mode: str
    netns: str | None
    log: Path | None
    popen: subprocess.Popen[bytes] = field(repr=False)


# ----------------------------------------------------------------------------------------------
# small helpers


def require_root() -> None:
    """Raise LabError unless we may create namespaces and configure links."""
    if os.geteuid() == 0:
        return
    try:
        text = Path("/proc/self/status").read_text()
        match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", text, re.M)
        caps = int(match.group(1), 16) if match else 0
    except OSError:
        caps = 0
    if not (caps >> _CAP_NET_ADMIN & 1 and caps >> _CAP_SYS_ADMIN & 1):
        raise LabError(ROOT_MESSAGE)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def _state_path(cfg: LabConfig) -> Path:
    return STATE_DIR / f"{cfg.client_ns}.json"


def _listener_log_path(cfg: LabConfig) -> Path:
    return STATE_DIR / f"{cfg.client_ns}.listener.jsonl"


def _listener_err_path(cfg: LabConfig) -> Path:
    return STATE_DIR / f"{cfg.client_ns}.listener.err"


def _ensure_state_dir() -> None:
    # Only the owner may enter: the directory names processes that lab_down will signal.
    STATE_DIR.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(STATE_DIR, 0o700)


def _create_state(cfg: LabConfig, state: dict[str, Any]) -> bool:
    """Write the first state record; False if one exists (O_EXCL: two `lab up`s cannot both win)."""
    _ensure_state_dir()
    try:
        fd = os.open(_state_path(cfg), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=1)
    return True


def _write_state(cfg: LabConfig, state: dict[str, Any]) -> None:
    _ensure_state_dir()
    path = _state_path(cfg)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=1)
    os.replace(tmp, path)


def _read_state(cfg: LabConfig) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(cfg).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# A shell prefix for commands run with `ip netns exec` that write /proc/sys: inside a container Docker
# mounts /proc/sys read-only, and `ip netns exec` gave the shell a mount namespace of its own, so
# remounting it read-write there (CAP_SYS_ADMIN) touches nothing else. A no-op where it is writable.
WRITABLE_PROC_SYS = "grep -q ' /proc/sys [^ ]* ro' /proc/mounts && mount -o remount,rw,bind /proc/sys 2>/dev/null; "


def _ipv6_conf(netns: str, settings: dict[str, str]) -> None:
    """Write net.ipv6.conf.{all,default}.KEY in ``netns`` through /proc/sys (procps' sysctl may be
    missing on a bare machine; /proc/sys/net shows the namespace of the process that opens it)."""
    args: list[str] = []
    for which in ("all", "default"):
        for key, value in settings.items():
            args += [f"/proc/sys/net/ipv6/conf/{which}/{key}", value]
    script = WRITABLE_PROC_SYS + 'while [ $# -gt 1 ]; do echo "$2" > "$1"; shift 2; done'
    run(["ip", "netns", "exec", netns, "sh", "-c", script, "sh", *args], check=False)


def _validate(cfg: LabConfig) -> None:
    for what, value in (("client address", cfg.client_ip), ("server address", cfg.server_ip)):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise LabError(f"{what} {value!r} is not an IPv4 address") from None
    if cfg.client_ip == cfg.server_ip:
        raise LabError("client and server addresses must differ")
    if not 1 <= cfg.prefix <= 30:
        raise LabError(f"prefix /{cfg.prefix} is outside 1-30")
    if (cfg.client_ip6 is None) != (cfg.server_ip6 is None):
        raise LabError("give both IPv6 addresses or neither")
    if cfg.dual_stack:
        for what, value in (("client IPv6 address", cfg.client_ip6), ("server IPv6 address", cfg.server_ip6)):
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise LabError(f"{what} {value!r} is not an IPv6 address") from None
        if ipaddress.IPv6Address(cfg.client_ip6) == ipaddress.IPv6Address(cfg.server_ip6):
            raise LabError("client and server IPv6 addresses must differ")
        if not 1 <= cfg.prefix6 <= 127:
            raise LabError(f"IPv6 prefix /{cfg.prefix6} is outside 1-127")
    if not 1 <= cfg.port <= 65535:
        raise LabError(f"port {cfg.port} is outside 1-65535")
    if cfg.client_ns == cfg.server_ns:
        raise LabError("client and server namespaces must differ")
    if cfg.stack != "linux":
        from rawtcp.lab.stack import check_stack

        check_stack(cfg.stack)
    for name in (cfg.client_ns, cfg.server_ns):
        if not name or "/" in name or name in (".", ".."):
            raise LabError(f"{name!r} is not a usable namespace name")


# ----------------------------------------------------------------------------------------------
# the listener


def spawn_listener(
    netns: str | None,
    mode: str,
    addr: str,
    port: int,
    *,
    log: Path | None = None,
    stderr_path: Path | None = None,
    close_delay: float = 0.3,
    timeout: float = _LISTENER_READY_TIMEOUT,
    addr6: str | None = None,
) -> ListenerProcess:
    """Start `python -m rawtcp.lab.listener` (inside `netns` via `ip netns exec`) and wait for "ready".

    Waiting reads the listener's own "ready <port>" line, printed after listen(): no blind sleep.
    ``addr6``: also listen on this IPv6 address, same port (a second socket).
    """
    cmd = [sys.executable, "-m", "rawtcp.lab.listener", "--mode", mode, "--addr", addr,
           "--port", str(port), "--close-delay", f"{close_delay:g}"]
    if addr6 is not None:
        cmd += ["--addr6", addr6]
    if log is not None:
        cmd += ["--log", str(log)]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    popen, words = spawn_ready(cmd, "listener", stderr_path, timeout)
    if len(words) != 2 or not words[1].isdigit():
        terminate([popen.pid])
        raise LabError(f"listener said {b' '.join(words)!r} instead of 'ready <port>'")
    return ListenerProcess(pid=popen.pid, port=int(words[1]), mode=mode, netns=netns, log=log, popen=popen)


def stop_listener(listener: ListenerProcess) -> None:
    terminate([listener.pid])


def read_listener_log(path: Path) -> list[dict[str, Any]]:
    """The listener's per-connection records (one JSON object per finished connection)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def listener_log(cfg: LabConfig) -> list[dict[str, Any]]:
    """Connections the lab's listener has finished, oldest first."""
    return read_listener_log(_listener_log_path(cfg))


# ----------------------------------------------------------------------------------------------
# up / down / status


def lab_exists(cfg: LabConfig) -> bool:
    """True if any part of the lab is present (either namespace or its state file)."""
    return netns_exists(cfg.client_ns) or netns_exists(cfg.server_ns) or _state_path(cfg).exists()


def _link_mac(netns: str, ifname: str) -> str:
    proc = run(["ip", "-n", netns, "-j", "link", "show", "dev", ifname])
    try:
        return str(json.loads(proc.stdout)[0]["address"])
    except (ValueError, LookupError, TypeError):
        raise LabError(f"cannot read the MAC address of {ifname} in {netns}") from None


def lab_up(cfg: LabConfig, listener: bool = True, *, temporary: bool = False,
           close_delay: float = 0.3) -> LabInfo:
    """Create the lab; on any failure remove whatever was made and re-raise.

    `temporary` marks a per-run lab (demo/run): `reap_stale_labs` removes it once its owner is dead.
    """
    require_root()
    _validate(cfg)
    if lab_exists(cfg):
        raise LabError("lab is already up (rawtcp lab down to remove it)")
    state: dict[str, Any] = {
        "config": asdict(cfg), "owner_pid": os.getpid(), "temporary": temporary, "phase": "creating",
        "listener_pid": None, "listener_mode": cfg.listener if listener else None,
        "listener_log": None, "impairments": None, "created": time.time(),
    }
    # Recorded before anything exists, so a process killed half-way still leaves a findable record.
    if not _create_state(cfg, state):
        raise LabError("lab is already up (rawtcp lab down to remove it)")
    created: list[str] = []
    try:
        for ns in (cfg.client_ns, cfg.server_ns):
            run(["ip", "netns", "add", ns])
            created.append(ns)
        for ns in (cfg.client_ns, cfg.server_ns):
            # Set before the veth exists, so its ends inherit "default". IPv4-only: no IPv6 at all (no
            # DAD / router solicitation / MLD noise). Dual-stack: no DAD (a tentative address drops
            # traffic, RFC 4862 §5.4) and no router solicitations or advertisements (there is no router).
            if cfg.dual_stack:
                settings = {"disable_ipv6": "0", "accept_dad": "0", "accept_ra": "0", "router_solicitations": "0"}
            else:
                settings = {"disable_ipv6": "1"}
            _ipv6_conf(ns, settings)
        # Both ends are created directly inside their namespaces: nothing ever lives in the host's.
        run(["ip", "link", "add", cfg.client_if, "netns", cfg.client_ns, "type", "veth",
              "peer", "name", cfg.server_if, "netns", cfg.server_ns])
        user_space = cfg.stack != "linux"
        if user_space:
            from rawtcp.lab import stack as stacks

            stacks.setup_server_side(cfg)
        for ns, ifname, ip in ((cfg.client_ns, cfg.client_if, cfg.client_ip),
                               (cfg.server_ns, cfg.server_if, cfg.server_ip)):
            if user_space and ns == cfg.server_ns:
                continue  # the stack behind the TAP device owns the server's addresses, not this kernel
            run(["ip", "-n", ns, "addr", "add", f"{ip}/{cfg.prefix}", "dev", ifname])
            if cfg.dual_stack:
                ip6 = cfg.client_ip6 if ns == cfg.client_ns else cfg.server_ip6
                run(["ip", "-n", ns, "addr", "add", f"{ip6}/{cfg.prefix6}", "dev", ifname, "nodad"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
        client_mac = _link_mac(cfg.client_ns, cfg.client_if)
        server_mac = stacks.stack_mac(cfg) if user_space else _link_mac(cfg.server_ns, cfg.server_if)
        # Static neighbours both ways: no ARP exchange to race with (or to clutter) the first SYN.
        run(["ip", "-n", cfg.client_ns, "neigh", "replace", cfg.server_ip, "lladdr", server_mac,
              "dev", cfg.client_if, "nud", "permanent"])
        if not user_space:
            run(["ip", "-n", cfg.server_ns, "neigh", "replace", cfg.client_ip, "lladdr", client_mac,
                  "dev", cfg.server_if, "nud", "permanent"])
        if cfg.dual_stack:
            # the same for IPv6: no neighbour solicitation (RFC 4861) before the first SYN
            assert cfg.client_ip6 is not None and cfg.server_ip6 is not None
            run(["ip", "-n", cfg.client_ns, "-6", "neigh", "replace", cfg.server_ip6, "lladdr", server_mac,
                  "dev", cfg.client_if, "nud", "permanent"])
            if not user_space:
                run(["ip", "-n", cfg.server_ns, "-6", "neigh", "replace", cfg.client_ip6, "lladdr", client_mac,
                      "dev", cfg.server_if, "nud", "permanent"])
        listener_pid = None
        log = None
        if user_space:
            # the agent always runs (it is the stack); the listener is one of its threads
            log = _listener_log_path(cfg) if listener else None
            if log is not None:
                log.unlink(missing_ok=True)
            listener_pid = stacks.start_agent(cfg, client_mac, listener=cfg.listener if listener else None,
                                              log=log, stderr_path=_listener_err_path(cfg), close_delay=close_delay)
            state["agent_socket"] = str(stacks.agent_socket(cfg))
            state["agent_pid"] = listener_pid
        elif listener:
            log = _listener_log_path(cfg)
            log.unlink(missing_ok=True)
            proc = spawn_listener(cfg.server_ns, cfg.listener, cfg.server_ip, cfg.port, log=log,
                                  stderr_path=_listener_err_path(cfg), close_delay=close_delay,
                                  addr6=cfg.server_ip6 if cfg.dual_stack else None)
            listener_pid = proc.pid
        state.update(phase="up", listener_pid=listener_pid, listener_log=str(log) if log else None,
                     client_mac=client_mac, server_mac=server_mac)
        _write_state(cfg, state)
    except BaseException:
        # Roll back only what this call made: a namespace that appeared meanwhile is someone else's.
        with contextlib.suppress(Exception):
            _teardown(cfg, state, namespaces=created)
        raise
    return LabInfo(config=cfg, listener_pid=listener_pid, listener_log=log, client_mac=client_mac,
                   server_mac=server_mac, state_file=_state_path(cfg), client_ip6=cfg.client_ip6,
                   server_ip6=cfg.server_ip6)


def _teardown(cfg: LabConfig, state: dict[str, Any] | None, namespaces: list[str] | None = None) -> list[str]:
    removed: list[str] = []
    if namespaces is None:
        namespaces = [cfg.client_ns, cfg.server_ns]
    pids: list[int] = []
    lpid = (state or {}).get("listener_pid")
    # Only signal the recorded pid if it still is our listener (pids get reused).
    if isinstance(lpid, int) and pid_alive(lpid) and "rawtcp.lab.listener" in pid_cmdline(lpid):
        pids.append(lpid)
    # Anything else still running inside the lab's namespaces would keep them (and the veth) alive.
    for ns in namespaces:
        pids += [p for p in netns_pids(ns) if p not in pids and p != os.getpid()]
    for pid in terminate(pids):
        what = "listener" if pid == lpid else "process"
        removed.append(f"{what} pid {pid}")
    for ns in namespaces:
        if netns_exists(ns):
            run(["ip", "netns", "delete", ns])
            removed.append(f"namespace {ns}")
    for path in (_listener_log_path(cfg), _listener_err_path(cfg), STATE_DIR / f"{cfg.client_ns}.agent.sock"):
        path.unlink(missing_ok=True)
    if _state_path(cfg).exists():
        _state_path(cfg).unlink(missing_ok=True)
        removed.append(f"state file {_state_path(cfg)}")
    return removed


def lab_down(cfg: LabConfig) -> list[str]:
    """Remove the lab (listener and other processes in it, namespaces and so the veths, state file).

    Works on a lab left by a killed process too: it goes by the names in `cfg`, not by the owner.
    Returns one line per thing removed.
    """
    require_root()
    if not lab_exists(cfg):
        raise LabError("no lab is up")
    return _teardown(cfg, _read_state(cfg))


@contextlib.contextmanager
def temporary_lab(cfg: LabConfig, listener: bool = True, *, close_delay: float = 0.3) -> Iterator[LabInfo]:
    """A lab for the duration of a block; always removed, whatever ends the block.

    A SIGTERM ends the block only if the caller turns it into an exception; after a SIGKILL the
    lab is found by `reap_stale_labs` (it is marked temporary with its owner's pid).
    """
    info = lab_up(cfg, listener, temporary=True, close_delay=close_delay)
    try:
        yield info
    finally:
        with contextlib.suppress(LabError):
            lab_down(cfg)


_fresh_counter = itertools.count()


def fresh_lab(prefix: str = "rawtcp", **overrides: Any) -> LabConfig:
    """A config with namespace names no other lab uses (`<prefix>-<pid>-<n>-c` / `-s`).

    Addresses stay the standard ones: the namespaces are separate, so labs do not collide.
    """
    pid = os.getpid()
    for _ in range(10_000):
        base = f"{prefix}-{pid}-{next(_fresh_counter)}"
        cfg = LabConfig(client_ns=f"{base}-c", server_ns=f"{base}-s", **overrides)
        if not lab_exists(cfg):
            return cfg
    raise LabError("cannot find an unused lab name")


def list_labs() -> list[dict[str, Any]]:
    """The state records of every lab this machine knows of."""
    out = []
    try:
        paths = sorted(STATE_DIR.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("config"), dict):
                out.append(data)
    return out


def reap_stale_labs() -> list[str]:
    """Remove labs whose owner died: temporary ones, and any killed while being created."""
    removed: list[str] = []
    for state in list_labs():
        if pid_alive(state.get("owner_pid")):
            continue
        if not (state.get("temporary") or state.get("phase") != "up"):
            continue
        try:
            cfg = LabConfig(**state["config"])
        except TypeError:
            continue
        for line in _teardown(cfg, state):
            removed.append(f"{line} (left by dead pid {state.get('owner_pid')})")
    return removed


def _interface_info(netns: str, ifname: str) -> dict[str, Any] | None:
    proc = run(["ip", "-n", netns, "-j", "addr", "show", "dev", ifname], check=False)
    if proc.returncode != 0:
        return None
    try:
        link = json.loads(proc.stdout)[0]
    except (ValueError, LookupError):
        return None
    def addresses(family: str) -> list[str]:
        return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == family]

    return {"name": ifname, "state": link.get("operstate"), "mac": link.get("address"),
            "addresses": addresses("inet"), "addresses6": addresses("inet6")}


def _netem_info(netns: str, ifname: str) -> dict[str, Any] | None:
    proc = run(["tc", "-n", netns, "qdisc", "show", "dev", ifname, "root"], check=False)
    for line in proc.stdout.splitlines():
        if " netem " in f" {line} ":
            return parse_netem(line)
    return None


def _listening(netns: str, port: int) -> bool:
    proc = run(["ss", "-N", netns, "-tlnH", f"sport = :{port}"], check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def accept_queue(netns: str, port: int) -> int | None:
    """Connections the kernel completed that the listener on `port` has not accept()ed yet."""
    proc = run(["ss", "-N", netns, "-tlnH", f"sport = :{port}"], check=False)
    # For a LISTEN socket, ss's Recv-Q column is the accept queue's length; a dual-stack lab listens
    # with one socket per family, so the queues add up.
    queues = [line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) > 1]
    if proc.returncode != 0 or not queues or not all(q.isdigit() for q in queues):
        return None
    return sum(int(q) for q in queues)


def wait_accepted(cfg: LabConfig, timeout: float = 2.0) -> bool:
    """Wait until the lab's listener has accept()ed every completed handshake.

    The seed listener's answer rides on the ACK only if it turned quick-ACK off (right after
    accept()) before the client's data arrived: a client that sends at once after the handshake
    should wait for this first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if accept_queue(cfg.server_ns, cfg.port) == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


def _tx_checksum(netns: str, ifname: str) -> bool | None:
    if shutil.which("ethtool") is None:
        return None
    proc = run(["ip", "netns", "exec", netns, "ethtool", "-k", ifname], check=False)
    match = re.search(r"^tx-checksumming:\s*(on|off)", proc.stdout, re.M)
    return None if match is None else match.group(1) == "on"


def lab_status(cfg: LabConfig) -> dict[str, Any]:
    """What exists of the lab: namespaces, interfaces, addresses, listener, netem (JSON-ready)."""
    state = _read_state(cfg) or {}
    namespaces = {ns: netns_exists(ns) for ns in (cfg.client_ns, cfg.server_ns)}
    interfaces: dict[str, Any] = {}
    netem: dict[str, Any] = {}
    for ns, ifname in ((cfg.client_ns, cfg.client_if), (cfg.server_ns, cfg.server_if)):
        if namespaces[ns]:
            info = _interface_info(ns, ifname)
            if info is not None:
                info["tx_checksum"] = _tx_checksum(ns, ifname)
            interfaces[ns] = info
            netem[ifname] = _netem_info(ns, ifname)
    listener: dict[str, Any] | None = None
    lpid = state.get("listener_pid")
    conf = state.get("config") or {}
    stack = str(conf.get("stack") or "linux")
    if lpid is not None:
        port = int(conf.get("port", cfg.port))
        listening: bool | None
        if stack == "linux":
            listening, via = namespaces[cfg.server_ns] and _listening(cfg.server_ns, port), "ss"
        elif state.get("agent_socket") and namespaces[cfg.server_ns] and pid_alive(lpid):
            # ss sees the namespace's kernel only: a user-space stack's sockets are known to its agent
            from rawtcp.lab.stack import agent_listening

            listening, via = agent_listening(str(state["agent_socket"]), port)
        else:
            listening, via = False, "the agent is not running"
        listener = {
            "pid": lpid, "alive": pid_alive(lpid), "mode": state.get("listener_mode"), "port": port,
            "listening": listening, "listening_checked_by": via, "log": state.get("listener_log"),
        }
    owner = state.get("owner_pid")
    return {
        "config": state.get("config") or asdict(cfg),
        "stack": stack,
        "agent_socket": state.get("agent_socket"),
        "up": all(namespaces.values()) and state.get("phase", "up") == "up",
        "exists": lab_exists(cfg),
        "namespaces": namespaces,
        "interfaces": interfaces,
        "listener": listener,
        "netem": netem,
        "impairments": state.get("impairments"),
        "impairment_backend": state.get("impairment_backend"),
        "relay": [{"pid": p, "alive": pid_alive(p)} for p in state.get("relay_pids") or []],
        "owner_pid": owner,
        "owner_alive": pid_alive(owner) if owner else None,
        "temporary": state.get("temporary"),
        "state_file": str(_state_path(cfg)) if state else None,
    }


# ----------------------------------------------------------------------------------------------
# impairments (tc netem) and checksum offload


def netem_args(loss: float | None = None, delay_ms: float | None = None, jitter_ms: float | None = None,
               reorder: float | None = None, duplicate: float | None = None,
               corrupt: float | None = None) -> list[str]:
    """The `tc ... netem` arguments for these settings (percentages 0-100, times in ms)."""
    for name, pct in (("loss", loss), ("reorder", reorder), ("duplicate", duplicate), ("corrupt", corrupt)):
        if pct is not None and not 0 <= pct <= 100:
            raise LabError(f"{name} {pct:g}% is outside 0-100")
    for name, ms in (("delay", delay_ms), ("jitter", jitter_ms)):
        if ms is not None and not 0 <= ms <= 60_000:
            raise LabError(f"{name} {ms:g} ms is outside 0-60000")
    if jitter_ms and not delay_ms:
        raise LabError("jitter needs a delay (--delay MS)")
    if reorder and not delay_ms:
        # netem reorders by sending some packets at once while the others wait out the delay.
        raise LabError("reorder needs a delay (--delay MS)")
    # A deep queue: under delay, netem's default 1000-packet limit would drop on its own.
    args = ["limit", "100000"]
    if delay_ms:
        args += ["delay", f"{delay_ms:g}ms"]
        if jitter_ms:
            args += [f"{jitter_ms:g}ms"]
    if loss:
        args += ["loss", "random", f"{loss:g}%"]
    if duplicate:
        args += ["duplicate", f"{duplicate:g}%"]
    if reorder:
        args += ["reorder", f"{reorder:g}%"]
    if corrupt:
        args += ["corrupt", f"{corrupt:g}%"]
    return args


_NETEM_PATTERNS = {
    "delay_ms": r"\bdelay ([\d.]+)(ms|us|s)\b",
    "jitter_ms": r"\bdelay [\d.]+(?:ms|us|s)\s+([\d.]+)(ms|us|s)\b",
    "loss": r"\bloss (?:random )?([\d.]+)%",
    "duplicate": r"\bduplicate ([\d.]+)%",
    "reorder": r"\breorder ([\d.]+)%",
    "corrupt": r"\bcorrupt ([\d.]+)%",
}
_MS_PER_UNIT = {"s": 1000.0, "ms": 1.0, "us": 0.001}


def parse_netem(line: str) -> dict[str, Any]:
    """Settings from one `tc qdisc show` netem line (missing ones are None)."""
    out: dict[str, Any] = {"text": line.strip()}
    for key, pattern in _NETEM_PATTERNS.items():
        match = re.search(pattern, line)
        if match is None:
            out[key] = None
        elif key.endswith("_ms"):
            out[key] = float(match.group(1)) * _MS_PER_UNIT[match.group(2)]
        else:
            out[key] = float(match.group(1))
    return out


def _require_up(cfg: LabConfig) -> None:
    require_root()
    if not (netns_exists(cfg.client_ns) and netns_exists(cfg.server_ns)):
        raise LabError("no lab is up (rawtcp lab up first)")


RELAY_IF = "rtimp-a"  # where the lab link's egress is redirected (its peer, RELAY_PEER_IF, is read)
RELAY_PEER_IF = "rtimp-b"


def _ends(cfg: LabConfig) -> tuple[tuple[str, str], tuple[str, str]]:
    # Egress of each end: veth-c shapes client->server, veth-s shapes server->client.
    return (cfg.client_ns, cfg.client_if), (cfg.server_ns, cfg.server_if)


def _link_exists(netns: str, ifname: str) -> bool:
    return run(["ip", "-n", netns, "link", "show", "dev", ifname], check=False).returncode == 0


def _apply_netem(cfg: LabConfig, args: list[str]) -> None:
    for ns, ifname in _ends(cfg):
        proc = run(["tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", "netem", *args], check=False)
        if proc.returncode != 0 and "qdisc kind is unknown" in proc.stderr:
            raise LabError(NO_NETEM_MESSAGE)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            raise LabError(f"tc netem on {ifname} failed: {lines[0] if lines else proc.returncode}")


def _remove_netem(cfg: LabConfig) -> list[str]:
    removed = []
    for ns, ifname in _ends(cfg):
        if netns_exists(ns) and _netem_info(ns, ifname) is not None:
            run(["tc", "-n", ns, "qdisc", "del", "dev", ifname, "root"])
            removed.append(ifname)
    return removed


def _relay_start(cfg: LabConfig, settings: dict[str, float | None]) -> list[int]:
    """netem's stand-in: redirect each end's egress through `python -m rawtcp.lab.relay`."""
    if shutil.which("ethtool") is None:
        raise LabError("ethtool not found: install it (apt-get install ethtool); impairing without netem needs it")
    pids: list[int] = []
    try:
        for ns, ifname in _ends(cfg):
            run(["ip", "-n", ns, "link", "add", RELAY_IF, "type", "veth", "peer", "name", RELAY_PEER_IF])
            # Segment and checksum in software before the relay sees a frame: it forwards frames
            # as they would leave the wire (no 64 KiB GSO frames, no partial checksums).
            run(["ip", "netns", "exec", ns, "ethtool", "-K", RELAY_IF, "tx", "off", "gso", "off", "tso", "off"])
            run(["ip", "netns", "exec", ns, "ethtool", "-K", RELAY_PEER_IF, "gro", "off"], check=False)
            run(["ip", "-n", ns, "link", "set", RELAY_IF, "up"])
            run(["ip", "-n", ns, "link", "set", RELAY_PEER_IF, "up"])
            cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "rawtcp.lab.relay",
                   "--in", RELAY_PEER_IF, "--out", ifname]
            for key, flag in (("loss", "--loss"), ("delay_ms", "--delay"), ("jitter_ms", "--jitter"),
                              ("reorder", "--reorder"), ("duplicate", "--duplicate"), ("corrupt", "--corrupt")):
                if settings.get(key):
                    cmd += [flag, f"{settings[key]:g}"]
            popen, _ = spawn_ready(cmd, "impairment relay", None, _LISTENER_READY_TIMEOUT)
            pids.append(popen.pid)
            run(["tc", "-n", ns, "qdisc", "add", "dev", ifname, "clsact"])
            run(["tc", "-n", ns, "filter", "add", "dev", ifname, "egress", "protocol", "all", "prio", "1",
                  "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", RELAY_IF])
    except BaseException:
        with contextlib.suppress(Exception):
            _relay_stop(cfg, {"relay_pids": pids})
        raise
    return pids


def _relay_stop(cfg: LabConfig, state: dict[str, Any] | None) -> list[str]:
    stopped = []
    for ns, ifname in _ends(cfg):
        if not netns_exists(ns):
            continue
        # The redirect first, so traffic flows straight again before the relay goes.
        had = run(["tc", "-n", ns, "qdisc", "del", "dev", ifname, "clsact"], check=False).returncode == 0
        if had:
            stopped.append(ifname)
    pids = [p for p in (state or {}).get("relay_pids") or []
            if isinstance(p, int) and pid_alive(p) and "rawtcp.lab.relay" in pid_cmdline(p)]
    terminate(pids)
    for ns, ifname in _ends(cfg):
        if netns_exists(ns) and _link_exists(ns, RELAY_IF):
            run(["ip", "-n", ns, "link", "del", RELAY_IF], check=False)
            if ifname not in stopped:
                stopped.append(ifname)
    return stopped


def impair(cfg: LabConfig, loss: float | None = None, delay_ms: float | None = None,
           jitter_ms: float | None = None, reorder: float | None = None, duplicate: float | None = None,
           corrupt: float | None = None, *, backend: str = "auto") -> dict[str, Any]:
    """Make the lab's links behave exactly as given, in both directions (each veth end's egress).

    Settings not given are off; giving none clears all impairments. `backend`: "netem" (tc netem),
    "relay" (rawtcp.lab.relay, for kernels without netem) or "auto" (netem, else the relay).
    Returns the settings and the backend used.
    """
    if backend not in ("auto", "netem", "relay"):
        raise LabError(f"unknown impairment backend {backend!r} (auto, netem or relay)")
    _require_up(cfg)
    settings: dict[str, float | None] = {"loss": loss, "delay_ms": delay_ms, "jitter_ms": jitter_ms,
                                         "reorder": reorder, "duplicate": duplicate, "corrupt": corrupt}
    args = netem_args(**settings)
    if not any(settings.values()):
        clear_impairments(cfg)
        return {**settings, "backend": None}
    state = _read_state(cfg) or {}
    _relay_stop(cfg, state)
    used = "relay"
    if backend != "relay":
        try:
            _apply_netem(cfg, args)
            used = "netem"
        except LabError as exc:
            if backend == "netem" or str(exc) != NO_NETEM_MESSAGE:
                raise
    pids: list[int] = []
    if used == "relay":
        _remove_netem(cfg)
        pids = _relay_start(cfg, settings)
    if state:
        state.update(impairments=settings, impairment_backend=used, relay_pids=pids)
        _write_state(cfg, state)
    return {**settings, "backend": used}


def clear_impairments(cfg: LabConfig) -> list[str]:
    """Remove every impairment (netem or relay) from both ends; returns the interfaces that had one."""
    _require_up(cfg)
    state = _read_state(cfg)
    cleared = _remove_netem(cfg)
    cleared += [ifname for ifname in _relay_stop(cfg, state) if ifname not in cleared]
    if state is not None and (state.get("impairments") is not None or state.get("relay_pids")):
        state.update(impairments=None, impairment_backend=None, relay_pids=[])
        _write_state(cfg, state)
    return cleared


def set_tx_checksum(cfg: LabConfig, on: bool) -> None:
    """Turn tx checksum offload on/off on both veth ends.

    With it on, a packet socket on the peer sees the kernel's segments with a partial checksum;
    off, every captured segment carries a valid one (see ENVIRONMENT.md).
    """
    _require_up(cfg)
    if shutil.which("ethtool") is None:
        raise LabError("ethtool not found: install it (apt-get install ethtool)")
    for ns, ifname in ((cfg.client_ns, cfg.client_if), (cfg.server_ns, cfg.server_if)):
        run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "on" if on else "off"])

