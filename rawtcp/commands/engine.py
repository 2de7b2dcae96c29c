"""connect, listen, send, recv, shutdown, close, status, sessions: one hand-driven connection at a time."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rawtcp import errors
from rawtcp.commands.common import (
    default_lab,
    finite,
    json_option,
    lab_for_namespace,
    lab_is_up,
    output_path,
    reap_leftovers,
    resolve_host,
    same_address,
)
from rawtcp.commands.output import Printer, peer_word
from rawtcp.commands.progress import ProgressLine
from rawtcp.session import client, registry
from rawtcp.session.connection import ConnectionSpec
from rawtcp.session.protocol import KeeperSpec, KernelPeer

LAB_MSL2 = 2.0  # TIME-WAIT in the lab: short, so a closed session does not linger (configurable)


def _next_name() -> str:
    live = {s.name for s in registry.all_sessions()}
    n = 1
    while f"c{n}" in live:
        n += 1
    return f"c{n}"


def listen_address(addr: str) -> str:
    """``listen --addr``: an IPv4 or IPv6 address literal, canonically spelled."""
    import ipaddress

    try:
        return ipaddress.ip_address(addr.strip("[]")).compressed
    except ValueError:
        raise errors.RawtcpError(f"--addr {addr!r} is not an IPv4 or IPv6 address", errors.BAD_INPUT) from None


def _connection_spec(**fields: Any) -> ConnectionSpec:
    """The keeper's ConnectionSpec; unset options take the spec's defaults (remote_ip stays: a passive
    open has none yet)."""
    return ConnectionSpec(**{k: v for k, v in fields.items() if v is not None or k == "remote_ip"})


def _tuning(bare: bool, wscale: int | None, no_wscale: bool, sack: bool | None, timestamps: bool | None,
            nagle: bool | None, delayed_ack: bool | None, keepalive: float | None,
            rto_min: float | None) -> dict[str, Any]:
    """The profile and the single TCP options that override it (None: the profile's choice), as
    ConnectionSpec keywords."""
    if wscale is not None and no_wscale:
        raise errors.RawtcpError("give --wscale N or --no-wscale, not both", errors.BAD_INPUT)
    return {"profile": "bare" if bare else "linux", "wscale": wscale, "no_wscale": no_wscale or None,
            "sack": sack, "timestamps": timestamps, "nagle": nagle, "delayed_ack": delayed_ack,
            "keepalive": keepalive, "rto_min": rto_min}


def tcp_options(f: Any) -> Any:
    """The profile options `connect` and `listen` share: Linux's behaviour unless --bare, and each
    feature on or off by itself (click's --x/--no-x pairs; unset means the profile's choice)."""
    options = [
        click.option("--bare", is_flag=True,
                     help="SEED.md's SYN, <mss> only, and RFC-plain TCP: no SACK, timestamps, window scaling, "
                          "Nagle or delayed ACK; RTO min 1 s (RFC 6298). The options below turn single "
                          "features back on. Default: what Linux offers and does."),
        click.option("--sack/--no-sack", default=None,
                     help="Offer SACK (RFC 2018; recovery by RACK-TLP, RFC 8985), used if the peer agrees "
                          "(default: on; off with --bare)."),
        click.option("--timestamps/--no-timestamps", default=None,
                     help="Offer RFC 7323 timestamps (RTT samples under loss, PAWS), used if the peer agrees "
                          "(default: on; off with --bare)."),
        click.option("--wscale", type=click.IntRange(0, 14), metavar="N",
                     help="Window scale shift to offer (default 7, as Linux; not offered with --bare)."),
        click.option("--no-wscale", is_flag=True, help="Offer no window scaling (windows stay under 64 KiB)."),
        click.option("--nagle/--nodelay", default=None,
                     help="Nagle's algorithm (RFC 896): hold a small segment while data is unacknowledged; "
                          "--nodelay is TCP_NODELAY (default: Nagle; --nodelay with --bare)."),
        click.option("--delayed-ack/--quickack", default=None,
                     help="Delay ACKs as Linux does (every second full segment, else after an ACK timeout "
                          "of 40 ms up to the RTT, at most 200 ms; the first segments one by one); "
                          "--quickack ACKs every segment at once, as TCP_QUICKACK "
                          "(default: delayed; --quickack with --bare)."),
        click.option("--rto-min", type=finite(0.001), metavar="S",
                     help="Minimum retransmission timeout, seconds (default 0.2, as Linux; 1 with --bare, "
                          "as RFC 6298 says)."),
        click.option("--keepalive", type=finite(0.001), metavar="S",
                     help="Keep-alive probes after S idle seconds, then every 75 s, reset after 9 "
                          "unanswered (RFC 9293 §3.8.4, Linux's counts; default: none, as without "
                          "SO_KEEPALIVE)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def active_spec(remote_ip: str, port: int, *, name: str | None = None, netns: str | None = None,
                iface: str | None = None, idle: float = 600.0, sport: int | None = None, isn: int | None = None,
                mss: int | None = None, window: int | None = None, bare: bool = False, wscale: int | None = None,
                no_wscale: bool = False, sack: bool | None = None, timestamps: bool | None = None,
                nagle: bool | None = None, delayed_ack: bool | None = None, keepalive: float | None = None,
                rto_min: float | None = None, retries: int = 6, msl2: float | None = None,
                pcap: str | None = None) -> KeeperSpec:
    """The keeper's spec for an active open to ``remote_ip`` ``port`` (shared by `rawtcp connect` and
    rawtcp.api): from the lab's client namespace unless ``netns``/``iface`` say otherwise, watching the
    kernel peer's socket when it lives in a lab rawtcp made. TCP behaves like Linux's unless ``bare``;
    the other TCP options (None: the profile's) override single features."""
    tuning = _tuning(bare, wscale, no_wscale, sack, timestamps, nagle, delayed_ack, keepalive, rto_min)
    name = registry.check_name(name) if name else _next_name()
    if netns is None and iface is None:
        if not lab_is_up(default_lab()):
            raise errors.RawtcpError("no lab is up: run `sudo rawtcp lab up` first (or give --netns/--iface)",
                                     errors.NO_LAB)
        netns = default_lab().client_ns
    lab = lab_for_namespace(netns) if netns else None
    # The kernel peer lives in a namespace the lab made (either of its addresses): watch its socket's state too.
    kernel = None
    if lab is not None and (same_address(remote_ip, lab.server_ip) or same_address(remote_ip, lab.server_ip6)):
        kernel = KernelPeer(remote_ip, port)
    return KeeperSpec(
        name=name, netns=netns, kernel=kernel, idle=idle,
        connection=_connection_spec(
            remote_ip=remote_ip, remote_port=port, local_port=sport, iface=iface, isn=isn, mss=mss,
            window=window, max_retries=retries,
            msl2=msl2 if msl2 is not None else (LAB_MSL2 if lab is not None else 60.0),
            pcap=output_path(pcap), **tuning,
        ),
    )


def passive_spec(port: int, *, name: str | None = None, netns: str | None = None, iface: str | None = None,
                 local_ip: str | None = None, ipv6: bool = False, idle: float = 600.0, timeout: float = 3600.0,
                 isn: int | None = None, mss: int | None = None, window: int | None = None, bare: bool = False,
                 wscale: int | None = None, no_wscale: bool = False, sack: bool | None = None,
                 timestamps: bool | None = None, nagle: bool | None = None, delayed_ack: bool | None = None,
                 keepalive: float | None = None, rto_min: float | None = None, retries: int = 6,
                 msl2: float | None = None, pcap: str | None = None) -> KeeperSpec:
    """The keeper's spec for a passive open on ``port`` (shared by `rawtcp listen` and rawtcp.api): in
    the lab's server namespace on its veth unless ``netns``/``iface`` say otherwise. The TCP options
    are `active_spec`'s; our SYN-ACK answers only what the client's SYN offered (RFC 2018, 7323)."""
    tuning = _tuning(bare, wscale, no_wscale, sack, timestamps, nagle, delayed_ack, keepalive, rto_min)
    name = registry.check_name(name) if name else _next_name()
    if netns is None and iface is None:
        if not lab_is_up(default_lab()):
            raise errors.RawtcpError("no lab is up: run `sudo rawtcp lab up` first (or give --netns/--iface)",
                                     errors.NO_LAB)
        netns = default_lab().server_ns
    lab = lab_for_namespace(netns) if netns else None
    kernel = None
    if ipv6:
        if lab is None or netns != lab.server_ns or lab.server_ip6 is None:
            raise errors.RawtcpError("--ipv6 means the lab server's IPv6 address: outside a dual-stack lab "
                                     "give --addr ADDR", errors.BAD_INPUT)
        local_ip = lab.server_ip6
    if lab is not None and netns == lab.server_ns:
        iface = iface or lab.server_if
        v6 = local_ip is not None and ":" in local_ip
        kernel = KernelPeer(lab.client_ip6 if v6 else lab.client_ip, port)
    if iface is None:
        raise errors.RawtcpError("--iface is needed outside the lab", errors.BAD_INPUT)
    return KeeperSpec(
        name=name, netns=netns, kernel=kernel, idle=idle, open_timeout=timeout,
        connection=_connection_spec(
            remote_ip=None, remote_port=0, local_port=port, iface=iface, local_ip=local_ip, isn=isn, mss=mss,
            window=window, max_retries=retries, passive=True,
            msl2=msl2 if msl2 is not None else (LAB_MSL2 if kernel else 60.0),
            pcap=output_path(pcap), **tuning,
        ),
    )


@click.command()
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--name", help="Session name for later commands (default c1, c2, ...).")
@click.option("--isn", type=click.IntRange(0, 2**32 - 1), help="Initial sequence number (default random).")
@click.option("--mss", type=click.IntRange(88, 65495),
              help="MSS to announce, bytes (default: interface MTU - 40, or - 60 over IPv6).")
@click.option("--window", type=click.IntRange(0, 65535),
              help="Fixed receive window to advertise, bytes (default: what the buffer has room for).")
@tcp_options
@click.option("--sport", type=click.IntRange(1, 65535), help="Source port (default: a free ephemeral one).")
@click.option("--netns", help="Network namespace to send from (default: the lab's client namespace).")
@click.option("--iface", help="Interface to send on, outside any lab (next hop by routing table and ARP).")
@click.option("--retries", type=click.IntRange(0, 20), default=6, show_default=True,
              help="Retransmissions of one segment before giving up (exit 5).")
@click.option("--msl2", type=finite(0), metavar="S", help="TIME-WAIT length, seconds (default 2 in the lab, else 60).")
@click.option("--idle", type=finite(0), default=600.0, show_default=True, metavar="S",
              help="Close the session (FIN) after this many seconds without a command.")
@click.option("--pcap", type=click.Path(dir_okay=False), metavar="FILE",
              help="Record both directions to this pcap, kernel states in FILE.states.json (default: none).")
@json_option
def connect(host: str, port: int, name: str | None, isn: int | None, mss: int | None, window: int | None,
            bare: bool, sack: bool | None, timestamps: bool | None, wscale: int | None, no_wscale: bool,
            nagle: bool | None, delayed_ack: bool | None, rto_min: float | None, keepalive: float | None,
            sport: int | None, netns: str | None, iface: str | None, retries: int, msl2: float | None,
            idle: float, pcap: str | None, as_json: bool) -> None:
    """Open a connection to HOST PORT (IPv4 or IPv6) with hand-built segments and keep it in a session.

    TCP behaves like Linux's (SACK, timestamps, window scale 7, Nagle, delayed ACK, RTO min 0.2 s);
    --bare gives SEED.md's SYN with only <mss>."""
    errors.require_privileges("rawtcp connect")
    remote_ip = resolve_host(host)
    printer = Printer(as_json)
    reap_leftovers(printer)
    spec = active_spec(remote_ip, port, name=name, netns=netns, iface=iface, idle=idle, sport=sport, isn=isn,
                       mss=mss, window=window, bare=bare, wscale=wscale, no_wscale=no_wscale, sack=sack,
                       timestamps=timestamps, nagle=nagle, delayed_ack=delayed_ack, keepalive=keepalive,
                       rto_min=rto_min, retries=retries, msl2=msl2, pcap=pcap)
    name = spec.name
    ready = client.start_keeper(spec, printer)
    printer.message(f"session {name}: {ready['state']} {ready['local']} → {ready['remote']} "
                    f"(keeper pid {ready['pid']}; `rawtcp send {name} DATA`, `rawtcp close {name}`)",
                    session=name, pid=ready["pid"])


@click.command()
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("--name", help="Session name (default c1, c2, ...).")
@click.option("--netns", help="Namespace to listen in (default: the lab's server namespace).")
@click.option("--iface", help="Interface to listen on (default: the lab's server veth).")
@click.option("--addr", help="Local address to listen on, IPv4 or IPv6 (default: the interface's IPv4 address).")
@click.option("-6", "--ipv6", is_flag=True, help="Listen on the lab server's IPv6 address (2001:db8::2).")
@click.option("--isn", type=click.IntRange(0, 2**32 - 1), help="Our initial sequence number (default random).")
@click.option("--mss", type=click.IntRange(88, 65495),
              help="MSS to announce, bytes (default: interface MTU - 40, or - 60 over IPv6).")
@click.option("--window", type=click.IntRange(0, 65535),
              help="Fixed receive window to advertise, bytes (default: what the buffer has room for).")
@tcp_options
@click.option("--retries", type=click.IntRange(0, 20), default=6, show_default=True,
              help="Retransmissions of one segment before giving up.")
@click.option("--msl2", type=finite(0), metavar="S", help="TIME-WAIT length, seconds (default 2 in the lab, else 60).")
@click.option("--timeout", type=finite(0), default=3600.0, show_default=True, metavar="S",
              help="Give up waiting for a SYN after this many seconds.")
@click.option("--idle", type=finite(0), default=600.0, show_default=True, metavar="S",
              help="Close the session (FIN) after this many seconds without a command.")
@click.option("--pcap", type=click.Path(dir_okay=False), metavar="FILE",
              help="Record both directions to this pcap, kernel states in FILE.states.json (default: none).")
@json_option
def listen(port: int, name: str | None, netns: str | None, iface: str | None, addr: str | None, ipv6: bool,
           isn: int | None, mss: int | None, window: int | None, bare: bool, sack: bool | None,
           timestamps: bool | None, wscale: int | None, no_wscale: bool, nagle: bool | None,
           delayed_ack: bool | None, rto_min: float | None, keepalive: float | None, retries: int,
           msl2: float | None, timeout: float, idle: float, pcap: str | None, as_json: bool) -> None:
    """Passive open on PORT: rawtcp answers a kernel client's SYN with its own SYN-ACK (--ipv6: over IPv6).

    The SYN-ACK answers the options the client offered, as Linux does; --bare answers with <mss> only."""
    if addr is not None and ipv6:
        raise errors.RawtcpError("give --addr or --ipv6, not both", errors.BAD_INPUT)
    local_ip = listen_address(addr) if addr is not None else None
    errors.require_privileges("rawtcp listen")
    printer = Printer(as_json)
    reap_leftovers(printer)
    spec = passive_spec(port, name=name, netns=netns, iface=iface, local_ip=local_ip, ipv6=ipv6, idle=idle,
                        timeout=timeout, isn=isn, mss=mss, window=window, bare=bare, wscale=wscale,
                        no_wscale=no_wscale, sack=sack, timestamps=timestamps, nagle=nagle,
                        delayed_ack=delayed_ack, keepalive=keepalive, rto_min=rto_min, retries=retries,
                        msl2=msl2, pcap=pcap)
    name, netns, iface = spec.name, spec.netns, spec.connection.iface
    local_ip = spec.connection.local_ip
    where = f"{local_ip} " if local_ip else ""
    printer.message(f"listening on {where}port {port} in {netns or 'this namespace'} ({iface}); waiting for a SYN")
    ready = client.start_keeper(spec, printer)
    printer.message(f"session {name}: {ready['state']} {ready['local']} ← {ready['remote']} "
                    f"(keeper pid {ready['pid']})", session=name, pid=ready["pid"])


@click.command()
@click.argument("name")
@click.argument("data", required=False)
@click.option("--file", "file_", type=click.File("rb"), help="Send this file's bytes ('-' for stdin).")
@click.option("--wait", type=finite(0), default=60.0, show_default=True, metavar="S",
              help="Give up after S seconds without ACK progress: every newly acknowledged byte starts the "
                   "count again, so a slow but moving transfer takes as long as it needs (exit 1 when it "
                   "gives up; the keeper keeps sending what was queued).")
@json_option
def send(name: str, data: str | None, file_: Any, wait: float, as_json: bool) -> None:
    """Send DATA (or --file) on session NAME, segmented by the peer's MSS and window; wait for the ACKs."""
    if (data is None) == (file_ is None):
        raise errors.RawtcpError("give DATA or --file, not both or neither", errors.BAD_INPUT)
    payload = file_.read() if file_ is not None else data.encode()
    if not payload:
        raise errors.RawtcpError("nothing to send", errors.BAD_INPUT)
    printer = Printer(as_json)
    status = ProgressLine(printer, "acknowledged", enabled=not as_json)  # a terminal's stderr only
    try:
        final = client.send_data(name, payload, status, wait, progress=status.enabled)
    finally:
        status.close()
    printer.message(f"sent {final.bytes} bytes, all acknowledged ({final.state})", bytes=final.bytes)


@click.command()
@click.argument("name")
@click.option("--bytes", "nbytes", type=click.IntRange(1), metavar="N",
              help="Wait until N bytes have arrived (default: return what is there).")
@click.option("--wait", type=finite(0), metavar="S",
              help="With --bytes: give up after S seconds without new data (each arrival starts the count "
                   "again). Without: wait at most S seconds for anything (default 10 with --bytes, else 0).")
@click.option("--out", type=click.File("wb"), metavar="FILE",
              help="Write the bytes raw to FILE ('-' for stdout; default: print them as text).")
@json_option
def recv(name: str, nbytes: int | None, wait: float | None, out: Any, as_json: bool) -> None:
    """Print what the peer has sent on session NAME (the keeper ACKed and buffered it meanwhile)."""
    printer = Printer(as_json, err=out is not None and getattr(out, "name", "") == "<stdout>")
    if wait is None and nbytes is not None:
        wait = 10.0
    status = ProgressLine(printer, "received", enabled=not as_json)  # a terminal's stderr only
    try:
        final = client.recv_data(name, nbytes, wait, status, progress=status.enabled and nbytes is not None)
    finally:
        status.close()
    data = final.data
    if out is not None:
        out.write(data)
        out.flush()
    elif as_json:
        click.echo(json.dumps({"type": "data", "bytes": len(data), "text": data.decode("utf-8", "replace"),
                               "peer_closed": final.peer_closed}))
    else:
        sys.stdout.write(data.decode("utf-8", "backslashreplace"))
        if data and not data.endswith(b"\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
    note = " (the peer has closed its side)" if final.peer_closed else ""
    if nbytes is not None and len(data) < nbytes:
        quiet = f" (no new data for {final.quiet:g} s)" if final.quiet is not None else ""
        click.echo(f"rawtcp: received {len(data)} of {nbytes} bytes{quiet}{note}", err=True)
        raise SystemExit(errors.FAILED)
    if not as_json and out is None and not data:
        click.echo(f"(nothing received yet){note}", err=True)


def _close(name: str, op: str, abort: bool, wait: float, as_json: bool) -> None:
    printer = Printer(as_json)
    final = client.close(name, printer, shutdown=op == "shutdown", abort=abort, wait=wait)
    if abort:
        printer.message(f"session {name}: aborted with RST", state=final.state)
    elif final.time_wait is not None:
        printer.message(f"session {name}: {final.state} for 2MSL = {final.time_wait} s, then CLOSED "
                        "(the keeper holds it)", state=final.state)
    else:
        printer.message(f"session {name}: {final.state}", state=final.state)


@click.command()
@click.argument("name")
@click.option("--abort", is_flag=True, help="Send RST instead of FIN.")
@click.option("--wait", type=finite(0), default=30.0, show_default=True, metavar="S",
              help="Wait at most this many seconds for the peer's ACK and FIN.")
@json_option
def close(name: str, abort: bool, wait: float, as_json: bool) -> None:
    """Four-way close of session NAME: FIN, ACK, the peer's FIN, our ACK, TIME-WAIT."""
    _close(name, "close", abort, wait, as_json)


@click.command()
@click.argument("name")
@click.option("--wait", type=finite(0), default=30.0, show_default=True, metavar="S",
              help="Wait at most this many seconds for the peer to acknowledge our FIN.")
@json_option
def shutdown(name: str, wait: float, as_json: bool) -> None:
    """Half-close session NAME: send FIN; the peer may keep sending and `recv` still works."""
    _close(name, "shutdown", False, wait, as_json)


STATUS_FIELDS = ("state", "local", "remote", "snd_una", "snd_nxt", "rcv_nxt", "peer_window", "peer_mss",
                 "rcv_wnd", "readable", "unsent", "in_flight", "retransmits", "kernel_state")


@click.command()
@click.argument("name", required=False)
@click.option("--history", is_flag=True, help="Also print every segment and state change so far, including "
              "what the keeper did while no command ran.")
@json_option
def status(name: str | None, history: bool, as_json: bool) -> None:
    """Session state: RFC state, snd_una/snd_nxt/rcv_nxt (absolute and relative), peer window and MSS,
    and the peer stack's own socket state (kernel: or pytcp:) when the peer lives in the lab."""
    if history:
        if not name:
            raise errors.RawtcpError("--history needs a session NAME", errors.BAD_INPUT)
        printer = Printer(as_json)
        for rec in client.history(name):
            printer(rec)
    names = [name] if name else [s.name for s in registry.all_sessions()]
    if not names:
        click.echo("no live sessions", err=not as_json)
        return
    for each in names:
        st = client.status(each)
        if as_json:
            click.echo(json.dumps(st))
            continue
        click.echo(f"{each}: {st['state']}  {st['local']} → {st['remote']}  (keeper pid {st['pid']})")
        click.echo(f"  snd_una={st['snd_una']} (rel {st['rel_snd_una']})  snd_nxt={st['snd_nxt']} "
                   f"(rel {st['rel_snd_nxt']})  rcv_nxt={st['rcv_nxt']} (rel {st['rel_rcv_nxt']})")
        click.echo(f"  peer window={st['peer_window']}  peer MSS={st['peer_mss']}  our window={st['rcv_wnd']}"
                   f"  buffered={st['readable']}  unsent={st['unsent']}  in flight={st['in_flight']}"
                   f"  retransmits={st['retransmits']}")
        if st.get("profile"):
            agreed = [name for name in ("sack", "timestamps") if st.get(name)]
            agreed.append(f"wscale ours {st['rcv_wscale']} theirs {st['snd_wscale']}")
            srtt = f"{st['srtt'] * 1000:.1f} ms" if st.get("srtt") is not None else "none"
            click.echo(f"  {st['profile']} profile: {', '.join(agreed)}; Nagle {'on' if st['nagle'] else 'off'}, "
                       f"delayed ACK {'on' if st['delayed_ack'] else 'off'}; rto={st['rto'] * 1000:.0f} ms "
                       f"srtt={srtt} cwnd={st['cwnd']}")
        if st.get("kernel_state") is not None or st.get("kernel_state_source"):
            click.echo(f"  {peer_word(st)}: {st.get('kernel_state') or 'no socket'} "
                       f"(via {st.get('kernel_state_source')})")


@click.command()
@json_option
def sessions(as_json: bool) -> None:
    """List live sessions."""
    rows = []
    info_by_name = {}
    for info in registry.all_sessions():
        info_by_name[info.name] = info
        try:
            state = client.status(info.name)["state"]
        except Exception:  # noqa: BLE001 - a keeper that stopped answering is listed as such
            state = "unreachable"
        local_ip, _, local_port = info.local.rpartition(":")
        remote_ip, _, remote_port = info.remote.rpartition(":")
        local_ip, remote_ip = local_ip.strip("[]"), remote_ip.strip("[]")  # "[2001:db8::1]:40000"
        rows.append({"name": info.name, "pid": info.pid, "state": state, "role": info.role,
                     "local_addr": local_ip, "local_port": int(local_port) if local_port.isdigit() else None,
                     "remote_addr": remote_ip, "remote_port": int(remote_port) if remote_port.isdigit() else None,
                     "netns": info.netns})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("no live sessions")
        return
    for row in rows:
        click.echo(f"{row['name']:<10} {row['state']:<12} {info_by_name[row['name']].local} → "
                   f"{info_by_name[row['name']].remote}  pid {row['pid']}  netns {row['netns']}")
