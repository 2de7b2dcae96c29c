"""rawtcp states: TCP's state diagram, drawn from the core's transition table (RFC 9293 §3.3.2)."""

from __future__ import annotations

import click

FORMATS = ("text", "dot", "mermaid")


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: one line per transition; dot: Graphviz (pipe to `dot -Tsvg`); mermaid: a "
                   "stateDiagram-v2 block (renders on GitHub).")
def states(fmt: str) -> None:
    """Print every state change rawtcp's endpoint makes: old state, new state and what causes it.

    The table is the one the endpoint runs, so the diagram cannot drift from the code.
    """
    from rawtcp.core.transitions import state_diagram_dot, state_diagram_mermaid, state_diagram_text

    render = {"text": state_diagram_text, "dot": state_diagram_dot, "mermaid": state_diagram_mermaid}[fmt]
    click.echo(render(), nl=False)
