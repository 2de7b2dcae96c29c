"""Where a segment to ``dst_ip`` leaves: interface, source address, next hop and its MAC, MTU.

Asked of the kernel over netlink (pyroute2), in the current thread's network namespace, so rawtcp
sends exactly where the kernel would. When the next hop's MAC is not in the neighbour table we ask
for it ourselves, a bounded number of times: ARP (RFC 826) for IPv4, a neighbour solicitation
(RFC 4861 §7.2) for IPv6.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtcp.wire.errors import WireError
from rawtcp.wire.icmp import neighbor_solicitation, parse_neighbor_advert

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
BROADCAST = b"\xff" * 6
# Neighbour states whose link-layer address can be used (linux/neighbour.h NUD_VALID).
NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80
RTN_UNICAST, RTN_LOCAL = 1, 2
ARP_TRIES = 3
ARP_WAIT = 0.5  # seconds per try
# RFC 4861 §10: MAX_MULTICAST_SOLICIT 3, RETRANS_TIMER 1 s; half a second, as for ARP, is plenty on a lab link.
NDP_TRIES = 3
NDP_WAIT = 0.5

_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")  # Ethernet header + ARP for IPv4 over Ethernet (RFC 826)


@dataclass(frozen=True, slots=True)
class Path:
    ifname: str
    src_ip: str
    src_mac: bytes | None  # None on interfaces without a link-layer header (tun, ...)
    next_hop: str
    dst_mac: bytes | None
    mtu: int

    @property
    def version(self) -> int:
        return 6 if ":" in self.src_ip else 4

    @property
    def mss(self) -> int:
        """Default MSS: the MTU minus 20 bytes of TCP header and 20 of IPv4 (RFC 9293 §3.7.1) or 40 of
        IPv6 (RFC 8200 §3)."""
        return self.mtu - (60 if self.version == 6 else 40)


def _mac(text: str | None) -> bytes | None:
    return bytes.fromhex(text.replace(":", "")) if text else None


def _family(ip: str) -> int:
    """AF_INET or AF_INET6 for the address text ``ip``; WireError naming the family it looks like."""
    family = socket.AF_INET6 if isinstance(ip, str) and ":" in ip else socket.AF_INET
    try:
        socket.inet_pton(family, ip)
    except (OSError, TypeError, ValueError):
        raise WireError(f"not an IPv{6 if family == socket.AF_INET6 else 4} address: {ip!r}") from None
    return family


def resolve(dst_ip: str, iface: str | None = None, src_ip: str | None = None) -> Path:
    """The path the kernel would use to reach ``dst_ip`` (through ``iface`` when given), IPv4 or IPv6."""
    family = _family(dst_ip)
    if src_ip is not None and _family(src_ip) != family:
        raise WireError(f"{src_ip} and {dst_ip} are of different address families")
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            query: dict[str, Any] = {"dst": dst_ip, "family": family}
            if iface is not None:
                found = ipr.link_lookup(ifname=iface)
                if not found:
                    raise WireError(f"no such interface: {iface}", 2)
                query["oif"] = found[0]
            if src_ip is not None:
                query["src"] = src_ip
            try:
                route = ipr.route("get", **query)[0]
            except NetlinkError as exc:
                why = errno.errorcode.get(exc.code, str(exc.code))
                where = f" via {iface}" if iface else ""
                raise WireError(f"no route to {dst_ip}{where} ({why})") from None
            if route["type"] not in (RTN_UNICAST, RTN_LOCAL):
                raise WireError(f"no usable route to {dst_ip} (route type {route['type']})")
            ifindex = route.get("RTA_OIF")
            src = src_ip or route.get("RTA_PREFSRC")
            next_hop = route.get("RTA_GATEWAY") or dst_ip
            link = ipr.get_links(ifindex)[0]
            ifname = link.get("IFLA_IFNAME")
            mtu = route_mtu(route) or link.get("IFLA_MTU")
            if src is None:
                raise WireError(f"{ifname} has no IPv{6 if family == socket.AF_INET6 else 4} address to send from")
            kind = link["ifi_type"]
            if kind == ARPHRD_LOOPBACK:
                mac = _mac(link.get("IFLA_ADDRESS")) or bytes(6)
                return Path(ifname, src, mac, next_hop, mac, mtu)
            if kind != ARPHRD_ETHER:
                return Path(ifname, src, None, next_hop, None, mtu)
            src_mac = _mac(link.get("IFLA_ADDRESS"))
            dst_mac = None
            for neigh in ipr.get_neighbours(family=family, ifindex=ifindex, dst=next_hop):
                if neigh["state"] & NUD_VALID and neigh.get("NDA_LLADDR"):
                    dst_mac = _mac(neigh.get("NDA_LLADDR"))
                    break
    except PermissionError:
        raise WireError("route look-up needs root (CAP_NET_ADMIN): run it with sudo") from None
    if dst_mac is None:
        assert src_mac is not None
        if family == socket.AF_INET6:
            dst_mac = ndp(ifname, src_ip=src, src_mac=src_mac, target_ip=next_hop)
        else:
            dst_mac = arp(ifname, src_ip=src, src_mac=src_mac, target_ip=next_hop)
    return Path(ifname, src, src_mac, next_hop, dst_mac, mtu)


def route_mtu(route: Any) -> int | None:
    """An ``mtu`` route metric (``ip route add ... mtu N``) overrides the link's MTU."""
    metrics = route.get("RTA_METRICS")
    if metrics:
        value = metrics.get("RTAX_MTU")
        if value:
            return int(value)
    return None


