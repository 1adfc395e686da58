"""``pswrap run … --profiles a,b,c`` / ``--all-profiles``: one cmdlet on many tenants.

Every output row starts with a ``Tenant`` column (the profile name), in every format; a progress bar
over tenants shows on a terminal; each failed tenant is named on stderr with why, then a one-line
summary. The exit code is 0 when every tenant succeeded and :data:`SOME_TENANTS_FAILED` (4) when at
least one failed or reported errors (the others' results are all written).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import click

from pswrap.cli import output
from pswrap.errors import ConfigError
from pswrap.fleet import Fleet, FleetItem, TenantReport
from pswrap.objects import ProgressRecord, Record

#: The exit code when some tenants failed (0: all succeeded; 2: a usage or settings problem).
SOME_TENANTS_FAILED = 4
TENANT_COLUMN = "Tenant"


def tenant_row(item: FleetItem) -> dict[str, Any]:
    """An object as a row whose first column names its tenant (the hook every format writes)."""
    tenant, value = item
    if isinstance(value, Mapping):
        return {TENANT_COLUMN: tenant, **{k: v for k, v in value.items() if k != TENANT_COLUMN}}
    return {TENANT_COLUMN: tenant, "Value": value}


class _TenantProgress:
    """A bar over tenants on stderr (a terminal only); records go to stderr prefixed by their tenant."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._total = total

    def record(self, tenant: str, record: Record) -> None:
        if isinstance(record, ProgressRecord):
            return
        click.echo(f"[{tenant}] {output.describe(record)}", err=True)

    def report(self, report: TenantReport) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("tenants", total=self._total)
        self._bar.update(self._task, advance=1, description=f"tenants ({report.tenant} done)")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_on_profiles(
    cmdlet: str,
    arguments: Sequence[Any],
    named: Mapping[str, Any],
    *,
    profiles: Sequence[str] | None,
    config_path: str | None,
    fmt: str,
    select: Sequence[str] | None,
    transport: str | None,
    pwsh: str | None,
    timeout: float | None,
    concurrency: int,
) -> None:
    """Run ``cmdlet`` on the profiles (all when ``None``) and exit with the fleet's exit code."""
    options: dict[str, Any] = {"pwsh": pwsh} if pwsh else {}
    try:
        fleet = Fleet.from_profiles(
            profiles, config_path=config_path, transport=transport, concurrency=concurrency, **options
        )
    except ConfigError as exc:
        click.echo(f"pswrap run: {exc}", err=True)
        sys.exit(2)
    progress = _TenantProgress(len(fleet.tenants), sys.stderr.isatty())
    fleet.on_record = progress.record
    fleet.on_report = progress.report
    with fleet:
        run = fleet.invoke(cmdlet, *arguments, timeout=timeout, **dict(named))

        def rows() -> Iterator[dict[str, Any]]:
            for item in run:
                yield tenant_row(item)

        columns = [TENANT_COLUMN, *select] if select else None
        try:
            output.write(rows(), fmt, sys.stdout, select=columns)
        finally:
            progress.close()
        summary = run.summary
    for report in summary.reports.values():
        if not report.ok:
            why = report.error or f"{report.errors} errors"
            click.echo(f"pswrap run: {report.tenant}: {why}", err=True)
    click.echo(
        f"pswrap run: {len(summary)} tenants, {summary.objects} objects, {len(summary.failed)} failed",
        err=True,
    )
    if summary.failed:
        sys.exit(SOME_TENANTS_FAILED)
