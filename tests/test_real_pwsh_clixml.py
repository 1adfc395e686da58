"""What real pwsh 7.6's ``Export-Clixml`` wrote, read by pswrap: each kind gives exactly the expected value and type.

The files are ``tests/data/real_pwsh/clixml/<kind>.xml`` (``tests/capture_real_pwsh.py`` made them; its
manifest names the command behind each). No pwsh is needed here.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pswrap import (
    ErrorRecord,
    InformationRecord,
    PSDateTime,
    PSEnum,
    PSObject,
    PSQueue,
    PSStack,
    PSTimeSpan,
    ScriptBlock,
    SecureString,
    Uri,
    Version,
    WarningRecord,
    XmlDocument,
    parse_clixml,
)
from pswrap.records import to_record
from tests.capture_real_pwsh import CLIXML_KINDS, NEUTRAL_TMP
from tests.real_pwsh_replay import DATA

UTC = dt.timezone.utc

# kind -> (the value pswrap must give, its exact type); kinds that need more than == are checked below.
EXACT: dict[str, tuple[Any, type]] = {
    "byte": (255, int),
    "sbyte": (-128, int),
    "int16": (-32768, int),
    "uint16": (65535, int),
    "int32": (-(2**31), int),
    "uint32": (2**32 - 1, int),
    "int64": (-(2**63), int),
    "uint64": (2**64 - 1, int),
    "single": (1.25, float),
    "single_inexact": (0.1, float),  # pwsh writes a Single's shortest text, "0.1"
    "double": (0.1, float),
    "decimal": ([Decimal("1.10"), Decimal("79228162514264337593543950335"), Decimal("-1E-28")], list),
    "datetime_utc": (PSDateTime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC, nanosecond=700), PSDateTime),
    # Local kind: pwsh writes the machine's offset (the capture ran on UTC).
    "datetime_local": (PSDateTime(2024, 7, 1, 8, 30, tzinfo=UTC), PSDateTime),
    "datetime_unspecified": (PSDateTime(1999, 12, 31, 23, 59, 59), PSDateTime),
    "datetime_extremes": (
        [PSDateTime(1, 1, 1), PSDateTime(9999, 12, 31, 23, 59, 59, 999999, nanosecond=900)],
        list,
    ),
    "timespan": ([PSTimeSpan(ticks=1234567890123), PSTimeSpan(ticks=-1), PSTimeSpan(ticks=0)], list),
    "guid": (uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f"), uuid.UUID),
    "version": ([Version(1, 2, 3, 4), Version(1, 2, -1, -1)], list),
    # Uri.ToString(), which PowerShell writes, shows %20 unescaped.
    "uri": (Uri("https://example.com/a b?q=1&r=2#frag"), Uri),
    "bytes": (b"\x00\x01\x7f\x80\xff", bytes),
    "char": (["A", "é", "\x00"], list),
    "bool": ([True, False], list),
    "string": ("multi\r\nline _x0041_ <&> ’quoted’ é 🎵 \t tab", str),
    "empty_string": ("", str),
    "null": (None, type(None)),
    "null_in_list": ([1, None, "x"], list),
    "empty_list": ([], list),
    "mixed_array": ([1, "two", 3.5, True, uuid.UUID(int=0), Decimal("4.0"), ["nested"]], list),
    # Collections do not count against Export-Clixml's -Depth 2: all five levels are there.
    "nested_list": ([1, [2, [3, [4, [5]]]]], list),
    "arraylist": (["a", 2], list),
    "generic_list": ([1, 2], list),
    "hashtable": ({"Name": "x", "Count": 3}, dict),
    "hashtable_keys": ({1: "one", uuid.UUID(int=1): "guid", "k": None}, dict),
    "nested_hashtable": ({"outer": {"inner": {"deep": {"deeper": 1}}}}, dict),
    "empty_hashtable": ({}, dict),
    "scriptblock": (ScriptBlock(" param($x) $x + 1 "), ScriptBlock),
    "xml": (XmlDocument('<root a="1"><child>text &amp; more</child></root>'), XmlDocument),
    "get_date": (PSDateTime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), PSDateTime),  # DisplayHint note dropped
}


def read(kind: str) -> Any:
    """The one object in the kind's file."""
    items = list(parse_clixml(DATA / "clixml" / f"{kind}.xml"))
    assert [item.stream for item in items] == ["output"]
    return items[0].value


