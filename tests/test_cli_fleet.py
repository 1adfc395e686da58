"""``pswrap run --profiles`` / ``--all-profiles`` against many tenants on the stand-ins."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pswrap.cli import main
from pswrap.cli.fleet_run import SOME_TENANTS_FAILED
from tests.fixtures.fleet import Tenants


@pytest.fixture
def profiles(
    many_tenants: Callable[..., Tenants], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str]]:
    tenants = many_tenants(3, mailboxes=2)
    environ: dict[str, str] = {}
    config = tenants.profiles(tmp_path / "config.toml", environ)
    for name in ("PSWRAP_PROFILE", "PSWRAP_TENANT", "PSWRAP_CLIENT_ID", "PSWRAP_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return config, environ


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "table"])
def test_every_format_has_a_tenant_column(profiles: tuple[Path, dict[str, str]], fmt: str) -> None:
    config, _ = profiles
    result = invoke(
        "run", "Get-Mailbox", "--all-profiles", "--config", str(config), "--format", fmt,
        "--select", "PrimarySmtpAddress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    if fmt == "ndjson":
        rows = [json.loads(line) for line in result.stdout.splitlines()]
    elif fmt == "json":
        rows = json.loads(result.stdout)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
    else:
        header = next(line for line in result.stdout.splitlines() if "Tenant" in line)
        assert header.index("Tenant") < header.index("PrimarySmtpAddress")
        for name in ("t000", "t001", "t002"):
            assert result.stdout.count(name) >= 2
        return
    assert sorted(row["Tenant"] for row in rows) == ["t000", "t000", "t001", "t001", "t002", "t002"]
    for row in rows:
        assert list(row) == ["Tenant", "PrimarySmtpAddress"]
        assert row["PrimarySmtpAddress"].endswith(f"@{row['Tenant']}.onmicrosoft.com")
    assert "3 tenants, 6 objects, 0 failed" in result.stderr


def test_some_tenants_failing_gives_its_own_exit_code_and_names_them(
    profiles: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = profiles
    monkeypatch.delenv("SECRET_T001")
    result = invoke(
        "run", "Get-Mailbox", "--profiles", "t000,t001", "--config", str(config), "--format", "ndjson"
    )
    assert result.exit_code == SOME_TENANTS_FAILED
    assert [json.loads(line)["Tenant"] for line in result.stdout.splitlines()] == ["t000", "t000"]
    assert "t001: " in result.stderr and "SECRET_T001" in result.stderr
    assert "2 tenants, 2 objects, 1 failed" in result.stderr


def test_profile_selection_mistakes_are_usage_errors(profiles: tuple[Path, dict[str, str]]) -> None:
    config, _ = profiles
    unknown = invoke("run", "Get-Mailbox", "--profiles", "t000,nope", "--config", str(config))
    assert unknown.exit_code == 2 and "no profile 'nope'" in unknown.stderr
    both = invoke("run", "Get-Mailbox", "--profiles", "t000", "--profile", "t001", "--config", str(config))
    assert both.exit_code == 2 and "go alone" in both.stderr
