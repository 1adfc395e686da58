"""Remote runners over WinRM: PowerShell on a Windows host, spoken to with PSRP through WS-Management.

pswrap's own PSRP client (:mod:`.psrp`, the one the local transport uses) runs unchanged: its payloads
travel in the shell messages of :mod:`.wsman`, which pypsrp's ``WSMan`` wraps in SOAP envelopes and
sends over HTTPS, or over HTTP with each message encrypted (NTLM, Kerberos, CredSSP). Objects, records
and errors therefore come back exactly as from a local ``pwsh``.

One shell (a runspace pool of ``pool_size`` runspaces) serves every invocation. Each running pipeline
has a thread long-polling its output (Receive); requests run on a small set of authenticated HTTP
connections, one request at a time each. A shell the host dropped (idle too long, host restarted) is
found by a probe before a call after an idle spell, or by the call itself, and reported as
:class:`pswrap.InvocationNotStarted`, so :class:`pswrap.Session` opens a fresh one (running its
``on_open`` again) and retries. A broken connection fails the invocations it carried with a
:class:`pswrap.WinRMError`; what they produced before stays with the caller.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import psrpcore

from pswrap.errors import (
    ConfigError,
    InvocationNotStarted,
    InvocationTimeout,
    ProtocolError,
    TransportError,
    WinRMAuthenticationError,
    WinRMError,
)
from pswrap.secret import Secret, protect_loggers
from pswrap.transports import wsman
from pswrap.transports.base import Execution, Invocation, Outcome, StreamItem, Transport
from pswrap.transports.psrp import PSRPClient, RemotePipeline

if TYPE_CHECKING:
    from pypsrp.wsman import WSMan

    from pswrap.config import Settings

__all__ = ["AUTH_METHODS", "ENCRYPTION_MODES", "WINRM_VARIABLES", "WinRMTransport", "exchange_transport"]

log = logging.getLogger(__name__)

#: How pswrap can authenticate to WinRM (pypsrp's methods).
AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "credssp", "certificate", "basic")
#: ``auto``: encrypt each message over HTTP, rely on TLS over HTTPS; ``always``; ``never``.
ENCRYPTION_MODES = ("auto", "always", "never")
DEFAULT_CONFIGURATION = "Microsoft.PowerShell"
_ENCRYPTING_AUTH = ("negotiate", "ntlm", "kerberos", "credssp")
_PASSWORD_AUTH = ("ntlm", "basic", "credssp")

#: Each option of :meth:`WinRMTransport.from_settings` and the environment variable it is read from.
WINRM_VARIABLES: Mapping[str, str] = {
    name: f"PSWRAP_WINRM_{name.upper()}"
    for name in (
        "host",
        "port",
        "scheme",
        "path",
        "auth",
        "username",
        "password",
        "verify",
        "ca_bundle",
        "encryption",
        "allow_unencrypted",
        "configuration",
        "operation_timeout",
        "connection_timeout",
        "pool_size",
        "idle_check",
        "certificate",
        "certificate_key",
        "proxy",
    )
}
_BOOL_OPTIONS = ("verify", "allow_unencrypted")
_INT_OPTIONS = ("port", "pool_size")
_NUMBER_OPTIONS = ("operation_timeout", "connection_timeout", "idle_check")
_PATH_OPTIONS = ("ca_bundle", "certificate", "certificate_key")

# A connection unused for this long is replaced before its next request: WinRM hosts close idle
# HTTP connections, and an NTLM/Kerberos session (and its message encryption) dies with its connection.
_CONNECTION_IDLE_LIMIT = 50.0
# How long a health probe of an idle shell may take.
_PROBE_TIMEOUT = 10.0


# --- logging -------------------------------------------------------------------------------------

_STREAM_CONTENT = re.compile(
    rb"(<(?:[\w.-]+:)?(?:Stream|Arguments|creationXml)\b[^>]*>)([^<]+)(</)", re.IGNORECASE
)


class _MessageFilter(logging.Filter):
    """Hide the PSRP data in the WSMan messages pypsrp logs at DEBUG: it carries parameter values
    (access tokens) base64-encoded, which the value-based secret scrubbing cannot recognise. Also
    lower pypsrp's error about an HTTP error without a WSMan fault, which pswrap handles."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if isinstance(message, str) and message.startswith("Failed to parse WSManFault message"):
            # pswrap handles that answer (retries on a fresh connection, or reports it): not an error here.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if isinstance(message, str) and message.startswith(("Sending message", "Received message")):
            head, sep, body = message.partition(": ")
            hidden = _STREAM_CONTENT.sub(
                lambda m: (
                    m.group(1) + b"<%d base64 characters hidden by pswrap>" % len(m.group(2)) + m.group(3)
                ),
                body.encode("utf-8", "replace"),
            )
            record.msg = head + sep + hidden.decode("utf-8", "replace")
            record.args = None
        return True


_MESSAGE_FILTER = _MessageFilter()


def _protect_pypsrp_logs() -> None:
    for name in ("pypsrp.wsman", "pypsrp"):
        logger = logging.getLogger(name)
        if _MESSAGE_FILTER not in logger.filters:
            logger.addFilter(_MESSAGE_FILTER)
    protect_loggers()


_protect_pypsrp_logs()


# --- the transport -------------------------------------------------------------------------------


