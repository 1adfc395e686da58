"""The streaming CLIXML reader, against real PowerShell output, psrpcore, and hostile input."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from psrpcore.types import PSCryptoProvider, deserialize_clixml

from pswrap import (
    ClixmlError,
    ErrorRecord,
    ProgressRecord,
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
    XmlDocument,
)
from pswrap.clixml import ClixmlItem, ClixmlReader, parse_clixml
from pswrap.transports._convert import from_psrp
from tests.clixml_normal import normalize_psrpcore, normalize_pswrap

NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'


def doc(*elements: str) -> str:
    return f'<Objs Version="1.1.0.1" {NS}>' + "".join(elements) + "</Objs>"


def values(text: str | bytes) -> list[Any]:
    return [item.value for item in parse_clixml(text)]


def one(element: str) -> Any:
    (value,) = values(doc(element))
    return value


# --------------------------------------------------------------------------------------------------
# The real corpus
# --------------------------------------------------------------------------------------------------

NOT_WELL_FORMED = {"spe-get-current-user.xml"}  # wrapped in stray double quotes as stored


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(corpus.glob("*.xml"))


def manifest(corpus: Path) -> dict[str, str]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as handle:
        return {row["file"]: row["contains"] for row in csv.DictReader(handle, delimiter="\t")}


def test_every_corpus_file_parses_and_matches_its_manifest(corpus_dir: Path) -> None:
    described = manifest(corpus_dir)
    checked = 0
    for path in corpus_files(corpus_dir):
        if path.name in NOT_WELL_FORMED:
            continue
        items = list(parse_clixml(path))
        match = re.search(r"(\d+) top-level x (\S+)", described.get(path.name, ""))
        if match:
            count, type_name = int(match.group(1)), match.group(2).rstrip(";")
            assert len(items) == count, path.name
            first = items[0].value
            if isinstance(first, PSObject):
                assert first.type_names[0] == type_name, path.name
            checked += 1
        if "empty <Objs/>" in described.get(path.name, ""):
            assert items == []
    assert checked > 50


def test_a_file_that_is_not_well_formed_fails_clearly(corpus_dir: Path) -> None:
    path = corpus_dir / "spe-get-current-user.xml"
    with pytest.raises(ClixmlError) as caught:
        list(parse_clixml(path))
    assert "expected '<Objs'" in str(caught.value) and path.name in str(caught.value)
    assert caught.value.offset == 0


def _agrees(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            _agrees(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _agrees(a, b, f"{where}[{index}]")
    else:
        assert ours == theirs, where


def read_by_both(corpus: Path) -> list[tuple[str, list[ClixmlItem], list[Any]]]:
    """(file name, the reader's items, psrpcore's values) for every corpus file psrpcore also reads."""
    both = []
    for path in corpus_files(corpus):
        raw = path.read_bytes()
        text = raw.decode("utf-16") if raw.startswith(codecs.BOM_UTF16_LE) else raw.decode("utf-8-sig")
        try:
            theirs = deserialize_clixml(text, PSCryptoProvider())
        except Exception:  # psrpcore fails on some real files (empty <Objs/>, not well-formed): skip those
            continue
        reader = ClixmlReader(keep_references=True)
        both.append((path.name, reader.feed(raw) + reader.close(), theirs))
    assert len(both) >= 65
    return both


def test_agrees_with_psrpcore_wherever_psrpcore_parses(corpus_dir: Path) -> None:
    for name, ours, theirs in read_by_both(corpus_dir):
        assert len(ours) == len(theirs), name
        for index, (item, value) in enumerate(zip(ours, theirs, strict=True)):
            _agrees(normalize_pswrap(item.value), normalize_psrpcore(value), f"{name}[{index}]")


def test_psrp_objects_convert_to_what_the_reader_gives(corpus_dir: Path) -> None:
    """The PSRP transports hand back psrpcore's objects through from_psrp; a value must look the same
    whichever way it came, so every real file psrpcore reads converts to exactly the reader's values."""
    for name, ours, theirs in read_by_both(corpus_dir):
        for index, (item, value) in enumerate(zip(ours, theirs, strict=True)):
            _agrees(
                normalize_pswrap(item.value, both_pswrap=True),
                normalize_pswrap(from_psrp(value), both_pswrap=True),
                f"{name}[{index}]",
            )


