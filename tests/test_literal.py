"""``ps_literal``: every value as a PowerShell literal that reads back exactly and cannot be broken out of.

Two oracles judge every string: the tree-sitter PowerShell grammar (one string-literal node spanning the
whole literal) and a scanner following PowerShell's own rule for all five single quotes (which the
grammar does not know). See tests/psquote.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pswrap import ps_literal
from pswrap.errors import RenderError
from pswrap.objects import PSDateTime, PSEnum, PSObject, PSTimeSpan, SecureString, Version
from pswrap.secret import Secret
from tests.psquote import (
    DOUBLE_QUOTES,
    SINGLE_QUOTES,
    decode_verbatim,
    parse,
    problems,
    scan_single_quoted,
    split_strings,
    string_literals,
)

# Fixed seed and no deadline: the same examples on every run and every machine.
THOROUGH = settings(
    max_examples=3000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
NESTED = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

HOSTILE_PIECES = [
    *SINGLE_QUOTES,
    *DOUBLE_QUOTES,
    "$",
    "`",
    "$(",
    "@(",
    ")",
    "${",
    "}",
    "{",
    ";",
    "|",
    "&",
    "#",
    "<#",
    "#>",
    "@'",
    "'@",
    '@"',
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\t",
    " ",
    "\u2028",
    "\x85",
    "\ufeff",
    "😀",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0010ffff",
    "$(Remove-Mailbox x -Confirm:$false)",
    "; Remove-Mailbox x -Confirm:$false; ",
    "`$env:PATH",
    "\\",
]
piece = st.one_of(
    st.sampled_from(HOSTILE_PIECES),
    st.characters(exclude_categories=("Cs",)),  # anything but a lone surrogate (refused: see below)
    st.builds(lambda text, n: text * n, st.sampled_from(HOSTILE_PIECES), st.integers(2, 300)),
)
hostile = st.lists(piece, max_size=40).map("".join)


def assert_one_string(literal: str, value: str) -> None:
    """Both oracles: exactly one string literal, covering all of ``literal``, whose content is ``value``."""
    content, end = scan_single_quoted(literal)
    assert end == len(literal), f"PowerShell would end the string at {end} of {len(literal)}"
    assert content == value
    statement = f"$v = {literal}"
    tree = parse(statement)
    assert problems(tree) == []
    nodes = string_literals(statement)
    assert len(nodes) == 1
    assert (nodes[0].start, nodes[0].end) == (5, len(statement))
    assert decode_verbatim(nodes[0].text) == value


# --------------------------------------------------------------------------------------------------
# The forms
# --------------------------------------------------------------------------------------------------

UTC = dt.timezone.utc
GUID = uuid.UUID("0b4f9bd2-3c1e-4b5a-9f5e-2d6c8a7e1f30")
ROUNDTRIP = "[cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)"

FORMS: list[tuple[Any, str]] = [
    ("", "''"),
    ("bob", "'bob'"),
    ("it's", "'it''s'"),
    ("‘’‚‛'", "'‘‘’’‚‚‛‛'''"),
    ('say "$(hi)" `n', "'say \"$(hi)\" `n'"),
    (True, "$true"),
    (False, "$false"),
    (None, "$null"),
    (0, "0"),
    (-42, "-42"),
    (2**63 - 1, "9223372036854775807"),
    (-(2**63), "-9223372036854775808"),
    (2**63, "[bigint]'9223372036854775808'"),
    (-(2**70), "[bigint]'-1180591620717411303424'"),
    (1.5, "1.5"),
    (1e100, "1e+100"),
    (-0.0, "-0.0"),
    (5e-324, "5e-324"),
    (float("nan"), "[double]::NaN"),
    (float("inf"), "[double]::PositiveInfinity"),
    (float("-inf"), "[double]::NegativeInfinity"),
    (Decimal("1.10"), "[decimal]'1.10'"),
    (Decimal("-0.000001"), "[decimal]'-0.000001'"),
    (Decimal("1E+3"), "[decimal]'1000'"),
    (Decimal(2**96 - 1), "[decimal]'79228162514264337593543950335'"),
    (Decimal("-0.0000000000000000000000000001"), "[decimal]'-0.0000000000000000000000000001'"),
    (Decimal("1." + "0" * 30), "[decimal]'1." + "0" * 28 + "'"),
    (
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        f"[datetime]::Parse('2024-05-06T07:08:09.1234560Z', {ROUNDTRIP}",
    ),
    (
        PSDateTime(2024, 5, 6, 7, 8, 9, 123456, nanosecond=700),
        f"[datetime]::Parse('2024-05-06T07:08:09.1234567', {ROUNDTRIP}",
    ),
    (
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        f"[datetime]::Parse('2024-01-02T03:04:05.0000000-05:30', {ROUNDTRIP}",
    ),
    (
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(seconds=30))),
        f"[datetime]::Parse('2024-01-02T03:03:35.0000000Z', {ROUNDTRIP}",
    ),
    (dt.timedelta(days=1, seconds=2, microseconds=3), "[timespan]::new(864020000030)"),
    (dt.timedelta(microseconds=-1), "[timespan]::new(-10)"),
    (PSTimeSpan(ticks=12_345_678_901), "[timespan]::new(12345678901)"),
    (GUID, "[guid]'0b4f9bd2-3c1e-4b5a-9f5e-2d6c8a7e1f30'"),
    (Version(3, 1, 0), "[version]'3.1.0'"),
    (Version(1, 2, 3, 4), "[version]'1.2.3.4'"),
    (b"", "[Convert]::FromBase64String('')"),
    (b"\x00\xffhi", "[Convert]::FromBase64String('AP9oaQ==')"),
    (bytearray(b"ab"), "[Convert]::FromBase64String('YWI=')"),
    (PSEnum(3, "Read, Write", ("System.IO.FileAccess",)), "3"),
    ([], "@()"),
    ((), "@()"),
    (["one"], "@(,'one')"),
    ([[]], "@(,@())"),
    ([1, "two", None], "@(1, 'two', $null)"),
    ((1, [2, [3]]), "@(1, @(2, @(,3)))"),
    ({}, "[ordered]@{}"),
    ({"b": 1, "a": [True]}, "[ordered]@{'b' = 1; 'a' = @(,$true)}"),
    ({1: {"x’": None}}, "[ordered]@{1 = [ordered]@{'x’’' = $null}}"),
]


@pytest.mark.parametrize(("value", "expected"), FORMS, ids=[repr(v)[:40] for v, _ in FORMS])
def test_each_type_has_its_exact_form(value: Any, expected: str) -> None:
    assert ps_literal(value) == expected


@pytest.mark.parametrize(("value", "expected"), FORMS, ids=[repr(v)[:40] for v, _ in FORMS])
def test_each_form_parses_as_one_expression(value: Any, expected: str) -> None:
    statement = f"$v = {ps_literal(value)}"
    assert problems(parse(statement)) == []
    # Whatever strings the form holds end where the grammar and PowerShell's rule both say.
    rest, _ = split_strings(statement)
    assert rest.count("''") == len(string_literals(statement))


def test_sub_microsecond_ticks_survive_an_offset_of_seconds() -> None:
    odd = PSDateTime(2024, 1, 1, 0, 0, 30, 5, nanosecond=300, tzinfo=dt.timezone(dt.timedelta(seconds=30)))
    assert "'2024-01-01T00:00:00.0000053Z'" in ps_literal(odd)


def test_bool_is_not_rendered_as_an_int() -> None:
    assert [ps_literal(True), ps_literal(1)] == ["$true", "1"]


def test_datetime_keeps_all_seven_fractional_digits_and_the_kind() -> None:
    naive = ps_literal(dt.datetime(1, 1, 1))
    assert "'0001-01-01T00:00:00.0000000'" in naive
    local = PSDateTime(
        2024, 2, 29, 23, 59, 59, 999999, nanosecond=900, tzinfo=dt.timezone(dt.timedelta(hours=14))
    )
    assert "'2024-02-29T23:59:59.9999999+14:00'" in ps_literal(local)


# --------------------------------------------------------------------------------------------------
# Strings: the property, with both oracles
# --------------------------------------------------------------------------------------------------


@THOROUGH
@given(hostile)
def test_any_string_is_one_literal_that_decodes_to_itself(value: str) -> None:
    assert_one_string(ps_literal(value), value)


@pytest.mark.parametrize("quote", sorted(SINGLE_QUOTES))
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_runs_of_each_quote_and_mixed_pairs(quote: str, count: int) -> None:
    for other in SINGLE_QUOTES:
        value = (quote + other) * count + quote
        assert_one_string(ps_literal(value), value)
        assert_one_string(ps_literal(quote * count), quote * count)


def test_lone_surrogates_are_refused_with_their_position() -> None:
    # A lone surrogate is not a character: UTF-8, UTF-16 on the wire and XML all refuse it, so it can
    # never reach PowerShell intact. Refusing is better than sending a replacement character.
    with pytest.raises(RenderError, match=r"lone surrogate U\+D83D at index 2"):
        ps_literal("ab\ud83d")
    with pytest.raises(RenderError, match=r"U\+DC00"):
        ps_literal(["fine", {"k": "\udc00"}])


def test_nul_is_kept_as_a_character() -> None:
    # PowerShell's tokenizer reads NUL inside a string as a character (it stops only at the real end).
    assert ps_literal("a\x00b") == "'a\x00b'"
    assert_one_string(ps_literal("\x00'\x00"), "\x00'\x00")


# --------------------------------------------------------------------------------------------------
# Nested values
# --------------------------------------------------------------------------------------------------

scalars = st.one_of(hostile, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(), st.floats())
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(hostile, children, max_size=4),
    ),
    max_leaves=12,
)


def strings_in(value: Any) -> list[str]:
    """Every string in ``value`` in the order its literal writes them (keys before their values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in strings_in(item)]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [*strings_in(key), *strings_in(item)]]
    return []


