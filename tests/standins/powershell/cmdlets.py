"""The built-in cmdlets of the stand-in: the Write-* family, Get-Date, Start-Sleep and Read-Host.

Each produces what the real cmdlet produces (records with PowerShell's type names, error ids and
category info), honours the preference variables and common parameters, and is registered in
:data:`tests.standins.powershell.commands.DEFAULT_TABLE` on import.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psrpcore import types as ps

from tests.standins.powershell.commands import CommandContext, Parameter, command
from tests.standins.powershell.errors import StandinUnsupported, error_record
from tests.standins.powershell.language import values as v
from tests.standins.powershell.streams import host_information_message, local_now

_UTILITY = "Microsoft.PowerShell.Commands"


@ps.PSType(["Microsoft.PowerShell.Commands.DisplayHintType"])
class DisplayHintType(ps.PSEnumBase):
    """The ``DisplayHint`` note Get-Date puts on its DateTime."""

    Date = 0
    Time = 1
    DateTime = 2


@command(
    "Write-Output",
    cmdlet_type=f"{_UTILITY}.WriteOutputCommand",
    aliases=("echo", "write"),
    parameters=[
        Parameter("InputObject", position=0, mandatory=True, pipeline=True, remaining=True),
        Parameter("NoEnumerate", switch=True),
    ],
)
def write_output(ctx: CommandContext, InputObject: Any, NoEnumerate: bool) -> None:
    ctx.write_output(InputObject, enumerate_collection=not NoEnumerate)


@command(
    "Write-Error",
    cmdlet_type=f"{_UTILITY}.WriteErrorCommand",
    parameters=[
        Parameter("Message", position=0, aliases=("Msg",), pipeline=True, type="System.String"),
        Parameter("ErrorRecord", type="System.Management.Automation.ErrorRecord"),
        Parameter("Exception"),
        Parameter("Category"),
        Parameter("ErrorId", type="System.String"),
        Parameter("TargetObject"),
        Parameter("RecommendedAction", type="System.String"),
        Parameter("CategoryActivity", aliases=("Activity",), type="System.String"),
        Parameter("CategoryReason", aliases=("Reason",), type="System.String"),
        Parameter("CategoryTargetName", aliases=("TargetName",), type="System.String"),
        Parameter("CategoryTargetType", aliases=("TargetType",), type="System.String"),
    ],
)
def write_error(
    ctx: CommandContext,
    Message: str | None,
    ErrorRecord: Any,
    Exception: Any,
    Category: Any,
    ErrorId: str | None,
    TargetObject: Any,
    RecommendedAction: str | None,
    CategoryActivity: str | None,
    CategoryReason: str | None,
    CategoryTargetName: str | None,
    CategoryTargetType: str | None,
) -> None:
    if ErrorRecord is not None:
        ctx.write_error(ErrorRecord)
        return
    category = _category(Category)
    if Exception is not None:
        exc = Exception if isinstance(Exception, ps.PSObject) else None
        if exc is None:
            raise StandinUnsupported("Write-Error -Exception with a value that is not an exception object")
        message = Message or str(getattr(exc, "Message", ""))
    else:
        message = Message or ""
        exc = None
    record = error_record(
        message,
        exception_type="Microsoft.PowerShell.Commands.WriteErrorException",
        exception_bases=["System.SystemException", "System.Exception"],
        error_id=ErrorId or "Microsoft.PowerShell.Commands.WriteErrorException",
        category=category,
        target=TargetObject,
        reason=CategoryReason,
        activity=CategoryActivity or "Write-Error",
        target_name=CategoryTargetName,
        target_type=CategoryTargetType,
        invocation_info=ctx.invocation_info,
        exc=exc,
    )
    if RecommendedAction:
        record.ErrorDetails = ps.ErrorDetails(Message=message, RecommendedAction=RecommendedAction)
    ctx.write_error(record)


def _category(value: Any) -> ps.ErrorCategory:
    if value is None:
        return ps.ErrorCategory.NotSpecified
    if isinstance(value, ps.ErrorCategory):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return ps.ErrorCategory(value)
    text = v.to_string(value).strip()
    for member in ps.ErrorCategory:
        if member.name.casefold() == text.casefold():
            return member
    raise v.conversion_error(value, "System.Management.Automation.ErrorCategory")


def _message_parameters() -> list[Parameter]:
    return [
        Parameter(
            "Message", position=0, mandatory=True, pipeline=True, aliases=("Msg",), type="System.String"
        )
    ]


@command("Write-Warning", cmdlet_type=f"{_UTILITY}.WriteWarningCommand", parameters=_message_parameters())
def write_warning(ctx: CommandContext, Message: str) -> None:
    ctx.write_warning(Message)


@command("Write-Verbose", cmdlet_type=f"{_UTILITY}.WriteVerboseCommand", parameters=_message_parameters())
def write_verbose(ctx: CommandContext, Message: str) -> None:
    ctx.write_verbose(Message)


@command("Write-Debug", cmdlet_type=f"{_UTILITY}.WriteDebugCommand", parameters=_message_parameters())
def write_debug(ctx: CommandContext, Message: str) -> None:
    ctx.write_debug(Message)


@command(
    "Write-Information",
    cmdlet_type=f"{_UTILITY}.WriteInformationCommand",
    parameters=[
        Parameter("MessageData", position=0, mandatory=True, aliases=("Msg", "Message"), pipeline=True),
        Parameter("Tags", position=1, type="System.String[]"),
    ],
)
def write_information(ctx: CommandContext, MessageData: Any, Tags: Any) -> None:
    ctx.write_information(MessageData, [v.to_string(t) for t in Tags] if Tags else None)


@command(
    "Write-Host",
    cmdlet_type=f"{_UTILITY}.WriteHostCommand",
    parameters=[
        Parameter("Object", position=0, pipeline=True, remaining=True, aliases=("Msg", "Message")),
        Parameter("NoNewline", switch=True),
        Parameter("Separator", default=" "),
        Parameter("ForegroundColor"),
        Parameter("BackgroundColor"),
    ],
)
def write_host(
    ctx: CommandContext,
    Object: Any,
    NoNewline: bool,
    Separator: Any,
    ForegroundColor: Any,
    BackgroundColor: Any,
) -> None:
    parts = [v.to_string(item) for item in v.enumerate_value(Object)] if Object is not None else []
    text = v.to_string(Separator).join(parts)
    default = getattr(ctx.execution.host, "default_color", None)  # a PSRP client's host has none
    foreground, background = (
        _color(c) if c is not None else default for c in (ForegroundColor, BackgroundColor)
    )
    message = host_information_message(text, NoNewline, foreground, background)
    ctx.write_information(message, ["PSHOST"], source="Write-Host", always=True)


def _color(value: Any) -> Any:
    """A ConsoleColor as the record carries it over the wire: its name (the HostInformationMessage's
    members lie past the serialization depth, so PowerShell writes their text)."""
    if value is None:
        return None
    text = v.to_string(value)
    for member in ps.ConsoleColor:
        if member.name.casefold() == text.casefold():
            return member.name
    raise v.conversion_error(value, "System.ConsoleColor")


@command(
    "Write-Progress",
    cmdlet_type=f"{_UTILITY}.WriteProgressCommand",
    parameters=[
        Parameter("Activity", position=0, type="System.String"),
        Parameter("Status", position=1, type="System.String", default="Processing"),
        Parameter("Id", position=2, type="System.Int32", default=0),
        Parameter("PercentComplete", type="System.Int32", default=-1),
        Parameter("SecondsRemaining", type="System.Int32", default=-1),
        Parameter("CurrentOperation", type="System.String"),
        Parameter("ParentId", type="System.Int32", default=-1),
        Parameter("Completed", switch=True),
        Parameter("SourceId", type="System.Int32"),
    ],
)
def write_progress(
    ctx: CommandContext,
    Activity: str | None,
    Status: str,
    Id: int,
    PercentComplete: int,
    SecondsRemaining: int,
    CurrentOperation: str | None,
    ParentId: int,
    Completed: bool,
    SourceId: int | None,
) -> None:
    record = ps.ProgressRecord(
        Activity=Activity or "",
        ActivityId=Id,
        StatusDescription=Status,
        CurrentOperation=CurrentOperation,
        ParentActivityId=ParentId,
        PercentComplete=PercentComplete,
        RecordType=ps.ProgressRecordType.Completed if Completed else ps.ProgressRecordType.Processing,
        SecondsRemaining=SecondsRemaining,
    )
    ctx.write_progress(record)


@command(
    "Get-Date",
    cmdlet_type=f"{_UTILITY}.GetDateCommand",
    parameters=[
        Parameter("Date", position=0, pipeline=True, type="System.DateTime", aliases=("LastWriteTime",)),
        Parameter("Format", type="System.String"),
        Parameter("AsUTC", switch=True),
    ],
)
def get_date(ctx: CommandContext, Date: Any, Format: str | None, AsUTC: bool) -> None:
    value = Date if Date is not None else local_now()
    if AsUTC:
        value = (
            value.astimezone(dt.timezone.utc)
            if value.tzinfo
            else value.astimezone().astimezone(dt.timezone.utc)
        )
    if Format is not None:
        ctx.write_output(_format_date(value, Format))
        return
    result = ps.PSDateTime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
        nanosecond=getattr(value, "nanosecond", 0),
    )
    result.PSObject.extended_properties.append(ps.PSNoteProperty("DisplayHint", DisplayHintType.DateTime))
    ctx.write_output(result)


_DATE_TOKENS = [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]


def _format_date(value: dt.datetime, fmt: str) -> str:
    if fmt in ("o", "O"):
        fraction = f"{value.microsecond:06}{(getattr(value, 'nanosecond', 0) or 0) // 100}"
        zone = ""
        if value.tzinfo is dt.timezone.utc:
            zone = "Z"
        elif value.tzinfo is not None:
            offset = value.strftime("%z")
            zone = f"{offset[:3]}:{offset[3:]}"
        return value.strftime("%Y-%m-%dT%H:%M:%S") + "." + fraction + zone
    if fmt == "s":
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    out = fmt
    for token, directive in _DATE_TOKENS:
        out = out.replace(token, directive)
    if any(
        ch.isalpha() and ch not in "TZ"
        for ch in out.replace("%Y", "")
        .replace("%m", "")
        .replace("%d", "")
        .replace("%H", "")
        .replace("%M", "")
        .replace("%S", "")
    ):
        raise StandinUnsupported(f"Get-Date -Format {fmt!r}")
    return value.strftime(out)


@command(
    "Start-Sleep",
    cmdlet_type=f"{_UTILITY}.StartSleepCommand",
    aliases=("sleep",),
    parameters=[
        Parameter("Seconds", position=0, aliases=("s",), type="System.Double"),
        Parameter("Milliseconds", aliases=("ms",), type="System.Int32"),
    ],
)
def start_sleep(ctx: CommandContext, Seconds: float | None, Milliseconds: int | None) -> None:
    if Seconds is None and Milliseconds is None:
        raise StandinUnsupported("Start-Sleep without -Seconds or -Milliseconds")
    ctx.sleep(float(Seconds) if Seconds is not None else (Milliseconds or 0) / 1000)


@command(
    "Read-Host",
    cmdlet_type=f"{_UTILITY}.ReadHostCommand",
    parameters=[
        Parameter("Prompt", position=0, remaining=True),
        Parameter("AsSecureString", switch=True),
        Parameter("MaskInput", switch=True),
    ],
)
def read_host(ctx: CommandContext, Prompt: Any, AsSecureString: bool, MaskInput: bool) -> None:
    host = ctx.host
    if Prompt is None:
        ctx.write_output(host.read_line(secure=AsSecureString))
        return
    text = " ".join(v.to_string(part) for part in v.enumerate_value(Prompt))
    field = ps.FieldDescription(Name=text)
    if AsSecureString:
        field.ParameterTypeName = "SecureString"
        field.ParameterTypeFullName = "System.Security.SecureString"
    else:
        field.ParameterTypeName = "PSObject"
        field.ParameterTypeFullName = "System.Management.Automation.PSObject"
    answers = host.prompt("", "", [field])
    value = v.dict_get(answers, text) if isinstance(answers, dict) else answers
    ctx.write_output(value, enumerate_collection=False)
