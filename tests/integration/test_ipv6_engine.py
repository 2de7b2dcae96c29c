"""The engine over IPv6 against a real Linux kernel, driven through the CLI as separate commands.

Needs root, network namespaces and nftables; each test gets a private dual-stack lab (namespaces
rtt-ipv6-engine-*) and a private runtime directory, and checks what the KERNEL saw over IPv6: the listener's
byte counts and peers, and its socket states as the tracepoint recorded them.
"""

from __future__ import annotations

import pytest
from engine_helpers import (
    assert_nothing_left,
    json_lines,
    listener_log,
    passive_open_with_a_kernel_client,
    rawtcp,
    seed_exchange,
    segments,
    state_changes,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_seed_exchange_over_ipv6_as_separate_commands(seed_lab, env):
    _cfg, info = seed_lab
    assert info.server_ip6 == "2001:db8::2"
    with seed_exchange(seed_lab, env, info.server_ip6, "c6") as run:
        syn = segments(run.opened)[0]
        # MSS from the path: a 1500-byte veth less 40 bytes of IPv6 header and 20 of TCP (RFC 8200 §3).
        assert "mss 1440" in syn["options"]
        assert syn["src"].startswith("[2001:db8::1]:") and syn["dst"] == "[2001:db8::2]:8080"
        # The kernel's side of the open, read from the tracepoint's IPv6 fields.
        assert state_changes(run.opened, "kernel") == ["SYN-RECEIVED", "ESTABLISHED"]
        st = run.status
        assert st["kernel_state_source"] == "tracefs"
        assert st["remote"] == "[2001:db8::2]:8080" and st["local"].startswith("[2001:db8::1]:")
        listed = json_lines(rawtcp("sessions", "--json", env=env, check=True).stdout)
        assert [(s["name"], s["remote_addr"], s["remote_port"], s["local_addr"]) for s in listed] == [
            ("c6", "2001:db8::2", 8080, "2001:db8::1")]
    assert state_changes(run.closed, "kernel")[:2] == ["CLOSE-WAIT", "LAST-ACK"]
    # The ladder's state column: the kernel half-closed after our FIN, LAST-ACK as its FIN comes.
    assert [s.get("kernel_state") for s in segments(run.closed)][:3] == ["CLOSE-WAIT", "CLOSE-WAIT", "LAST-ACK"]
    # What the kernel listener itself saw, over IPv6: our 20 bytes from our address, its 10 back.
    assert run.log["peer"] == st["local"] and run.log["local"] == "[2001:db8::2]:8080"


def test_echo_over_ipv6_and_ipv4_side_by_side(echo_lab, env, tmp_path):
    """The dual-stack lab's echo listener answers both families at once; each session sees its own."""
    cfg, info = echo_lab
    rawtcp("connect", info.server_ip6, "8080", "--name", "v6", "--netns", cfg.client_ns, env=env, check=True)
    rawtcp("connect", cfg.server_ip, "8080", "--name", "v4", "--netns", cfg.client_ns, env=env, check=True)
    payload = bytes(range(256)) * 20  # 5120 bytes: several 1440-byte segments over IPv6
    (tmp_path / "payload.bin").write_bytes(payload)
    sent = rawtcp("send", "v6", "--file", str(tmp_path / "payload.bin"), "--json", env=env, check=True)
    # MSS 1440 over IPv6, less the 12 bytes of TSopt every segment carries (RFC 6691, RFC 7323)
    assert max(s["len"] for s in segments(json_lines(sent.stdout)) if s["dir"] == "out") == 1440 - 12
    rawtcp("send", "v4", "four", env=env, check=True)
    echoed = rawtcp("recv", "v6", "--bytes", str(len(payload)), "--out", str(tmp_path / "back.bin"), env=env,
                    check=True)
    assert echoed.returncode == 0 and (tmp_path / "back.bin").read_bytes() == payload
    assert rawtcp("recv", "v4", "--bytes", "4", "--out", "-", env=env, check=True).stdout == "four"
    for name in ("v6", "v4"):
        st = json_lines(rawtcp("status", name, "--json", env=env, check=True).stdout)[0]
        assert st["kernel_state"] == "ESTABLISHED", (name, st)
    rawtcp("close", "v6", env=env, check=True)
    rawtcp("close", "v4", "--abort", env=env, check=True)
    assert wait_until(lambda: len(listener_log(info)) == 2, 5)
    by_peer = {r["peer"].startswith("["): r for r in listener_log(info)}
    assert by_peer[True]["received"] == by_peer[True]["sent"] == len(payload)
    assert by_peer[False]["received"] == 4
    assert_nothing_left(cfg, env)


def test_listen_answers_a_kernel_ipv6_client(echo_lab, env):
    cfg, _info = echo_lab
    recs = passive_open_with_a_kernel_client(echo_lab, env, "2001:db8::2", 9000, "s6", "--ipv6", "--isn", "5000")
    handshake = segments(recs)[:3]
    assert [(s["dir"], s["flags"]) for s in handshake] == [("in", "S"), ("out", "S."), ("in", ".")]
    syn, synack, _ = handshake
    assert syn["src"].startswith("[2001:db8::1]:") and syn["dst"] == "[2001:db8::2]:9000"
    assert "mss 1440" in syn["options"]  # the kernel's own MSS over IPv6
    assert synack["seq"] == 5000 and synack["ack"] == syn["seq"] + 1 and "mss 1440" in synack["options"]
    # The kernel client's own socket, from the tracepoint: SYN-SENT then ESTABLISHED.
    assert state_changes(recs, "kernel")[:2] == ["SYN-SENT", "ESTABLISHED"]
    closed = rawtcp("close", "s6", "--json", env=env, check=True)
    flags = [(s["dir"], s["flags"]) for s in segments(json_lines(closed.stdout))]
    assert ("out", "F.") in flags
    assert_nothing_left(cfg, env)


def test_ipv6_bad_input_is_one_line(echo_lab, env):
    cfg, _info = echo_lab
    for args, fragment in (
        (("connect", "fe80::1", "8080", "--netns", cfg.client_ns), "link-local"),
        (("connect", "2001:db8::2:1:2:3:4:5:6", "8080", "--netns", cfg.client_ns), "an IPv6 address"),
        (("listen", "9000", "--addr", "2001:db8::99", "--netns", cfg.server_ns), "not an address of"),
        (("listen", "9000", "--addr", "nonsense", "--netns", cfg.server_ns), "not an IPv4 or IPv6"),
        (("listen", "9000", "--addr", "2001:db8::2", "--ipv6", "--netns", cfg.server_ns), "not both"),
    ):
        proc = rawtcp(*args, env=env)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("rawtcp: error: ") and fragment in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert_nothing_left(cfg, env)
