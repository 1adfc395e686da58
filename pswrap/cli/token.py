"""``pswrap token``: get an app-only token and show what is in it (never the token, unless ``--raw``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pswrap.cli import _errors as errors
from pswrap.errors import ConfigError, TokenError

if TYPE_CHECKING:
    from rich.console import Console

    from pswrap.auth import AccessToken, TokenProvider

_TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


@click.command("token")
@click.option(
    "--profile", "-p", metavar="NAME", help="Profile in the config file (default: $PSWRAP_PROFILE)."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $PSWRAP_CONFIG, else ~/.config/pswrap/config.toml).",
)
@click.option("--claims", is_flag=True, help="Show every claim in the token, not only the summary.")
@click.option("--raw", is_flag=True, help="Print only the access token, for piping. It is a secret.")
def token(profile: str | None, config_path: Path | None, claims: bool, raw: bool) -> None:
    """Get an app-only access token and show its claims and the time it has left.

    Settings come from --profile, else the PSWRAP_* environment variables, else the default profile.
    """
    if raw and claims:
        raise click.UsageError("--raw prints only the token; it cannot be combined with --claims")
    from rich.console import Console  # imported here: other commands need neither rich nor msal

    from pswrap.auth import get_token_provider
    from pswrap.config import Settings

    try:
        settings = Settings.load(profile, config_path=config_path)
        provider = get_token_provider(settings)
        access = provider.get_token()
    except (ConfigError, TokenError) as exc:
        click.echo(f"pswrap token: {errors.message(exc)}", err=True)
        sys.exit(errors.exit_code(exc))
    if raw:
        click.echo(access.token.reveal())
        return
    rows = claim_rows(access) if claims else summary_rows(access, provider)
    show_rows(rows, Console(highlight=False))


def summary_rows(access: AccessToken, provider: TokenProvider) -> list[tuple[str, str]]:
    """What a person checks first: whose token, for what, with which roles, for how long."""
    app = access.app_id or "?"
    if access.claims.get("app_displayname"):
        app = f"{app} ({access.claims['app_displayname']})"
    tenant = access.tenant_id or "?"
    if provider.settings.tenant and provider.settings.tenant.lower() != tenant.lower():
        tenant = f"{tenant} ({provider.settings.tenant})"
    rows = [
        ("tenant", tenant),
        ("app", app),
        ("audience", access.audience or "?"),
        ("roles", ", ".join(access.roles) or "none"),
        ("credential", provider.credential_description),
        ("authority", provider.authority or "managed identity endpoint"),
        ("expires", f"{_when(access.expires_on)} ({time_left(access.seconds_left())})"),
    ]
    return rows


def claim_rows(access: AccessToken) -> list[tuple[str, str]]:
    """Every claim, in the token's order; times also shown as dates (and ``exp`` as time left)."""
    return [(name, _claim_text(name, value)) for name, value in access.claims.items()]


def show_rows(rows: Iterable[tuple[str, str]], console: Console) -> None:
    """A two-column table on a terminal; ``name: value`` lines otherwise (for grep and logs)."""
    rows = list(rows)
    if console.is_terminal:
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)
        return
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        click.echo(f"{name + ':':<{width + 1}} {value}")


def time_left(seconds: float) -> str:
    """``59 min 58 s``, ``1 h 10 min``, or ``expired 3 min ago``."""
    if seconds <= 0:
        return f"expired {_duration(-seconds)} ago"
    return f"{_duration(seconds)} left"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _claim_text(name: str, value: Any) -> str:
    if name in _TIME_CLAIMS and isinstance(value, (int, float)) and not isinstance(value, bool):
        relative = time_left(value - time.time()) if name == "exp" else ""
        return f"{value} ({_when(value)}{', ' + relative if relative else ''})"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)
