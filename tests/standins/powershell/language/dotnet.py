"""The small part of .NET the stand-in emulates: type literals, casts and a whitelist of static members.

A type or member outside these tables raises :class:`StandinUnsupported` naming it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psrpcore import types as ps

from tests.standins.powershell.errors import PSError, StandinUnsupported, method_invocation
from tests.standins.powershell.language import values as v

# Accelerators and full names (lower case, without a leading "system.") -> canonical .NET name.
_TYPE_NAMES = {
    "string": "System.String",
    "int": "System.Int32",
    "int32": "System.Int32",
    "long": "System.Int64",
    "int64": "System.Int64",
    "double": "System.Double",
    "decimal": "System.Decimal",
    "bool": "System.Boolean",
    "boolean": "System.Boolean",
    "char": "System.Char",
    "byte": "System.Byte",
    "guid": "System.Guid",
    "version": "System.Version",
    "datetime": "System.DateTime",
    "timespan": "System.TimeSpan",
    "bigint": "System.Numerics.BigInteger",
    "numerics.biginteger": "System.Numerics.BigInteger",
    "hashtable": "System.Collections.Hashtable",
    "collections.hashtable": "System.Collections.Hashtable",
    "ordered": "ordered",
    "pscustomobject": "System.Management.Automation.PSCustomObject",
    "management.automation.pscustomobject": "System.Management.Automation.PSCustomObject",
    "psobject": "System.Management.Automation.PSObject",
    "object": "System.Object",
    "array": "System.Array",
    "object[]": "System.Object[]",
    "string[]": "System.String[]",
    "int[]": "System.Int32[]",
    "byte[]": "System.Byte[]",
    "scriptblock": "System.Management.Automation.ScriptBlock",
    "management.automation.scriptblock": "System.Management.Automation.ScriptBlock",
    "securestring": "System.Security.SecureString",
    "security.securestring": "System.Security.SecureString",
    "switch": "System.Management.Automation.SwitchParameter",
    "management.automation.switchparameter": "System.Management.Automation.SwitchParameter",
    "uri": "System.Uri",
    "environment": "System.Environment",
    "convert": "System.Convert",
    "console": "System.Console",
    "cultureinfo": "System.Globalization.CultureInfo",
    "globalization.cultureinfo": "System.Globalization.CultureInfo",
    "globalization.datetimestyles": "System.Globalization.DateTimeStyles",
    "management.automation.psserializer": "System.Management.Automation.PSSerializer",
    "management.automation.actionpreference": "System.Management.Automation.ActionPreference",
    "management.automation.errorrecord": "System.Management.Automation.ErrorRecord",
    "pscredential": "System.Management.Automation.PSCredential",
    "management.automation.pscredential": "System.Management.Automation.PSCredential",
}


@dataclass(frozen=True)
class TypeRef:
    """A resolved type literal such as ``[guid]``."""

    name: str  # canonical .NET name

    def __str__(self) -> str:
        return self.name


def resolve_type(text: str) -> TypeRef:
    key = text.strip().lower().replace(" ", "")
    if key.startswith("system."):
        key = key[len("system.") :]
    name = _TYPE_NAMES.get(key)
    if name is None:
        raise StandinUnsupported(f"the type [{text}]")
    return TypeRef(name)


# ----------------------------------------------------------------------------------------------
# Casts (also used by parameter binding for typed parameters)
# ----------------------------------------------------------------------------------------------


def convert(type_ref: TypeRef, value: Any) -> Any:
    """``[type]value`` with PowerShell's conversions for the supported types."""
    name = type_ref.name
    if name in ("System.Object", "System.Management.Automation.PSObject"):
        return value
    if name.endswith("[]") or name == "System.Array":
        element = TypeRef(name[:-2]) if name.endswith("[]") else TypeRef("System.Object")
        items = list(v.enumerate_value(value)) if value is not None else []
        return v.make_array(convert(element, item) for item in items)
    converter = _CONVERTERS.get(name)
    if converter is None:
        raise StandinUnsupported(f"converting a value to [{name}]")
    return converter(value)


def _to_string(value: Any) -> Any:
    return None if value is None else v.to_string(value)