def _ask(ifname: str, ethertype: int, request: bytes, answer: Callable[[bytes], bytes | None], what: str,
         tries: int, wait: float) -> bytes | None:
    """Send ``request`` on ``ifname`` up to ``tries`` times, waiting ``wait`` s each, until ``answer``
    finds the MAC in a received frame (ARP and neighbour discovery alike); None when nothing came."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    except PermissionError:
        raise WireError(f"{what} needs root (CAP_NET_RAW): run it with sudo") from None
    with sock:
        try:
            sock.bind((ifname, ethertype))
        except OSError as exc:
            raise WireError(f"cannot use interface {ifname}: {exc.strerror}") from None
        for _ in range(tries):
            sock.send(request)
            deadline = time.monotonic() + wait
            for _ in range(10_000):  # bounded: frames from a noisy segment cannot keep us here
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    break
                mac = answer(sock.recv(2048))
                if mac is not None:
                    return mac
    return None


def arp(ifname: str, src_ip: str, src_mac: bytes, target_ip: str,
        tries: int = ARP_TRIES, wait: float = ARP_WAIT) -> bytes:
    """Ask who has ``target_ip`` on ``ifname``; its MAC, or WireError after ``tries`` × ``wait`` s."""
    spa, tpa = socket.inet_aton(src_ip), socket.inet_aton(target_ip)
    request = _ARP.pack(BROADCAST, src_mac, ETH_P_ARP, ARPHRD_ETHER, 0x0800, 6, 4, 1,
                        src_mac, spa, bytes(6), tpa)

    def reply(frame: bytes) -> bytes | None:
        if len(frame) < _ARP.size:
            return None
        fields = _ARP.unpack_from(frame)
        op, sha, sender_ip = fields[7], fields[8], fields[9]
        return sha if fields[2] == ETH_P_ARP and op == 2 and sender_ip == tpa else None

    mac = _ask(ifname, ETH_P_ARP, request, reply, "ARP", tries, wait)
    if mac is None:
        raise WireError(f"no ARP reply from {target_ip} on {ifname}", 8)  # README: exit 8
    return mac


def ndp(ifname: str, src_ip: str, src_mac: bytes, target_ip: str,
        tries: int = NDP_TRIES, wait: float = NDP_WAIT) -> bytes:
    """Solicit ``target_ip`` on ``ifname`` (RFC 4861 §7.2.2); its MAC from the advertisement, or
    WireError after ``tries`` × ``wait`` s. The target learns our MAC from the solicitation's source
    link-layer option, so its answer comes straight back to us."""
    try:
        target = socket.inet_pton(socket.AF_INET6, target_ip)
        request = neighbor_solicitation(src_ip, src_mac, target_ip)
    except (OSError, ValueError):
        raise WireError(f"not an IPv6 address: {target_ip!r}") from None

    def advert(frame: bytes) -> bytes | None:
        answer = parse_neighbor_advert(frame)
        if answer is not None and socket.inet_pton(socket.AF_INET6, answer[0]) == target:
            return answer[1]
        return None

    mac = _ask(ifname, ETH_P_IPV6, request, advert, "neighbour discovery", tries, wait)
    if mac is not None:
        return mac
    raise WireError(f"no neighbour advertisement from {target_ip} on {ifname}", 8)  # as for ARP: exit 8
