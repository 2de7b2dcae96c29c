"""The only layer that touches the network: packet fast path, BPF, AF_PACKET link, RST suppression, netns.

Submodules are imported explicitly (``from rawtcp.wire.packet import FrameBuilder``) so that importing
this package stays cheap and scapy-free.
"""

from rawtcp.wire.errors import WireError

__all__ = ["WireError"]
