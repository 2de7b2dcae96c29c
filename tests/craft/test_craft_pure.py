"""Probe/flood building blocks without root or sockets: argument parsing, flag strings, summary maths,
and the flood's patched frames byte-for-byte against scapy."""

from __future__ import annotations

import socket
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from rawtcp.core.segment import Flags, Segment
from rawtcp.craft import flood as fl
from rawtcp.craft import probe as pr
from rawtcp.craft import spec as sp
from rawtcp.craft.errors import CraftError
from rawtcp.errors import BAD_INPUT
from rawtcp.wire.packet import FrameBuilder, decode_frame, encode_options
from rawtcp.wire.rawsock import BatchSender

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")


# --- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [
    ("S", Flags.SYN), ("SA", Flags.SYN | Flags.ACK), ("as", Flags.SYN | Flags.ACK), ("R", Flags.RST),
    ("FPA", Flags.FIN | Flags.PSH | Flags.ACK), ("U", Flags.URG), ("EC", Flags.ECE | Flags.CWR),
    ("FSRPAUEC", Flags(0xFF)), ("", Flags(0)), ("none", Flags(0)),
])
def test_parse_flags(text: str, value: Flags) -> None:
    assert sp.parse_flags(text) == value


def test_parse_flags_rejects_unknown_letter() -> None:
    with pytest.raises(CraftError, match="unknown TCP flag 'X'") as exc:
        sp.parse_flags("SX")
    assert exc.value.exit_code == BAD_INPUT


@pytest.mark.parametrize("value,text", [
    (Flags.SYN, "S"), (Flags.SYN | Flags.ACK, "S."), (Flags.RST | Flags.ACK, "R."), (Flags.RST, "R"),
    (Flags.ACK, "."), (Flags.FIN | Flags.PSH | Flags.ACK, "FP."), (Flags(0), "none"),
])
def test_flag_text_is_tcpdump_style(value: Flags, text: str) -> None:
    assert sp.flag_text(value) == text


# --- options and payload -------------------------------------------------------------------------


def test_ts_option() -> None:
    assert sp.parse_ts("1,0") == ("Timestamp", (1, 0))
    assert sp.parse_ts("0x10, 7") == ("Timestamp", (16, 7))
    for bad in ("1", "1,2,3", "a,b", f"{2**32},0"):
        with pytest.raises(CraftError):
            sp.parse_ts(bad)


def test_raw_option() -> None:
    assert sp.parse_raw_option("30:0102") == (30, b"\x01\x02")
    assert sp.parse_raw_option("254") == (254, b"")
    assert sp.parse_raw_option("1") == ("NOP", None)
    for bad in ("x:00", "300:00", "30:zz", "1:00", "30:" + "00" * 39):
        with pytest.raises(CraftError):
            sp.parse_raw_option(bad)


def test_build_options_order_and_encoding() -> None:
    opts = sp.build_options(mss=1460, wscale=7, sackok=True, ts="5,0", raw=["30:abcd"])
    assert opts == (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5, 0)), ("WScale", 7), (30, b"\xab\xcd"))
    wire = encode_options(opts)
    assert wire.startswith(bytes.fromhex("020405b4" "0402" "080a0000000500000000" "030307" "1e04abcd"))
    assert len(wire) % 4 == 0


def test_build_options_too_long() -> None:
    with pytest.raises(CraftError, match="TCP options"):
        sp.build_options(mss=1460, ts="1,1", raw=["30:" + "00" * 30])


def test_payload() -> None:
    assert sp.build_payload("hi", None) == b"hi"
    assert sp.build_payload("0x0001ff", None) == b"\x00\x01\xff"
    assert sp.build_payload(None, 3) == b"\0\0\0"
    assert sp.build_payload(None, None) == b""
    with pytest.raises(CraftError, match="not both"):
        sp.build_payload("a", 1)
    with pytest.raises(CraftError):
        sp.build_payload("0xz", None)


def test_port_range() -> None:
    assert sp.parse_port_range("1000-1003") == (1000, 1003)
    assert sp.parse_port_range("80") == (80, 80)
    for bad in ("5-1", "0-10", "a-b", "1-70000"):
        with pytest.raises(CraftError):
            sp.parse_port_range(bad)
    spec = pr.ProbeSpec("198.18.0.2", 80, sport_range=(1000, 1002))
    assert [spec.source_port(i, 5) for i in range(5)] == [1000, 1001, 1002, 1000, 1001]
    assert pr.ProbeSpec("198.18.0.2", 80).source_port(3, 5) == 5
    assert pr.ProbeSpec("198.18.0.2", 80, sport=7).source_port(3, 5) == 7


