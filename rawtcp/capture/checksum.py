"""Fill in IPv4 header and TCP checksums of a captured frame (struct/array only, no scapy).

Segments a kernel sends over veth are captured before the checksum is computed (tx offload: the
field holds a partial sum); a capture meant for Wireshark should carry valid checksums, so a writer
can pass each frame through :func:`with_valid_checksums` first.
"""

from __future__ import annotations

import sys
from array import array

from rawtcp.capture.decode import ip_offset

_SWAP = sys.byteorder == "little"


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 one's-complement checksum of ``data`` (as a big-endian 16-bit value)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    # The one's-complement sum does not depend on byte order (RFC 1071 §2(B)): add native
    # 16-bit words, fold, and swap the result's bytes back to network order.
    total = sum(array("H", bytes(data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _SWAP:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return ~total & 0xFFFF


def with_valid_checksums(linktype: int, frame: bytes) -> bytes:
    """The frame with its IPv4 header checksum and TCP checksum recomputed (RFC 791, RFC 9293 §3.1).

    Frames that are not TCP over IP, or were cut short by the snapshot length, come back unchanged.
    """
    ip = ip_offset(linktype, frame)
    if ip < 0 or len(frame) < ip + 20:
        return frame
    out = bytearray(frame)
    version = frame[ip] >> 4
    if version == 4:
        ihl = (frame[ip] & 0x0F) * 4
        total = int.from_bytes(frame[ip + 2:ip + 4], "big")
        if ihl < 20 or total < ihl or len(frame) < ip + total or frame[ip + 9] != 6:
            return frame
        if int.from_bytes(frame[ip + 6:ip + 8], "big") & 0x1FFF or frame[ip + 6] & 0x20:
            return frame  # a fragment: the TCP checksum covers bytes not in this frame
        out[ip + 10:ip + 12] = b"\0\0"
        out[ip + 10:ip + 12] = internet_checksum(out[ip:ip + ihl]).to_bytes(2, "big")
        tcp, end = ip + ihl, ip + total
        pseudo = bytes(out[ip + 12:ip + 20]) + b"\0\x06" + (end - tcp).to_bytes(2, "big")
    elif version == 6:
        if len(frame) < ip + 40 or frame[ip + 6] != 6:  # only TCP right after the fixed header
            return frame
        tcp = ip + 40
        end = tcp + int.from_bytes(frame[ip + 4:ip + 6], "big")
        if len(frame) < end:
            return frame
        pseudo = bytes(out[ip + 8:ip + 40]) + (end - tcp).to_bytes(4, "big") + b"\0\0\0\x06"
    else:
        return frame
    if end - tcp < 20:
        return bytes(out)
    out[tcp + 16:tcp + 18] = b"\0\0"
    out[tcp + 16:tcp + 18] = internet_checksum(pseudo + bytes(out[tcp:end])).to_bytes(2, "big")
    return bytes(out)
