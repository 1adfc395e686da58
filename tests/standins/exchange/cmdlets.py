"""The ExchangeOnlineManagement module, played by the pwsh stand-in.

What the real module does that matters to a client, and this enforces:

- ``Import-Module ExchangeOnlineManagement -MinimumVersion 3.1.0`` fails with PowerShell's own
  ModuleNotFound texts when the module is missing or too old (switch ``module``).
- ``Connect-ExchangeOnline -AccessToken … -Organization …`` validates the JWT the identity-provider
  stand-in issued: signature, issuer, audience, expiry, the ``Exchange.ManageAsApp`` role and the
  organization. It fails as the real module does (real-captures.md 1.1-1.6, 1.10): its catch block
  rethrows with ``throw $_.Exception``, so a refused token is a record whose message and
  FullyQualifiedErrorId are ``UnAuthorized``, OperationStopped, no activity, with the psm1's ``throw``
  line over the caller's line in its script stack trace; an unsupported directory role (switch
  ``rbac="unsupported"``) is the real SystemException text after the banner; no Exchange role at all
  (``rbac=False``) connects and then generates no cmdlets, so each is "not recognized". The data
  cmdlets' 401 and throttling texts (marked *modelled* below) are shaped like the module's
  ``|ExceptionType|message`` errors, not copied from a capture.
- The data cmdlets (``Get-Mailbox``…) exist only while connected (the module generates them at
  connect), and fail with 401 once the token has expired: the module never refreshes a token it was
  given. State (connection, mailbox changes) is per runspace, as in PowerShell.
- ``Disconnect-ExchangeOnline`` has ConfirmImpact High: without ``-Confirm:$false`` it would prompt.

Every connect, disconnect, cmdlet call and mutation is appended to the ``journal`` file (JSON lines,
all processes) so tests can count them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
import uuid
from typing import Any

import jwt
from psrpcore import types as ps

from tests.standins import exchange_data as xd
from tests.standins.powershell.commands import CommandContext, CommandTable, Parameter
from tests.standins.powershell.errors import PSError, StandinUnsupported, command_not_found, error_record

MODULE = "ExchangeOnlineManagement"
MODULE_PATH = "/usr/local/share/powershell/Modules/ExchangeOnlineManagement"
MANAGE_AS_APP = "Exchange.ManageAsApp"
REST_EXCEPTION = "Microsoft.Exchange.Management.RestApiClient.RestClientException"
DATA_CMDLETS = ("Get-Mailbox", "Get-Recipient", "Get-AcceptedDomain", "Set-Mailbox")

# Real texts.
NOT_CONNECTED = "You must call the Connect-ExchangeOnline cmdlet before calling any other cmdlets."
MORE_RESULTS = (
    "There are more results available than are currently displayed. To view them, increase the value for "
    "the ResultSize parameter."
)
ROLE_NOT_SUPPORTED = (
    "The role assigned to application {} isn't supported in this scenario. Please check online documentation for "
    "assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication."
)
BANNER = (
    "This V3 EXO PowerShell module contains new REST API backed Exchange Online cmdlets which doesn't require "
    "WinRM for Client-Server communication."
)
# Modelled texts (the module's REST failures, as |ExceptionType|message).
UNAUTHORIZED = f"|{REST_EXCEPTION}|The remote server returned an error: (401) Unauthorized."
THROTTLED = (
    f"|{REST_EXCEPTION}|The remote server returned an error: (429) Too Many Requests. "
    "You have reached the maximum number of concurrent requests per tenant. Please wait and retry."
)


@dataclasses.dataclass
class ExchangeSwitches:
    """The ``exchange`` switch of the stand-in config."""

    tenant_id: str
    organization: str
    public_key_pem: str
    audience: str = "https://outlook.office365.com"
    module: str = "installed"  # installed | missing | old
    module_version: str = "3.7.2"
    old_version: str = "3.0.0"
    mailboxes: int = 12  # how many of exchange_data's mailboxes the tenant has
    rbac: bool | str = True  # the app's Exchange role: True, False (none at all) or "unsupported"
    clock_skew: float = 0.0  # the service treats tokens as expired this many seconds early
    journal: str | None = None
    throttle_after: int | None = None  # cmdlet calls that succeed before throttling starts
    throttle_times: int = 0
    tenants: dict[str, str] = dataclasses.field(default_factory=dict)  # more tenants: id -> organization

    def organizations(self) -> dict[str, str]:
        """Every tenant the service knows: id -> organization (the main one first)."""
        return {self.tenant_id: self.organization, **self.tenants}

    @classmethod
    def of(cls, ctx: CommandContext) -> ExchangeSwitches:
        raw = ctx.switches.get("exchange")
        if not raw:
            raise StandinUnsupported("Exchange cmdlets without the 'exchange' switch in the stand-in config")
        return cls(**raw)


@dataclasses.dataclass
class ExchangeState:
    """One runspace's view: module loaded, connection, the mailboxes as this runspace changed them."""

    module_loaded: bool = False
    connected: bool = False
    expires: float = 0.0
    organization: str = ""
    connection_id: str = ""
    store: xd.MailboxStore | None = None
    calls: int = 0
    generated: bool = False


