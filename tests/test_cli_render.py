"""``pswrap render``: the script on stdout, parameter values never shown, errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pswrap.cli import main
from tests.psquote import parse, problems

CANARY = "canary-org-value-93be1"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_renders_exchange_connect_with_parameters_redacted(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        [
            "render",
            "exchange-connect",
            "--var",
            f"Organization={CANARY}",
            "--var",
            'CommandName:json=["Get-Mailbox", "Set-Mailbox"]',
            "--var",
            "PageSize:json=500",
            "--var",
            "SkipLoadingFormatData:json=true",
            "--var",
            "ExchangeEnvironmentName=O365Default",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "param($AccessToken, $Organization)",
        "Import-Module ExchangeOnlineManagement -MinimumVersion 3.1.0 -ErrorAction Stop",
        "Connect-ExchangeOnline -AccessToken $AccessToken -Organization $Organization -ShowBanner:$false"
        " -ErrorAction Stop -ExchangeEnvironmentName 'O365Default' -CommandName @('Get-Mailbox', 'Set-Mailbox')"
        " -SkipLoadingFormatData -PageSize 500",
    ]
    assert result.stderr.splitlines() == [
        "parameter $AccessToken = (not given)",
        "parameter $Organization = <redacted>",
    ]
    assert CANARY not in result.output
    assert problems(parse(result.stdout)) == []


def test_var_values_are_strings_and_json_values_are_typed(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "show.ps1.j2").write_text("$a = {{ A }}\n$b = {{ B }}\n$c = {{ C }}\n$d = {{ D }}\n")
    result = runner.invoke(
        main,
        [
            "render",
            "show",
            "--template-dir",
            str(tmp_path),
            "--var",
            "A=500",
            "--var",
            "B:json=500",
            "--var",
            'C:json={"k": [true, null, 1.5]}',
            "--var",
            "D=it’s = $(x)",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "$a = '500'\n$b = 500\n$c = [ordered]@{'k' = @($true, $null, 1.5)}\n$d = 'it’’s = $(x)'\n"
    )


def test_a_user_template_dir_overrides_the_builtin(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "exchange-disconnect.ps1.j2").write_text("Write-Output 'mine'\n")
    result = runner.invoke(main, ["render", "exchange-disconnect", "--template-dir", str(tmp_path)])
    assert result.stdout == "Write-Output 'mine'\n"
    builtin = runner.invoke(main, ["render", "exchange-disconnect"])
    assert builtin.stdout == "Disconnect-ExchangeOnline -Confirm:$false\n"


def test_list_shows_every_template_and_its_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "report.ps1.j2").write_text("Get-Mailbox\n")
    result = runner.invoke(main, ["render", "--list", "--template-dir", str(tmp_path)])
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert names == [
        "exchange-connect",
        "exchange-connect-steps",
        "exchange-disconnect",
        "exchange-invoke",
        "preamble",
        "report",
    ]
    assert str(tmp_path / "report.ps1.j2") in result.stdout


def test_an_undefined_variable_is_named_with_the_fix(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "needs.ps1.j2").write_text("Get-Mailbox -Identity {{ Identity }}\n")
    result = runner.invoke(main, ["render", "needs", "--template-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "template 'needs', line 1: 'Identity' is undefined" in result.stderr
    assert "--var NAME=VALUE" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["render", "nope"], "no template named 'nope'"),
        (["render"], "name a TEMPLATE"),
        (["render", "preamble", "--var", "novalue"], "'novalue' is not NAME=VALUE"),
        (["render", "preamble", "--var", "1x=2"], "'1x' is not NAME=VALUE"),
        (["render", "preamble", "--var", "X:json={"], "X: not JSON"),
        (["render", "preamble", "--template-dir", "/no/such/folder"], "does not exist"),
        (["render", "exchange-connect", "--var", "SkipLoadingFormatData=true"], "expected true or false"),
    ],
)
def test_bad_input_is_an_error_naming_it(runner: CliRunner, arguments: list[str], message: str) -> None:
    result = runner.invoke(main, arguments)
    assert result.exit_code in (1, 2)
    assert message in result.stderr


def test_a_value_that_cannot_be_rendered_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "t.ps1.j2").write_text("$x = {{ X }}\n")
    result = runner.invoke(
        main, ["render", "t", "--template-dir", str(tmp_path), "--var", 'X:json="\\ud800"']
    )
    assert result.exit_code == 1
    assert "lone surrogate U+D800" in result.stderr
