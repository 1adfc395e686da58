"""PowerShell's errors as the stand-in raises and reports them: real ErrorRecord shapes, real texts.

Exceptions used inside the interpreter:

* :class:`PSError` - a terminating error carrying its ``ErrorRecord``. ``script_terminating`` says
  whether it ends the whole script (``throw``, an error escalated by ``-ErrorAction Stop``) or only the
  statement (command not found, parameter binding, a failing .NET call), as in PowerShell.
* :class:`ExitRequested` - the ``exit`` keyword.
* :class:`PipelineStopped` - the client stopped the pipeline (PSRP signal).
* :class:`StandinUnsupported` - the script uses something outside the stand-in's subset: always loud.
"""

from __future__ import annotations

from typing import Any

from psrpcore import types as ps

RUNTIME_EXCEPTION = [
    "System.Management.Automation.RuntimeException",
    "System.SystemException",
    "System.Exception",
]


class StandinUnsupported(Exception):
    """The script asked for something the stand-in does not implement (never silently ignored)."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"pwsh stand-in does not support {what}")


class PSError(Exception):
    """A terminating PowerShell error."""

    def __init__(self, record: ps.ErrorRecord, *, script_terminating: bool = False) -> None:
        self.record = record
        self.script_terminating = script_terminating
        super().__init__(message_of(record))


class ExitRequested(Exception):
    """``exit N``."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exit {code}")


class PipelineStopped(Exception):
    """The pipeline was stopped from outside (PSRP signal, pipeline close)."""


class CategoryInfo(ps.ErrorCategoryInfo):
    """ErrorCategoryInfo whose text is PowerShell's: ``Category: (target:type) [activity], reason``."""

    def __str__(self) -> str:
        return (
            f"{self.Category.name}: ({self.TargetName or ''}:{self.TargetType or ''}) "
            f"[{self.Activity or ''}], {self.Reason or ''}"
        )


def exception(
    type_name: str, message: str, bases: list[str] | None = None, hresult: int = -2146233087
) -> Any:
    """A .NET exception object with its type-name chain (most derived first)."""
    exc = ps.NETException(Message=message, HResult=hresult)
    chain = [type_name, *(bases if bases is not None else RUNTIME_EXCEPTION[1:])]
    if "System.Exception" not in chain:
        chain.append("System.Exception")
    exc.PSObject.type_names = [*dict.fromkeys([*chain, "System.Object"])]
    return exc


def error_record(
    message: str,
    *,
    exception_type: str = RUNTIME_EXCEPTION[0],
    exception_bases: list[str] | None = None,
    error_id: str,
    category: ps.ErrorCategory = ps.ErrorCategory.NotSpecified,
    target: Any = None,
    reason: str | None = None,
    activity: str | None = None,
    target_name: str | None = None,
    target_type: str | None = None,
    invocation_info: Any = None,
    exc: Any = None,
) -> ps.ErrorRecord:
    """An ErrorRecord shaped like PowerShell's, with CategoryInfo filled as PowerShell fills it."""
    if exc is None:
        exc = exception(exception_type, message, exception_bases)
    short_type = exc.PSObject.type_names[0].rsplit(".", 1)[-1]
    if target_name is None:
        target_name = "" if target is None else to_text(target)
    if target_type is None:
        target_type = "" if target is None else type_name_of(target).rsplit(".", 1)[-1]
    record = ps.ErrorRecord(
        Exception=exc,
        CategoryInfo=CategoryInfo(
            Category=category,
            Activity=activity or "",
            Reason=reason or short_type,
            TargetName=target_name,
            TargetType=target_type,
        ),
        TargetObject=target,
        FullyQualifiedErrorId=error_id,
        InvocationInfo=invocation_info,
    )
    record.serialize_extended_info = invocation_info is not None
    record.PSObject.to_string = message
    return record


def message_of(record: Any) -> str:
    """The text PowerShell shows for an error record (ErrorDetails first, then the exception's message)."""
    details = getattr(record, "ErrorDetails", None)
    if details is not None and getattr(details, "Message", None):
        return str(details.Message)
    exc = getattr(record, "Exception", None)
    message = getattr(exc, "Message", None)
    return str(message) if message is not None else str(record)


def to_text(value: Any) -> str:
    """Short text for a target object (what PowerShell shows as the category's target name)."""
    if isinstance(value, str):
        return value
    return str(value)


