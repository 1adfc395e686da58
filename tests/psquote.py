"""Test oracles for rendered PowerShell (test-only).

``scan_single_quoted`` follows PowerShell's own tokenizer rule for single-quoted strings, which the
tree-sitter grammar does not know: any of the five single-quote characters ends the string unless
the next character is also one of them, in which case the pair stands for the second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser, Tree

QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
_PARSER = Parser(Language(tree_sitter_powershell.language()))


def scan_single_quoted(source: str, start: int = 0) -> tuple[str, int]:
    """Decode the single-quoted string at ``source[start]``; return it and the index just after it."""
    if source[start] not in QUOTES:
        raise ValueError(f"no single quote at {start}")
    out: list[str] = []
    index = start + 1
    while index < len(source):
        char = source[index]
        if char in QUOTES:
            if index + 1 < len(source) and source[index + 1] in QUOTES:
                out.append(source[index + 1])
                index += 2
                continue
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ValueError("unterminated single-quoted string")


_PIECE = re.compile(r"\[char\]0")


def decode_string_expression(literal: str) -> str:
    """Decode what ps_literal writes for a string: ``'…'``, or ``('…' + [char]0 + '…')`` around NULs.

    Every piece must be exactly one single-quoted string (by PowerShell's rule) or ``[char]0``.
    """
    if literal.startswith("'"):
        text, end = scan_single_quoted(literal)
        if end != len(literal):
            raise ValueError(f"the string ends at {end}, before the literal does ({len(literal)})")
        return text
    if not (literal.startswith("(") and literal.endswith(")")):
        raise ValueError(f"not a string literal: {literal[:40]!r}")
    inner, out, index = literal[1:-1], [], 0
    while True:
        if inner.startswith("[char]0", index):
            out.append("\x00")
            index += len("[char]0")
        else:
            text, index = scan_single_quoted(inner, index)
            out.append(text)
        if index == len(inner):
            return "".join(out)
        if not inner.startswith(" + ", index):
            raise ValueError(f"unexpected text at {index}: {inner[index : index + 20]!r}")
        index += 3


def parse(source: str) -> Tree:
    return _PARSER.parse(source.encode("utf-8"))


def errors(tree: Tree) -> list[Node]:
    """Every ERROR or MISSING node."""
    found: list[Node] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            found.append(node)
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return found


def string_literals(tree: Tree) -> Iterator[Node]:
    """The grammar's string-literal nodes, in source order."""

    def walk(node: Node) -> Iterator[Node]:
        if node.type == "string_literal":
            yield node
            return
        for child in node.children:
            yield from walk(child)

    yield from walk(tree.root_node)


def node_text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""
