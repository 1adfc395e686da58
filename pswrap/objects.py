"""The Python values that PowerShell objects become, whichever transport brought them.

Primitives map to Python's own types (``str``, ``int``, ``bool``, ``float``, ``Decimal``, ``bytes``,
``UUID``, ``None``); the few that Python lacks get small types here: :class:`PSDateTime` and
:class:`PSTimeSpan` (which keep PowerShell's 100 ns ticks), :class:`Version`, :class:`Uri`,
:class:`XmlDocument`, :class:`ScriptBlock`, :class:`PSEnum` and :class:`SecureString`. Complex objects
are :class:`PSObject`; the other streams' records are :class:`ErrorRecord`, :class:`WarningRecord` and
friends. :func:`to_jsonable` turns any of them into plain JSON-able data (the mapping is in the README).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as _dt
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from pswrap import _dpapi
from pswrap.secret import Secret

__all__ = [
    "DebugRecord",
    "ErrorRecord",
    "InformationRecord",
    "PSDateTime",
    "PSEnum",
    "PSObject",
    "PSQueue",
    "PSStack",
    "PSTimeSpan",
    "ProgressRecord",
    "Record",
    "ScriptBlock",
    "SecureString",
    "Uri",
    "VerboseRecord",
    "Version",
    "WarningRecord",
    "XmlDocument",
    "to_jsonable",
]

_TICKS_PER_MICROSECOND = 10


# --------------------------------------------------------------------------------------------------
# Primitive types Python lacks
# --------------------------------------------------------------------------------------------------


class PSDateTime(_dt.datetime):
    """A ``datetime`` that keeps .NET's 100 ns precision in :attr:`nanosecond` (0, 100, … 900).

    Naive when PowerShell's value had no offset (``DateTimeKind.Unspecified``), UTC for ``Z``
    (``DateTimeKind.Utc``), and fixed-offset aware otherwise.
    """

    nanosecond: int

    def __new__(cls, *args: Any, nanosecond: int = 0, **kwargs: Any) -> PSDateTime:
        if args and isinstance(args[0], _dt.datetime):
            d = args[0]
            self = super().__new__(
                cls, d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.tzinfo, fold=d.fold
            )
        else:
            self = super().__new__(cls, *args, **kwargs)
        if not 0 <= nanosecond < 1000:
            raise ValueError("nanosecond must be in 0..999")
        self.nanosecond = nanosecond
        return self

    @property
    def ticks_fraction(self) -> int:
        """The fraction of a second in .NET ticks (0..9,999,999)."""
        return self.microsecond * _TICKS_PER_MICROSECOND + self.nanosecond // 100

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        """ISO 8601 with all seven fractional digits when the value has sub-microsecond ticks."""
        if timespec != "auto" or not self.nanosecond:
            return super().isoformat(sep, timespec)
        text = super().isoformat(sep, "microseconds")
        offset_at = 26  # YYYY-MM-DDTHH:MM:SS.ffffff
        return f"{text[:offset_at]}{self.nanosecond // 100}{text[offset_at:]}"

    def __str__(self) -> str:
        return self.isoformat(" ")

    def __repr__(self) -> str:
        base = _dt.datetime.__repr__(self)
        if self.nanosecond:
            return f"{base[:-1]}, nanosecond={self.nanosecond})"
        return base

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _dt.datetime):
            if not _dt.datetime.__eq__(self, other):
                return False
            return self.nanosecond == getattr(other, "nanosecond", 0)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = _dt.datetime.__hash__

    def __reduce_ex__(self, protocol: Any) -> Any:
        plain = _dt.datetime(*self.timetuple()[:6], self.microsecond, self.tzinfo, fold=self.fold)
        return (_rebuild_datetime, (plain, self.nanosecond))


def _rebuild_datetime(value: _dt.datetime, nanosecond: int) -> PSDateTime:
    return PSDateTime(value, nanosecond=nanosecond)


class PSTimeSpan(_dt.timedelta):
    """A ``timedelta`` that keeps .NET's 100 ns precision: :attr:`ticks` is the exact value."""

    ticks: int

    def __new__(cls, *args: Any, ticks: int | None = None, **kwargs: Any) -> PSTimeSpan:
        if ticks is None:
            base = _dt.timedelta(*args, **kwargs)
            ticks = (
                (base.days * 86400 + base.seconds) * 1_000_000 + base.microseconds
            ) * _TICKS_PER_MICROSECOND
        micro, _ = divmod(ticks, _TICKS_PER_MICROSECOND)
        self = super().__new__(cls, microseconds=micro)
        self.ticks = ticks
        return self

    @property
    def nanoseconds(self) -> int:
        """The part beyond whole microseconds, in nanoseconds (0, 100, … 900)."""
        return (self.ticks % _TICKS_PER_MICROSECOND) * 100

    def __str__(self) -> str:
        """.NET's constant format: ``[-][d.]hh:mm:ss[.fffffff]``."""
        ticks = abs(self.ticks)
        sign = "-" if self.ticks < 0 else ""
        seconds, fraction = divmod(ticks, 10_000_000)
        days, seconds = divmod(seconds, 86400)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        text = f"{sign}{f'{days}.' if days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
        return f"{text}.{fraction:07d}" if fraction else text

    def __repr__(self) -> str:
        return f"PSTimeSpan(ticks={self.ticks})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PSTimeSpan):
            return self.ticks == other.ticks
        if isinstance(other, _dt.timedelta):
            return _dt.timedelta.__eq__(self, other) and self.nanoseconds == 0
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = _dt.timedelta.__hash__

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_timespan, (self.ticks,))


