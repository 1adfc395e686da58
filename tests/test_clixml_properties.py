"""Property tests: whatever psrpcore's serializer writes reads back equal, in any chunking."""

from __future__ import annotations

import datetime as dt
import string
import uuid
from decimal import Decimal
from typing import Any

import psrpcore.types as ps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pswrap.clixml import ClixmlReader, parse_clixml
from tests.clixml_normal import normalize_psrpcore, normalize_pswrap

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text PowerShell can carry: anything but lone surrogates (psrpcore escapes the rest as _xHHHH_).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", "_x005F_", "a_x0041_b", "_x", "line\r\nbreak", "\x00\x01\x1f", "😀 emoji", "' ’ ‘ ‚ ‛ \" “ ”"]
)
names = st.text(string.ascii_letters + string.digits + " _-", min_size=1, max_size=12)

datetimes = st.builds(
    lambda d, ns, zone: ps.PSDateTime(d.replace(tzinfo=zone), nanosecond=ns),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.sampled_from([0, 100, 500, 900]),
    st.sampled_from(
        [
            None,
            dt.timezone.utc,
            dt.timezone(dt.timedelta(hours=-8)),
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
        ]
    ),
)
# psrpcore 0.3.1 writes 10 whole seconds as "1S" (it strips zeros with rstrip(".0")), so every generated
# duration has a sub-microsecond part; whole durations are covered by the example tests.
durations = st.builds(
    lambda micro, ns: ps.PSDuration(microseconds=micro, nanoseconds=ns),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([100, 700]),
)

primitives = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**64 - 1).map(ps.PSUInt64),
    st.integers(min_value=0, max_value=255).map(ps.PSByte),
    st.integers(min_value=0, max_value=0xFFFF).map(ps.PSChar),
    st.floats(allow_nan=True, allow_infinity=True).map(ps.PSDouble),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**15), max_value=10**15).map(
        Decimal
    ),
    text,
    st.binary(max_size=40),
    st.uuids(),
    datetimes,
    durations,
    st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)).map(
        lambda v: ps.PSVersion(".".join(map(str, v)))
    ),
    st.sampled_from(["https://contoso.com/a b", "file:///tmp/x"]).map(ps.PSUri),
)


def custom_object(members: dict[str, Any]) -> ps.PSCustomObject:
    return ps.PSCustomObject(**members)


trees = st.recursive(
    primitives,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(text, children, max_size=5),
        st.dictionaries(names, children, max_size=5).map(custom_object),
    ),
    max_leaves=25,
)


def serialize(values: list[Any]) -> str:
    return ps.serialize_clixml(list(values), ps.PSCryptoProvider())  # each entry one top-level object


@SETTINGS
@given(st.lists(trees, min_size=1, max_size=4))
def test_what_psrpcore_writes_reads_back_equal(values: list[Any]) -> None:
    document = serialize(values)
    parsed = [item.value for item in parse_clixml(document)]
    assert [normalize_pswrap(v) for v in parsed] == [normalize_psrpcore(v) for v in values]


@SETTINGS
@given(st.lists(trees, min_size=1, max_size=3), st.data())
def test_any_chunking_gives_the_same_result(values: list[Any], data: st.DataObject) -> None:
    raw = ("#< CLIXML\r\n" + serialize(values)).encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    whole = ClixmlReader(keep_references=True)
    expected = whole.feed(raw) + whole.close()
    reader = ClixmlReader(keep_references=True)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        got += reader.feed(raw[start:end])
    got += reader.close()
    assert [(i.stream, normalize_pswrap(i.value)) for i in got] == [
        (i.stream, normalize_pswrap(i.value)) for i in expected
    ]


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_hang_or_crash_with_anything_but_clixml_error(junk: bytes) -> None:
    reader = ClixmlReader()
    try:
        reader.feed(b"<Objs>" + junk)
        reader.close()
    except Exception as exc:
        assert type(exc).__name__ == "ClixmlError", repr(exc)


def test_uuid_strategy_round_trip_example() -> None:
    value = uuid.UUID(int=5)
    assert [i.value for i in parse_clixml(serialize([value]))] == [value]
