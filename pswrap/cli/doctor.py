"""``pswrap doctor``: can pswrap reach Exchange Online from here? One line a check, with the fix.

Checks, in order (a check whose prerequisite failed is skipped): the settings resolve; a token can be
had and carries ``Exchange.ManageAsApp``; ``pwsh`` is found and runs; the ExchangeOnlineManagement
module is there in 3.1.0 or later; connecting works. The REST transport needs no PowerShell, so for
it the two PowerShell checks are skipped; for the SSH transport the pwsh check is three: the SSH
connection and login, the host key, and the ``powershell`` subsystem (the PowerShell it runs).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from pswrap.cli import _errors as errors
from pswrap.config import Settings, child_environment
from pswrap.errors import ExchangeError, PswrapError, TokenError
from pswrap.objects import Version


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    fix: str | None = None


class Doctor:
    """Runs the checks and remembers what later ones need."""

    def __init__(
        self, profile: str | None, config_path: str | None, transport: str | None, pwsh: str | None
    ) -> None:
        self.profile = profile
        self.config_path = config_path
        self.transport = transport
        self.pwsh = pwsh
        self.settings: Settings | None = None
        self.token: Any = None
        self.pwsh_command: list[str] | None = None
        self.module_ok = False
        self.remote: Any = None  # the SSH transport, once its checks passed

    def run(self) -> list[Check]:
        checks = [self.check_settings(), self.check_token()]
        transport = self.transport or (self.settings.transport if self.settings else None) or "local"
        self.transport = transport
        if transport == "rest":
            checks.append(Check("pwsh", None, "not needed: the rest transport runs no PowerShell"))
            checks.append(Check("module", None, "not needed: the rest transport runs no PowerShell"))
        elif transport == "ssh":
            checks.extend(self.check_ssh())
            checks.append(self.check_module())
        elif transport == "winrm":
            checks.append(Check("pwsh", None, "runs on the remote runner host (winrm)"))
            checks.append(Check("module", None, "checked on the runner host when connecting"))
        else:
            checks.append(self.check_pwsh())
            checks.append(self.check_module())
        checks.append(self.check_connect())
        return checks

    def check_settings(self) -> Check:
        try:
            self.settings = Settings.load(self.profile, config_path=self.config_path)
        except PswrapError as exc:
            return Check(
                "settings",
                False,
                str(exc),
                "set PSWRAP_TENANT, PSWRAP_CLIENT_ID and a credential, or a profile",
            )
        s = self.settings
        credential = s.credential_kind or "no credential"
        return Check(
            "settings",
            True,
            f"{s.origin.description}: tenant {s.tenant}, app {s.client_id or s.managed_identity}, {credential}, "
            f"organization {s.organization or '(not set)'}, cloud {s.environment}",
            None
            if s.organization
            else "set organization (PSWRAP_ORGANIZATION) to the tenant's *.onmicrosoft.com domain",
        )

    def check_token(self) -> Check:
        if self.settings is None:
            return Check("token", None, "skipped: no settings")
        from pswrap.auth import get_token_provider

        try:
            self.token = get_token_provider(self.settings).get_token()
        except TokenError as exc:
            return Check("token", False, exc.reason, exc.action)
        except PswrapError as exc:
            return Check("token", False, str(exc))
        token = self.token
        detail = (
            f"tenant {token.tenant_id}, app {token.app_id}, audience {token.audience}, roles "
            f"{', '.join(token.roles) or 'none'}, valid {int(token.seconds_left() // 60)} min"
        )
        if not token.has_exchange_role:
            return Check(
                "token",
                False,
                detail,
                "add the API permission Office 365 Exchange Online -> Exchange.ManageAsApp (application) to the app "
                "and grant admin consent",
            )
        return Check("token", True, detail)

    def check_pwsh(self) -> Check:
        from pswrap.transports._process import find_pwsh

        try:
            self.pwsh_command = find_pwsh(self.pwsh)
        except PswrapError as exc:
            return Check(
                "pwsh",
                False,
                errors.message(exc),
                "install PowerShell 7 (https://aka.ms/powershell) or give its path with --pwsh or PSWRAP_PWSH",
            )
        try:
            done = subprocess.run(
                [*self.pwsh_command, "-NoLogo", "-NoProfile", "-Version"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                check=False,
                env=child_environment(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check(
                "pwsh", False, f"{self.pwsh_command[0]} did not run: {exc}", "check the pwsh installation"
            )
        version = (done.stdout or done.stderr).strip().splitlines()[:1]
        if done.returncode != 0 or not version:
            return Check("pwsh", False, f"{self.pwsh_command[0]} -Version failed (exit {done.returncode})")
        return Check("pwsh", True, f"{self.pwsh_command[0]} ({version[0]})")

    def check_ssh(self) -> list[Check]:
        """The SSH connection (handshake and login), the host key, and the powershell subsystem."""
        from pswrap.errors import SSHAuthenticationError, SSHHostKeyError
        from pswrap.session import Session
        from pswrap.transports.ssh import SSHTransport

        if self.settings is None:
            return [Check(name, None, "skipped: no settings") for name in ("ssh", "host key", "subsystem")]
        try:
            transport = SSHTransport.from_settings(self.settings)
        except PswrapError as exc:
            return [
                Check(
                    "ssh",
                    False,
                    str(exc),
                    "set PSWRAP_SSH_HOST (and _USERNAME, _KEY_FILE…) or [profiles.NAME.ssh]",
                ),
                Check("host key", None, "skipped: no SSH settings"),
                Check("subsystem", None, "skipped: no SSH settings"),
            ]
        report: dict[str, str] = {}
        try:
            transport.connect_pipe(report).release()
        except SSHHostKeyError as exc:
            return [
                Check("ssh", None, f"{transport.url}: not logged in (the host key was refused)"),
                Check(
                    "host key", False, str(exc), "add the host key to known_hosts or pin host_key_fingerprint"
                ),
                Check("subsystem", None, "skipped: not connected"),
            ]
        except SSHAuthenticationError as exc:
            return [
                Check(
                    "ssh", False, str(exc), "check username, key_file (and passphrase), the agent or password"
                ),
                Check("host key", True, "verified before logging in"),
                Check("subsystem", None, "skipped: not logged in"),
            ]
        except PswrapError as exc:
            if report:  # logged in: the subsystem failed
                return [
                    Check("ssh", True, f"{transport.url}: logged in with {report['login']}"),
                    Check("host key", True, report["host_key"]),
                    Check("subsystem", False, str(exc)),
                ]
            return [
                Check("ssh", False, str(exc), "check the host name and port, and that sshd runs there"),
                Check("host key", None, "skipped: not connected"),
                Check("subsystem", None, "skipped: not connected"),
            ]
        checks = [
            Check("ssh", True, f"{transport.url}: logged in with {report['login']}"),
            Check("host key", True, report["host_key"]),
        ]
        try:
            with Session(transport, timeout=120) as session:
                version = session.script("$PSVersionTable.PSVersion.ToString()").output
        except PswrapError as exc:
            checks.append(Check("subsystem", False, str(exc)))
            return checks
        shown = version[0] if version else "?"
        checks.append(Check("subsystem", True, f"{transport.subsystem!r} runs PowerShell {shown}"))
        self.remote = transport
        return checks

    def check_module(self) -> Check:
        if self.transport == "ssh" and self.remote is None:
            return Check("module", None, "skipped: the SSH host is not ready")
        if self.transport != "ssh" and self.pwsh_command is None:
            return Check("module", None, "skipped: no pwsh")
        from pswrap.exchange import INSTALL_MODULE, MINIMUM_MODULE_VERSION
        from pswrap.session import Session

        runner = self.remote if self.transport == "ssh" else (self.transport or "local")
        pwsh = None if self.transport == "ssh" else self.pwsh_command
        try:
            with Session(runner, pwsh=pwsh, timeout=120) as session:
                found = session.invoke("Get-Module", "ExchangeOnlineManagement", ListAvailable=True).output
        except PswrapError as exc:
            return Check("module", False, f"could not ask PowerShell: {exc}")
        versions = sorted(
            (Version.parse(str(m["Version"] if hasattr(m, "keys") else m)) for m in found), reverse=True
        )
        minimum = Version.parse(MINIMUM_MODULE_VERSION)
        if not versions:
            return Check("module", False, "ExchangeOnlineManagement is not installed", INSTALL_MODULE)
        if versions[0] < minimum:
            return Check(
                "module",
                False,
                f"ExchangeOnlineManagement {versions[0]} is older than {minimum}",
                INSTALL_MODULE,
            )
        self.module_ok = True
        return Check("module", True, f"ExchangeOnlineManagement {versions[0]}")

    def check_connect(self) -> Check:
        if self.settings is None or self.token is None:
            return Check("connect", None, "skipped: no token")
        if self.transport != "rest" and self.transport != "winrm" and not self.module_ok:
            return Check("connect", None, "skipped: the module is not ready")
        from pswrap.exchange import ExchangeOnline

        try:
            pwsh = None if self.transport == "ssh" else self.pwsh_command
            with ExchangeOnline(self.settings, transport=self.transport, pwsh=pwsh, timeout=300) as exo:
                domains = exo.invoke("Get-AcceptedDomain").output
        except ExchangeError as exc:
            return Check("connect", False, exc.reason, exc.action)
        except PswrapError as exc:
            return Check("connect", False, str(exc))
        names = ", ".join(str(d["DomainName"] if hasattr(d, "keys") else d) for d in domains[:3])
        return Check(
            "connect",
            True,
            f"connected to {self.settings.organization} via {self.transport}; domains: {names}",
        )


def _mark(check: Check) -> str:
    return {True: "ok  ", False: "FAIL", None: "skip"}[check.ok]


def _print(checks: list[Check], echo: Callable[..., None]) -> None:
    for check in checks:
        echo(f"{_mark(check)}  {check.name}: {check.detail}")
        if check.fix and check.ok is not True:
            echo(f"      fix: {check.fix}")
        elif check.fix and check.ok:
            echo(f"      note: {check.fix}")


@click.command()
@click.option("--profile", help="A profile from the config file.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The config file.")
@click.option(
    "--transport",
    type=click.Choice(["local", "oneshot", "winrm", "ssh", "rest"]),
    help="The transport to check.",
)
@click.option(
    "--pwsh", envvar="PSWRAP_PWSH", help="The pwsh to check (default: PSWRAP_PWSH, else found on PATH)."
)
def doctor(profile: str | None, config_path: str | None, transport: str | None, pwsh: str | None) -> None:
    """Check that pswrap can reach Exchange Online: settings, token, pwsh, module, connect."""
    checks = Doctor(profile, config_path, transport, pwsh).run()
    _print(checks, click.echo)
    sys.exit(0 if all(c.ok is not False for c in checks) else 1)
