"""Wire-layer logic that needs no root: element keys, checksum-status decoding, argument checks."""

from __future__ import annotations

import pytest

from rawtcp.core.segment import Flags, Segment
from rawtcp.wire import netns
from rawtcp.wire.errors import WireError
from rawtcp.wire.link import TP_STATUS_CSUM_VALID, TP_STATUS_CSUMNOTREADY, decode
from rawtcp.wire.nft import RstGuard
from rawtcp.wire.packet import FrameBuilder
from rawtcp.wire.route import Path

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def test_element_text_is_what_nft_prints() -> None:
    assert RstGuard.conn_key("198.18.0.1", 40000, "198.18.0.2", 8080) == "198.18.0.1 . 40000 . 198.18.0.2 . 8080"
    assert RstGuard.bind_key("198.18.0.1", 9000) == "198.18.0.1 . 9000"


@pytest.mark.parametrize("args", [("198.18.0", 1, "198.18.0.2", 2), ("198.18.0.1", 0, "198.18.0.2", 2),
                                  ("198.18.0.1", 1, "198.18.0.2", 65536), ("x", 1, "198.18.0.2", 2)])
def test_element_arguments_checked(args: tuple) -> None:
    with pytest.raises(WireError):
        RstGuard.conn_key(*args)


def test_decode_trusts_offload_status_only_when_set() -> None:
    fb = FrameBuilder("198.18.0.2", "198.18.0.1", MAC_B, MAC_A)
    partial = fb.frame(Segment(8080, 40000, 1, 1001, Flags.SYN | Flags.ACK, 100), bad_checksum=True)
    assert decode(partial, 0x1).checksum_ok is False  # TP_STATUS_USER alone: verified, and wrong
    assert decode(partial, 0x1 | TP_STATUS_CSUMNOTREADY).checksum_ok is True  # veth offload
    assert decode(partial, TP_STATUS_CSUM_VALID).checksum_ok is True  # the NIC checked it
    assert decode(b"\x00" * 10, TP_STATUS_CSUMNOTREADY) is None


def test_path_mss_from_mtu() -> None:
    assert Path("eth0", "198.18.0.1", MAC_A, "198.18.0.2", MAC_B, 1500).mss == 1460
    assert Path("tun0", "198.18.0.1", None, "198.18.0.2", None, 1400).mss == 1360


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_namespace_names_checked(name: str) -> None:
    with pytest.raises(WireError, match="bad network namespace name"):
        netns.exists(name)