def _rebuild_timespan(ticks: int) -> PSTimeSpan:
    return PSTimeSpan(ticks=ticks)


class Version(NamedTuple):
    """``System.Version``: compares like .NET (an absent part, ``-1``, sorts before ``0``)."""

    major: int
    minor: int
    build: int = -1
    revision: int = -1

    @classmethod
    def parse(cls, text: str) -> Version:
        """Read ``"1.2"``, ``"1.2.3"`` or ``"1.2.3.4"``."""
        parts = text.strip().split(".")
        if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a version: {text!r}")
        return cls(*(int(p) for p in parts))

    def __str__(self) -> str:
        return ".".join(str(p) for p in self if p >= 0)


class Uri(str):
    """``System.Uri``, as its text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Uri({str.__repr__(self)})"


class XmlDocument(str):
    """``System.Xml.XmlDocument``, as its XML text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XmlDocument({str.__repr__(self)})"


class ScriptBlock(str):
    """``System.Management.Automation.ScriptBlock``, as its source text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ScriptBlock({str.__repr__(self)})"


class PSEnum(int):
    """An enum or flags value: an ``int`` that also knows its name (``str()``) and type."""

    name: str
    type_names: tuple[str, ...]

    def __new__(cls, value: int, name: str, type_names: tuple[str, ...] = ()) -> PSEnum:
        self = super().__new__(cls, value)
        self.name = name
        self.type_names = tuple(type_names)
        return self

    @property
    def type_name(self) -> str | None:
        """The enum's .NET type name, e.g. ``System.ConsoleColor``."""
        return self.type_names[0] if self.type_names else None

    @property
    def names(self) -> tuple[str, ...]:
        """The names of a flags value (``"Read, Write"`` gives both); a single name otherwise."""
        return tuple(n.strip() for n in self.name.split(",")) if self.name else ()

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        short = (self.type_name or "Enum").rsplit(".", 1)[-1]
        return f"<{short}.{self.name}: {int(self)}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (PSEnum, (int(self), self.name, self.type_names))


class SecureString(Secret):
    """``System.Security.SecureString``: never shown; :meth:`reveal` gives the plain text when asked.

    From local CLIXML the value is hex: plain UTF-16LE on Linux and macOS, a DPAPI blob on Windows
    (decrypted for the current user through ``CryptUnprotectData``). Over PSRP it arrives decrypted
    with the session key.
    """

    __slots__ = ("_encoded",)

    def __init__(self, value: str = "", name: str = "SecureString", *, encoded: str | None = None) -> None:
        super().__init__(value, name)
        self._encoded = encoded

    @classmethod
    def from_clixml(cls, text: str) -> SecureString:
        """A SecureString from the hex text of a local ``<SS>`` element (decoded on first reveal)."""
        return cls("", encoded=text.strip())

    def reveal(self) -> str:
        if self._encoded is not None:
            plain = _decode_secure_string(self._encoded)
            self._encoded = None
            Secret.__init__(self, plain, self.name)
        return self._value


