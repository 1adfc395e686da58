"""The command line tells the truth: exit codes by kind of problem, help, its own words, each record once."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pswrap.cli import main
from tests.fixtures.exchange import ExchangeStandin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def environment(
    exchange_standin: ExchangeStandin, idp_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ExchangeStandin:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT", "PSWRAP_PWSH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(exchange_standin.journal.parent / "no-config"))
    return exchange_standin


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_missing_pwsh_is_a_settings_problem_in_the_clis_words(
    environment: ExchangeStandin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pwsh anywhere
    failed = invoke("run", "Get-Mailbox")
    assert failed.exit_code == 2, failed.stderr
    assert "--pwsh or PSWRAP_PWSH" in failed.stderr and "pwsh='" not in failed.stderr
    named = invoke("run", "Get-Mailbox", "--pwsh", str(tmp_path / "no-such-pwsh"))
    assert named.exit_code == 2 and "no-such-pwsh" in named.stderr
    monkeypatch.setenv("PSWRAP_PWSH", str(tmp_path / "from-the-variable"))
    variable = invoke("run", "Get-Mailbox")
    assert variable.exit_code == 2 and "from-the-variable" in variable.stderr


def test_a_rejected_credential_exits_2_for_run_and_token(
    environment: ExchangeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSWRAP_CLIENT_SECRET", "not-the-secret-value")
    for args in (("run", "Get-Mailbox"), ("token",)):
        failed = invoke(*args)
        assert failed.exit_code == 2, (args, failed.stderr)
        assert "AADSTS7000215" in failed.stderr
    assert environment.pwsh.processes() == []


def test_an_unreachable_identity_provider_exits_3_for_run_and_token(
    environment: ExchangeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PSWRAP_AUTHORITY", "https://127.0.0.1:9")
    for args in (("run", "Get-Mailbox"), ("token",)):
        failed = invoke(*args)
        assert failed.exit_code == 3, (args, failed.stderr)


def test_token_without_settings_exits_2_like_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "PSWRAP_TENANT",
        "PSWRAP_CLIENT_ID",
        "PSWRAP_CLIENT_SECRET",
        "PSWRAP_PROFILE",
        "PSWRAP_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for args in (("run", "Get-Mailbox"), ("token",)):
        failed = invoke(*args)
        assert failed.exit_code == 2 and "no pswrap settings" in failed.stderr


def test_run_dash_h_is_help() -> None:
    shown = invoke("run", "-h")
    assert shown.exit_code == 0 and shown.stdout.startswith("Usage: ")


def test_the_readmes_render_example_runs_as_written() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(pswrap render --list\n.*?)```", readme, re.DOTALL)
    assert block is not None
    for command in block.group(1).replace("\\\n", " ").splitlines():
        args = shlex.split(command)
        assert args[0] == "pswrap"
        done = invoke(*args[1:])
        assert done.exit_code == 0, (command, done.output)


def test_each_record_is_printed_once_with_its_own_label(environment: ExchangeStandin) -> None:
    warned = invoke("run", "Get-Mailbox", "-ResultSize", "2", "--format", "ndjson")
    assert warned.exit_code == 0, warned.stderr
    assert warned.stderr.count("There are more results available") == 1
    assert "WARNING: There are more results available" in warned.stderr
    failed = invoke("run", "Get-Mailbox", "-Identity", "nobody", "--format", "ndjson")
    assert failed.exit_code == 1
    assert failed.stderr.count("couldn't be found") == 1
    assert "warning:" not in failed.stderr