def _to_int(bits: int) -> Callable[[Any], int]:
    def convert_int(value: Any) -> int:
        number = v.to_number(value, context=f"System.Int{bits}")
        if isinstance(number, (float, decimal.Decimal)):
            if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
                raise v.conversion_error(value, f"System.Int{bits}")
            number = int(decimal.Decimal(str(number)).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
        if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
            raise v.conversion_error(
                value, f"System.Int{bits}", f"Value was either too large or too small for an Int{bits}."
            )
        return int(number) if bits == 32 else ps.PSInt64(number)

    return convert_int


def _to_double(value: Any) -> Any:
    return v.double(float(v.to_number(value, context="System.Double")))


def _to_decimal(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            raise v.conversion_error(value, "System.Decimal") from None
    return decimal.Decimal(str(v.to_number(value)))


def _to_bool(value: Any) -> bool:
    return v.to_bool(value)


def _to_guid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(v.to_string(value).strip())
    except ValueError:
        raise v.conversion_error(
            value,
            "System.Guid",
            "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).",
        ) from None


def _to_version(value: Any) -> Any:
    if isinstance(value, ps.PSVersion):
        return value
    text = v.to_string(value).strip()
    if not re.fullmatch(r"\d+(\.\d+){1,3}", text):
        raise v.conversion_error(value, "System.Version")
    return ps.PSVersion(text)


def _to_bigint(value: Any) -> Any:
    if isinstance(value, v.BigInteger):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise v.conversion_error(value, "System.Numerics.BigInteger")
        return v.BigInteger(int(text))
    number = v.to_number(value)
    return v.BigInteger(int(number))


def _to_hashtable(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    raise v.conversion_error(value, "System.Collections.Hashtable")


def _to_custom_object(value: Any) -> Any:
    if isinstance(value, dict):
        obj = ps.PSCustomObject()
        for key, item in value.items():
            if isinstance(key, str) and key.casefold() == "pstypename":
                obj.PSObject.type_names.insert(0, v.to_string(item))
                continue
            obj.PSObject.extended_properties.append(ps.PSNoteProperty(v.to_string(key), value=item))
        return obj
    return value


def _to_datetime(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    raise v.conversion_error(value, "System.DateTime")


def _to_timespan(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timespan_from_ticks(value)
    raise StandinUnsupported(f"converting {v.to_string(value)!r} to [timespan]")


def _to_scriptblock(value: Any) -> Any:
    if isinstance(value, v.ScriptBlock):
        return value
    raise v.conversion_error(value, "System.Management.Automation.ScriptBlock")


def _to_securestring(value: Any) -> Any:
    if isinstance(value, ps.PSSecureString) or value is None:
        return value
    raise v.conversion_error(value, "System.Security.SecureString")


def _to_switch(value: Any) -> bool:
    return v.to_bool(value)


def _to_char(value: Any) -> Any:
    text = v.to_string(value)
    if len(text) != 1:
        raise v.conversion_error(value, "System.Char")
    return ps.PSChar(text)


def _to_byte(value: Any) -> Any:
    number = _to_int(32)(value)
    if not 0 <= number <= 255:
        raise v.conversion_error(value, "System.Byte")
    return ps.PSByte(number)


def _to_uri(value: Any) -> Any:
    return ps.PSUri(v.to_string(value))


def _to_error_record(value: Any) -> Any:
    if isinstance(value, ps.ErrorRecord):
        return value
    raise v.conversion_error(value, "System.Management.Automation.ErrorRecord")


def _to_action_preference(value: Any) -> Any:
    return action_preference(value)


def _to_credential(value: Any) -> Any:
    if isinstance(value, ps.PSObject) and "PSCredential" in " ".join(value.PSObject.type_names):
        return value
    raise v.conversion_error(value, "System.Management.Automation.PSCredential")


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "System.String": _to_string,
    "System.Int32": _to_int(32),
    "System.Int64": _to_int(64),
    "System.Double": _to_double,
    "System.Decimal": _to_decimal,
    "System.Boolean": _to_bool,
    "System.Char": _to_char,
    "System.Byte": _to_byte,
    "System.Guid": _to_guid,
    "System.Version": _to_version,
    "System.DateTime": _to_datetime,
    "System.TimeSpan": _to_timespan,
    "System.Numerics.BigInteger": _to_bigint,
    "System.Collections.Hashtable": _to_hashtable,
    "System.Management.Automation.PSCustomObject": _to_custom_object,
    "System.Management.Automation.ScriptBlock": _to_scriptblock,
    "System.Security.SecureString": _to_securestring,
    "System.Management.Automation.SwitchParameter": _to_switch,
    "System.Uri": _to_uri,
    "System.Management.Automation.ErrorRecord": _to_error_record,
    "System.Management.Automation.ActionPreference": _to_action_preference,
    "System.Management.Automation.PSCredential": _to_credential,
}


# ----------------------------------------------------------------------------------------------
# ActionPreference
# ----------------------------------------------------------------------------------------------

ACTION_PREFERENCES = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend", "Break")


def action_preference(value: Any) -> str:
    """An ActionPreference value as its name (accepts names in any case, numbers and enum objects)."""
    if isinstance(value, ps.PSEnumBase):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(ACTION_PREFERENCES):
        return ACTION_PREFERENCES[value]
    text = v.to_string(value).strip()
    for name in ACTION_PREFERENCES:
        if name.casefold() == text.casefold():
            return name
    record_message = (
        f'Cannot convert value "{text}" to type "System.Management.Automation.ActionPreference". Error: "Unable to '
        f"match the identifier name {text} to a valid enumerator name. Specify one of the following enumerator names "
        f'and try again:\n{", ".join(ACTION_PREFERENCES)}"'
    )
    raise v.conversion_error(value, "System.Management.Automation.ActionPreference", record_message)


# ----------------------------------------------------------------------------------------------
# Dates and times
# ----------------------------------------------------------------------------------------------

_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def parse_datetime(text: str) -> Any:
    """``[datetime]::Parse(text, InvariantCulture, RoundtripKind)`` for ISO 8601 round-trip text."""
    match = _ISO.match(text)
    if not match:
        raise method_invocation(
            "Parse", 3, f"String '{text}' was not recognized as a valid DateTime.", "FormatException"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    fraction = (fraction or "").ljust(7, "0")
    ticks = int(fraction)
    tz: dt.tzinfo | None = None
    if zone == "Z":
        tz = dt.timezone.utc
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return ps.PSDateTime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        ticks // 10,
        tzinfo=tz,
        nanosecond=(ticks % 10) * 100,
    )


def timespan_from_ticks(ticks: int) -> Any:
    sign = -1 if ticks < 0 else 1
    magnitude = abs(ticks)
    span = ps.PSDuration(microseconds=sign * (magnitude // 10), nanoseconds=(magnitude % 10) * 100 * sign)
    return span


# ----------------------------------------------------------------------------------------------
# Static members: [Type]::Member and [Type]::Method(...)
# ----------------------------------------------------------------------------------------------


class Marker:
    """An opaque .NET value the stand-in only passes around (a culture, an enum flag)."""

    def __init__(self, name: str, type_name: str) -> None:
        self.name = name
        self.type_name = type_name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{self.type_name}::{self.name}>"


INVARIANT_CULTURE = Marker("", "System.Globalization.CultureInfo")
ROUNDTRIP_KIND = Marker("RoundtripKind", "System.Globalization.DateTimeStyles")


class ConsoleIn:
    """``[Console]::In``: the process's standard input as a text reader."""

    def __init__(self, read_all: Callable[[], str]) -> None:
        self._read_all = read_all

    def call(self, method: str, args: list[Any]) -> Any:
        if method.casefold() == "readtoend" and not args:
            return self._read_all()
        raise StandinUnsupported(f"[Console]::In.{method}()")


@dataclass
class StaticContext:
    """What static members need from the engine: stdin, the script parser, the CLIXML (de)serializers."""

    read_stdin: Callable[[], str]
    create_scriptblock: Callable[[str], Any]
    deserialize: Callable[[str], Any]
    serialize: Callable[[Any], str]


def static_property(type_ref: TypeRef, name: str, context: StaticContext) -> Any:
    key = (type_ref.name, name.casefold())
    if key == ("System.Environment", "newline"):
        return "\n"
    if key == ("System.Console", "in"):
        return ConsoleIn(context.read_stdin)
    if type_ref.name == "System.Double":
        constants = {
            "nan": math.nan,
            "positiveinfinity": math.inf,
            "negativeinfinity": -math.inf,
            "maxvalue": 1.7976931348623157e308,
            "minvalue": -1.7976931348623157e308,
            "epsilon": 5e-324,
        }
        if name.casefold() in constants:
            return v.double(constants[name.casefold()])
    if key == ("System.Globalization.CultureInfo", "invariantculture"):
        return INVARIANT_CULTURE
    if key == ("System.Globalization.DateTimeStyles", "roundtripkind"):
        return ROUNDTRIP_KIND
    if key == ("System.DateTime", "now"):
        return ps.PSDateTime.now()
    if key == ("System.DateTime", "utcnow"):
        return ps.PSDateTime.now(dt.timezone.utc)
    if key == ("System.Int32", "maxvalue"):
        return 2**31 - 1
    if key == ("System.Int32", "minvalue"):
        return -(2**31)
    if type_ref.name == "System.Management.Automation.ActionPreference":
        return action_preference(name)
    raise StandinUnsupported(f"the static member [{type_ref.name}]::{name}")


def static_method(type_ref: TypeRef, name: str, args: list[Any], context: StaticContext) -> Any:
    key = (type_ref.name, name.casefold(), len(args))
    if key[:2] == ("System.Management.Automation.PSSerializer", "deserialize") and len(args) == 1:
        return context.deserialize(v.to_string(args[0]))
    if key[:2] == ("System.Management.Automation.PSSerializer", "serialize") and len(args) in (1, 2):
        return context.serialize(args[0])
    if key == ("System.Management.Automation.ScriptBlock", "create", 1):
        return context.create_scriptblock(v.to_string(args[0]))
    if key == ("System.Convert", "frombase64string", 1):
        text = v.to_string(args[0])
        try:
            return ps.PSByteArray(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise method_invocation(
                "FromBase64String",
                1,
                "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two "
                "padding characters, or an illegal character among the padding characters.",
                "FormatException",
            ) from None
    if key == ("System.Convert", "tobase64string", 1):
        data = args[0]
        if isinstance(data, (bytes, bytearray)):
            return base64.b64encode(bytes(data)).decode("ascii")
        raise StandinUnsupported("[Convert]::ToBase64String of anything but a byte array")
    if key[:2] == ("System.DateTime", "parse") and len(args) in (1, 2, 3):
        if len(args) >= 2 and args[1] is not INVARIANT_CULTURE:
            raise StandinUnsupported(
                "[datetime]::Parse with a culture other than [cultureinfo]::InvariantCulture"
            )
        if len(args) == 3 and args[2] is not ROUNDTRIP_KIND:
            raise StandinUnsupported("[datetime]::Parse with styles other than RoundtripKind")
        return parse_datetime(v.to_string(args[0]))
    if key == ("System.TimeSpan", "new", 1):
        return timespan_from_ticks(int(v.to_number(args[0])))
    if key == ("System.TimeSpan", "fromseconds", 1):
        return timespan_from_ticks(int(float(v.to_number(args[0])) * 10_000_000))
    if key == ("System.Guid", "newguid", 0):
        return uuid.uuid4()
    if key == ("System.Guid", "parse", 1):
        return _to_guid(args[0])
    if key == ("System.Version", "new", 1):
        return _to_version(args[0])
    raise StandinUnsupported(f"the static method [{type_ref.name}]::{name}() with {len(args)} argument(s)")


def instance_method(target: Any, name: str, args: list[Any]) -> Any:
    """The few instance methods scripts call: ToString(), string helpers, hashtable lookups."""
    folded = name.casefold()
    if isinstance(target, ConsoleIn):
        return target.call(name, args)
    if folded == "tostring" and not args:
        return v.to_string(target)
    if isinstance(target, str):
        if folded == "trim" and not args:
            return target.strip()
        if folded == "toupper" and not args:
            return target.upper()
        if folded == "tolower" and not args:
            return target.lower()
        if folded == "contains" and len(args) == 1:
            return v.to_string(args[0]) in target
        if folded == "startswith" and len(args) == 1:
            return target.startswith(v.to_string(args[0]))
        if folded == "split" and len(args) == 1:
            return v.make_array(target.split(v.to_string(args[0])))
    if isinstance(target, dict):
        if folded == "containskey" and len(args) == 1:
            return v.dict_contains(target, args[0])
        if folded == "add" and len(args) == 2:
            if v.dict_contains(target, args[0]):
                raise method_invocation(
                    "Add",
                    2,
                    f"Item has already been added. Key in dictionary: "
                    f"'{args[0]}'  Key being added: '{args[0]}'",
                    "ArgumentException",
                )
            target[args[0]] = args[1]
            return None
    if isinstance(target, ps.PSSecureString) and folded == "dispose":
        return None
    raise StandinUnsupported(f"the method {name}() on a {type(target).__name__}")


def is_error(value: Any) -> bool:
    return isinstance(value, PSError)
