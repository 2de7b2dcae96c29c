"""The client side of the system-call agent (docs/agent-protocol.md): start Linux's agent inside a
namespace, reach a serving one over TCP (``--lab docker``) or any stack's agent on a socket; send
requests, collect answers. The script runner, the scenarios and the stacks under test share it."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from rawtcp.lab.errors import LabError
from rawtcp.lab.process import child_env
from rawtcp.proc import readline_with_timeout

_START_TIMEOUT = 15.0


class HelperProcess:
    """``ip netns exec NS python -m rawtcp.script.syscall_helper``, answering JSON lines by request id."""

    def __init__(self, netns: str, local_ip: str, remote_ip: str, bind_port: int, connect_port: int, *,
                 ip_version: str = "ipv4", script_ips: tuple[str, ...] | None = None) -> None:
        """``script_ips``: the addresses the script writes, (local, remote) pairs flattened."""
        cmd = ["ip", "netns", "exec", netns, sys.executable, "-m", "rawtcp.script.syscall_helper",
               "--local-ip", local_ip, "--remote-ip", remote_ip, "--bind-port", str(bind_port),
               "--connect-port", str(connect_port)]
        cmd += ["--ip-version", ip_version]
        for local in (script_ips or ())[0::2]:
            cmd += ["--script-local-ip", local]
        for remote in (script_ips or ())[1::2]:
            cmd += ["--script-remote-ip", remote]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=child_env())
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 1
        self._eof = False
        self._stderr = b""
        assert self._proc.stdout is not None
        first = _readline(self._proc.stdout.fileno(), _START_TIMEOUT)
        try:
            self.ready_info: dict[str, Any] = json.loads(first)
            ready = self.ready_info.get("ready")
        except (ValueError, AttributeError):
            ready = False
        if not ready:
            err = self._drain_stderr()
            self.close()
            raise LabError(f"the system-call helper did not start: {err or first.strip() or 'no output'}")
        self._reader = threading.Thread(target=self._read, name="rawtcp-syscall-helper", daemon=True)
        self._reader.start()

    def _drain_stderr(self) -> str:
        if self._proc.stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            if select.select([self._proc.stderr], [], [], 0.5)[0]:
                self._stderr += self._proc.stderr.read1(65536)  # type: ignore[attr-defined]
        lines = [ln for ln in self._stderr.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def _lines(self) -> Any:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def _write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the stream closed under us: same as end of input
            for raw in self._lines():
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                with self._cond:
                    self._replies[int(msg.get("id") or 0)] = msg
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send(self, op: str, **fields: Any) -> int:
        with self._cond:
            rid = self._next
            self._next += 1
        line = json.dumps({"id": rid, "op": op, **fields}) + "\n"
        try:
            self._write(line.encode())
        except (BrokenPipeError, OSError):
            raise LabError(f"the system-call helper died: {self._drain_stderr() or 'broken pipe'}") from None
        return rid

    def poll(self, rid: int) -> dict[str, Any] | None:
        with self._cond:
            return self._replies.pop(rid, None)

    def wait(self, rid: int, timeout: float) -> dict[str, Any] | None:
        """The reply to ``rid``, or None after ``timeout`` seconds; LabError if the helper died."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._replies:
                if self._eof:
                    raise LabError(f"the system-call helper died: {self._drain_stderr() or 'no reason given'}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._replies.pop(rid)

    def request(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        rid = self.send(op, **fields)
        reply = self.wait(rid, timeout)
        if reply is None:
            raise LabError(f"the system-call helper did not answer a {op} request within {timeout:g} s")
        return reply

    def close(self) -> None:
        """Ask it to close its sockets and exit; kill it if it does not."""
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(Exception):
                self.send("exit")
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(timeout=2)  # it sees end of input now that the helper has exited
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


class HelperConnection(HelperProcess):
    """A helper serving on TCP (``syscall_helper --serve``) in another container's namespace.

    The first line sent carries the shared token (``RAWTCP_HELPER_TOKEN``) and this run's addresses;
    the helper answers ``ready`` and gives this connection a fresh set of sockets, closed when it ends.
    """

    def __init__(self, host: str, port: int, token: str, local_ip: str, remote_ip: str, bind_port: int,
                 connect_port: int) -> None:
        self._replies = {}
        self._cond = threading.Condition()
        self._next = 1
        self._eof = False
        self._stderr = b""
        try:
            self._sock = socket.create_connection((host, port), timeout=_START_TIMEOUT)
        except OSError as exc:
            raise LabError(f"cannot reach the system-call helper at {host}:{port}: {exc.strerror or exc}") from None
        self._sock.settimeout(None)
        self._rfile = self._sock.makefile("rb")
        hello = {"token": token, "local_ip": local_ip, "remote_ip": remote_ip, "bind_port": bind_port,
                 "connect_port": connect_port}
        self._sock.sendall((json.dumps(hello) + "\n").encode())
        ready, _, _ = select.select([self._sock], [], [], _START_TIMEOUT)
        first = self._rfile.readline().decode(errors="replace") if ready else ""
        try:
            msg = json.loads(first)
        except ValueError:
            msg = {}
        if not msg.get("ready"):
            self.close()
            raise LabError(f"the system-call helper at {host}:{port} refused: {msg.get('error') or 'no answer'}")
        self.ready_info = msg
        self._reader = threading.Thread(target=self._read, name="rawtcp-syscall-helper", daemon=True)
        self._reader.start()

    def _lines(self) -> Any:
        return self._rfile

    def _write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _drain_stderr(self) -> str:
        return "connection closed"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("exit")
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            self._rfile.close()
            self._sock.close()


class AgentConnection(HelperConnection):
    """An agent of any stack (docs/agent-protocol.md) on a unix socket (a path) or TCP (``HOST:PORT``).

    ``hello`` is the first line: the run's addresses and ports; the agent answers ``ready`` with its
    protocol version and stack, kept in ``ready_info``.
    """

    def __init__(self, address: str, hello: dict[str, Any], *, timeout: float = _START_TIMEOUT) -> None:
        self._replies = {}
        self._cond = threading.Condition()
        self._next = 1
        self._eof = False
        self._stderr = b""
        self.address = address
        try:
            if address.startswith("/"):
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(address)
            else:
                host, sep, port = address.rpartition(":")
                if not sep or not port.isdigit():
                    raise LabError(f"agent address {address!r} is neither a socket path nor HOST:PORT")
                self._sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout)
        except OSError as exc:
            raise LabError(f"cannot reach the agent at {address}: {exc.strerror or exc}") from None
        self._sock.settimeout(None)
        self._rfile = self._sock.makefile("rb")
        self._sock.sendall((json.dumps(hello) + "\n").encode())
        ready, _, _ = select.select([self._sock], [], [], timeout)
        first = self._rfile.readline().decode(errors="replace") if ready else ""
        try:
            msg = json.loads(first)
        except ValueError:
            msg = {}
        if not isinstance(msg, dict) or not msg.get("ready"):
            self.close()
            reason = msg.get("error") if isinstance(msg, dict) else None
            raise LabError(f"the agent at {address} refused: {reason or 'no answer'}")
        if str(msg.get("protocol", "")).split("/")[0] != "rawtcp-agent":
            self.close()
            raise LabError(f"the agent at {address} speaks {msg.get('protocol')!r}, not rawtcp-agent/1")
        self.ready_info = msg
        self._reader = threading.Thread(target=self._read, name="rawtcp-agent", daemon=True)
        self._reader.start()

    @property
    def stack(self) -> str:
        return str(self.ready_info.get("stack") or "unknown")

    def close(self) -> None:
        with contextlib.suppress(LabError):  # an agent that already hung up cannot be told to exit
            super().close()


def _readline(fd: int, timeout: float) -> str:
    return readline_with_timeout(fd, timeout).decode(errors="replace")
