"""Security: session control sockets are 0600 in a 0700 directory owned by the user, and another
uid can neither connect to them nor (if the permissions were loosened) drive the session; RST
suppression touches only rawtcp's own 4-tuples: an ordinary kernel connection in the same namespace
works while a session runs, the kernel's own RSTs for other connections still go out, and rawtcp's
crafted RST (`close --abort`) reaches the kernel.

Needs root (a private lab rtt-security-*, a private RAWTCP_RUNTIME_DIR; the other user is uid 65534).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
from engine_helpers import json_lines, keeper_pids, nft_tables, ns_exec, rawtcp, segments, wait_until

pytestmark = pytest.mark.integration

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Connect to a unix socket and ask for the session's status, as the CLI does; print what happened.
PROBE = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connected": False, "errno": exc.errno}))
    sys.exit(0)
try:  # the keeper may already have hung up on us (another uid): then nothing is answered
    s.sendall(b'{"op": "status"}\n')
    answer = s.recv(65536)
except OSError:
    answer = b""
print(json.dumps({"connected": True, "answer": answer.decode(errors="replace")}))
"""

KERNEL_ECHO = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"ordinary kernel traffic")
    s.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := s.recv(4096):
        back += chunk
print(back.decode())
"""

KERNEL_CONNECT_REFUSED = r"""
import socket, sys, time
t0 = time.monotonic()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print("connected")
except ConnectionRefusedError:
    print(f"refused {time.monotonic() - t0:.3f}")
except OSError as exc:
    print(f"error {exc}")
"""




def _probe_as_nobody(path: str) -> dict:
    out = subprocess.run([*NOBODY, sys.executable, "-c", PROBE, path], capture_output=True, text=True, cwd="/",
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def open_env():
    """A runtime directory whose PARENT every user can traverse (pytest's tmp_path is under a 0700
    directory, which would hide the socket from another uid whatever rawtcp does)."""
    parent = tempfile.mkdtemp(prefix="rtt-sec-")
    os.chmod(parent, 0o711)
    try:
        yield dict(os.environ, RAWTCP_RUNTIME_DIR=os.path.join(parent, "run"))
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_control_socket_is_private_to_its_user(echo_lab, open_env):
    cfg, _ = echo_lab
    env = open_env
    rawtcp("connect", cfg.server_ip, "8080", "--name", "sec1", "--netns", cfg.client_ns, env=env, check=True)
    sessions = os.path.join(env["RAWTCP_RUNTIME_DIR"], "sessions")
    sock = os.path.join(sessions, "sec1.sock")
    for path, mode in ((env["RAWTCP_RUNTIME_DIR"], 0o700), (sessions, 0o700), (sock, 0o600)):
        st = os.stat(path)
        assert st.st_uid == os.getuid(), path
        assert stat.S_IMODE(st.st_mode) == mode, (path, oct(st.st_mode))
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(os.path.join(sessions, "sec1.json")).st_mode) == 0o600

    # Another user cannot even reach the socket: the directory is 0700.
    probe = _probe_as_nobody(sock)
    assert probe == {"connected": False, "errno": 13}

    # Defence in depth: with the permissions loosened by mistake, the keeper still refuses another
    # uid (SO_PEERCRED) — it closes the connection without answering, and the session is unchanged.
    os.chmod(env["RAWTCP_RUNTIME_DIR"], 0o755)
    os.chmod(sessions, 0o755)
    os.chmod(sock, 0o666)
    try:
        probe = _probe_as_nobody(sock)
        assert probe["connected"] is True and probe["answer"] == ""
    finally:
        os.chmod(sock, 0o600)
        os.chmod(sessions, 0o700)
        os.chmod(env["RAWTCP_RUNTIME_DIR"], 0o700)
    st = json_lines(rawtcp("status", "sec1", "--json", env=env, check=True).stdout)[0]
    assert st["state"] == "ESTABLISHED"
    rawtcp("close", "sec1", "--abort", env=env, check=True)
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)


def test_rst_suppression_spares_unrelated_traffic_and_our_own_rst_goes_out(echo_lab, env):
    cfg, _ = echo_lab
    opened = rawtcp("connect", cfg.server_ip, "8080", "--name", "sec2", "--netns", cfg.client_ns, "--json",
                    env=env, check=True)
    sport = segments(json_lines(opened.stdout))[0]["src"].rsplit(":", 1)[1]
    table = ns_exec(cfg.client_ns, "nft", "list", "table", "inet", "rawtcp").stdout
    assert f"198.18.0.1 . {sport} . 198.18.0.2 . 8080" in table  # exactly our 4-tuple

    # 1. An ordinary kernel connection from the same namespace to the same listener works.
    echoed = ns_exec(cfg.client_ns, sys.executable, "-c", KERNEL_ECHO, cfg.server_ip, "8080")
    assert echoed.returncode == 0 and echoed.stdout.strip() == "ordinary kernel traffic", echoed.stderr

    # 2. The client namespace's kernel still sends its own RSTs for other connections: a connect()
    #    from the server to a closed port in the client namespace is refused at once (not timed out).
    refused = ns_exec(cfg.server_ns, sys.executable, "-c", KERNEL_CONNECT_REFUSED, cfg.client_ip, "4444")
    assert refused.stdout.startswith("refused"), refused.stdout + refused.stderr
    assert float(refused.stdout.split()[1]) < 1.0
    # ... and to our session's own port from another source port: also an ordinary RST.
    refused = ns_exec(cfg.server_ns, sys.executable, "-c", KERNEL_CONNECT_REFUSED, cfg.client_ip, sport)
    assert refused.stdout.startswith("refused"), refused.stdout + refused.stderr

    # Our session is untouched by all that.
    rawtcp("send", "sec2", "still here", env=env, check=True)
    got = rawtcp("recv", "sec2", "--bytes", "10", "--out", "-", env=env, check=True)
    assert got.stdout == "still here"

    # 3. rawtcp's own crafted RST goes out (AF_PACKET skips the OUTPUT hook) and the kernel drops its socket.
    def kernel_socket() -> str:
        return ns_exec(cfg.server_ns, "ss", "-tanH", f"( sport = :8080 and dport = :{sport} )").stdout.strip()

    assert kernel_socket().startswith("ESTAB")
    aborted = rawtcp("close", "sec2", "--abort", "--json", env=env, check=True)
    assert next(s["flags"] for s in segments(json_lines(aborted.stdout))).startswith("R")
    assert wait_until(lambda: kernel_socket() == "", 5), kernel_socket()
    assert wait_until(lambda: not keeper_pids(env["RAWTCP_RUNTIME_DIR"]), 10)
    assert "rawtcp" not in nft_tables(cfg.client_ns)
