"""Click groups shared by the top-level command and its sub-groups (kept to click only: `rawtcp --help`
imports this module and must stay fast)."""

from __future__ import annotations

import click


class FullHelpGroup(click.Group):
    """A group whose command list shows each command's whole first line of help, wrapped to the
    terminal, where click would cut it at the column with "..."."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, _first_paragraph(cmd.short_help or cmd.help or "")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())
