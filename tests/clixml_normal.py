"""A small normalizer so pswrap's values and psrpcore's can be compared (test-only).

Both sides are reduced to plain data: objects to ``{"@types": …, "@tostring": …, member: …}`` with the
``Deserialized.`` prefix dropped (psrpcore adds it to types it does not know), characters to ``str``,
enums to their ``int``, dates to ``(isoformat, nanosecond)``, durations to ticks.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from decimal import Decimal
from typing import Any

import psrpcore.types as ps

from pswrap.objects import ProgressRecord, PSObject, PSTimeSpan, SecureString, Version

_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_COLLECTION_MEMBERS = {"Count", "IsSynchronized", "SyncRoot", "IsReadOnly", "IsFixedSize", "Length", "Rank"}


def _types(names: Any) -> list[str]:
    out = []
    for name in names:
        while name.startswith("Deserialized."):
            name = name.removeprefix("Deserialized.")
        out.append(_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name))
    return out


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float(value)
    if isinstance(value, Decimal):
        return Decimal(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return (dt.datetime.isoformat(value), getattr(value, "nanosecond", 0) or 0)
    if isinstance(value, dt.timedelta):
        ticks = getattr(value, "ticks", None)
        if ticks is None:
            micro = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
            ticks = micro * 10 + getattr(value, "nanoseconds", 0) // 100
        return ("ticks", ticks)
    return NotImplemented


def normalize_pswrap(value: Any, seen: frozenset[int] = frozenset(), *, both_pswrap: bool = False) -> Any:
    """pswrap's value as plain data. ``both_pswrap``: the other side is pswrap's too (from_psrp), so a
    wrapped value is compared as a value even where psrpcore invented its type names."""
    scalar = _scalar(value)
    if scalar is not NotImplemented:
        return scalar
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    if isinstance(value, Version):
        return ("version", str(value))
    if isinstance(value, SecureString):
        return ("secure", value.reveal())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, ProgressRecord):
        return {
            "progress": str(value.activity),
            "id": value.activity_id,
            "status": value.message,
            "operation": value.current_operation,
            "parent": value.parent_activity_id,
            "percent": value.percent_complete,
            "seconds": value.seconds_remaining,
            "completed": value.completed,
        }
    if isinstance(value, PSObject):
        if _rehydrated(value.type_names) and not (both_pswrap and value.has_value):
            return ("rehydrated by psrpcore", _types(value.type_names)[0])
        # psrpcore invents type names for a wrapped value sent without <TN>: compare those only when sent.
        out: dict[str, Any] = {}
        if value.has_value:
            out["@value"] = normalize_pswrap(value.value, seen, both_pswrap=both_pswrap)
        else:
            out["@types"] = _types(value.type_names)
            out["@tostring"] = value.to_string
        for name, member in value.items():
            out[name] = normalize_pswrap(member, seen, both_pswrap=both_pswrap)
        return out
    if isinstance(value, list):
        return [normalize_pswrap(v, seen, both_pswrap=both_pswrap) for v in value]
    if isinstance(value, tuple):
        return tuple(normalize_pswrap(v, seen, both_pswrap=both_pswrap) for v in value)
    if isinstance(value, dict):
        return {
            _key(normalize_pswrap(k, seen, both_pswrap=both_pswrap)): normalize_pswrap(
                v, seen, both_pswrap=both_pswrap
            )
            for k, v in value.items()
        }
    raise TypeError(f"cannot normalize {type(value).__name__}")


def _rehydrated(names: Any) -> bool:
    """psrpcore turns some well-known types into its own classes, whose shape differs from the wire's."""
    from psrpcore.types._base import TypeRegistry

    registry = TypeRegistry().type_registry
    first = _types(names[:1])
    return bool(first) and first[0] in registry and first[0] not in _PLAIN_TYPES


_NATIVE = (str, int, float, bytes, Decimal, dt.datetime, dt.timedelta, uuid.UUID, list, dict, ps.PSVersion)
_PLAIN_TYPES = {"System.Management.Automation.PSCustomObject", "System.Collections.Hashtable"}


def _members(value: Any) -> list[Any]:
    meta = getattr(value, "PSObject", None)
    if meta is None:
        return []
    return [*meta.adapted_properties, *meta.extended_properties]


def normalize_psrpcore(value: Any, seen: frozenset[int] = frozenset(), *, wrapped: bool = False) -> Any:
    """psrpcore's value as plain data; a primitive or collection carrying real members becomes a dict."""
    meta = getattr(value, "PSObject", None)
    complex_value = (
        meta is not None and not isinstance(value, _NATIVE) and not isinstance(value, ps.ProgressRecord)
    )
    if complex_value and not wrapped and _rehydrated(meta.type_names):
        return ("rehydrated by psrpcore", _types(meta.type_names)[0])
    members = (
        [] if wrapped or (isinstance(value, ps.PSObject) and type(value) is ps.PSObject) else _members(value)
    )
    names = {m.name for m in members}
    is_collection = isinstance(value, (list, dict))
    extra = names - _COLLECTION_MEMBERS if is_collection else names - {"DisplayHint"}
    if members and extra and not isinstance(value, (ps.ProgressRecord, ps.PSCustomObject)):
        out: dict[str, Any] = {"@value": normalize_psrpcore(value, seen, wrapped=True)}
        for prop in members:
            out[prop.name] = normalize_psrpcore(prop.get_value(value), seen)
        return out
    if isinstance(value, ps.PSChar):
        return chr(int(value))
    scalar = _scalar(value)
    if scalar is not NotImplemented:
        return scalar
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    if isinstance(value, ps.PSVersion):
        return ("version", str(value))
    if isinstance(value, ps.PSSecureString):
        return ("secure", value.decrypt())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, ps.ProgressRecord):
        return {
            "progress": str(value.Activity),
            "id": int(value.ActivityId),
            "status": str(value.StatusDescription),
            "operation": value.CurrentOperation,
            "parent": int(value.ParentActivityId),
            "percent": int(value.PercentComplete),
            "seconds": int(value.SecondsRemaining),
            "completed": int(value.RecordType) == 1,
        }
    if isinstance(value, list):
        return [normalize_psrpcore(v, seen) for v in value]
    if isinstance(value, dict):
        return {_key(normalize_psrpcore(k, seen)): normalize_psrpcore(v, seen) for k, v in value.items()}
    if isinstance(value, ps.PSObject):
        meta = value.PSObject
        if _rehydrated(meta.type_names):
            return ("rehydrated by psrpcore", _types(meta.type_names)[0])
        result: dict[str, Any] = {"@types": _types(meta.type_names), "@tostring": meta.to_string}
        for prop in [*meta.adapted_properties, *meta.extended_properties]:
            result[prop.name] = normalize_psrpcore(prop.get_value(value), seen)
        return result
    raise TypeError(f"cannot normalize {type(value).__name__}")


def _key(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(value.items())
    return value


__all__ = ["PSTimeSpan", "normalize_psrpcore", "normalize_pswrap"]
