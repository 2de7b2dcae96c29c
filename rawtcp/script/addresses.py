"""packetdrill's addresses and the lab's: which literal in a script means which end.

packetdrill runs the kernel under test behind a tun device with addresses of its own (config.c:
192.168.0.1 local, 192.0.2.1 remote, 192.168.0.0/16 on the tun link; fd3d:… for IPv6), and scripts'
shell commands sometimes name them (``ip route change 192.0.2.1 via 192.168.0.2 dev tun0 mtu lock
640``). rawtcp's lab uses the project's own ranges instead (198.18.0.0/15, 2001:db8::/32), so such
a command is rewritten before it runs: the remote address and any other next hop on packetdrill's
link become the peer's address (on a veth the peer is the only neighbour), the local address the
kernel's.
"""

from __future__ import annotations

import ipaddress
import re

# packetdrill's default addresses per mode (config.c; run_all.py passes the same): (local, remote).
SCRIPT_ADDRESSES = {"ipv4": ("192.168.0.1", "192.0.2.1"), "ipv4-mapped-ipv6": ("192.168.0.1", "192.0.2.1"),
                    "ipv6": ("fd3d:a0b:17d6::1", "fd3d:fa7b:d17d::1")}
# the networks packetdrill's addresses come from: anything there that is not the local address is
# the far side of the tun link (the remote host, or a next hop towards it)
_REMOTE_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "192.168.0.0/16", "10.248.0.0/16",
                                                  "fd3d::/16", "2001:db8::/32")]
# an IPv4 literal may be followed by ":port"; an IPv6 one stands alone (or in brackets)
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"
_IPV6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w.:])"
_ADDRESS = re.compile(rf"(?<![\w.:])(?:{_IPV4}|{_IPV6})")


def translate_command(command: str, local_ips: set[str], kernel_ip: str, peer_ip: str,
                      lab_v4: tuple[str, str] | None = None) -> str:
    """``command`` with packetdrill's addresses replaced by the lab's (see the module docstring).

    ``local_ips`` are the script's addresses for the kernel's side; the lab's own addresses and
    anything outside packetdrill's ranges are left alone. ``lab_v4`` (kernel, peer), given when the lab
    runs over IPv6, are the lab's IPv4 addresses a lab script names (``ss ... | grep 198.18.0.1:8080``):
    they become the IPv6 ones, bracketed before a port as ss and friends print them.
    """
    locals_ = {_canonical(ip) for ip in local_ips}
    lab = {_canonical(kernel_ip), _canonical(peer_ip)}
    v4_to_v6 = {} if lab_v4 is None else {_canonical(lab_v4[0]): kernel_ip, _canonical(lab_v4[1]): peer_ip}

    def swap(match: re.Match[str]) -> str:
        text = match.group(0)
        canon = _canonical(text)
        if canon in v4_to_v6:
            follows = command[match.end():match.end() + 1]
            return f"[{v4_to_v6[canon]}]" if follows == ":" else v4_to_v6[canon]
        if canon is None or canon in lab:
            return text
        addr = ipaddress.ip_address(canon)
        if addr.version != ipaddress.ip_address(kernel_ip).version:
            return text  # the other family than the run's: no lab address stands for it
        if canon in locals_:
            return kernel_ip
        if any(addr.version == net.version and addr in net for net in _REMOTE_NETS):
            return peer_ip
        return text

    return _ADDRESS.sub(swap, command)


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