def blank_strings(value: Any) -> Any:
    """``value`` with every string made empty and string keys numbered (so none collide)."""
    if isinstance(value, str):
        return ""
    if isinstance(value, (list, tuple)):
        return [blank_strings(item) for item in value]
    if isinstance(value, dict):
        return {f"k{i}": blank_strings(item) for i, item in enumerate(value.values())}
    return value


def dict_keys_collide(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(dict_keys_collide(item) for item in value)
    if isinstance(value, dict):
        folded = [key.upper() for key in value]
        return len(set(folded)) != len(folded) or any(dict_keys_collide(v) for v in value.values())
    return False


@NESTED
@given(nested)
def test_strings_nested_in_lists_and_dicts_stay_inside_their_literals(value: Any) -> None:
    try:
        literal = ps_literal(value)
    except RenderError as exc:
        # The one refusal possible here: two keys PowerShell would call the same (it ignores case).
        assert dict_keys_collide(value), exc
        return
    statement = f"$v = {literal}"
    assert problems(parse(statement)) == []
    # PowerShell's rule: the strings come out exactly, and what is left is the shape of the value.
    rest, found = split_strings(statement)
    assert found == strings_in(value)
    skeleton = f"$v = {ps_literal(blank_strings(value))}"
    assert rest == _blank_keys(skeleton)
    # The grammar agrees on every string's extent and content.
    nodes = string_literals(statement)
    assert [decode_verbatim(node.text) for node in nodes] == found


def _blank_keys(skeleton: str) -> str:
    rest, _ = split_strings(skeleton)
    return rest


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------


def test_a_secret_is_refused_and_the_message_says_to_declare_a_parameter() -> None:
    canary = "canary-secret-7d1f0a"
    for value in (Secret(canary, "client secret"), SecureString(canary), ["x", {"k": Secret(canary)}]):
        with pytest.raises(RenderError, match="declare it as a parameter") as caught:
            ps_literal(value)
        assert canary not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (PSObject(), "PSObject"),
        ({1, 2}, "builtins.set"),
        (frozenset(), "builtins.frozenset"),
        (object(), "builtins.object"),
        (1 + 2j, "builtins.complex"),
        (dt.date(2024, 1, 1), "datetime.date"),
        (Decimal("NaN"), "NaN"),
        (Decimal("1E+40"), "System.Decimal"),
        (Decimal("1E-29"), "28 decimal places"),
        (Decimal("12345678901234567890123456789.5"), "29 significant digits"),
        (Decimal(2**96), "does not fit"),
        (dt.timedelta(days=999_999_999), "TimeSpan"),
        ({None: 1}, "key cannot be NoneType"),
        ({"Name": 1, "NAME": 2}, "ignore case"),
        ({"1": "a", 1: "b"}, "same key"),
    ],
)
def test_values_without_a_safe_literal_are_refused_naming_why(value: Any, named: str) -> None:
    with pytest.raises(RenderError, match=named.replace("+", r"\+")):
        ps_literal(value)