def test_stderr_capture_gives_progress_and_error_records(corpus_dir: Path) -> None:
    items = list(parse_clixml(corpus_dir / "pypsrp-sanitise-with-error.xml"))
    assert [i.stream for i in items[:2]] == ["progress", "progress"]
    progress = items[0].value
    assert isinstance(progress, ProgressRecord)
    assert progress.activity == "Preparing modules for first use." and progress.completed
    errors = [i.value for i in items if i.stream == "error"]
    assert all(isinstance(e, ErrorRecord) for e in errors)
    assert errors[0].message.startswith("fake : The term 'fake' is not recognized")
    assert not errors[0].message.endswith("\r\n")


def test_utf16_files_read_like_utf8(corpus_dir: Path) -> None:
    (signature,) = values((corpus_dir / "cssx-shared-acs_test-signedby3rdparty.xml").read_bytes())
    assert isinstance(signature, PSObject) and signature.is_a("System.Management.Automation.Signature")
    assert values((corpus_dir / "or1ko-s.xml").read_bytes()) == ["hello", "world", True]


def test_refs_across_top_level_objects_resolve_to_the_same_object(corpus_dir: Path) -> None:
    services = [i.value for i in parse_clixml(corpus_dir / "cssx-hc-e19-getservice1.xml")]
    assert len(services) == 254
    # <Ref N="RequiredServices" RefId="2" /> names the list sent as ServicesDependedOn: the same object.
    assert any(s.RequiredServices is s.ServicesDependedOn and s.RequiredServices for s in services)


# --------------------------------------------------------------------------------------------------
# Every tag
# --------------------------------------------------------------------------------------------------


def test_primitives() -> None:
    element = (
        "<S>a_x000D__x000A_b</S><C>9731</C><B>true</B><By>255</By><SB>-128</SB><U16>65535</U16>"
        "<I16>-5</I16><U32>4294967295</U32><I32>-7</I32><U64>18446744073709551615</U64>"
        "<I64>-9223372036854775808</I64><Sg>1.5</Sg><Db>-INF</Db><Db>NaN</Db><D>79228162514264337593543950335</D>"
        "<BA>AAEC</BA><G>3f2504e0-4f89-11d3-9a0c-0305e82c3301</G><URI>https://contoso.com/a?b=c</URI>"
        "<Version>1.2.3.4</Version><XD>&lt;a/&gt;</XD><SBK>Get-Date</SBK><Nil />"
    )
    got = values(doc(element))
    assert got[:9] == ["a\r\nb", "☃", True, 255, -128, 65535, -5, 4294967295, -7]
    assert got[9:12] == [2**64 - 1, -(2**63), 1.5]
    assert got[12] == float("-inf") and got[13] != got[13]
    assert got[14] == Decimal("79228162514264337593543950335")
    assert got[15] == b"\x00\x01\x02"
    assert got[16] == uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert got[17] == "https://contoso.com/a?b=c" and isinstance(got[17], Uri)
    assert got[18] == Version(1, 2, 3, 4)
    assert isinstance(got[19], XmlDocument) and got[19] == "<a/>"
    assert isinstance(got[20], ScriptBlock) and got[20] == "Get-Date"
    assert got[21] is None


def test_datetimes_keep_kind_offset_and_ticks() -> None:
    utc, local, naive = values(
        doc(
            "<DT>2024-05-06T07:08:09.1234567Z</DT>",
            "<DT>2024-05-06T07:08:09.5+05:30</DT>",
            "<DT>2024-05-06T07:08:09</DT>",
        )
    )
    assert isinstance(utc, PSDateTime) and utc.tzinfo == dt.timezone.utc and utc.nanosecond == 700
    assert utc.isoformat() == "2024-05-06T07:08:09.1234567+00:00"
    assert local.utcoffset() == dt.timedelta(hours=5, minutes=30) and local.microsecond == 500000
    assert naive.tzinfo is None


def test_durations_keep_ticks() -> None:
    span, negative, zero = values(
        doc("<TS>P1DT2H3M4.5678901S</TS>", "<TS>-PT0.0000001S</TS>", "<TS>PT0S</TS>")
    )
    assert isinstance(span, PSTimeSpan)
    assert span.ticks == ((((1 * 24 + 2) * 60 + 3) * 60 + 4) * 10_000_000) + 5_678_901
    assert negative.ticks == -1 and zero.ticks == 0


def test_string_escapes() -> None:
    assert one("<S>a_x005F_x0064_</S>") == "a_x0064_"  # _x005F_ is a literal _ and nothing further
    assert one("<S>_xD83D__xDE00_</S>") == "😀"
    assert one("<S>tab_x0009_nul_x0000_</S>") == "tab\tnul\x00"
    obj = one('<Obj RefId="0"><MS><S N="a_x0020_b">v</S></MS></Obj>')
    assert obj["a b"] == "v"


