"""Values both ways between psrpcore's types and pswrap's object model.

:func:`from_psrp` turns what psrpcore deserialized into the values the CLIXML reader gives for the
same objects, so a value looks the same whichever transport brought it. :func:`to_psrp` prepares a
parameter or input value for psrpcore's serializer: a Python ``float`` becomes a Double (psrpcore
would send a Single), a :class:`~pswrap.Secret` is revealed only here, ``dict`` becomes a Hashtable (an ``OrderedDict`` an ``[ordered]`` OrderedDictionary),
``list``/``tuple`` an array, and anything pswrap cannot represent faithfully is refused with the
parameter's name.
"""

from __future__ import annotations

import collections
import datetime as _dt
import decimal
import enum
import queue
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from psrpcore import types as ps

from pswrap.objects import (
    _NO_VALUE,
    COLLECTION_MEMBERS,
    FORMAT_NOTES,
    PSDateTime,
    PSEnum,
    PSObject,
    PSQueue,
    PSStack,
    PSTimeSpan,
    Record,
    ScriptBlock,
    SecureString,
    Uri,
    Version,
    XmlDocument,
    _init_psobject,
    _new_psobject,
)
from pswrap.records import progress_record
from pswrap.secret import Secret

__all__ = ["from_psrp", "to_psrp"]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
_DESERIALIZED = "Deserialized."
_ORDERED_DICTIONARY = ("System.Collections.Specialized.OrderedDictionary", "System.Object")

SecureStringFactory = Callable[[str], Any]


# --------------------------------------------------------------------------------------------------
# psrpcore -> pswrap
# --------------------------------------------------------------------------------------------------


def from_psrp(value: Any) -> Any:
    """The pswrap value for a value psrpcore deserialized (objects met twice stay one object)."""
    return _From().convert(value)


# What each psrpcore class is, worked out once per class. psrpcore's PSObject answers every attribute
# lookup (``__class__`` included, which a failing ``isinstance`` asks for) through a slow
# ``__getattribute__``; a chain of ``isinstance`` tests per value cost as much as deserializing it.
_PLAIN, _OBJECT, _SECURE, _ENUM, _CHAR, _INTEGER, _FLOAT, _DECIMAL = range(8)
_DATETIME, _DURATION, _GUID, _VERSION, _BYTES, _URI, _XML, _SCRIPT, _STRING, _PROGRESS, _OTHER = range(8, 19)
_KINDS: list[tuple[type | tuple[type, ...], int]] = [
    (ps.PSSecureString, _SECURE),
    ((ps.PSEnumBase, ps.PSFlagBase), _ENUM),
    (ps.PSChar, _CHAR),
    (
        (ps.PSByte, ps.PSSByte, ps.PSInt16, ps.PSUInt16, ps.PSInt, ps.PSUInt, ps.PSInt64, ps.PSUInt64),
        _INTEGER,
    ),
    ((ps.PSSingle, ps.PSDouble), _FLOAT),
    (ps.PSDecimal, _DECIMAL),
    (ps.PSDateTime, _DATETIME),
    (ps.PSDuration, _DURATION),
    (ps.PSGuid, _GUID),
    (ps.PSVersion, _VERSION),
    (ps.PSByteArray, _BYTES),
    (ps.PSUri, _URI),
    (ps.PSXml, _XML),
    (ps.PSScriptBlock, _SCRIPT),
    (str, _STRING),
    (ps.ProgressRecord, _PROGRESS),
]
_CONTAINERS = (ps.PSDictBase, ps.PSListBase, ps.PSStackBase, ps.PSQueueBase, ps.PSIEnumerable)
_kind_of: dict[type, tuple[int, bool]] = {}


def _kind(cls: type) -> tuple[int, bool]:
    """(kind, is a container) for a class; for a psrpcore PSObject the kind of primitive it is."""
    known = _kind_of.get(cls)
    if known is None:
        if not issubclass(cls, ps.PSObject):
            known = (_PLAIN, False)
        else:
            kind = next((k for base, k in _KINDS if issubclass(cls, base)), _OTHER)
            known = (kind, issubclass(cls, _CONTAINERS))
        _kind_of[cls] = known
    return known


