"""The out-of-process packet framing (sans-I/O): what pwsh -s and the SSH subsystem exchange."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pswrap.errors import ProtocolError
from pswrap.transports.outofproc import EMPTY_GUID, KINDS, Packet, PacketReader

PIPELINE = uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f")


def test_packets_are_written_exactly_as_pwsh_writes_them() -> None:
    assert Packet.for_data(b"\x00\x01abc").to_bytes() == (
        b"<Data Stream='Default' PSGuid='00000000-0000-0000-0000-000000000000'>AAFhYmM=</Data>\n"
    )
    assert Packet.for_data(b"x", PIPELINE, stream="PromptResponse").to_bytes() == (
        b"<Data Stream='PromptResponse' PSGuid='9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f'>eA==</Data>\n"
    )
    assert (
        Packet("Command", PIPELINE).to_bytes()
        == b"<Command PSGuid='9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f' />\n"
    )
    assert Packet("Close").to_bytes() == b"<Close PSGuid='00000000-0000-0000-0000-000000000000' />\n"


def test_every_kind_round_trips() -> None:
    packets = [Packet(kind, PIPELINE) for kind in KINDS if kind != "Data"]
    packets.append(Packet.for_data(bytes(range(256)) * 10, PIPELINE))
    wire = b"".join(p.to_bytes() for p in packets)
    assert PacketReader().feed(wire) == packets


def test_a_packet_split_across_reads_and_several_in_one_read() -> None:
    reader = PacketReader()
    first, second = Packet.for_data(b"hello"), Packet("DataAck")
    wire = first.to_bytes() + second.to_bytes()
    assert reader.feed(wire[:7]) == []
    assert reader.pending == 7
    assert reader.feed(wire[7:]) == [first, second]
    assert reader.pending == 0
    reader.close()


@settings(max_examples=60, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_any_split_of_the_stream_gives_the_same_packets(payloads: list[bytes], cuts: list[int]) -> None:
    packets = [Packet.for_data(p, PIPELINE) for p in payloads] + [Packet("CloseAck")]
    wire = b"".join(p.to_bytes() for p in packets)
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    reader = PacketReader()
    got = []
    for start, end in itertools.pairwise(points):
        got.extend(reader.feed(wire[start:end]))
    reader.close()
    assert got == packets


def test_windows_line_ends_and_other_spellings_pwsh_accepts() -> None:
    wire = (
        b"<DataAck PSGuid='9F3AD1C2-5B7E-4C1A-8E2F-0A1B2C3D4E5F' />\r\n"
        b'<Data PSGuid="00000000-0000-0000-0000-000000000000" Stream="Default">eA==</Data>\n'
    )
    assert PacketReader().feed(wire) == [Packet("DataAck", PIPELINE), Packet.for_data(b"x")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "an empty line"),
        (b"garbage from a module that printed to stdout", "not a single XML element"),
        (b"<Hello PSGuid='00000000-0000-0000-0000-000000000000' />", "unknown element 'Hello'"),
        (b"<Close />", "no PSGuid"),
        (b"<Close PSGuid='not-a-guid' />", "is not a GUID"),
        (b"<Close PSGuid='00000000-0000-0000-0000-000000000000' Extra='1' />", "unknown attribute 'Extra'"),
        (b"<Close PSGuid='00000000-0000-0000-0000-000000000000'>text</Close>", "Close carries text"),
        (b"<Data Stream='Other' PSGuid='00000000-0000-0000-0000-000000000000'>eA==</Data>", "Stream must be"),
        (b"<Data Stream='Default' PSGuid='00000000-0000-0000-0000-000000000000'>e*A=</Data>", "not base64"),
        (b"<Data Stream='Default' PSGuid='00000000-0000-0000-0000-000000000000'><x/></Data>", "has children"),
        (b"<Close PSGuid='00000000-0000-0000-0000-000000000000'", "not well-formed"),
        (
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><Close PSGuid='00000000-0000-0000-0000-000000000000' />",
            "single XML",
        ),
        ("<Close PSGuid='00000000-0000-0000-0000-00000000000é' />".encode(), "not well-formed"),
    ],
)
def test_anything_but_a_packet_is_refused_with_where_and_what(line: bytes, reason: str) -> None:
    good = Packet("CommandAck", PIPELINE)
    reader = PacketReader()
    with pytest.raises(ProtocolError) as caught:
        reader.feed(good.to_bytes() + line + b"\n")
    error = caught.value
    assert reason in str(error)
    assert f"at byte {len(good.to_bytes())}" in str(error)
    assert error.partial == [good]  # what came before the bad line is kept
    assert error.data == line[:200]


def test_input_ending_inside_a_packet_is_an_error() -> None:
    reader = PacketReader()
    reader.feed(b"<Close PSGuid='0000")
    with pytest.raises(ProtocolError, match="ended inside a packet"):
        reader.close()


def test_an_endless_line_is_refused_before_it_eats_memory() -> None:
    reader = PacketReader(max_line=1000)
    with pytest.raises(ProtocolError, match="more than 1000 bytes"):
        reader.feed(b"<Data " + b"A" * 2000)


def test_bad_packets_to_write_are_refused() -> None:
    with pytest.raises(ValueError, match="stream must be"):
        Packet.for_data(b"", stream="Other")
    with pytest.raises(ValueError, match="unknown packet kind"):
        Packet("Hello").to_bytes()
    assert Packet("Signal").guid == EMPTY_GUID
