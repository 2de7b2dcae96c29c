#!/usr/bin/env python3
"""Integrity under network faults: N bytes each way between rawtcp and a real Linux kernel.

Full run (the issue's figures; about five minutes on a 2-core VM), as root from the repo:

    sudo /work/venv/bin/python scripts/integrity.py            # 1 MiB, 20 % loss, 10 % reorder,
                                                              # 5 % duplication, 50 ± 20 ms delay
    sudo python scripts/integrity.py --size 262144 --loss 10 --json   # what CI runs (test_faults.py)

It makes a private lab with the CLI (`rawtcp lab up --client-ns rtt-flt-<pid>-c ... --loss ...`, the
impairments applied both ways by tc netem or, on kernels without netem, by rawtcp.lab.relay), uses a
private RAWTCP_RUNTIME_DIR, and drives rawtcp exactly as a user would, one CLI process per step:

* client: `connect --pcap` / `send --file` (N random bytes) / `recv --bytes N --out` / `close`
  against the kernel echo listener; the listener's own log gives what the KERNEL received (byte
  count and sha256), the echo gives what rawtcp received back.
* server: `rawtcp listen 9000 --pcap`, a kernel client in the client namespace connect()s, sends
  N bytes and reads N back; rawtcp `recv --bytes N --out`, `send --file` (echoing them) and `close`.

Checked: sha256 equal on both sides in both directions (no byte lost or doubled), the handshake and
the close complete, retransmissions visible in the output (`retransmission` events) and in the
capture (segments of rawtcp's that repeat a sequence number, counted with rawtcp.capture). Exit 0
when everything holds; the summary (bytes, seconds, retransmissions) is printed (--json: one object).
Everything it made is removed at the end, whatever happens.

rawtcp offers RFC 7323 timestamps here (`--timestamps`, `--no-timestamps` to compare): at 20 % loss
both ways a Linux peer without them has only Karn's rule, never gets an RTT sample in its go-back
and backs off to its 120 s maximum RTO. Measured on a 2-core VM (kernel 6.18, user-space relay):
with timestamps, client role 1 MiB each way in 68 s, server role in 248 s, all checks passing (197
and 272 retransmissions, the same counts in the captures); without them, the kernel's echo had
delivered 381 KB of 1 MiB after 10 minutes (its RTO at 120 s, backoff 9-11).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The kernel client for the server role: connect, send N bytes while reading N back (threads, so
# neither side's window can stall the other), report sha256 of both, close.
KERNEL_CLIENT = r"""
import hashlib, json, socket, sys, threading, time
host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = open(path, "rb").read()
t0 = time.monotonic()
for attempt in range(50):  # the listener may still be starting: bounded retries
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        break
    except (ConnectionRefusedError, socket.timeout):
        time.sleep(0.2)
else:
    sys.exit("kernel client: could not connect")
sender = threading.Thread(target=s.sendall, args=(data,))
sender.start()
back = bytearray()
while len(back) < len(data):
    chunk = s.recv(65536)
    if not chunk:
        break
    back += chunk
sender.join()
s.close()
print(json.dumps({"sent": len(data), "sent_sha256": hashlib.sha256(data).hexdigest(),
                  "received": len(back), "received_sha256": hashlib.sha256(bytes(back)).hexdigest(),
                  "seconds": round(time.monotonic() - t0, 3)}))
