"""Table output shows data literally: no rich markup, no terminal escapes, PowerShell's default columns,
and a list instead of zero-width columns."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from pswrap import PSObject, WarningRecord
from pswrap.cli import main, output
from tests.fixtures.exchange import ExchangeStandin

MAILBOX_TYPES = (
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Deserialized.System.Object",
)


def mailbox(name: str, **more: object) -> PSObject:
    props = {
        "Name": name,
        "Alias": name.lower(),
        "Database": "EURPR01DG123-db045",
        "ProhibitSendQuota": "99 GB (106,300,440,576 bytes)",
        "ExternalDirectoryObjectId": "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11",
        "DisplayName": f"{name} (display)",
        "RecipientTypeDetails": "UserMailbox",
        **more,
    }
    return PSObject(props, type_names=MAILBOX_TYPES)


def render(values: list[object], fmt: str = "table", width: int | None = 100, **options: object) -> str:
    out = io.StringIO()
    output.write(values, fmt, out, console_width=width, **options)  # type: ignore[arg-type]
    return out.getvalue()


TRICKY = ["[/]", "[red]alert[/red]", "C:\\Share\\[Archive]", "[bold]x", ":smile:"]


def test_markup_in_values_is_shown_literally() -> None:
    text = render([{"Value": value, "N": i} for i, value in enumerate(TRICKY)])
    for value in TRICKY:
        assert value in text


def test_terminal_escapes_in_data_are_made_visible() -> None:
    hostile = "\x1b[31mred\x1b]0;owned\x07\r\x9b2J"
    for fmt in ("table", "csv"):
        text = render([{"Name": hostile, "Other": "ok"}], fmt)
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "\\x1b[31mred" in text
        assert ("\r" not in text) if fmt == "table" else ("\r" in text)  # a csv field may hold CR LF
    record = WarningRecord(f"careful {hostile}\nsecond line")
    line = output.describe(record)
    assert "\x1b" not in line and "\\x1b[31mred" in line and line.endswith("\nsecond line")


def test_csv_keeps_newlines_and_tabs_in_values() -> None:
    text = render([{"Note": "a\tb\nc"}], "csv")
    assert list(csv.reader(io.StringIO(text))) == [["Note"], ["a\tb\nc"]]


def test_exchange_types_get_their_default_columns_name_first() -> None:
    text = render([mailbox("Bob"), mailbox("Alice")], width=160)
    header = text.splitlines()[1]
    names = [part.strip() for part in header.strip("┃ ").split("┃")]
    assert names == ["Name", "Alias", "Database", "ProhibitSendQuota", "ExternalDirectoryObjectId"]
    assert "DisplayName" not in header and "2 more properties" in text
    chosen = render([mailbox("Bob")], select=["DisplayName", "recipienttypedetails"])
    assert "Bob (display)" in chosen and "UserMailbox" in chosen and "Alias" not in chosen


def test_objects_without_a_view_are_a_table_up_to_four_properties_else_a_list() -> None:
    few = render([{"A": 1, "B": 2, "C": 3, "D": 4}])
    assert "┃ A" in few
    many = render([{f"P{i}": f"value-{i}" for i in range(6)}])
    assert "┃" not in many and "P5 : value-5" in many


@pytest.mark.parametrize("width", [200, 60])
def test_a_table_too_wide_for_the_terminal_becomes_a_list_not_empty_columns(width: int) -> None:
    wide = [{f"Property{i:02d}": f"value-{i:02d}-of-object-{n}" for i in range(30)} for n in range(2)]
    text = render(wide, width=width, select=[f"Property{i:02d}" for i in range(30)])
    for n in range(2):
        for i in range(30):
            assert f"value-{i:02d}-of-object-{n}" in text
    narrow_view = render([mailbox("Bob")], width=40)
    assert "ExternalDirectoryObjectId : 5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11" in narrow_view


def test_run_shows_a_mailbox_table_and_escapes_a_warning(
    exchange_standin: ExchangeStandin, idp_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PSWRAP_PROFILE", "PSWRAP_CONFIG", "PSWRAP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(exchange_standin.journal.parent / "no-config"))
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(main, ["run", "Get-Mailbox", "-ResultSize", "2"])
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[1]
    assert header.split("┃")[1].strip() == "Name" and "Alias" in header and "user0000001" in result.stdout


def test_parse_prints_records_and_values_without_their_escapes() -> None:
    document = (
        '#< CLIXML\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<S>value _x001B_]0;owned_x0007_ [red]x[/red]</S><S S="warning">careful _x001B_[2J</S></Objs>'
    )
    result = CliRunner().invoke(main, ["parse", "--format", "table", "-"], input=document)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout
    assert "value \\x1b]0;owned\\x07 [red]x[/red]" in result.stdout
    assert "WARNING: careful \\x1b[2J" in result.stderr