def test_objects_type_names_tostring_and_member_kinds() -> None:
    value = one(
        '<Obj RefId="0"><TN RefId="0"><T>Deserialized.My.Mailbox</T><T>Deserialized.System.Object</T></TN>'
        '<ToString>Bob</ToString><Props><S N="Name">Bob</S></Props><MS><I32 N="Size">3</I32></MS></Obj>'
    )
    assert isinstance(value, PSObject)
    assert value.type_names == ("Deserialized.My.Mailbox", "Deserialized.System.Object")
    assert str(value) == "Bob" and value.Name == "Bob" and value.Size == 3
    assert dict(value.adapted) == {"Name": "Bob"} and dict(value.extended) == {"Size": 3}


def test_tnref_and_ref_span_the_whole_document() -> None:
    first, second = values(
        doc(
            '<Obj RefId="0"><TN RefId="0"><T>A</T></TN><MS><Obj N="Shared" RefId="1"><MS><S N="x">1</S></MS></Obj></MS></Obj>',
            '<Obj RefId="2"><TNRef RefId="0" /><MS><Ref N="Shared" RefId="1" /></MS></Obj>',
        )
    )
    assert second.type_names == ("A",)
    assert second.Shared is first.Shared


def test_collections() -> None:
    lst, stack, queue, table, ie = values(
        doc(
            '<Obj RefId="0"><LST><I32>1</I32><S>two</S></LST></Obj>',
            '<Obj RefId="1"><STK><I32>3</I32><I32>2</I32></STK></Obj>',
            '<Obj RefId="2"><QUE><I32>1</I32></QUE></Obj>',
            '<Obj RefId="3"><DCT><En><S N="Key">b</S><I32 N="Value">1</I32></En>'
            '<En><I32 N="Key">1</I32><S N="Value">one</S></En></DCT></Obj>',
            '<Obj RefId="4"><IE><B>true</B></IE></Obj>',
        )
    )
    assert lst == [1, "two"] and type(lst) is list
    assert isinstance(stack, PSStack) and stack == [3, 2]
    assert isinstance(queue, PSQueue) and queue == [1]
    assert table == {"b": 1, 1: "one"} and list(table) == ["b", 1]
    assert ie == [True]


def test_enums_and_flags_are_ints_with_names() -> None:
    color, flags = values(
        doc(
            '<Obj RefId="0"><TN RefId="0"><T>System.ConsoleColor</T><T>System.Enum</T><T>System.ValueType</T>'
            "<T>System.Object</T></TN><ToString>Red</ToString><I32>12</I32></Obj>",
            '<Obj RefId="1"><TN RefId="1"><T>System.IO.FileAccess</T><T>System.Enum</T></TN>'
            "<ToString>Read, Write</ToString><I32>3</I32></Obj>",
        )
    )
    assert isinstance(color, PSEnum) and color == 12 and str(color) == "Red"
    assert color.type_name == "System.ConsoleColor"
    assert flags.names == ("Read", "Write") and flags == 3


def test_wrapped_values() -> None:
    line, date, hashtable, odd = values(
        doc(
            '<Obj RefId="0"><TN RefId="0"><T>System.String</T></TN><ToString>x</ToString><S>x</S>'
            '<MS><S N="PSPath">C:\\a.txt</S></MS></Obj>',
            '<Obj RefId="1"><DT>2024-01-01T00:00:00</DT><MS><Obj N="DisplayHint" RefId="2"><TN RefId="1">'
            "<T>Microsoft.PowerShell.Commands.DisplayHintType</T><T>System.Enum</T></TN><ToString>DateTime"
            "</ToString><I32>2</I32></Obj></MS></Obj>",
            '<Obj RefId="3"><TN RefId="2"><T>System.Collections.Hashtable</T></TN><DCT /><Props>'
            '<I32 N="Count">0</I32><B N="IsSynchronized">false</B></Props></Obj>',
            '<Obj RefId="4"><LST><I32>1</I32></LST><Props><S N="Owner">me</S></Props></Obj>',
        )
    )
    assert isinstance(line, PSObject) and line.value == "x" and line.PSPath == "C:\\a.txt"
    assert date == dt.datetime(2024, 1, 1)  # DisplayHint only steers formatting
    assert hashtable == {}  # a collection's own members (Count…) say nothing its items do not
    assert isinstance(odd, PSObject) and odd.value == [1] and odd.Owner == "me"


