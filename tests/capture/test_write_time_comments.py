"""Comments written with each packet (what the writer knew then), and what the post-pass adds to them;
a capture rewritten in place keeps the format its name asks for. No root: captures built with scapy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rawtcp.capture.pcap import PCAPNG_SHB, PcapWriter, is_pcapng_name, packet_comment, split_comment
from rawtcp.capture.sidecar import read_notes, write_sidecar
from rawtcp.capture.streams import read_streams

from .builders import T0, seed_packets

# What a session's driver knows as it writes each of the seed's ten segments: rawtcp's state (the
# client's), the one that sent an outbound segment or that an inbound one found.
CLIENT_STATES = ["SYN-SENT", "SYN-SENT", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                 "FIN-WAIT-1", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
KERNEL_EVENTS = [
    {"time": T0 + 0.001, "who": "kernel", "addr": "198.18.0.2:8080", "peer": "198.18.0.1:40000",
     "old": "LISTEN", "new": "SYN_RECV"},
    {"time": T0 + 0.021, "who": "kernel", "addr": "198.18.0.2:8080", "peer": "198.18.0.1:40000",
     "old": "SYN_RECV", "new": "ESTABLISHED"},
]


def comments_of(tshark: str, path: Path) -> list[str]:
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.comment"], capture_output=True,
                         text=True, check=True).stdout
    return out.splitlines()


def session_capture(path: Path) -> Path:
    with PcapWriter(path) as w:
        for i, (pkt, state) in enumerate(zip(seed_packets(), CLIENT_STATES, strict=True)):
            w.write(bytes(pkt), float(pkt.time), comment=packet_comment(state, note="request sent" if i == 3 else None))
    return path


def test_packet_comment_reads_back() -> None:
    text = packet_comment("ESTABLISHED", "CLOSED (timewait socket took over)", "line 7 | odd", stack="pytcp")
    assert text == "rawtcp ESTABLISHED | pytcp CLOSED (timewait socket took over) | line 7 | odd"
    assert split_comment(text) == ({"rawtcp": "ESTABLISHED", "pytcp": "CLOSED (timewait socket took over)"},
                                   "line 7 | odd")
    assert split_comment("request sent") == ({}, "request sent")


def test_write_time_comments_need_no_post_pass(tshark: str, tmp_path: Path) -> None:
    path = session_capture(tmp_path / "run.pcapng")
    comments = comments_of(tshark, path)
    assert [c.split(" | ")[0] for c in comments] == [f"rawtcp {s}" for s in CLIENT_STATES]
    assert "request sent" in comments[3]


def test_post_pass_adds_the_kernel_beside_the_writers_state(tshark: str, tmp_path: Path) -> None:
    path = session_capture(tmp_path / "run.pcapng")
    write_sidecar(path, KERNEL_EVENTS)
    comments = comments_of(tshark, path)
    # The writer's own rawtcp state stays; the kernel's, known only now, joins it (not a second rawtcp).
    assert comments[1].startswith("rawtcp SYN-SENT")
    assert "states: kernel SYN-RECEIVED" in comments[1] and "states: rawtcp" not in comments[1]
    assert "state kernel 198.18.0.2:8080 peer 198.18.0.1:40000 LISTEN -> SYN-RECEIVED" in comments[1]
    assert "states: kernel ESTABLISHED" in comments[3]
    write_sidecar(path, KERNEL_EVENTS)  # annotating again replaces, not repeats
    assert comments_of(tshark, path) == comments


@pytest.mark.parametrize("name", ["run.pcapng", "run.pcap"])
def test_readers_show_the_notes_not_the_states(tmp_path: Path, name: str) -> None:
    path = session_capture(tmp_path / name)
    (stream,) = read_streams(path)
    # The ladder draws states from the recorded changes; a per-packet "rawtcp X" is not repeated as a note.
    assert [s.comments for s in stream.segments][2:5] == [(), ("request sent",), ()]
    if not is_pcapng_name(name):
        assert read_notes(path)[1] == ["rawtcp SYN-SENT"]  # classic pcap: the side-car keeps them


@pytest.mark.parametrize("name", ["crafted.pcapng", "crafted.pcap"])
def test_completed_checksums_keep_the_format_the_name_asks_for(tmp_path: Path, name: str) -> None:
    from rawtcp.session.kernel_compare import complete_checksums

    # tcpdump writes classic pcap whatever the name; a name asking for classic pcap may hold pcapng.
    other = tmp_path / ("tmp.pcap" if is_pcapng_name(name) else "tmp.pcapng")
    with PcapWriter(other) as w:
        for pkt in seed_packets():
            w.write(bytes(pkt), float(pkt.time))
    path = tmp_path / name
    os.replace(other, path)
    complete_checksums(str(path))
    magic = int.from_bytes(path.read_bytes()[:4], "little")
    assert (magic == PCAPNG_SHB) == is_pcapng_name(name)
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary file left
