"""``pswrap parse``: CLIXML from files or standard input to JSON, NDJSON, CSV or a table."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from pswrap.cli import output
from pswrap.clixml import parse_clixml
from pswrap.errors import ClixmlError, ExpansionError
from pswrap.objects import Record


@click.command()
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True, dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(output.FORMATS), default="ndjson", show_default=True)
@click.option("--streams", is_flag=True, help="Put every stream in the output as {stream, value}.")
@click.option("--select", "select", default=None, help="Comma-separated member names to keep.")
@click.option(
    "--keep-references", is_flag=True, help="Keep every object for <Ref>s (big streams need memory)."
)
def parse(files: tuple[str, ...], fmt: str, streams: bool, select: str | None, keep_references: bool) -> None:
    """Read CLIXML (Export-Clixml files, `pwsh -OutputFormat xml` output) from FILES or `-` (stdin).

    Output objects go to standard output as they are read; the other streams' records go to standard
    error as lines (`WARNING: …`) unless --streams puts them in the output. A broken document ends with
    exit code 1 after every object before the break was written.
    """
    sources = list(files) or ["-"]
    failures: list[str] = []
    where: list[Any] = ["", 0]  # the file and number of the object being written

    def items() -> Iterator[Any]:
        for name in sources:
            source: Any = sys.stdin.buffer if name == "-" else Path(name)
            where[:] = ["standard input" if name == "-" else name, 0]
            try:
                for item in parse_clixml(source, keep_references=keep_references, require_document=True):
                    where[1] += 1
                    if streams:
                        yield {"stream": item.stream, "value": item.value}
                    elif item.stream == "output":
                        yield item.value
                    elif isinstance(item.value, Record):
                        click.echo(output.describe(item.value), err=True)
                    else:
                        click.echo(f"{item.stream.upper()}: {item.value}", err=True)
            except ClixmlError as exc:
                failures.append(str(exc))
            except OSError as exc:
                failures.append(f"cannot read {name}: {exc.strerror or exc}")

    columns = [c.strip() for c in select.split(",") if c.strip()] if select else None
    try:
        output.write(items(), fmt, sys.stdout, select=columns)
    except ExpansionError as exc:  # a hostile <Ref> graph: what was written before it stays
        failures.append(f"{where[0]}: object {where[1]} not written: {exc}")
    for failure in failures:
        click.echo(f"pswrap parse: {failure}", err=True)
    if failures:
        sys.exit(1)
