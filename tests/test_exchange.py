"""ExchangeOnline end to end: the identity-provider stand-in issues tokens, the pwsh stand-in plays the
ExchangeOnlineManagement module (validating the JWT), pswrap connects once and stays connected."""

from __future__ import annotations

import logging
import os
import time

import pytest

from pswrap import ConfigError, CredentialRejectedError, PowerShellError, PSObject
from pswrap.auth import clear_token_providers
from pswrap.errors import ExchangeConnectError, ExchangeModuleError
from pswrap.exchange import ExchangeOnline, _close_open_sessions
from tests.fixtures.exchange import ExchangeStandin


def test_a_hundred_cmdlets_take_one_token_and_one_connect(exchange_standin: ExchangeStandin) -> None:
    exo = exchange_standin.open()
    seen = 0
    for index in range(100):
        name = f"user{index % 9 + 1:07d}"
        (mailbox,) = exo.invoke("Get-Mailbox", Identity=name)
        assert mailbox.Name == name and mailbox.is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
        seen += 1
    assert seen == 100
    assert exchange_standin.idp.token_requests == 1
    assert exchange_standin.connects() == 1 and exo.connects == 1
    assert len(exchange_standin.pwsh.processes()) == 1


def test_objects_streams_and_switches_come_back_as_through_powershell(
    exchange_standin: ExchangeStandin,
) -> None:
    exo = exchange_standin.open()
    result = exo.invoke("Get-Mailbox", ResultSize=2)
    mailboxes = list(result)
    assert [m.PrimarySmtpAddress for m in mailboxes] == [
        "user0000000@contoso.onmicrosoft.com",
        "user0000001@contoso.onmicrosoft.com",
    ]
    first = mailboxes[0]
    assert isinstance(first, PSObject) and str(first.RecipientTypeDetails) == "UserMailbox"
    assert first.WhenCreated.year == 2021 and first.EmailAddresses[0].startswith("SMTP:")
    assert [w.message for w in result.warnings] == [
        "There are more results available than are currently displayed. To view them, increase the value for "
        "the ResultSize parameter."
    ]
    exo.invoke("Set-Mailbox", "user0000003", HiddenFromAddressListsEnabled=True, DisplayName="Renamed").wait()
    (changed,) = exo.invoke("Get-Mailbox", Identity="user0000003")
    assert changed.HiddenFromAddressListsEnabled is True and changed.DisplayName == "Renamed"
    assert [e["changes"] for e in exchange_standin.events("mutation")] == [
        ["DisplayName", "HiddenFromAddressListsEnabled"]
    ]
    assert len(exo.invoke("Get-Mailbox", ResultSize="Unlimited").output) == 12
    assert next(d.DomainName for d in exo.invoke("Get-AcceptedDomain")) == "contoso.onmicrosoft.com"


def test_a_missing_mailbox_raises_with_exchanges_error(exchange_standin: ExchangeStandin) -> None:
    exo = exchange_standin.open()
    with pytest.raises(PowerShellError) as caught:
        exo.invoke("Get-Mailbox", Identity="nobody").wait()
    assert "couldn't be found" in caught.value.record.message
    assert (
        caught.value.record.exception_type
        == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    )
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output  # the session still works


def test_a_token_inside_the_refresh_margin_is_replaced_between_calls(
    exchange_standin: ExchangeStandin,
) -> None:
    idp = exchange_standin.idp
    # The first token leaves the 300 s margin after 8 s (it is had before pwsh starts, which takes
    # a few seconds on a busy machine).
    idp.app.token_lifetime = 300 + 8
    exo = exchange_standin.open(exchange_standin.settings(refresh_margin=300))
    exo.open()
    idp.app.token_lifetime = 3599  # the next one is long-lived
    calls = 0
    deadline = time.monotonic() + 40
    while exo.connects < 2 and time.monotonic() < deadline:
        assert exo.invoke("Get-Mailbox", Identity="user0000001").output
        calls += 1
        time.sleep(0.25)
    for _ in range(5):
        assert exo.invoke("Get-Recipient", Identity="user0000002").output
    assert exo.connects == 2 and exchange_standin.connects() == 2  # exactly one reconnect
    assert idp.token_requests == 2
    assert calls >= 1 and len(exchange_standin.pwsh.processes()) == 1


