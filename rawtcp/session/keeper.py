"""The session keeper: a background process that holds one hand-driven connection between commands.

Started by ``rawtcp connect`` / ``rawtcp listen`` as ``python -m rawtcp.session.keeper SPEC_JSON``. It
enters the namespace, opens the connection, streams its records as JSON lines on stdout until the
connection is ESTABLISHED (or fails), then detaches and serves commands on its 0600 unix socket,
keeping the connection correct meanwhile: it ACKs and buffers incoming data, retransmits, answers
keepalives and window probes, honours TIME-WAIT, and closes the connection after an idle time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import Any, Literal

from rawtcp.capture.streams import endpoint_name
from rawtcp.core import State
from rawtcp.core import events as ev
from rawtcp.core import seq as sq
from rawtcp.session import registry
from rawtcp.session.connection import Connection
from rawtcp.session.errors import PeerRefused, PeerSilent, ProtocolError, SessionError
from rawtcp.session.kernelview import KernelView
from rawtcp.session.protocol import (
    CloseRequest,
    DataReply,
    DoneReply,
    ErrorReply,
    HistoryReply,
    HistoryRequest,
    KeeperSpec,
    Progress,
    Record,
    RecvRequest,
    Reply,
    Request,
    SendRequest,
    Status,
    StatusRequest,
    bad_request,
    decode_request,
    reply_to_json,
)

PROGRESS_EVERY = 0.25  # seconds between progress records to a command that asked for them (a terminal's)


class Terminate(BaseException):
    """SIGTERM/SIGINT/SIGHUP: unwind through every ``finally`` so nothing is left behind."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise Terminate(signum)


class Sending:
    """Where one send request stands: its bytes, how many the endpoint took, how many are ACKed."""

    def __init__(self, data: bytes, snd_una: int, backlog: int) -> None:
        self.data = data
        self.queued = 0  # bytes the endpoint's send buffer has taken so far
        # Our bytes are acknowledged once SND.UNA has passed what earlier sends left unacknowledged.
        self.una0 = self.last_una = snd_una
        self.backlog = backlog

    @property
    def target(self) -> int:
        return len(self.data)

    def acked(self, snd_una: int) -> int:
        """How many of this send's bytes the peer has acknowledged."""
        return min(self.target, max(0, sq.sub(snd_una, self.una0) - self.backlog))


