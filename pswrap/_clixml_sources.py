"""The I/O side of CLIXML reading: :func:`parse_clixml` opens a path, ``bytes``, text, file or chunks
and feeds the sans-I/O :class:`~pswrap.clixml.ClixmlReader`."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pswrap.errors import ClixmlError
from pswrap.records import to_record

if TYPE_CHECKING:
    from pswrap.clixml import ClixmlItem, ClixmlReader

_CHUNK = 64 * 1024
_REF = re.compile(rb"<Ref\s[^>]*?RefId=\"([^\"]*)\"")


def parse_clixml(
    source: str | bytes | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[bytes | str],
    *,
    keep_references: bool = False,
    require_document: bool = False,
) -> Iterator[ClixmlItem]:
    """Read CLIXML from a path, ``bytes``, ``str`` (text, or the path of an existing file), a file object
    or an iterable of chunks; yield each top-level object as a :class:`ClixmlItem` as soon as it is read.

    Values from the other streams come as typed records (:class:`~pswrap.objects.ErrorRecord`…).
    A broken document raises :class:`ClixmlError` after every object before the break was yielded.
    Streaming keeps memory flat (see :class:`ClixmlReader` for ``<Ref>``s); should a file or ``bytes``
    refer back further than the reader holds, it is read again keeping exactly the objects referred to.
    Input without any document (empty, or only whitespace and headers) gives nothing, or with
    ``require_document`` a :class:`ClixmlError` (as ``pswrap parse`` does).
    """
    from pswrap.clixml import ClixmlItem, ClixmlReader  # here: pswrap.clixml imports this module

    name, chunks, rescan = _open(source)
    referenced: frozenset[str] | None = None
    done = 0
    while True:
        reader = ClixmlReader(source=name, referenced=referenced, keep_references=keep_references)
        skip = done
        try:
            for item in _read(reader, chunks()):
                if skip:
                    skip -= 1
                    continue
                done += 1
                yield (
                    item
                    if item.stream == "output"
                    else ClixmlItem(item.stream, to_record(item.stream, item.value))
                )
            if require_document and not reader.documents:
                raise ClixmlError("no CLIXML document (<Objs>) in the input: it is empty", source=name)
            return
        except ClixmlError as exc:
            if exc.unresolved_reference and rescan is not None and referenced is None:
                referenced = rescan()
                continue
            raise


def _read(reader: ClixmlReader, chunks: Iterable[bytes | str]) -> Iterator[ClixmlItem]:
    """Feed every chunk; on an error, first hand out what was completed before it, then raise."""
    for chunk in chunks:
        try:
            items = reader.feed(chunk)
        except ClixmlError as exc:
            yield from exc.items
            raise
        yield from items
    try:
        items = reader.close()
    except ClixmlError as exc:
        yield from exc.items
        raise
    yield from items


def _open(
    source: Any,
) -> tuple[str | None, Callable[[], Iterable[bytes | str]], Callable[[], frozenset[str]] | None]:
    """The source's name, a way to read it from the start, and (when it can be read again) a scanner."""
    if isinstance(source, str) and "<" not in source and os.path.isfile(source):
        source = Path(source)
    if isinstance(source, os.PathLike):
        path = Path(source)
        return str(path), lambda: _read_file(path), lambda: _scan_file(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return None, lambda: _slices(data), lambda: _scan(data)
    if isinstance(source, str):
        text = source
        return None, lambda: _slices(text), lambda: _scan(text.encode("utf-8", "surrogatepass"))
    if hasattr(source, "read"):
        # read1() hands over what a pipe has now; read(n) would wait for n bytes or the end.
        read = getattr(source, "read1", None) or source.read
        once = iter(lambda: read(_CHUNK), source.read(0))
        return getattr(source, "name", None), lambda: once, None
    return None, lambda: source, None


def _slices(data: bytes | str) -> Iterator[bytes | str]:
    for start in range(0, len(data), _CHUNK * 16):
        yield data[start : start + _CHUNK * 16]


def _read_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _scan(data: bytes) -> frozenset[str]:
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or data[1:2] == b"\x00":
        data = data.decode("utf-16", "replace").encode("utf-8", "replace")
    return frozenset(m.decode("ascii", "replace") for m in _REF.findall(data))


def _scan_file(path: Path) -> frozenset[str]:
    """The RefIds that some ``<Ref>`` in the file names: a quick regex pass so only those are kept."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or head[1:2] == b"\x00":
            return _scan(head + handle.read())
        found: set[bytes] = set()
        tail = head
        while True:
            chunk = handle.read(_CHUNK * 16)
            data = tail + chunk
            found.update(_REF.findall(data))
            if not chunk:
                break
            tail = data[-256:]
    return frozenset(m.decode("ascii", "replace") for m in found)