def test_a_token_the_service_rejects_is_replaced_and_a_read_runs_again(
    exchange_standin: ExchangeStandin,
) -> None:
    # The service's clock runs ahead: it takes tokens for expired 6 s after they were issued, while
    # pswrap (margin 0) still thinks they are good. Only the service's 401 tells.
    exchange_standin.configure(clock_skew=3599 - 6)
    exo = exchange_standin.open(exchange_standin.settings(refresh_margin=0))
    exo.open()
    issued = time.time()
    time.sleep(max(0.0, issued + 6.5 - time.time()))
    assert [m.Name for m in exo.invoke("Get-Mailbox", Identity="user0000004")] == ["user0000004"]
    assert exo.connects == 2
    rejected = [e for e in exchange_standin.events("cmdlet") if e["name"] == "Get-Mailbox"]
    assert len(rejected) == 2  # the failed attempt and the one that worked
    # A mutating cmdlet is not run again: the error says so.
    time.sleep(6.5)  # until the service takes the new token for expired too
    with pytest.raises(PowerShellError) as caught:
        exo.invoke("Set-Mailbox", "user0000004", DisplayName="x").wait()
    assert "did not run Set-Mailbox again" in str(caught.value)
    assert exchange_standin.events("mutation") == []
    assert exo.invoke("Get-Mailbox", Identity="user0000004").output[0].DisplayName == "User 0000004 Ünïcødé"


def test_a_throttled_read_is_retried_and_a_throttled_write_is_not(exchange_standin: ExchangeStandin) -> None:
    exchange_standin.configure(throttle_after=1, throttle_times=2)
    exo = exchange_standin.open(retry_backoff=0.01)
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output  # call 1
    assert exo.invoke("Get-Mailbox", Identity="user0000002").output  # calls 2 and 3 throttled, 4 works
    assert len(exchange_standin.events("cmdlet")) == 4
    exchange_standin.configure(throttle_after=0, throttle_times=5)
    fresh = exchange_standin.open(retry_backoff=0.01)
    with pytest.raises(PowerShellError) as caught:
        fresh.invoke("Set-Mailbox", "user0000001", DisplayName="x").wait()
    assert "Set-Mailbox is not a read, so pswrap did not retry it" in str(caught.value)
    assert exchange_standin.events("mutation") == []


