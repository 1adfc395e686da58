"""Exchange Online over SSH: the identity-provider stand-in issues the token, the pwsh stand-in behind
the test sshd's ``standin`` subsystem plays the ExchangeOnlineManagement module (validating the JWT),
pswrap connects once; also the profile's ``[ssh]`` table, ``PSWRAP_SSH_*``, ``pswrap run --host
ssh://…`` and ``pswrap doctor``."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from pswrap import SSHTransport
from pswrap.cli import main
from pswrap.config import Settings
from pswrap.errors import ConfigError
from tests.fixtures.exchange import ExchangeStandin
from tests.fixtures.pwsh import PwshStandin
from tests.fixtures.sshd import SSHOptions
from tests.sshserver import SSHServer, TcpProxy
from tests.test_transport_winrm import leaks

if TYPE_CHECKING:
    from tests.fixtures.idp import ConfiguredIdentityProvider


@pytest.fixture
def ssh_exchange(
    idp: ConfiguredIdentityProvider,
    idp_settings: Callable[..., Settings],
    ssh_standin: PwshStandin,
    tmp_path: Path,
) -> Iterator[ExchangeStandin]:
    """The Exchange module in the pwsh stand-in on the SSH host."""
    standin = ExchangeStandin(idp, ssh_standin, idp_settings, tmp_path / "exchange-journal.jsonl")
    yield standin
    for exo in standin.sessions:
        exo.close()


@pytest.fixture
def proxy(sshd: SSHServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(sshd.port)
    (sshd.dir / f"known_hosts_{proxy.port}").write_text(
        sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} ")
    )
    yield proxy
    proxy.close()


def test_cmdlets_over_ssh_take_one_token_one_connection_and_one_connect(
    ssh_exchange: ExchangeStandin, ssh_options: SSHOptions, sshd: SSHServer, proxy: TcpProxy
) -> None:
    known = sshd.dir / f"known_hosts_{proxy.port}"
    exo = ssh_exchange.open(
        transport="ssh", **ssh_options(subsystem="standin", port=proxy.port, known_hosts=known)
    )
    for index in range(20):
        name = f"user{index % 9 + 1:07d}"
        (mailbox,) = exo.invoke("Get-Mailbox", Identity=name)
        assert mailbox.Name == name and mailbox.is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
    assert ssh_exchange.idp.token_requests == 1
    assert ssh_exchange.connects() == 1 and exo.connects == 1
    transport = exo.session.transport
    assert isinstance(transport, SSHTransport) and transport.connections_opened == 1
    (process,) = ssh_exchange.pwsh.processes()  # the host's pwsh -sshs
    assert process.argv[1:] == ["-sshs", "-NoLogo", "-NoProfile"]
    token = exo.token
    assert token is not None
    secret = token.token.reveal()
    assert not leaks(secret, bytes(proxy.captured))  # SSH encrypted it on the network
    assert not any(secret in script for script in process.scripts)  # a PSRP parameter, never script text
    assert secret not in " ".join(process.argv) and not any(secret in v for v in process.env.values())


def test_a_connection_lost_between_calls_is_reopened_and_connected_again(
    ssh_exchange: ExchangeStandin, ssh_options: SSHOptions
) -> None:
    exo = ssh_exchange.open(transport="ssh", **ssh_options(subsystem="standin"))
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output
    (process,) = ssh_exchange.pwsh.processes()
    os.kill(process.pid, signal.SIGKILL)
    assert exo.invoke("Get-Mailbox", Identity="user0000002").output  # a new connection, connected again
    assert ssh_exchange.connects() == 2 and ssh_exchange.idp.token_requests == 1


def test_an_exchange_session_over_ssh_has_one_runspace(
    ssh_exchange: ExchangeStandin, ssh_options: SSHOptions
) -> None:
    with pytest.raises(ConfigError, match="one runspace"):
        ssh_exchange.open(transport="ssh", **ssh_options(subsystem="standin"), pool_size=3)


def ssh_environment(sshd: SSHServer, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    monkeypatch.setenv("PSWRAP_SSH_KEY_FILE", str(sshd.client_key))
    monkeypatch.setenv("PSWRAP_SSH_KNOWN_HOSTS", str(sshd.dir / "known_hosts"))
    monkeypatch.setenv("PSWRAP_SSH_SUBSYSTEM", "standin")
    monkeypatch.setenv("PSWRAP_SSH_AGENT", "no")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_pswrap_run_with_an_ssh_host(
    ssh_exchange: ExchangeStandin,
    sshd: SSHServer,
    idp_environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(ssh_exchange.journal.parent / "no-config"))
    ssh_environment(sshd, monkeypatch)
    host = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    result = CliRunner().invoke(
        main,
        ["run", "Get-Mailbox", "-ResultSize", "2", "--host", host, "--format", "json", "--select", "Name"],
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads(result.stdout) == [{"Name": "user0000000"}, {"Name": "user0000001"}]
    assert ssh_exchange.connects() == 1 and len(ssh_exchange.pwsh.processes()) == 1

    wrong = CliRunner().invoke(main, ["run", "Get-Mailbox", "--host", host, "--transport", "winrm"])
    assert wrong.exit_code == 2 and "does not apply to --transport winrm" in wrong.stderr


def test_pswrap_doctor_checks_the_connection_host_key_and_subsystem(
    ssh_exchange: ExchangeStandin,
    sshd: SSHServer,
    idp_environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PSWRAP_ORGANIZATION", ssh_exchange.idp.tenant.domain)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    ssh_environment(
        sshd, monkeypatch, PSWRAP_SSH_HOST=f"{sshd.user}@127.0.0.1", PSWRAP_SSH_PORT=str(sshd.port)
    )
    result = CliRunner().invoke(main, ["doctor", "--transport", "ssh"])
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (
        f"ok    ssh: ssh://{sshd.user}@127.0.0.1:{sshd.port}: logged in with publickey (ssh-ed25519"
        in result.stdout
    )
    (key_line,) = [line for line in lines if line.startswith("ok    host key: ")]
    assert sshd.fingerprint() in key_line and "known (" in key_line
    assert "ok    subsystem: 'standin' runs PowerShell 7." in result.stdout
    assert any(line.startswith("ok    module: ExchangeOnlineManagement") for line in lines)
    assert any(line.startswith("ok    connect: connected to") and "via ssh" in line for line in lines)

    monkeypatch.setenv("PSWRAP_SSH_KNOWN_HOSTS", str(tmp_path / "empty"))
    refused = CliRunner().invoke(main, ["doctor", "--transport", "ssh"])
    assert refused.exit_code == 1
    assert (
        "FAIL  host key: the host key of 127.0.0.1" in refused.stdout and sshd.fingerprint() in refused.stdout
    )


def test_a_profiles_ssh_table(sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_KEY_PASSPHRASE", "the passphrase")
    config = tmp_path / "config.toml"
    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "runner"
    key.write_bytes(sshd.client_key.read_bytes())
    config.write_text(
        textwrap.dedent(
            f"""
            [profiles.contoso]
            tenant = "contoso.onmicrosoft.com"
            client_id = "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11"
            client_secret = "x"
            transport = "ssh"

            [profiles.contoso.ssh]
            host = "svc@runner01.contoso.com"
            port = 2222
            key_file = "keys/runner"
            passphrase = "env:RUNNER_KEY_PASSPHRASE"
            known_hosts = ["known_hosts", "/etc/ssh/ssh_known_hosts"]
            host_key_fingerprint = "SHA256:{"A" * 43}"
            proxy_jump = "jump.contoso.com"
            keepalive = 15
            connect_timeout = 10
            """
        )
    )
    monkeypatch.setenv("PSWRAP_SSH_HOST", "ignored.example")
    settings = Settings.load("contoso", config_path=config)
    transport = SSHTransport.from_settings(settings)
    assert (transport.host, transport.port, transport.username) == ("runner01.contoso.com", 2222, "svc")
    assert transport.key_file == key and transport.known_hosts[0] == tmp_path / "known_hosts"
    assert transport.passphrase is not None and transport.passphrase.reveal() == "the passphrase"
    assert "the passphrase" not in repr(transport) and "the passphrase" not in repr(transport.passphrase)
    assert transport.proxy_jump == "jump.contoso.com" and transport.keepalive == 15.0
    assert transport.url == "ssh://svc@runner01.contoso.com:2222"

    config.write_text(config.read_text().replace("keepalive = 15", "keep_alive = 15"))
    with pytest.raises(ConfigError, match="unknown key 'keep_alive'; did you mean 'keepalive'"):
        SSHTransport.from_settings(Settings.load("contoso", config_path=config))


def test_pswrap_ssh_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not used until connecting")
    environ = {
        "PSWRAP_SSH_HOST": "ssh://svc@runner02:2200",
        "PSWRAP_SSH_KEY_FILE": str(key),
        "PSWRAP_SSH_PASSWORD": "pw-canary-9f1\n",
        "PSWRAP_SSH_ACCEPT_NEW_HOST_KEY": "yes",
        "PSWRAP_SSH_POOL_SIZE": "2",
        "PSWRAP_SSH_SUBSYSTEM": "pwsh7",
    }
    settings = Settings(
        tenant="contoso.onmicrosoft.com", client_id="5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11", client_secret="y"
    )
    transport = SSHTransport.from_settings(settings, environ=environ)
    assert (transport.host, transport.port, transport.username, transport.pool_size) == (
        "runner02",
        2200,
        "svc",
        2,
    )
    assert transport.accept_new_host_key and transport.subsystem == "pwsh7"
    assert transport.password is not None and transport.password.reveal() == "pw-canary-9f1"
    assert "pw-canary" not in repr(transport)
    with pytest.raises(ConfigError, match="PSWRAP_SSH_POOL_SIZE: 'many' is not a whole number"):
        SSHTransport.from_settings(settings, environ={**environ, "PSWRAP_SSH_POOL_SIZE": "many"})
    with pytest.raises(ConfigError, match="the ssh transport needs a host: set PSWRAP_SSH_HOST"):
        SSHTransport.from_settings(settings, environ={})
