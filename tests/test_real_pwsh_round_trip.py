"""Every value pswrap sends survives real pwsh: Python value → pswrap → pwsh → ``Export-Clixml`` → pswrap → equal.

Each transport runs one invocation that binds every value as its own parameter and has pwsh write
each with ``, $V | Export-Clixml -LiteralPath (Join-Path $Dir …)`` (the comma keeps a list one
object; the directory is a parameter too, never pasted). pswrap then reads each file. Where real
PowerShell changes a value, :data:`VALUES` says what comes back and why; nothing else may differ,
not even the type of a list's items.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import math
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pswrap import (
    LocalTransport,
    OneShotTransport,
    PSDateTime,
    PSEnum,
    PSObject,
    PSQueue,
    PSStack,
    PSTimeSpan,
    ScriptBlock,
    Secret,
    SecureString,
    Session,
    Uri,
    Version,
    WarningRecord,
    XmlDocument,
    parse_clixml,
)
from pswrap.transports._convert import to_psrp
from pswrap.transports.base import Invocation
from pswrap.transports.oneshot import build_request
from tests.session_scenarios import ROUND_TRIP

UTC = dt.timezone.utc
NOT_A_SECRET = "round-trip-test-value"
DESERIALIZED_CUSTOM = "Deserialized.System.Management.Automation.PSCustomObject"


class Color(enum.Enum):
    RED = 1


class Access(enum.IntFlag):
    READ = 1
    WRITE = 2


class Case(NamedTuple):
    sent: Any
    back: Any = None  # what pwsh gives back when it is not ``sent`` itself
    why: str = ""


_SAME: Any = object()


def case(sent: Any, back: Any = _SAME, why: str = "") -> Case:
    return Case(sent, sent if back is _SAME else back, why)


VALUES: dict[str, Case] = {name: case(value) for name, value in ROUND_TRIP.items()}
VALUES.update(
    {
        "zero": case(0),
        "int32_max": case(2**31 - 1),
        "int32_min": case(-(2**31)),
        "int64": case(2**31),
        "int64_max": case(2**63 - 1),
        "int64_min": case(-(2**63)),
        "uint64": case(2**63),
        "uint64_max": case(2**64 - 1),
        "nan": case(math.nan),
        "infinity": case(math.inf),
        "negative_infinity": case(-math.inf),
        "negative_zero": case(-0.0),
        "tiny": case(5e-324),
        "huge": case(1.7976931348623157e308),
        "decimal_scale": case(Decimal("1.10")),
        "decimal_tiny": case(Decimal("-1E-28")),  # hung pwsh before: psrpcore wrote "-1E-28"
        "decimal_exponent": case(Decimal("1E+2"), Decimal("100")),
        "decimal_max": case(Decimal("79228162514264337593543950335")),
        "none": case(None),
        "naive": case(
            dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
            PSDateTime(2024, 5, 6, 7, 8, 9, 123456),
            "pswrap reads every DateTime as a PSDateTime (a datetime with .NET's 100 ns)",
        ),
        "aware": case(
            dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            PSDateTime(dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC).astimezone()),
            "System.DateTime holds no offset: pwsh keeps the instant in its local time zone",
        ),
        "psdate_naive": case(PSDateTime(2024, 5, 6, 7, 8, 9, 123456, nanosecond=700)),
        "psdate_extremes": case(
            [PSDateTime(1, 1, 1), PSDateTime(9999, 12, 31, 23, 59, 59, 999999, nanosecond=900)]
        ),
        "date": case(dt.date(2024, 5, 6), PSDateTime(2024, 5, 6), "a date is sent as a DateTime at midnight"),
        "timedelta": case(
            dt.timedelta(days=-1, microseconds=5),
            PSTimeSpan(ticks=-863_999_999_950),
            "pswrap reads every TimeSpan as a PSTimeSpan (a timedelta with exact ticks)",
        ),
        "span_negative_tick": case(PSTimeSpan(ticks=-1)),
        "span_extremes": case([PSTimeSpan(ticks=2**63 - 1), PSTimeSpan(ticks=-(2**63))]),
        "version_two_parts": case(Version(1, 2, -1, -1)),
        "version_four_parts": case(Version(1, 2, 3, 4)),
        "bytes_empty": case(b""),
        "bytearray": case(bytearray(b"\x01\xfe"), b"\x01\xfe", "any bytes-like value is sent as a byte[]"),
        "list_empty": case([]),
        "list_one": case(["one"]),
        "tuple": case((1, "a"), [1, "a"], "a tuple is sent as an array"),
        "frozenset": case(frozenset({"only"}), ["only"], "a set is sent as an array"),
        "record": case(
            WarningRecord("careful"), "careful", "a record without its raw object is sent as its message"
        ),
        "nested_list": case([[1, [2, [3, [4]]]], [], [None]]),
        "dict_empty": case({}),
        "dict_keys": case({1: "one", "k": None, uuid.UUID(int=1): 2.5}),
        "dict_nested": case({"a": {"b": {"c": {"d": [1, {"e": "f"}]}}}}),
        "ordered": case(
            collections.OrderedDict([("zeta", 1), ("alpha", 2), ("mid", 3)]),
            {"zeta": 1, "alpha": 2, "mid": 3},
            "sent as [ordered]; pswrap reads every dictionary as a dict, in the order pwsh wrote it",
        ),
        "stack": case(PSStack([1, "two"])),
        "queue": case(PSQueue([1, "two"])),
        "uri": case(Uri("https://example.com/x?y=1")),
        "xml": case(XmlDocument("<a><b>1</b></a>")),
        "scriptblock": case(
            ScriptBlock("param($x) $x"),
            "param($x) $x",
            "PowerShell never rehydrates a script block from serialized data: it arrives as its text",
        ),
        "securestring": case(SecureString(NOT_A_SECRET)),
        "secret": case(Secret(NOT_A_SECRET), NOT_A_SECRET, "a Secret is sent as the plain string it guards"),
        "python_enum": case(Color.RED, 1, "a Python enum is sent as its value"),
        "python_flag": case(Access.READ | Access.WRITE, 3, "a Python flag is sent as its value"),
        "psenum": case(
            PSEnum(5, "Friday", ("System.DayOfWeek", "System.Enum", "System.ValueType", "System.Object")),
            5,
            "a PSEnum is sent as its number (PowerShell converts it to a parameter's enum type)",
        ),
        "psobject": case(
            PSObject(extended={"Name": "x", "N": 1}, type_names=("Contoso.Thing",)),
            PSObject(extended={"Name": "x", "N": 1}, type_names=("Deserialized.Contoso.Thing",)),
            "PowerShell marks the type names of an object it deserialized with Deserialized.",
        ),
        "psobject_untyped": case(
            PSObject(extended={"Child": PSObject(extended={"N": 2})}),
            PSObject(
                extended={"Child": PSObject(extended={"N": 2}, type_names=(DESERIALIZED_CUSTOM,))},
                type_names=(DESERIALIZED_CUSTOM,),
            ),
            "an object without type names is sent as a PSCustomObject (then deserialized, as above)",
        ),
        "text_nul": case("a\x00b\r\n\t"),
        "text_large": case("x" * 70_000),  # more than one PSRP fragment: hung pwsh -s at times before
    }
)


def assert_same(back: Any, expected: Any, where: str = "value") -> None:
    """Equal and of the same type, all the way down (NaN, -0.0, 100 ns, offsets, secrets included)."""
    assert type(back) is type(expected), f"{where}: {type(back).__name__} {back!r:.80}"
    if isinstance(expected, float):
        assert (math.isnan(back) and math.isnan(expected)) or (
            back == expected and math.copysign(1, back) == math.copysign(1, expected)
        ), where
    elif isinstance(expected, SecureString):
        assert back.reveal() == expected.reveal(), where
    elif isinstance(expected, PSObject):
        assert back.type_names == expected.type_names, where
        assert list(back.adapted) == list(expected.adapted), where
        assert list(back.extended) == list(expected.extended), where
        for name in expected:
            assert_same(back[name], expected[name], f"{where}.{name}")
    elif isinstance(expected, list):
        assert len(back) == len(expected), where
        for i, (b, e) in enumerate(zip(back, expected, strict=True)):
            assert_same(b, e, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert set(back) == set(expected), where
        if isinstance(expected, collections.OrderedDict) or len(expected) < 2:
            assert list(back) == list(expected), where
        for key in expected:
            assert_same(back[key], expected[key], f"{where}[{key!r}]")
    else:
        assert back == expected, where
        if isinstance(expected, dt.datetime):
            assert back.utcoffset() == expected.utcoffset() and back.nanosecond == expected.nanosecond, where


def test_assert_same_sees_what_equality_does_not() -> None:
    for back, expected in [
        (1, True),
        (0.0, -0.0),
        ([1], [1.0]),
        (PSDateTime(2024, 1, 1, nanosecond=100), PSDateTime(2024, 1, 1)),
        ({"a": 1, "b": 2}, collections.OrderedDict([("b", 2), ("a", 1)])),
    ]:
        with pytest.raises(AssertionError):
            assert_same(back, expected)


def round_trip(transport: LocalTransport | OneShotTransport) -> dict[str, Any]:
    """Every value of VALUES through pwsh and Export-Clixml, read back by pswrap (by name)."""
    names = list(VALUES)
    parameters = {f"V{i}": VALUES[name].sent for i, name in enumerate(names)}
    script = "\n".join(
        [f"param($Dir, {', '.join('$' + p for p in parameters)})"]
        + [f", ${p} | Export-Clixml -LiteralPath (Join-Path $Dir '{p}.xml')" for p in parameters]
    )
    with (
        tempfile.TemporaryDirectory(prefix="pswrap-round-trip-") as tmp,
        Session(transport, timeout=120) as session,
    ):
        result = session.script(script, Dir=tmp, **parameters)
        result.wait()
        assert result.errors == []
        back = {}
        for i, name in enumerate(names):
            items = list(parse_clixml(Path(tmp) / f"V{i}.xml"))
            assert [item.stream for item in items] == ["output"], name
            back[name] = items[0].value
    return back


@pytest.fixture(scope="module", params=["local", "oneshot"])
def returned(request: pytest.FixtureRequest, real_pwsh: str) -> Iterator[tuple[str, dict[str, Any]]]:
    transport = (
        LocalTransport(pwsh=real_pwsh) if request.param == "local" else OneShotTransport(pwsh=real_pwsh)
    )
    yield request.param, round_trip(transport)


@pytest.mark.real_pwsh
@pytest.mark.parametrize("name", list(VALUES))
def test_a_value_survives_real_pwsh(returned: tuple[str, dict[str, Any]], name: str) -> None:
    _transport, back = returned
    assert_same(back[name], VALUES[name].back, name)


def test_every_changed_value_says_why() -> None:
    for name, (sent, back, why) in VALUES.items():
        if back is not sent:
            assert why or type(back) is type(sent), name


# --- what pswrap refuses or rewrites before pwsh sees it (no pwsh needed) ---


def test_a_decimal_is_sent_without_an_exponent() -> None:
    request = build_request(
        Invocation("Write-Output", parameters={"A": Decimal("-1E-28"), "B": Decimal("1E+2")})
    )
    assert b">-0.0000000000000000000000000001</D>" in request and b">100</D>" in request
    assert b"E-28" not in request


@pytest.mark.parametrize(
    "value",
    ["79228162514264337593543950336", "1E-29", "1.00000000000000000000000000001", "NaN", "-Infinity"],
)
def test_a_decimal_system_decimal_cannot_hold_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match=r"parameter 'Amount' = .*(System\.Decimal)"):
        to_psrp(Decimal(value), "parameter 'Amount'")


@pytest.mark.parametrize("value", [dt.timedelta(days=10_675_200), PSTimeSpan(ticks=-(2**63) - 1)])
def test_a_timespan_system_timespan_cannot_hold_is_refused_by_name(value: dt.timedelta) -> None:
    with pytest.raises(ValueError, match=r"parameter 'Age' = .* System\.TimeSpan"):
        to_psrp(value, "parameter 'Age'")


def test_a_year_before_1000_is_written_with_four_digits() -> None:
    request = build_request(
        Invocation("Write-Output", parameters={"A": PSDateTime(1, 1, 1), "B": dt.date(5, 1, 1)})
    )
    assert b">0001-01-01T00:00:00<" in request and b">0005-01-01T00:00:00<" in request


def test_a_decimal_keeps_its_trailing_zeros_and_an_ordered_dict_its_type() -> None:
    request = build_request(
        Invocation("Write-Output", parameters={"A": Decimal("1.10"), "B": collections.OrderedDict(z=1, a=2)})
    )
    assert b">1.10</D>" in request
    assert b"System.Collections.Specialized.OrderedDictionary" in request
