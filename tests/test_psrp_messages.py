"""PSRP fragments to messages, and pipeline output read by pswrap's reader (pswrap/transports/_messages.py)."""

from __future__ import annotations

import struct
import uuid

import pytest

from pswrap.errors import ProtocolError
from pswrap.transports._messages import PIPELINE_OUTPUT, Defragmenter, read_outputs

PIPELINE = uuid.uuid4()


def message(body: bytes, kind: int = PIPELINE_OUTPUT) -> bytes:
    return struct.pack("<II", 1, kind) + uuid.uuid4().bytes_le + PIPELINE.bytes_le + body


def fragment(object_id: int, fragment_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">QQBI", object_id, fragment_id, flags, len(data)) + data


def test_messages_come_whole_across_payloads_and_many_per_payload() -> None:
    first, second = message(b"\xef\xbb\xbf<S>one</S>"), message(b"<I32>2</I32>")
    defragmenter = Defragmenter()
    head = fragment(7, 0, 1, first[:30])
    assert list(defragmenter.feed(head)) == []
    whole = list(defragmenter.feed(fragment(7, 1, 2, first[30:]) + fragment(8, 0, 3, second)))
    assert [m.data for m in whole] == [first, second]
    assert whole[0].body == b"<S>one</S>" and whole[0].pipeline_id == PIPELINE and whole[0].output
    (again,) = Defragmenter().feed(whole[0].fragment())
    assert again.data == first


def test_broken_fragments_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="arrived where 0 was due"):
        list(Defragmenter().feed(fragment(1, 1, 2, b"x")))
    with pytest.raises(ProtocolError, match="shorter than its header says"):
        list(Defragmenter().feed(fragment(1, 0, 3, b"abc")[:-1]))
    with pytest.raises(ProtocolError, match="cut short"):
        list(Defragmenter().feed(b"\0" * 5))


def test_secure_strings_are_left_to_psrpcore() -> None:
    (secret,) = Defragmenter().feed(fragment(2, 0, 3, message(b"<SS>AAAA</SS>")))
    assert not secret.output


def test_each_message_keeps_its_own_references() -> None:
    typed = b'<Obj RefId="0"><TN RefId="0"><T>%s</T><T>System.Object</T></TN><ToString>%s</ToString></Obj>'
    bodies = [
        typed % (b"A", b"a"),
        typed % (b"B", b"b"),
        b'<Obj RefId="0"><TNRef RefId="0" /><ToString>c</ToString></Obj>',
    ]
    values = read_outputs(bodies)
    assert values is not None
    assert [(v.type_names[0], str(v)) for v in values] == [("A", "a"), ("B", "b"), ("B", "c")]
    assert read_outputs([b"<Nil />", b"<I32>1</I32>"]) == [None, 1]
    assert read_outputs([b"<I32>1</I32>", b""]) is None  # not one value each: psrpcore reads them