class Client:
    """One CLI command connected to the control socket, with the request it is waiting on."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.request: Request | None = None
        self.sending: Sending | None = None  # a send request's progress
        self.last_rcv = 0  # a recv request: RCV.NXT when it last moved
        self.deadline: float | None = None
        self.wait: float | None = None  # the request's patience, seconds; send/recv renew it on progress
        self.started = 0.0
        self.next_report: float | None = None  # when the next progress record is due, if it asked for them

    def send(self, rec: Record) -> None:
        with contextlib.suppress(OSError):  # a client that went away just misses the rest
            # Blocking, bounded, for the write: a big record (recv's data) exceeds the socket buffer, and
            # sendall on the non-blocking socket would stop part-way, leaving the command waiting forever.
            self.sock.settimeout(30.0)
            try:
                self.sock.sendall(json.dumps(rec).encode() + b"\n")
            finally:
                self.sock.setblocking(False)


class Keeper:
    def __init__(self, spec: KeeperSpec, out: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.out = out  # the starting command's pipe until detach, then None
        self.idle = spec.idle
        self.clients: list[Client] = []
        self.control: socket.socket | None = None
        self.conn: Connection | None = None
        self.watcher: Any = None
        self.view: KernelView | None = None
        self.history: list[Record] = []
        self.last_activity = time.monotonic()
        self.received_total = 0

    # --- records ------------------------------------------------------------------------------
    def _record(self, rec: Record) -> None:
        assert self.view is not None
        self.view.add(rec, time.monotonic())

    def _emit(self, rec: Record) -> None:
        self.history.append(rec)
        if self.out is not None:
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        for client in self.clients:
            if client.request is not None:
                client.send(rec)

    def _release(self, force: bool = False) -> None:
        if self.view is not None:
            self.view.release(time.monotonic(), self._emit, force=force)

    # --- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        spec = self.spec
        cspec = spec.connection
        self.control = registry.bind_control_socket(self.name)
        self.conn = Connection(cspec)
        ep = self.conn.endpoint
        self.driver = self.conn.driver
        if spec.kernel is not None:  # the kernel peer lives in a lab namespace
            self.watcher = _start_watcher(spec.kernel.port, spec.netns)
        # The kernel socket's own view: its address is our remote, ours is its remote.
        ours = (self.conn.local_ip, ep.local_port)
        theirs = (cspec.remote_ip, cspec.remote_port) if not cspec.passive else None
        self.view = KernelView(self.watcher, theirs, ours if theirs else None, self.driver.t0)
        self.driver.listeners.append(self._record)
        if cspec.passive:
            # Once the SYN names the peer, the kernel view follows that kernel client's socket.
            learn = self.driver.accept_peer
            assert learn is not None

            def accept_peer(decoded: Any, frame: bytes) -> None:
                learn(decoded, frame)
                assert self.view is not None and self.conn is not None
                peer = self.conn.spec  # the Connection's copy, which now names the peer
                self.view.set_peer((peer.remote_ip, peer.remote_port), ours)

            self.driver.accept_peer = accept_peer
        registry.write_info(registry.SessionInfo(
            name=self.name, pid=os.getpid(), netns=spec.netns, local=endpoint_name(ours),
            remote=endpoint_name((cspec.remote_ip, cspec.remote_port)) if not cspec.passive else "*:*",
            role="server" if cspec.passive else "client", iface=self.conn.path.ifname,
            started=time.time(), pcap=cspec.pcap,
        ))

    def open(self) -> None:
        assert self.conn is not None
        ep = self.conn.endpoint
        spec = self.conn.spec
        now = time.monotonic()
        if spec.passive:
            ep.open_passive(now)
            self.driver.flush(now)
            self._release(force=True)  # "CLOSED → LISTEN" tells the starting command we are ready for a SYN
        else:
            ep.open_active(now)
        # An active open is bounded by the endpoint itself (--retries with RTO backoff: 127 s by default);
        # a shorter bound here would cut that short and say "open did not complete" instead of
        # "no SYN-ACK after N tries" (exit 5).
        timeout = self.spec.open_timeout

        def opened() -> bool:
            # A slow open shows what happened so far (a SYN retransmitted for minutes must not be
            # silent); a quick one is printed at once at the end, as before.
            if time.monotonic() - now > 0.5:
                self._release()
            return ep.state not in (State.SYN_SENT, State.SYN_RECEIVED, State.LISTEN)

        self.driver.run_until(opened, timeout)
        self._release(force=True)
        if ep.state is not State.ESTABLISHED:
            raise self._failure("open")

    def _failure(self, what: str) -> SessionError:
        assert self.conn is not None
        spec = self.conn.spec
        for event in reversed(self.driver.events):
            if isinstance(event, ev.ConnectionRefused):
                return PeerRefused(f"connection refused: RST from {spec.remote_ip}:{spec.remote_port}")
            if isinstance(event, ev.ConnectionReset):
                return SessionError(f"connection reset by {spec.remote_ip}:{spec.remote_port}")
            if isinstance(event, ev.TimedOut):
                tries = event.tries + 1  # the first transmission and each retransmission
                if event.what.upper().startswith("SYN"):
                    return PeerSilent(f"no SYN-ACK from {spec.remote_ip}:{spec.remote_port} after "
                                      f"{tries} tries, {event.elapsed:.1f} s")
                return PeerSilent(f"gave up: {event.what} not acknowledged after {tries} tries, "
                                  f"{event.elapsed:.1f} s")
        return SessionError(f"{what} did not complete (state {self.conn.endpoint.state})")

    def detach(self) -> None:
        """The starting command has what it waited for: stop writing to it and live on alone."""
        if self.out is not None:
            self.out.flush()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            self.out = None

    # --- serving -------------------------------------------------------------------------------
    def status(self, kind: Literal["status", "ready"] = "status") -> Status:
        assert self.conn is not None
        ep = self.conn.endpoint
        iss, irs = ep.iss, ep.irs
        kernel = self.view.current() if self.view is not None else None
        return {
            "type": kind, "name": self.name, "pid": os.getpid(), "state": str(ep.state),
            "local": endpoint_name((self.conn.local_ip, ep.local_port)),
            "remote": endpoint_name((str(self.conn.spec.remote_ip), ep.remote_port)),
            "snd_una": ep.snd_una, "snd_nxt": ep.snd_nxt, "rcv_nxt": ep.rcv_nxt,
            "rel_snd_una": sq.sub(ep.snd_una, iss), "rel_snd_nxt": sq.sub(ep.snd_nxt, iss),
            "rel_rcv_nxt": sq.sub(ep.rcv_nxt, irs), "iss": iss, "irs": irs,
            "peer_window": ep.snd_wnd, "peer_mss": ep.peer_mss, "send_mss": ep.send_mss,
            "rcv_wnd": ep.rcv_wnd, "readable": ep.readable, "unsent": ep.unsent, "in_flight": ep.in_flight,
            "peer_closed": ep.peer_fin, "retransmits": ep.retransmits,
            # what was asked for and what both SYNs agreed on (RFC 2018 §2, RFC 7323 §2.2, §3.2)
            "profile": self.conn.spec.profile, "sack": ep.sack_ok, "timestamps": ep.ts_ok,
            "snd_wscale": ep.snd_wscale, "rcv_wscale": ep.rcv_wscale, "nagle": ep.config.nagle,
            "delayed_ack": ep.config.delayed_ack, "rto": round(ep.rto, 3),
            "srtt": None if ep.srtt is None else round(ep.srtt, 6), "cwnd": ep.cwnd,
            "kernel_state": kernel, "kernel_state_source": getattr(self.watcher, "source", None),
            "stack": getattr(self.watcher, "stack", None),  # whose state kernel_state is (None: no watcher)
            "netns": self.spec.netns,
        }

    def _accept(self) -> None:
        assert self.control is not None
        sock, _ = self.control.accept()
        # Only our own user may drive the session: the socket is 0600, and we check the peer too.
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        uid = int.from_bytes(creds[4:8], sys.byteorder)
        if uid not in (0, os.getuid()):
            sock.close()
            return
        sock.setblocking(False)
        self.clients.append(Client(sock))

    def _read_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.buf += data
        while b"\n" in client.buf and client.request is None:
            line, client.buf = client.buf.split(b"\n", 1)
            try:
                request = decode_request(line)
            except ProtocolError as exc:
                client.send(reply_to_json(bad_request(exc)))
                continue
            self._begin(client, request)

    def _drop(self, client: Client) -> None:
        client.sock.close()
        if client in self.clients:
            self.clients.remove(client)

    def _begin(self, client: Client, request: Request) -> None:
        assert self.conn is not None
        ep = self.conn.endpoint
        now = time.monotonic()
        self.last_activity = now
        client.request = request
        client.sending = None
        client.started = now
        wait = getattr(request, "wait", None)
        client.wait = wait
        client.deadline = now + wait if wait is not None else None
        # Only a transfer with a known end has progress to report; a quick one never shows any.
        reports = (isinstance(request, SendRequest) and request.progress) or (
            isinstance(request, RecvRequest) and request.progress and request.nbytes)
        client.next_report = now + PROGRESS_EVERY if reports else None
        try:
            if isinstance(request, StatusRequest):
                self._finish(client, self.status())
            elif isinstance(request, HistoryRequest):
                self._release(force=True)
                self._finish(client, HistoryReply(self.history))
            elif isinstance(request, SendRequest):
                if ep.state not in (State.ESTABLISHED, State.CLOSE_WAIT):
                    raise SessionError(f"cannot send in state {ep.state}")
                client.sending = Sending(request.data, ep.snd_una, ep.unsent + ep.in_flight)
                self._feed_send(client.sending, now)
            elif isinstance(request, RecvRequest):
                client.last_rcv = ep.rcv_nxt
            else:
                op = request.op
                if request.abort:
                    ep.abort(now)
                elif ep.state in (State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED):
                    (ep.shutdown if op == "shutdown" else ep.close)(now)
                elif op == "close" and ep.state in (State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING,
                                                    State.LAST_ACK, State.TIME_WAIT):
                    pass  # our FIN is already out: close waits for the rest of the close
                else:
                    raise SessionError(f"cannot {op} in state {ep.state}")
            self.driver.flush(now)  # what the request queued leaves now, before we wait on anything
        except SessionError as exc:
            self._finish(client, ErrorReply(str(exc)))

    def _feed_send(self, sending: Sending, now: float) -> None:
        assert self.conn is not None
        if sending.queued < sending.target:
            sending.queued += self.conn.endpoint.send(sending.data[sending.queued:], now)

    @staticmethod
    def _renew(client: Client, now: float) -> None:
        """Progress: --wait counts again from now (it is patience without progress, not a deadline)."""
        if client.wait is not None:
            client.deadline = now + client.wait

    def _report(self, client: Client, now: float) -> None:
        """A progress record for the command's status line: bytes acknowledged (send) or buffered (recv)."""
        assert self.conn is not None and client.request is not None and client.next_report is not None
        if now < client.next_report:
            return
        request, ep = client.request, self.conn.endpoint
        if client.sending is not None:
            progress = Progress("send", client.sending.acked(ep.snd_una), client.sending.target,
                                round(now - client.started, 3))
        else:
            assert isinstance(request, RecvRequest) and request.nbytes is not None
            progress = Progress("recv", min(ep.readable, request.nbytes), request.nbytes,
                                round(now - client.started, 3))
        client.send(progress.to_json())
        client.next_report = now + PROGRESS_EVERY

    def _finish(self, client: Client, final: Reply) -> None:
        client.send(reply_to_json(final))
        client.request = None
        client.sending = None
        client.deadline = None
        client.next_report = None

    def _progress(self, now: float) -> None:
        """Complete the requests whose condition now holds."""
        assert self.conn is not None
        ep = self.conn.endpoint
        dead = ep.state is State.CLOSED
        for client in list(self.clients):
            request, sending = client.request, client.sending
            if request is None:
                continue
            if sending is not None:
                self._feed_send(sending, now)
                if ep.snd_una != sending.last_una:  # any newly acknowledged byte
                    sending.last_una = ep.snd_una
                    self._renew(client, now)
            elif isinstance(request, RecvRequest) and ep.rcv_nxt != client.last_rcv:  # new bytes (or the FIN)
                client.last_rcv = ep.rcv_nxt
                self._renew(client, now)
            if client.next_report is not None:
                self._report(client, now)
            expired = client.deadline is not None and now >= client.deadline
            if sending is not None:
                done = sending.queued >= sending.target and ep.unsent == 0 and ep.in_flight == 0
                if done:
                    self._release(force=True)
                    self._finish(client, DoneReply("send", str(ep.state), bytes=sending.target))
                elif dead or expired:
                    self._release(force=True)
                    message = str(self._failure("send")) if dead else (
                        f"no ACK progress for {client.wait:g} s: {sending.acked(ep.snd_una)} of "
                        f"{sending.target} bytes acknowledged")
                    self._finish(client, ErrorReply(message))
            elif isinstance(request, RecvRequest):
                want = request.nbytes
                have = ep.readable
                ready = (want is None and client.deadline is None) or (want is not None and have >= want) \
                    or ep.peer_fin or dead or expired or (want is None and have > 0)
                if ready:
                    data = ep.read(want if want is not None else -1)
                    self.received_total += len(data)
                    self._release(force=True)
                    self._finish(client, DataReply(
                        data, str(ep.state), peer_closed=ep.peer_fin and ep.readable == 0,
                        # short because nothing new came for --wait seconds
                        quiet=client.wait if expired and want is not None and len(data) < want
                        and not ep.peer_fin else None))
            elif isinstance(request, CloseRequest):
                op = request.op
                if request.abort:
                    finished = True
                elif op == "shutdown":
                    finished = ep.state in (State.FIN_WAIT_2, State.TIME_WAIT, State.CLOSED, State.CLOSING,
                                            State.LAST_ACK) and ep.unsent == 0 and ep.in_flight == 0
                else:
                    finished = ep.state in (State.TIME_WAIT, State.CLOSED)
                if finished or expired:
                    self._release(force=True)
                    final: Reply = DoneReply(op, str(ep.state), time_wait=self.conn.spec.msl2
                                             if ep.state is State.TIME_WAIT else None)
                    if expired and not finished:
                        final = ErrorReply(f"{op} did not complete: state {ep.state}")
                    self._finish(client, final)

    def serve(self) -> None:
        assert self.conn is not None and self.control is not None
        ep = self.conn.endpoint
        while True:
            now = time.monotonic()
            self._release()
            self._progress(now)
            if ep.state is State.CLOSED and not any(c.request for c in self.clients):
                self._release(force=True)
                return
            if now - self.last_activity > self.idle and ep.state in (State.ESTABLISHED, State.CLOSE_WAIT):
                ep.close(now)  # idle too long: close politely, TIME-WAIT and all
                self.last_activity = now
            timeout = 1.0
            for due in (self.view.next_due() if self.view else None,
                        *(c.deadline for c in self.clients if c.deadline is not None),
                        *(c.next_report for c in self.clients if c.next_report is not None)):
                if due is not None:
                    timeout = min(timeout, max(0.0, due - now))
            fds: list[Any] = [self.control] + [c.sock for c in self.clients]
            ready = self.driver.pump(timeout, extra=fds)
            for fd in ready:
                if fd is self.control:
                    self._accept()
                else:
                    for client in list(self.clients):
                        if client.sock is fd:
                            self._read_client(client)

    def close(self) -> None:
        """Release everything; an established connection is aborted (RST) so the peer is not left hanging."""
        if self.conn is not None:
            ep = self.conn.endpoint
            if ep.state not in (State.CLOSED, State.TIME_WAIT, State.LISTEN):
                try:
                    ep.abort(time.monotonic())
                    self.driver.flush()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
            self._release(force=True)
            if self.view is not None:
                self.view.flush_kernel(self._emit)
            self.conn.close()  # closes the pcap too
            if self.conn.spec.pcap and self.conn.spec.remote_ip:
                from rawtcp.session.sidecar import write_states

                with contextlib.suppress(Exception):
                    write_states(self.conn.spec.pcap, self.history, self.driver.wall0,
                                 endpoint_name((self.conn.local_ip, ep.local_port)),
                                 endpoint_name((self.conn.spec.remote_ip, self.conn.spec.remote_port)))
        if self.watcher is not None:
            self.watcher.stop()
        for client in self.clients:
            client.sock.close()
        if self.control is not None:
            self.control.close()
        registry.remove(self.name)


