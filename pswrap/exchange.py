"""``pswrap.ExchangeOnline``: Exchange Online cmdlets from Python, connected once and kept connected.

::

    with ExchangeOnline.from_env() as exo:                       # PSWRAP_* variables (or a profile)
        for mbx in exo.invoke("Get-Mailbox", ResultSize="Unlimited"):
            print(mbx.PrimarySmtpAddress, mbx["ProhibitSendQuota"])
        exo.invoke("Set-Mailbox", Identity="bob", HiddenFromAddressListsEnabled=True).wait()

On the first call it gets an app-only token and runs ``Connect-ExchangeOnline -AccessToken
$AccessToken -Organization $Organization`` with both **bound as parameters** (the
``exchange-connect`` template), then keeps the PowerShell session warm. The module never refreshes a
token it was given, so before a call would start with a token inside the refresh margin, pswrap gets
a new one and connects again — between calls, never during one. A call that fails because Exchange
rejected the token anyway (a 401) is run again after reconnecting only when it is a read
(:data:`pswrap.verbs.READ_VERBS`); throttled reads are retried with backoff. Nothing else is run
twice, and the error then says why.

Transports: ``local`` (a persistent ``pwsh -s``, the default), ``oneshot`` (one ``pwsh`` per call,
which connects, runs the cmdlet and disconnects), and — where installed — ``winrm`` and ``rest``.
PowerShell keeps module state per runspace, so a PowerShell session here has one runspace.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from pswrap.auth import AccessToken, TokenProvider, get_token_provider
from pswrap.clouds import get_cloud
from pswrap.config import Settings
from pswrap.errors import (
    ConfigError,
    ExchangeConnectError,
    ExchangeModuleError,
    PowerShellError,
    PswrapError,
)
from pswrap.objects import ErrorRecord, Record
from pswrap.secret import get_logger
from pswrap.session import Result, Session, get_transport
from pswrap.transports.base import Execution, Invocation, Outcome, Transport
from pswrap.verbs import is_read_only

__all__ = ["MINIMUM_MODULE_VERSION", "ExchangeOnline"]

logger = get_logger("pswrap.exchange")

#: The first ExchangeOnlineManagement version with ``Connect-ExchangeOnline -AccessToken``.
MINIMUM_MODULE_VERSION = "3.1.0"
INSTALL_MODULE = 'pwsh -NoProfile -Command "Install-Module ExchangeOnlineManagement -MinimumVersion 3.1.0 -Scope CurrentUser"'
_PERSISTENT = ("local", "winrm", "ssh")

_UNAUTHORIZED = re.compile(r"\(401\)|\bunauthori[sz]ed\b", re.IGNORECASE)
_THROTTLED = re.compile(
    r"\(429\)|too many requests|maximum number of concurrent requests|\bthrottl|server is busy", re.IGNORECASE
)
_RETRY_AFTER = re.compile(r"retry[- ]after[: ]+(\d+)", re.IGNORECASE)
#: One frame of PowerShell's script stack trace: ``at Connect-ExchangeOnline<Process>, /x.psm1: line 754``.
_FRAME = re.compile(r"^\s*at (?P<where>.*), (?P<file>.*): line (?P<line>\d+)\s*$")
_NO_FILE = "<No file>"  # the file of a frame in a script run as text, as pswrap runs its own
_ROLE_NOT_SUPPORTED = re.compile(
    r"role assigned to application .* isn't supported", re.IGNORECASE | re.DOTALL
)
#: The application id of Office 365 Exchange Online: an audience Exchange also takes.
_EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"

_open_sessions: weakref.WeakSet[ExchangeOnline] = weakref.WeakSet()


class ExchangeOnline:
    """An Exchange Online session for one tenant.

    ``settings`` (a :class:`pswrap.config.Settings`; default: :meth:`Settings.load`, i.e. the
    ``--profile``/``PSWRAP_*``/default-profile rules) says who to be; ``transport`` how to run
    (``"local"``, ``"oneshot"``, ``"winrm"``, ``"rest"`` or a :class:`pswrap.Transport`; default the
    settings' ``transport``, else ``"local"``). ``command_names`` limits the cmdlets the module loads
    (a faster connect), ``skip_format_data`` (default on) skips loading format data, ``page_size`` is
    the module's page size. ``timeout``, ``raise_on_error``, ``on_record`` and ``progress`` are as for
    :class:`pswrap.Session`. ``retries`` bounds the retries of throttled reads; ``retry_backoff`` is the
    first wait in seconds (doubling each time) unless Exchange says how long to wait.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: str | Transport | None = None,
        provider: TokenProvider | None = None,
        pwsh: Any = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        on_record: Callable[[Record], None] | None = None,
        progress: bool = False,
        command_names: Iterable[str] | None = None,
        skip_format_data: bool = True,
        page_size: int | None = None,
        templates: Any = None,
        retries: int = 3,
        retry_backoff: float = 2.0,
        **transport_options: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        missing = self.settings.missing(organization=True) if provider is None else []
        if len(missing) > 1 or (missing and self.settings.organization):
            raise ConfigError(f"{self.settings.origin.description}: {', '.join(missing)} must be set")
        if not self.settings.organization:
            raise ConfigError(
                "no Exchange organization: set organization (PSWRAP_ORGANIZATION) to the tenant's primary "
                "*.onmicrosoft.com domain (it is taken from the tenant when the tenant is that domain)"
            )
        self.organization: str = self.settings.organization
        self.provider = provider if provider is not None else get_token_provider(self.settings)
        self.command_names = list(command_names) if command_names else None
        self.skip_format_data = skip_format_data
        self.page_size = page_size
        self.retries = retries
        self.retry_backoff = retry_backoff
        chosen = transport if transport is not None else (self.settings.transport or "local")
        built = self._transport(chosen, pwsh=pwsh, **transport_options)
        self.transport_name = built.name
        self.persistent = built.persistent and built.name in _PERSISTENT
        self.session = Session(
            built,
            timeout=timeout,
            raise_on_error=raise_on_error,
            on_record=on_record,
            on_open=self._on_open if self.persistent else None,
            progress=progress,
            templates=templates,
        )
        self._lock = threading.RLock()
        self._connected: AccessToken | None = None
        self._oneshot_steps: dict[int, str] = {}
        self._closed = False
        #: How many times ``Connect-ExchangeOnline`` ran (a warm session connects once per token).
        self.connects = 0
        #: How many times a failed call was run again (a rejected token, throttling).
        self.retried = 0
        _open_sessions.add(self)

    # --- construction ---

    @classmethod
    def from_env(cls, **options: Any) -> ExchangeOnline:
        """An Exchange session configured by the ``PSWRAP_*`` environment variables."""
        return cls(Settings.from_env(), **options)

    @classmethod
    def from_profile(
        cls, profile: str | None = None, *, config_path: Any = None, **options: Any
    ) -> ExchangeOnline:
        """An Exchange session for a named profile (``None``: ``$PSWRAP_PROFILE`` or the default one)."""
        return cls(Settings.load(profile, config_path=config_path), **options)

    def _transport(self, chosen: str | Transport, *, pwsh: Any, **options: Any) -> Transport:
        if isinstance(chosen, Transport):
            return chosen
        if chosen == "local":
            return get_transport("local", pwsh=pwsh, pool_size=1, **options)
        if chosen == "oneshot":
            return get_transport("oneshot", pwsh=pwsh, **options)
        if chosen == "rest":
            from pswrap.transports.rest import RestTransport

            return RestTransport(self.settings, self.provider, **options)
        if chosen in ("winrm", "ssh"):
            factory = _optional_transport(chosen)
            if factory is None:
                raise ConfigError(f"the {chosen!r} transport is not part of this pswrap installation")
            return factory(self.settings, self.provider, **options)
        return get_transport(chosen, pwsh=pwsh, **options)

    # --- life cycle ---

    def open(self) -> ExchangeOnline:
        """Connect now (calls connect on demand). Returns the session."""
        if self._closed:
            raise PswrapError("this Exchange Online session is closed")
        with self._lock:
            if self.persistent:
                self._open_session()
            else:
                self.provider.get_token()  # a wrong credential fails now, not at the first call
        return self

    def close(self) -> None:
        """Disconnect (``-Confirm:$false``) and end PowerShell. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _open_sessions.discard(self)
            try:
                if self.persistent and self._connected is not None and self.session.healthy:
                    self.session.run("exchange-disconnect", timeout=60).wait()
            except PswrapError as exc:
                logger.warning("disconnecting from Exchange Online failed: %s", exc)
            finally:
                self._connected = None
                self.session.close()

    def __enter__(self) -> ExchangeOnline:
        try:
            return self.open()
        except BaseException:
            self.close()  # __exit__ will not run
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._connected is not None:
            state = f"connected, token valid {max(0, int(self._connected.seconds_left() // 60))} min"
        else:
            state = "not connected"
        return f"<ExchangeOnline {self.organization} via {self.transport_name}: {state}>"

    @property
    def token(self) -> AccessToken | None:
        """The token the session is connected with (``None`` before connecting)."""
        return self._connected

    # --- running cmdlets ---

    def invoke(
        self,
        command: str,
        /,
        *arguments: Any,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        **parameters: Any,
    ) -> Result:
        """Run an Exchange cmdlet with ``parameters`` bound (a switch is ``True``); objects stream back.

        ``input`` is piped into the cmdlet. pswrap's own options are lowercase (``input``,
        ``timeout``); Exchange's parameters keep their capitals.
        """
        if self._closed:
            raise PswrapError("this Exchange Online session is closed")
        invocation = self.session.command(command, *arguments, input=input, timeout=timeout, **parameters)
        if self.transport_name == "oneshot":
            build: Callable[[], Invocation] = lambda: self._oneshot(invocation)  # noqa: E731
        else:
            build = lambda: invocation  # noqa: E731
        with self._lock:
            if self.persistent:
                self._open_session()
            execution = self.session.start(build())
        return Result(
            execution,
            invocation,
            raise_on_error=self.session.raise_on_error,
            on_record=self.session.on_record,
            restart=self._restarter(invocation, build),
        )

    def _oneshot(self, invocation: Invocation) -> Invocation:
        """The cmdlet wrapped in the exchange-invoke template: connect, run, disconnect in one process."""
        token = self.provider.get_token()
        script = self.session.templates.render(
            "exchange-invoke",
            AccessToken=token.token,
            Organization=self.organization,
            PswrapCommand=invocation.command,
            PswrapArguments=list(invocation.arguments),
            PswrapParameters=dict(invocation.parameters),
            **self._connect_options(),
        )
        self._connected = token
        self._oneshot_steps = _steps(script.text)
        return Invocation(
            script.text,
            is_script=True,
            parameters=script.parameters,
            input=invocation.input,
            timeout=invocation.timeout,
            progress=invocation.progress,
            label=invocation.command,
        )

    def _restarter(
        self, invocation: Invocation, build: Callable[[], Invocation]
    ) -> Callable[[Outcome, Result], Execution | Outcome | None]:
        """What to do when the call fails: reconnect, run a read again, or say why not."""
        attempts = {"auth": 0, "throttled": 0}
        read = not invocation.is_script and is_read_only(invocation.command, invocation.parameters)

        def restart(outcome: Outcome, result: Result) -> Execution | Outcome | None:
            record = outcome.error
            if record is None:
                return None
            if self.transport_name == "oneshot":
                self._raise_connect_failure(record, self._oneshot_steps)
            if result.produced_output:
                return None  # objects already reached the caller: running it again would repeat them
            if not invocation.is_script and _not_recognized(record, invocation.command):
                return _annotated(outcome, self._not_generated(invocation.command))
            text = _text(record)
            if _UNAUTHORIZED.search(text) and attempts["auth"] == 0 and self.transport_name != "rest":
                attempts["auth"] += 1
                with self._lock:
                    stale = self._connected
                    token = self.provider.refresh(stale=stale)
                    if self.persistent:
                        self._reconnect(token, "Exchange rejected the token")
                if read:
                    logger.info("%s: token rejected; reconnected and running it again", invocation.command)
                    self.retried += 1
                    return self.session.start(build())
                return _annotated(
                    outcome,
                    f"pswrap reconnected with a new token but did not run {invocation.command} again: "
                    "it is not a read, and it may have changed something",
                )
            if _THROTTLED.search(text):
                if read and attempts["throttled"] < self.retries:
                    attempts["throttled"] += 1
                    wait = _retry_after(text) or self.retry_backoff * 2 ** (attempts["throttled"] - 1)
                    logger.warning("%s: throttled by Exchange; retrying in %.1f s", invocation.command, wait)
                    time.sleep(wait)
                    with self._lock:
                        if self.persistent:
                            self._ensure_fresh_token()
                        self.retried += 1
                        return self.session.start(build())
                why = (
                    f"still throttled after {attempts['throttled']} retries"
                    if read
                    else f"{invocation.command} is not a read, so pswrap did not retry it"
                )
                return _annotated(outcome, f"Exchange throttled this call ({why}); wait and try again later")
            return None

        return restart

    # --- connecting ---

    def _installed_module_versions(self) -> list[str] | None:
        """The ExchangeOnlineManagement versions PowerShell can see (``None`` when it cannot tell)."""
        try:
            found = self.session.invoke("Get-Module", "ExchangeOnlineManagement", ListAvailable=True).output
        except PswrapError:
            return None
        return sorted({_version_text(module) for module in found})

    def _on_open(self, session: Session) -> None:
        """A fresh PowerShell opened (the first call, or after a fault): connect it.

        When connecting fails the process is ended, so no pwsh is left behind; the next call starts
        afresh.
        """
        with self._lock:
            self._connected = None
            try:
                self._connect(self.provider.get_token())
            except BaseException:
                session.transport.close()
                raise

    def _open_session(self) -> None:
        """Open PowerShell (connecting it) and make sure its token is fresh.

        The token comes first: a wrong credential or an unreachable identity provider then fails
        before any pwsh starts.
        """
        if not self.session.healthy:
            self.provider.get_token()
        self.session.open()
        self._ensure_fresh_token()

    def _ensure_fresh_token(self) -> None:
        token = self.provider.get_token()
        if token is not self._connected:
            self._reconnect(token, "the token is within its refresh margin")

    def _reconnect(self, token: AccessToken, why: str) -> None:
        logger.info("reconnecting to Exchange Online: %s", why)
        self._connect(token)

    def _connect_options(self) -> dict[str, Any]:
        """The values the exchange-connect template takes besides the bound token and organization."""
        options: dict[str, Any] = {"SkipLoadingFormatData": self.skip_format_data}
        if self.settings.environment != "O365Default":
            options["ExchangeEnvironmentName"] = self.settings.environment
        if self.command_names:
            options["CommandName"] = self.command_names
        if self.page_size is not None:
            options["PageSize"] = self.page_size
        return options

    def _connect(self, token: AccessToken) -> None:
        if not token.has_exchange_role:
            logger.warning(
                "the token for %s has no Exchange.ManageAsApp role; connecting will likely fail", token.app_id
            )
        result = self.session.run(
            "exchange-connect",
            AccessToken=token.token,
            Organization=self.organization,
            **self._connect_options(),
        )
        steps = _steps(result.invocation.command)
        try:
            result.wait()
        except PowerShellError as exc:
            self._raise_connect_failure(exc.record, steps, token, connect_only=True)
            raise
        if result.errors:
            self._raise_connect_failure(result.errors[0], steps, token, connect_only=True)
        self._connected = token
        self.connects += 1
        logger.info(
            "connected to Exchange Online (%s) with a token valid for %d s",
            self.organization,
            token.seconds_left(),
        )

    def _raise_connect_failure(
        self,
        record: ErrorRecord,
        steps: Mapping[int, str],
        token: AccessToken | None = None,
        *,
        connect_only: bool = False,
    ) -> None:
        """Turn a failed import or connect into an error that says what to do (returns if it was neither).

        Which step failed is read from where the error happened in pswrap's own script (``steps``: its
        line numbers), not from the record: the module rethrows its failures (``throw $_.Exception``),
        so they carry no activity, and their id is their message. ``connect_only``: the script held
        nothing but the connect steps, so an error that says nothing of where it happened came from them.
        """
        error_id = record.error_id or ""
        step = steps.get(_script_line(record) or 0)
        if step is None and connect_only:
            step = "import" if error_id.startswith("Modules_") else "connect"
        if step == "import":
            raise self._module_error(record)
        if step != "connect":
            return
        raise self._connect_error(record, token or self._connected)

    def _module_error(self, record: ErrorRecord) -> ExchangeModuleError:
        error_id = record.error_id or ""
        if not error_id.startswith(("Modules_ModuleNotFound", "Modules_ModuleWithVersionNotFound")):
            return ExchangeModuleError(
                f"the ExchangeOnlineManagement module could not be loaded where pswrap runs PowerShell "
                f"({self.transport_name}): {record.message}",
                action=f"reinstall it there (add -Force to Install-Module): {INSTALL_MODULE}",
                record=record,
            )
        installed = self._installed_module_versions()
        if installed is None:
            state = f"missing, or older than {MINIMUM_MODULE_VERSION},"
        elif installed:
            state = f"older than {MINIMUM_MODULE_VERSION} (installed: {', '.join(installed)})"
        else:
            state = "not installed"
        return ExchangeModuleError(
            f"the ExchangeOnlineManagement module is {state} where pswrap runs PowerShell "
            f"({self.transport_name}): {record.message}",
            action=f"install or update it there: {INSTALL_MODULE}",
            record=record,
        )

    def _connect_error(self, record: ErrorRecord, token: AccessToken | None) -> ExchangeConnectError:
        """What a failed ``Connect-ExchangeOnline`` means. Exchange says only ``UnAuthorized`` for every
        token it refuses, so the causes come from the token's claims and the settings."""
        if _ROLE_NOT_SUPPORTED.search(record.message):
            cause = (
                "the app's Entra role is not one Exchange Online accepts for app-only access: assign its service "
                "principal the Exchange Administrator role (Entra ID → Roles and administrators), then wait a few "
                "minutes"
            )
            return ExchangeConnectError(
                f"Connect-ExchangeOnline failed for {self.organization}: {record.message}",
                action=cause,
                record=record,
                causes=(cause,),
            )
        causes = self._token_causes(token)
        if not causes:
            causes.append(
                f"Exchange refused a token pswrap found nothing wrong with: check that {self.organization!r} is the "
                "tenant's primary *.onmicrosoft.com domain, that the app has Office 365 Exchange Online → "
                "Exchange.ManageAsApp with admin consent, and that this machine's clock is right"
            )
        return ExchangeConnectError(
            f"Connect-ExchangeOnline failed for {self.organization}: {record.message}",
            action="; ".join(causes),
            record=record,
            causes=tuple(causes),
        )

    def _token_causes(self, token: AccessToken | None) -> list[str]:
        """What is wrong with ``token`` for this organization, each with its fix."""
        causes: list[str] = []
        if token is not None:
            if token.expired:
                causes.append(
                    f"the token had expired (at {token.expires_at:%Y-%m-%d %H:%M:%S} UTC): check this machine's clock"
                )
            resource = get_cloud(self.settings.environment).resource
            audience = (token.audience or "").rstrip("/")
            if audience not in (resource, _EXCHANGE_APP_ID):
                causes.append(
                    f"the token is for {token.audience or 'no audience'}, not Exchange Online ({resource}): the scope "
                    f"must be {resource}/.default (check the scope setting, PSWRAP_SCOPE)"
                )
            elif not token.roles:
                causes.append(
                    "the token carries no application permission: the app lacks admin consent for Office 365 Exchange "
                    "Online → Exchange.ManageAsApp; add that API permission (application) and grant admin consent"
                )
            elif not token.has_exchange_role:
                causes.append(
                    f"the token has the roles {', '.join(token.roles)} but not Exchange.ManageAsApp: add the API "
                    "permission Office 365 Exchange Online → Exchange.ManageAsApp (application) and grant admin consent"
                )
        organization = self.organization.casefold()
        tenant = (self.settings.tenant or "").casefold()
        token_tenant = ((token.tenant_id if token is not None else None) or "").casefold()
        if ("." in tenant and tenant != organization) or (
            _is_guid(organization) and token_tenant and organization != token_tenant
        ):
            causes.append(
                f"the organization {self.organization!r} is not the tenant {self.settings.tenant!r}: it must be the "
                "tenant's primary *.onmicrosoft.com domain (PSWRAP_ORGANIZATION)"
            )
        return causes

    def _not_generated(self, command: str) -> str:
        """Why the module has no ``command`` after connecting, and the fix."""
        if self.command_names and command.casefold() not in {c.casefold() for c in self.command_names}:
            return f"{command} is not in command_names, so Connect-ExchangeOnline did not load it"
        return (
            f"Exchange Online generated no {command} for this app: the app has no Exchange role that allows it "
            "(or there is no such cmdlet); assign the app's service principal the Exchange Administrator role "
            f"(Entra ID → Roles and administrators) or an Exchange RBAC role that includes {command}, then connect again"
        )


