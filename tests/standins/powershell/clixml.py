"""CLIXML as ``pwsh -OutputFormat xml`` writes it, built on psrpcore's serializer.

:class:`DocumentWriter` writes ``#< CLIXML`` and one ``<Objs>`` document, one top-level element per
object as it is produced (flushed each time), with ``S="Output"`` (or the stream name) on it. The
``RefId`` and ``TN``/``TNRef`` tables span the whole document, as in PowerShell; psrpcore numbers each
object from zero, so every serialized element is renumbered into the document's tables, and each
``<Obj>``'s children are put in PowerShell's order (TN, ToString, value, container, Props, MS).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

from psrpcore import types as ps

from tests.standins.powershell.streams import to_wire

OBJS_OPEN = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
OBJS_CLOSE = "</Objs>"
HEADER = "#< CLIXML"

_CONTAINERS = ("LST", "IE", "DCT", "STK", "QUE")
_ORDER = {"TN": 0, "TNRef": 0, "ToString": 1, "Props": 4, "MS": 5}


class LocalSecureStrings(ps.PSCryptoProvider):
    """SecureStrings in local CLIXML on Linux: the UTF-16LE bytes as hex (no DPAPI)."""

    def encrypt(self, value: str) -> str:
        return value.encode("utf-16-le", errors="surrogatepass").hex()

    def decrypt(self, value: str) -> str:
        return bytes.fromhex(value).decode("utf-16-le", errors="surrogatepass")


CIPHER = LocalSecureStrings()


class DocumentWriter:
    """One CLIXML document on a text stream, written object by object."""

    def __init__(self, write: Callable[[str], None], flush: Callable[[], None], newline: str = "\n") -> None:
        self._write = write
        self._flush = flush
        self._newline = newline
        self._started = False
        self._closed = False
        self._next_ref = 0
        self._type_ids: dict[tuple[str, ...], int] = {}
        self.count = 0

    @property
    def started(self) -> bool:
        return self._started

    def element(self, value: Any, stream: str) -> str:
        """The text of one top-level element for ``value`` (renumbered into this document)."""
        element = ps.serialize(to_wire(value), CIPHER)
        self._renumber(element)
        attributes = {"S": stream, **{k: v for k, v in element.attrib.items() if k != "S"}}
        element.attrib.clear()
        element.attrib.update(attributes)
        return ElementTree.tostring(element, encoding="unicode", short_empty_elements=True)

    def write(self, value: Any, stream: str = "Output") -> None:
        text = self.element(value, stream)
        self.write_raw(text)

    def write_raw(self, text: str) -> None:
        if self._closed:
            raise RuntimeError("the CLIXML document is already closed")
        if not self._started:
            self._started = True
            self._write(HEADER + self._newline + OBJS_OPEN)
        self._write(text)
        self.count += 1
        self._flush()

    def close(self) -> None:
        if self._started and not self._closed:
            self._write(OBJS_CLOSE)
            self._flush()
        self._closed = True

    def _renumber(self, root: ElementTree.Element) -> None:
        parents = {child: parent for parent in root.iter() for child in parent}
        offset = self._next_ref
        highest = -1
        local_types: dict[str, int] = {}
        for node in list(root.iter()):
            if node.tag in ("Obj", "Ref") and "RefId" in node.attrib:
                local = int(node.attrib["RefId"])
                highest = max(highest, local)
                node.attrib["RefId"] = str(local + offset)
            elif node.tag == "TN":
                local_id = node.attrib["RefId"]
                names = tuple(t.text or "" for t in node)
                if names in self._type_ids:
                    type_id = self._type_ids[names]
                    parent = parents[node]
                    position = list(parent).index(node)
                    parent.remove(node)
                    parent.insert(position, ElementTree.Element("TNRef", RefId=str(type_id)))
                else:
                    type_id = len(self._type_ids)
                    self._type_ids[names] = type_id
                    node.attrib["RefId"] = str(type_id)
                local_types[local_id] = type_id
            elif node.tag == "TNRef":
                node.attrib["RefId"] = str(local_types.get(node.attrib["RefId"], node.attrib["RefId"]))
        self._next_ref = offset + highest + 1
        for node in root.iter():
            if "N" in node.attrib and "RefId" in node.attrib:
                ordered = {"N": node.attrib["N"], **{k: v for k, v in node.attrib.items() if k != "N"}}
                node.attrib.clear()
                node.attrib.update(ordered)
        for node in root.iter("Obj"):
            children = list(node)
            children.sort(key=_child_rank)
            for child in list(node):
                node.remove(child)
            node.extend(children)


def _child_rank(child: ElementTree.Element) -> int:
    if child.tag in _ORDER:
        return _ORDER[child.tag]
    if child.tag in _CONTAINERS:
        return 3
    return 2  # the primitive value of an extended primitive or enum


def progress_object(record: ps.ProgressRecord, source_id: int) -> ps.PSCustomObject:
    """What ``-OutputFormat xml`` writes for progress: PSCustomObject {SourceId (I64), Record (PR)}."""
    return ps.PSCustomObject(SourceId=ps.PSInt64(source_id), Record=record)


def error_text_elements(lines: list[str]) -> list[str]:
    """Formatted error text as pwsh writes it on stderr: one ``<S S="Error">line CRLF</S>`` per line."""
    out = []
    for line in lines:
        element = ps.serialize(line + "\r\n", CIPHER)
        element.attrib["S"] = "Error"
        out.append(ElementTree.tostring(element, encoding="unicode", short_empty_elements=True))
    return out
