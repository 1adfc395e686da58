"""``pswrap run``: an Exchange Online cmdlet from the shell, PowerShell-style parameters in, data out.

::

    pswrap run Get-Mailbox -ResultSize 5 --format table
    pswrap run Set-Mailbox -Identity bob '-HiddenFromAddressListsEnabled:$true'   # quote $ from the shell
    pswrap run Get-Recipient -RecipientTypeDetails UserMailbox,SharedMailbox --format ndjson
    pswrap run Get-Mailbox --host runner01.contoso.com      # on a remote runner over WinRM
    pswrap run Get-Mailbox --host ssh://svc@runner02:22      # over SSH (the host's powershell subsystem)

Parameters after the cmdlet are written as in PowerShell: ``-Name value``, ``-Switch``,
``-Switch:$false``, ``-Name:value`` (for a value that starts with a dash), ``a,b`` for a list; ``$true``,
``$false`` and ``$null`` mean what they do in PowerShell and whole numbers are numbers. pswrap's own
options are the ``--double-dash`` ones. Output goes to stdout; warnings, errors and other records to
stderr; progress shows as a bar on a terminal. The exit code is 0 on success, 1 when PowerShell
reported an error, 2 for a usage or settings problem (a missing pwsh or module, a rejected credential:
retrying will not help), 3 when pswrap could not reach Exchange or the identity provider.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from pswrap.cli import _errors as errors
from pswrap.cli import output
from pswrap.config import Settings
from pswrap.errors import ConfigError, PowerShellError, PswrapError
from pswrap.objects import ProgressRecord, Record

_NUMBER = re.compile(r"[+-]?\d+\Z")
_PARAMETER = re.compile(r"-([A-Za-z_][A-Za-z0-9_]*)(?::(.*))?\Z", re.DOTALL)


def parse_parameters(tokens: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """PowerShell-style ``-Name value`` tokens to positional arguments and named parameters."""
    arguments: list[Any] = []
    parameters: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        match = _PARAMETER.match(token)
        if match is None or _NUMBER.match(token):
            arguments.append(_value(token))
            continue
        name, attached = match.group(1), match.group(2)
        if name in parameters:
            raise click.UsageError(f"-{name} is given more than once")
        if attached is not None:
            parameters[name] = _value(attached)
        elif index < len(tokens) and (
            _PARAMETER.match(tokens[index]) is None or _NUMBER.match(tokens[index])
        ):
            parameters[name] = _value(tokens[index])
            index += 1
        else:
            parameters[name] = True  # a switch
    return arguments, parameters


def _value(text: str) -> Any:
    parts = _split_list(text) if "," in text else [text]
    if len(parts) == 1:
        return _scalar(text)
    return [_scalar(part) for part in parts]


def _split_list(text: str) -> list[str]:
    parts, current, quote = [], "", ""
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("$true", "$false"):
        return lowered == "$true"
    if lowered == "$null":
        return None
    if _NUMBER.match(text):
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _run_on_profiles(
    cmdlet: str,
    arguments: list[Any],
    named: dict[str, Any],
    profile: str | None,
    profiles: str | None,
    all_profiles: bool,
    host: str | None,
    given: dict[str, Any],
) -> None:
    """``--profiles``/``--all-profiles``: the many-tenant path (pswrap.cli.fleet_run)."""
    from pswrap.cli.fleet_run import run_on_profiles

    if profile is not None or host is not None or (profiles is not None and all_profiles):
        raise click.UsageError(
            "--profiles and --all-profiles go alone: not with --profile, --host or each other"
        )
    names = None if all_profiles else [n.strip() for n in (profiles or "").split(",") if n.strip()]
    if names is not None and not names:
        raise click.UsageError("--profiles needs profile names, like --profiles contoso,fabrikam")
    select = given["select"]
    run_on_profiles(
        cmdlet,
        arguments,
        named,
        profiles=names,
        config_path=given["config_path"],
        fmt=given["fmt"],
        select=[c.strip() for c in select.split(",") if c.strip()] if select else None,
        transport=given["transport"],
        pwsh=given["pwsh"],
        timeout=given["timeout"],
        concurrency=given["concurrency"],
    )


class _Progress:
    """Progress records as a rich progress bar on stderr (a terminal only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._tasks: dict[int, Any] = {}

    def __call__(self, record: Record) -> None:
        if not isinstance(record, ProgressRecord):
            click.echo(output.describe(record), err=True)
            return
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import Progress

        if self._bar is None:
            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
        key = record.activity_id
        if key not in self._tasks:
            self._tasks[key] = self._bar.add_task(record.activity, total=100)
        percent = record.percent_complete if record.percent_complete >= 0 else None
        self._bar.update(
            self._tasks[key],
            description=f"{record.activity} {record.message}".strip(),
            completed=100 if record.completed else percent,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]})
