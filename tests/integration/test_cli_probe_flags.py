"""probe's flag spellings from other tools (nping's names, tcpdump's '.', hping3's -S -A) against a
real Linux kernel: what the kernel answers shows which flags it received (RFC 9293 §3.10.7.2: an ACK
to a LISTEN socket is answered with RST, a SYN with SYN-ACK). Needs root; private lab rtt-cli-probe-flags-*."""

from __future__ import annotations

import pytest
from engine_helpers import json_lines, nft_tables, rawtcp

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("spelling,sent,answer", [
    (["--flags", "syn"], "S", "S."),
    (["-S"], "S", "S."),
    (["--flags", "syn,ack"], "S.", "R"),
    (["--flags", "SA"], "S.", "R"),
    (["--flags", "S."], "S.", "R"),
    (["-S", "-A"], "S.", "R"),
    (["--flags", "ack"], ".", "R"),
    (["-A"], ".", "R"),
    (["--flags", "S", "-A"], "S.", "R"),
])
def test_flag_spellings_reach_the_kernel(module_lab, spelling: list[str], sent: str, answer: str) -> None:
    cfg, _ = module_lab
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "-c", "1", "--json",
                  "--ack", "12345", *spelling)
    assert proc.returncode == 0, proc.stderr
    probe = json_lines(proc.stdout)[0]
    assert probe["sent_flags"] == sent
    assert probe["reply_flags"] == answer
    assert "rawtcp" not in nft_tables(cfg.client_ns)


def test_unknown_flag_name_is_one_line(module_lab) -> None:
    cfg, _ = module_lab
    proc = rawtcp("probe", cfg.server_ip, str(cfg.port), "--netns", cfg.client_ns, "--flags", "syn,akc")
    assert proc.returncode == 2
    assert proc.stderr.startswith("rawtcp: error: unknown TCP flag 'akc'") and proc.stderr.count("\n") == 1
