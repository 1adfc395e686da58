"""Writing objects for people and programs: ``json``, ``ndjson``, ``csv`` and ``table``.

``ndjson`` and ``json`` stream (each object is written and flushed as soon as it arrives); ``csv`` and
``table`` need every object's columns first, so they read everything before writing.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from pswrap.cli._views import MAX_TABLE_PROPERTIES, view_columns
from pswrap.objects import PSObject, Record, to_jsonable

FORMATS = ("table", "json", "ndjson", "csv")
# No column is squeezed below this many characters (or its widest value): past that, a list instead.
_MIN_COLUMN = 10


def write(
    values: Iterable[Any],
    fmt: str,
    out: TextIO,
    *,
    select: Sequence[str] | None = None,
    console_width: int | None = None,
) -> int:
    """Write ``values`` to ``out`` in ``fmt``; return how many were written."""
    out = _escaping(out)
    if select and fmt != "table":
        values = (_select(v, select) for v in values)
    if fmt == "ndjson":
        return _ndjson(values, out)
    if fmt == "json":
        return _json(values, out)
    if fmt == "csv":
        return _csv(list(values), out)
    if fmt == "table":
        return _table(list(values), out, console_width, select)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def _escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    escaped = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


codecs.register_error("pswrap.escape", _escape)


def _escaping(out: TextIO) -> TextIO:
    """``out``, writing what its encoding cannot carry as ``\\uXXXX`` instead of failing: a lone
    surrogate (a .NET string may hold one) becomes the escape JSON has for it, and shows in text."""
    reconfigure = getattr(out, "reconfigure", None)
    if reconfigure is not None and getattr(out, "errors", "pswrap.escape") != "pswrap.escape":
        out.flush()
        reconfigure(errors="pswrap.escape")
    return out


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def _ndjson(values: Iterable[Any], out: TextIO) -> int:
    count = 0
    for value in values:
        out.write(_dumps(value) + "\n")
        out.flush()
        count += 1
    return count


def _json(values: Iterable[Any], out: TextIO) -> int:
    count = 0
    out.write("[")
    for value in values:
        out.write(("," if count else "") + "\n  " + _dumps(value))
        out.flush()
        count += 1
    out.write("\n]\n" if count else "]\n")
    out.flush()
    return count


def _row(value: Any) -> dict[str, Any]:
    if isinstance(value, (PSObject, Record, Mapping)):
        data = to_jsonable(value)
        if isinstance(data, dict):
            return data
        return {"Value": data}
    return {"Value": to_jsonable(value)}


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _csv(values: list[Any], out: TextIO) -> int:
    rows = [_row(v) for v in values]
    columns = _columns(rows)
    if not columns:
        return 0
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([visible(c) for c in columns])
    for row in rows:
        writer.writerow([visible(_cell(row.get(c)), keep="\t\n\r") for c in columns])
    return len(rows)


def _display(value: Any) -> str:
    """How a table shows a value: an object by its ToString, a list PowerShell-style (``{a, b}``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, PSObject):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return (
            "{"
            + "; ".join(f"{k}={_display(v)}" for k, v in list(value.items())[:4])
            + ("; …}" if len(value) > 4 else "}")
        )
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_display(v) for v in value[:4]) + (", …}" if len(value) > 4 else "}")
    data = to_jsonable(value)
    return data if isinstance(data, str) else str(data)


def _table_row(value: Any) -> dict[str, Any]:
    if isinstance(value, Record):
        return {"Stream": value.stream, "Message": value.message}
    if isinstance(value, Mapping):
        return dict(value.items())
    return {"Value": value}


def _default_columns(values: list[Any], rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """The columns to show and whether a table suits them (else a list), as PowerShell decides."""
    first = values[0]
    view = view_columns(first.type_names) if isinstance(first, PSObject) else None
    present = _columns(rows)
    folded = {name.casefold(): name for name in present}
    if view is not None and all(name.casefold() in folded for name in view):
        return [folded[name.casefold()] for name in view], True
    return present, len(present) <= MAX_TABLE_PROPERTIES


def _table(values: list[Any], out: TextIO, width: int | None, select: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not values:
        return 0
    rows = [_table_row(v) for v in values]
    if select:
        columns, as_table = list(select), True
    else:
        columns, as_table = _default_columns(values, rows)
    cells = [[visible(_display(_get(row, c))) for c in columns] for row in rows]
    console = Console(file=out, width=width, highlight=False, soft_wrap=False, markup=False, emoji=False)
    minimums = [min(max([len(c)] + [len(r[i]) for r in cells]), _MIN_COLUMN) for i, c in enumerate(columns)]
    if not as_table or sum(minimums) + 3 * len(columns) + 1 > console.width:
        _list(columns, cells, out)
        return len(rows)
    table = Table(show_header=True, header_style="bold", show_lines=False)
    for column, minimum in zip(columns, minimums, strict=True):
        table.add_column(
            Text(visible(column)), overflow="ellipsis", no_wrap=True, min_width=minimum, max_width=48
        )
    for row_cells in cells:
        table.add_row(*(Text(cell) for cell in row_cells))
    console.print(table)
    hidden = [c for c in _columns(rows) if c.casefold() not in {s.casefold() for s in columns}]
    if hidden and not select:
        note = f"{len(hidden)} more properties (pick with --select, or use --format json): "
        console.print(
            Text(visible(note + ", ".join(hidden[:10]) + (", …" if len(hidden) > 10 else "")), style="dim")
        )
    return len(rows)


def _list(columns: Sequence[str], cells: list[list[str]], out: TextIO) -> None:
    """Each object as ``Name : value`` lines, like Format-List: nothing is cut to fit a width."""
    width = max((len(c) for c in columns), default=0)
    for index, row_cells in enumerate(cells):
        if index:
            out.write("\n")
        for column, cell in zip(columns, row_cells, strict=True):
            out.write(f"{visible(column):<{width}} : {cell}\n")
    out.flush()


def _get(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    folded = name.casefold()
    return next((v for k, v in row.items() if k.casefold() == folded), None)


# C0 and C1 control characters and DEL: an escape sequence in data must not drive the terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str, keep: str = "") -> str:
    """``text`` with control characters (other than those in ``keep``) written as escapes: ``\\x1b``."""
    return _CONTROL.sub(
        lambda m: m.group() if m.group() in keep else _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text
    )


def _select(value: Any, names: Sequence[str]) -> Any:
    if isinstance(value, Mapping):
        picked: dict[str, Any] = {}
        for name in names:
            try:
                picked[name] = value[name]
            except KeyError:
                picked[name] = None
        return picked
    return value


def describe(record: Record) -> str:
    """One line for a person: ``WARNING: text``."""
    if record.stream == "progress":
        activity = getattr(record, "activity", "")
        return visible(f"PROGRESS: {activity} {record.message}".rstrip())
    return visible(f"{record.stream.upper()}: {record.message}", keep="\n")


def iter_lines(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        yield describe(record)
