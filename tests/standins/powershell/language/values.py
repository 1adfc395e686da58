"""PowerShell value semantics over psrpcore's types: arrays, hashtables, truth, text, comparison, casts.

Values inside the interpreter are the Python/psrpcore objects psrpcore serializes: ``None`` ($null),
``bool``, ``int``, :class:`psrpcore.types.PSDouble` (never a bare ``float``: psrpcore would send a
Single), ``str``, :class:`PSArray` (``System.Object[]``), ``PSDict`` (Hashtable), :class:`OrderedHashtable`,
``PSCustomObject``, ``ErrorRecord`` and the other psrpcore types, plus :class:`ScriptBlock`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fnmatch
import math
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from psrpcore import types as ps

from tests.standins.powershell.errors import PSError, StandinUnsupported, error_record, runtime_error


class PSArray(ps.PSList):
    """A PowerShell array (``System.Object[]``)."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.PSObject.type_names = ["System.Object[]", "System.Array", "System.Object"]


class ObjectList(ps.PSList):
    """``System.Collections.Generic.List[object]``: what ValueFromRemainingArguments collects."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.PSObject.type_names = [
            "System.Collections.Generic.List`1[[System.Object, System.Private.CoreLib, Version=10.0.0.0, "
            "Culture=neutral, PublicKeyToken=7cec85d7bea7798e]]",
            "System.Object",
        ]


class OrderedHashtable(ps.PSDict):
    """``[ordered]@{}``: ``System.Collections.Specialized.OrderedDictionary``."""

    def __init__(self, items: Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__(items)
        self.PSObject.type_names = ["System.Collections.Specialized.OrderedDictionary", "System.Object"]


class BigInteger(ps.PSObject):
    """``System.Numerics.BigInteger``: not a PSRP primitive, so it travels as an object with its ToString."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value
        self.PSObject.type_names = ["System.Numerics.BigInteger", "System.ValueType", "System.Object"]
        self.PSObject.to_string = str(value)
        for name, prop in (
            ("IsPowerOfTwo", value > 0 and value & (value - 1) == 0),
            ("IsZero", value == 0),
            ("IsOne", value == 1),
            ("IsEven", value % 2 == 0),
            ("Sign", (value > 0) - (value < 0)),
        ):
            self.PSObject.adapted_properties.append(ps.PSNoteProperty(name, prop))

    def __str__(self) -> str:
        return str(self.value)


@dataclass
class ScriptBlock:
    """A script block: its text and parsed tree (the interpreter runs it)."""

    text: str
    script: Any  # language.parser.Script
    body: Any  # tree-sitter node: program or script_block

    def __str__(self) -> str:
        return self.text


def double(value: float) -> ps.PSDouble:
    return ps.PSDouble(value)


def make_array(items: Iterable[Any] = ()) -> PSArray:
    return PSArray(list(items))


# ----------------------------------------------------------------------------------------------
# Collections
# ----------------------------------------------------------------------------------------------


def is_enumerable(value: Any) -> bool:
    """Whether PowerShell unrolls this value in a pipeline (arrays and lists; not strings or hashtables)."""
    return isinstance(value, (list, tuple)) and not isinstance(value, (str, dict))


def enumerate_value(value: Any) -> Iterator[Any]:
    if is_enumerable(value):
        yield from value
    else:
        yield value


