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

import importlib.util
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pswrap.config import warn_if_readable_by_others
from pswrap.errors import ConfigError, InvocationNotStarted
from pswrap.secret import Secret, get_logger
from pswrap.transports import wsman
from pswrap.transports._winrm_shell import Shell, protect_pypsrp_logs
from pswrap.transports.base import Execution, Invocation, Transport

if TYPE_CHECKING:
    from pypsrp.wsman import WSMan

    from pswrap.config import Settings

__all__ = ["AUTH_METHODS", "ENCRYPTION_MODES", "WINRM_VARIABLES", "WinRMTransport", "exchange_transport"]

log = get_logger(__name__)

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
        max_envelope_size: int | None = None,
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
        if max_envelope_size is not None and (
            not isinstance(max_envelope_size, int)
            or isinstance(max_envelope_size, bool)
            or max_envelope_size < 8192
        ):
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
        if key_path is not None:
            warn_if_readable_by_others(key_path, "the WinRM certificate_key")
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
        #: The largest envelope pswrap sends and asks for; ``None``: what the host allows (see Shell.open).
        self.max_envelope_size = max_envelope_size
        #: How many shells (remote sessions) this transport has opened (a dropped shell opens another).
        self.shells_opened = 0
        self._lock = threading.Lock()
        self._shell: Shell | None = None

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
            where = (
                f"host in [winrm] of {settings.origin.description}"
                if table is not None
                else f"{WINRM_VARIABLES['host']}, or host in the profile's [profiles.NAME.winrm] table"
            )
            raise ConfigError(f"the winrm transport needs a host: set {where} (or pass --host)")
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
            shell = Shell(self)
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
    def application_private_data(self) -> dict[str, Any]:
        """What the host's PowerShell said about itself when the session opened: ``PSVersionTable``
        (``PSVersion``, ``PSEdition``, ``PSRemotingProtocolVersion``…) and what the session configuration
        adds; empty before :meth:`open`."""
        shell = self._shell
        return {} if shell is None else shell.client.application_private_data

    @property
    def healthy(self) -> bool:
        shell = self._shell
        return shell is not None and shell.healthy

    # --- for the shell ---------------------------------------------------------------------------

    def _new_wsman(self, envelope_size: int = wsman.DEFAULT_ENVELOPE_SIZE) -> WSMan:
        """A pypsrp WSMan: one HTTP session (connection, authentication, encryption context)."""
        from pypsrp.wsman import WSMan

        protect_pypsrp_logs()
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
                max_envelope_size=envelope_size,
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