class _From:
    def __init__(self) -> None:
        self._seen: dict[int, Any] = {}

    def convert(self, value: Any) -> Any:
        cls = type(value)
        if value is None or cls is bool or cls is str or cls is int:
            return value
        key = id(value)
        if key in self._seen:
            return self._seen[key]
        kind, container = _kind(cls)
        if kind == _PLAIN:
            return self._plain(value)
        return self._psobject(value, kind, container)

    def _plain(self, value: Any) -> Any:
        """Python values psrpcore hands out without a PSObject wrapper."""
        if isinstance(value, enum.Enum):
            return PSEnum(int(value.value), value.name, ())
        if isinstance(value, (str, int, float, decimal.Decimal, bytes, uuid.UUID)):
            return value
        if isinstance(value, _dt.datetime):
            return PSDateTime(value)
        if isinstance(value, _dt.timedelta):
            return PSTimeSpan(value)
        if isinstance(value, list):
            out: list[Any] = []
            self._seen[id(value)] = out
            out.extend(self.convert(v) for v in value)
            return out
        if isinstance(value, dict):
            result: dict[Any, Any] = {}
            self._seen[id(value)] = result
            for k, v in value.items():
                result[_hashable(self.convert(k))] = self.convert(v)
            return result
        return value

    def _psobject(self, value: ps.PSObject, kind: int, container: bool) -> Any:
        meta = value.PSObject
        primitive = self._primitive(value, kind, meta)
        adapted_props = meta.adapted_properties
        extended_props = meta.extended_properties
        # Like the CLIXML reader: a value whose only members are formatting hints or a collection's
        # own (Count, Length…) is just the value.
        if primitive is not _NOT_PRIMITIVE:
            if not adapted_props and all(p.name in FORMAT_NOTES for p in extended_props):
                return primitive
        elif container and not extended_props and all(p.name in COLLECTION_MEMBERS for p in adapted_props):
            return self._container(value)

        remoting = _remoting_form(value)
        obj = _new_psobject()
        self._seen[id(value)] = obj
        if remoting is not None:
            source: ps.PSObject = remoting
            source_meta = remoting.PSObject
        else:
            source, source_meta = value, meta
        adapted = {p.name: self.convert(p.get_value(source)) for p in source_meta.adapted_properties}
        extended = {p.name: self.convert(p.get_value(source)) for p in source_meta.extended_properties}
        wrapped: Any = _NO_VALUE
        if primitive is not _NOT_PRIMITIVE:
            wrapped = primitive
        elif container:
            wrapped = self._container(value)
        _init_psobject(obj, adapted, extended, _type_names(value, meta), _to_string(meta), wrapped)
        if kind == _PROGRESS:  # a <PR> element: the CLIXML reader gives a ProgressRecord for it too
            record = progress_record(obj)
            self._seen[id(value)] = record
            return record
        return obj

    def _primitive(self, value: Any, kind: int, meta: Any) -> Any:
        """The plain value of a psrpcore primitive, or ``_NOT_PRIMITIVE``."""
        if kind == _STRING:
            return str.__str__(value)
        if kind == _INTEGER:
            if meta.type_names != type(value).PSObject.type_names:  # an enum PowerShell did not name
                names = _type_names(value, meta)
                if any(n.removeprefix(_DESERIALIZED) == "System.Enum" for n in names):
                    return PSEnum(int(value), str(_to_string(meta) or int(value)), names)
            return int(value)
        if kind == _DATETIME:
            return PSDateTime(value, nanosecond=int(getattr(value, "nanosecond", 0) or 0))
        if kind == _GUID:
            return uuid.UUID(int=value.int)
        if kind == _FLOAT:
            return float(value)
        if kind == _DECIMAL:
            return decimal.Decimal(value)
        if kind == _SECURE:
            return _secure_string(value)
        if kind == _ENUM:
            return PSEnum(int(value.value), _enum_name(value), tuple(meta.type_names))
        if kind == _CHAR:
            return chr(int(value))
        if kind == _DURATION:
            micro = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
            return PSTimeSpan(ticks=micro * 10 + int(getattr(value, "nanoseconds", 0) or 0) // 100)
        if kind == _VERSION:
            return Version(
                int(value.major),
                int(value.minor),
                -1 if value.build is None else int(value.build),
                -1 if value.revision is None else int(value.revision),
            )
        if kind == _BYTES:
            return bytes(value)
        if kind == _URI:
            return Uri(str.__str__(value))
        if kind == _XML:
            return XmlDocument(str.__str__(value))
        if kind == _SCRIPT:
            return ScriptBlock(str.__str__(value))
        return _NOT_PRIMITIVE

    def _container(self, value: Any) -> Any:
        if isinstance(value, ps.PSStackBase):
            stack = PSStack()
            self._seen[id(value)] = stack
            stack.extend(self.convert(v) for v in value)
            return stack
        if isinstance(value, (ps.PSQueueBase, queue.Queue)):
            # psrpcore keeps a queue as a queue.Queue; read it without draining it.
            items = list(value.queue)
            que = PSQueue()
            self._seen[id(value)] = que
            que.extend(self.convert(v) for v in items)
            return que
        if isinstance(value, dict):
            result: dict[Any, Any] = {}
            self._seen[id(value)] = result
            for k, v in dict.items(value):
                result[_hashable(self.convert(k))] = self.convert(v)
            return result
        out: list[Any] = []
        self._seen[id(value)] = out
        out.extend(self.convert(v) for v in list.__iter__(value))
        return out


_NOT_PRIMITIVE: Any = object()


def _remoting_form(value: ps.PSObject) -> ps.PSObject | None:
    """The wire shape of psrpcore's rehydrated records (ErrorRecord's flat ``ErrorCategory_*`` notes…).

    psrpcore rebuilds ErrorRecord, Warning/Verbose/DebugRecord into richer classes; the CLIXML reader
    sees the flat notes PowerShell serialized, so pswrap goes back to those for one shape everywhere.
    """
    cls: Any = type(value)  # not isinstance: see _kind
    if not issubclass(cls, (ps.ErrorRecord, ps.InformationalRecord)):
        return None
    try:
        converter: Any = cls.ToPSObjectForRemoting
        flat: ps.PSObject = converter(value)
    except Exception:  # an incomplete record: fall back to its properties as they are
        return None
    return flat


def _type_names(value: ps.PSObject, meta: Any) -> tuple[str, ...]:
    names = list(meta.type_names)
    declared = list(type(value).PSObject.type_names)
    if names != declared and names and all(n.startswith(_DESERIALIZED) for n in names):
        # psrpcore prefixes the names of types it does not know with "Deserialized."; the wire had none.
        names = [n[len(_DESERIALIZED) :] for n in names]
    return tuple(names)


def _to_string(meta: Any) -> str | None:
    text = meta.to_string
    return None if text is None else str(text)


def _enum_name(value: Any) -> str:
    if isinstance(value, enum.Flag):
        members = [m for m in type(value) if m.value and (m.value & value.value) == m.value]
        if members:
            return ", ".join(str(m.name) for m in members)
    return str(value.name)


def _secure_string(value: ps.PSSecureString) -> SecureString:
    return SecureString(str(value.decrypt()))


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return tuple(key) if isinstance(key, list) else str(key)
    return key


# --------------------------------------------------------------------------------------------------
# pswrap / Python -> psrpcore
# --------------------------------------------------------------------------------------------------


def to_psrp(value: Any, where: str = "value") -> Any:
    """The psrpcore value that serializes ``value`` faithfully; ``where`` names it in errors."""
    return _To().convert(value, where)


class _To:
    def __init__(self) -> None:
        self._active: set[int] = set()

    def convert(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, ps.PSObject):
            return value  # already psrpcore's: the caller knows what it sends
        if isinstance(value, SecureString):
            return ps.PSSecureString(value.reveal())
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, PSEnum):
            return ps.PSInt(int(value)) if _INT32[0] <= value <= _INT32[1] else ps.PSInt64(int(value))
        if isinstance(value, enum.Enum):
            return self.convert(value.value, where)
        if isinstance(value, int):
            return _integer(value, where)
        if isinstance(value, float):
            return ps.PSDouble(value)
        if isinstance(value, decimal.Decimal):
            return _decimal(value, where)
        if isinstance(value, Uri):
            return ps.PSUri(str(value))
        if isinstance(value, XmlDocument):
            return ps.PSXml(str(value))
        if isinstance(value, ScriptBlock):
            return ps.PSScriptBlock(str(value))
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return ps.PSByteArray(bytes(value))
        if isinstance(value, _dt.timedelta):
            ticks = (
                value.ticks if isinstance(value, PSTimeSpan) else value // _dt.timedelta(microseconds=1) * 10
            )
            if not _INT64[0] <= ticks <= _INT64[1]:
                raise ValueError(
                    f"{where} = {value!r} is beyond what System.TimeSpan can hold (±10,675,199 days)"
                )
            return ps.PSDuration(nanoseconds=ticks * 100)
        if isinstance(value, _dt.datetime):
            return _WireDateTime(value, nanosecond=int(getattr(value, "nanosecond", 0) or 0))
        if isinstance(value, _dt.date):
            return _WireDateTime(_dt.datetime(value.year, value.month, value.day))
        if isinstance(value, uuid.UUID):
            return ps.PSGuid(value)
        if isinstance(value, Version):
            return ps.PSVersion(str(value))
        if isinstance(value, Record):
            return self.convert(value.raw if value.raw is not None else value.message, where)
        key = id(value)
        if key in self._active:
            raise ValueError(f"{where} contains itself; PowerShell parameters cannot be cyclic")
        self._active.add(key)
        try:
            return self._compound(value, where)
        finally:
            self._active.discard(key)

    def _compound(self, value: Any, where: str) -> Any:
        if isinstance(value, PSObject):
            return self._psobject(value, where)
        if isinstance(value, PSStack):
            return ps.PSStack([self.convert(v, f"{where}[{i}]") for i, v in enumerate(value)])
        if isinstance(value, PSQueue):
            que = ps.PSQueue()
            for i, v in enumerate(value):
                que.put(self.convert(v, f"{where}[{i}]"))
            return que
        if isinstance(value, Mapping):
            table = ps.PSDict()
            if isinstance(value, collections.OrderedDict):  # kept in order as PowerShell's [ordered]
                table.PSObject.type_names = list(_ORDERED_DICTIONARY)
            for k, v in value.items():
                table[self.convert(k, f"{where} key {k!r}")] = self.convert(v, f"{where}[{k!r}]")
            return table
        if isinstance(value, (list, tuple, set, frozenset)):
            return ps.PSList([self.convert(v, f"{where}[{i}]") for i, v in enumerate(value)])
        raise TypeError(
            f"{where} is a {type(value).__name__}, which pswrap cannot send to PowerShell; use str, int, "
            "float, bool, Decimal, bytes, datetime, timedelta, UUID, a list, a dict or a pswrap.PSObject"
        )

    def _psobject(self, value: PSObject, where: str) -> Any:
        if value.has_value:
            base = self.convert(value.value, f"{where} value")
            obj = _promote(base)
        else:
            obj = ps.PSObject()
        obj.PSObject.type_names = list(value.type_names) or ["System.Management.Automation.PSCustomObject"]
        if value.to_string is not None:
            obj.PSObject.to_string = value.to_string
        for name, member in value.adapted.items():
            obj.PSObject.adapted_properties.append(
                ps.PSNoteProperty(name, self.convert(member, f"{where}.{name}"))
            )
        for name, member in value.extended.items():
            ps.add_note_property(obj, name, self.convert(member, f"{where}.{name}"), force=True)
        return obj


