"""PSRP fragments to whole messages, and pipeline output read by pswrap's own CLIXML reader (no I/O).

psrpcore reads every message into its own objects, which :mod:`._convert` then turns into pswrap's:
for output, by far the most frequent message, pswrap's streaming reader gives the same values
(every recorded Windows message and every real CLIXML file is tested to agree) several times faster.
:class:`Defragmenter` also splits a payload in linear time: psrpcore slices its receive buffer once
per fragment, which grows with the square of a large WinRM answer (hundreds of fragments).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

from pswrap.clixml import ClixmlReader
from pswrap.errors import ClixmlError, ProtocolError

__all__ = ["PIPELINE_OUTPUT", "Defragmenter", "Message", "read_outputs"]

#: The PIPELINE_OUTPUT message type ([MS-PSRP] 2.2.1).
PIPELINE_OUTPUT = 0x00041004
_HEADER = struct.Struct(">QQBI")
_DOCUMENT = b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
_BOM = b"\xef\xbb\xbf"


class Message:
    """One whole PSRP message: its type, pipeline id, body, and itself as a single fragment."""

    __slots__ = ("data", "object_id")

    def __init__(self, object_id: int, data: bytes) -> None:
        self.object_id = object_id
        self.data = data

    @property
    def type(self) -> int:
        return int.from_bytes(self.data[4:8], "little")

    @property
    def pipeline_id(self) -> uuid.UUID:
        return uuid.UUID(bytes_le=bytes(self.data[24:40]))

    @property
    def output(self) -> bool:
        """A PIPELINE_OUTPUT that pswrap's reader can read: not ``$null`` (a document drops a top-level
        Nil) and no SecureString (it needs the session key psrpcore holds)."""
        return (
            self.type == PIPELINE_OUTPUT
            and not self.body.lstrip().startswith(b"<Nil")
            and b"<SS" not in self.data
        )

    @property
    def body(self) -> bytes:
        body = self.data[40:]
        return body[3:] if body.startswith(_BOM) else body

    def fragment(self) -> bytes:
        """The message as one fragment (start and end), for psrpcore's reader."""
        return _HEADER.pack(self.object_id, 0, 3, len(self.data)) + self.data


class Defragmenter:
    """Fragments in (any number per payload, a message across payloads), whole messages out."""

    def __init__(self) -> None:
        self._partial: dict[int, list[bytes]] = {}

    def feed(self, data: bytes) -> Iterator[Message]:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if len(view) - offset < _HEADER.size:
                raise ProtocolError("a PSRP fragment header is cut short")
            object_id, fragment_id, flags, length = _HEADER.unpack_from(view, offset)
            offset += _HEADER.size
            if len(view) - offset < length:
                raise ProtocolError("a PSRP fragment is shorter than its header says")
            chunk = bytes(view[offset : offset + length])
            offset += length
            parts = self._partial.setdefault(object_id, []) if not flags & 1 else []
            if flags & 1:
                self._partial[object_id] = parts
            if fragment_id != len(parts):
                raise ProtocolError(
                    f"PSRP fragment {fragment_id} of object {object_id} arrived where {len(parts)} was due"
                )
            parts.append(chunk)
            if flags & 2:
                del self._partial[object_id]
                yield Message(object_id, parts[0] if len(parts) == 1 else b"".join(parts))


def read_outputs(bodies: list[bytes]) -> list[Any] | None:
    """The values PIPELINE_OUTPUT messages' CLIXML holds, as pswrap's object model, read as one document
    (each message numbers its references from 0 and defines them before use, so a later message's
    definitions simply replace an earlier one's). ``None`` when they do not hold one value each."""
    reader = ClixmlReader()
    try:
        items = reader.feed(b"".join([_DOCUMENT, *bodies, b"</Objs>"])) + reader.close()
    except ClixmlError as exc:
        raise ProtocolError(f"pipeline output that is not CLIXML: {exc}") from None
    return [item.value for item in items] if len(items) == len(bodies) else None