def test_every_recorded_kind_has_an_expectation() -> None:
    assert len(CLIXML_KINDS) >= 40
    assert set(CLIXML_KINDS) == set(EXACT) | set(CHECKS)
    assert {p.stem for p in (DATA / "clixml").glob("*.xml")} == set(CLIXML_KINDS)


@pytest.mark.parametrize("kind", sorted(EXACT))
def test_a_kind_reads_as_its_exact_python_value(kind: str) -> None:
    expected, expected_type = EXACT[kind]
    value = read(kind)
    assert type(value) is expected_type
    assert value == expected
    if isinstance(expected, list):  # and each item's type: 1 and True, 4.0 and Decimal…
        assert [type(v) for v in value] == [type(v) for v in expected]
    if isinstance(expected, PSDateTime):
        assert value.nanosecond == expected.nanosecond and value.utcoffset() == expected.utcoffset()


def check_double_special(value: Any) -> None:
    nan, inf, ninf, nzero, tiny, big = value
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf
    assert nzero == 0.0 and math.copysign(1.0, nzero) == -1.0
    assert tiny == 5e-324 and big == 1.7976931348623157e308
    assert all(type(v) is float for v in value)


def check_bigint(value: Any) -> None:
    # A BigInteger is no CLIXML primitive: an object whose ToString is the number.
    assert isinstance(value, PSObject) and value.type_name == "System.Numerics.BigInteger"
    assert int(value.to_string) == -123456789012345678901234567890 and value.Sign == -1


def check_datetimeoffset(value: Any) -> None:
    assert value.type_name == "System.DateTimeOffset"
    assert value.UtcDateTime == PSDateTime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert value.Offset == PSTimeSpan(ticks=2 * 3600 * 10**7) and value.DateTime.tzinfo is None
    assert isinstance(value.DayOfWeek, PSEnum) and str(value.DayOfWeek) == "Monday"


def check_ordered(value: Any) -> None:
    assert type(value) is dict and list(value.items()) == [("zeta", 1), ("alpha", 2), ("mid", 3)]


def check_stack(value: Any) -> None:
    assert type(value) is PSStack and value == ["two", 1]  # top first, as PowerShell enumerates it


def check_queue(value: Any) -> None:
    assert type(value) is PSQueue and value == [1, "two"]


def check_enum(value: Any) -> None:
    assert type(value) is PSEnum and value == 5 and str(value) == "Friday"
    assert value.type_name == "System.DayOfWeek"


def check_flags(value: Any) -> None:
    assert type(value) is PSEnum and value == 3 and str(value) == "ReadOnly, Hidden"
    assert value.names == ("ReadOnly", "Hidden")


def check_pscustomobject(value: Any) -> None:
    assert type(value) is PSObject and value.type_name == "System.Management.Automation.PSCustomObject"
    assert (value.Name, value.Size) == ("parent", 10) and list(value) == ["Name", "Size", "Child"]
    assert value.Child.Name == "child" and value.Child.Tags == ["a", "b"]


def check_typed_pscustomobject(value: Any) -> None:
    assert value.type_names[0] == "Contoso.Widget" and value.Id == 7 and list(value) == ["Id"]


def check_shared_reference(value: Any) -> None:
    first, again, other = value
    assert first is again and first is not other and first == other
    assert first.A == 1


def check_string_with_note(value: Any) -> None:
    assert type(value) is PSObject and value.value == "text" and value.Source == "n"


