"""ps_literal: every value becomes a literal that PowerShell reads back as exactly that value.

Two oracles: the tree-sitter PowerShell grammar (structure: one string literal, no error node) and a
scanner following PowerShell's own single-quote rule (content and where the string really ends),
because the grammar does not know that U+2018-U+201B are quotes too.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pswrap import PSDateTime, PSEnum, PSTimeSpan, RenderError, Secret, SecureString, Version, ps_literal
from tests.psquote import (
    QUOTES,
    decode_string_expression,
    errors,
    node_text,
    parse,
    scan_single_quoted,
    string_literals,
)

HOSTILE = [
    *"'‘’‚‛\"“”„$`(){}@;|&#<>\n\r\t\x00 ",
    "$(",
    "@(",
    "`n",
    "😀",
    "𝕏",
    "\U0010ffff",
    "\u2028",
    "\ufeff",
]
hostile_text = st.one_of(
    st.lists(st.sampled_from(HOSTILE) | st.characters(exclude_categories=["Cs"]), max_size=40).map("".join),
    st.text(st.sampled_from(sorted(QUOTES)), min_size=1, max_size=300),  # long runs of quotes
)
MANY = settings(
    max_examples=3000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
SOME = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def assert_one_string(value: str) -> None:
    literal = ps_literal(value)
    assert decode_string_expression(literal) == value  # PowerShell's rule: content and end exactly
    tree = parse(f"$x = {literal}")
    assert not errors(tree), literal
    nodes = list(string_literals(tree))
    if "\x00" not in value:
        assert len(nodes) == 1 and node_text(nodes[0]) == literal
    else:  # around NUL: single-quoted pieces joined with [char]0, each one literal node
        assert [scan_single_quoted(node_text(n))[0] for n in nodes] == [p for p in value.split("\x00") if p]


@MANY
@given(hostile_text)
def test_any_string_is_one_inert_literal(value: str) -> None:
    assert_one_string(value)


def values_in_order(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in values_in_order(k) + values_in_order(v)]
    return [s for item in value for s in values_in_order(item)]


no_nul = hostile_text.map(lambda s: s.replace("\x00", ""))
nested = st.recursive(
    no_nul, lambda c: st.lists(c, max_size=4) | st.dictionaries(no_nul, c, max_size=4), max_leaves=12
)


@SOME
@given(nested)
def test_strings_nested_in_lists_and_dicts_stay_inert(value: Any) -> None:
    literal = ps_literal(value)
    tree = parse(f"$x = {literal}")
    assert not errors(tree), literal
    found = [scan_single_quoted(node_text(n)) for n in string_literals(tree)]
    assert [text for text, _ in found] == values_in_order(value)
    assert all(end == len(node_text(n)) for (_, end), n in zip(found, string_literals(tree), strict=True))


def test_the_oracle_catches_a_renderer_that_doubles_only_the_ascii_quote() -> None:
    payload = "bob’; Remove-Mailbox x -Confirm:$false; ’"

    def naive(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    literal = naive(payload)
    # tree-sitter is fooled: one harmless-looking string...
    tree = parse(f"Set-Mailbox -Identity {literal}")
    assert not errors(tree) and [node_text(n) for n in string_literals(tree)] == [literal]
    # ...but PowerShell's rule ends the string at the first ’, and Remove-Mailbox would run.
    text, end = scan_single_quoted(literal)
    assert text == "bob" and end < len(literal)
    with pytest.raises(ValueError):
        decode_string_expression(literal)
    assert decode_string_expression(ps_literal(payload)) == payload


def test_known_injection_payloads_stay_inert() -> None:
    data = json.loads(
        (Path(__file__).parent / "data" / "injection_payloads.json").read_text(encoding="utf-8")
    )
    assert len(data["payloads"]) > 20
    for payload in data["payloads"]:
        assert_one_string(payload)


def test_the_literal_forms() -> None:
    assert ps_literal("it's") == "'it''s'"
    assert ps_literal("‘’‚‛'") == "'‘‘’’‚‚‛‛'''"
    assert ps_literal("a\x00b") == "('a' + [char]0 + 'b')"
    assert ps_literal(True) == "$true" and ps_literal(False) == "$false" and ps_literal(None) == "$null"
    assert ps_literal(-5) == "-5" and ps_literal(2**63) == "[bigint]'9223372036854775808'"
    assert ps_literal(1.5) == "1.5" and ps_literal(1e100) == "1e+100" and ps_literal(-0.0) == "-0.0"
    assert ps_literal(float("nan")) == "[double]::NaN"
    assert ps_literal(float("-inf")) == "[double]::NegativeInfinity"
    assert ps_literal(Decimal("1.10")) == "[decimal]'1.10'"
    parse_form = "[cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)"
    utc = PSDateTime(2024, 1, 2, 3, 4, 5, 123456, dt.timezone.utc, nanosecond=700)
    assert ps_literal(utc) == f"[datetime]::Parse('2024-01-02T03:04:05.1234567Z', {parse_form}"
    local = dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))
    assert ps_literal(local) == f"[datetime]::Parse('2024-01-02T00:00:00.0000000-05:30', {parse_form}"
    assert (
        ps_literal(dt.datetime(2024, 1, 2))
        == f"[datetime]::Parse('2024-01-02T00:00:00.0000000', {parse_form}"
    )
    assert ps_literal(PSTimeSpan(ticks=15)) == "[timespan]::new(15)"
    assert ps_literal(dt.timedelta(days=-1)) == "[timespan]::new(-864000000000)"
    assert ps_literal(uuid.UUID(int=1)) == "[guid]'00000000-0000-0000-0000-000000000001'"
    assert ps_literal(Version(3, 1, 0)) == "[version]'3.1.0'"
    assert ps_literal(b"\x00\xff") == "[Convert]::FromBase64String('AP8=')"
    assert ps_literal(PSEnum(2, "Two")) == "2"
    assert (
        ps_literal([]) == "@()" and ps_literal(["a"]) == "@(,'a')" and ps_literal([[1, 2]]) == "@(,@(1, 2))"
    )
    assert ps_literal((1, "b")) == "@(1, 'b')"
    assert ps_literal({"b": 1, "a": [True]}) == "[ordered]@{'b' = 1; 'a' = @(,$true)}"
    assert ps_literal({}) == "[ordered]@{}"


@pytest.mark.parametrize("value", [Secret("canary-secret-9d1"), SecureString("canary-secret-9d1")])
def test_secrets_are_never_rendered(value: Secret) -> None:
    with pytest.raises(RenderError, match="declare it as a parameter") as caught:
        ps_literal({"token": value})
    assert "canary-secret-9d1" not in str(caught.value)


@pytest.mark.parametrize("value", [object(), {1, 2}, "\ud800", Decimal("NaN"), {(1, 2): 3}])
def test_values_without_a_literal_are_refused(value: Any) -> None:
    with pytest.raises(RenderError):
        ps_literal(value)


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RenderError, match="contains itself"):
        ps_literal(loop)
