"""Walking object graphs without recursion: JSON, equality, hashing and display of what pswrap returns.

A ``<Ref>`` makes what PowerShell sent a graph, not a tree: the same object can sit under two members
(shared) or inside itself (a cycle), and a chain of references can be deeper than any element nesting.
Everything here walks with an explicit stack and visits each shared object a bounded number of times,
so a small hostile document cannot make JSON, ``==``, ``hash`` or ``repr`` run for ever or overflow
Python's stack.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import math
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from pswrap.errors import ExpansionError
from pswrap.objects import PSEnum, PSObject, PSTimeSpan, Record, Version
from pswrap.secret import REDACTED, Secret

#: Deepest nesting of objects, lists and dictionaries that JSON writes; deeper (only ``<Ref>`` chains
#: get there), an object is written as its ToString, as ``ConvertTo-Json`` does past its ``-Depth``.
MAX_JSON_DEPTH = 256
#: JSON writes a shared object in full wherever it appears, as long as the values written again for
#: shared objects stay within this many times the values written the first time (plus a little).
MAX_JSON_EXPANSION = 32
_EXPANSION_SLACK = 64

_CONTAINERS = (PSObject, Record, Mapping, list, tuple, set, frozenset)
_PLAIN_CONTAINERS = frozenset((PSObject, list, dict))
_LEAF: Any = object()


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Turn a value pswrap returned into data ``json.dumps`` accepts, by the documented mapping.

    Secrets become ``"<redacted>"``. A shared object is written in full wherever it appears; an object
    met again inside itself, or nested deeper than :data:`MAX_JSON_DEPTH`, is written as its ToString.
    Raises :class:`~pswrap.errors.ExpansionError` when shared objects would make the JSON more than
    :data:`MAX_JSON_EXPANSION` times larger than the value itself (only a hostile document does that).
    """
    leaf = _leaf(value)
    if leaf is not _LEAF:
        return leaf
    root: list[Any] = []
    # A frame: [output, (key, child) iterator, id, repeated]; its output is already placed in its parent.
    stack: list[list[Any]] = []
    active: set[int] = set()
    done: set[int] = set()
    fresh = written = repeating = 0

    def enter(item: Any, parent: Any, key: Any) -> None:
        nonlocal fresh, written, repeating
        written += 1
        if not repeating:
            fresh += 1
        leaf = _leaf(item)
        if leaf is _LEAF:
            ident = id(item)
            if ident in active or len(stack) >= MAX_JSON_DEPTH:
                leaf = _marker(item)
            else:
                opened = _open(item)
                if opened is None:
                    leaf = item.to_string  # a PSObject that is only its ToString
                else:
                    out, members = opened
                    repeated = ident in done
                    if repeated:
                        repeating += 1
                    active.add(ident)
                    stack.append([out, members, ident, repeated])
                    leaf = out
        if key is None:
            parent.append(leaf)
        else:
            parent[key] = leaf
        if written > MAX_JSON_EXPANSION * fresh + _EXPANSION_SLACK:
            raise ExpansionError(
                f"its JSON would repeat shared objects over and over ({written} values written for "
                f"the {fresh} it holds, past the limit of {MAX_JSON_EXPANSION} times; refused)"
            )

    enter(value, root, None)
    while stack:
        frame = stack[-1]
        step = next(frame[1], None)
        if step is None:
            stack.pop()
            active.discard(frame[2])
            done.add(frame[2])
            if frame[3]:
                repeating -= 1
            continue
        key, item = step
        enter(item, frame[0], key)
    return root[0]


def _leaf(value: Any) -> Any:
    """The JSON of a value that holds no others, or ``_LEAF`` for one that does."""
    if value.__class__ in _PLAIN_CONTAINERS:
        return _LEAF
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) and type(value) is not str else value
    if isinstance(value, PSEnum):
        return value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, PSTimeSpan):
        return str(value)
    if isinstance(value, _dt.timedelta):
        return str(PSTimeSpan(days=value.days, seconds=value.seconds, microseconds=value.microseconds))
    if isinstance(value, (uuid.UUID, Version)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, _CONTAINERS):
        return _LEAF
    return str(value)


def _open(value: Any) -> tuple[Any, Iterator[tuple[Any, Any]]] | None:
    """The empty JSON container for ``value`` and its (key, child) pairs (key ``None``: append)."""
    if isinstance(value, PSObject):
        members = value._members
        if value.has_value:
            return {}, _chain((("@value", value.value),), members.items())
        if not members and value.to_string is not None:
            return None
        return {}, iter(members.items())
    if isinstance(value, Record):
        fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "raw"]
        return {"stream": value.stream}, iter(fields)
    if isinstance(value, Mapping):
        return {}, ((_json_key(k), v) for k, v in value.items())
    return [], ((None, v) for v in value)


