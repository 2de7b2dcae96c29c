"""The system-call helper: ``ip netns exec NS python -m rawtcp.script.syscall_helper --local-ip A --remote-ip B``.

It lives in the kernel-under-test's namespace and talks JSON lines over stdin/stdout:

    {"id": 1, "op": "call", "name": "read", "args": [...], "result": {...}, "errno": null}
    {"id": 2, "op": "cmd", "cmd": "../common/defaults.sh", "cwd": "/path/of/script"}
    {"id": 3, "op": "tcpinfo"}
    {"id": 4, "op": "config", "live_start": 1234.5, "tolerance_usecs": 4000}
    {"id": 5, "op": "state"}
    {"id": 6, "op": "listening"}
    {"id": 7, "op": "exit"}

``live_start`` is script time 0 on CLOCK_MONOTONIC and ``tolerance_usecs`` the script's tolerance: a
recvmsg() checking a scm_timestamping needs both (any request may carry them). Without ``live_start``
the helper takes the start of the script's first system call as time 0.

Addresses: ``--ip-version ipv4|ipv4-mapped-ipv6|ipv6`` is packetdrill's address mode (``--local-ip`` and
``--remote-ip`` are IPv6 addresses in ipv6 mode); ``--script-local-ip``/``--script-remote-ip`` (repeatable)
name the literals the script uses for either side, on top of packetdrill's own defaults.

Shell commands run with ``PACKETDRILL_PID`` set to the helper's pid, the parent of their /bin/sh, as
packetdrill sets it to its own: so ``set_sysctls.py`` (which writes /tmp/sysctl_restore_$PACKETDRILL_PID.sh)
and a later ``/tmp/sysctl_restore_${PPID}.sh`` name the same file.

A blocking call (``"blocking": true``) runs in a thread of its own, so a blocked ``accept()`` does not
stop the runner's packets or later requests; everything else runs at once. Each request is answered
with ``{"id": N, ...}`` when it finishes, with its start and end times on CLOCK_MONOTONIC. The
helper says ``ready`` first (``{"id": 0, "ready": true, "protocol": "rawtcp-agent/1", "stack": "linux"}``).
On exit (or end of input) it closes every socket the script opened. ``--serve HOST:PORT`` serves runs
over TCP instead (the Docker lab).

This is the Linux implementation of the agent protocol that docs/agent-protocol.md describes (version
``PROTOCOL``): any TCP stack's agent that speaks it can stand in for this helper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from rawtcp.core.state_names import rfc_name_of_number
from rawtcp.script.syscalls import IP_MODES, Addresses, CallScriptError, Executor, realtime_priority

_OUTPUT_TAIL = 65536  # characters of a command's output sent back (the end of it)

PROTOCOL = "rawtcp-agent/1"  # docs/agent-protocol.md; bumped only for changes an old runner would misread
STACK = "linux"

class Unsupported(Exception):
    """What this stack's socket API cannot express: answered ``{"unsupported": ...}`` (the runner exits 2)."""


def ready_message(stack: str = STACK, **extra: Any) -> dict[str, Any]:
    """The first line an agent sends: its protocol version and which stack it drives."""
    return {"id": 0, "ready": True, "protocol": PROTOCOL, "stack": stack, **extra}