def test_a_list_that_contains_itself_is_refused() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(RenderError, match="contains itself"):
        ps_literal(looped)
    shared = ["x"]
    assert ps_literal([shared, shared]) == "@(@(,'x'), @(,'x'))"  # the same list twice is fine


# --------------------------------------------------------------------------------------------------
# The second oracle earns its place
# --------------------------------------------------------------------------------------------------

U2019_PAYLOAD = "bob’; Remove-Mailbox x -Confirm:$false; ’"


def naive_literal(value: str) -> str:
    """What most wrappers do: double only the ASCII quote."""
    return "'" + value.replace("'", "''") + "'"


def test_the_scanner_catches_the_naive_renderer_on_the_u2019_payload() -> None:
    literal = naive_literal(U2019_PAYLOAD)
    content, end = scan_single_quoted(literal)
    assert content == "bob"  # PowerShell ends the string at the ’ …
    assert literal[end:].startswith("; Remove-Mailbox x")  # … and runs what follows.
    with pytest.raises(AssertionError):
        assert_one_string(literal, U2019_PAYLOAD)
    assert_one_string(ps_literal(U2019_PAYLOAD), U2019_PAYLOAD)


def test_the_grammar_alone_would_have_passed_the_naive_renderer() -> None:
    statement = f"$v = {naive_literal(U2019_PAYLOAD)}"
    assert problems(parse(statement)) == []
    assert len(string_literals(statement)) == 1  # one harmless string, says tree-sitter: wrong


@pytest.mark.parametrize("quote", sorted(SINGLE_QUOTES - {"'"}))
def test_the_scanner_catches_every_curly_quote_the_naive_renderer_misses(quote: str) -> None:
    payload = f"x{quote}; Stop-Computer; {quote}"
    _, end = scan_single_quoted(naive_literal(payload))
    assert end < len(naive_literal(payload))
    assert_one_string(ps_literal(payload), payload)