class WinRMTransport(Transport):
    """PowerShell on a remote Windows host over WinRM (WS-Management).

    ``host``: the host name (or a URL like ``https://runner01:5986/wsman``). ``scheme``: ``"https"``
    (the default, port 5986) or ``"http"`` (port 5985); over HTTP every message is encrypted by the
    authentication (negotiate, NTLM, Kerberos, CredSSP), and plain HTTP is refused unless
    ``allow_unencrypted`` is true. ``verify``: check the host's TLS certificate (the default); give a
    private CA's certificates in ``ca_bundle``; ``verify=False`` turns checking off. ``auth``: one of
    :data:`AUTH_METHODS`; ``username`` and ``password`` (a :class:`pswrap.Secret` or a string), or
    ``certificate``/``certificate_key`` (PEM files) for certificate authentication. ``configuration``:
    the session configuration (``Microsoft.PowerShell``, ``PowerShell.7``, a JEA endpoint).

    ``operation_timeout``: how long the host may take to answer a request (a Receive with nothing to
    say is answered after this long, and polled again); ``connection_timeout``: how long connecting
    may take; ``open_timeout``: how long opening the session may take. ``pool_size``: how many
    invocations run at once (each runspace has its own variables and modules). ``idle_check``: after
    this many idle seconds, the shell is probed before the next call (``None``: never). ``stop_grace``:
    how long a stopped invocation may take before the shell is abandoned.
    """

    name: ClassVar[str] = "winrm"
    persistent: ClassVar[bool] = True

    def __init__(
        self,
        host: str,
        *,
        port: int | None = None,
        scheme: Literal["https", "http"] | None = None,
        path: str = "wsman",
        auth: str = "negotiate",
        username: str | None = None,
        password: str | Secret | None = None,
        verify: bool = True,
        ca_bundle: str | os.PathLike[str] | None = None,
        encryption: str = "auto",
        allow_unencrypted: bool = False,
        configuration: str = DEFAULT_CONFIGURATION,
        operation_timeout: float = 20.0,
        connection_timeout: float = 30.0,
        open_timeout: float = 60.0,
        pool_size: int = 1,
        idle_check: float | None = 60.0,
        stop_grace: float = 5.0,
        certificate: str | os.PathLike[str] | None = None,
        certificate_key: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        max_envelope_size: int = 153_600,
    ) -> None:
        host, scheme, port, path = _split_host(host, scheme, port, path)
        if auth not in AUTH_METHODS:
            raise ConfigError(f"auth {auth!r} is not one of {', '.join(AUTH_METHODS)}")
        if encryption not in ENCRYPTION_MODES:
            raise ConfigError(f"encryption {encryption!r} is not one of {', '.join(ENCRYPTION_MODES)}")
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ConfigError(f"pool_size must be a whole number of at least 1, not {pool_size!r}")
        for label, value in (
            ("operation_timeout", operation_timeout),
            ("connection_timeout", connection_timeout),
            ("open_timeout", open_timeout),
            ("stop_grace", stop_grace),
        ):
            _check_seconds(label, value)
        if idle_check is not None:
            _check_seconds("idle_check", idle_check, allow_zero=True)
        if not isinstance(max_envelope_size, int) or max_envelope_size < 8192:
            raise ConfigError(f"max_envelope_size must be at least 8192 bytes, not {max_envelope_size!r}")
        try:
            self.resource_uri = wsman.resource_uri(configuration)
        except ValueError as exc:
            raise ConfigError(f"configuration: {exc}") from None
        if username is not None and not (isinstance(username, str) and username.strip()):
            raise ConfigError("username must be a non-empty string")
        if password is not None and not isinstance(password, Secret):
            if not isinstance(password, str):
                raise ConfigError(f"password must be a string or a Secret, not {type(password).__name__}")
            password = Secret(password, "winrm password")
        if auth in _PASSWORD_AUTH and not (username and password):
            raise ConfigError(f"auth {auth!r} needs a username and a password")
        if password and not username:
            raise ConfigError("a password is set but no username is")
        if auth == "credssp" and importlib.util.find_spec("requests_credssp") is None:
            raise ConfigError(
                "auth 'credssp' needs the requests-credssp package (pip install requests-credssp)"
            )
        if auth == "certificate":
            if scheme != "https":
                raise ConfigError("certificate authentication needs HTTPS (scheme 'https')")
            if not certificate or not certificate_key:
                raise ConfigError(
                    "certificate authentication needs certificate and certificate_key (PEM files)"
                )
        ca_path = _existing_file("ca_bundle", ca_bundle)
        cert_path = _existing_file("certificate", certificate)
        key_path = _existing_file("certificate_key", certificate_key)
        if ca_path is not None and verify is False:
            raise ConfigError(
                "give either ca_bundle (check the host's certificate against it) or verify=False"
            )
        encrypted = self._message_encryption(scheme, auth, encryption)
        if scheme == "http" and not encrypted and not allow_unencrypted:
            why = (
                "encryption='never' was asked for"
                if encryption == "never"
                else f"{auth} authentication cannot encrypt messages"
            )
            raise ConfigError(
                f"refusing plain HTTP to {host}: {why}, so credentials and data (access tokens) would "
                "cross the network readable. Use HTTPS, an encrypting auth (negotiate, ntlm, kerberos, "
                "credssp), or set allow_unencrypted=True if this network is trusted"
            )
        self.host = host
        self.scheme = scheme
        self.port = port
        self.path = path
        self.auth = auth
        self.username = username
        self.password: Secret | None = password or None
        self.verify = bool(verify)
        self.ca_bundle = ca_path
        self.encryption = encryption
        self.encrypted = encrypted
        self.configuration = configuration
        self.operation_timeout = float(operation_timeout)
        self.connection_timeout = float(connection_timeout)
        self.open_timeout = float(open_timeout)
        self.pool_size = pool_size
        self.idle_check = None if idle_check is None else float(idle_check)
        self.stop_grace = float(stop_grace)
        self.certificate = cert_path
        self.certificate_key = key_path
        self.proxy = proxy
        self.max_envelope_size = max_envelope_size
        #: How many shells (remote sessions) this transport has opened (a dropped shell opens another).
        self.shells_opened = 0
        self._lock = threading.Lock()
        self._shell: _Shell | None = None

    # --- configuration ---------------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls, settings: Settings, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> WinRMTransport:
        """The transport a profile's ``[profiles.X.winrm]`` table describes, else the ``PSWRAP_WINRM_*``
        environment variables (see :data:`WINRM_VARIABLES`). ``overrides`` (such as ``host`` from the
        command line) win over both. ``password`` in a table is best an ``env:NAME`` or ``file:PATH``
        reference (a path relative to the config file).
        """
        from pswrap.config import resolve_secret

        environ = os.environ if environ is None else environ
        table = settings.extra.get("winrm")
        options: dict[str, Any]
        if table is not None:
            where = f"[winrm] of {settings.origin.description}"
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where} must be a table, like [profiles.NAME.winrm]")
            options = _options_from_table(table, where)
            ignored = sorted(v for v in WINRM_VARIABLES.values() if environ.get(v))
            if ignored:
                log.warning("%s is used; %s in the environment are ignored", where, ", ".join(ignored))
            password = options.get("password")
            if password is not None:
                options["password"] = resolve_secret(
                    password,
                    where=f"password in {where}",
                    name="winrm password",
                    base_dir=settings.origin.base_dir,
                    environ=environ,
                )
            base_dir = settings.origin.base_dir
            for name in _PATH_OPTIONS:
                value = options.get(name)
                if value is not None and base_dir is not None and not Path(value).expanduser().is_absolute():
                    options[name] = base_dir / Path(value).expanduser()
        else:
            options = _options_from_env(environ)
        options.update({k: v for k, v in overrides.items() if v is not None})
        if not options.get("host"):
            source = (
                f"[winrm] of {settings.origin.description}" if table is not None else WINRM_VARIABLES["host"]
            )
            raise ConfigError(f"the winrm transport needs a host: set host in {source} (or pass --host)")
        return cls(**options)

    @staticmethod
    def _message_encryption(scheme: str, auth: str, encryption: str) -> bool:
        if encryption == "never":
            return False
        if encryption == "always":
            if auth not in _ENCRYPTING_AUTH:
                raise ConfigError(
                    f"{auth} authentication cannot encrypt messages: use encryption='auto' with HTTPS, or "
                    f"one of {', '.join(_ENCRYPTING_AUTH)}"
                )
            return True
        return scheme == "http" and auth in _ENCRYPTING_AUTH

    @property
    def url(self) -> str:
        """The WinRM endpoint, like ``https://runner01.contoso.com:5986/wsman``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.path}"

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return (
            f"WinRMTransport({self.url!r}, auth={self.auth!r}{user}, "
            f"configuration={self.configuration!r}, pool_size={self.pool_size})"
        )

    # --- the Transport interface -----------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            old = self._shell
            if old is not None:
                if old.healthy:
                    return
                self._shell = None
                old.close()
            shell = _Shell(self)
            self.shells_opened += 1
            try:
                shell.open()
            except BaseException:
                shell.close()
                raise
            self._shell = shell

    def start(self, invocation: Invocation) -> Execution:
        shell = self._shell
        if shell is None:
            raise InvocationNotStarted(
                f"the WinRM session with {self.host} is not open to run {invocation.description}"
            )
        if not shell.healthy:
            raise shell.error(f"could not start {invocation.description}", InvocationNotStarted)
        if self.idle_check is not None and shell.idle_for() >= self.idle_check and not shell.alive():
            shell.abandon(
                f"the PowerShell session on {self.host} is gone (WinRM closes shells idle for too long, "
                "and a restart of the host or its WinRM service drops them)"
            )
            raise shell.error(f"could not start {invocation.description}", InvocationNotStarted)
        return shell.start(invocation)

    def close(self) -> None:
        with self._lock:
            shell, self._shell = self._shell, None
        if shell is not None:
            shell.close()

    @property
    def healthy(self) -> bool:
        shell = self._shell
        return shell is not None and shell.healthy

    # --- for the shell ---------------------------------------------------------------------------

    def _new_wsman(self) -> WSMan:
        """A pypsrp WSMan: one HTTP session (connection, authentication, encryption context)."""
        from pypsrp.wsman import WSMan

        _protect_pypsrp_logs()
        kwargs: dict[str, Any] = {}
        if self.auth == "certificate":
            kwargs = {
                "certificate_pem": str(self.certificate),
                "certificate_key_pem": str(self.certificate_key),
            }
        cert_validation: bool | str = str(self.ca_bundle) if self.ca_bundle is not None else self.verify
        try:
            return WSMan(
                self.host,
                port=self.port,
                ssl=self.scheme == "https",
                path=self.path,
                auth=self.auth,
                username=self.username,
                password=None if self.password is None else self.password.reveal(),
                cert_validation=cert_validation,  # type: ignore[arg-type]
                encryption="always" if self.encrypted else "never",
                operation_timeout=self.operation_timeout,  # type: ignore[arg-type]
                connection_timeout=self.connection_timeout,  # type: ignore[arg-type]
                read_timeout=self.operation_timeout + 5,  # type: ignore[arg-type]
                max_envelope_size=self.max_envelope_size,
                proxy=self.proxy,
                reconnection_retries=0,
                **kwargs,
            )
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"the winrm transport cannot be set up as configured: {exc}") from None


def exchange_transport(settings: Settings, provider: Any = None, **options: Any) -> WinRMTransport:
    """The WinRM transport of :class:`pswrap.ExchangeOnline`: :meth:`WinRMTransport.from_settings` with
    ``options`` (such as ``host``) winning, and one runspace, where the module's connection lives."""
    pool_size = options.pop("pool_size", None)
    if pool_size not in (None, 1):
        raise ConfigError(
            "an Exchange Online session over WinRM has one runspace (the module's connection lives in it): "
            f"pool_size {pool_size!r} does not apply; open several sessions to run cmdlets in parallel"
        )
    return WinRMTransport.from_settings(settings, pool_size=1, **options)


