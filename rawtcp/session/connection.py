"""Set up (and always tear down) everything one hand-driven connection needs on this host.

Order matters: the RST-suppression entry and the filtered packet socket exist before the first SYN
leaves, so neither the kernel's RST nor a fast reply can beat us.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import random
import socket
from dataclasses import dataclass
from typing import Any

from rawtcp.core import Endpoint, EndpointConfig
from rawtcp.core.rto import RTO_MIN
from rawtcp.session.driver import Driver
from rawtcp.session.jsonrecord import build, fields_from_json

EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
# "linux": what a Linux socket offers and does (EndpointConfig.linux_like); "bare": SEED.md's SYN with
# only <mss>, and RFC-plain behaviour (no SACK, timestamps, window scaling, Nagle or delayed ACK).
PROFILES = ("linux", "bare")


@dataclass(frozen=True)
class ConnectionSpec:
    """One hand-driven connection. The TCP options left at None take the profile's choice.

    Frozen: a passive open learns its peer from the SYN and the Connection then holds a copy with
    ``remote_ip``/``remote_port`` filled in (``Connection.spec``)."""

    remote_ip: str | None  # None for a passive open until the SYN arrives
    remote_port: int
    local_port: int | None = None  # None: a free ephemeral port, reserved from the kernel
    iface: str | None = None
    isn: int | None = None  # None: random (RFC 9293 §3.4.1 wants unpredictable ISNs)
    mss: int | None = None  # None: from the interface MTU
    window: int | None = None
    profile: str = "linux"  # one of PROFILES
    wscale: int | None = None  # shift offered in our SYN; None: the profile's (7, or none when bare)
    no_wscale: bool = False  # offer no window scaling whatever the profile says
    sack: bool | None = None  # RFC 2018 SACK-permitted offered (used if the peer's SYN has it too)
    timestamps: bool | None = None  # RFC 7323 TSopt offered (used if the peer's SYN has it too)
    nagle: bool | None = None  # RFC 896; False is TCP_NODELAY
    delayed_ack: bool | None = None  # RFC 9293 §3.8.6.3; False is TCP_QUICKACK
    keepalive: float | None = None  # idle seconds before keep-alive probes (RFC 9293 §3.8.4); None: off
    rto_min: float | None = None  # None: the profile's, 0.2 s as Linux or 1 s bare (RFC 6298 §2.4)
    max_retries: int = 6
    msl2: float = 60.0
    pcap: str | None = None
    passive: bool = False  # listen on local_port instead of connecting
    local_ip: str | None = None  # passive open: the address to listen on (default: the iface's)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r} (one of {', '.join(PROFILES)})")

    def to_json(self) -> dict[str, Any]:
        """Every field, defaults included, so the keeper reads exactly what the command decided."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: object, what: str = "connection spec") -> ConnectionSpec:
        return build(cls, fields_from_json(cls, obj, what), what)

    def endpoint_config(self, *, local_port: int, remote_port: int, isn: int, mss: int) -> EndpointConfig:
        """The core's config: the profile's preset, then every option this spec sets explicitly."""
        chosen = {"local_port": local_port, "remote_port": remote_port, "isn": isn, "mss": mss,
                  "window": self.window, "max_retries": self.max_retries, "msl2": self.msl2}
        for name in ("wscale", "sack", "timestamps", "nagle", "delayed_ack", "keepalive", "rto_min"):
            value = getattr(self, name)
            if value is not None:
                chosen[name] = value
        if self.no_wscale:
            chosen["wscale"] = None
        if self.profile == "linux":
            return EndpointConfig.linux_like(**chosen)
        # The plain constructor is the seed's bare SYN; its RTO floor is Linux's, RFC 6298's is 1 s.
        chosen.setdefault("rto_min", RTO_MIN)
        return EndpointConfig(**chosen)


