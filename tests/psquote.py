"""Two independent oracles for PowerShell string literals, used by the rendering tests.

1. :func:`scan_single_quoted` follows PowerShell's own tokenizer rule for verbatim strings: any of
   the five single-quote characters ends the string, unless the next character is also one of the
   five, in which case the pair stands for the second. (PowerShell's ``ScanStringLiteral``; the
   characters are ``CharExtensions.IsSingleQuote``.)
2. The tree-sitter PowerShell grammar (:func:`parse`, :func:`string_literals`). It reads only U+0027
   as a quote, so on its own it misses the curly-quote attacks; it checks the literal's shape.

tree-sitter's lexer treats U+0000 as the end of input, where PowerShell's tokenizer checks for the
real end (``c == '\\0' && AtEof()``) and keeps going. :func:`parse` therefore shows the grammar each
NUL as U+0001 (one byte in UTF-8 as well, so every offset stays put); the scanner sees the real text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter
import tree_sitter_powershell

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
DOUBLE_QUOTES = frozenset('"\u201c\u201d\u201e')

_LANGUAGE = tree_sitter.Language(tree_sitter_powershell.language())
_PARSER = tree_sitter.Parser(_LANGUAGE)


class Unterminated(ValueError):
    """The text ended inside a single-quoted string."""


def scan_single_quoted(text: str, start: int = 0) -> tuple[str, int]:
    """The content of the verbatim string opening at ``text[start]`` and the index just past its end."""
    if text[start] not in SINGLE_QUOTES:
        raise ValueError(f"no single quote at index {start}: {text[start]!r}")
    content: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char in SINGLE_QUOTES:
            if i + 1 < len(text) and text[i + 1] in SINGLE_QUOTES:
                content.append(text[i + 1])
                i += 2
                continue
            return "".join(content), i + 1
        content.append(char)
        i += 1
    raise Unterminated(f"the string opened at index {start} never ends")


def split_strings(text: str) -> tuple[str, list[str]]:
    """Take every single-quoted string out of ``text`` (PowerShell's rule), leaving ``''`` in its place.

    Meant for text pswrap rendered: no comments, double-quoted strings or here-strings around.
    """
    rest: list[str] = []
    strings: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in SINGLE_QUOTES:
            content, i = scan_single_quoted(text, i)
            strings.append(content)
            rest.append("''")
        else:
            rest.append(text[i])
            i += 1
    return "".join(rest), strings


def decode_verbatim(node_text: str) -> str:
    """A verbatim string's value from its source (quotes included), by PowerShell's rule."""
    content, end = scan_single_quoted(node_text)
    if end != len(node_text):
        raise ValueError(f"the string ends at {end}, before the node's end at {len(node_text)}")
    return content


@dataclass(frozen=True)
class Literal:
    """One string-literal node: its source text and where it is (character offsets)."""

    text: str
    start: int
    end: int


def parse(source: str) -> tree_sitter.Tree:
    """The tree-sitter tree of ``source`` (NUL shown to the grammar as U+0001, see the module doc)."""
    return _PARSER.parse(source.replace("\x00", "\x01").encode("utf-8"))


def problems(tree: tree_sitter.Tree) -> list[str]:
    """Every ERROR and MISSING node, as ``type at row:column``."""
    found: list[str] = []
    for node in _walk(tree.root_node):
        if node.is_error or node.is_missing:
            found.append(f"{'MISSING ' if node.is_missing else ''}{node.type} at {node.start_point}")
    return found


def string_literals(source: str) -> list[Literal]:
    """Every ``string_literal`` node in ``source``, in order, with character offsets."""
    data = source.encode("utf-8")
    tree = parse(source)
    literals: list[Literal] = []
    for node in _walk(tree.root_node):
        if node.type == "string_literal":
            start = len(data[: node.start_byte].decode("utf-8"))
            text = data[node.start_byte : node.end_byte].decode("utf-8")
            literals.append(Literal(text, start, start + len(text)))
    return literals


def command_names(source: str) -> list[str]:
    """The name of every command invocation tree-sitter finds (``Get-Mailbox``, ``Remove-Item``…)."""
    tree = parse(source)
    return [
        node.text.decode("utf-8")
        for node in _walk(tree.root_node)
        if node.type == "command_name" and node.text is not None
    ]


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))