def _chain(first: Any, rest: Any) -> Iterator[Any]:
    yield from first
    yield from rest


def _json_key(key: Any) -> str:
    converted = _leaf(key)
    if converted is _LEAF:
        return _marker(key)
    if isinstance(converted, bool):
        return str(converted).lower()
    return converted if isinstance(converted, str) else str(converted)


def _marker(value: Any) -> str:
    """What JSON writes for an object it cannot open here: its ToString (bounded)."""
    if isinstance(value, PSObject):
        if value.to_string is not None:
            return value.to_string
        if value.has_value and _leaf(value.value) is not _LEAF:
            return str(_leaf(value.value))
        return value.type_name or "PSObject"
    return short_repr(value)


# --------------------------------------------------------------------------------------------------
# Equality and hashing
# --------------------------------------------------------------------------------------------------


def graph_equal(a: PSObject, b: PSObject) -> bool:
    """Whether two objects are equal member by member, through any depth, sharing and cycles.

    Each pair of objects is compared once (a pair met again is taken as equal, so two cycles of the
    same shape are equal): the cost is that of the graphs, not of their unfolding.
    """
    assumed: set[tuple[int, int]] = set()
    stack: list[tuple[Any, Any]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        x_object, y_object = isinstance(x, PSObject), isinstance(y, PSObject)
        if x_object or y_object:
            if not (x_object and y_object):
                return False
            pair = (id(x), id(y))
            if pair in assumed:
                continue
            assumed.add(pair)
            if x._type_names != y._type_names or x._to_string != y._to_string:
                return False
            stack.append((x._value, y._value))
            for mine, theirs in ((x._adapted, y._adapted), (x._extended, y._extended)):
                if not _push_mapping(mine, theirs, stack):
                    return False
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if isinstance(x, list) != isinstance(y, list) or len(x) != len(y):
                return False
            pair = (id(x), id(y))
            if pair not in assumed:
                assumed.add(pair)
                stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict) and isinstance(y, dict):
            pair = (id(x), id(y))
            if pair not in assumed:
                assumed.add(pair)
                if not _push_mapping(x, y, stack):
                    return False
        elif x != y:
            return False
    return True


def _push_mapping(mine: Mapping[Any, Any], theirs: Mapping[Any, Any], stack: list[tuple[Any, Any]]) -> bool:
    if len(mine) != len(theirs):
        return False
    for key, value in mine.items():
        if key not in theirs:
            return False
        stack.append((value, theirs[key]))
    return True


def object_hash(obj: PSObject) -> int:
    """A hash that agrees with :func:`graph_equal`: types, ToString, and every member one level deep."""
    return hash(
        (
            obj._type_names,
            obj._to_string,
            _shallow(obj._value),
            frozenset((k, _shallow(v)) for k, v in obj._adapted.items()),
            frozenset((k, _shallow(v)) for k, v in obj._extended.items()),
        )
    )


def _shallow(value: Any) -> Any:
    if isinstance(value, PSObject):
        return ("object", value._type_names, value._to_string)
    if isinstance(value, (list, tuple, Mapping, set, frozenset)):
        return (type(value).__name__, len(value))
    try:
        hash(value)
    except TypeError:
        return type(value).__name__
    return value


# --------------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------------


def short_repr(value: Any, limit: int = 60) -> str:
    """A ``repr`` of at most ``limit`` characters that looks only one level into containers."""
    if isinstance(value, PSObject):
        short = (value.type_name or "PSObject").rsplit(".", 1)[-1]
        if value.to_string is not None:
            text = f"<{short} {_cut(repr(_cut(value.to_string, limit)), limit - len(short) - 3)}>"
        else:
            count = len(value)
            text = f"<{short} …{count} member{'s' if count != 1 else ''}>" if count else f"<{short}>"
    elif isinstance(value, (str, bytes, bytearray)):
        text = repr(value[:limit])
    elif isinstance(value, (list, tuple, set, frozenset, Mapping)):
        items = list(value.items() if isinstance(value, Mapping) else value)[:4] if len(value) else []
        if isinstance(value, Mapping):
            inner = ", ".join(f"{_brief(k)}: {_brief(v)}" for k, v in items)
            open_, close = "{", "}"
        else:
            inner = ", ".join(_brief(v) for v in items)
            open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        more = ", …" if len(value) > len(items) else ""
        text = f"{open_}{inner}{more}{close}"
    else:
        text = repr(value)
    return _cut(text, limit)


def _brief(value: Any) -> str:
    """A container's item in :func:`short_repr`: nested containers are not opened."""
    if isinstance(value, PSObject):
        return f"<{(value.type_name or 'PSObject').rsplit('.', 1)[-1]}>"
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        return f"<{type(value).__name__} of {len(value)}>"
    return short_repr(value, 30)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
