"""The ``pswrap`` command line. One module per sub-command; this one only assembles them."""

from __future__ import annotations

import logging

import click

from pswrap import __version__


class _WarningsToStderr(logging.Handler):
    """pswrap's own warnings and errors (a token without the Exchange role, a world-readable secret…)
    on stderr, labelled by level. PowerShell's records are not among them: the commands print those."""

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "pswrap_record"):
            return
        from pswrap.cli.output import visible

        label = "error" if record.levelno >= logging.ERROR else "warning"
        click.echo(visible(f"{label}: {self.format(record)}", keep="\n"), err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("pswrap")
    if not any(isinstance(handler, _WarningsToStderr) for handler in logger.handlers):
        logger.addHandler(_WarningsToStderr(logging.WARNING))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pswrap")
def main() -> None:
    """Run Exchange Online and any PowerShell from Python, with typed objects back."""
    _show_warnings()


def _register() -> None:
    """Add the sub-commands (each lives in its own module)."""
    from pswrap.cli.doctor import doctor
    from pswrap.cli.parse import parse
    from pswrap.cli.render import render
    from pswrap.cli.run import run
    from pswrap.cli.token import token

    for command in (run, doctor, token, parse, render):
        main.add_command(command)


_register()
