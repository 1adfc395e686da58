"""Where in PowerShell source a position lies: code, a string, a here-string or a comment. No I/O.

A literal is only inert where PowerShell reads it as a literal: in code. Inside a double-quoted
string or here-string, ``$(…)`` in it runs; inside a comment, a newline in it ends the comment and
the rest runs; inside a single-quoted string, the literal's own quotes end the string. :func:`contexts` tells the renderer where each ``{{ }}`` landed so it can refuse the
unsafe places. It errs on the side of refusing: every ``#`` in code starts a comment here.
"""

from __future__ import annotations

from collections.abc import Iterable

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'

CODE = "code"
SINGLE_QUOTED = "single-quoted string"
DOUBLE_QUOTED = "double-quoted string"
HERE_STRING = "here-string"
COMMENT = "comment"
#: Where a rendered value could change the script around it. In a single-quoted string too: the
#: literal's own quotes close the template's (``'{{ x }}'`` is ``''`` + the value as code + ``''``).
UNSAFE = frozenset({SINGLE_QUOTED, DOUBLE_QUOTED, HERE_STRING, COMMENT})


def contexts(text: str, positions: Iterable[int]) -> dict[int, str]:
    """The context (``"code"``, ``"double-quoted string"``, …) at each of ``positions`` in ``text``."""
    wanted = sorted(set(positions))
    found: dict[int, str] = {}
    # The stack of open constructs; "subexpression" is $( … ) inside a double-quoted string.
    stack: list[str] = [CODE]
    depth: list[int] = [0]
    index = 0
    length = len(text)
    next_wanted = 0

    def record(upto: int) -> None:
        nonlocal next_wanted
        while next_wanted < len(wanted) and wanted[next_wanted] <= upto:
            found[wanted[next_wanted]] = _describe(stack)
            next_wanted += 1

    while index < length:
        record(index)
        char = text[index]
        mode = stack[-1]
        following = text[index + 1] if index + 1 < length else ""
        if mode in (CODE, "subexpression"):
            if char == "`":
                index += 2
                continue
            if char == "<" and following == "#":
                stack.append("block comment")
                index += 2
                continue
            if char == "#":
                stack.append(COMMENT)
            elif (
                char == "@"
                and following
                and following in SINGLE_QUOTES + DOUBLE_QUOTES
                and _ends_line(text, index + 2)
            ):
                stack.append("single here-string" if following in SINGLE_QUOTES else "double here-string")
                index += 2
                continue
            elif char in SINGLE_QUOTES:
                stack.append(SINGLE_QUOTED)
            elif char in DOUBLE_QUOTES:
                stack.append(DOUBLE_QUOTED)
            elif mode == "subexpression" and char == "(":
                depth[-1] += 1
            elif mode == "subexpression" and char == ")":
                depth[-1] -= 1
                if depth[-1] == 0:
                    stack.pop()
                    depth.pop()
            index += 1
        elif mode == COMMENT:
            if char in "\r\n":
                stack.pop()
                continue
            index += 1
        elif mode == "block comment":
            if char == "#" and following == ">":
                stack.pop()
                index += 2
                continue
            index += 1
        elif mode == SINGLE_QUOTED:
            if char in SINGLE_QUOTES:
                if following and following in SINGLE_QUOTES:
                    index += 2
                    continue
                stack.pop()
            index += 1
        elif mode == DOUBLE_QUOTED:
            if char == "`":
                index += 2
                continue
            if char == "$" and following == "(":
                stack.append("subexpression")
                depth.append(1)
                index += 2
                continue
            if char in DOUBLE_QUOTES:
                if following and following in DOUBLE_QUOTES:
                    index += 2
                    continue
                stack.pop()
            index += 1
        else:  # a here-string: it ends with its quote and @ at the start of a line
            quotes = SINGLE_QUOTES if mode == "single here-string" else DOUBLE_QUOTES
            if char == "\n" and following and following in quotes and text[index + 2 : index + 3] == "@":
                stack.pop()
                index += 3
                continue
            index += 1
    record(length)
    return found


def _ends_line(text: str, index: int) -> bool:
    """Whether only blanks follow ``index`` up to the end of its line (how a here-string opens)."""
    while index < len(text) and text[index] in " \t":
        index += 1
    return index >= len(text) or text[index] in "\r\n"


def _describe(stack: list[str]) -> str:
    if any(mode in (DOUBLE_QUOTED, "subexpression") for mode in stack):
        return DOUBLE_QUOTED
    top = stack[-1]
    if top in ("single here-string", "double here-string"):
        return HERE_STRING
    if top in (COMMENT, "block comment"):
        return COMMENT
    return top
