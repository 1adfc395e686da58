"""``pswrap render``: print the script a template renders, parameter values shown only as ``<redacted>``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from pswrap.errors import RenderError
from pswrap.secret import REDACTED

_VAR_RE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<json>:json)?=(?P<value>.*)\Z", re.DOTALL)


@click.command("render")
@click.argument("template", required=False)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for the template, as a string; NAME:json=JSON for lists, numbers, booleans, null. "
    "Repeat for more.",
)
@click.option(
    "--template-dir",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of NAME.ps1.j2 files, searched before the built-in templates. Repeatable.",
)
@click.option("--list", "list_names", is_flag=True, help="List the template names and exit.")
def render(
    template: str | None, variables: tuple[str, ...], template_dirs: tuple[Path, ...], list_names: bool
) -> None:
    """Render TEMPLATE (e.g. exchange-connect) and print the PowerShell script.

    Every value is written as a PowerShell literal that no quote, $ or newline in it can break. Values
    for the template's declared parameters (param_block, e.g. AccessToken) are bound when the script
    runs and are never part of it: they are listed on standard error as <redacted>.

    \b
    pswrap render exchange-connect --var Organization=contoso.onmicrosoft.com \\
        --var 'CommandName:json=["Get-Mailbox","Set-Mailbox"]' --var PageSize:json=500
    """
    from pswrap.render import Templates

    try:
        templates = Templates(template_dirs)
        if list_names:
            for name in templates.names():
                click.echo(f"{name}\t{templates.source_path(name)}")
            return
        if template is None:
            raise click.UsageError("name a TEMPLATE to render (pswrap render --list shows them)")
        values = dict(_parse_var(item) for item in variables)
        script = templates.render(template, **values)
    except RenderError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(script.text, nl=not script.text.endswith("\n"))
    for name in script.declared:
        shown = REDACTED if name in script.parameters else "(not given)"
        click.echo(f"parameter ${name} = {shown}", err=True)


def _parse_var(item: str) -> tuple[str, Any]:
    match = _VAR_RE.match(item)
    if match is None:
        raise click.BadParameter(
            f"{item.split('=', 1)[0]!r} is not NAME=VALUE or NAME:json=JSON (NAME: letters, digits, _)",
            param_hint="--var",
        )
    name, text = match.group("name"), match.group("value")
    if not match.group("json"):
        return name, text
    try:
        return name, json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{name}: not JSON ({exc})", param_hint="--var") from None
