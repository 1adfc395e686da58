"""The ``pswrap`` command line. One module per sub-command; this one only assembles them."""

from __future__ import annotations

import click

from pswrap import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pswrap")
def main() -> None:
    """Run Exchange Online and any PowerShell from Python, with typed objects back."""


def _register() -> None:
    """Add the sub-commands (each lives in its own module)."""
    from pswrap.cli.parse import parse

    main.add_command(parse)


_register()