"""


class Failed(Exception):
    pass


STEP_TIMEOUT = 700.0  # bound on one CLI step (the transfers' own --wait is --timeout); set by main()


def rawtcp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True, text=True, env=env,
                          timeout=STEP_TIMEOUT)
    if proc.returncode != 0:
        raise Failed(f"rawtcp {' '.join(args[:3])} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def retransmission_events(text: str) -> int:
    return sum(1 for r in records(text) if r.get("type") == "event" and r.get("event") == "retransmission")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def repeated_segments(pcap: Path, local: str) -> int:
    """Segments sent from ``local`` ('ip:port') whose sequence number (and length) was already sent:
    retransmissions as the capture shows them (rawtcp records what it sends, before the link)."""
    from rawtcp.capture.decode import decode_tcp
    from rawtcp.capture.pcap import iter_packets

    ip, port = local.rsplit(":", 1)
    seen: Counter[tuple[int, int]] = Counter()
    for pkt in iter_packets(pcap):
        tcp = decode_tcp(pkt.linktype, pkt.data)
        if tcp is None or tcp.src != ip or tcp.sport != int(port) or tcp.seg_len == 0:
            continue
        seen[(tcp.seq, tcp.seg_len)] += 1
    return sum(n - 1 for n in seen.values() if n > 1)


def wait_keeper_gone(env: dict[str, str], name: str, timeout: float) -> bool:
    """The keeper closes its pcap when it ends (after TIME-WAIT), then removes its session file."""
    info = Path(env["RAWTCP_RUNTIME_DIR"]) / "sessions" / f"{name}.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not info.exists():
            return True
        time.sleep(0.1)
    return not info.exists()


def listener_log(cfg_client_ns: str) -> list[dict[str, Any]]:
    from rawtcp.lab import topology

    return topology.listener_log(topology.LabConfig(client_ns=cfg_client_ns))


def run_client(env: dict[str, str], lab: dict[str, str], work: Path, payload: bytes, args: Any) -> dict[str, Any]:
    t0 = time.monotonic()
    (work / "c-out.bin").unlink(missing_ok=True)
    pcap = work / "client.pcap"
    opened = rawtcp(env, "connect", lab["server_ip"], "8080", "--name", "fc", "--netns", lab["client_ns"],
                    "--rto-min", str(args.rto_min), "--retries", "15", "--msl2", "1", "--pcap", str(pcap),
                    "--json", "--timestamps" if args.timestamps else "--no-timestamps")
    local = next(r["src"] for r in records(opened.stdout) if r.get("type") == "segment")
    sent = rawtcp(env, "send", "fc", "--file", str(work / "payload.bin"), "--wait", str(args.timeout), "--json")
    rawtcp(env, "recv", "fc", "--bytes", str(len(payload)), "--wait", str(args.timeout),
           "--out", str(work / "c-out.bin"))
    closed = rawtcp(env, "close", "fc", "--wait", "60", "--json")
    seconds = time.monotonic() - t0
    states = [r["new"] for r in records(closed.stdout) if r.get("type") == "state" and r.get("who") == "rawtcp"]
    echo = (work / "c-out.bin").read_bytes()
    end = time.monotonic() + 30
    log: list[dict[str, Any]] = []
    while time.monotonic() < end and not log:
        log = [e for e in listener_log(lab["client_ns"]) if e.get("peer") == local]
        time.sleep(0.1)
    kernel = log[0] if log else {}
    wait_keeper_gone(env, "fc", 30)
    result = {
        "role": "client", "bytes_each_way": len(payload), "seconds": round(seconds, 2),
        "kernel_received": kernel.get("received"), "kernel_sha256_ok": kernel.get("sha256") == sha(payload),
        "echo_received": len(echo), "echo_sha256_ok": sha(echo) == sha(payload),
        "handshake": "ESTABLISHED" in [r.get("new") for r in records(opened.stdout)],
        "close": "TIME-WAIT" in states,
        "retransmission_events": sum(retransmission_events(p.stdout) for p in (opened, sent, closed)),
        "pcap_repeated_segments": repeated_segments(pcap, local),
    }
    result["ok"] = bool(result["kernel_received"] == len(payload) and result["kernel_sha256_ok"]
                        and result["echo_sha256_ok"] and result["handshake"] and result["close"])
    return result


def run_server(env: dict[str, str], lab: dict[str, str], work: Path, payload: bytes, args: Any) -> dict[str, Any]:
    t0 = time.monotonic()
    pcap = work / "server.pcap"
    (work / "s-in.bin").unlink(missing_ok=True)
    listener = subprocess.Popen(
        [sys.executable, "-m", "rawtcp", "listen", "9000", "--name", "fs", "--netns", lab["server_ns"],
         "--rto-min", str(args.rto_min), "--retries", "15", "--msl2", "1", "--timeout", "120",
         "--pcap", str(pcap), "--json", "--timestamps" if args.timestamps else "--no-timestamps"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    client = None
    try:
        assert listener.stdout is not None
        head = []
        for line in listener.stdout:  # bounded by --timeout: rawtcp listens once LISTEN is printed
            head.append(line)
            if '"new": "LISTEN"' in line:
                break
        client = subprocess.Popen(["ip", "netns", "exec", lab["client_ns"], sys.executable, "-c", KERNEL_CLIENT,
                                   lab["server_ip"], "9000", str(work / "payload.bin"), str(args.timeout)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = listener.communicate(timeout=180)
        opened_text = "".join(head) + out
        if listener.returncode != 0:
            raise Failed(f"rawtcp listen exited {listener.returncode}: {err.strip()[-500:]}")
        got = rawtcp(env, "recv", "fs", "--bytes", str(len(payload)), "--wait", str(args.timeout),
                     "--out", str(work / "s-in.bin"))
        del got
        received = (work / "s-in.bin").read_bytes()
        sent = rawtcp(env, "send", "fs", "--file", str(work / "s-in.bin"), "--wait", str(args.timeout), "--json")
        kout, kerr = client.communicate(timeout=args.timeout + 30)
        if client.returncode != 0:
            raise Failed(f"kernel client failed: {kerr.strip()[-500:]}")
        kernel = json.loads(kout.strip().splitlines()[-1])
        closed = rawtcp(env, "close", "fs", "--wait", "60", "--json")
    finally:
        for proc in (listener, client):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    seconds = time.monotonic() - t0
    states = [r["new"] for r in records(closed.stdout) if r.get("type") == "state" and r.get("who") == "rawtcp"]
    wait_keeper_gone(env, "fs", 30)
    result = {
        "role": "server", "bytes_each_way": len(payload), "seconds": round(seconds, 2),
        "rawtcp_received": len(received), "rawtcp_sha256_ok": sha(received) == sha(payload),
        "kernel_received": kernel["received"], "kernel_sha256_ok": kernel["received_sha256"] == sha(payload),
        "handshake": "ESTABLISHED" in [r.get("new") for r in records(opened_text)],
        # We answer the kernel client's FIN or send ours first: either way the close completes.
        "close": bool({"TIME-WAIT", "CLOSED"} & set(states)) or "LAST-ACK" in states,
        "retransmission_events": retransmission_events(opened_text) + retransmission_events(sent.stdout)
        + retransmission_events(closed.stdout),
        "pcap_repeated_segments": repeated_segments(pcap, f"{lab['server_ip']}:9000"),
    }
    result["ok"] = bool(result["rawtcp_sha256_ok"] and result["kernel_sha256_ok"] and result["handshake"]
                        and result["close"] and result["kernel_received"] == len(payload))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes each way (default 1 MiB)")
    parser.add_argument("--loss", type=float, default=20.0)
    parser.add_argument("--reorder", type=float, default=10.0)
    parser.add_argument("--duplicate", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=50.0)
    parser.add_argument("--jitter", type=float, default=20.0)
    parser.add_argument("--rto-min", type=float, default=0.2, help="rawtcp's minimum RTO (Linux: 0.2 s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on each transfer, s")
    parser.add_argument("--timestamps", action=argparse.BooleanOptionalAction, default=True,
                        help="rawtcp offers/accepts RFC 7323 timestamps (default on: without them Linux, which "
                             "then times retransmissions by Karn's rule only, backs off to 120 s RTOs at 20 %% "
                             "loss both ways)")
    parser.add_argument("--role", choices=["client", "server", "both"], default="both")
    parser.add_argument("--prefix", default=f"rtt-flt-{os.getpid()}", help="lab namespace name prefix")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object")
    args = parser.parse_args(argv)
    global STEP_TIMEOUT
    STEP_TIMEOUT = args.timeout + 60
    if os.geteuid() != 0:
        print("integrity.py needs root (namespaces, raw sockets): run it with sudo", file=sys.stderr)
        return 6
    lab = {"client_ns": f"{args.prefix}-c", "server_ns": f"{args.prefix}-s",
           "client_ip": "198.18.0.1", "server_ip": "198.18.0.2"}
    names = ["--client-ns", lab["client_ns"], "--server-ns", lab["server_ns"]]
    work = Path(tempfile.mkdtemp(prefix="rawtcp-integrity-"))
    env = dict(os.environ, RAWTCP_RUNTIME_DIR=str(work / "run"), PYTHONPATH=str(REPO))
    payload = os.urandom(args.size)
    (work / "payload.bin").write_bytes(payload)
    impairments = {"loss": args.loss, "reorder": args.reorder, "duplicate": args.duplicate,
                   "delay_ms": args.delay, "jitter_ms": args.jitter}
    summary: dict[str, Any] = {"timestamps": args.timestamps, "impairments": impairments, "runs": []}
    code = 0
    try:
        up = rawtcp(env, "lab", "up", *names, "--loss", str(args.loss), "--delay", str(args.delay),
                    "--jitter", str(args.jitter), "--reorder", str(args.reorder), "--duplicate", str(args.duplicate))
        summary["lab"] = up.stdout.splitlines()[0]
        status = json.loads(rawtcp(env, "lab", "status", *names, "--json").stdout)
        summary["backend"] = status.get("impairment_backend") or "netem"
        for role in (["client", "server"] if args.role == "both" else [args.role]):
            run = run_client if role == "client" else run_server
            summary["runs"].append(run(env, lab, work, payload, args))
        code = 0 if all(r["ok"] for r in summary["runs"]) else 1
    except (Failed, subprocess.TimeoutExpired, OSError, ValueError, KeyError, KeyboardInterrupt) as exc:
        summary["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        code = 1
    finally:
        down = subprocess.run([sys.executable, "-m", "rawtcp", "lab", "down", *names], capture_output=True,
                              text=True, env=env, timeout=120)
        summary["lab_down"] = down.returncode
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(summary))
    else:
        for run in summary["runs"]:
            print(f"{run['role']}: {run['bytes_each_way']} bytes each way in {run['seconds']} s, "
                  f"ok={run['ok']}, retransmission events {run['retransmission_events']}, "
                  f"repeated segments in the pcap {run['pcap_repeated_segments']}")
            print("  " + json.dumps(run))
        if "error" in summary:
            print(f"error: {summary['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
