"""Exchange Online over WinRM: the identity-provider stand-in issues the token, the WSMan stand-in's
PowerShell plays the ExchangeOnlineManagement module (validating the JWT), pswrap connects once."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from pswrap import WinRMTransport
from pswrap.cli import main
from pswrap.errors import ConfigError
from tests.fixtures.exchange import EXTENSION, ExchangeStandin
from tests.fixtures.wsman import WSManHost
from tests.standins.powershell.config import StandinConfig
from tests.test_transport_winrm import leaks


@pytest.fixture
def remote_exchange(exchange_standin: ExchangeStandin, wsman_standin: WSManHost) -> Iterator[WSManHost]:
    """The WinRM host's PowerShell has the Exchange module, configured like the local stand-in's."""
    wsman_standin.standin.powershell = StandinConfig(
        extensions=[EXTENSION], switches={"exchange": exchange_standin.switches}
    )
    yield wsman_standin
    for exo in exchange_standin.sessions:  # disconnect while the host still has the module
        exo.close()


def winrm_options(host: WSManHost) -> dict[str, object]:
    options = host.transport_options()
    options.pop("stop_grace")
    return options


def test_fifty_cmdlets_take_one_token_one_shell_and_one_connect(
    exchange_standin: ExchangeStandin, remote_exchange: WSManHost
) -> None:
    exo = exchange_standin.open(transport="winrm", **winrm_options(remote_exchange))
    for index in range(50):
        name = f"user{index % 9 + 1:07d}"
        (mailbox,) = exo.invoke("Get-Mailbox", Identity=name)
        assert mailbox.Name == name and mailbox.is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
    assert exchange_standin.idp.token_requests == 1
    assert exchange_standin.connects() == 1 and exo.connects == 1
    assert remote_exchange.counts["Create"] == 1 and remote_exchange.counts["handshakes"] >= 1
    assert isinstance(exo.session.transport, WinRMTransport) and exo.session.transport.shells_opened == 1
    assert exchange_standin.pwsh.processes() == []  # nothing ran locally
    token = exo.token
    assert token is not None
    assert not leaks(token.token.reveal(), bytes(remote_exchange.received))
    assert not any(token.token.reveal() in script for script in remote_exchange.scripts)


def test_a_shell_lost_between_calls_is_reopened_and_connected_again(
    exchange_standin: ExchangeStandin, remote_exchange: WSManHost
) -> None:
    exo = exchange_standin.open(transport="winrm", **winrm_options(remote_exchange), idle_check=0.0)
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    remote_exchange.kill_shells()
    assert exo.invoke("Get-Mailbox", Identity="user0000002").output  # transparent: a new shell, connected
    assert exchange_standin.connects() == 2 and remote_exchange.counts["Create"] == 2
    assert exchange_standin.idp.token_requests == 1  # the cached token still had time left


def test_an_exchange_session_has_one_runspace(
    exchange_standin: ExchangeStandin, remote_exchange: WSManHost
) -> None:
    with pytest.raises(ConfigError, match="one runspace"):
        exchange_standin.open(transport="winrm", **winrm_options(remote_exchange), pool_size=3)


def test_pswrap_run_over_winrm(
    exchange_standin: ExchangeStandin,
    remote_exchange: WSManHost,
    idp_environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(exchange_standin.journal.parent / "no-config"))
    monkeypatch.setenv("PSWRAP_WINRM_PORT", str(remote_exchange.port))
    monkeypatch.setenv("PSWRAP_WINRM_SCHEME", "http")
    monkeypatch.setenv("PSWRAP_WINRM_AUTH", "ntlm")
    monkeypatch.setenv("PSWRAP_WINRM_USERNAME", "alice")
    monkeypatch.setenv("PSWRAP_WINRM_PASSWORD", remote_exchange.users["alice"])
    result = CliRunner().invoke(
        main,
        [
            "run",
            "Get-Mailbox",
            "-ResultSize",
            "2",
            "--host",
            "127.0.0.1",
            "--format",
            "json",
            "--select",
            "Name",
        ],
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads(result.stdout) == [{"Name": "user0000000"}, {"Name": "user0000001"}]
    assert remote_exchange.counts["Create"] == 1 and exchange_standin.connects() == 1
    assert remote_exchange.users["alice"] not in result.output + result.stderr

    wrong = CliRunner().invoke(main, ["run", "Get-Mailbox", "--host", "127.0.0.1", "--transport", "local"])
    assert (
        wrong.exit_code == 2
        and "--host names a WinRM runner host (or ssh://… for SSH); it does not apply to --transport local"
        in wrong.stderr
    )