def test_secure_string_stays_hidden() -> None:
    secret = one(f"<SS>{'hunter2'.encode('utf-16-le').hex()}</SS>")
    assert isinstance(secret, SecureString)
    assert "hunter2" not in repr(secret) and secret.reveal() == "hunter2"


def test_streams_are_tagged_case_insensitively_and_default_to_output() -> None:
    items = list(
        parse_clixml(
            doc(
                '<S S="Output">o</S>',
                "<S>plain</S>",
                '<S S="warning">careful</S>',
                '<S S="VERBOSE">chatty</S>',
                '<S S="debug">dbg</S>',
                '<S S="Error">bad_x000D__x000A_</S>',
                '<S S="information">info</S>',
            )
        )
    )
    assert [i.stream for i in items] == [
        "output",
        "output",
        "warning",
        "verbose",
        "debug",
        "error",
        "information",
    ]
    assert items[2].value.message == "careful" and items[5].value.message == "bad"


# --------------------------------------------------------------------------------------------------
# Framing: headers, encodings, several documents, chunks
# --------------------------------------------------------------------------------------------------


def test_text_between_objects_is_kept_not_dropped() -> None:
    items = list(parse_clixml(doc("<S>a</S>\n  console noise\n<S>b</S>")))
    assert [(i.stream, i.value.strip() if i.stream == "text" else i.value) for i in items] == [
        ("output", "a"),
        ("text", "console noise"),
        ("output", "b"),
    ]


def test_header_crlf_bom_and_several_documents() -> None:
    text = "#< CLIXML\r\n#< CLIXML\r\n" + doc("<I32>1</I32>") + "\r\n#< CLIXML\r\n" + doc("<I32>2</I32>")
    assert values(text) == [1, 2]
    assert values(codecs.BOM_UTF8 + text.encode()) == [1, 2]
    assert values(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == [1, 2]
    assert values(doc("<I32>1</I32>").replace("Objs>", "Objs >", 1) + doc()) == [1]
    assert values(f'<?xml version="1.0" encoding="utf-16"?>\n<Objs Version="1.1.0.1" {NS} />') == []
    assert values("") == [] and values("#< CLIXML\n") == []


def test_sources() -> None:
    text = doc("<I32>1</I32>", "<I32>2</I32>")
    assert [i.value for i in parse_clixml(io.BytesIO(text.encode()))] == [1, 2]
    assert [i.value for i in parse_clixml(io.StringIO(text))] == [1, 2]
    assert [i.value for i in parse_clixml([text[:7].encode(), text[7:].encode()])] == [1, 2]


def test_a_path_is_a_source(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    path.write_text(doc("<S>x</S>"), encoding="utf-8-sig")
    assert [i.value for i in parse_clixml(path)] == ["x"]
    assert [i.value for i in parse_clixml(str(path))] == ["x"]


def test_first_object_comes_before_the_input_ends() -> None:
    reader = ClixmlReader()
    head = f'#< CLIXML\n<Objs Version="1.1.0.1" {NS}><S S="Output">first</S><S S="Output">sec'
    assert reader.feed(head.encode()) == [ClixmlItem("output", "first")]
    assert reader.feed(b"ond</S></Objs>") == [ClixmlItem("output", "second")]
    assert reader.close() == []


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_truncated_document_keeps_what_came_before() -> None:
    text = doc('<S>a</S><Obj RefId="0"><Props><S N="x">1</S>')[: -len("</Objs>")]
    got: list[Any] = []
    with pytest.raises(ClixmlError) as caught:
        for item in parse_clixml(text.encode()):
            got.append(item.value)
    assert got == ["a"]
    message = str(caught.value)
    assert "input ended inside CLIXML document 1" in message and "expected </Props>" in message
    assert caught.value.offset == len(text)


def test_garbage_in_the_middle_names_the_line() -> None:
    text = doc("<S>a</S>\n<S>b</S>\n<S>c<S></S>")
    reader = ClixmlReader(source="stdout of pwsh")
    with pytest.raises(ClixmlError) as caught:
        reader.feed(text)
    assert caught.value.items == [ClixmlItem("output", "a"), ClixmlItem("output", "b")]
    assert caught.value.line == 3 and "stdout of pwsh" in str(caught.value)
    with pytest.raises(ClixmlError):  # a failed reader stays failed
        reader.feed(b"<S>more</S>")


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE Objs [<!ENTITY a "aaaaaaaaaa">]>' + doc("<S>&a;</S>"),
        "#< CLIXML\n<!DOCTYPE Objs SYSTEM 'http://example.invalid/x.dtd'>" + doc(),
    ],
)
def test_doctype_and_entities_are_refused(text: str) -> None:
    with pytest.raises(ClixmlError, match="DOCTYPE"):
        values(text)