@click.argument("cmdlet")
@click.argument("parameters", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--profile", help="A profile from the config file (default: PSWRAP_* variables, then the default)."
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The config file.")
@click.option("--format", "fmt", type=click.Choice(output.FORMATS), default="table", show_default=True)
@click.option("--select", default=None, help="Comma-separated member names to keep.")
@click.option(
    "--transport",
    type=click.Choice(["local", "oneshot", "winrm", "ssh", "rest"]),
    help="How to run (default: local).",
)
@click.option(
    "--pwsh", envvar="PSWRAP_PWSH", help="The pwsh to start (default: PSWRAP_PWSH, else found on PATH)."
)
@click.option(
    "--host",
    help="The remote runner host: a name implies --transport winrm, ssh://[user@]host[:port] --transport ssh "
    "(the rest comes from the profile's [winrm] or [ssh] table, or PSWRAP_WINRM_*/PSWRAP_SSH_* variables).",
)
@click.option("--timeout", type=float, help="Seconds the cmdlet may take.")
@click.option("--profiles", help="Run on these profiles (comma-separated), each tenant in its own session.")
@click.option("--all-profiles", is_flag=True, help="Run on every profile in the config file.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=16, show_default=True, help="Tenants at once."
)
def run(
    cmdlet: str,
    parameters: tuple[str, ...],
    profile: str | None,
    config_path: str | None,
    fmt: str,
    select: str | None,
    transport: str | None,
    pwsh: str | None,
    host: str | None,
    timeout: float | None,
    profiles: str | None,
    all_profiles: bool,
    concurrency: int,
) -> None:
    """Run an Exchange Online CMDLET with PowerShell-style PARAMETERS (-ResultSize 10, -Identity bob)."""
    from pswrap.exchange import ExchangeOnline

    arguments, named = parse_parameters(list(parameters))
    if profiles is not None or all_profiles:
        given: dict[str, Any] = {"config_path": config_path, "fmt": fmt, "select": select}
        given.update(transport=transport)
        given.update(pwsh=pwsh, timeout=timeout, concurrency=concurrency)
        _run_on_profiles(cmdlet, arguments, named, profile, profiles, all_profiles, host, given)
        return
    progress = _Progress(sys.stderr.isatty())
    try:
        if host is not None:
            implied = "ssh" if host.startswith("ssh://") else transport or "winrm"
            if transport not in (None, implied) or implied not in ("winrm", "ssh"):
                raise ConfigError(
                    f"--host names a WinRM runner host (or ssh://… for SSH); it does not apply to --transport "
                    f"{transport}"
                )
            transport = implied
        settings = Settings.load(profile, config_path=config_path)
        remote: dict[str, Any] = {"host": host} if host is not None else {}
        exo = ExchangeOnline(
            settings,
            transport=transport,
            pwsh=pwsh,
            timeout=timeout,
            on_record=progress,
            progress=progress.enabled,
            **remote,
        )
    except PswrapError as exc:
        click.echo(f"pswrap run: {errors.message(exc)}", err=True)
        sys.exit(errors.exit_code(exc))
    failed = False
    try:
        with exo:
            result = exo.invoke(cmdlet, *arguments, **named)

            def objects() -> Iterator[Any]:
                yield from result

            columns = [c.strip() for c in select.split(",") if c.strip()] if select else None
            try:
                output.write(objects(), fmt, sys.stdout, select=columns)
            finally:
                progress.close()
            failed = bool(result.errors)
    except PowerShellError as exc:
        progress.close()
        click.echo(output.visible(f"ERROR: {exc.record.message}", keep="\n"), err=True)
        if exc.record.error_id:
            click.echo(output.visible(f"  ({exc.record.category}, {exc.record.error_id})"), err=True)
        sys.exit(1)
    except PswrapError as exc:
        progress.close()
        click.echo(f"pswrap run: {errors.message(exc)}", err=True)
        sys.exit(errors.exit_code(exc))
    if failed:
        sys.exit(1)
