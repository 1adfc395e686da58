"""``pswrap run`` and ``pswrap doctor`` end to end against the identity-provider and pwsh stand-ins."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pswrap.cli import main
from pswrap.cli.run import parse_parameters
from tests.fixtures.exchange import ExchangeStandin


@pytest.fixture
def environment(
    exchange_standin: ExchangeStandin, idp_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ExchangeStandin:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(exchange_standin.journal.parent / "no-config"))
    return exchange_standin


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_powershell_style_parameters() -> None:
    assert parse_parameters(["-ResultSize", "10", "-Identity", "bob"]) == (
        [],
        {"ResultSize": 10, "Identity": "bob"},
    )
    assert parse_parameters(["-Force", "-Confirm:$false", "-Name:-x"]) == (
        [],
        {"Force": True, "Confirm": False, "Name": "-x"},
    )
    assert parse_parameters(["bob", "-Types", "UserMailbox,SharedMailbox", "-Offset", "-5"]) == (
        ["bob"],
        {"Types": ["UserMailbox", "SharedMailbox"], "Offset": -5},
    )
    assert parse_parameters(["-Value", "$null", "-Text", "'a,b'", "-List", "'x,y',z"]) == (
        [],
        {"Value": None, "Text": "a,b", "List": ["x,y", "z"]},
    )


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "table"])
def test_run_prints_mailboxes_in_each_format(environment: ExchangeStandin, fmt: str) -> None:
    result = invoke(
        "run", "Get-Mailbox", "-ResultSize", "3", "--format", fmt, "--select", "Name,PrimarySmtpAddress"
    )
    assert result.exit_code == 0, result.output + result.stderr
    names = ["user0000000", "user0000001", "user0000002"]
    if fmt == "json":
        assert [m["Name"] for m in json.loads(result.stdout)] == names
    elif fmt == "ndjson":
        assert [json.loads(line)["Name"] for line in result.stdout.splitlines()] == names
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["Name", "PrimarySmtpAddress"] and [r[0] for r in rows[1:]] == names
    else:
        assert all(name in result.stdout for name in names) and "PrimarySmtpAddress" in result.stdout
    assert "WARNING: There are more results available" in result.stderr
    assert environment.idp.app.secret not in result.output + result.stderr


def test_run_a_switch_and_a_boolean(environment: ExchangeStandin) -> None:
    done = invoke("run", "Set-Mailbox", "-Identity", "user0000005", "-HiddenFromAddressListsEnabled:$true")
    assert done.exit_code == 0, done.stderr
    assert [e["changes"] for e in environment.events("mutation")] == [["HiddenFromAddressListsEnabled"]]


def test_run_exits_1_with_the_error_on_stderr(environment: ExchangeStandin) -> None:
    failed = invoke("run", "Get-Mailbox", "-Identity", "nobody", "--format", "ndjson")
    assert failed.exit_code == 1
    assert (
        "ERROR: The operation couldn't be performed because object 'nobody' couldn't be found"
        in failed.stderr
    )


def test_run_explains_a_connection_problem(environment: ExchangeStandin) -> None:
    environment.configure(module="missing")
    failed = invoke("run", "Get-Mailbox")
    assert failed.exit_code == 2 and "Install-Module ExchangeOnlineManagement" in failed.stderr  # install it


def test_run_without_settings_is_a_usage_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (
        "PSWRAP_TENANT",
        "PSWRAP_CLIENT_ID",
        "PSWRAP_CLIENT_SECRET",
        "PSWRAP_PROFILE",
        "PSWRAP_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    failed = invoke("run", "Get-Mailbox")
    assert failed.exit_code == 2 and "no pswrap settings" in failed.stderr


def test_run_with_the_oneshot_transport(environment: ExchangeStandin) -> None:
    result = invoke(
        "run", "Get-Mailbox", "-Identity", "user0000001", "--transport", "oneshot", "--format", "ndjson"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["Name"] == "user0000001"


def lines(result: Result) -> dict[str, str]:
    return {
        line.split()[1].rstrip(":"): line for line in result.stdout.splitlines() if not line.startswith(" ")
    }


def test_doctor_passes_when_everything_works(environment: ExchangeStandin) -> None:
    result = invoke("doctor")
    assert result.exit_code == 0, result.stdout
    found = lines(result)
    assert set(found) == {"settings", "token", "pwsh", "module", "connect"}
    assert all(line.startswith("ok") for line in found.values())
    assert "ExchangeOnlineManagement 3.7.2" in found["module"]
    assert "connected to contoso.onmicrosoft.com" in found["connect"]


def test_doctor_names_a_missing_module_and_the_fix(environment: ExchangeStandin) -> None:
    environment.configure(module="old")
    result = invoke("doctor")
    assert result.exit_code == 1
    assert lines(result)["module"].startswith("FAIL") and "older than 3.1.0" in result.stdout
    assert 'fix: pwsh -NoProfile -Command "Install-Module ExchangeOnlineManagement' in result.stdout
    assert lines(result)["connect"].startswith("skip")


def test_doctor_names_a_token_without_the_role(environment: ExchangeStandin) -> None:
    environment.idp.app.roles = ()
    result = invoke("doctor")
    assert result.exit_code == 1 and lines(result)["token"].startswith("FAIL")
    assert "Exchange.ManageAsApp" in result.stdout


def test_doctor_names_a_missing_pwsh(environment: ExchangeStandin) -> None:
    result = invoke("doctor", "--pwsh", "/nonexistent/pwsh")
    assert result.exit_code == 1 and lines(result)["pwsh"].startswith("FAIL")
    assert "install PowerShell 7" in result.stdout


def test_doctor_names_a_failed_connect(environment: ExchangeStandin) -> None:
    environment.configure(rbac=False)
    result = invoke("doctor")
    assert result.exit_code == 1 and lines(result)["connect"].startswith("FAIL")
    assert "Exchange Administrator role" in result.stdout


def test_doctor_without_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (
        "PSWRAP_TENANT",
        "PSWRAP_CLIENT_ID",
        "PSWRAP_CLIENT_SECRET",
        "PSWRAP_PROFILE",
        "PSWRAP_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = invoke("doctor")
    assert result.exit_code == 1 and lines(result)["settings"].startswith("FAIL")
    assert lines(result)["token"].startswith("skip")


def test_run_through_the_rest_transport_from_a_profile(
    adminapi: Any, idp: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("PSWRAP_TENANT", "PSWRAP_CLIENT_ID", "PSWRAP_CLIENT_SECRET", "PSWRAP_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONTOSO_SECRET", idp.app.secret)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[profiles.contoso]
tenant = "{idp.tenant.domain}"
client_id = "{idp.app.client_id}"
client_secret = "env:CONTOSO_SECRET"
authority = "{idp.url}"
ca_bundle = "{idp.ca_path}"
transport = "rest"

[profiles.contoso.rest]
base_url = "{adminapi.url}"
""",
        encoding="utf-8",
    )
    result = invoke(
        "run",
        "Get-Mailbox",
        "-ResultSize",
        "2",
        "--profile",
        "contoso",
        "--config",
        str(config),
        "--format",
        "ndjson",
    )
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["Name"] for line in result.stdout.splitlines()] == ["user0000000", "user0000001"]


def run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """``pswrap run`` in a child whose stderr is a pseudo-terminal: (exit code, stdout, terminal text)."""
    primary, secondary = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "pswrap", "run", *args],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(secondary)
    terminal = bytearray()
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        terminal += chunk
    os.close(primary)
    stdout = child.stdout.read() if child.stdout else b""
    return child.wait(timeout=60), stdout.decode(), terminal.decode(errors="replace")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_run_shows_progress_as_a_bar_on_a_terminal(environment: ExchangeStandin) -> None:
    code, stdout, terminal = run_on_a_terminal(
        "Write-Progress", "-Activity", "Copying mailboxes", "-Status", "half way", "-PercentComplete", "50"
    )
    assert code == 0, terminal
    assert "Copying mailboxes half way" in terminal
    assert "50%" in terminal
    assert "\x1b[" in terminal  # drawn as a bar, not printed as a line
    assert "half way" not in stdout


def test_run_keeps_progress_off_a_pipe(environment: ExchangeStandin) -> None:
    result = invoke("run", "Write-Progress", "-Activity", "Copying mailboxes", "-PercentComplete", "50")
    assert result.exit_code == 0, result.stderr
    assert "Copying" not in result.stderr and "\x1b[" not in result.stderr
