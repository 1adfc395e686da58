"""The out-of-process packet framing the stand-in reads and writes."""

from __future__ import annotations

import uuid

import pytest

from tests.standins.powershell.framing import (
    EMPTY_GUID,
    FramingError,
    LineReader,
    Packet,
    ack_packet,
    action_packet,
    data_packet,
    parse_packet,
)

GUID = uuid.UUID("8b4c7a5e-0d5f-4c87-9a5e-35b4f6e0a1c2")


def test_lines_split_across_reads_and_several_in_one_read() -> None:
    reader = LineReader()
    assert reader.feed(b"<Command PSGuid='") == []
    assert reader.pending == b"<Command PSGuid='"
    lines = reader.feed(f"{GUID}' />\n<Close PSGuid='{EMPTY_GUID}' />\r\n<Sig".encode())
    assert [parse_packet(line) for line in lines] == [Packet("Command", GUID), Packet("Close", EMPTY_GUID)]
    assert reader.pending == b"<Sig"


def test_data_packets_round_trip_with_their_stream() -> None:
    line = data_packet(GUID, b"\x00\x01payload", "PromptResponse")
    assert line == f"<Data Stream='PromptResponse' PSGuid='{GUID}'>AAFwYXlsb2Fk</Data>\n".encode()
    assert parse_packet(line.rstrip(b"\n")) == Packet("Data", GUID, "PromptResponse", b"\x00\x01payload")


def test_pwsh_shapes_for_acks_and_actions() -> None:
    assert ack_packet("Data", None) == f"<DataAck PSGuid='{EMPTY_GUID}' />\n".encode()
    assert action_packet("Signal", GUID) == f"<Signal PSGuid='{GUID}' />\n".encode()
    assert parse_packet(b'<SignalAck PSGuid="' + str(GUID).upper().encode() + b'"/>') == Packet(
        "SignalAck", GUID
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", 'An unknown element "" was received.'),
        (b"   ", 'An unknown element "" was received.'),
        (
            b"<Hello PSGuid='00000000-0000-0000-0000-000000000000' />",
            'An unknown element "Hello" was received.',
        ),
        (b"not xml", "Data at the root level is invalid."),
        (b"<Command />", "Value cannot be null."),
        (b"<Command PSGuid='nope' />", "Guid should contain 32 digits"),
        (
            b"<Data Stream='Default' PSGuid='00000000-0000-0000-0000-000000000000'>!!</Data>",
            "not a valid Base-64",
        ),
    ],
)
def test_what_pwsh_rejects(line: bytes, message: str) -> None:
    with pytest.raises(FramingError) as problem:
        parse_packet(line)
    assert message in str(problem.value)
