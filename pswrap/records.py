"""Turn what arrives on PowerShell's other streams into typed records.

Every transport meets the same shapes: a serialized ``ErrorRecord`` (``ErrorCategory_*`` notes, an
``Exception`` object, ``InvocationInfo_*`` notes when extended info was sent), a plain string (the
formatted text lines that ``pwsh -OutputFormat xml`` writes on stderr), an ``InformationalRecord``
(warning, verbose, debug), an ``InformationRecord``, or a progress record. One function,
:func:`to_record`, handles them all so that a record looks the same whichever transport brought it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pswrap.objects import (
    DebugRecord,
    ErrorRecord,
    InformationRecord,
    ProgressRecord,
    PSObject,
    Record,
    VerboseRecord,
    WarningRecord,
)

__all__ = ["ERROR_CATEGORIES", "STREAMS", "merged_stream", "to_record"]

#: The streams pswrap knows, in PowerShell's numbering order.
STREAMS = ("output", "error", "warning", "verbose", "debug", "information", "progress")

#: ``System.Management.Automation.ErrorCategory`` by value.
ERROR_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected", "InvalidArgument",
    "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType", "MetadataError", "NotImplemented",
    "NotInstalled", "ObjectNotFound", "OperationStopped", "OperationTimeout", "SyntaxError", "ParserError",
    "PermissionDenied", "ResourceBusy", "ResourceExists", "ResourceUnavailable", "ReadError", "WriteError",
    "FromStdErr", "SecurityError", "ProtocolError", "ConnectionError", "AuthenticationError",
    "LimitsExceeded", "QuotaExceeded", "NotEnabled",
)  # fmt: skip

_MERGE_NOTES = {
    "writeerrorstream": "error",
    "writewarningstream": "warning",
    "writeverbosestream": "verbose",
    "writedebugstream": "debug",
    "writeinformationstream": "information",
}

_RECORD_TYPES = {
    "System.Management.Automation.ErrorRecord": "error",
    "System.Management.Automation.WarningRecord": "warning",
    "System.Management.Automation.VerboseRecord": "verbose",
    "System.Management.Automation.DebugRecord": "debug",
    "System.Management.Automation.InformationRecord": "information",
}

_SIMPLE: dict[str, type[Record]] = {
    "warning": WarningRecord,
    "verbose": VerboseRecord,
    "debug": DebugRecord,
}


def merged_stream(value: Any) -> str | None:
    """The stream of a record that ``*>&1`` merged into output, else ``None``.

    Windows PowerShell 5.1 marks a merged record with a ``writeErrorStream``/``WriteWarningStream``/…
    note; pwsh 7 adds none, so the record's own type says it.
    """
    if not isinstance(value, PSObject):
        return None
    for name, note in value.extended.items():
        stream = _MERGE_NOTES.get(name.lower())
        if stream is not None and note is True:
            return stream
    return _RECORD_TYPES.get((value.type_name or "").removeprefix("Deserialized."))


def to_record(stream: str, value: Any) -> Any:
    """The typed record for ``value`` read from ``stream`` (output and unknown streams pass through)."""
    stream = stream.lower()
    if stream == "error":
        return error_record(value)
    if stream in _SIMPLE:
        return _SIMPLE[stream](_message(value), raw=value)
    if stream == "information":
        return information_record(value)
    if stream == "progress":
        return progress_record(value)
    return value


def error_record(value: Any) -> ErrorRecord:
    """An :class:`ErrorRecord` from a serialized ErrorRecord, an exception object or a text line."""
    if isinstance(value, ErrorRecord):
        return value
    if not isinstance(value, PSObject):
        return ErrorRecord(_text(value), raw=value)
    exception = _get(value, "Exception")
    exception_message = _get(exception, "Message") if isinstance(exception, PSObject) else None
    exception_type = None
    if isinstance(exception, PSObject) and exception.type_name:
        exception_type = exception.type_name.removeprefix("Deserialized.")
    details_message = _get(value, "ErrorDetails_Message")
    details = _get(value, "ErrorDetails")
    if details_message is None and isinstance(details, PSObject):
        details_message = _get(details, "Message")
    message = details_message or exception_message or value.to_string or exception_type or "Unknown error"
    invocation = _get(value, "InvocationInfo")
    position = _get(value, "InvocationInfo_PositionMessage")
    if position is None and isinstance(invocation, PSObject):
        position = _get(invocation, "PositionMessage")
    line_number = _get(value, "InvocationInfo_ScriptLineNumber")
    if line_number is None and isinstance(invocation, PSObject):
        line_number = _get(invocation, "ScriptLineNumber")
    stack = _get(value, "ErrorDetails_ScriptStackTrace")
    if stack is None:
        stack = _get(value, "ScriptStackTrace")
    action = _get(value, "ErrorDetails_RecommendedAction")
    if action is None and isinstance(details, PSObject):
        action = _get(details, "RecommendedAction")
    category, activity, reason = _category(value)
    return ErrorRecord(
        str(message),
        raw=value,
        category=category,
        error_id=str(_get(value, "FullyQualifiedErrorId") or ""),
        target=_get(value, "TargetObject"),
        exception_type=exception_type,
        exception_message=None if exception_message is None else str(exception_message),
        script_position=None if position is None else str(position),
        script_line_number=int(line_number) if isinstance(line_number, int) else None,
        recommended_action=None if action is None else str(action) or None,
        activity=activity,
        reason=reason,
        script_stack_trace=None if stack is None else str(stack) or None,
    )


def _category(value: PSObject) -> tuple[str, str | None, str | None]:
    raw: Any = _get(value, "ErrorCategory_Category")
    activity = _get(value, "ErrorCategory_Activity")
    reason = _get(value, "ErrorCategory_Reason")
    info = _get(value, "CategoryInfo")
    if raw is None and isinstance(info, PSObject):
        raw = _get(info, "Category")
        activity = _get(info, "Activity") if activity is None else activity
        reason = _get(info, "Reason") if reason is None else reason
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= int(raw) < len(ERROR_CATEGORIES):
        category = ERROR_CATEGORIES[int(raw)]
    elif isinstance(raw, str) and raw:
        category = raw
    else:
        category = "NotSpecified"
    return category, (str(activity) if activity else None), (str(reason) if reason else None)


def information_record(value: Any) -> InformationRecord:
    """An :class:`InformationRecord` from a serialized InformationRecord or a text line."""
    if isinstance(value, InformationRecord):
        return value
    if not isinstance(value, PSObject):
        return InformationRecord(_text(value), raw=value, data=value)
    data = _get(value, "MessageData")
    tags = _get(value, "Tags")
    time = _get(value, "TimeGenerated")
    pid = _get(value, "ProcessId")
    message = value.to_string if value.to_string is not None else _text(data)
    return InformationRecord(
        message,
        raw=value,
        data=data,
        source=_optional_str(_get(value, "Source")),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        time_generated=time if hasattr(time, "year") else None,
        user=_optional_str(_get(value, "User")),
        computer=_optional_str(_get(value, "Computer")),
        process_id=int(pid) if isinstance(pid, int) else None,
    )


def progress_record(value: Any) -> ProgressRecord:
    """A :class:`ProgressRecord` from a ``<PR>`` element, its stderr wrapper, or a PSRP progress object."""
    if isinstance(value, ProgressRecord):
        return value
    if isinstance(value, PSObject):
        inner = _get(value, "Record")
        if isinstance(inner, ProgressRecord):
            return inner
        kind = _get(value, "Type") if "Type" in value else _get(value, "RecordType")
        return ProgressRecord(
            str(_get(value, "StatusDescription") or ""),
            raw=value,
            activity=str(_get(value, "Activity") or ""),
            activity_id=_int(_get(value, "ActivityId"), 0),
            parent_activity_id=_int(_get(value, "ParentActivityId"), -1),
            percent_complete=_int(_get(value, "PercentComplete"), -1),
            seconds_remaining=_int(_get(value, "SecondsRemaining"), -1),
            current_operation=_optional_str(_get(value, "CurrentOperation")),
            completed=str(kind) == "Completed" or (isinstance(kind, int) and int(kind) == 1),
        )
    return ProgressRecord(_text(value), raw=value)


def _message(value: Any) -> str:
    if isinstance(value, PSObject):
        for name in ("Message", "InformationalRecord_Message"):
            message = _get(value, name)
            if message is not None:
                return str(message)
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.removesuffix("\r\n").removesuffix("\n")
    return str(value)


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        try:
            return obj[name]
        except KeyError:
            return None
    return None


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