def _state(ctx: CommandContext) -> ExchangeState:
    state: ExchangeState = ctx.state("exchange", ExchangeState)
    return state


def _journal(switches: ExchangeSwitches, event: str, **fields: Any) -> None:
    if not switches.journal:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "time": time.time(), **fields}) + "\n"
    fd = os.open(switches.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _rethrown(ctx: CommandContext, message: str, exception_type: str, bases: list[str]) -> PSError:
    """A connect failure as the real module's catch block rethrows it (``throw $_.Exception``):
    message and FullyQualifiedErrorId the exception's text, OperationStopped, no activity, and the
    position of the ``throw`` in the module's psm1 above the calling script blocks' lines."""
    record = error_record(
        message,
        error_id=message,
        category=ps.ErrorCategory.OperationStopped,
        exception_type=exception_type,
        exception_bases=[*bases, "System.Exception", "System.Object"],
    )
    frames = [f"at Connect-ExchangeOnline<Process>, {MODULE_PATH}/3.7.2/netCore/{MODULE}.psm1: line 754"]
    frames.extend(f"at <ScriptBlock>, <No file>: line {line}" for line in reversed(ctx.execution.lines))
    record.ScriptStackTrace = "\n".join(frames)
    return PSError(record, script_terminating=True)


def _rest_error(ctx: CommandContext, message: str, error_id: str, category: ps.ErrorCategory) -> PSError:
    return PSError(
        ctx.error_record(
            message,
            error_id=error_id,
            category=category,
            exception_type=REST_EXCEPTION,
            exception_bases=["System.Exception", "System.Object"],
        )
    )


MAILBOX_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.ADPresentationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
    "Deserialized.System.Object",
]
RECIPIENT_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.ReducedRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
    "Deserialized.System.Object",
]
ACCEPTED_DOMAIN_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ADConfigurationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.System.Object",
]
_enums: dict[str, Any] = {}


def _psobject(type_names: list[str], to_string: str, properties: dict[str, Any]) -> ps.PSObject:
    obj = ps.PSObject()
    obj.PSObject.type_names = list(type_names)
    obj.PSObject.to_string = to_string
    for name, value in properties.items():
        obj.PSObject.adapted_properties.append(ps.PSNoteProperty(name, value))
    return obj


def _enum(field: xd.Field, name: str) -> Any:
    """A real .NET enum value (type names, ToString, number) as PowerShell serializes one."""
    if not field.enum_values:
        return name
    cls = _enums.get(field.dotnet_type)
    if cls is None:
        cls = ps.PSType([field.dotnet_type])(
            ps.PSEnumBase(field.dotnet_type.rsplit(".", 1)[-1], dict(field.enum_values))
        )
        _enums[field.dotnet_type] = cls
    return cls[name]


