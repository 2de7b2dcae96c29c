"""rawtcp lab up|down|status|impair: the two namespaces, the veth and the kernel listener."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click

from rawtcp import errors
from rawtcp.commands.common import finite, reap_leftovers
from rawtcp.commands.groups import FullHelpGroup
from rawtcp.commands.output import Printer


def _lab_options(f: Any) -> Any:
    options = [
        click.option("--client-ns", default="rawtcp-client", show_default=True,
                     help="Network namespace of the client end (where rawtcp sends from)."),
        click.option("--server-ns", default="rawtcp-server", show_default=True,
                     help="Network namespace of the server end (where the kernel listener runs)."),
        click.option("--client-ip", default="198.18.0.1", show_default=True,
                     help="IPv4 address of the client end (inside 198.18.0.0/15)."),
        click.option("--server-ip", default="198.18.0.2", show_default=True,
                     help="IPv4 address of the server end (inside 198.18.0.0/15)."),
        click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
                     help="TCP port of the kernel listener."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _impair_options(f: Any) -> Any:
    options = [
        click.option("--loss", type=finite(0, 100), metavar="PCT",
                     help="Lose PCT % of packets, both ways (default: none)."),
        click.option("--delay", type=finite(0), metavar="MS", help="Delay every packet MS milliseconds (default 0)."),
        click.option("--jitter", type=finite(0), metavar="MS",
                     help="Vary the delay by ± MS milliseconds; needs --delay (default 0)."),
        click.option("--reorder", type=finite(0, 100), metavar="PCT",
                     help="Send PCT % of packets at once, ahead of delayed ones; needs --delay (default 0)."),
        click.option("--duplicate", type=finite(0, 100), metavar="PCT", help="Duplicate PCT % of packets (default 0)."),
        click.option("--corrupt", type=finite(0, 100), metavar="PCT",
                     help="Flip a random bit in PCT % of packets (default 0)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(client_ns: str, server_ns: str, client_ip: str, server_ip: str, port: int, listener: str = "echo"):
    from rawtcp.lab.topology import LabConfig

    return LabConfig(client_ns=client_ns, server_ns=server_ns, client_ip=client_ip, server_ip=server_ip,
                     port=port, listener=listener)


@click.group(cls=FullHelpGroup)
def lab() -> None:
    """The lab: namespaces rawtcp-client/rawtcp-server, a veth between them, a kernel listener."""


@lab.command()
@_lab_options
@click.option("--listener", type=click.Choice(["echo", "sink", "seed"]), default="echo", show_default=True,
              help="The kernel listener: echo sends back what it reads, sink only reads, seed is SEED.md's "
                   "server (MSS 1024, answers 10 bytes, closes after 300 ms).")
@_impair_options
@click.option("--stack", type=click.Choice(["linux", "pytcp"]), default="linux", show_default=True,
              help="The TCP stack on the server side: Linux's, or PyTCP on a TAP device (extra rawtcp[pytcp]).")
def up(client_ns: str, server_ns: str, client_ip: str, server_ip: str, port: int, listener: str,
       loss: float | None, delay: float | None, jitter: float | None, reorder: float | None,
       duplicate: float | None, corrupt: float | None, stack: str) -> None:
    """Create the lab (a no-op that says so if it is already up)."""
    from rawtcp.lab import topology

    errors.require_privileges("rawtcp lab up")
    reap_leftovers(Printer())
    cfg = _config(client_ns, server_ns, client_ip, server_ip, port, listener)
    cfg.stack = stack
    if topology.lab_exists(cfg):
        click.echo(f"lab is already up ({cfg.client_ns} ↔ {cfg.server_ns}); `rawtcp lab down` removes it")
        return
    info = topology.lab_up(cfg)
    if any(v is not None for v in (loss, delay, jitter, reorder, duplicate, corrupt)):
        try:
            topology.impair(cfg, loss=loss, delay_ms=delay, jitter_ms=jitter, reorder=reorder,
                            duplicate=duplicate, corrupt=corrupt)
        except BaseException:
            topology.lab_down(cfg)
            raise
    click.echo(f"lab up: {cfg.client_ns} {_addresses(cfg.client_ip, info.client_ip6)} ({cfg.client_if}) ↔ "
               f"{cfg.server_ns} {_addresses(cfg.server_ip, info.server_ip6)} ({cfg.server_if})")
    where = f"{cfg.server_ip}:{cfg.port}" + (f" and [{info.server_ip6}]:{cfg.port}" if info.server_ip6 else "")
    owner = "kernel listener" if stack == "linux" else f"{stack} agent and listener"
    click.echo(f"{owner} ({listener}) on {where}, pid {info.listener_pid}")
    click.echo(f"next: rawtcp connect {cfg.server_ip} {cfg.port} --name c1"
               + (f"   (IPv6: rawtcp connect {info.server_ip6} {cfg.port} --name c2)" if info.server_ip6 else ""))


def _addresses(ip: str, ip6: str | None) -> str:
    return f"{ip} {ip6}" if ip6 else ip


@lab.command()
@_lab_options
def down(client_ns: str, server_ns: str, client_ip: str, server_ip: str, port: int) -> None:
    """Abort the lab's live sessions (RST) and remove everything (a no-op that says so if none is up)."""
    from rawtcp.lab import topology
    from rawtcp.session import client, registry

    errors.require_privileges("rawtcp lab down")
    cfg = _config(client_ns, server_ns, client_ip, server_ip, port)
    reap_leftovers(Printer())
    if not topology.lab_exists(cfg):
        click.echo("no lab is up; nothing to remove")
        return
    aborted = []
    for info in registry.all_sessions():
        if info.netns in (cfg.client_ns, cfg.server_ns):
            with contextlib.suppress(Exception):
                client.close(info.name, lambda rec: None, abort=True, wait=5.0)
                click.echo(f"aborted session {info.name} (RST)")
                aborted.append(info.name)
    # Each keeper removes its session files and firewall entries on its way out; lab_down signals every
    # process left in the namespaces, which would cut that short.
    deadline = time.monotonic() + 5.0
    while any(registry.name_taken(name) for name in aborted) and time.monotonic() < deadline:
        time.sleep(0.02)
    for line in topology.lab_down(cfg):
        click.echo(f"removed {line}")


