"""The TCP stack under test: Linux's own (the default), or a user-space stack driven through its agent.

A lab's server side is either the namespace's kernel (``stack="linux"``) or, for a user-space stack, a
TAP device bridged with the lab's veth end: the stack's agent (``python -m rawtcp_pytcp_agent``) owns the
TAP device and the server addresses, and the namespace's kernel has no address there, so it never
answers for them. The agent speaks the protocol of docs/agent-protocol.md on a unix socket next to
the lab's state file: system calls for `rawtcp run`, the echo/sink/seed listeners, and the stack's
own TCP state changes, which :class:`AgentStateWatcher` records as the kernel-state watcher does.

rawtcp never imports a user-space stack: PyTCP is GPL-3 and lives in the agent's process only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawtcp.lab.errors import LabError
from rawtcp.lab.kstate import KernelStateEvent, KernelStateWatcher

if TYPE_CHECKING:
    from rawtcp.lab.topology import LabConfig

STACKS = ("linux", "pytcp")
# The agent's module and the package it needs, per user-space stack.
AGENT_MODULES = {"pytcp": "rawtcp_pytcp_agent"}
STACK_PACKAGES = {"pytcp": "pytcp"}
STACK_LABELS = {"linux": "Linux kernel", "pytcp": "PyTCP"}
# How long the stack may take to handle a segment it was sent before its state change is read as the
# segment's effect: Linux handles it in softirq within microseconds; PyTCP in Python threads reading
# its TAP device, a few milliseconds on a busy VM.
REACTION_TIMES = {"linux": 0.0003, "pytcp": 0.02}
TAP_IF = "stack0"  # the TAP device the stack's agent opens
BRIDGE_IF = "br-stack"  # joins the lab's veth end and the TAP device
_AGENT_READY_TIMEOUT = 30.0  # PyTCP's start: its own ARP probes and IPv6 address checks take a few seconds


def label(stack: str) -> str:
    """How a ladder's state column is headed for ``stack``."""
    return STACK_LABELS.get(stack, stack)


def state_label(stack: str) -> str:
    """The word before the stack's state beside a segment (``kernel: ESTABLISHED``, ``pytcp: ESTABLISHED``)
    and on its state changes: Linux's is its kernel (the spelling of every ladder, capture comment and
    states file rawtcp has written), any other stack's is its name."""
    return "kernel" if stack == "linux" else stack


def label_stack(word: str) -> str:
    """The stack whose state column ``word`` (a :func:`state_label`) heads."""
    return "linux" if word == "kernel" else word


def reaction_time(stack: str) -> float:
    """Seconds ``stack`` may take to handle an inbound segment (see REACTION_TIMES)."""
    return REACTION_TIMES.get(stack, max(REACTION_TIMES.values()))


def check_stack(stack: str) -> None:
    """LabError unless ``stack`` is known and its agent can run here (its optional package installed)."""
    if stack not in STACKS:
        raise LabError(f"unknown stack {stack!r} (one of {', '.join(STACKS)})")
    package = STACK_PACKAGES.get(stack)
    if package is not None and importlib.util.find_spec(package) is None:
        raise LabError(f"the {stack} stack needs {package}: pip install 'rawtcp[{stack}]'")


def available(stack: str) -> bool:
    try:
        check_stack(stack)
    except LabError:
        return False
    return True


def stack_mac(cfg: LabConfig) -> str:
    """The user-space stack's MAC: locally administered, with the server's IPv4 address in it (readable
    in a capture, and distinct per lab address)."""
    octets = ipaddress.IPv4Address(cfg.server_ip).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in octets)


def agent_socket(cfg: LabConfig) -> Path:
    from rawtcp.lab.topology import STATE_DIR

    return STATE_DIR / f"{cfg.client_ns}.agent.sock"


def setup_server_side(cfg: LabConfig) -> None:
    """In the server namespace: a bridge joining the lab's veth end and a persistent TAP device.

    No address on either: the stack behind the TAP device owns the server's addresses.
    """
    from rawtcp.lab.process import run

    ns = cfg.server_ns
    run(["ip", "-n", ns, "link", "add", "name", BRIDGE_IF, "type", "bridge", "stp_state", "0",
              "forward_delay", "0"])
    run(["ip", "-n", ns, "tuntap", "add", "dev", TAP_IF, "mode", "tap"])
    for ifname in (cfg.server_if, TAP_IF):
        run(["ip", "-n", ns, "link", "set", ifname, "master", BRIDGE_IF])
    for ifname in ("lo", cfg.server_if, TAP_IF, BRIDGE_IF):
        run(["ip", "-n", ns, "link", "set", ifname, "up"])


def start_agent(cfg: LabConfig, client_mac: str, *, listener: str | None, log: Path | None,
                stderr_path: Path | None, close_delay: float = 0.3) -> int:
    """Start the stack's agent in the server namespace; returns its pid once it said "ready"."""
    from rawtcp.lab.process import spawn_ready

    module = AGENT_MODULES[cfg.stack]
    sock = agent_socket(cfg)
    sock.unlink(missing_ok=True)
    cmd = ["ip", "netns", "exec", cfg.server_ns, sys.executable, "-m", module, "--interface", TAP_IF,
           "--mac", stack_mac(cfg), "--ip4", f"{cfg.server_ip}/{cfg.prefix}", "--control", str(sock),
           "--neighbour", f"{cfg.client_ip}={client_mac}"]
    if cfg.dual_stack:
        cmd += ["--ip6", f"{cfg.server_ip6}/{cfg.prefix6}", "--neighbour", f"{cfg.client_ip6}={client_mac}"]
    if listener is not None:
        cmd += ["--listener", listener, "--port", str(cfg.port), "--close-delay", f"{close_delay:g}"]
        if log is not None:
            cmd += ["--log", str(log)]
    popen, _words = spawn_ready(cmd, f"the {cfg.stack} agent", stderr_path, _AGENT_READY_TIMEOUT)
    return popen.pid


