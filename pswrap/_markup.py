"""Where unfinished markup begins in a stream of XML bytes, so that expat is only ever fed whole tags.

Expat 2.5 (before its "reparse deferral") scans an unfinished token again from its start on every
``Parse`` call: a tag, comment or processing instruction spread over many chunks costs the square of its
length. The CLIXML reader therefore holds back the bytes of unfinished markup until it ends (or grows
past the limit), and this scanner tells where that markup starts. It looks only at what decides it —
the last ``<`` of a chunk, the quotes of that one tag, and the rare ``<!``/``<?`` — so it costs a few
C-level searches per chunk, not a step per element.
"""

from __future__ import annotations

import re

_TAG_STOP = re.compile(rb"[\"'>]")
_SPECIAL = re.compile(rb"<[!?]")
_TERMINATORS = {"comment": b"-->", "processing instruction": b"?>", "CDATA section": b"]]>"}
_OPENERS = (b"<!--", b"<![CDATA[")
_SHORTEST_KNOWN = 9  # len(b"<![CDATA["): a '<' closer than this to the end may be an opener cut short


class MarkupError(ValueError):
    """Markup refused before expat saw it (too long, or a DOCTYPE); it began at offset ``start``."""

    def __init__(self, message: str, start: int) -> None:
        super().__init__(message)
        self.start = start


class MarkupScanner:
    """Fed a document's bytes in order; :meth:`scan` says where markup still open at their end began."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Where the next '<!' or '<?' of a chunk is (searched once per chunk, not once per document).
        self._special: tuple[bytes, int, int, int] | None = None  # (data, from, to, found or -1)
        self.reset()

    def reset(self) -> None:
        """Start a new document (offsets from 0 again)."""
        self._position = 0  # document offset of the byte after the last one scanned
        self._mode: str | None = None  # None: outside markup; "tag"; or a key of _TERMINATORS
        self._quote: bytes | None = None  # inside a tag: the attribute quote that is open
        self._start = 0  # document offset where the open markup began
        self._carry = b""  # bytes to look at again with the next ones (a cut opener or terminator)

    def scan(self, data: bytes, start: int = 0, end: int | None = None) -> int | None:
        """Take the next bytes (``data[start:end]``); return the document offset where markup still
        open after them began, if any."""
        end = len(data) if end is None else end
        carry, self._carry = self._carry, b""
        base = self._position - start  # document offset of data[0]
        self._position += end - start
        if carry:  # rare: look again at the few bytes the last chunk ended with
            data, base = carry + data[start:end], base + start - len(carry)
            start, end = 0, len(carry) + end - start
        pos = start
        while pos < end and not self._carry:
            mode = self._mode
            if mode is None:
                pos = self._outside(data, pos, end, base)
            elif mode == "tag":
                pos = self._in_tag(data, pos, end, base)
            else:
                terminator = _TERMINATORS[mode]
                found = data.find(terminator, pos, end)
                if found < 0:
                    self._carry = data[max(pos, end - len(terminator) + 1) : end]
                    break
                pos = found + len(terminator)
                self._closed(base + pos)
        if self._mode is None:
            return self._start if self._carry else None
        if self._mode != "CDATA section" and self._position - self._start > self.limit:
            raise MarkupError(f"a {self._mode} longer than {self.limit} bytes (refused)", self._start)
        return None if self._mode == "CDATA section" else self._start

    def _outside(self, data: bytes, pos: int, end: int, base: int) -> int:
        """From ``pos`` outside markup: to the next ``<!``/``<?`` or the end, keeping track of the last tag."""
        found = self._next_special(data, pos, end)
        special = found >= 0
        stop = found if special else end
        last = data.rfind(b"<", pos, stop)
        if last >= 0:
            self._mode, self._quote, self._start = "tag", None, base + last
            self._in_tag(data, last + 1, stop, base)
            if self._mode == "tag":
                if not special:
                    tail = data[last:end]
                    if any(opener.startswith(tail) for opener in _OPENERS):
                        self._mode, self._carry = None, tail  # maybe '<!--' cut short
                    return end
                self._mode = None  # '<' inside a tag: not well-formed, and expat will say so
        if not special:
            return end
        head = data[stop : min(stop + _SHORTEST_KNOWN, end)]
        if head.startswith(b"<?"):
            kind, skip = "processing instruction", 2
        elif head.startswith(b"<!--"):
            kind, skip = "comment", 4
        elif head.startswith(b"<![CDATA["):
            kind, skip = "CDATA section", 9
        elif any(opener.startswith(head) for opener in _OPENERS):
            self._start, self._carry = base + stop, head  # cut short: decide with the next bytes
            return end
        else:
            raise MarkupError(
                "a DOCTYPE or other declaration is not allowed in CLIXML (refused)", base + stop
            )
        self._mode, self._start = kind, base + stop
        return stop + skip

    def _next_special(self, data: bytes, pos: int, end: int) -> int:
        """The first ``<!``/``<?`` in ``data[pos:end]`` (-1: none); one search serves every document
        of a chunk, so that many small documents do not each search the rest of it."""
        cached = self._special
        if cached is not None and cached[0] is data and cached[1] <= pos:
            found = cached[3]
            if found >= pos:
                return found if found < end else -1
            if found < 0 and cached[2] >= end:
                return -1
        match = _SPECIAL.search(data, pos)
        found = match.start() if match else -1
        self._special = (data, pos, len(data), found)
        return found if found < end else -1

    def _closed(self, at: int) -> None:
        """Markup ended at document offset ``at``: refuse it if it was longer than the limit."""
        if self._mode != "CDATA section" and at - self._start > self.limit:
            raise MarkupError(f"a {self._mode} longer than {self.limit} bytes (refused)", self._start)
        self._mode = None

    def _in_tag(self, data: bytes, pos: int, end: int, base: int) -> int:
        """Inside a tag from ``pos``: follow its quotes to its ``>``; return where to go on."""
        while pos < end:
            quote = self._quote
            if quote is not None:
                found = data.find(quote, pos, end)
                if found < 0:
                    return end
                self._quote = None
                pos = found + 1
                continue
            match = _TAG_STOP.search(data, pos, end)
            if match is None:
                return end
            if match.group() == b">":
                self._closed(base + match.end())
                return match.end()
            self._quote = match.group()
            pos = match.end()
        return end
