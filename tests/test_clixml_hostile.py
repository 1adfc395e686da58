"""Hostile CLIXML: every input dimension bounded, shared references as cheap as in the document.

Speed ("linear") is measured by ``benchmarks/clixml.py --hostile``, never timed here: these tests use
limits made small through the reader's keywords, plus one at the real default where that is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pswrap import ClixmlError, ExpansionError, PSObject, to_jsonable
from pswrap.cli import main
from pswrap.clixml import MAX_MARKUP_SIZE, ClixmlItem, ClixmlReader, parse_clixml

NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'
HEAD = f'<Objs Version="1.1.0.1" {NS}>'


def doc(body: str) -> str:
    return f"{HEAD}{body}</Objs>"


def read(data: bytes | str, chunk: int = 0, **limits: int) -> list[ClixmlItem]:
    reader = ClixmlReader(**limits)
    raw = data.encode() if isinstance(data, str) else data
    items: list[ClixmlItem] = []
    step = chunk or len(raw) or 1
    for start in range(0, len(raw), step):
        items += reader.feed(raw[start : start + step])
    return items + reader.close()


def values(data: str) -> list[object]:
    return [item.value for item in parse_clixml(data.encode())]


def parse_cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["parse", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def doubling(levels: int) -> str:
    """Each object refers twice to the one before: ``levels`` objects, 2**levels leaves unfolded."""
    parts = ['<Obj RefId="0"><MS><S N="leaf">x</S></MS></Obj>']
    for i in range(1, levels):
        parts.append(
            f'<Obj RefId="{i}"><MS><Ref N="a" RefId="{i - 1}"/><Ref N="b" RefId="{i - 1}"/></MS></Obj>'
        )
    return doc("".join(parts))


def chain(length: int) -> str:
    """Each object refers to the one before: a graph deeper than any element nesting."""
    parts = ['<Obj RefId="0"><MS><S N="leaf">x</S></MS></Obj>']
    parts += [f'<Obj RefId="{i}"><MS><Ref N="prev" RefId="{i - 1}"/></MS></Obj>' for i in range(1, length)]
    return doc("".join(parts))


# --- 1. shared references and cycles ------------------------------------------------------------


def test_a_small_document_of_doubling_references_is_refused_by_json_not_run_for_ever() -> None:
    text = doubling(60)
    assert len(text) < 5000
    first, again = values(text)[-1], values(text)[-1]
    with pytest.raises(ExpansionError, match="repeat shared objects"):
        to_jsonable(first)
    assert first == again and hash(first) == hash(again)  # each pair of objects compared once
    assert len(repr(first)) < 200
    code, out, err = parse_cli("-", stdin=text)
    assert code == 1 and "Traceback" not in err
    assert "standard input: object 9 not written: its JSON would repeat shared objects" in err
    assert len(out.splitlines()) == 8  # every object before it was written (2**7 leaves is not hostile)


def test_shared_objects_a_document_really_has_are_written_in_full() -> None:
    # Get-Service: RequiredServices and ServicesDependedOn are the same list; Get-AcceptedDomain's
    # Id and Identity the same ADObjectId.
    text = doc(
        '<Obj RefId="0"><Props><Obj N="Id" RefId="1"><ToString>contoso.com</ToString><Props>'
        '<S N="Name">contoso.com</S></Props></Obj><Ref N="Identity" RefId="1"/>'
        '<Obj N="Required" RefId="2"><LST><S>RpcSs</S></LST></Obj><Ref N="DependedOn" RefId="2"/>'
        "</Props></Obj>"
    )
    data = to_jsonable(values(text)[0])
    assert data["Identity"] == data["Id"] == {"Name": "contoso.com"}
    assert data["DependedOn"] == data["Required"] == ["RpcSs"]
    # Fifty members of a list referring to one server object of thirty members: written fifty times.
    server = "".join(f'<S N="P{i}">{i}</S>' for i in range(30))
    refs = "".join('<Ref RefId="s"/>' for _ in range(49))
    fan = doc(f'<Obj RefId="0"><LST><Obj RefId="s"><MS>{server}</MS></Obj>{refs}</LST></Obj>')
    written = to_jsonable(values(fan)[0])
    assert len(written) == 50 and all(entry == written[0] for entry in written) and len(written[0]) == 30


def test_a_chain_deeper_than_the_stack_is_read_compared_and_written() -> None:
    text = chain(3000)
    last, again = values(text)[-1], values(text)[-1]
    assert last == again and hash(last) == hash(again) and len(repr(last)) < 200
    data = to_jsonable(last)
    depth = 0
    while isinstance(data, dict) and "prev" in data:
        data, depth = data["prev"], depth + 1
    assert depth == 256 and data == "PSObject"  # past the JSON depth: its ToString, as ConvertTo-Json
    code, out, err = parse_cli("-", stdin=text)
    assert code == 0 and not err and len(out.splitlines()) == 3000
    json.loads(out.splitlines()[-1])


def test_cycles_compare_by_shape_and_write_their_tostring() -> None:
    text = doc('<Obj RefId="0"><ToString>me</ToString><MS><Ref N="self" RefId="0"/><S N="n">1</S></MS></Obj>')
    one, two = values(text)[0], values(text)[0]
    assert one is one.self and one == two and hash(one) == hash(two)
    assert to_jsonable(one) == {"self": "me", "n": "1"}
    other = values(text.replace('<S N="n">1</S>', '<S N="n">2</S>'))[0]
    assert one != other


def test_a_dictionary_key_nested_deeper_than_a_list_is_refused() -> None:
    key = '<Obj N="Key" RefId="k"><LST><Obj RefId="k2"><LST><S>a</S></LST></Obj></LST></Obj>'
    text = doc(f'<Obj RefId="0"><DCT><En>{key}<S N="Value">v</S></En></DCT></Obj>')
    with pytest.raises(ClixmlError, match="dictionary key that is a list or dictionary holding"):
        values(text)


# --- 2. hashing ---------------------------------------------------------------------------------


def test_objects_of_one_type_hash_apart_so_a_dictionary_of_them_is_linear() -> None:
    keys = "".join(
        f'<En><Obj N="Key" RefId="{i}"><TNRef RefId="0"/><Props><I32 N="Id">{i}</I32></Props></Obj>'
        f'<I32 N="Value">{i}</I32></En>'
        for i in range(1, 2000)
    )
    first = '<En><Obj N="Key" RefId="0"><TN RefId="0"><T>Thing</T></TN><Props><I32 N="Id">0</I32></Props></Obj><I32 N="Value">0</I32></En>'
    table = values(doc(f'<Obj RefId="t"><DCT>{first}{keys}</DCT></Obj>'))[0]
    assert len(table) == 2000
    assert len({hash(key) for key in table}) == 2000  # it used to be one hash for all of them
    probe = PSObject({"Id": 7}, type_names=("Thing",))
    assert table[probe] == 7


# --- 3. lone surrogates and broken UTF-16 -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "table"])
def test_lone_surrogates_reach_every_output_format_as_escapes(fmt: str) -> None:
    text = doc('<S>a_xD800_b</S><C>55296</C><Obj RefId="0"><MS><S N="x">_xDFFF_</S></MS></Obj>')
    assert values(text)[:2] == ["a\ud800b", "\ud800"]
    code, out, err = parse_cli("--format", fmt, "-", stdin=text)
    assert code == 0 and not err, err
    assert "\\ud800" in out and "\\udfff" in out
    if fmt == "ndjson":
        assert [json.loads(line) for line in out.splitlines()] == ["a\ud800b", "\ud800", {"x": "\udfff"}]


UTF16 = (
    "\ufeff#< CLIXML\r\n"
    + doc('<Obj RefId="0"><MS><S N="Name">caf\u00e9 \U0001f600</S><I32 N="n">1</I32></MS></Obj><S>two</S>')
).encode("utf-16-le")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(UTF16)), chunk=st.integers(1, 64))
def test_every_truncation_of_utf16_gives_items_or_a_clixml_error(cut: int, chunk: int) -> None:
    try:
        items = read(UTF16[:cut], chunk)
    except ClixmlError:
        return
    assert len(items) in (0, 2) and (cut == len(UTF16) or cut <= 2 or len(items) == 0)


def test_a_bad_surrogate_in_a_later_utf16_chunk_is_a_clixml_error() -> None:
    reader = ClixmlReader()
    good = ("\ufeff" + HEAD + "<S>ok</S><S>").encode("utf-16-le")
    assert [i.value for i in reader.feed(good)] == ["ok"]
    with pytest.raises(ClixmlError, match="not valid utf-16-le text"):
        reader.feed(b"\x00\xd8A\x00")  # a high surrogate followed by 'A'


def test_utf16_ending_at_an_odd_byte_is_a_clixml_error() -> None:
    with pytest.raises(ClixmlError, match="ends in the middle of a character") as caught:
        read(("\ufeff" + doc("<S>one</S>")).encode("utf-16-le") + b"\x00")
    assert [i.value for i in caught.value.items] == []  # the items came before, from feed()


# --- 4. size limits -----------------------------------------------------------------------------


def test_a_value_of_escapes_counts_as_written() -> None:
    text = doc("<S>" + "_x0041_" * 20 + "</S>")
    assert values(text) == ["A" * 20]
    with pytest.raises(ClixmlError, match="larger than 100 characters"):
        read(text, 16, max_value_size=100)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (f'<S N="{"v" * 300}">x</S>', "tag"),
        (f"<{'E' * 300}/>", "tag"),
        ("<S " + " ".join(f'a{i}="1"' for i in range(60)) + ">x</S>", "tag"),
        (f"<!-- {'c' * 300} -->", "comment"),
        (f"<!-- {'<a>' * 100} -->", "comment"),
        (f"<?pi {'p' * 300}?>", "processing instruction"),
    ],
)
def test_markup_past_the_limit_is_refused_keeping_what_came_before(body: str, kind: str) -> None:
    text = doc("<S>before</S>" + body + "<S>after</S>")
    for chunk in (7, 64, 0):
        with pytest.raises(ClixmlError, match=f"a {kind} longer than 256 bytes") as caught:
            read(text, chunk, max_markup_size=256)
        assert len(str(caught.value)) < 300
    assert [i.value for i in read(text.replace(body, "")).__iter__()] == ["before", "after"]


def test_a_processing_instruction_before_the_document_is_bounded() -> None:
    text = f"<?xml {'x' * 300}?>" + doc("<S>a</S>")
    assert [i.value for i in read(text, 5)] == ["a"]
    with pytest.raises(ClixmlError, match="processing instruction longer than 256 bytes"):
        read(text, 5, max_markup_size=256)


def test_the_default_markup_limit_refuses_a_megabyte_attribute() -> None:
    huge = f'<S N="{"v" * MAX_MARKUP_SIZE}">x</S>'
    with pytest.raises(ClixmlError, match=f"a tag longer than {MAX_MARKUP_SIZE} bytes"):
        read(doc("<S>a</S>" + huge), 65536)


def test_too_many_attributes_and_long_names_in_messages() -> None:
    many = "<S " + " ".join(f'a{i}="1"' for i in range(10)) + ">x</S>"
    with pytest.raises(ClixmlError, match="has more than 8 attributes"):
        read(doc(many), max_attributes=8)
    with pytest.raises(ClixmlError, match="unknown element") as caught:
        read(doc(f"<{'N' * 100_000}></{'N' * 100_000}>"))
    assert len(str(caught.value)) < 300 and "100000 characters" in str(caught.value)


def test_type_name_tables_are_kept_least_recently_used_first() -> None:
    objects = "".join(
        f'<Obj RefId="{i}"><TN RefId="{i}"><T>Type{i}</T></TN><ToString>{i}</ToString></Obj>'
        for i in range(10)
    )
    reader = ClixmlReader(type_name_window=4)
    items = reader.feed(HEAD + objects + '<Obj RefId="a"><TNRef RefId="9"/><ToString>ok</ToString></Obj>')
    assert items[-1].value.type_names == ("Type9",)
    assert len(reader._type_names) == 4  # the memory a stream of new type names holds stays bounded
    with pytest.raises(ClixmlError, match=r"names no earlier <TN> still held .* 4 most recently used"):
        reader.feed('<Obj RefId="b"><TNRef RefId="0"/></Obj>')


MARKUP = doc(
    '<!-- a <comment> with > inside --><?pi with <angles> and ?><Obj RefId="0" N=\'q>"\'>'
    '<TN RefId="0"><T>A&gt;B</T></TN><MS><S N="a>b">x &lt;y&gt; z</S><S N="c"><![CDATA[<not/> a tag]]></S>'
    "</MS></Obj><S>after</S>"
)


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(1, len(MARKUP) - 1), max_size=12))
def test_where_the_chunks_break_changes_nothing(cuts: list[int]) -> None:
    raw = MARKUP.encode()
    reader = ClixmlReader(max_markup_size=100)
    items: list[ClixmlItem] = []
    start = 0
    for cut in sorted(set(cuts)):
        items += reader.feed(raw[start:cut])
        start = cut
    items += reader.feed(raw[start:]) + reader.close()
    first, after = (i.value for i in items)
    assert first.type_names == ("A>B",) and first["a>b"] == "x <y> z" and first.c == "<not/> a tag"
    assert after == "after"


# --- 5. empty input -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "  \r\n", "#< CLIXML\r\n"])
def test_input_without_a_document_is_an_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(ClixmlError, match="no CLIXML document"):
        list(parse_clixml(content.encode(), require_document=True))
    assert list(parse_clixml(content.encode())) == []  # a stream that wrote nothing, by default
    path = tmp_path / "empty.xml"
    path.write_text(content)
    code, out, err = parse_cli(str(path))
    assert code == 1 and not out and f"no CLIXML document (<Objs>) in the input: it is empty ({path})" in err
    code, _, err = parse_cli("-", stdin=content)
    assert code == 1 and "no CLIXML document" in err
    assert list(parse_clixml(doc("").encode())) == []  # an empty <Objs> is a document