def test_nesting_depth_is_bounded() -> None:
    deep = '<Obj RefId="0"><LST>' * 300 + "</LST></Obj>" * 300
    with pytest.raises(ClixmlError, match="nested deeper than"):
        values(doc(deep))


def test_single_value_size_is_bounded() -> None:
    reader = ClixmlReader(max_value_size=1000)
    with pytest.raises(ClixmlError, match="larger than 1000"):
        for _ in range(200):
            reader.feed(doc("<S>" + "x" * 100)[:-7] if _ == 0 else "y" * 100)


@pytest.mark.parametrize(
    ("element", "tag"),
    [
        ("<BA>not base64!</BA>", "BA"),
        ("<I32>12x</I32>", "I32"),
        ("<I32>1_0</I32>", "I32"),
        ("<DT>2024-13-01T00:00:00</DT>", "DT"),
        ("<G>nope</G>", "G"),
        ("<B>yes</B>", "B"),
        ("<TS>P1Y</TS>", "TS"),
    ],
)
def test_invalid_values_name_the_tag_member_and_line(element: str, tag: str) -> None:
    text = doc('<Obj RefId="0"><Props>\n\n' + element.replace(">", ' N="Field">', 1) + "</Props></Obj>")
    with pytest.raises(ClixmlError) as caught:
        values(text)
    assert f"invalid <{tag}>" in str(caught.value) and "member Field" in str(caught.value)
    assert caught.value.line == 3


def test_refs_to_nothing_and_unknown_elements_fail_clearly() -> None:
    with pytest.raises(ClixmlError, match="RefId '9' names"):
        values(doc('<Ref RefId="9" />'))
    with pytest.raises(ClixmlError, match="TNRef RefId '4'"):
        values(doc('<Obj RefId="0"><TNRef RefId="4" /></Obj>'))
    with pytest.raises(ClixmlError, match="unknown element <Blob>"):
        values(doc("<Blob>1</Blob>"))
    with pytest.raises(ClixmlError, match="expected '<Objs'"):
        values("<Obj />")


# --------------------------------------------------------------------------------------------------
# References while streaming
# --------------------------------------------------------------------------------------------------


def _many(count: int, ref_to_first: bool, every: bool = False) -> str:
    parts = ['<Obj RefId="0"><MS><S N="Name">first</S></MS></Obj>']
    for i in range(1, count):
        ref = '<Ref N="First" RefId="0" />' if every or (ref_to_first and i == count - 1) else ""
        parts.append(f'<Obj RefId="{i}"><MS><I32 N="N">{i}</I32>{ref}</MS></Obj>')
    return doc(*parts)


def test_a_streaming_reader_keeps_often_referenced_objects_in_flat_memory() -> None:
    from pswrap.clixml import REFERENCE_WINDOW

    text = _many(REFERENCE_WINDOW * 3, ref_to_first=False, every=True)
    reader = ClixmlReader()
    last = None
    for item in reader.feed(text) + reader.close():
        last = item.value
    assert last is not None and last.First.Name == "first"
    assert len(reader._refs) <= REFERENCE_WINDOW


def test_a_far_reference_to_a_released_object_is_clear_while_streaming_and_resolved_for_files() -> None:
    from pswrap.clixml import REFERENCE_WINDOW

    text = _many(REFERENCE_WINDOW + 50, ref_to_first=True)
    reader = ClixmlReader()
    with pytest.raises(ClixmlError) as caught:
        for chunk in (text[i : i + 4096] for i in range(0, len(text), 4096)):
            reader.feed(chunk)  # the caller keeps nothing
    assert caught.value.unresolved_reference and "keep_references=True" in str(caught.value)
    # parse_clixml reads a str/bytes/file again, keeping exactly what <Ref>s name: same objects, once each.
    got = [item.value for item in parse_clixml(text)]
    assert len(got) == REFERENCE_WINDOW + 50 and got[-1].First is got[0]
    again = [item.value for item in parse_clixml(text.encode())]
    assert [v.N for v in again[1:4]] == [1, 2, 3] and again[-1].First is again[0]
    kept = ClixmlReader(keep_references=True)
    assert (kept.feed(text) + kept.close())[-1].value.First.Name == "first"
