"""Runspaces, variable scopes and the host, as the interpreter sees them.

Each :class:`Runspace` has its own state, as in real PowerShell: global variables (including the
preference variables), imported modules, and :attr:`Runspace.state` - a dictionary where command
extensions keep per-runspace data (a later issue keeps the Exchange connection there). A pipeline runs
on one free runspace of its pool; one-shot mode has a single runspace.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from psrpcore import types as ps

from tests.standins.powershell.errors import PSError, error_record

PREFERENCE_DEFAULTS = {
    "ErrorActionPreference": "Continue",
    "WarningPreference": "Continue",
    "VerbosePreference": "SilentlyContinue",
    "DebugPreference": "SilentlyContinue",
    "InformationPreference": "SilentlyContinue",
    "ProgressPreference": "Continue",
    "ConfirmPreference": "High",
    "WhatIfPreference": False,
}

_RUNSPACE_IDS = itertools.count(1)


class Scope:
    """One variable scope; lookups walk up to the global scope (PowerShell's dynamic scoping)."""

    def __init__(self, parent: Scope | None = None, name: str = "") -> None:
        self.parent = parent
        self.name = name
        self._variables: dict[str, tuple[str, Any]] = {}

    @property
    def global_scope(self) -> Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def lookup(self, name: str) -> tuple[bool, Any]:
        key = name.casefold()
        scope: Scope | None = self
        while scope is not None:
            if key in scope._variables:
                return True, scope._variables[key][1]
            scope = scope.parent
        return False, None

    def get(self, name: str, default: Any = None) -> Any:
        found, value = self.lookup(name)
        return value if found else default

    def set(self, name: str, value: Any) -> None:
        self._variables[name.casefold()] = (name, value)

    def set_existing_or_local(self, name: str, value: Any) -> None:
        self.set(name, value)

    def names(self) -> list[str]:
        return [name for name, _ in self._variables.values()]


@dataclass
class Runspace:
    """One runspace of a pool (or the single runspace of a one-shot process)."""

    id: int = field(default_factory=lambda: next(_RUNSPACE_IDS))
    globals: Scope = field(default_factory=lambda: Scope(name="global"))
    #: Modules imported in this runspace, by name (extensions record what they import).
    modules: dict[str, Any] = field(default_factory=dict)
    #: Per-runspace state for command extensions, keyed by the extension's own name.
    state: dict[str, Any] = field(default_factory=dict)
    #: Held while a pipeline runs on this runspace.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to a fresh runspace's variables (PSRP ResetRunspaceState)."""
        self.globals = Scope(name="global")
        for name, value in PREFERENCE_DEFAULTS.items():
            self.globals.set(name, value)
        self.globals.set("Error", ps.PSList())


class Host(Protocol):
    """The host a pipeline talks to for prompts and ``exit``."""

    #: Whether prompts (Read-Host, missing mandatory parameters) can be attempted.
    interactive: bool

    def read_line(self, secure: bool = False) -> Any: ...

    def prompt(self, caption: str, message: str, fields: list[ps.FieldDescription]) -> dict[str, Any]: ...

    def set_should_exit(self, code: int) -> None: ...


class NonInteractiveHost:
    """pwsh's console host with ``-NonInteractive``: every prompt fails with PowerShell's error."""

    interactive = False
    #: The console's colours when nothing set them: ``(ConsoleColor)-1``, which one-shot CLIXML (depth 1)
    #: writes as the text ``-1``; Write-Host's message carries them when no colour is given.
    default_color = "-1"

    def __init__(self, on_exit: Callable[[int], None] | None = None) -> None:
        self._on_exit = on_exit

    def _refuse(self) -> PSError:
        record = error_record(
            "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.",
            exception_type="System.Management.Automation.PSInvalidOperationException",
            exception_bases=[
                "System.InvalidOperationException",
                "System.SystemException",
                "System.Exception",
            ],
            error_id="System.Management.Automation.PSInvalidOperationException,Microsoft.PowerShell.Commands"
            ".ReadHostCommand",
            category=ps.ErrorCategory.InvalidOperation,
        )
        return PSError(record)

    def read_line(self, secure: bool = False) -> Any:
        raise self._refuse()

    def prompt(self, caption: str, message: str, fields: list[ps.FieldDescription]) -> dict[str, Any]:
        raise self._refuse()

    def set_should_exit(self, code: int) -> None:
        if self._on_exit is not None:
            self._on_exit(code)


class NoHost:
    """A pipeline created without a host (PSRP HostInfo IsHostNull): prompts fail like PowerShell's."""

    interactive = False

    def _refuse(self) -> PSError:
        record = error_record(
            "A command that prompts the user failed because the host program or the command type does not "
            "support user interaction. The host was attempting to request confirmation with the following "
            "message: ",
            exception_type="System.Management.Automation.Host.HostException",
            exception_bases=[
                "System.Management.Automation.RuntimeException",
                "System.SystemException",
                "System.Exception",
            ],
            error_id="HostFunctionNotImplemented",
            category=ps.ErrorCategory.NotImplemented,
        )
        return PSError(record)

    def read_line(self, secure: bool = False) -> Any:
        raise self._refuse()

    def prompt(self, caption: str, message: str, fields: list[ps.FieldDescription]) -> dict[str, Any]:
        raise self._refuse()

    def set_should_exit(self, code: int) -> None:
        return None
