"""rawtcp's Python API: the engine the command line drives, for scripts and an interactive shell.

As root, in a fresh lab (two namespaces, a veth, Linux's echo listener on 198.18.0.2:8080)::

    >>> from rawtcp import api
    >>> lab = api.Lab.up()
    >>> c = lab.connect("198.18.0.2", 8080)
    >>> c.send(b"hello")
    5
    >>> c.recv()
    b'hello'
    >>> c.kernel_state()
    'ESTABLISHED'
    >>> c.close()
    'TIME-WAIT'
    >>> lab.down()

A :class:`Connection` is the same session the CLI makes: a keeper process holds it between calls
(ACKs, retransmissions, TIME-WAIT), so ``rawtcp status c1`` and ``rawtcp sessions`` see it too.
Captures: :func:`read_capture` (streams and segments, numbered as tshark does) and :func:`compare`.

Errors are raised, never printed: each carries ``exit_code``, the CLI's exit status for it
(README: 2 bad input, 3 unknown session, 4 refused, 5 no answer, 6 needs root, 7 no lab, ...).
``except api.ERRORS`` catches all of them. docs/api.md has the whole tour.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from rawtcp.capture.compare import CompareResult
from rawtcp.capture.errors import CaptureError
from rawtcp.capture.streams import Stream, StreamSegment
from rawtcp.errors import RawtcpError
from rawtcp.lab.errors import LabError
from rawtcp.session.errors import PeerRefused, PeerSilent, SessionError, UnknownSession

if TYPE_CHECKING:
    from rawtcp.session.hub import Hub
    from rawtcp.session.protocol import KeeperSpec

T = TypeVar("T")

__all__ = [
    "ERRORS", "CaptureError", "CompareResult", "Connection", "Lab", "LabError", "PeerRefused", "PeerSilent",
    "RawtcpError", "Record", "SessionError", "Stream", "StreamSegment", "UnknownSession", "compare", "connect",
    "flag_text", "hub", "listen", "read_capture", "segments", "sessions",
]

Record = dict[str, Any]  # one segment, state change or event, as `rawtcp ... --json` prints it
OnRecord = Callable[[Record], None]

# Every error the API raises (the wire and craft layers' errors come through as RawtcpError or
# SessionError once the keeper reports them).
ERRORS: tuple[type[Exception], ...] = (RawtcpError, SessionError, LabError, CaptureError)


_BY_CODE: dict[int, type[SessionError]] = {3: UnknownSession, 4: PeerRefused, 5: PeerSilent}


def _typed(exc: SessionError) -> SessionError:
    """The keeper reports a failure as a message and an exit code: give it back its class, so that
    ``except api.PeerRefused`` works as the exit code 4 says."""
    kind = _BY_CODE.get(getattr(exc, "exit_code", 1))
    if kind is None or isinstance(exc, kind):
        return exc
    typed = kind(str(exc))
    typed.exit_code = exc.exit_code
    return typed


def _start(spec: KeeperSpec, printer: _Messages) -> None:
    from rawtcp.session import client

    try:
        client.start_keeper(spec, printer)
    except SessionError as exc:
        raise _typed(exc) from None


def _ignore(_rec: Record) -> None:
    """The default record callback: records are kept by the keeper (Connection.history())."""


class _Messages:
    """What the CLI prints as a message (a leftover removed) goes to the record callback instead."""

    def __init__(self, on_record: OnRecord) -> None:
        self.on_record = on_record

    def __call__(self, rec: Record) -> None:
        self.on_record(rec)

    def message(self, text: str, **fields: Any) -> None:
        self.on_record({"type": "message", "message": text, **fields})


def _prepare(on_record: OnRecord, what: str) -> _Messages:
    from rawtcp import errors
    from rawtcp.commands.common import reap_leftovers

    errors.require_privileges(what)
    printer = _Messages(on_record)
    reap_leftovers(printer)  # what a killed rawtcp left (firewall entries, labs) goes first, as in the CLI
    return printer


class Connection:
    """One hand-driven TCP connection, held by a session keeper between calls.

    Made by :func:`connect`, :func:`listen`, :meth:`Lab.connect` or :meth:`Lab.listen`; or
    :meth:`Connection.attach` to a session the CLI started. Every method talks to the keeper over its
    private socket and returns when the condition it names holds (ACKed, data arrived, FIN exchanged).
    ``on_record`` (if given) sees each segment and state change as it is reported.
    """

    def __init__(self, name: str, on_record: OnRecord | None = None) -> None:
        self.name = name
        self.on_record: OnRecord = on_record or _ignore

    @classmethod
    def attach(cls, name: str, on_record: OnRecord | None = None) -> Connection:
        """A live session by name (e.g. one made by ``rawtcp connect --name c1``)."""
        from rawtcp.session import registry

        registry.find(name)  # UnknownSession (exit code 3) names the live ones
        return cls(name, on_record)

    def __repr__(self) -> str:
        try:
            st = self.status()
        except ERRORS:
            return f"<rawtcp Connection {self.name}: gone>"
        return f"<rawtcp Connection {self.name}: {st['state']} {st['local']} → {st['remote']}>"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a ``with`` block closes politely, or aborts (RST) if that is not possible."""
        if not self.alive:
            return
        try:
            self.close()
        except ERRORS:
            with contextlib.suppress(*ERRORS):
                self.abort()

    def _request(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(self.name, *args, **kwargs)`` (one of rawtcp.session.client's requests), its
        failure given its typed class."""
        try:
            return call(self.name, *args, **kwargs)
        except SessionError as exc:
            raise _typed(exc) from None
        except OSError as exc:  # the keeper left while answering (its connection just closed)
            raise SessionError(f"session {self.name!r} ended before answering ({exc.strerror or exc})") from None

    def send(self, data: bytes | str, *, wait: float = 60.0) -> int:
        """Send ``data`` (str is UTF-8 encoded), segmented by the peer's MSS and window; return the
        byte count once the peer has ACKed all of it. SessionError after ``wait`` seconds without ACK
        progress (each newly acknowledged byte starts the count again); its message says how many
        bytes were acknowledged."""
        from rawtcp.session import client

        payload = data.encode() if isinstance(data, str) else bytes(data)
        if not payload:
            raise RawtcpError("nothing to send", 2)
        try:
            return int(client.send_data(self.name, payload, self.on_record, wait).bytes or 0)
        except SessionError as exc:
            raise _typed(exc) from None

    def recv(self, nbytes: int | None = None, *, wait: float = 2.0) -> bytes:
        """What the peer has sent (the keeper ACKed and buffered it meanwhile).

        Without ``nbytes``: returns as soon as anything is there, b"" after ``wait`` seconds or once
        the peer has closed. With ``nbytes``: waits until that many bytes have come, or returns what
        came once ``wait`` seconds pass without new data (each arrival starts the count again).
        """
        from rawtcp.session import client

        try:
            return client.recv_data(self.name, nbytes, wait, self.on_record).data
        except SessionError as exc:
            raise _typed(exc) from None

    def shutdown(self, *, wait: float = 30.0) -> str:
        """Half-close: send our FIN, keep receiving; return the state once the FIN is ACKed."""
        from rawtcp.session import client

        return self._request(client.close, self.on_record, shutdown=True, wait=wait).state

    def close(self, *, wait: float = 30.0) -> str:
        """The four-way close; returns the state reached (TIME-WAIT, held by the keeper for 2MSL)."""
        from rawtcp.session import client

        return self._request(client.close, self.on_record, wait=wait).state

    def abort(self) -> str:
        """Reset the connection (RST); the keeper then exits."""
        from rawtcp.session import client

        return self._request(client.close, self.on_record, abort=True, wait=5.0).state

    def status(self) -> dict[str, Any]:
        """``rawtcp status`` as a dict: state, local, remote, snd_una/snd_nxt/rcv_nxt (and ``rel_…``),
        iss, irs, peer_window, peer_mss, rcv_wnd, readable, unsent, in_flight, retransmits,
        kernel_state."""
        from rawtcp.session import client

        return dict(self._request(client.status, self.on_record))

    @property
    def state(self) -> str:
        """rawtcp's RFC 9293 state: "ESTABLISHED", "FIN-WAIT-2", "TIME-WAIT", ..."""
        return str(self.status()["state"])

    @property
    def alive(self) -> bool:
        """Whether the keeper still holds the connection (False once it is CLOSED and gone)."""
        from rawtcp.session import registry

        return registry.name_taken(self.name)

    def kernel_state(self) -> str | None:
        """The kernel peer's own socket state ("ESTABLISHED", "CLOSE-WAIT", ...) as its tracepoint
        reported it; None when the peer is not a lab kernel or its socket has not changed yet."""
        state = self.status().get("kernel_state")
        return None if state is None else str(state)

    def history(self) -> list[Record]:
        """Every segment and state change so far, including what the keeper did between calls."""
        from rawtcp.session import client

        return list(self._request(client.history, self.on_record))


def connect(host: str, port: int, *, netns: str | None = None, iface: str | None = None,
            name: str | None = None, isn: int | None = None, mss: int | None = None, window: int | None = None,
            bare: bool = False, sack: bool | None = None, timestamps: bool | None = None,
            wscale: int | None = None, no_wscale: bool = False, nagle: bool | None = None,
            delayed_ack: bool | None = None, rto_min: float | None = None, keepalive: float | None = None,
            sport: int | None = None, retries: int = 6, msl2: float | None = None, idle: float = 600.0,
            pcap: str | None = None, on_record: OnRecord | None = None) -> Connection:
    """Active open to ``host`` ``port`` (IPv4 or IPv6) with hand-built segments, as ``rawtcp connect``.

    From ``netns`` (a namespace), ``iface`` (an interface, next hop by routing table and ARP), or by
    default the lab's client namespace. Returns once ESTABLISHED; PeerRefused (RST) or PeerSilent (no
    SYN-ACK after ``retries``) otherwise. ``pcap`` records both directions.

    TCP behaves like Linux's: SACK, timestamps, window scale 7, Nagle, delayed ACKs, RTO min 0.2 s.
    ``bare=True`` is SEED.md's SYN (``<mss>`` only) and RFC-plain TCP with RTO min 1 s. ``sack``,
    ``timestamps``, ``wscale`` (or ``no_wscale``), ``nagle`` (False: TCP_NODELAY), ``delayed_ack``
    (False: TCP_QUICKACK), ``rto_min`` and ``keepalive`` (idle seconds) override single features;
    None keeps the profile's choice.
    """
    from rawtcp.commands.common import resolve_host
    from rawtcp.commands.engine import active_spec

    remote_ip = resolve_host(host)
    on_record = on_record or _ignore
    printer = _prepare(on_record, "rawtcp.api.connect")
    spec = active_spec(remote_ip, port, name=name, netns=netns, iface=iface, idle=idle, sport=sport, isn=isn,
                       mss=mss, window=window, bare=bare, wscale=wscale, no_wscale=no_wscale, sack=sack,
                       timestamps=timestamps, nagle=nagle, delayed_ack=delayed_ack, keepalive=keepalive,
                       rto_min=rto_min, retries=retries, msl2=msl2, pcap=pcap)
    _start(spec, printer)
    return Connection(spec.name, on_record)


def listen(port: int, *, netns: str | None = None, iface: str | None = None, addr: str | None = None,
           ipv6: bool = False, name: str | None = None, isn: int | None = None, mss: int | None = None,
           window: int | None = None, bare: bool = False, sack: bool | None = None,
           timestamps: bool | None = None, wscale: int | None = None, no_wscale: bool = False,
           nagle: bool | None = None, delayed_ack: bool | None = None, rto_min: float | None = None,
           keepalive: float | None = None, retries: int = 6, msl2: float | None = None, timeout: float = 3600.0,
           idle: float = 600.0, pcap: str | None = None, on_record: OnRecord | None = None) -> Connection:
    """Passive open on ``port``, as ``rawtcp listen``: blocks until a kernel client's SYN has been
    answered and the handshake is complete (at most ``timeout`` seconds), then returns the connection.
    By default in the lab's server namespace, on its veth. TCP options as :func:`connect`'s; the
    SYN-ACK answers only what the client's SYN offered."""
    from rawtcp.commands.engine import listen_address, passive_spec

    on_record = on_record or _ignore
    local_ip = listen_address(addr) if addr is not None else None
    printer = _prepare(on_record, "rawtcp.api.listen")
    spec = passive_spec(port, name=name, netns=netns, iface=iface, local_ip=local_ip, ipv6=ipv6, idle=idle,
                        timeout=timeout, isn=isn, mss=mss, window=window, bare=bare, wscale=wscale,
                        no_wscale=no_wscale, sack=sack, timestamps=timestamps, nagle=nagle,
                        delayed_ack=delayed_ack, keepalive=keepalive, rto_min=rto_min, retries=retries,
                        msl2=msl2, pcap=pcap)
    _start(spec, printer)
    return Connection(spec.name, on_record)


def hub(*, netns: str | None = None, ports: tuple[int, int] | None = None) -> Hub:
    """Many connections driven from this process and thread by one poll loop, without keepers: one
    shared packet socket per interface, one RST-suppression element and one core endpoint per connection.

    ``netns``: the namespace the connections leave from (None: this thread's own); ``ports``: the local
    port range (default Linux's ephemeral range, each port held by a bound kernel socket while in use).
    ``h.connect(host, port, profile="linux"|"bare", **tcp)`` starts an active open and returns a
    ``Flow`` (``send``, ``read``, ``readable``, ``close``, ``abort``, ``state``, ``established``,
    ``error``); ``h.wait(condition, seconds)`` and ``h.poll(seconds)`` turn the loop;
    ``h.close(linger=seconds)`` ends what is left (RST) and removes the hub's nftables entries. The
    connections are not sessions: ``rawtcp sessions`` does not list them, and they end with the hub.
    """
    from rawtcp.session.hub import EPHEMERAL, Hub

    _prepare(_ignore, "rawtcp.api.hub")
    return Hub(netns=netns, ports=ports or EPHEMERAL)


def sessions() -> list[Connection]:
    """The live sessions (this user's), whoever started them."""
    from rawtcp.session import registry

    return [Connection(info.name) for info in registry.all_sessions()]


class Lab:
    """A lab: two network namespaces joined by a veth, a Linux listener in the server one.

    ``Lab.up()`` makes the lab ``rawtcp lab up`` makes (so the CLI sees it); give namespace names for a
    private one. ``Lab.existing()`` takes one that is already up. Use it as a context manager, or call
    :meth:`down`, which aborts its sessions and removes everything.
    """

    def __init__(self, config: Any) -> None:
        self.config = config  # rawtcp.lab.topology.LabConfig

    @classmethod
    def up(cls, *, listener: str = "echo", client_ns: str = "rawtcp-client", server_ns: str = "rawtcp-server",
           client_ip: str = "198.18.0.1", server_ip: str = "198.18.0.2", port: int = 8080,
           ipv6: bool = True, **impairments: float) -> Lab:
        """Make the lab (LabError if it is already up: ``Lab.existing()`` takes that one).

        ``listener``: "echo" (sends back what it reads), "sink" (reads only) or "seed" (SEED.md's
        server). ``ipv6``: also 2001:db8::1 ↔ 2001:db8::2. ``impairments``: loss, delay_ms, jitter_ms,
        reorder, duplicate, corrupt (percentages and milliseconds, both directions)."""
        from rawtcp import errors
        from rawtcp.commands.common import reap_leftovers
        from rawtcp.lab import topology

        errors.require_privileges("rawtcp.api.Lab.up")
        reap_leftovers(_Messages(_ignore))
        fields: dict[str, Any] = {}
        if not ipv6:
            fields.update(client_ip6=None, server_ip6=None)
        cfg = topology.LabConfig(client_ns=client_ns, server_ns=server_ns, client_ip=client_ip,
                                 server_ip=server_ip, port=port, listener=listener, **fields)
        topology.lab_up(cfg)
        lab = cls(cfg)
        if impairments:
            try:
                lab.impair(**impairments)
            except BaseException:
                topology.lab_down(cfg)
                raise
        return lab

    @classmethod
    def existing(cls, client_ns: str = "rawtcp-client") -> Lab:
        """The lab that is up with this client (or server) namespace (LabError if there is none)."""
        from rawtcp.commands.common import lab_for_namespace

        cfg = lab_for_namespace(client_ns)
        if cfg is None:
            raise LabError(f"no lab is up with namespace {client_ns!r} (api.Lab.up() makes one)")
        return cls(cfg)

    def __repr__(self) -> str:
        c = self.config
        return f"<rawtcp Lab {c.client_ns} {c.client_ip} ↔ {c.server_ns} {c.server_ip}:{c.port} ({c.listener})>"

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # names and addresses, for scripts that need them
    @property
    def client_ns(self) -> str:
        return str(self.config.client_ns)

    @property
    def server_ns(self) -> str:
        return str(self.config.server_ns)

    @property
    def client_ip(self) -> str:
        return str(self.config.client_ip)

    @property
    def server_ip(self) -> str:
        return str(self.config.server_ip)

    @property
    def server_ip6(self) -> str | None:
        return self.config.server_ip6

    @property
    def port(self) -> int:
        """The kernel listener's port."""
        return int(self.config.port)

    @property
    def is_up(self) -> bool:
        from rawtcp.lab.topology import lab_exists

        return lab_exists(self.config)

    def connect(self, host: str | None = None, port: int | None = None, **options: Any) -> Connection:
        """:func:`connect` from this lab's client namespace; by default to its kernel listener."""
        return connect(host or self.server_ip, port or self.port, netns=self.client_ns, **options)

    def listen(self, port: int, **options: Any) -> Connection:
        """:func:`listen` in this lab's server namespace: a kernel client in the client namespace
        (:meth:`run_client`, or ``ip netns exec``) connects to ``server_ip`` ``port``."""
        return listen(port, netns=self.server_ns, **options)

    def hub(self, **options: Any) -> Hub:
        """:func:`hub` in this lab's client namespace: many connections from this process, e.g.
        ``h.connect(lab.server_ip, lab.port)`` to the kernel listener."""
        return hub(netns=self.client_ns, **options)

    def sessions(self) -> list[Connection]:
        """The live sessions in this lab's namespaces."""
        from rawtcp.session import registry

        return [Connection(info.name) for info in registry.all_sessions()
                if info.netns in (self.client_ns, self.server_ns)]

    def listener_log(self) -> list[dict[str, Any]]:
        """What the kernel listener saw, one dict per connection it accepted (peer, received, sent)."""
        from rawtcp.lab.topology import listener_log

        return listener_log(self.config)

    def kernel_sockets(self, side: str = "server") -> str:
        """``ss -tan`` in the server (or client) namespace: the kernel's TCP sockets, as text."""
        import subprocess

        ns = self.server_ns if side == "server" else self.client_ns
        return subprocess.run(["ip", "netns", "exec", ns, "ss", "-tan"], capture_output=True, text=True,
                              check=False).stdout

    def impair(self, *, clear: bool = False, **settings: float) -> dict[str, Any]:
        """Change the impairments (loss, delay_ms, jitter_ms, reorder, duplicate, corrupt; both
        directions), or ``clear=True`` to remove them all. Returns what is now in force."""
        from rawtcp.lab import topology

        if clear:
            return {"cleared": topology.clear_impairments(self.config)}
        return dict(topology.impair(self.config, **settings))

    def down(self) -> list[str]:
        """Abort the lab's live sessions (RST) and remove the lab; one line per thing removed."""
        from rawtcp.lab import topology

        removed: list[str] = []
        aborted = []
        try:
            for conn in self.sessions():
                with contextlib.suppress(*ERRORS):
                    conn.abort()
                    aborted.append(conn)
                    removed.append(f"session {conn.name} (RST)")
            # Each keeper removes its session files and firewall entries on its way out; signalling it
            # meanwhile (lab_down stops every process in the namespaces) would cut that short.
            deadline = time.monotonic() + 5.0
            while any(conn.alive for conn in aborted) and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:  # whatever happened to the sessions, the lab goes
            if topology.lab_exists(self.config):
                removed += topology.lab_down(self.config)
        return removed


# --- captures -----------------------------------------------------------------------------------


def read_capture(path: str | os.PathLike[str], stream: int | None = None) -> list[Stream]:
    """The TCP streams of a pcap/pcapng file (or only stream number ``stream``), as ``rawtcp ladder``
    reads them: numbered and made relative as tshark does (``tcp.stream``, ``tcp.seq``), both ends'
    states inferred and, where the capture recorded them, the kernel's own.

    Each :class:`Stream` has ``index``, ``client``/``server`` (address, port) and ``segments``; each
    :class:`StreamSegment` has ``number`` (frame number), ``ts``, ``from_client``, ``rel_seq``,
    ``rel_ack``, ``client_state``/``server_state`` and ``tcp`` (seq, ack, flags, window, options,
    payload, ...). CaptureError for a file that is not a readable capture.
    """
    from rawtcp.capture.streams import read_streams

    return read_streams(path, stream=stream)


def segments(path: str | os.PathLike[str]) -> Iterator[tuple[Stream, StreamSegment]]:
    """Every TCP segment of a capture with its stream, in file order."""
    streams = read_capture(path)
    ordered = sorted(((seg.number, st, seg) for st in streams for seg in st.segments), key=lambda t: t[0])
    for _number, st, seg in ordered:
        yield st, seg


def flag_text(flags: int) -> str:
    """tcpdump's spelling of TCP flags: ``S``, ``S.`` (SYN-ACK), ``P.``, ``F.``, ``R``."""
    from rawtcp.core.segment import flags_str

    return flags_str(int(flags))


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], *, ignore: Iterable[str] = (),
            time_tolerance_ms: float | None = None) -> CompareResult:
    """Compare the TCP exchanges of two captures, as ``rawtcp compare``: connections matched by order
    and role; ISNs, ports, IP ID, TTL, checksums and timestamp values normalised away.

    ``ignore``: fields to leave out (direction, flags, seq, ack, len, window, options, payload, time).
    ``time_tolerance_ms``: also compare the gaps between segments. The result's ``same`` says it;
    ``summary()`` in one line, ``rows`` the first differences, ``to_json()`` everything.
    """
    import math

    from rawtcp.capture.compare import compare_captures

    if time_tolerance_ms is not None and not (math.isfinite(time_tolerance_ms) and time_tolerance_ms >= 0):
        raise CaptureError(f"time tolerance {time_tolerance_ms!r} ms is not a finite number >= 0")
    return compare_captures(a, b, ignore=set(ignore), time_tolerance_ms=time_tolerance_ms)
