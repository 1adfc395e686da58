"""The command table: Python functions that play PowerShell cmdlets, with real parameter binding.

Register a command (later issues add ``Import-Module``, ``Connect-ExchangeOnline``, ``Get-Mailbox`` …)::

    from tests.standins.powershell.commands import Parameter, command

    @command("Get-Thing", cmdlet_type="Contoso.GetThingCommand", parameters=[
        Parameter("Identity", position=0, mandatory=True, type="System.String"),
        Parameter("ResultSize", type="System.String"),
        Parameter("Force", switch=True),
    ])
    def get_thing(ctx, Identity, ResultSize, Force):
        things = ctx.state("contoso", dict)            # per-runspace state, created on first use
        if ctx.switches.get("things_missing"):         # a stand-in switch from the test's config
            ctx.throw(ctx.error_record("not found", error_id="NotFound", category=ps.ErrorCategory.ObjectNotFound))
        ctx.write_output(things.get(Identity))

``@command`` registers into :data:`DEFAULT_TABLE`; an extension module listed in the stand-in config's
``extensions`` is imported at start (and its ``register(table)`` called if it defines one). The
handler runs once per pipeline input object when the command is fed by a pipeline, otherwise once.

Binding follows PowerShell: names match case-insensitively by full name, alias or unique prefix;
switches take no value unless written ``-Switch:$false``; positional arguments fill the parameters
with a position in order; ``ValueFromRemainingArguments`` collects the rest; the common parameters
(``-ErrorAction``, ``-WarningAction``, ``-InformationAction``, ``-Verbose``, ``-Debug``,
``-ProgressAction``) are accepted by every command; every failure raises PowerShell's
``ParameterBindingException`` with its real text and error id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from psrpcore import types as ps

from tests.standins.powershell.errors import (
    PipelineStopped,
    PSError,
    StandinUnsupported,
    error_record,
    parameter_binding,
)
from tests.standins.powershell.language import dotnet
from tests.standins.powershell.language import values as v
from tests.standins.powershell.streams import information_record, informational

NO_VALUE = object()


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a command."""

    name: str
    type: str | None = None  # canonical .NET type name the value is converted to (None: as given)
    position: int | None = None
    aliases: tuple[str, ...] = ()
    switch: bool = False
    mandatory: bool = False
    pipeline: bool = False  # ValueFromPipeline
    remaining: bool = False  # ValueFromRemainingArguments
    default: Any = None

    @property
    def type_display(self) -> str:
        if self.switch:
            return "System.Management.Automation.SwitchParameter"
        return self.type or "System.Object"


@dataclass(frozen=True)
class CommonParameter:
    name: str
    aliases: tuple[str, ...]
    switch: bool = False
    supported: bool = True


COMMON_PARAMETERS = (
    CommonParameter("Verbose", ("vb",), switch=True),
    CommonParameter("Debug", ("db",), switch=True),
    CommonParameter("ErrorAction", ("ea",)),
    CommonParameter("WarningAction", ("wa",)),
    CommonParameter("InformationAction", ("infa",)),
    CommonParameter("ProgressAction", ("proga",)),
    CommonParameter("ErrorVariable", ("ev",), supported=False),
    CommonParameter("WarningVariable", ("wv",), supported=False),
    CommonParameter("InformationVariable", ("iv",), supported=False),
    CommonParameter("OutVariable", ("ov",), supported=False),
    CommonParameter("OutBuffer", ("ob",), supported=False),
    CommonParameter("PipelineVariable", ("pv",), supported=False),
)

_COMMON_TO_PREFERENCE = {
    "ErrorAction": "ErrorActionPreference",
    "WarningAction": "WarningPreference",
    "InformationAction": "InformationPreference",
    "ProgressAction": "ProgressPreference",
}