# --- connections ---------------------------------------------------------------------------------


class _Connections:
    """Authenticated HTTP connections (pypsrp WSMan objects), each carrying one request at a time.

    A connection that failed below WSMan (reset, timeout, TLS, authentication) is dropped; one idle
    longer than :data:`_CONNECTION_IDLE_LIMIT` is replaced; new ones are made as concurrency needs.
    """

    def __init__(self, transport: WinRMTransport) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._idle: list[tuple[WSMan, float]] = []
        self._busy: set[int] = set()
        self._closed = False
        self.opened = 0

    def payload_size(self) -> int:
        """The largest PSRP payload that fits in one envelope."""
        probe = self._transport._new_wsman()
        size = int(probe.max_payload_size)
        probe.close()
        return size

    @contextlib.contextmanager
    def use(self) -> Iterator[tuple[WSMan, bool]]:
        """A connection for one request, and whether it is new (not yet authenticated)."""
        from pypsrp.exceptions import WSManFaultError

        connection, fresh = self._take()
        try:
            yield connection, fresh
        except WSManFaultError:
            self._give_back(connection)  # the host answered: the connection is fine
            raise
        except BaseException:
            self._drop(connection)
            raise
        self._give_back(connection)

    def _take(self) -> tuple[WSMan, bool]:
        stale: list[WSMan] = []
        with self._lock:
            if self._closed:
                raise TransportError("the WinRM session is closed")
            now = time.monotonic()
            connection = None
            while self._idle:
                candidate, since = self._idle.pop()
                if now - since > _CONNECTION_IDLE_LIMIT:
                    stale.append(candidate)
                    continue
                connection = candidate
                break
        for old in stale:
            _quietly_close(old)
        fresh = connection is None
        if connection is None:
            connection = self._transport._new_wsman()
            with self._lock:
                self.opened += 1
        with self._lock:
            self._busy.add(id(connection))
        return connection, fresh

    def _give_back(self, connection: WSMan) -> None:
        with self._lock:
            self._busy.discard(id(connection))
            if not self._closed:
                self._idle.append((connection, time.monotonic()))
                return
        _quietly_close(connection)

    def _drop(self, connection: WSMan) -> None:
        with self._lock:
            self._busy.discard(id(connection))
        _quietly_close(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            _quietly_close(connection)


def _quietly_close(connection: WSMan) -> None:
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail; there is nothing left to release
        log.debug("closing a WinRM connection failed", exc_info=True)


# --- the shell -----------------------------------------------------------------------------------


class _Shell:
    """One remote shell (a PSRP runspace pool), its pipelines' receive threads and its connections."""

    def __init__(self, transport: WinRMTransport) -> None:
        self.transport = transport
        self.connections = _Connections(transport)
        self.client = PSRPClient(pool_size=transport.pool_size, fragment_size=self.connections.payload_size())
        self.selectors: list[tuple[str, str]] = [("ShellId", str(self.client.pool_id).upper())]
        self.created = False
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._broken: str | None = None
        self._closing = False
        self._closed = False
        self._receivers: dict[uuid.UUID, threading.Thread] = {}
        self._last_activity = time.monotonic()

    # --- state ---

    @property
    def healthy(self) -> bool:
        return self._broken is None and not self._closing and self.client.ready

    def idle_for(self) -> float:
        """Seconds since the host last answered, 0 while something runs."""
        with self.client.lock:
            if any(not p.finished for p in self.client.pipelines.values()):
                return 0.0
        return time.monotonic() - self._last_activity

    def error(self, message: str, kind: type[TransportError] = TransportError) -> TransportError:
        if self._broken:
            message = f"{message}: {self._broken}"
        return kind(message)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout: float | None) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate() or self._broken is not None, timeout))

    # --- requests ---

    def request(
        self,
        action: str,
        body: ET.Element | None,
        *,
        resource: str | None = None,
        options: list[tuple[str, str, dict[str, str]]] | None = None,
        selectors: bool = True,
        timeout: float | None = None,
    ) -> ET.Element:
        """Send one WSMan request on a free connection; returns the answer's SOAP body."""
        from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet

        option_set = None
        if options:
            option_set = OptionSet()
            for name, value, attributes in options:
                option_set.add_option(name, value, attributes)
        selector_set = None
        if selectors:
            selector_set = SelectorSet()
            for name, value in self.selectors:
                selector_set.add_option(name, value)
        for attempt in (1, 2):
            fresh = True
            try:
                with self.connections.use() as (connection, fresh):
                    envelope = connection.invoke(
                        action,
                        resource or self.transport.resource_uri,
                        body,
                        option_set,
                        selector_set,
                        timeout,  # type: ignore[arg-type]
                    )
                break
            except Exception as exc:
                # The host closed a kept-alive connection (idle, restarted service): the request went out
                # on a new one, unauthenticated, and was refused unread. It is safe to send it again.
                if attempt == 2 or fresh or not _refused_unread(exc):
                    raise
                log.debug(
                    "the WinRM host refused a request on a reused connection (%s); retrying", _short(exc)
                )
        self._touch()
        found = envelope.find("s:Body", namespaces=NAMESPACES)
        if found is None:
            raise ProtocolError(
                f"{self.transport.host} answered {action.rsplit('/', 1)[-1]} without a SOAP body"
            )
        return found

    def failure(self, exc: BaseException, operation: str) -> WinRMError:
        """The :class:`WinRMError` (or subclass) that says what went wrong doing ``operation``."""
        if isinstance(exc, ConfigError):
            raise exc
        return _describe(self.transport, exc, operation)

    # --- opening ---

    def open(self) -> None:
        from pypsrp.wsman import WSManAction

        client = self.client
        transport = self.transport
        client.open()
        payloads = client.outgoing()
        body = wsman.create_shell(client.pool_id, payloads[0].data)
        options = [("protocolversion", wsman.PROTOCOL_VERSION, {"MustComply": "true"})]
        operation = f"open a PowerShell session ({transport.configuration})"
        try:
            answer = self.request(WSManAction.CREATE, body, options=options, selectors=False)
            self.selectors = wsman.shell_selectors(answer)
        except (ValueError, ProtocolError) as exc:
            raise WinRMError(
                f"{transport.host} answered the request to {operation} with something pswrap cannot read: {exc}",
                url=transport.url,
                operation=operation,
            ) from None
        except Exception as exc:
            raise self.failure(exc, operation) from None
        self.created = True
        for payload in payloads[1:]:
            self._send_payload(payload, operation)
        deadline = time.monotonic() + transport.open_timeout
        while not client.ready:
            if client.broken_reason:
                raise WinRMError(
                    f"PowerShell on {transport.host} could not open a session: {client.broken_reason}",
                    url=transport.url,
                    operation=operation,
                )
            if time.monotonic() >= deadline:
                raise WinRMError(
                    f"{transport.host} did not open a PowerShell session within {transport.open_timeout:g} s",
                    url=transport.url,
                    operation=operation,
                )
            try:
                answer = self.request(WSManAction.RECEIVE, wsman.receive(), options=_KEEPALIVE)
            except Exception as exc:
                if _is_timed_out(exc):
                    continue
                raise self.failure(exc, operation) from None
            try:
                received = wsman.parse_receive(answer)
                with client.lock:
                    for data in received.data:
                        client.receive(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, None))
            except (ValueError, ProtocolError) as exc:
                raise WinRMError(
                    f"{transport.host} sent something that is not PowerShell remoting data: {exc}",
                    url=transport.url,
                    operation=operation,
                ) from None
            self.flush(operation)

    def alive(self) -> bool:
        """Probe the shell (a WSMan Get of it): false when the host no longer has it."""
        from pypsrp.wsman import WSManAction

        try:
            self.request(
                WSManAction.GET,
                None,
                resource=wsman.SHELL_RESOURCE,
                timeout=min(self.transport.operation_timeout, _PROBE_TIMEOUT),
            )
        except Exception as exc:
            log.debug("the WinRM shell probe failed: %s", _short(exc))
            return False
        return True

    # --- sending ---

    def _send_payload(self, payload: psrpcore.PSRPPayload, operation: str) -> None:
        from pypsrp.wsman import WSManAction

        stream = "pr" if payload.stream_type == psrpcore.StreamType.prompt_response else "stdin"
        try:
            self.request(WSManAction.SEND, wsman.send(stream, payload.data, payload.pipeline_id))
        except Exception as exc:
            raise self.failure(exc, operation) from None

    def flush(self, operation: str) -> None:
        """Send what the PSRP client has queued (host-call answers, key exchange, input), in order."""
        with self._send_lock:
            with self.client.lock:
                payloads = self.client.outgoing()
            for payload in payloads:
                self._send_payload(payload, operation)

    # --- running ---

    def start(self, invocation: Invocation) -> _WinRMExecution:
        from pypsrp.wsman import WSManAction

        client = self.client
        transport = self.transport
        pipeline = client.prepare(invocation)  # bad values fail here, before anything is sent
        deadline = None if invocation.timeout is None else time.monotonic() + invocation.timeout
        operation = f"start {invocation.description}"
        with self._send_lock:
            try:
                with client.lock:
                    client.begin(pipeline)
                    payloads = client.outgoing()
            except BaseException as exc:
                client.abandon(pipeline, TransportError(f"could not start {invocation.description}: {exc}"))
                raise
            ours = [p for p in payloads if p.pipeline_id == pipeline.id]
            others = [p for p in payloads if p.pipeline_id != pipeline.id]
            try:
                for payload in others:
                    self._send_payload(payload, operation)
                body = wsman.command(pipeline.id, ours[0].data)
                self.request(WSManAction.COMMAND, body, options=_COMMAND_OPTIONS)
            except Exception as exc:
                raw = exc.__context__ if isinstance(exc, WinRMError) and exc.__context__ else exc
                error = self.failure(exc, operation)
                client.abandon(pipeline, error)
                if error.code == wsman.SHELL_NOT_FOUND:
                    self.abandon(
                        f"the PowerShell session on {transport.host} is gone (WinRM closes shells idle for "
                        "too long, and a restart of the host or its WinRM service drops them)"
                    )
                    raise self.error(
                        f"could not start {invocation.description}", InvocationNotStarted
                    ) from exc
                if _never_sent(raw):
                    self.abandon(str(error))
                    raise InvocationNotStarted(f"could not start {invocation.description}: {error}") from exc
                if not _is_fault(raw):  # the connection broke: the command may or may not have started
                    self.abandon(str(error))
                raise error from None
            thread = threading.Thread(
                target=self._receive_loop,
                args=(pipeline,),
                name=f"pswrap-winrm-{str(pipeline.id)[:8]}",
                daemon=True,
            )
            self._receivers[pipeline.id] = thread
            thread.start()
            try:
                for payload in ours[1:]:
                    self._send_payload(payload, operation)
            except WinRMError as error:
                pipeline.fail(error)
                self._terminate_later(pipeline)
        return _WinRMExecution(self, pipeline, deadline)

    def _receive_loop(self, pipeline: RemotePipeline) -> None:
        from pypsrp.wsman import WSManAction

        client = self.client
        description = pipeline.invocation.description
        operation = f"receive the output of {description}"
        body = wsman.receive(pipeline.id)
        try:
            while not pipeline.finished and self._broken is None:
                try:
                    answer = self.request(WSManAction.RECEIVE, body, options=_KEEPALIVE)
                except Exception as exc:
                    if _is_timed_out(exc):
                        continue
                    if pipeline.finished or self._broken is not None or self._closing:
                        return
                    error = self.failure(exc, operation)
                    if error.code == wsman.SHELL_NOT_FOUND:
                        self.abandon(str(error))
                        return
                    pipeline.fail(error)
                    return
                try:
                    received = wsman.parse_receive(answer)
                    with client.lock:
                        finished = []
                        for data in received.data:
                            finished += client.receive(
                                psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pipeline.id)
                            )
                except (ValueError, ProtocolError) as exc:
                    self.abandon(
                        f"{self.transport.host} sent something that is not PowerShell remoting data ({exc})"
                    )
                    return
                self._notify()
                try:
                    self.flush(operation)
                except WinRMError as error:
                    pipeline.fail(error)
                    return
                if received.done and not pipeline.finished:
                    pipeline.fail(
                        WinRMError(
                            f"{self.transport.host} ended the command of {description} without its final state",
                            url=self.transport.url,
                            operation=operation,
                        )
                    )
        finally:
            self._terminate(pipeline)
            self._receivers.pop(pipeline.id, None)
            self._notify()

    def _terminate(self, pipeline: RemotePipeline) -> None:
        """Close the pipeline's command on the host (best effort) and forget it."""
        from pypsrp.wsman import WSManAction

        if self._broken is None and not self._closed:
            try:
                self.request(WSManAction.SIGNAL, wsman.signal(pipeline.id, wsman.Signal.TERMINATE))
            except Exception as exc:
                log.debug(
                    "closing the command of %s failed: %s", pipeline.invocation.description, _short(exc)
                )
        self.client.forget(pipeline)

    def _terminate_later(self, pipeline: RemotePipeline) -> None:
        threading.Thread(target=self._terminate, args=(pipeline,), daemon=True).start()

    def stop(self, pipeline: RemotePipeline) -> None:
        """Ask PowerShell to stop the pipeline (the signal travels on its own thread)."""
        with self.client.lock:
            if not self.client.stop(pipeline):
                return
        threading.Thread(
            target=self._signal_stop, args=(pipeline,), name="pswrap-winrm-stop", daemon=True
        ).start()

    def _signal_stop(self, pipeline: RemotePipeline) -> None:
        from pypsrp.wsman import WSManAction

        try:
            self.request(WSManAction.SIGNAL, wsman.signal(pipeline.id, wsman.Signal.STOP))
        except Exception as exc:
            log.debug("stopping %s failed: %s", pipeline.invocation.description, _short(exc))

    # --- ending ---

    def abandon(self, reason: str) -> None:
        """Give the shell up: running invocations fail with ``reason``; the host is told in the background."""
        with self._cond:
            if self._broken is None:
                self._broken = reason
            self._cond.notify_all()
        self.client.fail_all(
            lambda p: WinRMError(f"{reason} while running {p.invocation.description}", url=self.transport.url)
        )
        threading.Thread(target=self._delete, name="pswrap-winrm-abandon", daemon=True).start()

    def _delete(self) -> None:
        from pypsrp.wsman import WSManAction

        with self._cond:
            if self._closed:
                return
            self._closed = True
        if self.created:
            try:
                self.request(
                    WSManAction.DELETE, None, timeout=min(self.transport.operation_timeout, _PROBE_TIMEOUT)
                )
            except Exception as exc:
                log.debug("deleting the WinRM shell failed: %s", _short(exc))
        self.connections.close()

    def close(self) -> None:
        """Stop what runs, delete the shell on the host, release the connections."""
        if self._closing:
            return
        self._closing = True
        grace = self.transport.stop_grace
        if self._broken is None and self.created:
            running = [p for p in list(self.client.pipelines.values()) if not p.finished]
            for pipeline in running:
                self.stop(pipeline)
            self.wait(lambda: all(p.finished for p in running), grace)
        self.client.fail_all(
            lambda p: TransportError(f"the session was closed while running {p.invocation.description}")
        )
        self._delete()
        for thread in list(self._receivers.values()):
            thread.join(timeout=grace)