def type_name_of(value: Any) -> str:
    """The .NET type name PowerShell would report for a value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, ps.PSObject):
        names = value.PSObject.type_names
        if names:
            return str(names[0])
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, int):
        return "System.Int32" if -(2**31) <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, list):
        return "System.Object[]"
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    return "System.Object"


# ----------------------------------------------------------------------------------------------
# The errors the engine itself raises, with PowerShell's ids and texts
# ----------------------------------------------------------------------------------------------


def command_not_found(name: str) -> PSError:
    message = (
        f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, or executable program.\n"
        "Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
    )
    record = error_record(
        message,
        exception_type="System.Management.Automation.CommandNotFoundException",
        exception_bases=RUNTIME_EXCEPTION,
        error_id="CommandNotFoundException",
        category=ps.ErrorCategory.ObjectNotFound,
        target=name,
    )
    return PSError(record)


def parameter_binding(command: str, error_id: str, message: str, *, target: Any = None) -> PSError:
    record = error_record(
        message,
        exception_type="System.Management.Automation.ParameterBindingException",
        exception_bases=RUNTIME_EXCEPTION,
        error_id=f"{error_id},{command}" if command else error_id,
        category=ps.ErrorCategory.InvalidArgument,
        target=target,
        activity=command.rsplit(".", 1)[-1] if command else None,
    )
    return PSError(record)


def runtime_error(
    message: str,
    error_id: str,
    *,
    category: ps.ErrorCategory = ps.ErrorCategory.InvalidOperation,
    target: Any = None,
) -> PSError:
    record = error_record(message, error_id=error_id, category=category, target=target)
    return PSError(record)


def method_invocation(method: str, argc: int, inner_message: str, error_id: str) -> PSError:
    plural = "argument(s)"
    message = f'Exception calling "{method}" with "{argc}" {plural}: "{inner_message}"'
    record = error_record(
        message,
        exception_type="System.Management.Automation.MethodInvocationException",
        exception_bases=["System.Management.Automation.MethodException", *RUNTIME_EXCEPTION],
        error_id=error_id,
        category=ps.ErrorCategory.NotSpecified,
    )
    return PSError(record)


def unsupported_record(problem: StandinUnsupported) -> ps.ErrorRecord:
    """How an unsupported construct surfaces to the client: a loud, specific error record."""
    return error_record(
        str(problem),
        exception_type="System.NotSupportedException",
        exception_bases=["System.SystemException", "System.Exception"],
        error_id="PwshStandinUnsupported",
        category=ps.ErrorCategory.NotImplemented,
        target=problem.what,
    )


def thrown(value: Any) -> PSError:
    """``throw value``: a script-terminating RuntimeException, or the thrown ErrorRecord itself."""
    if isinstance(value, ps.ErrorRecord):
        return PSError(value, script_terminating=True)
    message = "ScriptHalted" if value is None else (value if isinstance(value, str) else str(value))
    record = error_record(
        message,
        error_id=message,
        category=ps.ErrorCategory.OperationStopped,
        target=value,
    )
    return PSError(record, script_terminating=True)


def parse_error_record(text: str, problems: list[tuple[int, int, int, str, str]]) -> ps.ErrorRecord:
    """The ErrorRecord of PowerShell's ParseException for ``problems`` (line, column, width, id, message)."""
    lines = text.split("\n")
    parts = []
    for line_no, column, width, _error_id, message in problems:
        source = lines[line_no - 1].rstrip("\r") if 0 < line_no <= len(lines) else ""
        parts.append(f"{position_message(line_no, column, source, width)}\n{message}")
    message_text = "\n\n".join(parts)
    return error_record(
        message_text,
        exception_type="System.Management.Automation.ParseException",
        exception_bases=RUNTIME_EXCEPTION,
        error_id=problems[0][3],
        category=ps.ErrorCategory.ParserError,
        reason="ParseException",
        target_name="",
        target_type="",
    )


def position_message(line_no: int, column: int, source: str, width: int = 1) -> str:
    """PowerShell's ``At line:L char:C`` block with the source line and the ``~`` marker."""
    marker = " " * (column - 1) + "~" * max(width, 1)
    return f"At line:{line_no} char:{column}\n+ {source}\n+ {marker}"


def formatted_error_lines(record: Any, command: str | None = None) -> list[str]:
    """The text lines PowerShell's console prints for an error record (the classic NormalView)."""
    message = message_of(record)
    lines: list[str] = []
    first = f"{command} : {message}" if command else message
    lines.extend(first.split("\n"))
    invocation = getattr(record, "InvocationInfo", None)
    position = getattr(invocation, "PositionMessage", None) if invocation is not None else None
    if position:
        lines.extend(str(position).split("\n"))
    info = record.CategoryInfo
    lines.append(f"    + CategoryInfo          : {info}")
    lines.append(f"    + FullyQualifiedErrorId : {record.FullyQualifiedErrorId}")
    lines.append(" ")
    return lines
