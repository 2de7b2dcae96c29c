"""The system-call helper: ``ip netns exec NS python -m rawtcp.script.syscall_helper --local-ip A --remote-ip B``.

It lives in the kernel-under-test's namespace and talks JSON lines over stdin/stdout:

    {"id": 1, "op": "call", "name": "read", "args": [...], "result": {...}, "errno": null}
    {"id": 2, "op": "cmd", "cmd": "../common/defaults.sh", "cwd": "/path/of/script"}
    {"id": 3, "op": "tcpinfo"}
    {"id": 4, "op": "exit"}

Every request runs in a thread of its own, so a blocking ``accept()`` does not stop the runner's
packets, and answers ``{"id": N, ...}`` when it finishes, with its start and end times on
CLOCK_MONOTONIC. It prints ``ready`` once it is listening. On exit (or end of input) it closes
every socket the script opened.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

from rawtcp.script.syscalls import Addresses, CallScriptError, Executor

_OUTPUT_TAIL = 2000  # characters of a failing command's output sent back


class Helper:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._out_lock = threading.Lock()

    def reply(self, message: dict[str, Any]) -> None:
        line = json.dumps(message) + "\n"
        with self._out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def handle(self, req: dict[str, Any]) -> None:
        rid = req.get("id")
        try:
            op = req.get("op")
            if op == "call":
                outcome = self.executor.call(req["name"], req["args"], req["result"], req.get("errno"))
                self.reply({"id": rid, **outcome.to_dict()})
            elif op == "cmd":
                start = time.monotonic()
                proc = subprocess.run(["/bin/sh", "-c", req["cmd"]], cwd=req.get("cwd") or None,
                                      capture_output=True, text=True, errors="replace",
                                      timeout=req.get("timeout", 60), check=False)
                output = (proc.stdout + proc.stderr)[-_OUTPUT_TAIL:]
                self.reply({"id": rid, "status": proc.returncode, "output": output, "start": start,
                            "end": time.monotonic()})
            elif op == "tcpinfo":
                self.reply({"id": rid, "info": self.executor.tcp_info(), "time": time.monotonic()})
            else:
                self.reply({"id": rid, "script_error": f"unknown helper request {op!r}"})
        except CallScriptError as exc:
            self.reply({"id": rid, "script_error": str(exc)})
        except subprocess.TimeoutExpired:
            self.reply({"id": rid, "status": -1, "output": "command timed out", "start": 0, "end": 0})
        except Exception as exc:  # report, never die silently: the runner is waiting for this id
            self.reply({"id": rid, "fatal": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rawtcp.script.syscall_helper")
    parser.add_argument("--local-ip", required=True)
    parser.add_argument("--remote-ip", required=True)
    parser.add_argument("--bind-port", type=int, default=8080)
    parser.add_argument("--connect-port", type=int, default=8080)
    args = parser.parse_args(argv)
    executor = Executor(Addresses(args.local_ip, args.remote_ip, args.bind_port, args.connect_port))
    helper = Helper(executor)
    helper.reply({"id": 0, "ready": True})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "exit":
                helper.reply({"id": req.get("id"), "bye": True})
                break
            threading.Thread(target=helper.handle, args=(req,), daemon=True).start()
    finally:
        executor.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