_Options = list[tuple[str, str, dict[str, str]]]
_KEEPALIVE: _Options = [("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True", {})]
_COMMAND_OPTIONS: _Options = [("WINRS_SKIP_CMD_SHELL", "False", {})]


class _WinRMExecution(Execution):
    def __init__(self, shell: _Shell, pipeline: RemotePipeline, deadline: float | None) -> None:
        self._shell = shell
        self._pipeline = pipeline
        self._deadline = deadline
        self._outcome: Outcome | None = None

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def stop(self) -> None:
        self._shell.stop(self._pipeline)

    def __iter__(self) -> Iterator[StreamItem]:
        items = self._pipeline.items
        while self._outcome is None:
            timeout = None if self._deadline is None else self._deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                yield from self._timed_out()
                return
            try:
                item = items.get(timeout=timeout)
            except queue.Empty:
                continue
            if isinstance(item, Outcome):
                self._outcome = item
            elif isinstance(item, TransportError):
                raise item
            else:
                yield item

    def _timed_out(self) -> Iterator[StreamItem]:
        shell = self._shell
        invocation = self._pipeline.invocation
        limit = invocation.timeout or 0.0
        grace = shell.transport.stop_grace
        shell.stop(self._pipeline)
        grace_end = time.monotonic() + grace
        items = self._pipeline.items
        while True:
            remaining = grace_end - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = items.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(item, Outcome):
                self._outcome = item
                raise InvocationTimeout(
                    f"{invocation.description} did not finish within its timeout of {limit:g} s and was stopped",
                    timeout=limit,
                )
            if isinstance(item, TransportError):
                raise InvocationTimeout(
                    f"{invocation.description} did not finish within its timeout of {limit:g} s, and then: {item}",
                    timeout=limit,
                )
            yield item
        shell.abandon(
            f"{shell.transport.host} did not stop {invocation.description} within {grace:g} s of its "
            f"{limit:g} s timeout, so pswrap gave the session up"
        )
        raise InvocationTimeout(
            f"{invocation.description} did not finish within its timeout of {limit:g} s and "
            f"{shell.transport.host} did not answer the stop signal within {grace:g} s: pswrap gave the "
            "remote session up (the next invocation opens a fresh one)",
            timeout=limit,
        )


