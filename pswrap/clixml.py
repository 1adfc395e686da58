"""A streaming CLIXML reader: feed it bytes, get each top-level object as soon as it is complete.

:class:`ClixmlReader` is sans-I/O: it is *fed* chunks of any size (from a file, a process's stdout, an
HTTP body) and hands back :class:`ClixmlItem` s, each tagged with its stream. :func:`parse_clixml` wraps
it for the usual sources (``_clixml_sources``); ``_clixml_values`` reads each primitive tag. It copes
with what real PowerShell writes: the ``#< CLIXML`` header (even doubled), several documents one after
another, UTF-8 with or without BOM and UTF-16 with BOM, CRLF, an empty ``<Objs/>``, and
``Ref``/``TNRef`` tables that span the whole document.

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
import re
import weakref
from collections.abc import Callable, Collection
from typing import Any, NamedTuple
from xml.parsers import expat

from pswrap._clixml_sources import parse_clixml
from pswrap._clixml_values import _PRIMITIVES
from pswrap._clixml_values import decode_string as decode_string
from pswrap._clixml_values import parse_datetime as parse_datetime
from pswrap._clixml_values import parse_duration as parse_duration
from pswrap._markup import MarkupError, MarkupScanner
from pswrap.errors import ClixmlError
from pswrap.objects import (
    _NO_VALUE,
    COLLECTION_MEMBERS,
    FORMAT_NOTES,
    ProgressRecord,
    PSEnum,
    PSObject,
    PSQueue,
    PSStack,
    _init_psobject,
    _new_psobject,
)

__all__ = ["ClixmlItem", "ClixmlReader", "parse_clixml"]

# The limits: every dimension of the input is bounded (README, "Reading CLIXML"). Each is a keyword of
# ClixmlReader; past one, the reader raises ClixmlError naming it.

#: Deepest element nesting accepted (real documents stay far below; serialization depth is 2 by default).
MAX_DEPTH = 256
#: Largest single value: the text of one element, in characters as written (``_x0041_`` counts seven).
MAX_VALUE_SIZE = 64 * 1024 * 1024
#: Largest piece of markup, in bytes: a tag with its name and attributes, a comment, a processing
#: instruction (also before ``<Objs>``).
MAX_MARKUP_SIZE = 1024 * 1024
#: Most attributes one element may have (CLIXML uses at most three).
MAX_ATTRIBUTES = 64
#: How many type-name tables (``<TN>``) a reader keeps for later ``<TNRef>`` s, the least recently used
#: going first; and how many characters of type names they may hold in all.
TYPE_NAME_WINDOW = 65536
TYPE_NAME_CHARACTERS = 16 * 1024 * 1024
#: How many recent ``RefId`` s a streaming reader keeps alive for later ``<Ref>`` s (see ClixmlReader).
REFERENCE_WINDOW = 1024

_HEADER = b"#< CLIXML"
_WHITESPACE = re.compile(rb"[ \t\r\n]*")


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
        max_markup_size: int = MAX_MARKUP_SIZE,
        max_attributes: int = MAX_ATTRIBUTES,
        type_name_window: int = TYPE_NAME_WINDOW,
        type_name_characters: int = TYPE_NAME_CHARACTERS,
    ) -> None:
        self.source = source
        self._referenced = frozenset(referenced) if referenced is not None else None
        self._keep_all = keep_references
        self._max_depth = max_depth
        self._max_value_size = max_value_size
        self._max_markup = max_markup_size
        self._max_attributes = max_attributes
        self._type_name_window = type_name_window
        self._type_name_characters = type_name_characters

        self._decoder: codecs.IncrementalDecoder | None = None
        self._decoder_name = ""
        self._sniffed = False
        self._sniff = b""  # the first bytes, held until the encoding can be told
        self._pending = b""  # bytes not yet handed to a parser (between documents)
        self._in_declaration = 0  # bytes of a '<?…?>' before '<Objs>' skipped so far (0: not in one)
        self._after_question = False  # that skipping stopped just after a '?'
        self._scanner = MarkupScanner(max_markup_size)
        self._held = bytearray()  # the document's bytes from the start of unfinished markup on
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
        self._type_names: collections.OrderedDict[str, tuple[str, ...]] = collections.OrderedDict()
        self._type_name_size = 0
        self._type_names_dropped = False

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

    @property
    def documents(self) -> int:
        """How many CLIXML documents (``<Objs>`` roots) were begun so far."""
        return self._documents

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
                self._feed_bytes(self._decode(b"", final=True))
            if self._parser is not None or self._in_declaration:
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
            return self._decode(data)
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
                self._decoder_name = decoder_name
                return self._decode(head)
            return head
        return data

    def _decode(self, data: bytes, *, final: bool = False) -> bytes:
        """UTF-16 input to UTF-8; a bad surrogate or a final odd byte is a ClixmlError, like bad XML."""
        assert self._decoder is not None
        try:
            return self._decoder.decode(data, final).encode("utf-8")
        except UnicodeDecodeError as exc:
            what = "ends in the middle of a character" if final else exc.reason
            raise self._error(f"not valid {self._decoder_name} text: {what}") from None

    # --- splitting the stream into documents ---

    def _feed_bytes(self, data: bytes) -> None:
        """Hand ``data`` on: to the current document's parser, or past what lies between documents.
        Positions, not slices, so that many documents in one chunk cost no more than one."""
        if self._pending:
            data, self._pending = self._pending + data, b""  # a few bytes of a cut header
        pos, size = 0, len(data)
        # Fed in pieces of at most half the markup limit: longer markup spans pieces, which the
        # scanner measures.
        piece = max(self._max_markup // 2, 1)
        while pos < size:
            if self._parser is None:
                found = self._skip_between_documents(data, pos)  # keeps in _pending what it cannot decide
                if found is None:
                    return
                pos = found
                self._start_document()
            pos = self._parse(data, pos, min(size, pos + piece))

    def _skip_between_documents(self, data: bytes, pos: int) -> int | None:
        """Skip whitespace, BOMs, ``#< CLIXML`` lines and ``<?…?>``; return where ``<Objs`` starts, or
        ``None`` when the data ends first."""
        size = len(data)
        while True:
            if self._in_declaration:
                pos = self._skip_declaration(data, pos)
                if self._in_declaration:
                    return None
            start = pos
            pos = _WHITESPACE.match(data, pos).end()  # type: ignore[union-attr]
            self._advance(data, start, pos)
            if pos >= size:
                return None
            rest = size - pos
            if data.startswith(codecs.BOM_UTF8, pos):
                self._advance(data, pos, pos + 3)
                pos += 3
                continue
            if data.startswith(b"#", pos):
                end = data.find(b"\n", pos, pos + 66)
                if end < 0:
                    head = data[pos : pos + 66]
                    if rest > 64 or not _HEADER.startswith(head[: len(_HEADER)]):
                        raise self._error(f"expected '#< CLIXML' or '<Objs', found {_preview(head)}")
                    self._pending = head
                    return None
                line = data[pos:end].rstrip(b"\r")
                if line != _HEADER:
                    raise self._error(f"expected '#< CLIXML' or '<Objs', found {_preview(line)}")
                self._advance(data, pos, end + 1)
                pos = end + 1
                continue
            if data.startswith(b"<?", pos):
                self._in_declaration = 2
                self._advance(data, pos, pos + 2)
                pos += 2
                continue
            head = data[pos : pos + 9]
            if rest < 5 and b"<Objs".startswith(head):
                self._pending = head
                return None
            if head.startswith(b"<!"):
                if rest < 9 and head[2:].upper() == b"DOCTYPE"[: rest - 2]:
                    self._pending = head
                    return None
                raise self._error("a DOCTYPE or other declaration is not allowed in CLIXML (refused)")
            if head.startswith(b"<Objs") and (rest == 5 or head[5:6] in b" \t\r\n/>"):
                return pos
            raise self._error(f"expected '<Objs' (the start of a CLIXML document), found {_preview(head)}")

    def _skip_declaration(self, data: bytes, pos: int) -> int:
        """Skip, without keeping it, the rest of a ``<?…?>`` before ``<Objs>`` (it may span chunks)."""
        if self._after_question and data.startswith(b">", pos):
            end = pos + 1
        else:
            found = data.find(b"?>", pos)
            end = found + 2 if found >= 0 else -1
        if end < 0:
            self._in_declaration += len(data) - pos
            self._after_question = data.endswith(b"?")
            self._advance(data, pos, len(data))
            if self._in_declaration > self._max_markup:
                raise self._error(f"a processing instruction longer than {self._max_markup} bytes (refused)")
            return len(data)
        self._in_declaration = 0
        self._after_question = False
        self._advance(data, pos, end)
        return end

    def _advance(self, data: bytes | bytearray, start: int, end: int) -> None:
        """Count ``data[start:end]`` as read (for the offsets and lines that errors give)."""
        self._consumed += end - start
        self._consumed_lines += data.count(b"\n", start, end)

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
        self._type_names = collections.OrderedDict()
        self._type_name_size = 0
        self._type_names_dropped = False
        self._scanner.reset()
        self._held.clear()

    def _parse(self, data: bytes, start: int, end: int) -> int:
        """Feed ``data[start:end]`` to the current document; return where it stopped reading: ``end``,
        or just after the document's end. Unfinished markup is held back until it ends, so expat
        never scans a token twice."""
        fed_before = self._consumed - self._doc_offset  # document offset of the first byte not fed
        refused: MarkupError | None = None
        try:
            hold = self._scanner.scan(data, start, end)
        except MarkupError as exc:
            hold, refused = exc.start, exc
        view = memoryview(data)[start:end]
        held = self._held
        held_before = len(held)  # bytes of earlier chunks held back, before data[start]
        if held:
            held += view
        whole: bytearray | memoryview = held if held else view
        cut = len(whole) if hold is None else hold - fed_before
        if cut <= 0 and refused is not None:
            raise self._error(str(refused))
        if cut <= 0:
            if not held:
                held += view
            return end
        feed = whole if cut >= len(whole) else whole[:cut]
        kept = len(whole) - len(feed)  # bytes held back now (unfinished markup)
        self._held = bytearray(whole[cut:]) if kept and refused is None else bytearray()
        try:
            self._parser.Parse(feed, False)
        except _DocumentEnd:
            # Where the root's end tag ends: in ``feed`` (held bytes first, then data from start).
            base = start - held_before  # data offset of feed[0] (held bytes precede data[start])
            source: bytes | bytearray = held if held_before else data
            offset = 0 if held_before else base
            index = self._root_end - fed_before
            if index < 0:  # the end tag began in an earlier chunk; its '>' is in this one
                stop = source.index(b">", offset) + 1 - offset
            elif source.startswith(b"</", offset + index):
                stop = source.index(b">", offset + index) + 1 - offset
            else:  # a self-closing root: expat reports the position just after '/>'
                stop = index
            self._advance(source, offset, offset + stop)
            self._parser = None
            self._held.clear()
            return base + stop
        except expat.ExpatError as exc:
            raise self._error(
                _expat_message(exc), line=self._doc_line + exc.lineno - 1, column=exc.offset + 1
            ) from None
        except ClixmlError:
            raise
        except RecursionError:  # pragma: no cover - guarded by max_depth
            raise self._error("nesting too deep") from None
        if held_before:
            self._advance(held, 0, len(feed))
        else:
            self._advance(data, start, start + len(feed))
        if refused is not None:
            raise self._error(str(refused))
        return end

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
        max_attributes = self._max_attributes
        referenced = None if self._keep_all else self._referenced
        remember = self._remember
        new_object = _new_psobject
        error = self._error
        prim_name: str | None = None
        prim_attrs: dict[str, str] = {}
        prim_text: Any = None
        prim_size = 0
        prim_convert: Callable[[str], Any] = str

        def on_start(name: str, attrs: dict[str, str]) -> None:
            nonlocal prim_name, prim_attrs, prim_text, prim_convert, prim_size
            if len(attrs) > max_attributes:
                raise error(f"<{_shown(name)}> has more than {max_attributes} attributes (refused)")
            if prim_name is not None:
                raise error(f"<{_shown(name)}> inside <{prim_name}>, which holds only text")
            convert = primitives.get(name)
            if convert is not None and stack:
                prim_name = name
                prim_attrs = attrs
                prim_text = None
                prim_size = 0
                prim_convert = convert
                return
            if len(stack) >= max_depth:
                raise error(f"elements nested deeper than {max_depth} (refused)")
            if not stack and name != "Objs":
                raise error(f"the root element must be <Objs>, not <{_shown(name)}>")
            frame: list[Any] = [name, attrs, None]
            stack.append(frame)
            if name == "Obj":
                ref_id = attrs.get("RefId")
                if ref_id is not None and (referenced is None or ref_id in referenced):
                    placeholder = new_object()
                    frame.append(("", ref_id, placeholder))  # found again by _object
                    remember(ref_id, placeholder)

        def on_text(data: str) -> None:
            nonlocal prim_text, prim_size
            if prim_name is None:
                # Between elements: whitespace, or text something wrote straight to the console in the
                # middle of the document. That is kept as a "text" item rather than dropped.
                if len(stack) == 1 and not data.isspace():
                    items.append(ClixmlItem("text", data))
                return
            prim_size += len(data)
            if prim_size > max_value:
                raise error(f"a single value is larger than {max_value} characters (refused)")
            if prim_text is None:
                prim_text = data
            elif prim_text.__class__ is list:
                prim_text.append(data)
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
                    raise error(
                        f"invalid <{name}>{self._member_path(attrs)}: {_shown(str(exc), 200)}"
                    ) from None
            else:
                frame = stack.pop()
                if not stack:
                    self._root_end = self._parser.CurrentByteIndex
                    raise _DocumentEnd
                builder = builders.get(name)
                if builder is None:
                    raise error(f"unknown element <{_shown(name)}>")
                attrs = frame[1]
                try:
                    value = builder(frame)
                except ClixmlError:
                    raise
                except (ValueError, TypeError, KeyError, OverflowError) as exc:
                    failure = error(f"invalid <{name}>{self._member_path(attrs)}: {_shown(str(exc), 200)}")
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
            tables = self._type_names
            old = tables.pop(ref_id, None)
            if old is not None:
                self._type_name_size -= sum(map(len, old))
            tables[ref_id] = names
            self._type_name_size += sum(map(len, names))
            # The least recently used go first, so that a stream of new type names stays bounded.
            while len(tables) > self._type_name_window or (
                self._type_name_size > self._type_name_characters and len(tables) > 1
            ):
                _, dropped = tables.popitem(last=False)
                self._type_name_size -= sum(map(len, dropped))
                self._type_names_dropped = True
        return names

    def _type_name_ref(self, frame: _Frame) -> tuple[str, ...]:
        ref_id = frame[1].get("RefId") or ""
        tables = self._type_names
        names = tables.get(ref_id)
        if names is None:
            why = (
                f" still held (the reader keeps the {self._type_name_window} most recently used)"
                if self._type_names_dropped
                else ""
            )
            raise ValueError(f"TNRef RefId {_shown(ref_id)!r} names no earlier <TN>{why}")
        tables.move_to_end(ref_id)
        return names

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
        shown = ".".join(_shown(decode_string(n)) for n in names if n)
        return f" (member {_shown(shown, 200)})" if shown else ""

    def _error(self, message: str, *, line: int | None = None, column: int | None = None) -> ClixmlError:
        parser = self._parser
        offset = self._consumed
        if line is None and parser is not None and parser.CurrentLineNumber:
            line = self._doc_line + parser.CurrentLineNumber - 1
            column = parser.CurrentColumnNumber + 1
            offset = self._doc_offset + max(parser.CurrentByteIndex, 0)
        return ClixmlError(message, offset=offset, line=line, column=column, source=self.source)

    def _truncated(self) -> ClixmlError:
        open_tags = [_shown(f[0]) for f in self._stack] or ["Objs"]
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


def _shown(text: str, limit: int = 60) -> str:
    """A name or value as an error message shows it: cut short, whatever its size."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def _hashable(key: Any) -> Any:
    """A dictionary key as Python can hash it: a list as a tuple, a dictionary as a tuple of pairs, one
    level deep (deeper keys, which only a hostile document has, would hash exponentially)."""
    if isinstance(key, list):
        return tuple(_flat_key(k) for k in key)
    if isinstance(key, dict):
        return tuple((_flat_key(k), _flat_key(v)) for k, v in key.items())
    return key


def _flat_key(part: Any) -> Any:
    if isinstance(part, (list, dict)):
        raise ValueError("a dictionary key that is a list or dictionary holding lists or dictionaries")
    return part


def _preview(data: bytes) -> str:
    text = data[:40].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > 40 else ""))


def _expat_message(exc: expat.ExpatError) -> str:
    return f"not well-formed XML: {expat.ErrorString(exc.code)}"
