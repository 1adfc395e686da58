"""A streaming CLIXML reader: feed it bytes, get each top-level object as soon as it is complete.

:class:`ClixmlReader` is sans-I/O: it is *fed* chunks of any size (from a file, a process's stdout, an
HTTP body) and hands back :class:`ClixmlItem` s, each tagged with its stream. :func:`parse_clixml` wraps
it for the usual sources. It copes with what real PowerShell writes: the ``#< CLIXML`` header (even
doubled), several documents one after another, UTF-8 with or without BOM and UTF-16 with BOM, CRLF,
an empty ``<Objs/>``, and ``Ref``/``TNRef`` tables that span the whole document.

It is built on expat with handlers that build values directly (no element tree). Measured on a
Get-Mailbox-shaped document (``benchmarks/clixml.py``), ``ElementTree``'s pull parser spends most of
its time building elements that are thrown away; expat's own handlers leave room for the conversion
and still run faster than ``iterparse`` doing nothing, in constant memory.

Safety: a DOCTYPE (and with it any entity declaration) is refused before expat acts on it, nesting
depth and the size of one value are bounded, and bad numbers, dates or base64 name the element, the
member and the line.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import os
import re
import uuid
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, NamedTuple
from xml.parsers import expat

from pswrap.errors import ClixmlError
from pswrap.objects import (
    _NO_VALUE,
    COLLECTION_MEMBERS,
    FORMAT_NOTES,
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
    _init_psobject,
    _new_psobject,
    decode_base64,
)
from pswrap.records import to_record

__all__ = ["ClixmlItem", "ClixmlReader", "parse_clixml"]

#: Deepest element nesting accepted (real documents stay far below; serialization depth is 2 by default).
MAX_DEPTH = 256
#: Largest single value (text of one element, in bytes of UTF-8) accepted.
MAX_VALUE_SIZE = 64 * 1024 * 1024
#: How many recent ``RefId`` s a streaming reader keeps alive for later ``<Ref>`` s (see ClixmlReader).
REFERENCE_WINDOW = 1024

_HEADER = b"#< CLIXML"
_CHUNK = 64 * 1024


class ClixmlItem(NamedTuple):
    """One top-level object and the stream it was written to (``"output"``, ``"error"``, …).

    Text found between the top-level elements (a program writing to the console while PowerShell
    wrote the document) comes as stream ``"text"`` with the text as its value.
    """

    stream: str
    value: Any


class _UnresolvedReference(ValueError):
    """A <Ref> to nothing the reader holds; parse_clixml re-reads a file with exact retention."""


class _DocumentEnd(Exception):
    """Raised from expat's handler when the root element closes, to split concatenated documents."""


#: An open element is a list ``[name, attributes, text, *children]``; children are ``(name, attrs, value)``.
_Frame = list[Any]


# --------------------------------------------------------------------------------------------------
# Primitive conversions
# --------------------------------------------------------------------------------------------------

_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def decode_string(text: str) -> str:
    """Undo PowerShell's ``_xHHHH_`` escapes (``_x005F_`` is a literal ``_``), joining surrogate pairs."""
    if "_x" not in text:
        return text
    if "_x005" not in text:
        # Fast path for the common line breaks; safe because no escaped underscore can start a new escape.
        text = text.replace("_x000D_", "\r").replace("_x000A_", "\n")
        if "_x" not in text:
            return text
    text = _ESCAPE.sub(_unescape, text)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return text


_DATETIME = re.compile(
    r"(\d{1,4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7})\d*)?(Z|[+-]\d\d:\d\d)?\Z", re.ASCII
)
_OFFSETS: dict[str, Any] = {}


def _timezone(text: str) -> Any:
    import datetime as _dt

    zone = _OFFSETS.get(text)
    if zone is None:
        if text == "Z":
            zone = _dt.timezone.utc
        else:
            sign = -1 if text[0] == "-" else 1
            zone = _dt.timezone(sign * _dt.timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))
        _OFFSETS[text] = zone
    return zone


