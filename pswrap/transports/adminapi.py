"""Exchange Online's admin REST API (``InvokeCommand``), without I/O: requests in, objects and errors out.

The wire format, as the ExchangeOnlineManagement module and the open-source clients use it:

- ``POST https://<rest host>/adminapi/beta/<tenant>/InvokeCommand`` with
  ``{"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {…}}}`` (never ``null`` parameters);
- answers ``{"@odata.context": …, "@adminapi.warnings": […], "value": […], "@odata.nextLink": …}``,
  each object with ``Name@odata.type`` / ``Name@data.type`` annotations naming a value's type;
- failures ``{"error": {"code": …, "message": …, "details": [{"message":
  "<ErrorId>|<ExceptionType>|<text>"}], "innererror": {"internalexception": {…}}}}``; 401/403 say why in
  the ``x-ms-diagnostics`` header.

This module turns an :class:`~pswrap.transports.base.Invocation` into that body
(:func:`request_body`), a page into Python values (:func:`read_page`, :func:`convert`), and a failure
into an :class:`~pswrap.objects.ErrorRecord` (:func:`error_record`). :mod:`pswrap.transports.rest`
does the HTTP.

What the API cannot carry, compared with the same cmdlet through pwsh: sizes arrive as their
formatted text (``"99 GB (106,300,440,576 bytes)"``), enums as their names (``str``, not
:class:`~pswrap.objects.PSEnum`), TimeSpans as text unless annotated, objects without the
``Deserialized.…`` type names and without the adapted/extended split (every member is adapted), and
no ``ToString``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as _dt
import enum
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from pswrap.clixml import parse_datetime, parse_duration
from pswrap.errors import NotSupportedByTransport
from pswrap.objects import (
    _NO_VALUE,
    ErrorRecord,
    PSDateTime,
    PSEnum,
    PSObject,
    PSTimeSpan,
    Uri,
    Version,
    _init_psobject,
    _new_psobject,
)
from pswrap.records import ERROR_CATEGORIES
from pswrap.secret import Secret
from pswrap.transports.base import Invocation

__all__ = [
    "ANCHOR_MAILBOX",
    "CONCURRENCY_LIMIT_TEXT",
    "GENERIC_HASHTABLE",
    "MAX_PAGE_SIZE",
    "PAGINATION_EXPIRED_TEXT",
    "Diagnostics",
    "Page",
    "anchor_mailbox",
    "check_page_size",
    "cmdlet_name",
    "convert",
    "describe",
    "encode_body",
    "encode_parameters",
    "error_record",
    "invoke_path",
    "is_concurrency_limit",
    "parse_diagnostics",
    "parse_retry_after",
    "parse_timespan",
    "read_page",
    "request_body",
    "result_size",
    "short_reason",
    "warnings_of",
]

#: The system mailbox the module anchors app-only requests on (``X-AnchorMailbox``).
ANCHOR_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
#: The largest ``Prefer: odata.maxpagesize`` the API honours.
MAX_PAGE_SIZE = 1000
#: The OData type that makes a JSON object bind as a PowerShell hashtable (``@{Add=…; Remove=…}``).
GENERIC_HASHTABLE = "#Exchange.GenericHashTable"
#: The OData type of a ``byte[]`` parameter (the bytes go base64-encoded in ``Data``).
BYTE_ARRAY = "#Exchange.ByteArrayType"
#: The plain-text answer of a tenant over its concurrency limit (retryable).
CONCURRENCY_LIMIT_TEXT = "maximum number of concurrent requests"
#: The error of a skip token that expired (30 min) or reached another backend.
PAGINATION_EXPIRED_TEXT = "Expired or Invalid pagination request"
#: The warning that rides every page with a next link; it says nothing once the links are followed.
MORE_RESULTS_TEXT = "There are more results available than are currently displayed"

_TRANSPORT = "rest"
_CMDLET = re.compile(r"\A[A-Za-z]+-[A-Za-z0-9]+\Z")
_SCRIPT_ACTION = (
    "run scripts with the local transport (Session(transport='local'), a pwsh on this host); over the "
    "admin API, call one cmdlet per invoke()"
)


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


def invoke_path(tenant: str) -> str:
    """The path of ``InvokeCommand`` for ``tenant`` (a GUID or a ``*.onmicrosoft.com`` domain)."""
    return f"/adminapi/beta/{quote(tenant, safe='')}/InvokeCommand"


def anchor_mailbox(tenant_id: str | None, domain: str | None = None) -> str:
    """The ``X-AnchorMailbox`` value: by tenant GUID (``APP:``) when known, else by domain (``UPN:``)."""
    if tenant_id:
        return f"APP:{ANCHOR_MAILBOX}@{tenant_id}"
    if domain:
        return f"UPN:{ANCHOR_MAILBOX}@{domain}"
    raise ValueError("the anchor mailbox needs the tenant's GUID or its domain")


def check_page_size(value: Any, where: str = "page_size") -> int:
    """A valid ``odata.maxpagesize`` (1..1000), or :class:`ValueError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"{where} must be a whole number from 1 to {MAX_PAGE_SIZE}, not {value!r}")
    return value


def cmdlet_name(invocation: Invocation) -> str:
    """The cmdlet the admin API should run, or :class:`NotSupportedByTransport` saying why it cannot."""
    if invocation.is_script:
        raise NotSupportedByTransport(
            f"the rest transport runs single cmdlets, not scripts ({invocation.description})",
            transport=_TRANSPORT,
            what="script",
            action=_SCRIPT_ACTION,
        )
    name = invocation.command.strip()
    if "\\" in name:  # ExchangeOnlineManagement\Get-Mailbox: the module part means nothing to the API
        name = name.rsplit("\\", 1)[1]
    if not _CMDLET.match(name):
        raise NotSupportedByTransport(
            f"{invocation.command!r} is not a cmdlet name (Verb-Noun): the rest transport runs single cmdlets",
            transport=_TRANSPORT,
            what="command",
            action=_SCRIPT_ACTION,
        )
    if invocation.arguments:
        raise NotSupportedByTransport(
            f"{name}: the admin API binds parameters by name, not position "
            f"({len(invocation.arguments)} positional argument(s) given)",
            transport=_TRANSPORT,
            what="positional arguments",
            action=f"name each parameter, e.g. invoke({name!r}, Identity=…)",
        )
    if invocation.input is not None:
        raise NotSupportedByTransport(
            f"{name}: the admin API takes no pipeline input",
            transport=_TRANSPORT,
            what="pipeline input",
            action="pass the values as parameters (e.g. one invoke() per Identity), or use the local transport",
        )
    return name


def request_body(invocation: Invocation) -> dict[str, Any]:
    """The JSON body of ``InvokeCommand`` for ``invocation`` (its values encoded, see :func:`encode_parameters`)."""
    name = cmdlet_name(invocation)
    return {"CmdletInput": {"CmdletName": name, "Parameters": encode_parameters(name, invocation.parameters)}}


def encode_parameters(cmdlet: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as the admin API binds them.

    Strings, numbers and enum names are JSON scalars; a switch is ``true``; arrays are arrays;
    hashtables (``{"Add": […], "Remove": […]}``) are objects typed ``#Exchange.GenericHashTable``;
    dates are ISO 8601, TimeSpans .NET's ``d.hh:mm:ss``, GUIDs their text, bytes base64. ``Confirm``
    must be false (nobody can answer a prompt over HTTP). SecureString and other secret values are
    refused (the module encrypts them with a key it embeds; pswrap does not yet).
    """
    encoded: dict[str, Any] = {}
    for name, value in parameters.items():
        where = f"{cmdlet} parameter {name!r}"
        if name.lower() == "confirm":
            if value not in (False, None) and not (isinstance(value, str) and value.lower() == "false"):
                raise NotSupportedByTransport(
                    f"{where}: the admin API cannot ask for confirmation",
                    transport=_TRANSPORT,
                    what="Confirm",
                    action="pass Confirm=False (or leave it out) to run without a prompt",
                )
            encoded[name] = False
            continue
        encoded[name] = _encode(value, where)
    return encoded


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Secret):
        raise NotSupportedByTransport(
            f"{where}: SecureString and secret values cannot go over the admin API yet",
            transport=_TRANSPORT,
            what="SecureString",
            action="run this cmdlet with the local transport (the module encrypts such values with a key "
            "only it carries)",
        )
    if isinstance(value, PSEnum):
        return value.name
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} cannot be sent as JSON")
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        if not isinstance(value, PSTimeSpan):
            value = PSTimeSpan(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
        return str(value)
    if isinstance(value, (uuid.UUID, Version)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"@odata.type": BYTE_ARRAY, "Data": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, PSObject):
        if value.has_value:
            return _encode(value.value, where)
        if value.to_string is not None:
            return value.to_string
        raise NotSupportedByTransport(
            f"{where}: an object ({value.type_name or 'PSObject'}) cannot be bound over the admin API",
            transport=_TRANSPORT,
            what="object parameter",
            action="pass one of its properties instead, e.g. Identity=mailbox.Identity or mailbox.Guid",
        )
    if isinstance(value, Mapping):
        table: dict[str, Any] = {"@odata.type": GENERIC_HASHTABLE}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: hashtable keys must be strings, not {key!r}")
            if key == "@odata.type":
                table[key] = item
                continue
            table[key] = _encode(item, f"{where} key {key!r}")
        return table
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encode(item, f"{where} item {i}") for i, item in enumerate(value)]
    raise NotSupportedByTransport(
        f"{where}: a {type(value).__name__} cannot be sent over the admin API",
        transport=_TRANSPORT,
        what=type(value).__name__,
        action="pass a string, number, bool, date, GUID, list or dict",
    )


def result_size(parameters: Mapping[str, Any]) -> int | None:
    """The ``ResultSize`` as a number of objects (``None``: absent or ``Unlimited``)."""
    for name, value in parameters.items():
        if name.lower() == "resultsize":
            if isinstance(value, bool):
                return None
            if isinstance(value, int) and value > 0:
                return int(value)
            if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
                return int(value)
            return None
    return None


# --------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


class Page:
    """One answer of ``InvokeCommand``, read lazily so that a page costs little more than its text.

    The members before ``"value"`` are read at once; :meth:`objects` then decodes the objects one
    at a time (raw JSON, for :func:`convert`) and, once they are all read, the members after them.
    :attr:`next_link` is final only then; :attr:`next_link_hint` is known at once (read ahead
    from the end of the text when the link comes after the objects) so that the next page can be
    fetched early; a hint that turns out wrong is simply not used. Malformed JSON raises
    :class:`ValueError` where it is met.
    """

    def __init__(self, text: str, headers: Mapping[str, str] | None = None) -> None:
        self.headers: Mapping[str, str] = headers or {}
        self.members: dict[str, Any] = {}
        self._text = text
        self._position: int | None = None  # inside the "value" array, while objects remain
        position = _skip(text, 0)
        if not text.startswith("{", position):
            raise ValueError(f"expected a JSON object, not {text[position : position + 20]!r}")
        position = _skip(text, position + 1)
        if text.startswith("}", position):
            self._text = ""
        else:
            position = self._members(position, stop_at_value=True)
        self.next_link_hint = self.next_link or (
            self._probe_next_link() if self._position is not None else None
        )

    def _members(self, position: int, *, stop_at_value: bool) -> int:
        text = self._text
        while True:
            key, position = _DECODER.raw_decode(text, position)
            if not isinstance(key, str):
                raise ValueError(f"expected a member name at offset {position}")
            position = _skip(text, position)
            if not text.startswith(":", position):
                raise ValueError(f"expected ':' at offset {position}")
            position = _skip(text, position + 1)
            if stop_at_value and key == "value" and text.startswith("[", position):
                self._position = position + 1
                return position + 1
            value, position = _DECODER.raw_decode(text, position)
            self.members[key] = value
            position = _skip(text, position)
            if text.startswith(",", position):
                position = _skip(text, position + 1)
                continue
            if text.startswith("}", position):
                self._text = "" if self._position is None else self._text
                return position + 1
            raise ValueError(f"expected ',' or '}}' at offset {position}")

    def _probe_next_link(self) -> str | None:
        text = self._text
        at = text.rfind('"@odata.nextLink"')
        if at < 0:
            return None
        try:
            _, position = _DECODER.raw_decode(text, at)
            position = _skip(text, position)
            if not text.startswith(":", position):
                return None
            link, _ = _DECODER.raw_decode(text, _skip(text, position + 1))
        except ValueError:
            return None
        return link if isinstance(link, str) and link else None

    def objects(self, *, converted: bool = False) -> Iterator[Any]:
        """The objects of ``"value"`` one at a time (once): raw JSON, or with ``converted`` as
        :func:`convert` makes them (decoded straight into pswrap's objects)."""
        if self._position is None:
            value = self.members.get("value")
            values = value if isinstance(value, list) else [] if value is None else [value]
            for item in values:
                yield convert(item) if converted else item
            return
        decoder = OBJECT_DECODER if converted else _DECODER
        text, position = self._text, _skip(self._text, self._position)
        self._position = None
        if text.startswith("]", position):
            position += 1
        else:
            while True:
                item, position = decoder.raw_decode(text, position)
                yield item
                position = _skip(text, position)
                if text.startswith(",", position):
                    position = _skip(text, position + 1)
                    continue
                if text.startswith("]", position):
                    position += 1
                    break
                raise ValueError(f"expected ',' or ']' at offset {position}")
        position = _skip(text, position)
        if text.startswith(",", position):
            self._members(_skip(text, position + 1), stop_at_value=False)
        elif not text.startswith("}", position):
            raise ValueError(f"expected ',' or '}}' at offset {position}")
        self._text = ""

    @property
    def next_link(self) -> str | None:
        """``@odata.nextLink`` (final once :meth:`objects` is exhausted)."""
        link = self.members.get("@odata.nextLink")
        return link if isinstance(link, str) and link else None

    @property
    def warnings(self) -> list[str]:
        """The warnings read so far (body, then the ``X-Warnings`` header)."""
        return warnings_of(self.headers, self.members)

    @property
    def errors(self) -> list[str]:
        """``@adminapi.errors``: non-terminating errors (read so far)."""
        errors = self.members.get("@adminapi.errors") or []
        return [_text(e) for e in errors] if isinstance(errors, list) else [_text(errors)]

    @property
    def context(self) -> str | None:
        context = self.members.get("@odata.context")
        return context if isinstance(context, str) else None

    @property
    def items(self) -> list[Any]:
        """Every object at once (reads them all: for small answers and tests)."""
        return list(self.objects())


def read_page(body: bytes | str, headers: Mapping[str, str] | None = None) -> Page:
    """A page from a ``200`` answer's body; :class:`ValueError` when it does not start as the API's JSON."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return Page(text.removeprefix("\ufeff"), headers)


def warnings_of(headers: Mapping[str, str], data: Mapping[str, Any] | None = None) -> list[str]:
    """The warnings of one answer: the body's ``@adminapi.warnings`` then the ``X-Warnings`` header
    (split on ``<eow>``), each text once."""
    found: list[str] = []
    body = (data or {}).get("@adminapi.warnings") or []
    for warning in body if isinstance(body, list) else [body]:
        text = _text(warning).strip()
        if text and text not in found:
            found.append(text)
    header = _header(headers, "X-Warnings")
    if header:
        for part in header.split("<eow>"):
            text = part.strip()
            if text and text not in found:
                found.append(text)
    return found


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in ("message", "Message"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value) if not isinstance(value, (int, float)) else str(value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


# --- values -------------------------------------------------------------------------------------


def convert(value: Any) -> Any:
    """A JSON value of an answer as pswrap's objects: objects become :class:`PSObject` (typed from the
    annotations, which are removed), arrays lists; scalars stay as they are."""
    cls = value.__class__
    if cls is dict:
        return _object({k: convert(v) if v.__class__ in (dict, list) else v for k, v in value.items()})
    if cls is list:
        return [convert(v) for v in value]
    return value


def _object(raw: dict[str, Any]) -> PSObject:
    """A JSON object whose own values are already converted, as a :class:`PSObject`.

    Also the ``object_hook`` of :data:`OBJECT_DECODER`: the JSON decoder calls it innermost first."""
    members = {key: value for key, value in raw.items() if "@" not in key}
    own_type: list[str] | None = None
    if len(members) != len(raw):
        types: dict[str, str] = {}
        for key in [key for key in raw if "@" in key]:
            value = raw[key]
            if not isinstance(value, str):
                continue
            name, _, annotation = key.partition("@")
            if annotation != "data.type" and annotation != "odata.type":
                continue
            if not name:
                own_type = [*(own_type or ()), value]
            elif annotation == "data.type" or name not in types:
                # "@data.type" names the .NET type: it wins over OData's coarser "#Collection(String)".
                types[name] = value
        for name, type_name in types.items():
            value = members.get(name)
            if value is None:
                continue
            converter = _converter(type_name)
            if converter is None:
                continue
            if value.__class__ is list and not isinstance(converter, _ListOf):
                members[name] = [None if v is None else _apply(converter, v) for v in value]
                continue
            try:  # noqa: SIM105 - the hot path: try/except costs less than contextlib.suppress
                members[name] = converter(value)
            except (ValueError, TypeError, ArithmeticError, KeyError):
                pass  # the annotation did not fit the value: keep what the server sent
    obj = _new_psobject()
    _init_psobject(obj, members, {}, _type_names(own_type), None, _NO_VALUE)
    return obj


#: Decodes an answer's objects straight into :class:`PSObject` s (each JSON object as it completes).
OBJECT_DECODER = json.JSONDecoder(object_hook=_object)


def _type_names(annotations: list[str] | None) -> tuple[str, ...]:
    """An object's own type names: ``@data.type`` (.NET) first, then ``@odata.type`` (not the generic one)."""
    if not annotations:
        return ()
    names: list[str] = []
    for annotation in annotations:
        name = annotation.removeprefix("#")
        if name and name != GENERIC_HASHTABLE[1:] and name not in names:
            names.append(name)
    return tuple(names)


def _apply(converter: Callable[[Any], Any], value: Any) -> Any:
    if value.__class__ is list and not isinstance(converter, _ListOf):
        return [None if v is None else _apply(converter, v) for v in value]
    try:
        return converter(value)
    except (ValueError, TypeError, ArithmeticError, KeyError):
        return value  # the annotation did not fit the value: keep what the server sent


class _ListOf:
    """Converts a collection, each element by ``element`` (``None``: elements kept as sent)."""

    __slots__ = ("element",)

    def __init__(self, element: Callable[[Any], Any] | None) -> None:
        # JSON strings are already strings: a list of them needs no pass over its elements.
        self.element = None if element is _SCALARS["string"] else element

    def __call__(self, value: Any) -> list[Any]:
        items: list[Any] = value if isinstance(value, list) else [value]
        element = self.element
        if element is None:
            return items
        return [None if v is None else _apply(element, v) for v in items]


def _guid(value: Any) -> uuid.UUID:
    if isinstance(value, list):
        raise TypeError("a list")
    return uuid.UUID(str(value))


_MS_DATE = re.compile(r"\A/Date\((-?\d+)([+-]\d{4})?\)/\Z")


def _datetime(value: Any) -> PSDateTime:
    text = str(value)
    match = _MS_DATE.match(text)
    if match:
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return PSDateTime(epoch + _dt.timedelta(milliseconds=int(match.group(1))))
    return parse_datetime(text)


_DOTNET_TIMESPAN = re.compile(r"\A(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?\Z")


def parse_timespan(text: str) -> PSTimeSpan:
    """A TimeSpan from .NET's text (``"90.00:00:00"``, ``"-00:00:01.5"``) or ISO 8601 (``"P90D"``)."""
    stripped = str(text).strip()
    match = _DOTNET_TIMESPAN.match(stripped)
    if match is None:
        return parse_duration(stripped)
    negative, days, hours, minutes, seconds, fraction = match.groups()
    ticks = (((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)) * 10_000_000 + int(
        (fraction or "").ljust(7, "0")
    )
    return PSTimeSpan(ticks=-ticks if negative else ticks)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value).strip())


def _floating(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    special = {
        "NaN": math.nan,
        "INF": math.inf,
        "Infinity": math.inf,
        "-INF": -math.inf,
        "-Infinity": -math.inf,
    }
    return special[text] if text in special else float(text)


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _binary(value: Any) -> bytes:
    if isinstance(value, Mapping) and "Data" in value:
        value = value["Data"]
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "guid": _guid,
    "datetime": _datetime,
    "datetimeoffset": _datetime,
    "date": _datetime,
    "timespan": parse_timespan,
    "duration": parse_timespan,
    "microsoft.exchange.data.enhancedtimespan": parse_timespan,
    "byte": _integer,
    "sbyte": _integer,
    "int16": _integer,
    "int32": _integer,
    "int64": _integer,
    "uint16": _integer,
    "uint32": _integer,
    "uint64": _integer,
    "single": _floating,
    "double": _floating,
    "decimal": _decimal,
    "boolean": _boolean,
    "binary": _binary,
    "byte[]": _binary,
    "version": lambda v: Version.parse(str(v)),
    "uri": lambda v: Uri(str(v)),
    "string": lambda v: v if isinstance(v, str) else str(v),
}
_COLLECTION_MARKERS = ("list`1", "multivaluedproperty", "collection", "[]", "arraylist", "hashset`1", "array")
_GENERIC_ARGUMENT = re.compile(r"`\d+\[\[?([^,\]\[]+)")
_converters: dict[str, Callable[[Any], Any] | None] = {}


def _converter(type_name: str) -> Callable[[Any], Any] | None:
    """How to turn a value annotated ``type_name`` into Python (``None``: keep it as sent)."""
    try:
        return _converters[type_name]
    except KeyError:
        pass
    converter = _resolve(type_name)
    if len(_converters) < 4096:  # type names come from the server: keep the cache bounded
        _converters[type_name] = converter
    return converter


def _resolve(type_name: str) -> Callable[[Any], Any] | None:
    name = type_name.strip().removeprefix("#")
    lowered = name.lower()
    if lowered.startswith("collection(") and lowered.endswith(")"):
        return _ListOf(_resolve(name[len("collection(") : -1]))
    generic = _GENERIC_ARGUMENT.search(name)
    if lowered.startswith("system.nullable`1") and generic:
        return _resolve(generic.group(1))
    if lowered in ("system.byte[]", "byte[]"):
        return _binary
    if lowered.endswith("[]"):
        return _ListOf(_resolve(name[:-2]))
    scalar = _SCALARS.get(_short(lowered))
    if scalar is not None:
        return scalar
    if any(marker in lowered for marker in _COLLECTION_MARKERS) or lowered.endswith("proxyaddresscollection"):
        return _ListOf(_resolve(generic.group(1)) if generic else None)
    return None


def _short(lowered: str) -> str:
    for prefix in ("system.", "edm."):
        if lowered.startswith(prefix):
            return lowered[len(prefix) :]
    return lowered


# --- errors -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """The ``x-ms-diagnostics`` header: ``2000008;reason="…";error_category="…"``."""

    code: str | None = None
    reason: str | None = None
    category: str | None = None

    def __bool__(self) -> bool:
        return bool(self.code or self.reason or self.category)


_DIAGNOSTIC_FIELD = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_diagnostics(header: str | None) -> Diagnostics:
    """Read ``x-ms-diagnostics`` (an empty :class:`Diagnostics` when absent or unreadable)."""
    if not header:
        return Diagnostics()
    code = header.split(";", 1)[0].strip() or None
    fields = {k.lower(): v for k, v in _DIAGNOSTIC_FIELD.findall(header)}
    if code and "=" in code:
        code = None
    return Diagnostics(code, fields.get("reason"), fields.get("error_category"))


def is_concurrency_limit(body: bytes | str) -> bool:
    """Whether an answer is the plain-text "maximum number of concurrent requests" refusal."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return CONCURRENCY_LIMIT_TEXT in text.lower()


def parse_retry_after(value: str | None, now: _dt.datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (a number, or an HTTP date); ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = (when - (now or _dt.datetime.now(_dt.timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_CATEGORY_BY_EXCEPTION = {
    "managementobjectnotfoundexception": "ObjectNotFound",
    "commandnotfoundexception": "ObjectNotFound",
    "managementobjectambiguousexception": "InvalidArgument",
    "parameterbindingexception": "InvalidArgument",
    "parameterbindingvalidationexception": "InvalidArgument",
    "validationargumentexception": "InvalidArgument",
    "argumentexception": "InvalidArgument",
    "argumentnullexception": "InvalidArgument",
    "argumentoutofrangeexception": "InvalidArgument",
    "datavalidationexception": "InvalidData",
    "unauthorizedaccessexception": "PermissionDenied",
    "cmdletaccessdeniedexception": "PermissionDenied",
    "operationcanceledexception": "OperationStopped",
    "timeoutexception": "OperationTimeout",
}
_CATEGORY_BY_STATUS = {
    400: "InvalidArgument",
    401: "PermissionDenied",
    403: "PermissionDenied",
    404: "ObjectNotFound",
    408: "OperationTimeout",
    409: "ResourceExists",
    429: "LimitsExceeded",
}


def error_record(
    status: int, body: bytes, *, cmdlet: str, request_id: str | None = None
) -> ErrorRecord | None:
    """The :class:`ErrorRecord` of a JSON failure answer (``None`` when the body is not one).

    The text comes from ``details[].message`` (``<ErrorId>|<ExceptionType>|<text>``; the first part
    may be empty) or else ``innererror.internalexception``; the category from the detail's ``code``,
    else the exception's type, else the HTTP status.
    """
    try:
        data = json.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, UnicodeDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    error_id = ""
    exception_type: str | None = None
    message: str | None = None
    target: Any = None
    category: str | None = None
    details = error.get("details")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and isinstance(detail.get("message"), str) and detail["message"]:
                error_id, exception_type, message = _split_detail(detail["message"])
                target = detail.get("target")
                category = _category_code(detail.get("code"))
                break
    inner = error.get("innererror")
    internal = inner.get("internalexception") if isinstance(inner, dict) else None
    if message is None and isinstance(internal, dict) and isinstance(internal.get("message"), str):
        message = internal["message"]
        if isinstance(internal.get("type"), str):
            exception_type = internal["type"]
    if exception_type is None and isinstance(internal, dict) and isinstance(internal.get("type"), str):
        exception_type = internal["type"]
    code = error.get("code") if isinstance(error.get("code"), str) else None
    if message is None:
        message = error.get("message") if isinstance(error.get("message"), str) else None
    if not message:
        message = f"{cmdlet} failed (HTTP {status}{', ' + code if code else ''})"
    short_type = exception_type.rsplit(".", 1)[-1] if exception_type else None
    if category is None and short_type:
        category = _CATEGORY_BY_EXCEPTION.get(short_type.lower())
    if category is None:
        category = _CATEGORY_BY_STATUS.get(status, "NotSpecified")
    action = None
    if PAGINATION_EXPIRED_TEXT.lower() in message.lower():
        action = (
            "the page's skip token expired (30 minutes) or reached another backend; run the command again "
            "(objects already received are kept in the result)"
        )
    return ErrorRecord(
        message,
        raw=data,
        category=category,
        error_id=error_id or code or f"HTTP{status}",
        target=target,
        exception_type=exception_type,
        exception_message=message,
        recommended_action=action,
        activity=cmdlet,
        reason=short_type or code,
    )


def _split_detail(text: str) -> tuple[str, str | None, str]:
    parts = text.split("|", 2)
    if len(parts) == 3:
        return parts[0].strip(), parts[1].strip() or None, parts[2].strip()
    return "", None, text.strip()


def _category_code(code: Any) -> str | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and 0 <= code < len(ERROR_CATEGORIES):
        return ERROR_CATEGORIES[code]
    if isinstance(code, str) and code in ERROR_CATEGORIES:
        return code
    return None


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body as UTF-8 JSON bytes (sent unchanged for every page)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def short_reason(body: bytes, limit: int = 300) -> str | None:
    """Printable text of an answer that is not the API's JSON (NUL bytes and blanks become ``None``)."""
    text = body.decode("utf-8", "replace").replace("\x00", "").strip()
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(values: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(values)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