# --- summary maths -------------------------------------------------------------------------------


@given(st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=50), st.integers(0, 20))
def test_rtt_summary_matches_ping(rtts: list[float], lost: int) -> None:
    out = sp.rtt_summary(len(rtts) + lost, rtts)
    assert (out["sent"], out["received"], out["lost"]) == (len(rtts) + lost, len(rtts), lost)
    assert out["loss_pct"] == round(100 * lost / (len(rtts) + lost), 1)
    assert out["rtt_min_ms"] == round(min(rtts), 3)
    assert out["rtt_max_ms"] == round(max(rtts), 3)
    assert out["rtt_avg_ms"] == pytest.approx(statistics.fmean(rtts), abs=1e-3)
    assert out["rtt_mdev_ms"] == pytest.approx(statistics.pstdev(rtts), abs=1e-3 + 1e-6 * max(rtts))


def test_rtt_summary_nothing_answered() -> None:
    out = sp.rtt_summary(4, [])
    assert out["lost"] == 4 and out["loss_pct"] == 100.0 and out["rtt_avg_ms"] is None


def test_summary_lines() -> None:
    lines = pr.summary_lines({**sp.rtt_summary(4, [1.0, 2.0, 3.0]), "rsts_sent": 3})
    assert lines[0] == "4 probes sent, 3 answered, 1 lost (25.0% loss)"
    assert lines[1] == "rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms"
    assert "3 RST(s) sent" in lines[2]


def test_percentile() -> None:
    assert sp.percentile([1, 2, 3, 4], 50) == 2.5
    assert sp.percentile([5], 99) == 5
    assert sp.percentile(list(range(101)), 99) == 99


# --- probe records -------------------------------------------------------------------------------


def test_probe_result_json_and_lines() -> None:
    sent = Segment(40000, 8080, 100, 0, Flags.SYN, 64240, (("MSS", 1460),))
    reply = Segment(8080, 40000, 7, 101, Flags.SYN | Flags.ACK, 65160, (("MSS", 1460), ("WScale", 7)))
    res = pr.ProbeResult(1, "198.18.0.1:40000", "198.18.0.2:8080", sent, 0.001, 44, 64, 1, reply, 64, 0, True,
                         0.0712, True)
    js = res.to_json()
    assert {k: js[k] for k in ("seq_no", "sent_flags", "reply_flags", "reply_seq", "reply_ack", "reply_win",
                               "reply_options", "rtt_ms")} == {
        "seq_no": 1, "sent_flags": "S", "reply_flags": "S.", "reply_seq": 7, "reply_ack": 101, "reply_win": 65160,
        "reply_options": "mss 1460,wscale 7", "rtt_ms": 0.071}
    assert pr.sent_line(res) == ("SENT (0.0010s) TCP 198.18.0.1:40000 > 198.18.0.2:8080 S ttl=64 id=1 iplen=44 "
                                 "seq=100 win=64240 len=0 <mss 1460>")
    assert pr.reply_line(res).endswith("S. ttl=64 id=0 seq=7 ack=101 win=65160 len=0 <mss 1460,wscale 7> rtt=0.071ms")
    unanswered = pr.ProbeResult(2, "a", "b", sent, 1.0, 44, 64, 2)
    js = unanswered.to_json()
    assert js["reply_flags"] is None and js["rtt_ms"] is None and js["reply_seq"] is None
    assert "no answer" in pr.reply_line(unanswered)


def test_probe_spec_bounds() -> None:
    with pytest.raises(CraftError, match="--count"):
        pr.ProbeSpec("198.18.0.2", 80, count=0).check()
    with pytest.raises(CraftError, match="could last"):
        pr.ProbeSpec("198.18.0.2", 80, count=100_000, interval=1.0).check()
    with pytest.raises(CraftError, match="--ttl"):
        pr.ProbeSpec("198.18.0.2", 80, ttl=300).check()


# --- flood ---------------------------------------------------------------------------------------