class Helper:
    def __init__(self, executor: Executor, write: Callable[[str], None] | None = None) -> None:
        self.executor = executor
        self._out_lock = threading.Lock()
        self._write = write or _stdout_write

    def reply(self, message: dict[str, Any]) -> None:
        line = json.dumps(message) + "\n"
        with self._out_lock:
            self._write(line)

    def serve(self, lines: Iterable[str]) -> None:
        """Answer requests until ``exit`` or the end of input, then close the script's sockets."""
        try:
            for line in lines:
                if not line.strip():
                    continue
                req = json.loads(line)
                if req.get("op") == "exit":
                    self.reply({"id": req.get("id"), "bye": True})
                    break
                if req.get("blocking"):
                    threading.Thread(target=self.handle, args=(req,), daemon=True).start()
                else:  # inline: no thread start between the runner's request and the system call
                    self.handle(req)
        finally:
            self.executor.close_all()

    def _configure(self, req: dict[str, Any]) -> None:
        if req.get("live_start") is not None:
            self.executor.live_start = float(req["live_start"])
        if req.get("tolerance_usecs") is not None:
            self.executor.tolerance_usecs = int(req["tolerance_usecs"])

    def handle(self, req: dict[str, Any]) -> None:
        rid = req.get("id")
        try:
            op = req.get("op")
            self._configure(req)
            if op == "config":
                self.reply({"id": rid, "ok": True})
            elif op == "call":
                outcome = self.executor.call(req["name"], req["args"], req["result"], req.get("errno"))
                self.reply({"id": rid, **outcome.to_dict()})
            elif op == "cmd":
                start = time.monotonic()
                cwd = req.get("cwd")
                if not cwd or not os.path.isdir(cwd):  # a served helper may not see the script's directory
                    cwd = None
                proc = subprocess.run(["/bin/sh", "-c", req["cmd"]], cwd=cwd, env=command_env(),
                                      capture_output=True, text=True, errors="replace",
                                      timeout=req.get("timeout", 60), check=False)
                output = (proc.stdout + proc.stderr)[-_OUTPUT_TAIL:]
                self.reply({"id": rid, "status": proc.returncode, "output": output, "start": start,
                            "end": time.monotonic()})
            elif op == "tcpinfo":
                self.reply({"id": rid, "info": self.executor.tcp_info(), "time": time.monotonic()})
            elif op == "state":
                self.reply({"id": rid, "state": self.state(req.get("fd")), "time": time.monotonic()})
            elif op == "listening":
                self.reply({"id": rid, "listening": self.listening()})
            else:
                self.extra_op(op, req)
        except Unsupported as exc:
            self.reply({"id": rid, "unsupported": str(exc)})
        except CallScriptError as exc:
            self.reply({"id": rid, "script_error": str(exc)})
        except subprocess.TimeoutExpired:
            self.reply({"id": rid, "status": -1, "output": "command timed out", "start": 0, "end": 0})
        except Exception as exc:  # noqa: BLE001 (report, never die silently: the runner is waiting for this id)
            self.reply({"id": rid, "fatal": f"{type(exc).__name__}: {exc}"})


    def extra_op(self, op: Any, req: dict[str, Any]) -> None:
        """Requests beyond the common ones (another stack's agent adds its own here)."""
        self.reply({"id": req.get("id"), "script_error": f"unknown helper request {op!r}"})

    def listening(self) -> list[dict[str, Any]]:
        """The stack's listening TCP sockets, ``{"addr": ..., "port": ...}`` each: here the namespace's
        kernel's, from /proc/net/tcp and tcp6 (what ``ss -tl`` reads, without needing iproute2)."""
        return proc_net_listeners()

    def state(self, fd: Any) -> str:
        """The stack's own state of script fd ``fd`` (default: the socket under test), RFC-spelled."""
        socks = self.executor.socks
        num = self.executor.sut if fd is None else int(fd)
        sock = socks.get(num) if num is not None else None
        if sock is None:
            raise CallScriptError(f"state: no socket with script fd {num}")
        try:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError as exc:
            raise CallScriptError(f"state: cannot read TCP_INFO: {exc.strerror}") from None
        return rfc_name_of_number(raw[0])


_TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN = 10, as /proc/net/tcp prints it


def proc_net_listeners(root: str = "/proc/net") -> list[dict[str, Any]]:
    """The kernel's listening TCP sockets in this process's namespace, from ``root``/tcp and tcp6."""
    found: list[dict[str, Any]] = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(os.path.join(root, name), encoding="ascii") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue  # no IPv6 in this kernel (or namespace): nothing listens there
        for row in rows:
            fields = row.split()
            if len(fields) < 4 or fields[3] != _TCP_LISTEN:
                continue
            addr_hex, _, port_hex = fields[1].partition(":")
            raw = bytes.fromhex(addr_hex)
            # the kernel prints each 32-bit word of the address in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append({"addr": socket.inet_ntop(family, packed), "port": int(port_hex, 16)})
    return found


def writable_sysctls() -> None:
    """Make the namespace's /proc/sys writable for the script's commands (defaults.sh, set_sysctls.py).

    Inside a container Docker mounts /proc/sys read-only. ``ip netns exec`` gave this helper a mount
    namespace of its own, so remounting it read-write here (CAP_SYS_ADMIN, which the lab's containers
    have) touches nothing outside this helper and the commands it starts. Elsewhere it is already
    writable and this is a no-op; failure leaves the commands to report their own errors.
    """
    with contextlib.suppress(OSError):
        if os.statvfs("/proc/sys").f_flag & os.ST_RDONLY:
            subprocess.run(["mount", "-o", "remount,rw,bind", "/proc/sys"], capture_output=True, check=False,
                           timeout=10)