def collect(values: list[Any]) -> Any:
    """A pipeline's result as a value: nothing is $null, one object is itself, more are an array."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return make_array(values)


def dict_find_key(table: dict[Any, Any], key: Any) -> Any:
    """The existing key matching ``key`` (strings compare without case, as in PowerShell's hashtables)."""
    if key in table:
        return key
    if isinstance(key, str):
        folded = key.casefold()
        for existing in table:
            if isinstance(existing, str) and existing.casefold() == folded:
                return existing
    return _MISSING


_MISSING = object()


def dict_get(table: dict[Any, Any], key: Any) -> Any:
    found = dict_find_key(table, key)
    return None if found is _MISSING else table[found]


def dict_set(table: dict[Any, Any], key: Any, value: Any) -> None:
    found = dict_find_key(table, key)
    table[key if found is _MISSING else found] = value


def dict_contains(table: dict[Any, Any], key: Any) -> bool:
    return dict_find_key(table, key) is not _MISSING


# ----------------------------------------------------------------------------------------------
# Truth, text, numbers
# ----------------------------------------------------------------------------------------------


def to_bool(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if is_enumerable(value):
        if len(value) == 0:
            return False
        if len(value) == 1:
            return to_bool(value[0])
        return True
    if isinstance(value, BigInteger):
        return value.value != 0
    return True


def format_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}E{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def to_string(value: Any) -> str:
    """PowerShell's conversion of a value to text (as in string expansion and ``-join``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, ps.PSEnumBase):
        return value.name or str(int(value))
    if isinstance(value, float):
        return format_double(float(value))
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%m/%d/%Y %H:%M:%S")
    if isinstance(value, dt.timedelta):
        return _format_timespan(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, ScriptBlock):
        return value.text
    if isinstance(value, ps.ErrorRecord):
        from tests.standins.powershell.errors import message_of

        return message_of(value)
    if is_enumerable(value):
        return " ".join(to_string(item) for item in value)
    if isinstance(value, dict):
        return (
            "System.Collections.Hashtable"
            if not isinstance(value, OrderedHashtable)
            else ("System.Collections.Specialized.OrderedDictionary")
        )
    if isinstance(value, ps.PSCustomObject):
        pairs = "; ".join(
            f"{p.name}={to_string(p.get_value(value))}" for p in value.PSObject.extended_properties
        )
        return "@{" + pairs + "}"
    if isinstance(value, ps.PSObject):
        if value.PSObject.to_string is not None:
            return str(value.PSObject.to_string)
        if isinstance(value, ps.PSVersion):
            return str(value)
        names = value.PSObject.type_names
        return str(names[0]) if names else str(value)
    if isinstance(value, bytes):
        return " ".join(str(b) for b in value)
    return str(value)


def _format_timespan(value: dt.timedelta) -> str:
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{seconds:02}"
    if days:
        text = f"{days}.{text}"
    micro = abs(value.microseconds)
    if micro:
        text += f".{micro * 10:07}"
    return sign + text


_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_HEX = re.compile(r"^\s*0x[0-9a-fA-F]+\s*$")


def to_number(value: Any, *, context: str = "") -> int | float | decimal.Decimal:
    """A value as a number the way PowerShell's arithmetic converts it; raises on text that is no number."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, decimal.Decimal)):
        return value
    if isinstance(value, float):
        return double(value)
    if isinstance(value, BigInteger):
        return value.value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        if _HEX.match(text):
            return int(text, 16)
        if _NUMBER.match(text):
            if re.match(r"^\s*[+-]?\d+\s*$", text):
                return int(text)
            return double(float(text))
    raise conversion_error(value, context if context else "System.Double")


def conversion_error(value: Any, type_name: str, detail: str | None = None) -> PSError:
    shown = to_string(value)
    reason = detail or f'Cannot convert value "{shown}" to type "{type_name}".'
    message = f'Cannot convert value "{shown}" to type "{type_name}". Error: "{reason}"' if detail else reason
    record = error_record(
        message,
        exception_type="System.Management.Automation.PSInvalidCastException",
        exception_bases=["System.InvalidCastException", "System.SystemException", "System.Exception"],
        error_id="InvalidCastFromStringToInteger" if isinstance(value, str) else "InvalidCast",
        category=ps.ErrorCategory.InvalidArgument,
        target=value,
    )
    return PSError(record)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------------------------


def equals(left: Any, right: Any, *, case_sensitive: bool = False) -> bool:
    """Scalar ``-eq`` with the left operand deciding the comparison type, as PowerShell does."""
    if left is None:
        return right is None
    if right is None:
        return False
    if isinstance(left, bool):
        return left == to_bool(right)
    if isinstance(left, str):
        right_text = to_string(right)
        if case_sensitive:
            return str(left) == right_text
        return str(left).casefold() == right_text.casefold()
    if is_number(left):
        try:
            return to_number(left) == to_number(right)
        except PSError:
            return False
    if isinstance(left, (uuid.UUID, dt.datetime, dt.timedelta)):
        return bool(left == right) or to_string(left).casefold() == to_string(right).casefold()
    return left is right or bool(left == right)


def compare(op: str, left: Any, right: Any) -> Any:
    """``-eq -ne -gt -ge -lt -le -like -notlike -match -notmatch`` (and their ``c``/``i`` forms).

    A collection on the left filters its items, as in PowerShell.
    """
    name = op.lower().lstrip("-")
    case_sensitive = False
    if name[:1] in ("c", "i") and name[1:] in _COMPARISONS:
        case_sensitive = name[0] == "c"
        name = name[1:]
    if name not in _COMPARISONS:
        raise StandinUnsupported(f"the operator {op}")
    base = "-" + name
    if is_enumerable(left):
        return make_array(item for item in left if _compare_scalar(base, item, right, case_sensitive))
    return _compare_scalar(base, left, right, case_sensitive)


_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "match", "notmatch"}


def _compare_scalar(op: str, left: Any, right: Any, case_sensitive: bool) -> bool:
    if op == "-eq":
        return equals(left, right, case_sensitive=case_sensitive)
    if op == "-ne":
        return not equals(left, right, case_sensitive=case_sensitive)
    if op in ("-like", "-notlike"):
        text, pattern = to_string(left), to_string(right)
        if not case_sensitive:
            text, pattern = text.casefold(), pattern.casefold()
        matched = fnmatch.fnmatchcase(text, pattern.replace("[", "[[]") if "[" in pattern else pattern)
        return matched if op == "-like" else not matched
    if op in ("-match", "-notmatch"):
        flags = 0 if case_sensitive else re.IGNORECASE
        matched = re.search(to_string(right), to_string(left), flags) is not None
        return matched if op == "-match" else not matched
    ordering = _order(left, right, case_sensitive)
    return {"-gt": ordering > 0, "-ge": ordering >= 0, "-lt": ordering < 0, "-le": ordering <= 0}[op]


def _order(left: Any, right: Any, case_sensitive: bool) -> int:
    if left is None:
        return 0 if right is None else -1
    if right is None:
        return 1
    if is_number(left) or isinstance(left, bool):
        a, b = to_number(left), to_number(right)
    elif isinstance(left, str):
        a, b = str(left), to_string(right)
        if not case_sensitive:
            a, b = a.casefold(), b.casefold()
    elif isinstance(left, (dt.datetime, dt.timedelta)):
        a, b = left, right
    else:
        raise StandinUnsupported(f"ordering comparison of {type(left).__name__} values")
    return (a > b) - (a < b)  # type: ignore[operator]


def contains(collection: Any, item: Any, case_sensitive: bool = False) -> bool:
    return any(
        equals(element, item, case_sensitive=case_sensitive) for element in enumerate_value(collection)
    )


def join(values: Any, separator: Any) -> str:
    return to_string(separator).join(to_string(v) for v in enumerate_value(values))


def add(left: Any, right: Any) -> Any:
    if is_enumerable(left):
        return make_array([*left, *enumerate_value(right)] if is_enumerable(right) else [*left, right])
    if isinstance(left, dict) and isinstance(right, dict):
        merged = OrderedHashtable() if isinstance(left, OrderedHashtable) else ps.PSDict()
        for key, value in left.items():
            merged[key] = value
        for key, value in right.items():
            if dict_contains(merged, key):
                raise runtime_error(
                    f"Item has already been added. Key in dictionary: '{key}'  Key being added: '{key}'",
                    "System.ArgumentException",
                )
            merged[key] = value
        return merged
    if isinstance(left, str):
        return str(left) + to_string(right)
    if left is None:
        return right
    return arithmetic("+", left, right)


def arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "*" and isinstance(left, str):
        return str(left) * int(to_number(right))
    a, b = to_number(left), to_number(right)
    if op == "+":
        result = a + b  # type: ignore[operator]
    elif op == "-":
        result = a - b  # type: ignore[operator]
    elif op == "*":
        result = a * b  # type: ignore[operator]
    elif op == "/":
        if b == 0:
            record = error_record(
                "Attempted to divide by zero.",
                exception_type="System.Management.Automation.RuntimeException",
                error_id="RuntimeException",
                category=ps.ErrorCategory.NotSpecified,
            )
            raise PSError(record)
        exact = isinstance(a, int) and isinstance(b, int) and a % b == 0
        result = a // b if exact else a / b  # type: ignore[operator]
    elif op == "%":
        result = a % b  # type: ignore[operator]
    else:
        raise StandinUnsupported(f"the operator {op}")
    if isinstance(result, float):
        return double(result)
    return result


# ----------------------------------------------------------------------------------------------
# Members and indexing
# ----------------------------------------------------------------------------------------------


def get_member(value: Any, name: str) -> Any:
    """``$value.Name`` (properties, hashtable keys, member enumeration over arrays; missing is $null)."""
    folded = name.casefold()
    if value is None:
        return None
    if isinstance(value, dict):
        if dict_contains(value, name):
            return dict_get(value, name)
        if folded == "count":
            return len(value)
        if folded == "keys":
            return make_array(value.keys())
        if folded == "values":
            return make_array(value.values())
        return None
    if isinstance(value, ps.PSSecureString) and folded == "length":
        return len(value.decrypt())
    if isinstance(value, ps.PSObject):
        found, result = _property(value, folded)
        if found:
            return result
    if isinstance(value, str):
        if folded == "length":
            return len(value)
        return None
    if is_enumerable(value):
        if folded in ("count", "length"):
            return len(value)
        results = [get_member(item, name) for item in value]
        results = [r for r in results if r is not None]
        return collect(results) if len(results) <= 1 else make_array(results)
    if isinstance(value, dt.datetime):
        attr = {
            "year": "year",
            "month": "month",
            "day": "day",
            "hour": "hour",
            "minute": "minute",
            "second": "second",
        }.get(folded)
        if attr:
            return getattr(value, attr)
    if isinstance(value, BigInteger) and folded == "value":
        return value.value
    if folded in ("count", "length") and not isinstance(value, ps.PSObject):
        return 1
    return None


def _property(value: ps.PSObject, folded: str) -> tuple[bool, Any]:
    meta = value.PSObject
    for prop in [*meta.extended_properties, *meta.adapted_properties]:
        if prop.name.casefold() == folded:
            return True, prop.get_value(value)
    return False, None


def set_member(value: Any, name: str, new_value: Any) -> None:
    if isinstance(value, dict):
        dict_set(value, name, new_value)
        return
    if isinstance(value, ps.PSObject):
        folded = name.casefold()
        for prop in [*value.PSObject.extended_properties, *value.PSObject.adapted_properties]:
            if prop.name.casefold() == folded:
                prop.set_value(new_value, value)
                return
        raise runtime_error(
            f"The property '{name}' cannot be found on this object. Verify that the property exists and can be set.",
            "PropertyAssignmentException",
        )
    raise StandinUnsupported(f"assigning the member {name!r} of a {type(value).__name__}")


def get_index(value: Any, index: Any) -> Any:
    """``$value[index]``: hashtable keys, array positions (negative from the end), string characters."""
    if value is None:
        record = error_record(
            "Cannot index into a null array.",
            error_id="NullArray",
            category=ps.ErrorCategory.InvalidOperation,
        )
        raise PSError(record)
    if isinstance(value, dict):
        if is_enumerable(index):
            return make_array(dict_get(value, key) for key in index)
        return dict_get(value, index)
    if is_enumerable(index):
        return make_array(get_index(value, i) for i in index)
    if isinstance(value, (str, list, tuple, bytes)):
        position = int(to_number(index))
        if position < 0:
            position += len(value)
        if 0 <= position < len(value):
            item = value[position]
            return int(item) if isinstance(value, bytes) else item
        return None
    if isinstance(value, ps.PSObject):
        raise StandinUnsupported(
            f"indexing into a {value.PSObject.type_names[0] if value.PSObject.type_names else 'PSObject'}"
        )
    position = int(to_number(index))
    return value if position in (0, -1) else None