def _render(field: xd.Field, value: Any) -> Any:
    """One property as the real module's objects carry it over PSRP (see exchange_data's kinds)."""
    if value is None:
        return None
    kind = field.kind
    if kind == "enum":
        return _enum(field, value)
    if kind == "quota":
        return _psobject(
            [
                f"Deserialized.{field.dotnet_type}",
                "Deserialized.System.ValueType",
                "Deserialized.System.Object",
            ],
            value,
            {"IsUnlimited": value == "Unlimited"},
        )
    if kind == "identity":
        type_name = field.dotnet_type
        return _psobject(
            [f"Deserialized.{type_name}", "Deserialized.System.Object"], value, {"Name": value.split("/")[-1]}
        )
    if kind == "timespan":
        ticks = value.ticks
        return ps.PSDuration(microseconds=ticks // 10, nanoseconds=(ticks % 10) * 100)
    if kind == "datetime":
        return ps.PSDateTime(value, nanosecond=getattr(value, "nanosecond", 0))
    if kind == "strings":
        return ps.PSList(value)
    if kind == "int":
        return ps.PSInt(value)
    return value


def _object(
    fields: tuple[xd.Field, ...], values: dict[str, Any], type_names: list[str], to_string: str
) -> ps.PSObject:
    return _psobject(type_names, to_string, {f.name: _render(f, values[f.name]) for f in fields})


# --------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------


_GET_PARAMETERS = [
    Parameter("Identity", position=0, pipeline=True, type="System.String"),
    Parameter("ResultSize", type="System.String"),
    Parameter("RecipientTypeDetails", type="System.String[]"),
    Parameter("Filter", type="System.String"),
]
_SETTABLE_TYPES: dict[str, str | None] = {
    "string": "System.String",
    "bool": "System.Boolean",
    "strings": None,  # a list, or @{Add=…; Remove=…}
    "timespan": "System.TimeSpan",
    "quota": "System.String",
}


def register(table: CommandTable) -> None:
    """Add the module's cmdlets to the stand-in's command table."""
    table.register(
        "Import-Module",
        cmdlet_type="Microsoft.PowerShell.Commands.ImportModuleCommand",
        module="Microsoft.PowerShell.Core",
        parameters=[
            Parameter("Name", position=0, mandatory=True, type="System.String"),
            Parameter("MinimumVersion", type="System.Version"),
            Parameter("RequiredVersion", type="System.Version"),
            Parameter("Force", switch=True),
            Parameter("PassThru", switch=True),
        ],
    )(import_module)
    table.register(
        "Get-Module",
        cmdlet_type="Microsoft.PowerShell.Commands.GetModuleCommand",
        module="Microsoft.PowerShell.Core",
        parameters=[
            Parameter("Name", position=0, type="System.String"),
            Parameter("ListAvailable", switch=True),
        ],
    )(get_module)
    table.register(
        "Connect-ExchangeOnline",
        cmdlet_type="Microsoft.Exchange.Management.ExoPowershellSnapin.ConnectExchangeOnline",
        module=MODULE,
        parameters=[
            Parameter("AccessToken", type="System.String"),
            Parameter("Organization", type="System.String"),
            Parameter("ShowBanner", switch=True),
            Parameter("ExchangeEnvironmentName", type="System.String"),
            Parameter("CommandName", type="System.String[]"),
            Parameter("SkipLoadingFormatData", switch=True),
            Parameter("PageSize", type="System.UInt32"),
        ],
    )(connect)
    table.register(
        "Disconnect-ExchangeOnline",
        cmdlet_type="Microsoft.Exchange.Management.ExoPowershellSnapin.DisconnectExchangeOnline",
        module=MODULE,
        parameters=[Parameter("Confirm", switch=True)],
    )(disconnect)
    table.register(
        "Get-ConnectionInformation",
        cmdlet_type="Microsoft.Exchange.Management.ExoPowershellSnapin.GetConnectionInformation",
        module=MODULE,
    )(connection_information)
    table.register(
        "Get-Mailbox",
        cmdlet_type="Microsoft.Exchange.Management.RecipientTasks.GetMailbox",
        module="tmpEXO",
        parameters=_GET_PARAMETERS,
    )(get_mailbox)
    table.register(
        "Get-Recipient",
        cmdlet_type="Microsoft.Exchange.Management.RecipientTasks.GetRecipient",
        module="tmpEXO",
        parameters=_GET_PARAMETERS,
    )(get_recipient)
    table.register(
        "Get-AcceptedDomain",
        cmdlet_type="Microsoft.Exchange.Management.SystemConfigurationTasks.GetAcceptedDomain",
        module="tmpEXO",
    )(get_accepted_domain)
    table.register(
        "Set-Mailbox",
        cmdlet_type="Microsoft.Exchange.Management.RecipientTasks.SetMailbox",
        module="tmpEXO",
        parameters=[
            Parameter("Identity", position=0, mandatory=True, pipeline=True, type="System.String"),
            Parameter("Confirm", switch=True),
            *(Parameter(name, type=_SETTABLE_TYPES[kind]) for name, kind in xd.SETTABLE.items()),
        ],
    )(set_mailbox)


def import_module(
    ctx: CommandContext,
    Name: str,
    MinimumVersion: Any,
    RequiredVersion: Any,
    Force: bool,
    PassThru: bool,
) -> None:
    if Name.casefold() != MODULE.casefold():
        raise StandinUnsupported(f"Import-Module {Name} (only {MODULE} is known)")
    switches = ExchangeSwitches.of(ctx)
    installed = None if switches.module == "missing" else (
        switches.old_version if switches.module == "old" else switches.module_version
    )  # fmt: skip
    wanted = MinimumVersion or RequiredVersion
    if installed is None or (wanted is not None and _version(installed) < _version(str(wanted))):
        if wanted is None:
            message = f"The specified module '{Name}' was not loaded because no valid module file was found in any module directory."
            error_id = "Modules_ModuleNotFound"
        else:
            message = (
                f"The specified module '{Name}' with version '{wanted}' was not loaded because no valid module "
                "file was found in any module directory."
            )
            error_id = "Modules_ModuleWithVersionNotFound"
        ctx.write_error(
            ctx.error_record(
                message,
                error_id=error_id,
                category=ps.ErrorCategory.ResourceUnavailable,
                target=Name,
                exception_type="System.IO.FileNotFoundException",
                exception_bases=[
                    "System.IO.IOException",
                    "System.SystemException",
                    "System.Exception",
                    "System.Object",
                ],
            )
        )
        return
    _state(ctx).module_loaded = True
    if PassThru:
        ctx.write_output(_module_info(installed))


def get_module(ctx: CommandContext, Name: str | None, ListAvailable: bool) -> None:
    if Name is not None and Name.casefold() != MODULE.casefold():
        return
    switches = ExchangeSwitches.of(ctx)
    if ListAvailable:
        if switches.module == "missing":
            return
        ctx.write_output(
            _module_info(switches.old_version if switches.module == "old" else switches.module_version)
        )
    elif _state(ctx).module_loaded:
        ctx.write_output(_module_info(switches.module_version))


def _module_info(version: str) -> ps.PSObject:
    return _psobject(
        ["System.Management.Automation.PSModuleInfo", "System.Object"],
        MODULE,
        {
            "Name": MODULE,
            "Version": ps.PSVersion(version),
            "ModuleType": "Script",
            "ModuleBase": f"{MODULE_PATH}/{version}",
            "Path": f"{MODULE_PATH}/{version}/{MODULE}.psd1",
        },
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


def connect(
    ctx: CommandContext,
    AccessToken: str | None,
    Organization: str | None,
    ShowBanner: bool,
    ExchangeEnvironmentName: str | None,
    CommandName: Any,
    SkipLoadingFormatData: bool,
    PageSize: Any,
) -> None:
    switches = ExchangeSwitches.of(ctx)
    state = _state(ctx)
    if not state.module_loaded:  # autoloading: the module loads on first use of its commands
        state.module_loaded = switches.module != "missing"
    if not AccessToken:
        raise StandinUnsupported(
            "Connect-ExchangeOnline without -AccessToken (only app-only tokens are played)"
        )
    if not Organization:
        ctx.throw(
            ctx.error_record(
                "AccessToken requires Organization, DelegatedOrganization or UserPrincipalName to be specified.",
                error_id="AccessTokenRequiresOrganization",
                category=ps.ErrorCategory.InvalidArgument,
                exception_type="System.ArgumentException",
            )
        )
    problem, claims = _check_token(switches, AccessToken)
    tenant_id = claims.get("tid", switches.tenant_id)
    organization = switches.organizations().get(tenant_id, switches.organization)
    organization_ok = Organization.casefold() in (organization.casefold(), str(tenant_id).casefold())
    if problem is None and not organization_ok:
        problem = "organization"
    if problem is None and switches.rbac == "unsupported":
        problem = "unsupported role"
    _journal(switches, "connect", ok=problem is None, problem=problem, organization=Organization)
    if problem == "unsupported role":
        if ShowBanner:
            ctx.write_information(BANNER)
        raise _rethrown(ctx, ROLE_NOT_SUPPORTED.format(claims.get("appid")), "System.SystemException", [])
    if problem is not None:
        raise _rethrown(ctx, "UnAuthorized", "System.UnauthorizedAccessException", ["System.SystemException"])
    state.connected = True
    state.generated = switches.rbac is True  # no Exchange role: the module generates no cmdlets
    state.expires = float(claims["exp"])
    state.organization = Organization
    state.connection_id = str(uuid.uuid4())
    if state.store is None:
        state.store = xd.MailboxStore(switches.mailboxes, organization)
    if ShowBanner:
        ctx.write_information(BANNER)


def _check_token(switches: ExchangeSwitches, token: str) -> tuple[str | None, dict[str, Any]]:
    """What is wrong with the token (``None``: nothing) and its claims."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "signature", {}
    tenant_id = unverified.get("tid") if unverified.get("tid") in switches.tenants else switches.tenant_id
    try:
        claims = jwt.decode(
            token,
            switches.public_key_pem,
            algorithms=["RS256"],
            audience=switches.audience,
            issuer=f"https://sts.windows.net/{tenant_id}/",
            options={"require": ["exp", "tid", "aud"], "verify_exp": False},
        )
    except jwt.InvalidAudienceError:
        return "audience", {}
    except jwt.PyJWTError:
        return "signature", {}
    if float(claims["exp"]) - switches.clock_skew <= time.time():
        return "expired", claims
    if MANAGE_AS_APP not in (claims.get("roles") or []):
        return "role", claims
    if claims.get("tid") != tenant_id:
        return "tenant", claims
    return None, claims


def disconnect(ctx: CommandContext, Confirm: bool) -> None:
    switches = ExchangeSwitches.of(ctx)
    if "Confirm" not in ctx.bound or Confirm:
        raise StandinUnsupported(
            "Disconnect-ExchangeOnline without -Confirm:$false (ConfirmImpact High: it would ask for confirmation)"
        )
    state = _state(ctx)
    _journal(switches, "disconnect", was_connected=state.connected)
    state.connected = False


def connection_information(ctx: CommandContext) -> None:
    state = _state(ctx)
    if not state.connected:
        return
    ctx.write_output(
        _psobject(
            ["Microsoft.Exchange.Management.ExoPowershellSnapin.ConnectionInformation", "System.Object"],
            "Microsoft.Exchange.Management.ExoPowershellSnapin.ConnectionInformation",
            {
                "ConnectionId": state.connection_id,
                "State": "Connected",
                "Organization": state.organization,
                "TokenExpiryTimeUTC": dt.datetime.fromtimestamp(state.expires, tz=dt.timezone.utc),
                "ConnectionUri": "https://outlook.office365.com",
                "AppId": None,
            },
        )
    )


def _data_cmdlet(ctx: CommandContext, name: str) -> tuple[ExchangeSwitches, ExchangeState]:
    """The checks every generated (tmpEXO) cmdlet makes before it calls the service."""
    switches = ExchangeSwitches.of(ctx)
    state = _state(ctx)
    if not state.connected or not state.generated:
        raise command_not_found(name)  # the module generates these cmdlets when it connects
    state.calls += 1
    _journal(switches, "cmdlet", name=name)
    if state.expires - switches.clock_skew <= time.time():
        raise _rest_error(ctx, UNAUTHORIZED, "UnAuthorized", ps.ErrorCategory.AuthenticationError)
    if switches.throttle_after is not None and (
        switches.throttle_after < state.calls <= switches.throttle_after + switches.throttle_times
    ):
        raise _rest_error(ctx, THROTTLED, "TooManyRequests", ps.ErrorCategory.LimitsExceeded)
    return switches, state


def _result_size(text: str | None) -> int | None:
    if text is None:
        return 1000
    if str(text).casefold() == "unlimited":
        return None
    return int(text)


def _not_found(ctx: CommandContext, identity: str) -> PSError:
    return PSError(
        ctx.error_record(
            f"The operation couldn't be performed because object '{identity}' couldn't be found on "
            "'NAMPR01A001.PROD.OUTLOOK.COM'.",
            error_id="ManagementObjectNotFoundException",
            category=ps.ErrorCategory.NotSpecified,
            target=identity,
            exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        )
    )


def _select(
    ctx: CommandContext, state: ExchangeState, identity: str | None, kinds: Any, opath: str | None
) -> list[int]:
    store = state.store
    assert store is not None
    if identity is not None:
        found = store.find(identity)
        if not found:
            raise _not_found(ctx, identity)
        return found
    try:
        indexes = list(store.indexes(opath))
    except xd.FilterError as problem:
        raise PSError(
            ctx.error_record(
                str(problem),
                error_id="InvalidFilter",
                category=ps.ErrorCategory.InvalidArgument,
                exception_type="Microsoft.Exchange.Management.Tasks.TaskArgumentException",
            )
        ) from None
    if kinds:
        wanted = {str(k).casefold() for k in (kinds if isinstance(kinds, list) else [kinds])}
        indexes = [i for i in indexes if xd.recipient_type_details(i).casefold() in wanted]
    return indexes


def _emit(ctx: CommandContext, rows: list[ps.PSObject], limit: int | None) -> None:
    for row in rows if limit is None else rows[:limit]:
        ctx.write_output(row)
    if limit is not None and len(rows) > limit:
        ctx.write_warning(MORE_RESULTS)


def get_mailbox(
    ctx: CommandContext,
    Identity: str | None,
    ResultSize: str | None,
    RecipientTypeDetails: Any,
    Filter: str | None,
) -> None:
    _, state = _data_cmdlet(ctx, "Get-Mailbox")
    assert state.store is not None
    limit = _result_size(ResultSize)
    indexes = _select(ctx, state, Identity, RecipientTypeDetails, Filter)
    shown = indexes if limit is None else indexes[: limit + 1]  # one more tells whether to warn
    rows = [_object(xd.MAILBOX_FIELDS, state.store.values(i), MAILBOX_TYPES, xd.alias(i)) for i in shown]
    _emit(ctx, rows, limit)


def get_recipient(
    ctx: CommandContext,
    Identity: str | None,
    ResultSize: str | None,
    RecipientTypeDetails: Any,
    Filter: str | None,
) -> None:
    _, state = _data_cmdlet(ctx, "Get-Recipient")
    assert state.store is not None
    limit = _result_size(ResultSize)
    indexes = _select(ctx, state, Identity, RecipientTypeDetails, Filter)
    shown = indexes if limit is None else indexes[: limit + 1]
    rows = [
        _object(xd.RECIPIENT_FIELDS, state.store.recipient_values(i), RECIPIENT_TYPES, xd.alias(i))
        for i in shown
    ]
    _emit(ctx, rows, limit)


def get_accepted_domain(ctx: CommandContext) -> None:
    switches, _ = _data_cmdlet(ctx, "Get-AcceptedDomain")
    for domain in xd.accepted_domains(switches.organization):
        ctx.write_output(_object(xd.ACCEPTED_DOMAIN_FIELDS, domain, ACCEPTED_DOMAIN_TYPES, domain["Name"]))


def set_mailbox(ctx: CommandContext, Identity: str, Confirm: bool, **changes: Any) -> None:
    switches, state = _data_cmdlet(ctx, "Set-Mailbox")
    assert state.store is not None
    found = state.store.find(Identity)
    if not found:
        raise _not_found(ctx, Identity)
    index = found[0]
    current = state.store.values(index)
    applied: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in ctx.bound:
            continue
        kind = xd.SETTABLE[name]
        if kind == "strings":
            if isinstance(value, dict):  # @{Add=…; Remove=…}
                lowered = {k.casefold(): v for k, v in value.items()}
                remove = {str(v).casefold() for v in _as_list(lowered.get("remove"))}
                items = [v for v in current[name] if v.casefold() not in remove]
                items += [
                    str(v)
                    for v in _as_list(lowered.get("add"))
                    if str(v).casefold() not in {i.casefold() for i in items}
                ]
                value = items
            else:
                value = [str(v) for v in _as_list(value)]
        elif kind == "timespan" and not hasattr(value, "ticks"):
            from pswrap.objects import PSTimeSpan

            value = PSTimeSpan(days=value.days, seconds=value.seconds, microseconds=value.microseconds)
        applied[name] = value
    changed = state.store.set(index, applied)
    if not changed:
        ctx.write_warning(
            f"The command completed successfully but no settings of '{current['Identity']}' have been modified."
        )
    _journal(switches, "mutation", name="Set-Mailbox", identity=Identity, changes=sorted(applied))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
