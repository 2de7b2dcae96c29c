"""Captures: pcap/pcapng I/O, tshark-compatible streams, ladders (text, SVG) and comparison.

Imports only rawtcp.core. The light pieces are re-exported here; ``streams``, ``ladder`` and
``compare`` are imported from their modules.
"""

from rawtcp.capture.decode import TcpPacket, decode_tcp
from rawtcp.capture.errors import CaptureError
from rawtcp.capture.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapWriter,
    RawPacket,
    iter_packets,
)
from rawtcp.capture.sidecar import read_sidecar, write_sidecar

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "CaptureError",
    "PcapWriter",
    "RawPacket",
    "TcpPacket",
    "decode_tcp",
    "iter_packets",
    "read_sidecar",
    "write_sidecar",
]
