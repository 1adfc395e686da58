"""Parse PowerShell text with the tree-sitter grammar, corrected by PowerShell's own quoting rules.

The grammar only knows the ASCII quotes. PowerShell treats ``'`` ``‘`` ``’`` ``‚`` ``‛`` alike as the
single quote (a pair of any two inside a literal stands for the second) and ``"`` ``“`` ``”`` ``„``
alike as the double quote. So every script is first scanned the way PowerShell's tokenizer scans it:
each string literal is found by PowerShell's rules, its value is decoded from the original text, and
its delimiters are rewritten to ASCII (same number of characters) before tree-sitter sees it. A string
therefore ends exactly where PowerShell would end it, and the interpreter reads literal values from
this scan, never from the grammar's idea of a string.

Any ERROR or MISSING node, an unterminated string, or a construct the scan does not handle, fails with
a :class:`ParseError` that carries a real-looking ``ParseException`` error record.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from tests.standins.powershell.errors import StandinUnsupported, parse_error_record

SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")
DOUBLE_QUOTES = frozenset('"\u201c\u201d\u201e')
DASHES = frozenset("\u2013\u2014\u2015")
_COMMENT_BEFORE = frozenset(" \t\r\n;(){}|&,=")

_LANGUAGE = Language(tree_sitter_powershell.language())


@dataclass(frozen=True)
class StringToken:
    """One string literal as PowerShell reads it: its value (single-quoted) or raw content (double)."""

    start: int  # character offset of the opening quote in the script
    end: int  # character offset just after the closing quote
    verbatim: bool  # single-quoted: ``value`` is final; double-quoted: ``value`` is the raw content
    value: str


@dataclass(frozen=True)
class SyntaxProblem:
    """One parse error: where (1-based line and character) and PowerShell's id and message for it."""

    line: int
    column: int
    error_id: str
    message: str
    width: int = 1


@dataclass
class Script:
    """A parsed script: the original text, the tree, and the string literals found by PowerShell's rules."""

    text: str
    tree_root: Node
    strings: dict[int, StringToken] = field(default_factory=dict)  # by byte offset in the parsed text
    _char_starts: list[int] = field(default_factory=list)  # byte offset at which each character starts
    blank: bool = False  # nothing but whitespace and comments (the grammar reports that as an error)

    def char_offset(self, byte_offset: int) -> int:
        """The character offset in :attr:`text` for a byte offset in the tree."""
        return bisect.bisect_right(self._char_starts, byte_offset) - 1

    def node_text(self, node: Node) -> str:
        """The original text (curly quotes included) that ``node`` covers."""
        return self.text[self.char_offset(node.start_byte) : self.char_offset(node.end_byte)]

    def position(self, node: Node) -> tuple[int, int]:
        """1-based line and character of ``node``'s start, as PowerShell counts them."""
        offset = self.char_offset(node.start_byte)
        line = self.text.count("\n", 0, offset) + 1
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - line_start + 1

    def string_at(self, node: Node) -> StringToken:
        token = self.strings.get(node.start_byte)
        if token is None:
            raise StandinUnsupported(
                f"the string literal {self.node_text(node)!r} (no PowerShell token here)"
            )
        return token


class ParseError(Exception):
    """The script does not parse: carries PowerShell's ``ParseException`` error record."""

    def __init__(self, text: str, problems: list[SyntaxProblem]) -> None:
        self.text = text
        self.problems = problems
        self.record = parse_error_record(
            text, [(p.line, p.column, p.width, p.error_id, p.message) for p in problems]
        )
        super().__init__(str(self.record.Exception.Message))


def parse(text: str) -> Script:
    """Parse a whole script; raise :class:`ParseError` on any syntax error."""
    normalized, strings, problems = _scan(text)
    if problems:
        raise ParseError(text, problems)
    encoded = normalized.encode("utf-8")
    char_starts: list[int] = []
    position = 0
    for char in normalized:
        char_starts.append(position)
        position += len(char.encode("utf-8"))
    char_starts.append(position)
    by_byte = {char_starts[token.start]: token for token in strings}
    tree = Parser(_LANGUAGE).parse(encoded)
    script = Script(text=text, tree_root=tree.root_node, strings=by_byte, _char_starts=char_starts)
    if tree.root_node.has_error:
        if _blank(tree.root_node, encoded):
            script.blank = True
            return script
        raise ParseError(text, _tree_problems(script))
    return script