def _decode_secure_string(text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("SecureString is not hex text") from None
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        return _dpapi.unprotect(raw).decode("utf-16-le")
    if len(raw) % 2:
        raise ValueError("SecureString has an odd number of bytes: not UTF-16LE (a Windows DPAPI blob?)")
    return raw.decode("utf-16-le")


#: Members a wrapped collection carries that say nothing its items do not (dropped with the wrapper).
COLLECTION_MEMBERS = frozenset(
    (
        "Count",
        "IsSynchronized",
        "SyncRoot",
        "IsReadOnly",
        "IsFixedSize",
        "Length",
        "LongLength",
        "Rank",
        "Capacity",
    )
)
#: Notes that only steer PowerShell's formatting (Get-Date's DisplayHint): a value wrapped with only
#: these comes back as the value.
FORMAT_NOTES = frozenset(("DisplayHint",))


class PSStack(list[Any]):
    """``System.Collections.Stack``: a list, top of the stack first (as PowerShell enumerates it)."""


class PSQueue(list[Any]):
    """``System.Collections.Queue``: a list, front of the queue first."""


# --------------------------------------------------------------------------------------------------
# Complex objects
# --------------------------------------------------------------------------------------------------

_NO_VALUE: Any = object()


class PSObject(Mapping[str, Any]):
    """A PowerShell object: a read-only mapping of its members that also allows attribute access.

    ``mbx["PrimarySmtpAddress"]``, ``mbx.PrimarySmtpAddress`` and ``mbx.primarysmtpaddress`` all work
    (member names are case-insensitive, as in PowerShell). Attribute access is a convenience: the
    mapping methods (``keys``, ``items``, ``get``…) and this class's own attributes come first, so
    ``obj["Name"]`` is the way that always reaches a member.
    """

    __slots__ = (
        "__weakref__",
        "_adapted",
        "_extended",
        "_folded",
        "_members",
        "_to_string",
        "_type_names",
        "_value",
    )

    _type_names: tuple[str, ...]
    _to_string: str | None
    _adapted: dict[str, Any]
    _extended: dict[str, Any]
    _members: dict[str, Any]
    _folded: dict[str, str] | None
    _value: Any

    def __init__(
        self,
        adapted: Mapping[str, Any] | None = None,
        extended: Mapping[str, Any] | None = None,
        *,
        type_names: tuple[str, ...] | list[str] = (),
        to_string: str | None = None,
        value: Any = _NO_VALUE,
    ) -> None:
        _init_psobject(self, dict(adapted or {}), dict(extended or {}), tuple(type_names), to_string, value)

    # --- what PowerShell knows about the object ---

    @property
    def type_names(self) -> tuple[str, ...]:
        """The .NET type names, most-derived first (``Deserialized.`` prefixes kept)."""
        return self._type_names

    @property
    def type_name(self) -> str | None:
        """The most-derived type name, or ``None``."""
        return self._type_names[0] if self._type_names else None

    @property
    def to_string(self) -> str | None:
        """What ``ToString()`` gave on the PowerShell side, if it was sent."""
        return self._to_string

    @property
    def adapted(self) -> Mapping[str, Any]:
        """The adapted members (the .NET object's own properties: CLIXML ``<Props>``)."""
        return MappingProxyType(self._adapted)

    @property
    def extended(self) -> Mapping[str, Any]:
        """The extended members (note properties and the like: CLIXML ``<MS>``)."""
        return MappingProxyType(self._extended)

    @property
    def value(self) -> Any:
        """The primitive or collection this object wraps (``None`` when it wraps none)."""
        return None if self._value is _NO_VALUE else self._value

    @property
    def has_value(self) -> bool:
        """Whether the object wraps a primitive or collection (a string with notes, say)."""
        return self._value is not _NO_VALUE

    def is_a(self, type_name: str) -> bool:
        """Whether ``type_name`` (with or without a ``Deserialized.`` prefix) is among its type names."""
        wanted = type_name.removeprefix("Deserialized.")
        return any(t.removeprefix("Deserialized.") == wanted for t in self._type_names)

    # --- mapping ---

    def __getitem__(self, name: str) -> Any:
        members = self._members
        if name in members:
            return members[name]
        if isinstance(name, str):
            folded = self._folded
            if folded is None:
                folded = {k.casefold(): k for k in reversed(members)}
                object.__setattr__(self, "_folded", folded)
            real = folded.get(name.casefold())
            if real is not None:
                return members[real]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            shown = ", ".join(list(self._members)[:12]) + (", …" if len(self._members) > 12 else "")
            raise AttributeError(
                f"{self.type_name or 'PSObject'} has no member {name!r} (members: {shown or 'none'})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PSObject is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PSObject is read-only")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {k for k in self._members if k.isidentifier()})

    # --- comparison and display ---

    def __eq__(self, other: object) -> bool:
        """Member by member, through shared objects and cycles (see :func:`pswrap._graph.graph_equal`)."""
        if self is other:
            return True
        if not isinstance(other, PSObject):
            return NotImplemented
        return _graph.graph_equal(self, other)

    def __hash__(self) -> int:
        return _graph.object_hash(self)

    def __str__(self) -> str:
        if self._to_string is not None:
            return self._to_string
        if self._value is not _NO_VALUE:
            return str(self._value)
        return self.type_name or "PSObject"

    def __repr__(self) -> str:
        short = (self.type_name or "PSObject").rsplit(".", 1)[-1]
        parts = []
        if self._to_string is not None:
            parts.append(repr(_shorten(self._to_string)))
        if self._value is not _NO_VALUE:
            parts.append(f"value={_graph.short_repr(self._value)}")
        shown = list(self._members.items())[:6]
        if shown:
            inner = ", ".join(f"{k}={_graph.short_repr(v)}" for k, v in shown)
            more = len(self._members) - len(shown)
            parts.append(inner + (f", … +{more} more" if more else ""))
        return f"<{short} {' '.join(parts)}>" if parts else f"<{short}>"

    def __reduce__(self) -> Any:
        value = self._value if self._value is not _NO_VALUE else _NoValueMarker()
        return (_rebuild_psobject, (self._adapted, self._extended, self._type_names, self._to_string, value))