# --- errors --------------------------------------------------------------------------------------


def _is_timed_out(exc: BaseException) -> bool:
    """A WSMan OperationTimeout fault: the host had nothing to say (poll again)."""
    from pypsrp.exceptions import WSManFaultError

    return isinstance(exc, WSManFaultError) and exc.code == wsman.OPERATION_TIMED_OUT


def _is_fault(exc: BaseException) -> bool:
    """Whether the host answered with a WSMan fault (it refused the request; the connection is fine)."""
    from pypsrp.exceptions import WSManFaultError

    return isinstance(exc, WSManFaultError)


def _refused_unread(exc: BaseException) -> bool:
    """A 401, or a 400 for a body the host could not decrypt: the request was not processed."""
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError

    return isinstance(exc, AuthenticationError) or (isinstance(exc, WinRMTransportError) and exc.code == 400)


def _never_sent(exc: BaseException) -> bool:
    """Whether the request provably never reached WinRM (refused connection, rejected authentication)."""
    import requests
    from pypsrp.exceptions import AuthenticationError

    if isinstance(exc, (AuthenticationError, requests.exceptions.ConnectTimeout)):
        return True
    if isinstance(exc, WinRMAuthenticationError):
        return True
    text = str(exc)
    return isinstance(exc, requests.exceptions.ConnectionError) and (
        "NewConnectionError" in text or "Failed to establish a new connection" in text
    )