def parse_datetime(text: str) -> PSDateTime:
    """Read an ``xs:dateTime`` as PowerShell writes it, keeping all seven fractional digits."""
    match = _DATETIME.match(text.strip())
    if match is None:
        raise ValueError(f"not a date and time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    fraction = (fraction or "").ljust(7, "0")
    return PSDateTime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), int(fraction[:6]),
        _timezone(zone) if zone else None,
        nanosecond=int(fraction[6]) * 100,
    )  # fmt: skip


_DURATION = re.compile(
    r"(-)?P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,7})\d*)?S)?)?\Z", re.ASCII
)


def parse_duration(text: str) -> PSTimeSpan:
    """Read an ``xs:duration`` as .NET writes a TimeSpan (days, hours, minutes, seconds; 100 ns ticks)."""
    stripped = text.strip()
    match = _DURATION.match(stripped)
    if match is None or stripped in ("P", "-P"):
        raise ValueError(f"not a duration: {text!r}")
    negative, days, hours, minutes, seconds, fraction = match.groups()
    ticks = (
        ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes or 0)) * 60 + int(seconds or 0)
    ) * 10_000_000 + int((fraction or "").ljust(7, "0"))
    return PSTimeSpan(ticks=-ticks if negative else ticks)


def _integer(text: str) -> int:
    if "_" in text:
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _boolean(text: str) -> bool:
    value = _BOOLEANS.get(text)
    if value is None:
        value = _BOOLEANS.get(text.strip())
        if value is None:
            raise ValueError(f"not a boolean: {text!r}")
    return value


def _floating(text: str) -> float:
    if "_" in text:
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def _decimal(text: str) -> Decimal:
    if "_" in text:
        raise ValueError(f"not a decimal: {text!r}")
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {text!r}") from None


def _char(text: str) -> str:
    code = int(text)
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"not a UTF-16 code unit: {text!r}")
    return chr(code)


_PRIMITIVES: dict[str, Callable[[str], Any]] = {
    "S": decode_string,
    "C": _char,
    "B": _boolean,
    "DT": parse_datetime,
    "TS": parse_duration,
    "By": _integer,
    "SB": _integer,
    "U16": _integer,
    "I16": _integer,
    "U32": _integer,
    "I32": _integer,
    "U64": _integer,
    "I64": _integer,
    "Sg": _floating,
    "Db": _floating,
    "D": _decimal,
    "BA": decode_base64,
    "G": uuid.UUID,
    "URI": lambda t: Uri(decode_string(t)),
    "Version": Version.parse,
    "XD": lambda t: XmlDocument(decode_string(t)),
    "SBK": lambda t: ScriptBlock(decode_string(t)),
    "SS": SecureString.from_clixml,
    "ToString": decode_string,
    "T": decode_string,
    # Parts of a progress record (<PR>): plain text, read by _progress.
    "AV": decode_string,
    "AI": decode_string,
    "PI": decode_string,
    "PC": decode_string,
    "SR": decode_string,
    "SD": decode_string,
}
_CONTAINERS = frozenset(("LST", "IE", "STK", "QUE", "DCT"))
_ENUM_TYPES = frozenset(("System.Enum", "Deserialized.System.Enum"))


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------


