"""Secrets in files other users can read are named in a warning: inline WinRM passwords, file: secrets,
private keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pswrap import ConfigError, Settings
from pswrap.auth import TokenProvider
from pswrap.transports.winrm import WinRMTransport

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11"
PASSWORD = "canary-winrm-pw-8c1d"


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def profile(extra: str, secret: str = 'client_secret = "env:CONTOSO_SECRET"') -> str:
    return f'[profiles.p]\ntenant = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n{secret}\n{extra}'


def test_inline_winrm_password_in_a_readable_profile_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", "canary-contoso-secret")
    text = profile(f'[profiles.p.winrm]\nhost = "runner01"\npassword = "{PASSWORD}"\n')
    with caplog.at_level(logging.WARNING):
        Settings.from_profile("p", write(tmp_path / "private.toml", text, 0o600))
    assert "inline" not in caplog.text
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_profile("p", write(tmp_path / "shared.toml", text, 0o644))
    assert "holds winrm.password inline and the file can be read by other users (mode 644)" in caplog.text
    assert PASSWORD not in caplog.text + repr(settings.extra)


@pytest.mark.parametrize(
    ("secret", "name"),
    [('client_secret = "file:secret.txt"', "client_secret"), ("", "winrm")],
)
def test_readable_file_secrets_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str, name: str
) -> None:
    secret_file = write(tmp_path / "secret.txt", "canary-file-secret-0a9b\n", 0o644)
    winrm = (
        '[profiles.p.winrm]\nhost = "runner01"\nusername = "svc"\npassword = "file:secret.txt"\n'
        if name == "winrm"
        else ""
    )
    config = write(
        tmp_path / "config.toml", profile(winrm, secret or 'client_secret = "file:secret.txt"'), 0o600
    )
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_profile("p", config)
        if name == "winrm":
            WinRMTransport.from_settings(settings)
    assert f"{secret_file} holds a secret and can be read by other users (mode 644): chmod 600" in caplog.text
    assert "canary-file-secret" not in caplog.text
    caplog.clear()
    secret_file.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_profile("p", config)
        if name == "winrm":
            WinRMTransport.from_settings(settings)
    assert "can be read by other users" not in caplog.text


def test_readable_private_key_files_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = write(tmp_path / "app.pem", "not really a key", 0o644)
    cert = write(tmp_path / "cert.pem", "certificate", 0o644)
    settings = Settings(tenant=TENANT, client_id=CLIENT_ID, certificate=key)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError, match="not a PFX"):
        TokenProvider(settings).get_token()
    assert caplog.text.count(f"{key} holds a secret and can be read by other users (mode 644)") == 1
    caplog.clear()
    key.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        WinRMTransport(
            "runner01",
            auth="certificate",
            certificate=str(cert),
            certificate_key=str(key),
            ca_bundle=str(cert),
        )
    assert f"{key} holds a secret and can be read by other users (mode 640)" in caplog.text
    assert str(cert) + " holds" not in caplog.text  # a certificate alone is public