def _blank(node: Node, source: bytes) -> bool:
    if node.type == "comment":
        return True
    if node.child_count == 0:
        return not source[node.start_byte : node.end_byte].strip()
    return all(_blank(child, source) for child in node.children)


# ----------------------------------------------------------------------------------------------
# PowerShell's tokenizer rules for quotes, comments and braced variables
# ----------------------------------------------------------------------------------------------


def _scan(text: str) -> tuple[str, list[StringToken], list[SyntaxProblem]]:
    out = list(text)
    strings: list[StringToken] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "<" and text.startswith("<#", i):
            end = text.find("#>", i + 2)
            i = n if end < 0 else end + 2
        elif char == "#" and (i == 0 or text[i - 1] in _COMMENT_BEFORE):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char == "`":
            i += 2
        elif char == "$" and text.startswith("${", i):
            i = _skip_braced_variable(text, i)
        elif char == "@" and i + 1 < n and (text[i + 1] in SINGLE_QUOTES or text[i + 1] in DOUBLE_QUOTES):
            if _is_here_string_start(text, i):
                if text[i + 1] not in "'\"":
                    raise StandinUnsupported("here-strings opened with a curly quote")
                close = _here_string_end(text, i)
                if close < 0:
                    return (
                        "".join(out),
                        strings,
                        [
                            _problem_at(
                                text,
                                i,
                                "TerminatorExpectedAtEndOfString",
                                f"The string is missing the terminator: {text[i + 1]}@.",
                            )
                        ],
                    )
                i = close
            else:
                i += 1
        elif char in SINGLE_QUOTES:
            token, problem = _single_quoted(text, i, out)
            if problem:
                return "".join(out), strings, [problem]
            assert token is not None
            strings.append(token)
            i = token.end
        elif char in DOUBLE_QUOTES:
            token, problem = _double_quoted(text, i, out)
            if problem:
                return "".join(out), strings, [problem]
            assert token is not None
            strings.append(token)
            i = token.end
        elif char in DASHES:
            raise StandinUnsupported(f"the dash character U+{ord(char):04X} as a parameter or operator dash")
        else:
            i += 1
    return "".join(out), strings, []


def _single_quoted(text: str, start: int, out: list[str]) -> tuple[StringToken | None, SyntaxProblem | None]:
    value: list[str] = []
    j = start + 1
    out[start] = "'"
    while j < len(text):
        char = text[j]
        if char in SINGLE_QUOTES:
            if j + 1 < len(text) and text[j + 1] in SINGLE_QUOTES:
                value.append(text[j + 1])  # a pair of any two quote characters stands for the second
                out[j] = out[j + 1] = "'"
                j += 2
                continue
            out[j] = "'"
            return StringToken(start, j + 1, True, "".join(value)), None
        value.append(char)
        j += 1
    return None, _problem_at(
        text,
        start,
        "TerminatorExpectedAtEndOfString",
        f"The string is missing the terminator: {text[start]}.",
        width=len(text.split("\n", text.count("\n", 0, start))[-1].split("\n")[0])
        - _column_of(text, start)
        + 1,
    )


def _double_quoted(text: str, start: int, out: list[str]) -> tuple[StringToken | None, SyntaxProblem | None]:
    j = start + 1
    out[start] = '"'
    while j < len(text):
        char = text[j]
        if char == "`":
            if j + 1 < len(text) and text[j + 1] in DOUBLE_QUOTES:
                out[j + 1] = '"'
            j += 2
            continue
        if char == "$" and text.startswith("$(", j):
            raise StandinUnsupported("subexpressions $( ) inside double-quoted strings")
        if char in DOUBLE_QUOTES:
            if j + 1 < len(text) and text[j + 1] in DOUBLE_QUOTES:
                out[j] = out[j + 1] = '"'
                j += 2
                continue
            out[j] = '"'
            return StringToken(start, j + 1, False, text[start + 1 : j]), None
        j += 1
    return None, _problem_at(
        text,
        start,
        "TerminatorExpectedAtEndOfString",
        f"The string is missing the terminator: {text[start]}.",
        width=len(text.split("\n", text.count("\n", 0, start))[-1].split("\n")[0])
        - _column_of(text, start)
        + 1,
    )


def _skip_braced_variable(text: str, start: int) -> int:
    j = start + 2
    while j < len(text):
        if text[j] == "`":
            j += 2
            continue
        if text[j] == "}":
            return j + 1
        j += 1
    return len(text)


