"""rawtcp's command line. Commands live in rawtcp/commands/ and are imported only when invoked, so
``rawtcp --help`` starts fast and never imports scapy."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
from typing import Any

import click

from rawtcp import compiled
from rawtcp.commands.groups import FullHelpGroup

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
    "states": ("rawtcp.commands.states:states", "Print TCP's state diagram (RFC 9293) from rawtcp's transition table."),
    "run": ("rawtcp.commands.script:run", "Run a packetdrill-dialect .pkt script against a fresh kernel."),
    "labs": ("rawtcp.commands.script:labs", "List the lab catalogue (--lesson: the exchange and its questions)."),
    "ladder": ("rawtcp.commands.capture:ladder", "Draw a capture's TCP streams as a ladder (text or SVG)."),
    "compare": ("rawtcp.commands.capture:compare",
                "Compare two captures, or (--stacks) a lab or script run on two TCP stacks."),
    "probe": ("rawtcp.commands.craft:probe", "Send crafted segments and show the answers (nping/hping style)."),
    "flood": ("rawtcp.commands.craft:flood", "Bounded SYN flood to a lab address (random ports and ISNs)."),
}

# Earlier spellings, still run but neither listed nor completed.
HIDDEN: dict[str, str] = {"compare-stacks": "rawtcp.commands.stacks:compare_stacks_alias"}


class LazyGroup(FullHelpGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (target, _) in COMMANDS.items() if _available(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        target = entry[0] if entry is not None else HIDDEN.get(cmd_name)
        if target is None or not _available(target):
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        from rawtcp.commands.common import refuse_non_finite

        refuse_non_finite(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # From the table, so `rawtcp --help` imports no command module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        # Command names and their help come from the table: completing `rawtcp <TAB>` must not import
        # every command module (click's own version calls get_command for each).
        from click.shell_completion import CompletionItem

        items = [CompletionItem(name, help=COMMANDS[name][1]) for name in self.list_commands(ctx)
                 if name.startswith(incomplete)]
        items.extend(click.Command.shell_complete(self, ctx, incomplete))
        return items


def _available(target: str) -> bool:
    """A command whose module is not part of this build is not offered (checked without importing)."""
    module = target.split(":")[0]
    path = os.path.join(os.path.dirname(__file__), *module.split(".")[1:]) + ".py"
    return os.path.exists(path)


# Help is wrapped to the terminal (click takes the smaller of this and the terminal's width), so on a
# wide terminal lines stop at 100 columns and on a narrow one they fit it.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="rawtcp", message=f"%(prog)s, version %(version)s, hot path {compiled.status()}")
def cli() -> None:
    """Drive TCP by hand: hand-built segments from user space against a real Linux kernel.

    Start with `sudo rawtcp demo`, or `sudo rawtcp lab up` then `rawtcp connect 198.18.0.2 8080 --name c1`.

    Shell completion: eval "$(_RAWTCP_COMPLETE=bash_source rawtcp)" in ~/.bashrc (zsh_source for zsh,
    fish_source for fish). Exit codes: 0 ok, 1 failed or different, 2 bad input or unwritable output,
    3 unknown session, 4 refused, 5 no answer, 6 needs root, 7 no lab, 8 missing tool, 130 interrupted.
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
    return errors.FAILED


# errno values that mean "this output cannot take more bytes": the message names the file and the exit
# status is bad input (2), because 1 means "failed"/"different" (compare) and must not be faked.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _failed_output(exc: OSError) -> str:
    """Which output an OSError came from: its filename if it has one, else the file object the
    innermost Python frame was writing (a write to a full device carries no filename)."""
    if exc.filename:
        return str(exc.filename)
    tb = exc.__traceback__
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    if frame is not None:
        for value in list(frame.f_locals.values()):
            fileno = getattr(value, "fileno", None)
            if not callable(fileno):
                continue
            try:
                fd = fileno()
            except (OSError, ValueError):
                continue
            if fd == 1:
                return "standard output"
            name = getattr(value, "name", None)
            if isinstance(name, str) and not name.startswith("<"):
                return name
    # No file object in sight (a plain sys.stdout.write): if stdout still cannot be flushed, it is the one.
    try:
        sys.stdout.flush()
    except OSError:
        return "standard output"
    return "an output file"


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail (or print) again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _silence_stdout()
        click.echo(f"rawtcp: error: cannot write standard output: {exc.strerror or exc}", err=True)
        sys.exit(2)


def _complete_if_asked() -> None:
    """Shell completion (`_RAWTCP_COMPLETE=bash_source rawtcp`) goes through click's own entry point,
    which answers the shell and exits; our main() builds its context itself and would not."""
    if os.environ.get("_RAWTCP_COMPLETE"):
        cli.main(prog_name="rawtcp", complete_var="_RAWTCP_COMPLETE")


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _on_term)
    # SIGINT too, even if a parent started us with it ignored (a script's `rawtcp … &`): an interrupt
    # must still unwind and remove what this command made.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _complete_if_asked()
    try:
        code = _run(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            click.echo(str(exc.code), err=True)
    _flush_stdout()
    sys.exit(code)


def _run(args: list[str]) -> int:
    """Run one command line; return the exit status (every error already printed as one line)."""
    no_args_is_help = getattr(click.exceptions, "NoArgsIsHelpError", None)
    try:
        # Not cli.main(): it turns Ctrl-C into a blank line and Abort; we want our one line.
        with cli.make_context("rawtcp", args) as ctx:
            result = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except BrokenPipeError:  # `rawtcp labs | head`: the reader has what it wanted; not an error
        _silence_stdout()
        return 0
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("rawtcp: interrupted; cleaned up", err=True)
        return 130
    except click.UsageError as exc:
        if no_args_is_help is not None and isinstance(exc, no_args_is_help) and exc.ctx is not None:
            # A bare group (`rawtcp`, `rawtcp lab`) asked for nothing wrong: its help, on stdout, exit 0.
            click.echo(exc.ctx.get_help())
            return 0
        # One line like every other error (click's own usage message takes four).
        where = exc.ctx.command_path if exc.ctx is not None else "rawtcp"
        message = " ".join(exc.format_message().split())
        click.echo(f"rawtcp: error: {message} (see '{where} --help')", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"rawtcp: error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            target = _failed_output(exc)
            if target == "standard output":
                _silence_stdout()
            click.echo(f"rawtcp: error: cannot write {target}: {exc.strerror or exc}", err=True)
            return 2
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not type(exc).__module__.startswith("rawtcp"):
            message = f"{type(exc).__name__}: {message}"
            if isinstance(exc, PermissionError):
                message += " (run it with sudo)"
        click.echo(f"rawtcp: error: {message}", err=True)
        return _exit_code_for(exc)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    main()