def command_env() -> dict[str, str]:
    """The environment of a script's shell command: ours, plus PACKETDRILL_PID (see the module doc)."""
    return {**os.environ, "PACKETDRILL_PID": str(os.getpid())}


def _stdout_write(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def serve_tcp(address: str, token: str, netns: str | None = None) -> None:
    """``--serve HOST:PORT``: one run at a time over TCP (the Docker lab's listener container).

    The first line of a connection must carry the shared token and the run's addresses; every
    connection gets fresh sockets, all closed when it ends. Only meant for the lab's internal network.
    With ``netns`` the serving socket is opened where the helper was started (say the host, where
    ``rawtcp run --agent HOST:PORT`` reaches it) and everything else — the script's sockets, its
    commands — happens in that namespace (the lab's server side): a socket keeps the namespace it
    was made in.
    """
    host, _, port = address.rpartition(":")
    srv = socket.create_server((host or "0.0.0.0", int(port)), reuse_port=False)
    if netns is not None:
        from rawtcp.wire.netns import enter

        enter(netns)  # before any thread starts: threads inherit this thread's namespace
    print(f"ready {srv.getsockname()[1]}", flush=True)
    while True:
        conn, _peer = srv.accept()
        with conn, conn.makefile("r", encoding="utf-8", errors="replace") as rfile:
            try:
                hello = json.loads(rfile.readline() or "{}")
            except ValueError:
                hello = {}
            if not token or hello.get("token") != token:
                conn.sendall(b'{"id": 0, "error": "bad or missing token (RAWTCP_HELPER_TOKEN)"}\n')
                continue
            try:
                addrs = Addresses(str(hello["local_ip"]), str(hello["remote_ip"]), int(hello.get("bind_port", 8080)),
                                  int(hello.get("connect_port", 8080)), str(hello.get("ip_version", "ipv4")),
                                  tuple(hello.get("script_local_ips", ())), tuple(hello.get("script_remote_ips", ())))
            except (KeyError, ValueError, TypeError) as exc:
                conn.sendall(json.dumps({"id": 0, "error": f"bad hello: {exc}"}).encode() + b"\n")
                continue
            lock = threading.Lock()

            def send(line: str, conn: socket.socket = conn, lock: threading.Lock = lock) -> None:
                with lock, contextlib.suppress(OSError):
                    conn.sendall(line.encode())

            helper = Helper(Executor(addrs), send)
            helper.reply(ready_message())
            helper.serve(rfile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rawtcp.script.syscall_helper")
    parser.add_argument("--local-ip")
    parser.add_argument("--remote-ip")
    parser.add_argument("--bind-port", type=int, default=8080)
    parser.add_argument("--connect-port", type=int, default=8080)
    parser.add_argument("--ip-version", choices=IP_MODES, default="ipv4", help="packetdrill's address mode")
    parser.add_argument("--script-local-ip", action="append", default=[],
                        help="an address the script uses for the kernel's side (repeatable)")
    parser.add_argument("--script-remote-ip", action="append", default=[],
                        help="an address the script uses for the peer's side (repeatable)")
    parser.add_argument("--serve", metavar="HOST:PORT", help="serve runs over TCP (token in RAWTCP_HELPER_TOKEN)")
    parser.add_argument("--netns", metavar="NAME",
                        help="with --serve: make the calls in this network namespace (serve from this one)")
    args = parser.parse_args(argv)
    realtime_priority()
    if args.netns and not args.serve:
        parser.error("--netns goes with --serve (otherwise start the helper with `ip netns exec`)")
    if args.serve:
        serve_tcp(args.serve, os.environ.get("RAWTCP_HELPER_TOKEN", ""), args.netns)
        return 0
    if not args.local_ip or not args.remote_ip:
        parser.error("--local-ip and --remote-ip are required")
    writable_sysctls()
    addrs = Addresses(args.local_ip, args.remote_ip, args.bind_port, args.connect_port, args.ip_version,
                      tuple(args.script_local_ip), tuple(args.script_remote_ip))
    helper = Helper(Executor(addrs))
    helper.reply(ready_message())
    helper.serve(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