class _NoValueMarker:
    pass


def _rebuild_psobject(
    adapted: dict[str, Any],
    extended: dict[str, Any],
    type_names: tuple[str, ...],
    to_string: str | None,
    value: Any,
) -> PSObject:
    return PSObject(
        adapted,
        extended,
        type_names=type_names,
        to_string=to_string,
        value=_NO_VALUE if isinstance(value, _NoValueMarker) else value,
    )


def _init_psobject(
    obj: PSObject,
    adapted: dict[str, Any],
    extended: dict[str, Any],
    type_names: tuple[str, ...],
    to_string: str | None,
    value: Any,
) -> None:
    """Fill a PSObject's slots. The CLIXML reader uses this to fill an object it made earlier (for refs)."""
    setter = object.__setattr__
    setter(obj, "_adapted", adapted)
    setter(obj, "_extended", extended)
    # Extended members shadow adapted ones of the same name, as in PowerShell.
    members = {**adapted, **extended} if extended else adapted
    setter(obj, "_members", members)
    setter(obj, "_folded", None)
    setter(obj, "_type_names", type_names)
    setter(obj, "_to_string", to_string)
    setter(obj, "_value", value)


def _new_psobject() -> PSObject:
    """An empty PSObject to be filled by :func:`_init_psobject` (the CLIXML reader's fast path)."""
    obj = PSObject.__new__(PSObject)
    _init_psobject(obj, {}, {}, (), None, _NO_VALUE)
    return obj


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Records of the other streams
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=True)
class Record:
    """Base of the stream records. ``raw`` is the object the record was read from, when there was one."""

    stream: ClassVar[str] = ""
    message: str
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True, eq=True)
class WarningRecord(Record):
    """A ``Write-Warning`` message."""

    stream: ClassVar[str] = "warning"


@dataclasses.dataclass(frozen=True, eq=True)
class VerboseRecord(Record):
    """A ``Write-Verbose`` message."""

    stream: ClassVar[str] = "verbose"


@dataclasses.dataclass(frozen=True, eq=True)
class DebugRecord(Record):
    """A ``Write-Debug`` message."""

    stream: ClassVar[str] = "debug"


@dataclasses.dataclass(frozen=True, eq=True)
class InformationRecord(Record):
    """A ``Write-Information`` / ``Write-Host`` record. ``data`` is the object written (often the text)."""

    stream: ClassVar[str] = "information"
    data: Any = None
    source: str | None = None
    tags: tuple[str, ...] = ()
    time_generated: _dt.datetime | None = None
    user: str | None = None
    computer: str | None = None
    process_id: int | None = None


@dataclasses.dataclass(frozen=True, eq=True)
class ProgressRecord(Record):
    """A ``Write-Progress`` record. ``message`` is the status description."""

    stream: ClassVar[str] = "progress"
    activity: str = ""
    activity_id: int = 0
    parent_activity_id: int = -1
    percent_complete: int = -1
    seconds_remaining: int = -1
    current_operation: str | None = None
    completed: bool = False


@dataclasses.dataclass(frozen=True, eq=True)
class ErrorRecord(Record):
    """An error written by PowerShell, with the facts a program needs to decide what to do."""

    stream: ClassVar[str] = "error"
    category: str = "NotSpecified"
    error_id: str = ""
    target: Any = None
    exception_type: str | None = None
    exception_message: str | None = None
    script_position: str | None = None
    script_line_number: int | None = None
    recommended_action: str | None = None
    activity: str | None = None
    reason: str | None = None
    #: PowerShell's script stack trace (``at <where>, <file>: line <n>``, innermost first), when it sent one.
    script_stack_trace: str | None = dataclasses.field(default=None, compare=False)


def decode_base64(text: str) -> bytes:
    """Strict base64 (whitespace allowed), raising ``ValueError`` on anything else."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


from pswrap import _graph  # noqa: E402  (the graph walkers need the classes above)
from pswrap._graph import to_jsonable  # noqa: E402