@lab.command("status")
@_lab_options
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
def lab_status(client_ns: str, server_ns: str, client_ip: str, server_ip: str, port: int, as_json: bool) -> None:
    """Show what exists of the lab."""
    from rawtcp.lab import topology

    cfg = _config(client_ns, server_ns, client_ip, server_ip, port)
    st = topology.lab_status(cfg)
    if as_json:
        click.echo(json.dumps(st, default=str))
        return
    if not topology.lab_exists(cfg):
        click.echo("no lab is up (`sudo rawtcp lab up` makes one)")
        return
    conf = st.get("config") or {}
    for ns, ip_key, ip6_key in ((cfg.client_ns, "client_ip", "client_ip6"), (cfg.server_ns, "server_ip", "server_ip6")):
        click.echo(f"{ns}: {_addresses(conf.get(ip_key, ''), conf.get(ip6_key))}")
    for key, value in st.items():
        click.echo(f"{key}: {json.dumps(value, default=str)}")


@lab.command()
@_lab_options
@_impair_options
@click.option("--clear", is_flag=True, help="Remove every impairment.")
def impair(client_ns: str, server_ns: str, client_ip: str, server_ip: str, port: int, loss: float | None,
           delay: float | None, jitter: float | None, reorder: float | None, duplicate: float | None,
           corrupt: float | None, clear: bool) -> None:
    """Change the impairments (tc netem, both directions) of a running lab."""
    from rawtcp.lab import topology

    errors.require_privileges("rawtcp lab impair")
    cfg = _config(client_ns, server_ns, client_ip, server_ip, port)
    if not topology.lab_exists(cfg):
        raise errors.RawtcpError("no lab is up: run `sudo rawtcp lab up` first", errors.NO_LAB)
    if clear:
        for line in topology.clear_impairments(cfg):
            click.echo(line)
        return
    # What is now in force and by which backend (netem, or the relay on kernels without netem, where
    # lab_status()'s "netem" key would wrongly show nothing).
    applied = topology.impair(cfg, loss=loss, delay_ms=delay, jitter_ms=jitter, reorder=reorder,
                              duplicate=duplicate, corrupt=corrupt)
    click.echo(json.dumps(applied, default=str))


def _attach_lab_run() -> None:
    """`rawtcp lab run NAME|--all` lives with the script runner; attach it here without importing
    the runner until the command runs."""
    from rawtcp.commands.script import lab_run

    lab.add_command(lab_run, "run")


_attach_lab_run()