def test_flood_refuses_outside_the_lab_range_and_unbounded_runs() -> None:
    fl.check_target("198.19.255.1")
    for ip in ("10.0.0.1", "192.168.1.1", "8.8.8.8", "127.0.0.1"):
        with pytest.raises(CraftError, match="only sends to lab addresses"):
            fl.check_target(ip)
    with pytest.raises(CraftError, match="needs a bound"):
        fl.check_bounds(None, None, None)
    for args in ((0, None, None), (fl.MAX_COUNT + 1, None, None), (None, 0.0, None), (None, 1e6, None),
                 (10, None, -1.0)):
        with pytest.raises(CraftError):
            fl.check_bounds(*args)
    fl.check_bounds(10, None, None)
    fl.check_bounds(None, 1.0, 100.0)


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: socket.inet_ntoa(n.to_bytes(4, "big")))


@settings(max_examples=200, deadline=None)
@given(src=ipv4, dst=ipv4, dport=st.integers(1, 65535), sport=st.integers(0, 65535), seq=st.integers(0, 2**32 - 1),
       window=st.integers(0, 65535), ttl=st.integers(1, 255), ip_id=st.integers(0, 65535),
       linux_opts=st.booleans())
def test_flood_template_patch_matches_scapy(src: str, dst: str, dport: int, sport: int, seq: int, window: int,
                                            ttl: int, ip_id: int, linux_opts: bool) -> None:
    opts = fl.LINUX_SYN_OPTIONS if linux_opts else ()
    tmpl = fl.SynTemplate(src, dst, SRC_MAC, DST_MAC, dport, window=window, options=opts, ttl=ttl, ip_id=ip_id)
    buf = bytearray(b"\xee" * 7 + tmpl.frame * 2)  # patched in place, at an offset, among other frames
    tmpl.patch(buf, 7 + tmpl.size, sport, seq)
    patched = bytes(buf[7 + tmpl.size:])
    scapy = bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IP(src=src, dst=dst, ttl=ttl, id=ip_id, flags="DF")
                  / TCP(sport=sport, dport=dport, seq=seq, flags="S", window=window, options=list(opts)))
    assert patched == scapy
    assert tmpl.build(sport, seq) == scapy
    assert buf[7:7 + tmpl.size] == tmpl.frame  # the neighbour is untouched
    builder = FrameBuilder(src, dst, SRC_MAC, DST_MAC, ttl=ttl, df=True)
    assert patched == builder.frame(Segment(sport, dport, seq, 0, Flags.SYN, window, opts), ip_id=ip_id)
    dec = decode_frame(patched)
    assert dec is not None and dec.checksum_ok and dec.segment.sport == sport and dec.segment.seq == seq


def test_batch_sender_sends_each_frame_once() -> None:
    """sendmmsg through ctypes, on a datagram socketpair: n messages, each the patched frame in its slot."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        tmpl = fl.SynTemplate("198.18.0.1", "198.18.0.2", SRC_MAC, DST_MAC, 8080)
        sender = BatchSender(a.fileno(), tmpl.size, 8)
        sender.fill_from(tmpl.frame)
        for i in range(5):
            tmpl.patch(sender.buf, i * tmpl.size, 1000 + i, i)
        assert sender.send(5) == 5
        got = [b.recv(4096) for _ in range(5)]
        assert got == [tmpl.build(1000 + i, i) for i in range(5)]
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(4096)
        sender.close()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("src", "dst"), [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")])
def test_patch_batch_makes_frames_the_template_would_build(src: str, dst: str) -> None:
    """Each patched frame is the template's own build for the port and ISN it carries (so its checksum is
    right), the ports stay in range, and frames and successive batches differ."""
    tmpl = fl.SynTemplate(src, dst, SRC_MAC, DST_MAC, 8080)
    buf = bytearray(tmpl.frame * 64)
    lo, width = 40000, 100
    state = tmpl.patch_batch(buf, 64, 12345, lo, width)
    frames = [bytes(buf[i * tmpl.size:(i + 1) * tmpl.size]) for i in range(64)]
    seen = set()
    for frame in frames:
        dec = decode_frame(frame)
        assert dec is not None and dec.checksum_ok
        seg = dec.segment
        assert lo <= seg.sport < lo + width and seg.dport == 8080
        assert frame == tmpl.build(seg.sport, seg.seq)
        seen.add((seg.sport, seg.seq))
    assert len(seen) == 64 and state not in (0, 12345)
    again = bytearray(buf)
    assert tmpl.patch_batch(again, 64, state, lo, width) != state and again != buf
    assert tmpl.patch_batch(bytearray(buf), 3, 12345, lo, width) == tmpl.patch_batch(bytearray(buf), 3, 12345, lo,
                                                                                        width)
