"""``pswrap render``: print a template's script, run-time parameters redacted."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pswrap.errors import RenderError
from pswrap.render import Templates


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``name=value`` gives a string; ``name:json=value`` reads the value as JSON (lists, numbers…)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r} is not name=value (or name:json=value)", param_hint="--var")
        name, raw = pair.split("=", 1)
        if name.endswith(":json"):
            name = name[: -len(":json")]
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"{name}: not JSON ({exc.msg})", param_hint="--var") from None
        else:
            values[name] = raw
        if not name:
            raise click.BadParameter(f"{pair!r} has no name", param_hint="--var")
    return values


@click.command()
@click.argument("template", required=False)
@click.option(
    "--var", "variables", multiple=True, metavar="NAME=VALUE", help="A value; NAME:json=VALUE for JSON."
)
@click.option(
    "--template-dir", "dirs", multiple=True, type=click.Path(file_okay=False), help="Searched first."
)
@click.option("--list", "list_names", is_flag=True, help="List the template names and exit.")
def render(template: str | None, variables: tuple[str, ...], dirs: tuple[str, ...], list_names: bool) -> None:
    """Print the script TEMPLATE renders to, for review.

    Values go in with --var; every value lands in the script as a PowerShell literal. Values the
    template declares as run-time parameters (the access token…) are bound when the script runs and
    show here only as <redacted>.
    """
    try:
        templates = Templates(dirs)
        if list_names or template is None:
            for name in templates.names():
                click.echo(name)
            return
        script = templates.render(template, **_parse_vars(variables))
    except RenderError as exc:
        click.echo(f"pswrap render: {exc}", err=True)
        sys.exit(2)
    click.echo(script.redacted(), nl=not script.text.endswith("\n"))
