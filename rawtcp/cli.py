"""rawtcp's command line. Commands live in rawtcp/commands/ and are imported only when invoked, so
``rawtcp --help`` starts fast and never imports scapy."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

import click

# name -> (module:attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rawtcp.commands.demo:demo", "Replay the seed exchange (10 segments) against a real kernel."),
    "lab": ("rawtcp.commands.lab:lab", "Make, inspect, impair or remove the lab (namespaces, veth, listener)."),
    "connect": ("rawtcp.commands.engine:connect", "Three-way open from user space; keep the session."),
    "listen": ("rawtcp.commands.engine:listen", "Passive open: rawtcp answers a kernel client's SYN."),
    "send": ("rawtcp.commands.engine:send", "Send data on a session and wait for the ACKs."),
    "recv": ("rawtcp.commands.engine:recv", "Print what the peer has sent on a session."),
    "shutdown": ("rawtcp.commands.engine:shutdown", "Half-close a session (send FIN, keep receiving)."),
    "close": ("rawtcp.commands.engine:close", "Four-way close of a session (or --abort: RST)."),
    "status": ("rawtcp.commands.engine:status", "State, sequence numbers and the kernel's own state."),
    "sessions": ("rawtcp.commands.engine:sessions", "List live sessions."),
    "run": ("rawtcp.commands.script:run", "Run a packetdrill-dialect .pkt script against a fresh kernel."),
    "labs": ("rawtcp.commands.script:labs", "List the lab catalogue (--lesson: the exchange and its questions)."),
    "ladder": ("rawtcp.commands.capture:ladder", "Draw a capture's TCP streams as a ladder (text or SVG)."),
    "compare": ("rawtcp.commands.capture:compare", "Compare the TCP exchanges of two captures."),
    "probe": ("rawtcp.commands.craft:probe", "Send crafted segments and show the answers (nping/hping style)."),
    "flood": ("rawtcp.commands.craft:flood", "Bounded SYN flood to a lab address (random ports and ISNs)."),
    "bench": ("rawtcp.commands.craft:bench", "Benchmark rawtcp beside the kernel, scapy, hping3 and tshark."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (target, _) in COMMANDS.items() if _available(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _available(entry[0]):
            return None
        module, attr = entry[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(target: str) -> bool:
    """A command whose module is not part of this build is not offered (checked without importing)."""
    module = target.split(":")[0]
    path = os.path.join(os.path.dirname(__file__), *module.split(".")[1:]) + ".py"
    return os.path.exists(path)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rawtcp")
def cli() -> None:
    """Drive TCP by hand: hand-built segments from user space against a real Linux kernel.

    Start with `sudo rawtcp demo`, or `sudo rawtcp lab up` then `rawtcp connect 198.18.0.2 8080 --name c1`.
    """


def _on_term(signum: int, _frame: Any) -> None:
    # SIGTERM unwinds like Ctrl-C so every ``finally`` (firewall entries, namespaces) runs.
    raise KeyboardInterrupt


def _exit_code_for(exc: BaseException) -> int:
    from rawtcp import errors

    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, PermissionError):
        return errors.NO_PRIVILEGE  # e.g. /run/rawtcp-<uid> or a lab state file, as a non-root user
    by_name = {"LabError": errors.NO_LAB, "WireError": errors.MISSING_TOOL, "CaptureError": errors.BAD_INPUT,
               "ScriptError": errors.BAD_INPUT}
    return by_name.get(type(exc).__name__, errors.FAILED)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _on_term)
    try:
        # Not cli.main(): it turns Ctrl-C into a blank line and Abort; we want our one line.
        with cli.make_context("rawtcp", list(sys.argv[1:] if argv is None else argv)) as ctx:
            result = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `rawtcp labs | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("rawtcp: interrupted; cleaned up", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # One line like every other error (click's own usage message takes four).
        where = exc.ctx.command_path if exc.ctx is not None else "rawtcp"
        message = " ".join(exc.format_message().split())
        click.echo(f"rawtcp: error: {message} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"rawtcp: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not type(exc).__module__.startswith("rawtcp"):
            message = f"{type(exc).__name__}: {message}"
            if isinstance(exc, PermissionError):
                message += " (run it with sudo)"
        click.echo(f"rawtcp: error: {message}", err=True)
        sys.exit(_exit_code_for(exc))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