def check_error_record(value: Any) -> None:
    record = to_record("error", value)
    assert isinstance(record, ErrorRecord)
    assert record.message == "Cannot find path '/nonexistent/pswrap-missing.txt' because it does not exist."
    assert (record.category, record.error_id, record.target) == (
        "ObjectNotFound",
        "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
        "/nonexistent/pswrap-missing.txt",
    )
    assert record.exception_type == "System.Management.Automation.ItemNotFoundException"
    assert record.activity == "Get-Item" and record.reason == "ItemNotFoundException"


def check_warning_record(value: Any) -> None:
    record = to_record("warning", value)
    assert isinstance(record, WarningRecord) and record.message == "careful"


def check_information_record(value: Any) -> None:
    record = to_record("information", value)
    assert isinstance(record, InformationRecord)
    assert (record.message, record.data, record.tags, record.source) == (
        "for you",
        "for you",
        ("t1",),
        "Write-Information",
    )
    assert isinstance(record.time_generated, dt.datetime) and isinstance(record.process_id, int)


def check_securestring(value: Any) -> None:
    assert type(value) is SecureString and value.reveal() == "not-a-secret-test-value"
    assert "not-a-secret" not in repr(value) + str(value)


def check_switch(value: Any) -> None:
    assert value.type_name == "System.Management.Automation.SwitchParameter" and value.IsPresent is True


def check_get_item(value: Any) -> None:
    assert value.type_names[:2] == ("System.IO.FileInfo", "System.IO.FileSystemInfo")
    assert (value.Name, value.Length, value.Extension, value.PSIsContainer) == (
        "sample.txt",
        6,
        ".txt",
        False,
    )
    assert value.FullName == f"{NEUTRAL_TMP}/clixml/sample.txt" == value.to_string
    assert value.LastWriteTimeUtc == PSDateTime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert isinstance(value.PSDrive, PSObject) and value.PSDrive.Name == "/"  # depth 1: one level of objects
    assert value.Attributes == "Normal"  # an enum past the depth: its text


def check_get_command(value: Any) -> None:
    assert value.type_names[0] == "System.Management.Automation.CmdletInfo"
    assert (value.Name, value.Verb, value.Noun, value.CommandType) == ("Get-Item", "Get", "Item", "Cmdlet")
    assert value.ModuleName == "Microsoft.PowerShell.Management" and type(value.Version) is Version
    assert value.ImplementingType == "Microsoft.PowerShell.Commands.GetItemCommand"
    assert "Path" in value.Parameters and isinstance(value.OutputType, list)


def check_get_process(value: Any) -> None:
    assert value.type_names[0] == "System.Diagnostics.Process"
    assert type(value.Id) is int and value.Id > 0 and value.ProcessName == value.Name
    assert value.to_string == f"System.Diagnostics.Process ({value.Name})"
    assert type(value.StartTime) is PSDateTime and value.StartTime.tzinfo is not None
    assert type(value.TotalProcessorTime) is PSTimeSpan and type(value.CPU) is float
    assert type(value.WorkingSet64) is int and value.HasExited is False
    assert all(isinstance(m, str) for m in value.Modules)  # depth 1: the modules' ToString


CHECKS: dict[str, Callable[[Any], None]] = {
    "double_special": check_double_special,
    "bigint": check_bigint,
    "datetimeoffset": check_datetimeoffset,
    "ordered": check_ordered,
    "stack": check_stack,
    "queue": check_queue,
    "enum": check_enum,
    "flags": check_flags,
    "pscustomobject": check_pscustomobject,
    "typed_pscustomobject": check_typed_pscustomobject,
    "shared_reference": check_shared_reference,
    "string_with_note": check_string_with_note,
    "error_record": check_error_record,
    "warning_record": check_warning_record,
    "information_record": check_information_record,
    "securestring": check_securestring,
    "switch": check_switch,
    "get_item": check_get_item,
    "get_command": check_get_command,
    "get_process": check_get_process,
}


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_kind_reads_as_pwsh_meant_it(kind: str) -> None:
    CHECKS[kind](read(kind))
