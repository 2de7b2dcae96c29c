"""Argument checks and look-ups shared by the commands."""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from pathlib import Path
from typing import Any

import click

from rawtcp import errors

LAB_NET = ipaddress.ip_network("198.18.0.0/15")
LAB_NET6 = ipaddress.ip_network("2001:db8::/32")  # RFC 3849 documentation prefix: the lab's IPv6 addresses


def resolve_host(host: str) -> str:
    """An IPv4 or IPv6 address (in its canonical spelling, RFC 5952), or a name that resolves to one
    (IPv4 first, as rawtcp's own default)."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        if isinstance(addr, ipaddress.IPv6Address) and (addr.scope_id or addr.is_link_local):
            raise errors.RawtcpError(f"host {host!r}: link-local IPv6 addresses are not supported "
                                     "(use a global one, e.g. the lab's 2001:db8::2)", errors.BAD_INPUT)
        return addr.compressed
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        if infos:
            return ipaddress.ip_address(infos[0][4][0]).compressed
    raise errors.RawtcpError(f"host {host!r} is not an IPv4 address, an IPv6 address or a resolvable name",
                             errors.BAD_INPUT)


def same_address(a: str | None, b: str | None) -> bool:
    """Whether two address texts name the same address (IPv6 has many spellings)."""
    if a is None or b is None:
        return False
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def default_lab() -> Any:
    from rawtcp.lab.topology import LabConfig

    return LabConfig()


def lab_is_up(cfg: Any = None) -> bool:
    from rawtcp.lab.topology import lab_exists

    return lab_exists(cfg or default_lab())


def reap_leftovers(printer: Any) -> None:
    """What killed rawtcp processes left behind is found and removed by the next command that touches
    the wire or the lab, which says so."""
    from rawtcp.session.janitor import reap

    for line in reap():
        printer.message(f"removed leftover: {line}")


def output_path(path: str | None, what: str = "--pcap") -> str | None:
    """An output file's absolute path, checked before anything is made: a directory that does not
    exist or cannot be written is bad input (exit 2), not a failure after the work was done."""
    if path is None:
        return None
    full = Path(path).resolve()
    if full.is_dir():
        raise errors.RawtcpError(f"cannot write {what} {path}: it is a directory", errors.BAD_INPUT)
    if not full.parent.is_dir():
        raise errors.RawtcpError(f"cannot write {what} {path}: no directory {full.parent}", errors.BAD_INPUT)
    if not os.access(full.parent, os.W_OK) or (full.exists() and not os.access(full, os.W_OK)):
        raise errors.RawtcpError(f"cannot write {what} {path}: permission denied", errors.BAD_INPUT)
    return str(full)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="One JSON object per segment/event.")(f)


def lab_for_namespace(netns: str) -> Any:
    """The lab (its LabConfig) whose client or server namespace is ``netns``, if rawtcp made one."""
    from rawtcp.lab.topology import LabConfig, list_labs

    for state in list_labs():
        try:
            cfg = LabConfig(**state["config"])
        except TypeError:
            continue
        if netns in (cfg.client_ns, cfg.server_ns):
            return cfg
    return None


class FiniteFloat(click.ParamType):
    """A float option that refuses nan and ±inf (click's FLOAT and FloatRange take them: nan compares
    false with every bound). Wraps another float type so its range check still applies."""

    name = "float"

    def __init__(self, inner: click.ParamType | None = None) -> None:
        self.inner = inner if inner is not None else click.FLOAT

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        result = self.inner.convert(value, param, ctx)
        if isinstance(result, float) and not math.isfinite(result):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return result

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return self.inner.get_metavar(param, ctx) if ctx is not None else None

    def __repr__(self) -> str:
        return f"FiniteFloat({self.inner!r})"


def finite(minimum: float | None = None, maximum: float | None = None) -> FiniteFloat:
    """A finite float in [minimum, maximum] (either bound may be open-ended)."""
    if minimum is None and maximum is None:
        return FiniteFloat()
    return FiniteFloat(click.FloatRange(minimum, maximum))


def refuse_non_finite(command: click.Command) -> None:
    """Give every float option of ``command`` (and of its subcommands) the FiniteFloat check, so no
    command — whoever wrote it — accepts ``--time-tolerance nan`` or ``--wait inf``."""
    for param in command.params:
        if isinstance(param.type, (click.types.FloatParamType, click.FloatRange)):
            param.type = FiniteFloat(param.type)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            refuse_non_finite(sub)


def write_error(path: str, exc: OSError) -> errors.RawtcpError:
    """A failed write as one line naming the OUTPUT file (disk full, /dev/full, a closed pipe…), with
    the bad-input status: 1 means "failed"/"different" and must stay that."""
    return errors.RawtcpError(f"cannot write {path}: {exc.strerror or exc}", errors.BAD_INPUT)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to the output file ``path`` ('-': standard output); errors name ``path``."""
    if path == "-":
        click.echo(text, nl=False)
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise write_error(path, exc) from None


def terminal_width(default: int | None = None) -> int | None:
    """The terminal's width when stdout is one (or $COLUMNS is set); ``default`` otherwise, so piped
    output keeps its full lines."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(1).columns
    except OSError:
        return default