def _start_watcher(port: int, client_ns: str | None = None) -> Any:
    """The peer stack's state watcher: the kernel's, or the agent's when the lab runs a user-space stack."""
    from rawtcp.lab.stack import state_watcher

    return state_watcher(client_ns, {port})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    out = sys.stdout
    keeper: Keeper | None = None
    code = 0
    try:
        if len(argv) != 1:
            raise ProtocolError("usage: python -m rawtcp.session.keeper SPEC_JSON (one argument)")
        spec = KeeperSpec.from_json(argv[0])
        if spec.netns:
            from rawtcp.wire import netns

            netns.enter(spec.netns)
        keeper = Keeper(spec, out)
        keeper.start()
        keeper.open()
        keeper._emit(keeper.status("ready"))
        keeper.detach()
        keeper.serve()
    except Terminate:
        code = 0 if keeper is not None and keeper.out is None else 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the starting command
        code = getattr(exc, "exit_code", 1)
        message = str(exc) or type(exc).__name__
        if os.environ.get("RAWTCP_DEBUG"):
            import traceback

            traceback.print_exc()
        if keeper is None or keeper.out is not None:
            try:
                out.write(json.dumps(reply_to_json(ErrorReply(message, code))) + "\n")
                out.flush()
            except OSError:
                pass
    finally:
        if keeper is not None:
            keeper.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
