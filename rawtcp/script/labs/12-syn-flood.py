# Lab 12: SYN flood and SYN cookies.
# A listener keeps each half-open connection (a SYN answered, the final ACK not yet back) in its SYN
# queue, bounded here by listen()'s backlog of 4 (Linux admits backlog + 1). A SYN flood sends SYNs and never completes
# them; the flooding side's own kernel must stay silent too (it would RST every SYN-ACK and empty
# the queue), so rawtcp suppresses those RSTs. Once the queue is full, Linux with tcp_syncookies=1
# stops storing requests: it encodes the connection's essentials (MSS class, ports, a time slot,
# a secret hash) into the ISN of a "cookie" SYN-ACK and forgets the SYN. A real client's final
# ACK (ack = cookie + 1) is enough to rebuild the connection. Look at the SYN-ACKs: the first 5
# carry sackOK and wscale; the cookie ones carry only an MSS (without timestamps a cookie has no
# room for the other options). With tcp_syncookies=0 a full queue simply drops new SYNs.
"""Lab 12 (Python scenario): SYN flood, the kernel's SYN backlog, and SYN cookies."""

from __future__ import annotations

BACKLOG = 4
FLOOD = 12
SYN_OPTIONS = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]


def _counter(sc, name: str) -> int:  # type: ignore[no-untyped-def]
    """A TcpExt counter of the kernel's namespace (/proc/net/netstat is per namespace)."""
    lines = [ln.split() for ln in sc.shell("cat /proc/net/netstat").splitlines() if ln.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:], strict=True))[name])


def run(sc) -> None:  # type: ignore[no-untyped-def]
    sc.shell("sysctl -q -w net.ipv4.tcp_syncookies=1")
    sc.syscall("socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    sc.syscall("setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
    sc.syscall("bind(3, ..., ...) = 0")
    sc.syscall(f"listen(3, {BACKLOG}) = 0")
    sent_before = _counter(sc, "SyncookiesSent")

    ports = [sc.peer_port() for _ in range(FLOOD)]
    for port in ports:
        sc.send(port, "S", seq=0, options=SYN_OPTIONS)
    synacks = {port: sc.expect(port, "S.") for port in ports}
    cookies = _counter(sc, "SyncookiesSent") - sent_before
    full = [p for p, s in synacks.items() if s.option("WScale") is not None]
    bare = [p for p, s in synacks.items() if s.option("WScale") is None]
    sc.note(f"{len(full)} SYN-ACKs from the queue (with sackOK/wscale), {len(bare)} cookie SYN-ACKs "
            f"(MSS only); TcpExtSyncookiesSent +{cookies}")
    # Linux compares the queue length with ">" (kernels since 4.x): backlog N holds N + 1 requests.
    if len(full) not in (BACKLOG, BACKLOG + 1) or cookies != FLOOD - len(full) or len(bare) != cookies:
        raise sc.fail(f"expected {BACKLOG} or {BACKLOG + 1} queued SYN-ACKs and cookies for the rest, "
                      f"got {len(full)} queued and {cookies} cookies")

    # A legitimate client behind a cookie: its final ACK alone re-creates the connection.
    port = bare[-1]
    sc.send(port, ".", seq=1, ack=synacks[port].seq + 1)
    sc.syscall("accept(3, ..., ...) = 4")
    recv_before = _counter(sc, "SyncookiesRecv")
    sc.note(f"peer port {port}: the ACK of cookie {synacks[port].seq} was accepted "
            f"(TcpExtSyncookiesRecv = {recv_before})")

    # Without cookies, a full SYN queue drops new SYNs: no answer at all.
    sc.shell("sysctl -q -w net.ipv4.tcp_syncookies=0")
    drops_before = _counter(sc, "ListenDrops")
    late = [sc.peer_port() for _ in range(3)]
    for port in late:
        sc.send(port, "S", seq=0, options=SYN_OPTIONS)
    answered = [p for p in late if sc.drain(p, quiet=0.3)]
    drops = _counter(sc, "ListenDrops") - drops_before
    sc.note(f"tcp_syncookies=0: {len(late)} more SYNs, {len(answered)} answered, TcpExtListenDrops +{drops}")
    if answered or drops != len(late):
        raise sc.fail(f"with tcp_syncookies=0 a full queue should drop SYNs: {len(answered)} were answered, "
                      f"{drops} counted as dropped")