def _integer(value: int, where: str) -> Any:
    if _INT32[0] <= value <= _INT32[1]:
        return ps.PSInt(value)
    if _INT64[0] <= value <= _INT64[1]:
        return ps.PSInt64(value)
    if 0 <= value <= _UINT64_MAX:
        return ps.PSUInt64(value)
    raise ValueError(f"{where} = {value} does not fit a 64-bit integer; pass a Decimal instead")


class _WireDateTime(ps.PSDateTime):
    """A DateTime whose year is written with four digits: psrpcore's ``%Y`` gives ``1-01-01`` for year 1,
    which pwsh cannot read ("Remote transport error"; the invocation then hangs)."""

    def strftime(self, fmt: str) -> str:
        return super().strftime(fmt.replace("%Y", f"{self.year:04d}"))


class _PlainDecimal(decimal.Decimal):
    """A Decimal written without an exponent: .NET reads ``0.0000001`` but not ``1E-7``."""

    def __str__(self) -> str:
        return format(self, "f")


_DECIMAL_MANTISSA = 2**96  # System.Decimal: a 96-bit integer scaled by 10**-0..28


def _decimal(value: decimal.Decimal, where: str) -> decimal.Decimal:
    """The Decimal as System.Decimal holds it (trailing zeros kept), or an error naming ``where``.

    pwsh fails to read a decimal it cannot hold ("Remote transport error") and the invocation hangs,
    so such a value is refused here.
    """
    if not value.is_finite():
        raise ValueError(f"{where} = {value} is not a number System.Decimal can hold")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0")
    if exponent > 0:
        mantissa, exponent = mantissa * 10**exponent, 0
    while exponent < -28 and mantissa % 10 == 0 and mantissa:
        mantissa, exponent = mantissa // 10, exponent + 1
    if mantissa >= _DECIMAL_MANTISSA or exponent < -28:
        raise ValueError(
            f"{where} = {value} does not fit System.Decimal (at most 28 decimal places and "
            f"{_DECIMAL_MANTISSA - 1} in all); pass a float or a str instead"
        )
    return _PlainDecimal((sign, tuple(int(d) for d in str(mantissa)), max(exponent, -28)))


def _promote(value: Any) -> Any:
    """A psrpcore object for a plain value, so that members can be attached to it."""
    if isinstance(value, ps.PSObject):
        return value
    if isinstance(value, str):
        return ps.PSString(value)
    if isinstance(value, bool):
        return ps.PSObject()
    if isinstance(value, int):
        return ps.PSInt64(value)
    if value is None:
        return ps.PSObject()
    return value
