"""Compare what two PowerShells gave pswrap, field by field: the stand-in against real pwsh.

:func:`snapshot` turns a finished :class:`pswrap.Result` into plain facts (output, records, state, exit
code, terminating error, the exception pswrap raised); :func:`differences` walks two snapshots and lists
every place they differ: values, Python types, PowerShell type names, ``ToString``, members, and each
record's fields and the serialized object it was read from (``raw``: exception, invocation info…).

A few fields differ between any two runs, or between two honest PowerShells; :data:`IGNORED` names them
and says why. Everything else must match.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pswrap import PSObject, PswrapError, Result
from pswrap.objects import Record

#: Members or fields that legitimately differ, by name, with the reason.
IGNORED: dict[str, str] = {
    # when and where it ran
    "process_id": "the pid of whichever process ran it",
    "ProcessId": "the pid of whichever process ran it",
    "NativeThreadId": "a thread id",
    "ManagedThreadId": "a thread id",
    "time_generated": "when it ran",
    "TimeGenerated": "when it ran",
    "HistoryId": "how many commands the process ran before",
    # where in the script text: real pwsh's parser positions, which the stand-in's interpreter keeps
    # only in part (line numbers, not columns or the quoted line)
    "script_position": "the quoted script line and its ~~~ marker",
    "PositionMessage": "the quoted script line and its ~~~ marker",
    "InvocationInfo_PositionMessage": "the quoted script line and its ~~~ marker",
    "OffsetInLine": "a column in the script",
    "InvocationInfo_OffsetInLine": "a column in the script",
    "ScriptExtent_StartColumnNumber": "a column in the script",
    "ScriptExtent_EndColumnNumber": "a column in the script",
    "Line": "the script line as pwsh's parser cut it",
    "InvocationInfo_Line": "the script line as pwsh's parser cut it",
    "Statement": "the statement as pwsh's parser cut it",
    "ErrorDetails_ScriptStackTrace": ".NET and script stack frames",
    "StackTrace": ".NET stack frames",
    "ScriptStackTrace": ".NET and script stack frames",
    "TargetSite": "the .NET method that threw",
    "Source": "the .NET assembly that threw (on exceptions)",
    "HResult": "the .NET exception's HRESULT",
    "Data": "the .NET exception's Data dictionary type",
    "InnerException": ".NET exception chaining inside pwsh",
    "SerializedRemoteException": "the .NET exception object graph",
    "SerializedRemoteInvocationInfo": "the .NET invocation object graph",
    "MyCommand": "pwsh's CommandInfo object graph (its name is compared through InvocationInfo_* / CommandInfo_*)",
    "BoundParameters": "a .NET dictionary of the binder's state",
    "UnboundArguments": "a .NET list of the binder's state",
    "PipelineIterationInfo": "per-command iteration counters",
    "InvocationInfo_PipelineIterationInfo": "per-command iteration counters",
    "DisplayScriptPosition": "an internal script extent",
}


def snapshot(result: Result) -> dict[str, Any]:
    """What a user sees of ``result``: every stream, the outcome, and the exception reading it raised."""
    failure = None
    try:
        result.wait()
    except PswrapError as exc:
        failure = type(exc).__name__
    return {
        "output": list(result.output),
        "records": list(result.records),
        "state": result.state,
        "exit_code": result.exit_code,
        "error": result.error,
        "failure": failure,
    }


def differences(expected: Any, actual: Any, path: str = "result") -> list[str]:
    """Every place where ``actual`` (the stand-in's) differs from ``expected`` (real pwsh's)."""
    found: list[str] = []
    _walk(expected, actual, path, found, set())
    return found


def _walk(expected: Any, actual: Any, path: str, found: list[str], active: set[tuple[int, int]]) -> None:
    if type(expected) is not type(actual):
        found.append(
            f"{path}: real pwsh gave {type(expected).__name__} {_short(expected)}, "
            f"the stand-in {type(actual).__name__} {_short(actual)}"
        )
        return
    key = (id(expected), id(actual))
    if key in active:  # an object met again inside itself
        return
    active.add(key)
    try:
        if isinstance(expected, Record):
            _record(expected, actual, path, found, active)
        elif isinstance(expected, PSObject):
            _psobject(expected, actual, path, found, active)
        elif isinstance(expected, Mapping):
            _mapping(expected, actual, path, found, active)
        elif isinstance(expected, (list, tuple)):
            if len(expected) != len(actual):
                found.append(f"{path}: real pwsh gave {len(expected)} items, the stand-in {len(actual)}")
            for index, (a, b) in enumerate(zip(expected, actual, strict=False)):
                _walk(a, b, f"{path}[{index}]", found, active)
        elif isinstance(expected, float):
            if not (expected == actual or (math.isnan(expected) and math.isnan(actual))):
                found.append(f"{path}: real pwsh gave {expected!r}, the stand-in {actual!r}")
        elif expected != actual:
            found.append(f"{path}: real pwsh gave {_short(expected)}, the stand-in {_short(actual)}")
    finally:
        active.discard(key)


def _record(
    expected: Record, actual: Record, path: str, found: list[str], active: set[tuple[int, int]]
) -> None:
    for field in dataclasses.fields(expected):
        if field.name in IGNORED:
            continue
        _walk(
            getattr(expected, field.name), getattr(actual, field.name), f"{path}.{field.name}", found, active
        )


def _psobject(
    expected: PSObject, actual: PSObject, path: str, found: list[str], active: set[tuple[int, int]]
) -> None:
    if expected.type_names != actual.type_names:
        found.append(
            f"{path}: real pwsh's type names {list(expected.type_names)[:3]}, the stand-in's "
            f"{list(actual.type_names)[:3]}"
        )
    if expected.has_value or actual.has_value:
        _walk(expected.value if expected.has_value else None, actual.value if actual.has_value else None,
              f"{path}.<value>", found, active)  # fmt: skip
    for kind in ("adapted", "extended"):
        _members(getattr(expected, kind), getattr(actual, kind), f"{path}", kind, found, active)


def _members(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    path: str,
    kind: str,
    found: list[str],
    active: set[tuple[int, int]],
) -> None:
    wanted = [name for name in expected if name not in IGNORED]
    got = [name for name in actual if name not in IGNORED]
    missing = [name for name in wanted if name not in actual]
    extra = [name for name in got if name not in expected]
    if missing or extra:
        found.append(f"{path}: {kind} members only real pwsh has {missing}, only the stand-in has {extra}")
    for name in wanted:
        if name in actual:
            _walk(expected[name], actual[name], f"{path}.{name}", found, active)


def _mapping(
    expected: Mapping[Any, Any],
    actual: Mapping[Any, Any],
    path: str,
    found: list[str],
    active: set[tuple[int, int]],
) -> None:
    if set(expected) != set(actual):  # a Hashtable's order is .NET's string hashing: not compared
        found.append(f"{path}: real pwsh's keys {list(expected)}, the stand-in's {list(actual)}")
    for name in expected:
        if name in actual and name not in IGNORED:
            where = f"{path}.{name}" if isinstance(name, str) and name.isidentifier() else f"{path}[{name!r}]"
            _walk(expected[name], actual[name], where, found, active)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
