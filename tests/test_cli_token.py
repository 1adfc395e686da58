"""``pswrap token``: claims and time left by default, the token only with --raw."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from pswrap.cli import main
from pswrap.cli.token import show_rows, time_left
from tests.fixtures.idp import ConfiguredIdentityProvider


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def isolated(environ: dict[str, str], tmp_path: Path) -> dict[str, str | None]:
    """The given variables, and no config file or profile from the machine running the tests."""
    return {
        "PSWRAP_CONFIG": str(tmp_path / "no-config.toml"),
        "PSWRAP_PROFILE": None,
        "XDG_CONFIG_HOME": str(tmp_path),
        **environ,
    }


def only_issued_token(idp: ConfiguredIdentityProvider) -> None:
    assert idp.count("token") == 1


def test_default_output_shows_claims_not_the_token(
    runner: CliRunner, idp: ConfiguredIdentityProvider, idp_environ: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(main, ["token"], env=isolated(idp_environ, tmp_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"tenant:     {idp.tenant.id} (contoso.onmicrosoft.com)" in out
    assert f"app:        {idp.app.client_id} (pswrap test app)" in out
    assert "audience:   https://outlook.office365.com" in out
    assert "roles:      Exchange.ManageAsApp" in out
    assert "credential: client secret" in out
    assert "min" in out and "left)" in out
    assert "eyJ" not in result.output  # no JWT, not even its header
    assert idp.app.secret not in result.output
    only_issued_token(idp)


def test_raw_prints_only_the_token(
    runner: CliRunner, idp: ConfiguredIdentityProvider, idp_environ: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(main, ["token", "--raw"], env=isolated(idp_environ, tmp_path))
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    assert idp.verify(token)["appid"] == idp.app.client_id


def test_claims_lists_every_claim(
    runner: CliRunner, idp: ConfiguredIdentityProvider, idp_environ: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(main, ["token", "--claims"], env=isolated(idp_environ, tmp_path))
    assert result.exit_code == 0, result.output
    claims = idp.verify(idp.issue_token(idp.app))
    for name in claims:
        assert f"\n{name}:" in "\n" + result.stdout
    assert re.search(r"^appidacr: +1$", result.stdout, re.MULTILINE)
    assert re.search(
        r"^exp: +\d+ \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+ min \d+ s left\)$", result.stdout, re.M
    )
    assert "eyJ" not in result.output


def test_profile_from_the_config_file(
    runner: CliRunner, idp: ConfiguredIdentityProvider, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""[profiles.contoso]
tenant = "{idp.tenant.id}"
client_id = "{idp.app.client_id}"
client_secret = "env:CONTOSO_SECRET"
organization = "contoso.onmicrosoft.com"
authority = "{idp.url}"
ca_bundle = "{idp.ca_path}"
"""
    )
    config.chmod(0o600)
    environ = {"CONTOSO_SECRET": idp.app.secret}
    result = runner.invoke(
        main,
        ["token", "--profile", "contoso"],
        env=isolated({**environ, "PSWRAP_CONFIG": str(config)}, tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert f"tenant:     {idp.tenant.id}\n" in result.stdout
    result = runner.invoke(
        main, ["token", "-p", "contoso", "--config", str(config), "--raw"], env=isolated(environ, tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert idp.verify(result.stdout.strip())["tid"] == idp.tenant.id


def test_missing_role_is_a_warning_on_stderr(
    runner: CliRunner, idp: ConfiguredIdentityProvider, idp_environ: dict[str, str], tmp_path: Path
) -> None:
    idp.app.roles = ()
    result = runner.invoke(main, ["token"], env=isolated(idp_environ, tmp_path))
    assert result.exit_code == 0
    assert "roles:      none" in result.stdout
    assert result.stderr.count("warning: the token for") == 1
    assert "no Exchange.ManageAsApp role" in result.stderr


def test_entra_error_exits_nonzero_with_the_action(
    runner: CliRunner, idp: ConfiguredIdentityProvider, idp_environ: dict[str, str], tmp_path: Path
) -> None:
    wrong = "Zq8Q~cli-wrong-secret-canary-0123456789ab"
    result = runner.invoke(
        main, ["token"], env=isolated({**idp_environ, "PSWRAP_CLIENT_SECRET": wrong}, tmp_path)
    )
    assert result.exit_code == 2  # a settings problem, as for pswrap run
    assert "AADSTS7000215" in result.stderr
    assert "Set PSWRAP_CLIENT_SECRET to the secret's Value" in result.stderr
    assert "Traceback" not in result.output
    assert wrong not in result.output and result.stdout == ""


def test_no_settings_exits_nonzero_saying_what_to_set(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["token"], env=isolated({}, tmp_path))
    assert result.exit_code == 2
    assert "pswrap token: no pswrap settings: set PSWRAP_TENANT" in result.stderr


def test_raw_and_claims_do_not_mix(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["token", "--raw", "--claims"], env=isolated({}, tmp_path))
    assert result.exit_code == 2
    assert "cannot be combined" in result.stderr


def test_terminal_output_is_a_table() -> None:
    buffer = io.StringIO()
    show_rows(
        [("tenant", "contoso"), ("roles", "Exchange.ManageAsApp")],
        Console(file=buffer, force_terminal=True, width=80),
    )
    text = buffer.getvalue()
    assert "\x1b[" in text  # styled for a terminal
    assert "tenant" in text and "Exchange.ManageAsApp" in text and "tenant:" not in text


def test_time_left_wording() -> None:
    assert time_left(3599) == "59 min 59 s left"
    assert time_left(4200) == "1 h 10 min left"
    assert time_left(42) == "42 s left"
    assert time_left(-180) == "expired 3 min 0 s ago"
