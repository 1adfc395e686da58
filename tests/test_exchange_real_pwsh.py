"""ExchangeOnline on a real PowerShell 7, local (``pwsh -s``) and one-shot, against the test-only
ExchangeOnlineManagement module (tests/standins/exchange_module) and the identity-provider stand-in.

The module checks each token in .NET (RS256 against the identity provider's key set, audience, expiry,
role, tenant) and fails as the real module does, so these tests show what a user of the real module
sees: one connect for many calls, reconnects, retries, every refused connect with its fix, the CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner

from pswrap import PowerShellError
from pswrap.auth import AccessToken, clear_token_providers
from pswrap.cli import main
from pswrap.errors import ExchangeConnectError, ExchangeModuleError
from tests.fixtures.exchange_pwsh import RealExchange
from tests.standins import exchange_data as xd

pytestmark = [pytest.mark.real_pwsh]

# Compared as Python values: what pwsh sends for these kinds is the same value the data holds.
_EXACT_KINDS = ("string", "bool", "int", "guid", "datetime", "timespan", "strings")


def _same_as_the_data(mailbox: Any, index: int) -> None:
    expected = xd.mailbox_values(index)
    for field in xd.MAILBOX_FIELDS:
        got, want = mailbox[field.name], expected[field.name]
        if field.kind in _EXACT_KINDS and want is not None:
            assert got == (list(want) if field.kind == "strings" else want), field.name
        else:  # enums, quotas and identities travel as their text
            assert (None if got is None else str(got)) == (None if want is None else str(want)), field.name


def test_connect_once_for_many_calls_and_the_fixture_mailboxes(real_exchange: RealExchange) -> None:
    with real_exchange.open() as exo:
        _many_calls(real_exchange, exo)
    assert [e["was_connected"] for e in real_exchange.events("disconnect")] == [True]  # close disconnects
    assert not exo.session.healthy


def _many_calls(real_exchange: RealExchange, exo: Any) -> None:
    for index in range(20):
        (mailbox,) = exo.invoke("Get-Mailbox", Identity=xd.alias(index % 12))
        assert mailbox.Name == xd.alias(index % 12)
    everything = exo.invoke("Get-Mailbox", ResultSize="Unlimited").output
    assert len(everything) == 12
    for index, mailbox in enumerate(everything):
        _same_as_the_data(mailbox, index)
    assert everything[0].is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
    limited = exo.invoke("Get-Mailbox", ResultSize=2)
    assert [m.Name for m in limited] == ["user0000000", "user0000001"]
    assert [w.message for w in limited.warnings] == [
        "There are more results available than are currently displayed. To view them, increase the value for "
        "the ResultSize parameter."
    ]
    exo.invoke(
        "Set-Mailbox", "user0000003", DisplayName="Renamed", EmailAddresses={"Add": ["smtp:x@contoso.com"]}
    )
    (changed,) = exo.invoke("Get-Mailbox", Identity="user0000003")
    assert changed.DisplayName == "Renamed" and changed.EmailAddresses[-1] == "smtp:x@contoso.com"
    domains = exo.invoke("Get-AcceptedDomain").output
    assert [d.DomainName for d in domains] == [d["DomainName"] for d in xd.accepted_domains()]
    with pytest.raises(PowerShellError) as caught:  # Exchange's own error, in the real shape
        exo.invoke("Get-Mailbox", Identity="nobody").wait()
    assert not isinstance(caught.value, ExchangeConnectError)
    assert caught.value.record.error_id.endswith("],Write-ErrorMessage")
    assert caught.value.record.activity == "Get-Mailbox"
    assert exo.connects == 1 and real_exchange.connects() == 1
    assert real_exchange.idp.token_requests == 1
    (pid,) = {e["pid"] for e in real_exchange.events()}  # one pwsh for all of it
    assert exo.token is not None
    for canary in (exo.token.token.reveal(), real_exchange.idp.app.secret):  # never in argv or environment
        for part in ("cmdline", "environ") if Path("/proc/self").is_dir() else ():
            assert canary.encode() not in Path(f"/proc/{pid}/{part}").read_bytes()


def test_a_token_near_expiry_is_replaced_and_a_rejected_one_retried_for_reads_only(
    real_exchange: RealExchange,
) -> None:
    idp = real_exchange.idp
    idp.app.token_lifetime = 300 + 3  # the first token leaves the 300 s margin after 3 s
    exo = real_exchange.open(real_exchange.settings(refresh_margin=300))
    exo.open()
    idp.app.token_lifetime = 3599
    deadline = time.monotonic() + 60
    while exo.connects < 2 and time.monotonic() < deadline:
        assert exo.invoke("Get-Mailbox", Identity="user0000001").output
        time.sleep(0.25)
    assert exo.connects == 2 and real_exchange.connects() == 2  # reconnected between calls
    # The service stops taking the token mid-session (401): a read reconnects and runs again...
    assert exo.token is not None
    real_exchange.configure(revoked=[exo.token.claims["uti"]])
    assert [m.Name for m in exo.invoke("Get-Mailbox", Identity="user0000004")] == ["user0000004"]
    assert exo.connects == 3
    # ...a change is not run again, and the error says so.
    assert exo.token is not None
    real_exchange.configure(revoked=[*real_exchange.config.revoked, exo.token.claims["uti"]])
    with pytest.raises(PowerShellError) as caught:
        exo.invoke("Set-Mailbox", "user0000004", DisplayName="x").wait()
    assert "did not run Set-Mailbox again" in str(caught.value)
    assert real_exchange.events("mutation") == [] and exo.connects == 4
    assert exo.invoke("Get-Mailbox", Identity="user0000004").output[0].DisplayName == "User 0000004 Ünïcødé"


def test_a_throttled_read_is_retried(real_exchange: RealExchange) -> None:
    real_exchange.configure(throttle_after=1, throttle_times=2)
    exo = real_exchange.open(retry_backoff=0.01)
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    assert exo.invoke("Get-Mailbox", Identity="user0000002").output  # throttled twice, then works
    assert len(real_exchange.events("cmdlet")) == 4


@pytest.mark.parametrize(
    ("folder", "words"),
    [
        ("none", "is not installed"),
        ("old", "is older than 3.1.0 (installed: 2.0.5)"),
        ("broken", "could not be loaded"),
    ],
)
def test_a_missing_or_old_module_says_how_to_install_it(
    real_exchange: RealExchange, folder: str, words: str
) -> None:
    real_exchange.use(folder)
    with pytest.raises(ExchangeModuleError) as caught:
        real_exchange.open().open()
    assert words in str(caught.value)
    assert "Install-Module ExchangeOnlineManagement -MinimumVersion 3.1.0" in (caught.value.action or "")


class _ExpiredTokens:
    """A token provider that hands out an already expired token (a stopped clock, a stale cache)."""

    def __init__(self, real_exchange: RealExchange) -> None:
        self.idp = real_exchange.idp

    def get_token(self) -> AccessToken:
        raw = self.idp.issue_token(self.idp.app, lifetime=-60)
        claims: dict[str, Any] = jwt.decode(raw, options={"verify_signature": False})
        return AccessToken(raw, expires_on=float(claims["exp"]), claims=claims)

    def refresh(self, stale: AccessToken | None = None) -> AccessToken:
        return self.get_token()


# (what is wrong, how to set it up, words of the fix pswrap gives)
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "no consent": ({"roles": ()}, "grant admin consent"),
    "no ManageAsApp": (
        {"roles": ("full_access_as_app",)},
        "has the roles full_access_as_app but not Exchange.ManageAsApp",
    ),
    "wrong organization": (
        {"organization": "fabrikam.onmicrosoft.com"},
        "'fabrikam.onmicrosoft.com' is not the tenant",
    ),
    "wrong audience": (
        {"scope": "https://graph.microsoft.com/.default"},
        "not Exchange Online (https://outlook.office365.com)",
    ),
    "expired": ({"expired": True}, "the token had expired"),
    "unsupported role": ({"rbac": "unsupported"}, "Exchange Administrator role"),
}


def _refuse(real_exchange: RealExchange, setup: dict[str, Any], transport: str) -> Any:
    options: dict[str, Any] = {"transport": transport}
    settings_overrides = {k: v for k, v in setup.items() if k in ("organization", "scope")}
    if "roles" in setup:
        real_exchange.idp.app.roles = setup["roles"]
        clear_token_providers()
    if "rbac" in setup:
        real_exchange.configure(rbac=setup["rbac"])
    if setup.get("expired"):
        options["provider"] = _ExpiredTokens(real_exchange)
    exo = real_exchange.open(real_exchange.settings(**settings_overrides), **options)
    with pytest.raises(ExchangeConnectError) as caught:
        exo.invoke("Get-AcceptedDomain").wait()
    return caught.value


@pytest.mark.parametrize("reason", list(REFUSALS))
def test_each_refused_connect_names_its_fix(real_exchange: RealExchange, reason: str) -> None:
    setup, fix = REFUSALS[reason]
    error = _refuse(real_exchange, setup, "local")
    assert fix in str(error)
    record = error.record
    assert record is not None and not record.activity and record.category == "OperationStopped"
    assert record.error_id == record.message  # the module's rethrown exception: its id is its text
    assert real_exchange.connects() == 0


def test_no_exchange_role_connects_and_the_cmdlet_names_the_role(real_exchange: RealExchange) -> None:
    real_exchange.configure(rbac="none")
    exo = real_exchange.open()
    exo.open()
    with pytest.raises(PowerShellError) as caught:
        exo.invoke("Get-Mailbox").wait()
    assert "generated no Get-Mailbox" in str(caught.value) and "Exchange Administrator role" in str(
        caught.value
    )
    assert caught.value.record.error_id == "CommandNotFoundException"


def test_oneshot_connects_runs_and_disconnects_in_each_process(real_exchange: RealExchange) -> None:
    exo = real_exchange.open(transport="oneshot")
    mailboxes = exo.invoke("Get-Mailbox", ResultSize="Unlimited").output
    for index, mailbox in enumerate(mailboxes):
        _same_as_the_data(mailbox, index)
    with pytest.raises(PowerShellError) as caught:  # the cmdlet failed, not the connect
        exo.invoke("Get-Mailbox", Identity="nobody").wait()
    assert not isinstance(caught.value, ExchangeConnectError) and "couldn't be found" in str(caught.value)
    assert real_exchange.connects() == 2
    assert [e["was_connected"] for e in real_exchange.events("disconnect")] == [True, True]
    assert len({e["pid"] for e in real_exchange.events("connect")}) == 2


@pytest.mark.parametrize("reason", ["no ManageAsApp", "unsupported role"])
def test_oneshot_refused_connect_names_its_fix(real_exchange: RealExchange, reason: str) -> None:
    setup, fix = REFUSALS[reason]
    assert fix in str(_refuse(real_exchange, setup, "oneshot"))


def test_oneshot_module_missing(real_exchange: RealExchange) -> None:
    real_exchange.use("none")
    with pytest.raises(ExchangeModuleError) as caught:
        real_exchange.open(transport="oneshot").invoke("Get-Mailbox").wait()
    assert "not installed" in str(caught.value)


@pytest.fixture
def cli_environment(
    real_exchange: RealExchange, idp_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> RealExchange:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(real_exchange.journal.parent / "no-config"))
    return real_exchange


def test_pswrap_run_and_doctor(cli_environment: RealExchange) -> None:
    pwsh = cli_environment.pwsh
    ran = CliRunner().invoke(
        main, ["run", "Get-Mailbox", "-ResultSize", "3", "--format", "json", "--pwsh", pwsh]
    )
    assert ran.exit_code == 0, ran.output
    assert [m["PrimarySmtpAddress"] for m in json.loads(ran.stdout)] == [
        f"{xd.alias(i)}@contoso.onmicrosoft.com" for i in range(3)
    ]
    doctor = CliRunner().invoke(main, ["doctor", "--pwsh", pwsh])
    lines = {
        line.split(":", 1)[0].split()[-1]: line
        for line in doctor.stdout.splitlines()
        if not line.startswith(" ")
    }
    assert doctor.exit_code == 0, doctor.stdout
    assert set(lines) == {"settings", "token", "pwsh", "module", "connect"}
    assert all(line.startswith("ok") for line in lines.values()), doctor.stdout
    assert "ExchangeOnlineManagement 3.7.2" in lines["module"]
    assert "contoso.onmicrosoft.com" in lines["connect"]
