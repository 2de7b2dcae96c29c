"""Hostile and malformed input through the CLI: every row
gives ONE line on stderr, the documented exit code (README), no traceback, and leaves nothing behind
(no namespace or RST-suppression entry carrying the command's pid, no keeper, no session file).

Rows that need a lab use a private one (rtt-bad-input-*); "lab not up" uses the default lab names and is
skipped when a user's default lab is up (the test must not disturb it). Needs root (the unprivileged
rows drop to uid 65534 or drop every capability with setpriv).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import keeper_pids, namespaces, ns_exec, rst_entries, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PKT_DIR = ROOT / "tests" / "script" / "pkt"

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]

# (id, who runs it, argv ({c}/{s}: the private lab's namespaces, {t}: a temp dir), exit code, stderr part)
ROWS = [
    # no privileges: an unprivileged user, and root without capabilities
    ("nobody-connect", "nobody", ["connect", "198.18.0.2", "8080"], 6, "needs root"),
    ("nobody-lab-up", "nobody", ["lab", "up"], 6, "needs root"),
    ("nobody-lab-down", "nobody", ["lab", "down"], 6, "needs root"),
    ("nobody-demo", "nobody", ["demo"], 6, "needs root"),
    ("nobody-listen", "nobody", ["listen", "9000"], 6, "needs root"),
    ("nobody-run", "nobody", ["run", str(PKT_DIR / "passive-data-close.pkt")], 6, "needs root"),
    ("nobody-lab-impair", "nobody", ["lab", "impair", "--loss", "5"], 6, "needs root"),
    ("nobody-send", "nobody", ["send", "c1", "x"], 6, "run it with sudo"),
    ("nobody-sessions", "nobody", ["sessions"], 6, "run it with sudo"),
    ("nocaps-connect", "nocaps", ["connect", "198.18.0.2", "8080"], 6, "CAP_NET_RAW"),
    ("nocaps-lab-up", "nocaps", ["lab", "up"], 6, "CAP_NET_ADMIN"),
    ("nocaps-demo", "nocaps", ["demo"], 6, "CAP_SYS_ADMIN"),
    # bad host / port / options (click's usage errors, one line)
    ("bad-host", "root", ["connect", "not-an-ip!", "8080", "--netns", "{c}"], 2, "is not an IPv4"),
    ("port-0", "root", ["connect", "198.18.0.2", "0"], 2, "'PORT': 0 is not in the range"),
    ("port-70000", "root", ["connect", "198.18.0.2", "70000"], 2, "'PORT': 70000 is not in the range"),
    ("listen-port-0", "root", ["listen", "0"], 2, "is not in the range"),
    ("isn-negative", "root", ["connect", "198.18.0.2", "8080", "--isn", "-1"], 2, "'--isn'"),
    ("missing-host", "root", ["connect"], 2, "Missing argument 'HOST'"),
    ("unknown-command", "root", ["frobnicate"], 2, "No such command 'frobnicate'"),
    ("unknown-option", "root", ["connect", "198.18.0.2", "8080", "--bogus"], 2, "No such option"),
    ("bad-listener", "root", ["lab", "up", "--listener", "bogus"], 2, "'--listener'"),
    ("loss-over-100", "root", ["lab", "up", "--loss", "200"], 2, "'--loss'"),
    ("recv-bytes-0", "root", ["recv", "c1", "--bytes", "0"], 2, "'--bytes'"),
    ("bad-session-name", "root", ["connect", "198.18.0.2", "8080", "--netns", "{c}", "--name", "bad name!"], 2,
     "bad session name"),
    ("no-such-netns", "root", ["connect", "198.18.0.2", "8080", "--netns", "rtt-bad-no-such-ns"], 2,
     "no network namespace"),
    ("no-such-iface", "root", ["connect", "198.18.0.2", "8080", "--iface", "rttnosuch0"], 2, "no such interface"),
    ("pcap-in-missing-dir", "root", ["connect", "198.18.0.2", "8080", "--netns", "{c}", "--pcap",
                                     "/nonexistent-rtt/x.pcap"], 2, "cannot write --pcap"),
    ("demo-pcap-missing-dir", "root", ["demo", "--pcap", "/nonexistent-rtt/x.pcap"], 2, "cannot write --pcap"),
    # the peer: refused, silent, unreachable
    ("refused", "root", ["connect", "198.18.0.2", "9", "--netns", "{c}"], 4,
     "connection refused: RST from 198.18.0.2:9"),
    ("silent", "root", ["connect", "198.18.0.2", "7777", "--netns", "{c}", "--retries", "1"], 5,
     "no SYN-ACK from 198.18.0.2:7777 after 2 tries"),
    ("unreachable", "root", ["connect", "198.18.0.77", "8080", "--netns", "{c}"], 8,
     "no ARP reply from 198.18.0.77"),
    # sessions
    ("unknown-session-send", "root", ["send", "nope", "x"], 3, "no session named 'nope' (live sessions: none)"),
    ("unknown-session-recv", "root", ["recv", "nope"], 3, "no session named 'nope'"),
    ("unknown-session-close", "root", ["close", "nope"], 3, "no session named 'nope'"),
    ("unknown-session-status", "root", ["status", "nope"], 3, "no session named 'nope'"),
    ("send-neither", "root", ["send", "c1"], 2, "give DATA or --file"),
    ("send-both", "root", ["send", "c1", "x", "--file", "{t}/data.bin"], 2, "give DATA or --file"),
    ("send-missing-file", "root", ["send", "c1", "--file", "/nonexistent-rtt/f"], 2, "'--file'"),
    # scripts
    ("pkt-bad-syntax", "root", ["run", str(PKT_DIR / "bad-syntax.pkt")], 2, "bad-syntax.pkt:2:"),
    ("pkt-text", "root", ["run", "{t}/text.pkt"], 2, "text.pkt:1:"),
    ("pkt-empty", "root", ["run", "{t}/empty.pkt"], 2, "no events"),
    ("pkt-missing", "root", ["run", "/nonexistent-rtt/x.pkt"], 2, "cannot read script"),
    # captures
    ("ladder-empty", "root", ["ladder", "{t}/empty.pcap"], 2, "empty file"),
    ("ladder-truncated", "root", ["ladder", "{t}/truncated.pcap"], 2, "truncated"),
    ("ladder-random", "root", ["ladder", "{t}/random.pcap"], 2, "not a pcap or pcapng file"),
    ("ladder-text", "root", ["ladder", "{t}/text.pkt"], 2, "not a pcap or pcapng file"),
    ("ladder-missing", "root", ["ladder", "/nonexistent-rtt/x.pcap"], 2, "No such file"),
    ("compare-empty", "root", ["compare", "{t}/empty.pcap", "{t}/empty.pcap"], 2, "empty file"),
    ("compare-truncated", "root", ["compare", "{t}/good.pcap", "{t}/truncated.pcap"], 2, "truncated"),
    ("compare-random", "root", ["compare", "{t}/random.pcap", "{t}/good.pcap"], 2, "not a pcap"),
]

# A command that needs the lab when none is up (the default lab's names).
NO_LAB_ROWS = [
    ("no-lab-connect", ["connect", "198.18.0.2", "8080"], 7, "no lab is up: run `sudo rawtcp lab up`"),
    ("no-lab-listen", ["listen", "9000"], 7, "no lab is up"),
    ("no-lab-impair", ["lab", "impair", "--loss", "5"], 7, "no lab is up"),
]


@pytest.fixture(scope="module")
def bad_lab(module_lab):
    cfg, _ = module_lab
    # A port the server silently drops, for the "no answer" row.
    ns_exec(cfg.server_ns, "nft", "add table inet rtt_drop { chain in { type filter hook input priority 0; "
            "tcp dport 7777 drop; }; }")
    return cfg


@pytest.fixture(scope="module")
def files(tmp_path_factory, bad_lab):
    t = tmp_path_factory.mktemp("bad")
    os.chmod(t, 0o755)
    (t / "data.bin").write_bytes(b"data")
    (t / "text.pkt").write_text("hello world\n")
    (t / "empty.pkt").write_text("")
    (t / "empty.pcap").write_bytes(b"")
    (t / "random.pcap").write_bytes(bytes((i * 73 + 11) % 256 for i in range(300)))
    # A valid classic pcap: header and one 60-byte Ethernet record.
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 0, 0, 60, 60) + bytes(60)
    (t / "good.pcap").write_bytes(data)
    (t / "truncated.pcap").write_bytes(data[:24] + data[24:40])
    return t




def _run(prefix: list[str], argv: list[str], env: dict[str, str]) -> tuple[int, str, str, int]:
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "rawtcp", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err, proc.pid


def _check(code: int, err: str, pid: int, want_code: int, want: str, env: dict[str, str], client_ns: str | None):
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("rawtcp: error: "), lines[0]
    assert want in lines[0], lines[0]
    assert code == want_code, (code, lines[0])
    # Nothing left behind by this process.
    assert not [n for n in namespaces() if f"-{pid}-" in n]
    assert f"pid={pid}" not in rst_entries(None)
    if client_ns:
        assert f"pid={pid}" not in rst_entries(client_ns)
    run_dir = env["RAWTCP_RUNTIME_DIR"]
    assert wait_until(lambda: not keeper_pids(run_dir), 10)
    sessions = Path(run_dir) / "sessions"
    assert not sessions.exists() or not list(sessions.iterdir())


@pytest.mark.parametrize(("who", "argv", "want_code", "want"), [pytest.param(*row[1:], id=row[0]) for row in ROWS])
def test_bad_input_is_one_line_with_its_exit_code(bad_lab, files, tmp_path, who, argv, want_code, want):
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path / "run"))
    prefix = {"root": [], "nobody": NOBODY, "nocaps": NO_CAPS}[who]
    if who == "nobody":
        env.pop("RAWTCP_RUNTIME_DIR")  # its own default (/run/rawtcp-65534), which it cannot create
        probe = subprocess.run([*NOBODY, sys.executable, "-c", "import rawtcp"], capture_output=True, cwd="/")
        if probe.returncode != 0:
            pytest.skip(f"uid 65534 cannot read the interpreter or the package: {probe.stderr.decode()[-200:]}")
    args = [a.format(c=bad_lab.client_ns, s=bad_lab.server_ns, t=files) for a in argv]
    code, _out, err, pid = _run(prefix, args, env)
    env.setdefault("RAWTCP_RUNTIME_DIR", str(tmp_path / "run"))
    _check(code, err, pid, want_code, want, env, bad_lab.client_ns)


@pytest.mark.parametrize(("argv", "want_code", "want"), [pytest.param(*row[1:], id=row[0]) for row in NO_LAB_ROWS])
def test_commands_needing_the_lab_say_lab_up(tmp_path, argv, want_code, want):
    from rawtcp.lab.topology import LabConfig, lab_exists

    if lab_exists(LabConfig()):
        pytest.skip("the default lab (rawtcp-client/rawtcp-server) is up: not disturbing it")
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=str(tmp_path / "run"))
    code, _out, err, pid = _run([], argv, env)
    _check(code, err, pid, want_code, want, env, None)
    assert not lab_exists(LabConfig())
