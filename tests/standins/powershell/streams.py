"""PowerShell's six output streams as the stand-in routes them, and the records that travel on them.

A :class:`Streams` is where an invocation's objects and records end up: a PSRP pipeline's messages in
server mode, the CLIXML documents on stdout/stderr in one-shot mode. :class:`Redirected` implements
``*>&1`` / ``2>&1``: a merged record goes to the command's output as it is. Windows PowerShell 5.1 marks
it with a ``writeErrorStream`` / ``WriteWarningStream`` / … note; real pwsh 7.6 does not (checked: no
such member in its CLIXML or on the object), so neither does this stand-in. :func:`to_wire` turns a
record carrying instance notes into its remoting form with those notes kept.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import threading
from collections.abc import Callable
from typing import Any, Protocol

from psrpcore import types as ps

MERGEABLE = ("error", "warning", "verbose", "debug", "information")


class Streams(Protocol):
    """Where an invocation's output and records go when nothing redirects them.

    ``information_pipe``: True where PowerShell has an information pipe (a PSRP pipeline, a ``6>&1``
    merge): Write-Information records then flow even under SilentlyContinue (only Ignore drops them);
    a console host shows them only under Continue.
    """

    def output(self, value: Any) -> None: ...

    def error(self, record: ps.ErrorRecord) -> None: ...

    def warning(self, record: ps.WarningRecord) -> None: ...

    def verbose(self, record: ps.VerboseRecord) -> None: ...

    def debug(self, record: ps.DebugRecord) -> None: ...

    def information(self, record: ps.InformationRecord) -> None: ...

    def progress(self, record: ps.ProgressRecord, source_id: int) -> None: ...


class Redirected:
    """The streams of one command whose ``merged`` streams are redirected into its output."""

    def __init__(self, base: Streams, output: Callable[[Any], None], merged: set[str]) -> None:
        self._base = base
        self._output = output
        self._merged = merged

    @property
    def information_pipe(self) -> bool:
        """Whether information records are captured in a pipe (then even SilentlyContinue keeps them)."""
        return "information" in self._merged or bool(getattr(self._base, "information_pipe", False))

    def output(self, value: Any) -> None:
        self._output(value)

    def _route(self, stream: str, record: Any) -> None:
        if stream in self._merged:
            self._output(record)
        else:
            getattr(self._base, stream)(record)

    def error(self, record: ps.ErrorRecord) -> None:
        self._route("error", record)

    def warning(self, record: ps.WarningRecord) -> None:
        self._route("warning", record)

    def verbose(self, record: ps.VerboseRecord) -> None:
        self._route("verbose", record)

    def debug(self, record: ps.DebugRecord) -> None:
        self._route("debug", record)

    def information(self, record: ps.InformationRecord) -> None:
        self._route("information", record)

    def progress(self, record: ps.ProgressRecord, source_id: int) -> None:
        self._base.progress(record, source_id)  # progress cannot be redirected


class Collector:
    """Streams that keep everything in lists (a console host's top level unless ``information_pipe``)."""

    def __init__(self, information_pipe: bool = False) -> None:
        self.information_pipe = information_pipe
        self.items: dict[str, list[Any]] = {name: [] for name in ("output", *MERGEABLE, "progress")}

    def output(self, value: Any) -> None:
        self.items["output"].append(value)

    def error(self, record: ps.ErrorRecord) -> None:
        self.items["error"].append(record)

    def warning(self, record: ps.WarningRecord) -> None:
        self.items["warning"].append(record)

    def verbose(self, record: ps.VerboseRecord) -> None:
        self.items["verbose"].append(record)

    def debug(self, record: ps.DebugRecord) -> None:
        self.items["debug"].append(record)

    def information(self, record: ps.InformationRecord) -> None:
        self.items["information"].append(record)

    def progress(self, record: ps.ProgressRecord, source_id: int) -> None:
        self.items["progress"].append((source_id, record))


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


def to_wire(value: Any) -> Any:
    """The object to serialize for ``value``: records become their remoting form, instance notes kept.

    psrpcore serializes an ErrorRecord or InformationalRecord through its ``ToPSObjectForRemoting`` and
    drops notes added to the instance; PowerShell keeps them (first in <MS>).
    """
    if isinstance(value, (ps.ErrorRecord, ps.InformationalRecord)) and value.PSObject.extended_properties:
        remoting = type(value).ToPSObjectForRemoting(value)
        remoting.PSObject.type_names = list(value.PSObject.type_names)
        remoting.PSObject.to_string = value.PSObject.to_string or _record_text(value)
        notes = [ps.PSNoteProperty(p.name, p.get_value(value)) for p in value.PSObject.extended_properties]
        remoting.PSObject.extended_properties[:0] = notes
        return remoting
    return value


def _record_text(record: Any) -> str:
    if isinstance(record, ps.ErrorRecord):
        from tests.standins.powershell.errors import message_of

        return message_of(record)
    return str(getattr(record, "Message", "") or "")


def informational(kind: type[ps.InformationalRecord], message: str) -> Any:
    record = kind(Message=message)
    record.PSObject.to_string = message
    return record


def information_record(message_data: Any, source: str, tags: list[str] | None = None) -> ps.InformationRecord:
    """An InformationRecord as Write-Information / Write-Host create it."""
    record = ps.InformationRecord(
        MessageData=message_data,
        Source=source,
        TimeGenerated=local_now(),
        Tags=ps.PSList(tags or []),
        User=_user(),
        Computer=platform.node(),
        ProcessId=ps.PSUInt(os.getpid()),
        NativeThreadId=ps.PSUInt(threading.get_native_id() & 0xFFFFFFFF),
        ManagedThreadId=ps.PSUInt(threading.get_ident() % 1000),
    )
    record.PSObject.to_string = _to_text(message_data)
    return record


def host_information_message(text: str, no_new_line: bool, foreground: Any, background: Any) -> Any:
    """The ``HostInformationMessage`` Write-Host puts in its InformationRecord."""
    message = ps.PSObject()
    message.PSObject.type_names = ["System.Management.Automation.HostInformationMessage", "System.Object"]
    message.PSObject.to_string = text
    for name, value in (
        ("Message", text),
        ("NoNewLine", no_new_line),
        ("ForegroundColor", foreground),
        ("BackgroundColor", background),
    ):
        message.PSObject.adapted_properties.append(ps.PSNoteProperty(name, value))
    return message


def _to_text(value: Any) -> str:
    from tests.standins.powershell.language.values import to_string

    return to_string(value)


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name in some containers
        return "Unknown"


def local_now() -> ps.PSDateTime:
    """Now as a local DateTime with its offset (how .NET serializes DateTime.Now)."""
    now = dt.datetime.now().astimezone()
    return ps.PSDateTime(
        now.year, now.month, now.day, now.hour, now.minute, now.second, now.microsecond, tzinfo=now.tzinfo
    )