def lab_stack(client_ns: str | None) -> tuple[str, Path | None]:
    """The stack of the lab whose client namespace is ``client_ns`` and its agent's socket."""
    from rawtcp.lab.topology import LabConfig, _read_state

    if not client_ns:
        return "linux", None
    state = _read_state(LabConfig(client_ns=client_ns)) or {}
    stack = str((state.get("config") or {}).get("stack") or "linux")
    sock = state.get("agent_socket")
    return stack, Path(sock) if sock else None


def agent_listening(address: str, port: int, timeout: float = 3.0) -> tuple[bool | None, str]:
    """Whether the stack behind the agent at ``address`` listens on ``port``, asked over the protocol's
    ``listening`` request (``ss`` sees only the namespace's kernel, never a user-space stack's sockets).

    Returns (answer, how): None when the agent could not be asked, with the reason in ``how``.
    """
    from rawtcp.lab.agent import AgentConnection

    try:
        conn = AgentConnection(address, {"protocol": "rawtcp-agent/1", "watch": True}, timeout=timeout)
    except LabError as exc:
        return None, str(exc)
    try:
        reply = conn.request("listening", timeout=timeout)
    except LabError as exc:
        return None, str(exc)
    finally:
        conn.close()
    if not isinstance(reply.get("listening"), list):
        why = reply.get("script_error") or reply.get("unsupported") or "no answer"
        return None, f"the {conn.stack} agent cannot say: {why}"
    ports = {int(item.get("port", -1)) for item in reply["listening"] if isinstance(item, dict)}
    return port in ports, f"agent:{conn.stack}"


def state_watcher(client_ns: str | None, ports: Iterable[int], server_ns: str | None = None) -> Any:
    """A started watcher of the stack's own TCP states for the lab of ``client_ns``: the kernel's
    (tracefs or sock_diag), or the agent's for a user-space stack."""
    stack, sock = lab_stack(client_ns)
    if stack != "linux" and sock is not None:
        return AgentStateWatcher(str(sock)).start(ports)
    return KernelStateWatcher(server_ns).start(ports)


class AgentStateWatcher(KernelStateWatcher):
    """The stack's state changes as its agent records them (the ``states`` request, long-polled).

    The agent stamps each change with CLOCK_MONOTONIC, as tracefs does, so the ladder's annotation
    is the same code for every stack.
    """

    POLL_WAIT = 0.05  # seconds the agent holds a ``states`` request open when nothing changed

    def __init__(self, address: str) -> None:
        super().__init__(None, "sock_diag")
        self.address = address
        self._conn: Any = None
        self._since = 0
        self._ports: set[int] = set()

    def start(self, ports: Iterable[int] = ()) -> AgentStateWatcher:
        from rawtcp.lab.agent import AgentConnection

        if self._thread is not None:
            raise LabError("state watcher already started")
        self._ports = {int(p) for p in ports}
        self._conn = AgentConnection(self.address, {"protocol": "rawtcp-agent/1", "watch": True})
        self._stop.clear()
        self.source = f"agent:{self._conn.stack}"
        self.stack = self._conn.stack  # the agent names its stack in its ready line
        self._thread = threading.Thread(target=self._poll_agent, name="stack-states", daemon=True)
        self._thread.start()
        return self

    def _poll_agent(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self._conn.request("states", timeout=5.0, since=self._since, wait=self.POLL_WAIT)
            except LabError:
                break
            events = []
            for raw in reply.get("events") or []:
                with contextlib.suppress(TypeError, KeyError):
                    event = KernelStateEvent(**raw)
                    if not self._ports or event.sport in self._ports or event.dport in self._ports:
                        events.append(event)
            self._since = int(reply.get("next", self._since))
            with self._cond:
                self._rounds += 1
            self._add(events)
        with self._cond:
            self._thread = None
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        with self._cond:
            self._cond.notify_all()

    def sync(self, timeout: float = 1.0) -> bool:
        """Wait for a whole poll round that began after this call."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._rounds + 2
            while self._rounds < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True


def lab_in_use(client_ns: str = "rawtcp-client") -> tuple[LabConfig, Any]:
    """The lab that `rawtcp lab up` made (config and LabInfo), for a run through an agent already serving."""
    from rawtcp.lab.topology import LabConfig, LabInfo, _read_state, _state_path

    state = _read_state(LabConfig(client_ns=client_ns))
    if not state or state.get("phase") != "up":
        raise LabError(f"no lab with client namespace {client_ns} is up (rawtcp lab up first): "
                       "--agent runs in the lab that is up")
    try:
        cfg = LabConfig(**state["config"])
        info = LabInfo(config=cfg, listener_pid=state.get("listener_pid"), listener_log=None,
                       client_mac=str(state["client_mac"]), server_mac=str(state["server_mac"]),
                       state_file=_state_path(cfg), client_ip6=cfg.client_ip6, server_ip6=cfg.server_ip6)
    except (KeyError, TypeError) as exc:
        raise LabError(f"the lab's state file is unreadable: {exc}") from None
    return cfg, info