class ClixmlReader:
    """Incremental CLIXML reader. ``feed()`` chunks, collect the items it returns, then ``close()``.

    ``Ref`` s may point at any earlier object of the same document. Which ones will be pointed at is
    unknown while streaming, so the reader keeps the most recent :data:`REFERENCE_WINDOW` objects
    alive and weak references to the rest (alive as long as the caller holds them). Pass
    ``referenced`` (the RefIds that some ``<Ref>`` names, as :func:`parse_clixml` finds by a quick scan
    of a file) to keep exactly those, or ``keep_references=True`` to keep every object.
    """

    def __init__(
        self,
        *,
        source: str | None = None,
        referenced: Collection[str] | None = None,
        keep_references: bool = False,
        max_depth: int = MAX_DEPTH,
        max_value_size: int = MAX_VALUE_SIZE,
    ) -> None:
        self.source = source
        self._referenced = frozenset(referenced) if referenced is not None else None
        self._keep_all = keep_references
        self._max_depth = max_depth
        self._max_value_size = max_value_size

        self._decoder: codecs.IncrementalDecoder | None = None
        self._sniffed = False
        self._sniff = b""  # the first bytes, held until the encoding can be told
        self._pending = b""  # bytes not yet handed to a parser (between documents)
        self._parser: Any = None
        self._stack: list[list[Any]] = []
        self._items: list[ClixmlItem] = []
        self._failed: ClixmlError | None = None
        self._documents = 0
        self._doc_offset = 0  # byte offset (of the UTF-8 stream) where the current document starts
        self._doc_line = 1
        self._consumed = 0  # bytes of the UTF-8 stream handed to parsers or skipped
        self._consumed_lines = 0
        self._root_end = 0
        self._open_primitive: Callable[[], str | None] = lambda: None

        self._streaming = not keep_references and referenced is None
        self._refs: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._weak_refs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._type_names: dict[str, tuple[str, ...]] = {}

        self._builders: dict[str, Callable[[_Frame], Any]] = {
            "Obj": self._object,
            "Ref": self._reference,
            "TN": self._type_name_table,
            "TNRef": self._type_name_ref,
            "Props": self._members,
            "MS": self._members,
            "LST": self._list,
            "IE": self._list,
            "STK": self._stack_value,
            "QUE": self._queue_value,
            "DCT": self._dictionary,
            "En": self._entry,
            "Nil": _nil,
            "PR": self._progress,
        }

    # --- public API ---

    def feed(self, data: bytes | str) -> list[ClixmlItem]:
        """Read another chunk; return the top-level objects it completed (possibly none)."""
        if self._failed is not None:
            raise self._failed
        try:
            self._feed_bytes(self._normalize(data))
        except ClixmlError as exc:
            raise self._fail(exc) from None
        return self._take()

    def close(self) -> list[ClixmlItem]:
        """Signal the end of input; raises :class:`ClixmlError` if it ended inside a document."""
        if self._failed is not None:
            raise self._failed
        try:
            if not self._sniffed and self._sniff:
                self._feed_bytes(self._normalize(b""))
            if self._decoder is not None:
                self._feed_bytes(self._decoder.decode(b"", final=True).encode("utf-8", "surrogatepass"))
            if self._parser is not None:
                raise self._truncated()
            rest = self._pending.strip()
            if rest and rest != _HEADER and not rest.startswith(b"#<"):
                raise self._error(f"unexpected text after the last document: {_preview(rest)}")
            if rest.startswith(b"<"):
                raise self._truncated()
        except ClixmlError as exc:
            raise self._fail(exc) from None
        return self._take()

    # --- input normalisation ---

    def _normalize(self, data: bytes | str) -> bytes:
        """Everything goes to expat as UTF-8."""
        if isinstance(data, str):
            self._sniffed = True
            return data.encode("utf-8", "surrogatepass")
        if self._decoder is not None:
            return self._decoder.decode(data).encode("utf-8", "surrogatepass")
        if not self._sniffed:
            head = self._sniff + data
            if len(head) < 4 and data:
                self._sniff = head
                return b""
            self._sniff = b""
            self._sniffed = True
            decoder_name = None
            if head.startswith(codecs.BOM_UTF8):
                head = head[3:]
            elif head.startswith(codecs.BOM_UTF16_LE):
                decoder_name, head = "utf-16-le", head[2:]
            elif head.startswith(codecs.BOM_UTF16_BE):
                decoder_name, head = "utf-16-be", head[2:]
            elif head[:1] in (b"<", b"#") and head[1:2] == b"\x00":
                decoder_name = "utf-16-le"
            if decoder_name:
                self._decoder = codecs.getincrementaldecoder(decoder_name)("strict")
                try:
                    return self._decoder.decode(head).encode("utf-8", "surrogatepass")
                except UnicodeDecodeError as exc:
                    raise self._fail(self._error(f"invalid {decoder_name}: {exc.reason}")) from None
            return head
        return data

    # --- splitting the stream into documents ---

    def _feed_bytes(self, data: bytes) -> None:
        while data or (self._parser is None and self._pending):
            if self._parser is None:
                buffered, self._pending = self._pending + data, b""
                start = self._skip_between_documents(buffered)  # keeps in _pending what it cannot decide yet
                if start is None:
                    return
                data = start
                self._start_document()
            data = self._parse(data)

    def _skip_between_documents(self, data: bytes) -> bytes | None:
        """Skip whitespace, BOMs and ``#< CLIXML`` lines; return data from ``<Objs`` or ``None`` (need more)."""
        while True:
            stripped = data.lstrip(b" \t\r\n")
            self._advance(data[: len(data) - len(stripped)])
            data = stripped
            if not data:
                return None
            if data.startswith(codecs.BOM_UTF8):
                self._advance(data[:3])
                data = data[3:]
                continue
            if data.startswith(b"#"):
                end = data.find(b"\n")
                if end < 0:
                    if len(data) > 64 or not _HEADER.startswith(data[: len(_HEADER)]):
                        raise self._error(f"expected '#< CLIXML' or '<Objs', found {_preview(data)}")
                    self._pending = data
                    return None
                line = data[:end].rstrip(b"\r")
                if line != _HEADER:
                    raise self._error(f"expected '#< CLIXML' or '<Objs', found {_preview(line)}")
                self._advance(data[: end + 1])
                data = data[end + 1 :]
                continue
            if data.startswith(b"<?"):
                end = data.find(b"?>")
                if end < 0:
                    self._pending = data
                    return None
                self._advance(data[: end + 2])
                data = data[end + 2 :]
                continue
            if len(data) < 5 and b"<Objs".startswith(data):
                self._pending = data
                return None
            if data.startswith(b"<!"):
                if data[2:9].upper().startswith(b"DOCTYPE"[: len(data) - 2]) and len(data) < 9:
                    self._pending = data
                    return None
                raise self._error("a DOCTYPE or other declaration is not allowed in CLIXML (refused)")
            if data.startswith(b"<Objs") and (len(data) == 5 or data[5:6] in b" \t\r\n/>"):
                return data
            raise self._error(f"expected '<Objs' (the start of a CLIXML document), found {_preview(data)}")

    def _advance(self, skipped: bytes) -> None:
        self._consumed += len(skipped)
        self._consumed_lines += skipped.count(b"\n")

    def _start_document(self) -> None:
        parser = expat.ParserCreate("utf-8")
        parser.buffer_text = True
        parser.buffer_size = 1 << 16
        parser.ordered_attributes = False
        parser.StartElementHandler, parser.CharacterDataHandler, parser.EndElementHandler = self._handlers()
        parser.StartDoctypeDeclHandler = self._on_doctype
        parser.EntityDeclHandler = self._on_entity
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser = parser
        self._documents += 1
        self._doc_offset = self._consumed
        self._doc_line = self._consumed_lines + 1
        self._stack.clear()
        self._refs = collections.OrderedDict()
        self._weak_refs = weakref.WeakValueDictionary()
        self._type_names = {}

    def _parse(self, data: bytes) -> bytes:
        """Feed ``data`` to the current document; return what follows its end (if it ended)."""
        parser = self._parser
        fed_before = self._consumed - self._doc_offset
        try:
            parser.Parse(data, False)
        except _DocumentEnd:
            index = self._root_end - fed_before
            if index < 0:  # the end tag began in an earlier chunk; its '>' is in this one
                end = data.index(b">") + 1
            elif data.startswith(b"</", index):
                end = data.index(b">", index) + 1
            else:  # a self-closing root: expat reports the position just after '/>'
                end = index
            self._advance(data[:end])
            self._parser = None
            return data[end:]
        except expat.ExpatError as exc:
            raise self._error(
                _expat_message(exc), line=self._doc_line + exc.lineno - 1, column=exc.offset + 1
            ) from None
        except ClixmlError:
            raise
        except RecursionError:  # pragma: no cover - guarded by max_depth
            raise self._error("nesting too deep") from None
        self._advance(data)
        return b""

    # --- expat handlers (closures over locals: this is the hot path) ---

    def _handlers(
        self,
    ) -> tuple[Callable[[str, dict[str, str]], None], Callable[[str], None], Callable[[str], None]]:
        """Expat's three handlers. Primitives (three in four elements) never nest and are the only
        elements with text, so they skip the frame stack: their name, attributes and text live in
        closure variables until their end tag."""
        stack = self._stack
        items = self._items
        primitives = _PRIMITIVES
        builders = self._builders
        max_depth = self._max_depth
        max_value = self._max_value_size
        referenced = None if self._keep_all else self._referenced
        remember = self._remember
        new_object = _new_psobject
        error = self._error
        prim_name: str | None = None
        prim_attrs: dict[str, str] = {}
        prim_text: Any = None
        prim_convert: Callable[[str], Any] = str

        def on_start(name: str, attrs: dict[str, str]) -> None:
            nonlocal prim_name, prim_attrs, prim_text, prim_convert
            if prim_name is not None:
                raise error(f"<{name}> inside <{prim_name}>, which holds only text")
            convert = primitives.get(name)
            if convert is not None and stack:
                prim_name = name
                prim_attrs = attrs
                prim_text = None
                prim_convert = convert
                return
            if len(stack) >= max_depth:
                raise error(f"elements nested deeper than {max_depth} (refused)")
            if not stack and name != "Objs":
                raise error(f"the root element must be <Objs>, not <{name}>")
            frame: list[Any] = [name, attrs, None]
            stack.append(frame)
            if name == "Obj":
                ref_id = attrs.get("RefId")
                if ref_id is not None and (referenced is None or ref_id in referenced):
                    placeholder = new_object()
                    frame.append(("", ref_id, placeholder))  # found again by _object
                    remember(ref_id, placeholder)

        def on_text(data: str) -> None:
            nonlocal prim_text
            if prim_name is None:
                # Between elements: whitespace, or text something wrote straight to the console in the
                # middle of the document. That is kept as a "text" item rather than dropped.
                if len(stack) == 1 and not data.isspace():
                    items.append(ClixmlItem("text", data))
                return
            if prim_text is None:
                prim_text = data
            elif prim_text.__class__ is list:
                prim_text.append(data)
                if len(prim_text) % 16 == 0 and sum(map(len, prim_text)) > max_value:
                    raise error(f"a single value is larger than {max_value} characters (refused)")
            else:
                prim_text = [prim_text, data]

        def on_end(name: str) -> None:
            nonlocal prim_name
            if prim_name is not None:
                text = prim_text
                attrs = prim_attrs
                prim_name = None
                try:
                    value = prim_convert(
                        text if text.__class__ is str else "" if text is None else "".join(text)
                    )
                except (ValueError, TypeError, OverflowError) as exc:
                    raise error(f"invalid <{name}>{self._member_path(attrs)}: {exc}") from None
            else:
                frame = stack.pop()
                if not stack:
                    self._root_end = self._parser.CurrentByteIndex
                    raise _DocumentEnd
                builder = builders.get(name)
                if builder is None:
                    raise error(f"unknown element <{name}>")
                attrs = frame[1]
                try:
                    value = builder(frame)
                except ClixmlError:
                    raise
                except (ValueError, TypeError, KeyError, OverflowError) as exc:
                    failure = error(f"invalid <{name}>{self._member_path(attrs)}: {exc}")
                    failure.unresolved_reference = isinstance(exc, _UnresolvedReference)
                    raise failure from None
            if len(stack) == 1:
                stream = attrs.get("S")
                items.append(ClixmlItem(stream.lower() if stream else "output", value))
            else:
                stack[-1].append((name, attrs, value))

        self._open_primitive = lambda: prim_name
        return on_start, on_text, on_end

    def _on_doctype(self, *args: Any) -> None:
        raise self._error("a DOCTYPE is not allowed in CLIXML (refused)")

    def _on_entity(self, *args: Any) -> None:
        raise self._error("an entity declaration is not allowed in CLIXML (refused)")

    # --- builders ---

    def _object(self, frame: _Frame) -> Any:
        attrs = frame[1]
        type_names: tuple[str, ...] = ()
        to_string = None
        adapted: dict[str, Any] | None = None
        extended: dict[str, Any] | None = None
        value: Any = _NO_VALUE
        kind = ""
        placeholder = None
        for child in frame[3:]:
            tag, _, child_value = child
            if tag == "Props":
                adapted = child_value
            elif tag == "MS":
                extended = child_value
            elif tag == "TN" or tag == "TNRef":
                type_names = child_value
            elif tag == "ToString":
                to_string = child_value
            elif tag == "":
                placeholder = child_value
            else:
                value = child_value
                kind = tag
        ref_id = attrs.get("RefId")
        if kind == "Obj" and isinstance(value, PSObject):
            # An object whose base is itself an object: PowerShell flattens it, and so do we.
            inner = value
            adapted = {**inner.adapted, **(adapted or {})}
            extended = {**inner.extended, **(extended or {})}
            value = inner.value if inner.has_value else _NO_VALUE
            kind = "inner"
        if _plain(kind, value, adapted, extended):
            result: Any = None
            if kind in _CONTAINERS:
                result = value
            elif (
                isinstance(value, int)
                and not isinstance(value, bool)
                and _ENUM_TYPES.intersection(type_names)
            ):
                result = PSEnum(value, to_string if to_string is not None else str(value), type_names)
            elif value is not _NO_VALUE and kind != "Obj":
                result = value
            if result is not None or (value is None and kind == "Nil"):
                if ref_id is not None:
                    self._remember(ref_id, result)
                return result
        obj = placeholder if placeholder is not None else _new_psobject()
        _init_psobject(obj, adapted or {}, extended or {}, type_names, to_string, value)
        return obj

    def _remember(self, ref_id: str, value: Any) -> None:
        refs = self._refs
        if not self._streaming:
            if self._referenced is None or ref_id in self._referenced:
                refs[ref_id] = value
            return
        refs[ref_id] = value
        refs.move_to_end(ref_id)
        if len(refs) > REFERENCE_WINDOW:
            old, kept = refs.popitem(last=False)
            # Lists, dicts and ints cannot be weakly referenced: they are gone with the window.
            with contextlib.suppress(TypeError):
                self._weak_refs[old] = kept

    def _reference(self, frame: _Frame) -> Any:
        ref_id = frame[1].get("RefId")
        if ref_id is None:
            raise ValueError("<Ref> without RefId")
        refs = self._refs
        if ref_id in refs:
            if self._streaming:
                refs.move_to_end(ref_id)  # objects referenced again and again stay in the window
            return refs[ref_id]
        value = self._weak_refs.get(ref_id)
        if value is not None:
            self._remember(ref_id, value)
            return value
        if not self._streaming:
            raise ValueError(f"RefId {ref_id!r} names no earlier object of this document")
        raise _UnresolvedReference(
            f"RefId {ref_id!r} names no earlier object this streaming reader still holds (none such, or "
            f"not used for {REFERENCE_WINDOW} objects and released since); read with keep_references=True"
        )

    def _type_name_table(self, frame: _Frame) -> tuple[str, ...]:
        names = tuple(child[2] for child in frame[3:])
        ref_id = frame[1].get("RefId")
        if ref_id is not None:
            self._type_names[ref_id] = names
        return names

    def _type_name_ref(self, frame: _Frame) -> tuple[str, ...]:
        ref_id = frame[1].get("RefId")
        try:
            return self._type_names[ref_id or ""]
        except KeyError:
            raise ValueError(f"TNRef RefId {ref_id!r} names no earlier <TN>") from None

    @staticmethod
    def _members(frame: _Frame) -> dict[str, Any]:
        members: dict[str, Any] = {}
        for _, attrs, value in frame[3:]:
            name = attrs.get("N")
            if name is None:
                raise ValueError("a member without a name (N attribute)")
            members[decode_string(name)] = value
        return members

    @staticmethod
    def _list(frame: _Frame) -> list[Any]:
        return [child[2] for child in frame[3:]]

    @staticmethod
    def _stack_value(frame: _Frame) -> PSStack:
        return PSStack(child[2] for child in frame[3:])

    @staticmethod
    def _queue_value(frame: _Frame) -> PSQueue:
        return PSQueue(child[2] for child in frame[3:])

    @staticmethod
    def _entry(frame: _Frame) -> tuple[Any, Any]:
        key: Any = _NO_VALUE
        value: Any = _NO_VALUE
        for _, attrs, child in frame[3:]:
            name = attrs.get("N")
            if name == "Key":
                key = child
            elif name == "Value":
                value = child
        if key is _NO_VALUE or value is _NO_VALUE:
            raise ValueError("a dictionary entry needs a Key and a Value")
        return key, value

    @staticmethod
    def _dictionary(frame: _Frame) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for tag, _, entry in frame[3:]:
            if tag != "En":
                raise ValueError(f"<DCT> holds <{tag}>, expected <En>")
            key, value = entry
            result[_hashable(key)] = value
        return result

    @staticmethod
    def _progress(frame: _Frame) -> ProgressRecord:
        parts: dict[str, Any] = {}
        operation = None
        for tag, _, value in frame[3:]:
            if tag in ("Nil", "S"):
                operation = value
            else:
                parts[tag] = value
        return ProgressRecord(
            parts.get("SD", ""),
            activity=parts.get("AV", ""),
            activity_id=int(parts.get("AI", 0)),
            parent_activity_id=int(parts.get("PI", -1)),
            percent_complete=int(parts.get("PC", -1)),
            seconds_remaining=int(parts.get("SR", -1)),
            current_operation=operation,
            completed=parts.get("T") == "Completed",
        )

    # --- errors ---

    def _member_path(self, attrs: dict[str, str]) -> str:
        names = [f[1].get("N") for f in self._stack[1:]] + [attrs.get("N")]
        shown = ".".join(decode_string(n) for n in names if n)
        return f" (member {shown})" if shown else ""

    def _error(self, message: str, *, line: int | None = None, column: int | None = None) -> ClixmlError:
        parser = self._parser
        offset = self._consumed
        if line is None and parser is not None and parser.CurrentLineNumber:
            line = self._doc_line + parser.CurrentLineNumber - 1
            column = parser.CurrentColumnNumber + 1
            offset = self._doc_offset + max(parser.CurrentByteIndex, 0)
        return ClixmlError(message, offset=offset, line=line, column=column, source=self.source)

    def _truncated(self) -> ClixmlError:
        open_tags = [f[0] for f in self._stack] or ["Objs"]
        primitive = self._open_primitive() if self._parser is not None else None
        if primitive:
            open_tags.append(primitive)
        path = " > ".join(f"<{tag}>" for tag in open_tags)
        innermost = open_tags[-1]
        return ClixmlError(
            f"input ended inside CLIXML document {self._documents} (open: {path}; expected </{innermost}>)",
            offset=self._consumed,
            source=self.source,
        )

    def _fail(self, exc: ClixmlError) -> ClixmlError:
        exc.items = self._take()
        self._failed = exc
        self._parser = None
        return exc

    def _take(self) -> list[ClixmlItem]:
        items = self._items[:]
        self._items.clear()
        return items