def _short(exc: BaseException) -> str:
    """An exception's gist, without urllib3's nesting."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the host closed the connection without answering"
    if "Read timed out" in text:
        return "no answer in time"
    return text if len(text) <= 300 else text[:300] + "…"


def _describe(transport: WinRMTransport, exc: BaseException, operation: str) -> WinRMError:
    import requests
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

    if isinstance(exc, WinRMError):
        return exc
    host = transport.host
    url = transport.url
    facts: dict[str, Any] = {"url": url, "operation": operation}
    if isinstance(exc, WSManFaultError):
        code = exc.code if isinstance(exc.code, int) else None
        reason = (exc.reason or "no reason given").strip()
        if code == wsman.SHELL_NOT_FOUND:
            text = f"the PowerShell session on {host} is gone ({reason})"
        elif code == 5:
            text = (
                f"{host} denied access to {operation} (WSMan fault 5: {reason}); the user needs to be allowed "
                f"to use the {transport.configuration} session configuration (usually: a member of the "
                "host's Administrators or Remote Management Users group)"
            )
        else:
            text = f"{host} could not {operation}: {reason} (WSMan fault {exc.code})"
        return WinRMError(text, code=code, reason=reason, **facts)
    if isinstance(exc, AuthenticationError):
        who = f"user {transport.username!r}" if transport.username else "the current user"
        return WinRMAuthenticationError(
            f"{host} rejected the credentials of {who} ({transport.auth} authentication) when asked to "
            f"{operation}: check the user name (DOMAIN\\user or user@domain) and the password, and that "
            f"{transport.auth} is enabled on the host's WinRM service",
            code=401,
            **facts,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return WinRMError(
            f"the TLS connection to {url} failed ({_short(exc)}): if the host's certificate comes from a "
            "private CA, give that CA's certificate with ca_bundle (verify=False turns checking off)",
            **facts,
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return WinRMError(
            f"could not connect to {url} within {transport.connection_timeout:g} s when asked to {operation}",
            **facts,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return WinRMError(
            f"{host} did not answer within {transport.operation_timeout + 5:g} s when asked to {operation}",
            **facts,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _never_sent(exc):
            text = f"could not connect to {url} to {operation}: {_short(exc)}"
        else:
            text = f"the connection to {url} broke when asked to {operation}: {_short(exc)}"
        return WinRMError(text, **facts)
    if isinstance(exc, WinRMTransportError):
        text = " ".join(str(exc.response_text or "no content").split())[:300]
        return WinRMError(
            f"{host} answered HTTP {exc.code} when asked to {operation}: {text}", code=exc.code, **facts
        )
    return WinRMError(f"could not {operation} on {host}: {type(exc).__name__}: {_short(exc)}", **facts)


# --- configuration helpers -----------------------------------------------------------------------


def _split_host(
    host: str, scheme: str | None, port: int | None, path: str
) -> tuple[str, Literal["https", "http"], int, str]:
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("the winrm transport needs a host name")
    host = host.strip()
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"host {host!r} is not a host name or an http(s):// URL")
        if scheme is not None and scheme != parts.scheme:
            raise ConfigError(f"host {host!r} says {parts.scheme} but scheme is {scheme!r}")
        scheme = parts.scheme
        if parts.port is not None:
            port = parts.port
        if parts.path.strip("/"):
            path = parts.path.strip("/")
        host = parts.hostname
    elif "/" in host or " " in host:
        raise ConfigError(f"host {host!r} is not a host name (give the name only, or a URL)")
    scheme = scheme or "https"
    if scheme not in ("https", "http"):
        raise ConfigError(f"scheme {scheme!r} is not 'https' or 'http'")
    if port is None:
        port = 5986 if scheme == "https" else 5985
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"port {port!r} is not a TCP port (1 to 65535)")
    if not isinstance(path, str) or not path.strip("/"):
        raise ConfigError(f"path {path!r} is not a URL path like 'wsman'")
    return host, scheme, port, path.strip("/")  # type: ignore[return-value]


def _check_seconds(label: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{label} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{label} must be {'zero or ' if allow_zero else ''}positive, not {value!r}")


def _existing_file(label: str, value: str | os.PathLike[str] | None) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{label} {str(path)!r} is not a file")
    return path


def _options_from_table(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    import difflib

    options: dict[str, Any] = {}
    for key, value in table.items():
        if key not in WINRM_VARIABLES:
            close = difflib.get_close_matches(key, list(WINRM_VARIABLES), n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(WINRM_VARIABLES)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        if key == "password":
            if not isinstance(value, (str, Secret)):
                raise ConfigError(
                    f"{where}: password must be a string ('env:NAME', 'file:PATH' or the value)"
                )
        elif key in _BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
        elif key in _INT_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: {key} must be a whole number, not {value!r}")
        elif key in _NUMBER_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key} must be a number of seconds, not {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
        options[key] = value
    return options


def _options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    import difflib

    known = set(WINRM_VARIABLES.values())
    for variable in environ:
        if variable.startswith("PSWRAP_WINRM_") and variable not in known:
            close = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.8)
            if close:
                log.warning("%s is not a pswrap setting; did you mean %s?", variable, close[0])
    options: dict[str, Any] = {}
    for name, variable in WINRM_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        if name == "password":
            options[name] = Secret(environ[variable].rstrip("\r\n"), variable)
        elif name in _BOOL_OPTIONS:
            lowered = raw.lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigError(f"{variable}: {raw!r} is not true/false")
            options[name] = lowered in ("1", "true", "yes", "on")
        elif name in _INT_OPTIONS:
            try:
                options[name] = int(raw)
            except ValueError:
                raise ConfigError(f"{variable}: {raw!r} is not a whole number") from None
        elif name in _NUMBER_OPTIONS:
            try:
                options[name] = float(raw)
            except ValueError:
                raise ConfigError(f"{variable}: {raw!r} is not a number of seconds") from None
        else:
            options[name] = raw
    return options