class Connection:
    """A driver plus the host resources it holds; ``close()`` releases every one of them."""

    def __init__(self, spec: ConnectionSpec, rng: random.Random | None = None) -> None:
        from rawtcp.wire import nft, route
        from rawtcp.wire.link import PacketLink
        from rawtcp.wire.packet import FrameBuilder

        self.spec = spec
        self._stack = contextlib.ExitStack()
        rng = rng or random.SystemRandom()
        try:
            # A passive open answers from its interface; the peer's MAC comes with its SYN.
            path = _local_path(spec.iface, spec.local_ip) if spec.passive else route.resolve(spec.remote_ip,
                                                                                              spec.iface)
            self.path = path
            self.local_ip = path.src_ip
            port_holder, lport = _reserve_port(path.src_ip, spec.local_port, rng)
            self._stack.callback(port_holder.close)
            self.guard = nft.RstGuard()
            self._stack.callback(self.guard.close)
            if spec.passive:
                self.guard.add_bind(path.src_ip, lport)
                self._stack.callback(self.guard.remove_bind, path.src_ip, lport)
                self.link = PacketLink(path.ifname, path.src_ip, lport)
            else:
                self.guard.add_conn(path.src_ip, lport, spec.remote_ip, spec.remote_port)
                self._stack.callback(self.guard.remove_conn, path.src_ip, lport, spec.remote_ip, spec.remote_port)
                self.link = PacketLink(path.ifname, path.src_ip, lport, spec.remote_ip, spec.remote_port)
            self._stack.callback(self.link.close)
            builder = None if spec.passive else FrameBuilder(path.src_ip, spec.remote_ip, path.src_mac,
                                                              path.dst_mac)
            pcap = None
            if spec.pcap:
                from rawtcp.capture.pcap import PcapWriter

                pcap = PcapWriter(spec.pcap, fix_checksums=True)  # veth leaves our peer's sums partial
                self._stack.callback(pcap.close)
            config = spec.endpoint_config(
                local_port=lport,
                remote_port=0 if spec.passive else spec.remote_port,
                isn=spec.isn if spec.isn is not None else rng.getrandbits(32),
                # MTU minus the IP and TCP headers: 40 bytes over IPv4, 60 over IPv6 (RFC 8200 §3).
                mss=spec.mss or max(536 if path.version == 4 else 1220, path.mss),
            )
            self.endpoint = Endpoint(config)
            self.driver = Driver(self.endpoint, self.link, builder, path.src_ip,
                                 None if spec.passive else spec.remote_ip, pcap=pcap)
            if spec.passive:
                self.driver.accept_peer = self._accept_peer
        except BaseException:
            self._stack.close()
            raise

    def _accept_peer(self, decoded: Any, frame: bytes) -> None:
        """Passive open: the first SYN names the peer; answer it at its MAC, and narrow the socket
        filter and the RST entry to its 4-tuple (one connection per session)."""
        from rawtcp.wire.packet import FrameBuilder

        remote_ip, remote_port = decoded.src_ip, decoded.segment.sport
        lport = self.endpoint.local_port
        self.spec = dataclasses.replace(self.spec, remote_ip=remote_ip, remote_port=remote_port)
        self.guard.add_conn(self.local_ip, lport, remote_ip, remote_port)
        self._stack.callback(self.guard.remove_conn, self.local_ip, lport, remote_ip, remote_port)
        self.link.set_filter(self.local_ip, lport, remote_ip, remote_port)
        self.driver.builder = FrameBuilder(self.local_ip, remote_ip, self.path.src_mac, bytes(frame[6:12]))
        self.driver.remote_ip = remote_ip

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reserve_port(ip: str, port: int | None, rng: random.Random) -> tuple[socket.socket, int]:
    """Hold the port with a bound (never listening) kernel socket so the kernel's own connections
    cannot pick it while we use it. The kernel still RSTs our peer's segments: nftables drops those."""
    from rawtcp.session.errors import SessionError

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        # Only this family's port: an IPv4 socket may hold the same number (no IPv4-mapped binding).
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if port is not None:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            sock.close()
            raise SessionError(f"local port {port} is in use on {ip}: {os.strerror(exc.errno or 0)}") from None
        return sock, port
    for _ in range(64):
        candidate = rng.randint(*EPHEMERAL)
        try:
            sock.bind((ip, candidate))
            return sock, candidate
        except OSError:
            continue
    sock.close()
    raise SessionError(f"no free local port on {ip}")


def _local_path(ifname: str | None, local_ip: str | None) -> Any:
    """Passive open: the interface and address we answer from; the peer's MAC comes with its SYN.

    Without ``local_ip`` the interface's first IPv4 address is used; an IPv6 ``local_ip`` must be one
    of the interface's addresses (a link-local one would need a scope, which the lab never uses)."""
    from rawtcp.errors import BAD_INPUT
    from rawtcp.session.errors import SessionError
    from rawtcp.wire.route import Path

    if ifname is None:
        raise SessionError("a passive open needs --iface (or the lab's server namespace)")
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.link_lookup(ifname=ifname)
        if not links:
            raise SessionError(f"no such interface: {ifname}", BAD_INPUT)
        link = ipr.get_links(links[0])[0]
        mac = link.get_attr("IFLA_ADDRESS")
        mtu = link.get_attr("IFLA_MTU") or 1500
        v6 = local_ip is not None and ":" in local_ip
        family = socket.AF_INET6 if v6 else socket.AF_INET
        addrs = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=links[0], family=family)]
    if local_ip is None:
        if not addrs:
            raise SessionError(f"{ifname} has no IPv4 address")
        local_ip = addrs[0]
    elif ipaddress.ip_address(local_ip) not in {ipaddress.ip_address(a) for a in addrs}:
        raise SessionError(f"{local_ip} is not an address of {ifname}", BAD_INPUT)
    local_ip = ipaddress.ip_address(local_ip).compressed  # one spelling, as the kernel prints it
    return Path(ifname, local_ip, bytes.fromhex(mac.replace(":", "")) if mac else None, "", None, mtu)
