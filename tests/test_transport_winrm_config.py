"""Configuring the WinRM transport: arguments, profiles with a [winrm] table, PSWRAP_WINRM_* variables."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pswrap import ConfigError, Secret, Session, WinRMTransport
from pswrap.config import Settings
from pswrap.session import get_transport
from pswrap.transports.winrm import WINRM_VARIABLES, exchange_transport

PROFILE = """
default_profile = "contoso"

[profiles.contoso]
tenant = "contoso.onmicrosoft.com"
client_id = "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11"
client_secret = "env:CONTOSO_SECRET"
transport = "winrm"

[profiles.contoso.winrm]
host = "runner01.contoso.com"
auth = "ntlm"
username = "CONTOSO\\\\svc-pswrap"
password = "file:secrets/runner-password"
ca_bundle = "certs/runner-ca.pem"
configuration = "PowerShell.7"
operation_timeout = 30
connection_timeout = 10
pool_size = 2
idle_check = 120
"""


def write_profile(tmp_path: Path, text: str = PROFILE) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "runner-password").write_text("Runner-Pa55word\n", encoding="utf-8")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "runner-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_defaults_are_https_on_5986_with_certificate_validation() -> None:
    transport = WinRMTransport("runner01.contoso.com", username="svc", password="pw")
    assert (transport.scheme, transport.port, transport.path) == ("https", 5986, "wsman")
    assert transport.url == "https://runner01.contoso.com:5986/wsman"
    assert transport.verify and transport.ca_bundle is None and not transport.encrypted  # TLS protects it
    assert (transport.auth, transport.configuration, transport.pool_size) == (
        "negotiate",
        "Microsoft.PowerShell",
        1,
    )
    assert transport.resource_uri == "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
    assert isinstance(transport.password, Secret) and transport.persistent and transport.name == "winrm"


def test_http_means_port_5985_and_message_encryption() -> None:
    transport = WinRMTransport("runner01", scheme="http", auth="ntlm", username="svc", password="pw")
    assert transport.url == "http://runner01:5985/wsman" and transport.encrypted


def test_a_url_is_accepted_as_the_host() -> None:
    transport = WinRMTransport("http://10.0.0.5:8080/custom/wsman", auth="ntlm", username="u", password="p")
    assert (transport.scheme, transport.host, transport.port, transport.path) == (
        "http",
        "10.0.0.5",
        8080,
        "custom/wsman",
    )
    assert (
        WinRMTransport("https://[fe80::1]/wsman", username="u", password="p").url
        == "https://[fe80::1]:5986/wsman"
    )


def test_the_password_never_shows() -> None:
    transport = WinRMTransport("runner01", username="svc", password="Runner-Pa55word")
    assert "Runner-Pa55word" not in repr(transport) and "Runner-Pa55word" not in str(vars(transport))
    assert repr(transport) == (
        "WinRMTransport('https://runner01:5986/wsman', auth='negotiate', username='svc', "
        "configuration='Microsoft.PowerShell', pool_size=1)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": ""}, "needs a host name"),
        ({"host": "a b"}, "is not a host name"),
        ({"host": "ftp://x"}, "is not a host name or an http"),
        ({"port": 0}, "is not a TCP port"),
        ({"scheme": "ftp"}, "scheme 'ftp' is not 'https' or 'http'"),
        ({"auth": "digest"}, "auth 'digest' is not one of negotiate, ntlm, kerberos"),
        ({"encryption": "maybe"}, "encryption 'maybe' is not one of auto, always, never"),
        ({"pool_size": 0}, "pool_size must be a whole number of at least 1"),
        ({"operation_timeout": 0}, "operation_timeout must be positive"),
        ({"idle_check": -1}, "idle_check must be zero or positive"),
        ({"configuration": "bad/name"}, "is not a session configuration name"),
        ({"auth": "ntlm", "password": None}, "auth 'ntlm' needs a username and a password"),
        ({"username": None}, "a password is set but no username is"),
        ({"verify": False, "ca_bundle": __file__}, "either ca_bundle"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle '/nonexistent/ca.pem' is not a file"),
        ({"scheme": "http", "auth": "basic"}, "refusing plain HTTP to runner01: basic authentication cannot"),
        (
            {"scheme": "http", "encryption": "never"},
            "refusing plain HTTP .* encryption='never' was asked for",
        ),
        ({"auth": "basic", "encryption": "always"}, "basic authentication cannot encrypt messages"),
        ({"auth": "certificate", "scheme": "http"}, "certificate authentication needs HTTPS"),
        (
            {"auth": "certificate", "username": None, "password": None},
            "needs certificate and certificate_key",
        ),
        ({"auth": "credssp"}, "needs the requests-credssp package"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"host": "runner01", "username": "svc", "password": "pw", **options}
    with pytest.raises(ConfigError, match=message):
        WinRMTransport(**arguments)


def test_plain_http_only_when_explicitly_allowed() -> None:
    transport = WinRMTransport(
        "runner01", scheme="http", auth="basic", username="svc", password="pw", allow_unencrypted=True
    )
    assert not transport.encrypted


def test_a_profile_with_a_winrm_table(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    settings = Settings.load(config_path=path, environ={"CONTOSO_SECRET": "s3cret-value"})
    assert settings.transport == "winrm"
    transport = WinRMTransport.from_settings(settings, environ={})
    assert transport.url == "https://runner01.contoso.com:5986/wsman"
    assert (transport.auth, transport.username) == ("ntlm", "CONTOSO\\svc-pswrap")
    assert transport.password is not None and transport.password.reveal() == "Runner-Pa55word"
    assert transport.ca_bundle == tmp_path / "certs" / "runner-ca.pem"  # relative to the config file
    assert (transport.configuration, transport.operation_timeout, transport.connection_timeout) == (
        "PowerShell.7",
        30.0,
        10.0,
    )
    assert (transport.pool_size, transport.idle_check) == (2, 120.0)
    overridden = WinRMTransport.from_settings(settings, environ={}, host="runner02", pool_size=1)
    assert overridden.host == "runner02" and overridden.pool_size == 1


def test_the_table_wins_over_the_environment_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.load(config_path=write_profile(tmp_path), environ={"CONTOSO_SECRET": "s3cret-value"})
    with caplog.at_level(logging.WARNING):
        transport = WinRMTransport.from_settings(settings, environ={"PSWRAP_WINRM_HOST": "elsewhere"})
    assert transport.host == "runner01.contoso.com"
    assert "PSWRAP_WINRM_HOST in the environment are ignored" in caplog.text


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('configuration = "PowerShell.7"', 'hots = "x"', "unknown key 'hots'; did you mean 'host'"),
        ('configuration = "PowerShell.7"', 'port = "5986"', "port must be a whole number"),
        ('configuration = "PowerShell.7"', 'verify = "yes"', "verify must be true or false"),
        (
            "operation_timeout = 30",
            'operation_timeout = "long"',
            "operation_timeout must be a number of seconds",
        ),
        ('password = "file:secrets/runner-password"', "password = 5", "password must be a string"),
    ],
)
def test_bad_table_entries_are_named_with_the_profile(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    settings = Settings.load(
        config_path=write_profile(tmp_path, PROFILE.replace(old, new)), environ={"CONTOSO_SECRET": "x"}
    )
    with pytest.raises(ConfigError, match=message) as caught:
        WinRMTransport.from_settings(settings, environ={})
    assert "profile 'contoso'" in str(caught.value)


def test_a_password_reference_to_a_missing_variable_is_named(tmp_path: Path) -> None:
    text = PROFILE.replace('"file:secrets/runner-password"', '"env:RUNNER_PASSWORD"')
    settings = Settings.load(config_path=write_profile(tmp_path, text), environ={"CONTOSO_SECRET": "x"})
    with pytest.raises(ConfigError, match=r"password in .*RUNNER_PASSWORD, which is not set"):
        WinRMTransport.from_settings(settings, environ={})


def test_environment_variables(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("ca", encoding="utf-8")
    environ = {
        "PSWRAP_WINRM_HOST": "runner03",
        "PSWRAP_WINRM_PORT": "15986",
        "PSWRAP_WINRM_AUTH": "ntlm",
        "PSWRAP_WINRM_USERNAME": "svc",
        "PSWRAP_WINRM_PASSWORD": "Env-Pa55word\n",
        "PSWRAP_WINRM_CA_BUNDLE": str(ca),
        "PSWRAP_WINRM_POOL_SIZE": "3",
        "PSWRAP_WINRM_OPERATION_TIMEOUT": "12.5",
        "PSWRAP_WINRM_VERIFY": "true",
        "PSWRAP_WINRM_CONFIGURATON": "typo",
    }
    with caplog.at_level(logging.WARNING):
        transport = WinRMTransport.from_settings(Settings(), environ=environ)
    assert (transport.host, transport.port, transport.pool_size, transport.operation_timeout) == (
        "runner03",
        15986,
        3,
        12.5,
    )
    assert transport.password is not None and transport.password.reveal() == "Env-Pa55word"
    assert transport.ca_bundle == ca
    assert "did you mean PSWRAP_WINRM_CONFIGURATION" in caplog.text
    assert set(WINRM_VARIABLES.values()) >= {
        "PSWRAP_WINRM_HOST",
        "PSWRAP_WINRM_PASSWORD",
        "PSWRAP_WINRM_SCHEME",
    }
    with pytest.raises(ConfigError, match="PSWRAP_WINRM_PORT: 'x' is not a whole number"):
        WinRMTransport.from_settings(Settings(), environ={**environ, "PSWRAP_WINRM_PORT": "x"})
    with pytest.raises(ConfigError, match="PSWRAP_WINRM_VERIFY: 'maybe' is not true/false"):
        WinRMTransport.from_settings(Settings(), environ={**environ, "PSWRAP_WINRM_VERIFY": "maybe"})


def test_without_a_host_the_error_says_where_to_put_it() -> None:
    with pytest.raises(
        ConfigError,
        match=r"needs a host: set PSWRAP_WINRM_HOST, or host in the profile's \[profiles\.NAME\.winrm\] table",
    ):
        WinRMTransport.from_settings(Settings(), environ={})


def test_by_name_and_for_exchange() -> None:
    transport = get_transport("winrm", host="runner01", username="svc", password="pw", pool_size=2)
    assert isinstance(transport, WinRMTransport) and transport.pool_size == 2
    session = Session(transport="winrm", host="runner01", username="svc", password="pw")
    assert isinstance(session.transport, WinRMTransport) and repr(session) == "<Session winrm not started>"
    with pytest.raises(ConfigError, match="pwsh does not apply"):
        get_transport("winrm", host="runner01", pwsh="/usr/bin/pwsh")
    with pytest.raises(ConfigError, match="needs host="):
        Session(transport="winrm", username="svc")
    with pytest.raises(ConfigError, match="the local transport has no option 'host'"):
        Session(host="runner01")
    settings = Settings(
        extra={"winrm": {"host": "runner01", "username": "svc", "password": "pw", "pool_size": 4}}
    )
    assert exchange_transport(settings, None, environ={}).pool_size == 1
