"""CLIXML primitive values: the text of a tag such as ``<DT>`` or ``<TS>`` as the Python value it
stands for."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pswrap.objects import (
    PSDateTime,
    PSTimeSpan,
    ScriptBlock,
    SecureString,
    Uri,
    Version,
    XmlDocument,
    decode_base64,
)

_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def decode_string(text: str) -> str:
    """Undo PowerShell's ``_xHHHH_`` escapes (``_x005F_`` is a literal ``_``), joining surrogate pairs."""
    if "_x" not in text:
        return text
    if "_x005" not in text:
        # Fast path for the common line breaks; safe because no escaped underscore can start a new escape.
        text = text.replace("_x000D_", "\r").replace("_x000A_", "\n")
        if "_x" not in text:
            return text
    text = _ESCAPE.sub(_unescape, text)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return text


_DATETIME = re.compile(
    r"(\d{1,4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7})\d*)?(Z|[+-]\d\d:\d\d)?\Z", re.ASCII
)
_OFFSETS: dict[str, Any] = {}


def _timezone(text: str) -> Any:
    import datetime as _dt

    zone = _OFFSETS.get(text)
    if zone is None:
        if text == "Z":
            zone = _dt.timezone.utc
        else:
            sign = -1 if text[0] == "-" else 1
            zone = _dt.timezone(sign * _dt.timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))
        _OFFSETS[text] = zone
    return zone


def parse_datetime(text: str) -> PSDateTime:
    """Read an ``xs:dateTime`` as PowerShell writes it, keeping all seven fractional digits."""
    match = _DATETIME.match(text.strip())
    if match is None:
        raise ValueError(f"not a date and time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    fraction = (fraction or "").ljust(7, "0")
    return PSDateTime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), int(fraction[:6]),
        _timezone(zone) if zone else None,
        nanosecond=int(fraction[6]) * 100,
    )  # fmt: skip


_DURATION = re.compile(
    r"(-)?P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,7})\d*)?S)?)?\Z", re.ASCII
)


def parse_duration(text: str) -> PSTimeSpan:
    """Read an ``xs:duration`` as .NET writes a TimeSpan (days, hours, minutes, seconds; 100 ns ticks)."""
    stripped = text.strip()
    match = _DURATION.match(stripped)
    if match is None or stripped in ("P", "-P"):
        raise ValueError(f"not a duration: {text!r}")
    negative, days, hours, minutes, seconds, fraction = match.groups()
    ticks = (
        ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes or 0)) * 60 + int(seconds or 0)
    ) * 10_000_000 + int((fraction or "").ljust(7, "0"))
    return PSTimeSpan(ticks=-ticks if negative else ticks)


def _integer(text: str) -> int:
    if "_" in text:
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _boolean(text: str) -> bool:
    value = _BOOLEANS.get(text)
    if value is None:
        value = _BOOLEANS.get(text.strip())
        if value is None:
            raise ValueError(f"not a boolean: {text!r}")
    return value


def _floating(text: str) -> float:
    if "_" in text:
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def _decimal(text: str) -> Decimal:
    if "_" in text:
        raise ValueError(f"not a decimal: {text!r}")
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {text!r}") from None


def _char(text: str) -> str:
    code = int(text)
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"not a UTF-16 code unit: {text!r}")
    return chr(code)


_PRIMITIVES: dict[str, Callable[[str], Any]] = {
    "S": decode_string,
    "C": _char,
    "B": _boolean,
    "DT": parse_datetime,
    "TS": parse_duration,
    "By": _integer,
    "SB": _integer,
    "U16": _integer,
    "I16": _integer,
    "U32": _integer,
    "I32": _integer,
    "U64": _integer,
    "I64": _integer,
    "Sg": _floating,
    "Db": _floating,
    "D": _decimal,
    "BA": decode_base64,
    "G": uuid.UUID,
    "URI": lambda t: Uri(decode_string(t)),
    "Version": Version.parse,
    "XD": lambda t: XmlDocument(decode_string(t)),
    "SBK": lambda t: ScriptBlock(decode_string(t)),
    "SS": SecureString.from_clixml,
    "ToString": decode_string,
    "T": decode_string,
    # Parts of a progress record (<PR>): plain text, read by _progress.
    "AV": decode_string,
    "AI": decode_string,
    "PI": decode_string,
    "PC": decode_string,
    "SR": decode_string,
    "SD": decode_string,
}