def test_secrets_never_reach_argv_environment_scripts_or_logs(
    exchange_standin: ExchangeStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = exchange_standin.idp.app.secret
    exo = exchange_standin.open()
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    token = exo.token
    assert token is not None
    raw_token = token.token.reveal()
    exo.close()
    processes = exchange_standin.pwsh.processes()
    assert processes
    for process in processes:
        for canary in (secret, raw_token):
            assert canary not in " ".join(process.argv)
            assert canary not in str(process.env)
            assert all(canary not in script for script in process.scripts)
    assert secret not in caplog.text and raw_token not in caplog.text
    assert raw_token not in repr(exo) and raw_token not in repr(token)


def test_close_disconnects_and_ends_powershell(exchange_standin: ExchangeStandin) -> None:
    with exchange_standin.open() as exo:
        assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    assert [e["was_connected"] for e in exchange_standin.events("disconnect")] == [True]
    assert not exo.session.healthy
    with pytest.raises(Exception, match="closed"):
        exo.invoke("Get-Mailbox")


def test_sessions_still_open_at_exit_are_closed(exchange_standin: ExchangeStandin) -> None:
    exo = exchange_standin.open()
    exo.open()
    _close_open_sessions()
    assert exchange_standin.events("disconnect") and not exo.session.healthy


def test_a_crashed_powershell_is_replaced_and_connected_again(exchange_standin: ExchangeStandin) -> None:
    exchange_standin.configure(faults={"exit_after_objects": 3, "processes": [1], "stderr": "pwsh fell over"})
    exo = exchange_standin.open()
    with pytest.raises(Exception, match="pwsh fell over") as caught:
        list(exo.invoke("Get-Mailbox", ResultSize="Unlimited"))
    assert len(caught.value.partial.output) == 3  # type: ignore[attr-defined]
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    assert exchange_standin.connects() == 2 and len(exchange_standin.pwsh.processes()) == 2


def test_oneshot_connects_in_each_process(exchange_standin: ExchangeStandin) -> None:
    exo = exchange_standin.open(transport="oneshot")
    assert [m.Name for m in exo.invoke("Get-Mailbox", ResultSize=2)] == ["user0000000", "user0000001"]
    assert exo.invoke("Get-Mailbox", Identity="user0000002").output[0].Name == "user0000002"
    assert exchange_standin.connects() == 2 and len(exchange_standin.pwsh.processes()) == 2
    assert [e["was_connected"] for e in exchange_standin.events("disconnect")] == [True, True]
    token = exo.token
    assert token is not None
    for process in exchange_standin.pwsh.processes():
        assert token.token.reveal() not in " ".join(process.argv) + str(process.env)


@pytest.mark.parametrize("transport", ["local", "oneshot"])
@pytest.mark.parametrize(("module", "words"), [("missing", "not installed"), ("old", "older than 3.1.0")])
def test_a_missing_or_old_module_says_how_to_install_it(
    exchange_standin: ExchangeStandin, module: str, words: str, transport: str
) -> None:
    """One-shot runs the connect and the cmdlet in one script: the import is told by its line there."""
    exchange_standin.configure(module=module)
    with pytest.raises(ExchangeModuleError) as caught:
        exchange_standin.open(transport=transport).invoke("Get-Mailbox").wait()
    assert words in str(caught.value)
    record = caught.value.record  # where it failed, as real pwsh tells it: the script stack trace
    assert record is not None and (record.script_stack_trace or "").startswith(
        "at <ScriptBlock>, <No file>: line "
    )
    assert "Install-Module ExchangeOnlineManagement -MinimumVersion 3.1.0" in str(caught.value)


def test_a_token_without_the_exchange_role_is_named(exchange_standin: ExchangeStandin) -> None:
    exchange_standin.idp.app.roles = ()
    with pytest.raises(ExchangeConnectError) as caught:
        exchange_standin.open().open()
    assert "admin consent" in str(caught.value) and "Exchange.ManageAsApp" in str(caught.value)
    record = caught.value.record
    assert record is not None  # the real module's rethrown exception, not a cmdlet error
    assert (record.message, record.error_id, record.category) == (
        "UnAuthorized",
        "UnAuthorized",
        "OperationStopped",
    )
    assert not record.activity and record.exception_type == "System.UnauthorizedAccessException"


@pytest.mark.parametrize("transport", ["local", "oneshot"])
def test_a_refused_connect_is_told_from_a_failing_cmdlet_by_where_it_failed(
    exchange_standin: ExchangeStandin, transport: str
) -> None:
    exo = exchange_standin.open(transport=transport)
    with pytest.raises(PowerShellError) as failed:  # a cmdlet's own error, after connecting
        exo.invoke("Get-Mailbox", Identity="nobody").wait()
    assert not isinstance(failed.value, ExchangeConnectError)
    exchange_standin.idp.app.roles = ("full_access_as_app",)
    clear_token_providers()  # no cached token: the next one has the new roles
    refused = exchange_standin.open(transport=transport)
    with pytest.raises(ExchangeConnectError) as caught:
        refused.invoke("Get-Mailbox", Identity="user0000001").wait()
    assert "has the roles full_access_as_app but not Exchange.ManageAsApp" in str(caught.value)


def test_a_wrong_organization_is_named(exchange_standin: ExchangeStandin) -> None:
    settings = exchange_standin.settings(organization="fabrikam.onmicrosoft.com")
    with pytest.raises(ExchangeConnectError) as caught:
        exchange_standin.open(settings).open()
    assert "'fabrikam.onmicrosoft.com' is not the tenant 'contoso.onmicrosoft.com'" in str(caught.value)


def test_no_exchange_role_connects_and_then_names_the_missing_role(exchange_standin: ExchangeStandin) -> None:
    exchange_standin.configure(rbac=False)
    exo = exchange_standin.open()
    exo.open()  # connecting works: the real module finds out only when it generates the cmdlets
    with pytest.raises(PowerShellError) as caught:
        exo.invoke("Get-Mailbox").wait()
    assert "generated no Get-Mailbox" in str(caught.value) and "Exchange Administrator role" in str(
        caught.value
    )
    assert caught.value.record.error_id == "CommandNotFoundException"


def test_an_unsupported_directory_role_is_explained(exchange_standin: ExchangeStandin) -> None:
    exchange_standin.configure(rbac="unsupported")
    with pytest.raises(ExchangeConnectError) as caught:
        exchange_standin.open().open()
    assert "isn't supported in this scenario" in str(caught.value)
    assert "Exchange Administrator role" in (caught.value.action or "")


def test_no_organization_is_a_configuration_error(exchange_standin: ExchangeStandin) -> None:
    settings = exchange_standin.settings(tenant=exchange_standin.idp.tenant.id)
    with pytest.raises(Exception, match="no Exchange organization"):
        ExchangeOnline(settings)


def test_from_env_with_nothing_set_names_everything_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PSWRAP_"):
            monkeypatch.delenv(name)
    with pytest.raises(ConfigError) as caught:
        ExchangeOnline.from_env()
    message = str(caught.value)
    for name in ("PSWRAP_TENANT", "PSWRAP_CLIENT_ID", "PSWRAP_CLIENT_SECRET", "PSWRAP_ORGANIZATION"):
        assert name in message


@pytest.mark.parametrize("transport", ["local", "oneshot"])
def test_a_rejected_credential_starts_no_pwsh(exchange_standin: ExchangeStandin, transport: str) -> None:
    exo = exchange_standin.open(
        exchange_standin.settings(client_secret="wrong-secret-value"), transport=transport
    )
    with pytest.raises(CredentialRejectedError):
        exo.invoke("Get-Mailbox").wait()
    with pytest.raises(CredentialRejectedError):
        exo.open()
    assert exchange_standin.pwsh.processes() == []