def _version_text(value: Any) -> str:
    return str(value.get("Version") if isinstance(value, Mapping) else value)


def _steps(script: str) -> dict[int, str]:
    """The lines of pswrap's connect script that import the module and connect (1-based, as PowerShell counts)."""
    steps: dict[int, str] = {}
    for number, line in enumerate(script.splitlines(), 1):
        first = line.split(None, 1)[0].casefold() if line.strip() else ""
        if first == "import-module":
            steps[number] = "import"
        elif first == "connect-exchangeonline":
            steps[number] = "connect"
    return steps


def _script_line(record: ErrorRecord) -> int | None:
    """The line of pswrap's own script the failure happened at: the innermost frame of the record's script
    stack trace that has no file (modules are files; pswrap's scripts run as text), else the record's
    position when it names no file."""
    trace = record.script_stack_trace
    if trace:
        for line in trace.splitlines():
            frame = _FRAME.match(line)
            if frame is not None and frame.group("file") == _NO_FILE:
                return int(frame.group("line"))
        return None
    if record.script_line_number is not None and (record.script_position or "").lstrip().startswith(
        "At line:"
    ):
        return record.script_line_number
    return None


def _not_recognized(record: ErrorRecord, command: str) -> bool:
    """Whether ``record`` says ``command`` is not a known command (what a cmdlet the module did not generate gives)."""
    if (record.error_id or "").split(",", 1)[0] != "CommandNotFoundException":
        return False
    return command.casefold() in f"{record.target} {record.message}".casefold()


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _text(record: ErrorRecord) -> str:
    return " ".join(filter(None, (record.message, record.exception_message, record.error_id)))


def _retry_after(text: str) -> float | None:
    match = _RETRY_AFTER.search(text)
    return float(match.group(1)) if match else None


def _annotated(outcome: Outcome, note: str) -> Outcome:
    record = outcome.error
    assert record is not None
    return dataclasses.replace(
        outcome, error=dataclasses.replace(record, message=f"{record.message} ({note})")
    )


def _optional_transport(name: str) -> Callable[..., Transport] | None:
    """The Exchange factory ``(settings, provider, **options)`` of a transport that may not be installed."""
    try:
        module = importlib.import_module(f"pswrap.transports.{name}")
    except ImportError:
        return None
    factory: Callable[..., Transport] | None = getattr(module, "exchange_transport", None)
    return factory


def _close_open_sessions() -> None:
    for session in list(_open_sessions):
        try:
            session.close()
        except Exception as exc:  # at exit, one broken session must not stop the others
            logger.warning("closing %r at exit failed: %s", session, exc)


atexit.register(_close_open_sessions)