def _is_here_string_start(text: str, at: int) -> bool:
    j = at + 2
    while j < len(text) and text[j] in " \t":
        j += 1
    return j < len(text) and text[j] in "\r\n"


def _here_string_end(text: str, at: int) -> int:
    quote = text[at + 1]
    j = text.find("\n", at)
    while j >= 0:
        if text.startswith(quote + "@", j + 1):
            return j + 3
        j = text.find("\n", j + 1)
    return -1


def _column_of(text: str, offset: int) -> int:
    return offset - (text.rfind("\n", 0, offset) + 1) + 1


def _problem_at(text: str, offset: int, error_id: str, message: str, width: int = 1) -> SyntaxProblem:
    line = text.count("\n", 0, offset) + 1
    return SyntaxProblem(line, _column_of(text, offset), error_id, message, max(width, 1))


# ----------------------------------------------------------------------------------------------
# Turning the grammar's ERROR / MISSING nodes into PowerShell-like parse errors
# ----------------------------------------------------------------------------------------------

_MISSING_MESSAGES = {
    "}": ("MissingEndCurlyBrace", "Missing closing '}' in statement block or type definition."),
    ")": ("MissingEndParenthesisInExpression", "Missing closing ')' in expression."),
    "]": ("MissingEndSquareBracket", "Missing ']' after array index expression."),
}


_CLOSERS = {"(": ")", "{": "}", "[": "]"}


def _incomplete(script: Script) -> SyntaxProblem | None:
    """The error PowerShell reports when the script ends in the middle of something."""
    text = script.text
    spans = sorted((t.start, t.end) for t in script.strings.values())
    stack: list[str] = []
    i = 0
    span_index = 0
    while i < len(text):
        while span_index < len(spans) and spans[span_index][1] <= i:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= i < spans[span_index][1]:
            i = spans[span_index][1]
            continue
        char = text[i]
        if char == "#" and (i == 0 or text[i - 1] in _COMMENT_BEFORE):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if char in _CLOSERS:
            stack.append(char)
        elif char in _CLOSERS.values() and stack and _CLOSERS[stack[-1]] == char:
            stack.pop()
        i += 1
    end = len(text.rstrip())
    line = text.count("\n", 0, end) + 1
    column = end - (text.rfind("\n", 0, end) + 1) + 1
    if stack:
        error_id, message = _MISSING_MESSAGES[_CLOSERS[stack[-1]]]
        return SyntaxProblem(line, column, error_id, message)
    last = text.rstrip().split()[-1] if text.strip() else ""
    if not (
        last in ("+", "-", "*", "/", "%", "=", ",", "|", "..")
        or (last.startswith("-") and last[1:].isalpha())
    ):
        return None
    return SyntaxProblem(
        line,
        column,
        "ExpectedValueExpression",
        f"You must provide a value expression following the '{last}' operator.",
    )


def _tree_problems(script: Script) -> list[SyntaxProblem]:
    problems: list[SyntaxProblem] = []

    def visit(node: Node) -> None:
        if node.is_missing:
            line, column = script.position(node)
            error_id, message = _MISSING_MESSAGES.get(
                node.type, ("MissingToken", f"Missing '{node.type}' in the statement.")
            )
            problems.append(SyntaxProblem(line, column, error_id, message))
            return
        if node.is_error:
            line, column = script.position(node)
            if script.char_offset(node.end_byte) >= len(script.text.rstrip()):
                incomplete = _incomplete(script)
                if incomplete is not None:
                    problems.append(incomplete)
                    return
            text = script.node_text(node).strip()
            if not text:
                problems.append(SyntaxProblem(line, column, "IncompleteParseError", "Incomplete statement."))
                return
            first = text.split()[0] if text.split() else text
            if len(first) > 40:
                first = first[:40]
            problems.append(
                SyntaxProblem(
                    line,
                    column,
                    "UnexpectedToken",
                    f"Unexpected token '{first}' in expression or statement.",
                    width=len(first),
                )
            )
            return
        if node.has_error:
            for child in node.children:
                visit(child)

    visit(script.tree_root)
    if not problems:  # pragma: no cover - has_error always leads to an ERROR or MISSING node
        problems.append(SyntaxProblem(1, 1, "ParseError", "The script does not parse."))
    return problems