def _plain(kind: str, value: Any, adapted: dict[str, Any] | None, extended: dict[str, Any] | None) -> bool:
    """Whether an <Obj> is just its value: no members, or only a collection's own or formatting ones."""
    if adapted is None and extended is None:
        return True
    if kind in _CONTAINERS:
        return not extended and (not adapted or adapted.keys() <= COLLECTION_MEMBERS)
    if value is not _NO_VALUE and kind != "Obj":
        return not adapted and (extended is not None and extended.keys() <= FORMAT_NOTES)
    return False


def _nil(frame: _Frame) -> None:
    return None


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        return tuple((_hashable(k), _hashable(v)) for k, v in key.items())
    return key


def _preview(data: bytes) -> str:
    text = data[:40].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > 40 else ""))


def _expat_message(exc: expat.ExpatError) -> str:
    return f"not well-formed XML: {expat.ErrorString(exc.code)}"


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------

_REF = re.compile(rb"<Ref\s[^>]*?RefId=\"([^\"]*)\"")


def parse_clixml(
    source: str | bytes | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[bytes | str],
    *,
    keep_references: bool = False,
) -> Iterator[ClixmlItem]:
    """Read CLIXML from a path, ``bytes``, ``str`` (text, or the path of an existing file), a file object
    or an iterable of chunks; yield each top-level object as a :class:`ClixmlItem` as soon as it is read.

    Values from the other streams come as typed records (:class:`~pswrap.objects.ErrorRecord`…).
    A broken document raises :class:`ClixmlError` after every object before the break was yielded.
    Streaming keeps memory flat (see :class:`ClixmlReader` for ``<Ref>``s); should a file or ``bytes``
    refer back further than the reader holds, it is read again keeping exactly the objects referred to.
    """
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