@dataclass
class CommandInfo:
    """A command in the table."""

    name: str
    handler: Callable[..., None]
    parameters: list[Parameter]
    cmdlet_type: str
    aliases: tuple[str, ...] = ()
    module: str = "Microsoft.PowerShell.Utility"


class CommandTable:
    """Commands by name and alias (case-insensitive). Copy :data:`DEFAULT_TABLE` to customise a test."""

    def __init__(self, commands: Iterable[CommandInfo] = ()) -> None:
        self._commands: dict[str, CommandInfo] = {}
        for info in commands:
            self.add(info)

    def add(self, info: CommandInfo) -> None:
        for name in (info.name, *info.aliases):
            self._commands[name.casefold()] = info

    def register(
        self,
        name: str,
        *,
        parameters: list[Parameter] | None = None,
        cmdlet_type: str | None = None,
        aliases: tuple[str, ...] = (),
        module: str = "Microsoft.PowerShell.Utility",
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        """Decorator: register ``handler(ctx, **parameters)`` as the command ``name``."""

        def decorate(handler: Callable[..., None]) -> Callable[..., None]:
            self.add(
                CommandInfo(
                    name=name,
                    handler=handler,
                    parameters=list(parameters or []),
                    cmdlet_type=cmdlet_type
                    or f"Microsoft.PowerShell.Commands.{name.replace('-', '')}Command",
                    aliases=aliases,
                    module=module,
                )
            )
            return handler

        return decorate

    def find(self, name: str) -> CommandInfo | None:
        return self._commands.get(name.casefold())

    def copy(self) -> CommandTable:
        table = CommandTable()
        table._commands = dict(self._commands)
        return table

    def names(self) -> list[str]:
        return sorted({info.name for info in self._commands.values()})


#: Real cmdlets the stand-in does not implement: calling one fails as unsupported, not as "not found".
KNOWN_UNIMPLEMENTED = frozenset(
    name.casefold()
    for name in (
        "ForEach-Object", "Where-Object", "Select-Object", "Sort-Object", "Out-String", "Out-Null", "Out-Default",
        "Out-File", "ConvertTo-Json", "ConvertFrom-Json", "Get-Command", "Get-Module", "Import-Module",
        "Set-Variable", "Get-Variable", "New-Object", "Add-Member", "Invoke-Command", "Invoke-Expression",
        "Get-Item", "Get-ChildItem", "Get-Process", "Test-Path", "Get-Content", "Set-Content",
        "Measure-Object", "Group-Object", "Format-Table", "Format-List", "Select-String", "Get-Credential",
    )
)  # fmt: skip


DEFAULT_TABLE = CommandTable()
command = DEFAULT_TABLE.register


# ----------------------------------------------------------------------------------------------
# Arguments as written at a call site, and binding them to parameters
# ----------------------------------------------------------------------------------------------


@dataclass
class Argument:
    """One element of a command call: ``-Name``, ``-Name:value`` or a positional value."""

    name: str | None = None  # parameter name without the dash; None for a positional value
    value: Any = NO_VALUE
    text: str = ""  # as written (for error messages)
    attached: bool = False  # -Name:value


@dataclass
class Binding:
    """The outcome of binding: parameter values, common parameters, and what went to ``$args``."""

    values: dict[str, Any] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    extra: list[Any] = field(default_factory=list)


def _match(
    name: str, parameters: list[Parameter], advanced: bool, command: str
) -> Parameter | CommonParameter | None:
    folded = name.casefold()
    candidates: list[Parameter | CommonParameter] = [*parameters]
    if advanced:
        candidates.extend(COMMON_PARAMETERS)
    for candidate in candidates:
        if folded == candidate.name.casefold() or folded in (a.casefold() for a in candidate.aliases):
            return candidate
    prefixed = [c for c in candidates if c.name.casefold().startswith(folded)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        options = " ".join(f"-{c.name}" for c in prefixed)
        raise parameter_binding(
            command,
            "AmbiguousParameter",
            f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
            f"Possible matches include: {options}.",
        )
    return None


def bind(
    command: str,
    error_suffix: str,
    parameters: list[Parameter],
    arguments: list[Argument],
    *,
    advanced: bool = True,
) -> Binding:
    """Bind call-site arguments to parameters the way PowerShell does (named, then positional)."""
    binding = Binding()
    positional: list[Argument] = []
    i = 0
    while i < len(arguments):
        argument = arguments[i]
        i += 1
        if argument.name is None:
            positional.append(argument)
            continue
        target = _match(argument.name, parameters, advanced, error_suffix)
        if target is None:
            if not advanced:
                binding.extra.append(f"-{argument.name}")
                if argument.attached:
                    binding.extra.append(argument.value)
                continue
            raise parameter_binding(
                error_suffix,
                "NamedParameterNotFound",
                f"A parameter cannot be found that matches parameter name '{argument.name}'.",
                target=argument.name,
            )
        if isinstance(target, CommonParameter):
            if not target.supported:
                raise StandinUnsupported(f"the common parameter -{target.name}")
            if target.switch:
                value = True if argument.value is NO_VALUE else v.to_bool(argument.value)
            else:
                value, i = _value_for(argument, arguments, i, target.name, "System.Object", error_suffix)
            binding.common[target.name] = value
            continue
        if target.name in binding.values:
            raise parameter_binding(
                error_suffix,
                "ParameterAlreadyBound",
                f"Cannot bind parameter because parameter '{target.name}' is specified more than once. To provide "
                "multiple values to parameters that can accept multiple values, use the array syntax. For example, "
                '"-parameter value1,value2,value3".',
            )
        if target.switch:
            binding.values[target.name] = True if argument.value is NO_VALUE else v.to_bool(argument.value)
            continue
        value, i = _value_for(argument, arguments, i, target.name, target.type_display, error_suffix)
        binding.values[target.name] = convert_argument(target, value, error_suffix)

    ordered = sorted((p for p in parameters if p.position is not None), key=lambda p: p.position or 0)
    remaining = next((p for p in parameters if p.remaining), None)
    leftovers: list[Any] = []
    for argument in positional:
        slot = next(
            (p for p in ordered if p.name not in binding.values and not p.remaining and not p.switch), None
        )
        if slot is None:
            leftovers.append(argument.value)
            continue
        binding.values[slot.name] = convert_argument(slot, argument.value, error_suffix)
    if leftovers:
        if remaining is not None and remaining.name not in binding.values:
            # As pwsh 7.6 binds them: one enumerable argument as it is, anything else collected in a
            # List[object] (so `Write-Output -NoEnumerate 42` writes a list holding 42).
            single = len(leftovers) == 1 and v.is_enumerable(leftovers[0])
            value = leftovers[0] if single else v.ObjectList(leftovers)
            binding.values[remaining.name] = convert_argument(remaining, value, error_suffix)
        elif remaining is not None:
            current = binding.values[remaining.name]
            binding.values[remaining.name] = v.make_array([*v.enumerate_value(current), *leftovers])
        elif not advanced:
            binding.extra.extend(leftovers)
        else:
            raise parameter_binding(
                error_suffix,
                "PositionalParameterNotFound",
                f"A positional parameter cannot be found that accepts argument '{v.to_string(leftovers[0])}'.",
                target=leftovers[0],
            )
    return binding


def _value_for(
    argument: Argument, arguments: list[Argument], i: int, name: str, type_display: str, error_suffix: str
) -> tuple[Any, int]:
    if argument.attached:
        return argument.value, i
    if i < len(arguments) and arguments[i].name is None:
        return arguments[i].value, i + 1
    raise parameter_binding(
        error_suffix,
        "MissingArgument",
        f"Missing an argument for parameter '{name}'. Specify a parameter of type '{type_display}' and try again.",
    )


def convert_argument(parameter: Parameter, value: Any, error_suffix: str) -> Any:
    if parameter.type is None:
        return value
    try:
        return dotnet.convert(dotnet.TypeRef(parameter.type), value)
    except PSError as problem:
        raise parameter_binding(
            error_suffix,
            "ParameterArgumentTransformationError",
            f"Cannot process argument transformation on parameter '{parameter.name}'. {problem}",
            target=value,
        ) from None


def missing_mandatory(parameters: list[Parameter], values: dict[str, Any]) -> list[Parameter]:
    return [p for p in parameters if p.mandatory and p.name not in values]


def missing_mandatory_error(error_suffix: str, missing: list[Parameter]) -> PSError:
    names = " ".join(p.name for p in missing)
    return parameter_binding(
        error_suffix,
        "MissingMandatoryParameter",
        f"Cannot process command because of one or more missing mandatory parameters: {names}.",
    )


def input_not_bound(error_suffix: str, value: Any) -> PSError:
    return parameter_binding(
        error_suffix,
        "InputObjectNotBound",
        "The input object cannot be bound to any parameters for the command either because the command does not "
        "take pipeline input or the input and its properties do not match any of the parameters that take "
        "pipeline input.",
        target=value,
    )


def common_preferences(common: dict[str, Any]) -> dict[str, Any]:
    """Preference variables set by common parameters for one command."""
    preferences: dict[str, Any] = {}
    for name, value in common.items():
        if name in _COMMON_TO_PREFERENCE:
            preferences[_COMMON_TO_PREFERENCE[name]] = dotnet.action_preference(value)
        elif name == "Verbose":
            preferences["VerbosePreference"] = "Continue" if value else "SilentlyContinue"
        elif name == "Debug":
            preferences["DebugPreference"] = "Continue" if value else "SilentlyContinue"
    return preferences


# ----------------------------------------------------------------------------------------------
# What a command handler sees
# ----------------------------------------------------------------------------------------------


class CommandContext:
    """The running command: its output, the streams with preferences applied, the host and the runspace."""

    def __init__(
        self,
        *,
        info: CommandInfo,
        execution: Any,
        streams: Any,
        output: Callable[[Any], None],
        preferences: Callable[[str], Any],
        bound: set[str],
        invocation_info: Any = None,
    ) -> None:
        self.info = info
        self.execution = execution
        self.streams = streams
        self._output = output
        self._preference = preferences
        self.bound = bound
        self.invocation_info = invocation_info

    # --- what the command may use -------------------------------------------------------------

    @property
    def runspace(self) -> Any:
        return self.execution.runspace

    @property
    def host(self) -> Any:
        return self.execution.host

    @property
    def config(self) -> Any:
        return self.execution.config

    @property
    def switches(self) -> dict[str, Any]:
        """Stand-in switches from the test's config (``{"switches": {...}}``)."""
        return dict(getattr(self.execution.config, "switches", {}) or {})

    def state(self, name: str, factory: Callable[[], Any] = dict) -> Any:
        """Per-runspace state for an extension, created with ``factory()`` on first use."""
        store = self.runspace.state
        if name not in store:
            store[name] = factory()
        return store[name]

    def preference(self, name: str) -> Any:
        return self._preference(name)

    def check_stopped(self) -> None:
        if self.execution.stop.is_set():
            raise PipelineStopped()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once when the pipeline is stopped."""
        if self.execution.stop.wait(max(seconds, 0.0)):
            raise PipelineStopped()

    # --- output and records -------------------------------------------------------------------

    def write_output(self, value: Any, *, enumerate_collection: bool = True) -> None:
        self.check_stopped()
        if enumerate_collection and v.is_enumerable(value):
            for item in value:
                self._output(item)
        else:
            self._output(value)

    def error_record(
        self,
        message: str,
        *,
        error_id: str,
        category: ps.ErrorCategory = ps.ErrorCategory.NotSpecified,
        target: Any = None,
        exception_type: str = "System.Management.Automation.RuntimeException",
        exception_bases: list[str] | None = None,
    ) -> ps.ErrorRecord:
        """A record for this command: the error id gets ``,<cmdlet type>`` as PowerShell appends it."""
        return error_record(
            message,
            exception_type=exception_type,
            exception_bases=exception_bases,
            error_id=f"{error_id},{self.info.cmdlet_type}",
            category=category,
            target=target,
            activity=self.info.name,
            invocation_info=self.invocation_info,
        )

    def write_error(self, record: ps.ErrorRecord) -> None:
        """A non-terminating error, handled by ``$ErrorActionPreference`` / ``-ErrorAction``."""
        action = dotnet.action_preference(self.preference("ErrorActionPreference"))
        if action == "Ignore":
            return
        if action in ("Inquire", "Suspend", "Break"):
            raise StandinUnsupported(f"ErrorAction {action}")
        self.execution.stamp(record)
        errors = self.runspace.globals.get("Error")
        if isinstance(errors, list):
            errors.insert(0, record)
        if action == "Stop":
            raise PSError(record, script_terminating=True)
        if action == "SilentlyContinue":
            return
        self.streams.error(record)

    def throw(self, record: ps.ErrorRecord) -> None:
        """A terminating error (ThrowTerminatingError): ends this statement, or the script under Stop."""
        raise PSError(record)

    def write_warning(self, message: str) -> None:
        self._informational("WarningPreference", "warning", ps.WarningRecord, message)

    def write_verbose(self, message: str) -> None:
        self._informational("VerbosePreference", "verbose", ps.VerboseRecord, message)

    def write_debug(self, message: str) -> None:
        self._informational("DebugPreference", "debug", ps.DebugRecord, message)

    def _informational(
        self, preference: str, stream: str, kind: type[ps.InformationalRecord], message: str
    ) -> None:
        self.check_stopped()
        action = dotnet.action_preference(self.preference(preference))
        if action in ("SilentlyContinue", "Ignore"):
            return
        record = informational(kind, message)
        if action == "Stop":
            raise action_stop(preference, message)
        if action not in ("Continue",):
            raise StandinUnsupported(f"{preference} {action}")
        getattr(self.streams, stream)(record)

    def write_information(
        self,
        message_data: Any,
        tags: list[str] | None = None,
        *,
        source: str | None = None,
        always: bool = False,
    ) -> None:
        """An InformationRecord, as MshCommandRuntime.WriteInformation handles it.

        Dropped only under Ignore where an information pipe exists (PSRP, ``*>&1``); on a console host
        shown under Continue; ``always`` is Write-Host's rule (shown unless InformationAction is Ignore).
        """
        self.check_stopped()
        action = dotnet.action_preference(self.preference("InformationPreference"))
        piped = bool(getattr(self.streams, "information_pipe", False))
        if action == "Ignore" or (action == "SilentlyContinue" and not always and not piped):
            return
        record = information_record(message_data, source or self.info.name, tags)
        if action == "Stop":
            raise action_stop("InformationPreference", v.to_string(message_data))
        self.streams.information(record)

    def write_progress(self, record: ps.ProgressRecord) -> None:
        self.check_stopped()
        action = dotnet.action_preference(self.preference("ProgressPreference"))
        if action in ("SilentlyContinue", "Ignore"):
            return
        if action != "Continue":
            raise StandinUnsupported(f"ProgressPreference {action}")
        self.streams.progress(record, self.execution.source_id)


def action_stop(preference: str, message: str) -> PSError:
    record = error_record(
        f'The running command stopped because the preference variable "{preference}" or common parameter is set '
        f"to Stop: {message}",
        exception_type="System.Management.Automation.ActionPreferenceStopException",
        error_id="ActionPreferenceStop",
        category=ps.ErrorCategory.OperationStopped,
    )
    return PSError(record, script_terminating=True)
