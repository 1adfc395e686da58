"""Remote runners over SSH: PowerShell on any host with sshd, through its ``powershell`` subsystem.

The host's sshd runs the subsystem as ``pwsh -sshs -NoLogo``, which speaks exactly the out-of-process
packets of a local ``pwsh -s``. So this transport is the local one with a different byte pipe: an SSH
channel (:class:`~._ssh_link.ChannelPipe`) instead of a process's stdio, under the same session
(:class:`~._outofproc_session.OutOfProcConnection`: framing, PSRP client, stop, timeouts, faults).

SSH is paramiko's: it is synchronous, like the threads that move the session's bytes, so a channel's
``recv``/``sendall`` drop in where a pipe's ``read``/``write`` were. Host keys are checked before any
credential is sent (:class:`~._ssh_link.HostKeyPolicy`); a connection that breaks fails the running
invocations (what arrived is kept) and the next call connects again.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from pswrap.errors import ConfigError
from pswrap.secret import Secret, get_logger
from pswrap.transports._outofproc_session import OutOfProcTransport, Pipe

if TYPE_CHECKING:
    from pswrap.config import Settings
    from pswrap.transports._ssh_link import ChannelPipe, Endpoint, HostKeyPolicy

__all__ = ["SSH_VARIABLES", "SSHTransport", "exchange_transport", "split_ssh_host"]

log = get_logger(__name__)

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")

#: Each option of :meth:`SSHTransport.from_settings` and the environment variable it is read from.
SSH_VARIABLES: Mapping[str, str] = {
    name: f"PSWRAP_SSH_{name.upper()}"
    for name in (
        "host",
        "port",
        "username",
        "key_file",
        "passphrase",
        "password",
        "agent",
        "known_hosts",
        "host_key_fingerprint",
        "accept_new_host_key",
        "subsystem",
        "proxy_jump",
        "keepalive",
        "connect_timeout",
        "open_timeout",
        "pool_size",
    )
}
_SECRETS = ("passphrase", "password")
_BOOLS = ("agent", "accept_new_host_key")
_INTS = ("port", "pool_size")
_NUMBERS = ("keepalive", "connect_timeout", "open_timeout")
_PATHS = ("key_file", "known_hosts")


def split_ssh_host(text: str) -> tuple[str, str | None, int | None]:
    """``host``, ``user@host``, ``user@host:port`` or ``ssh://user@host:port`` as (host, user, port)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the ssh transport needs a host name")
    raw = text.strip()
    spec = raw if raw.startswith("ssh://") else f"ssh://{raw}"
    if "://" in raw and not raw.startswith("ssh://"):
        raise ConfigError(f"host {raw!r} is not a host name, user@host[:port] or an ssh:// URL")
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"host {raw!r} is not a host name, user@host[:port] or an ssh:// URL: {exc}"
        ) from None
    if not parts.hostname or parts.path.strip("/") or parts.query or parts.password is not None:
        raise ConfigError(
            f"host {raw!r} is not a host name, user@host[:port] or an ssh:// URL (no path, no password)"
        )
    user = unquote(parts.username) if parts.username else None
    return parts.hostname, user, port


class SSHTransport(OutOfProcTransport):
    """PowerShell on a remote host over SSH, through the host's ``powershell`` subsystem.

    ``host``: a name, ``user@host:port`` or ``ssh://user@host:port``. ``username`` defaults to the
    local user. Credentials: ``key_file`` (ed25519, ECDSA or RSA; ``passphrase`` for an encrypted
    one), keys in an SSH agent (``agent``: ``None`` uses the agent when ``SSH_AUTH_SOCK`` is set and
    no key file is given), ``password``. Secrets may be strings or :class:`pswrap.Secret` s.

    The host key is checked before any credential is sent: against ``known_hosts`` (OpenSSH files,
    default ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``) or the pinned
    ``host_key_fingerprint`` (``SHA256:…``). An unknown host is refused unless
    ``accept_new_host_key`` (then its key is added to the first known_hosts file); a changed or
    revoked key is always refused (:class:`pswrap.SSHHostKeyError`).

    ``subsystem``: the sshd subsystem running ``pwsh -sshs``. ``proxy_jump``: ``[user@]host[:port]``
    of a jump host (same credentials and known_hosts). ``keepalive``: seconds between keepalive
    messages on an idle connection (``None``: none). ``connect_timeout``: how long connecting,
    the handshake and authentication may each take; ``open_timeout``: how long pwsh may take to open
    the session (and to acknowledge each new pipeline). ``pool_size``: invocations at once.
    """

    name: ClassVar[str] = "ssh"
    persistent: ClassVar[bool] = True

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        username: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
        passphrase: str | Secret | None = None,
        password: str | Secret | None = None,
        agent: bool | None = None,
        known_hosts: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
        host_key_fingerprint: str | None = None,
        accept_new_host_key: bool = False,
        subsystem: str = "powershell",
        proxy_jump: str | None = None,
        keepalive: float | None = 30.0,
        connect_timeout: float = 30.0,
        open_timeout: float = 60.0,
        pool_size: int = 1,
        stop_grace: float = 5.0,
    ) -> None:
        name, url_user, url_port = split_ssh_host(host)
        if url_port is not None and port is not None and url_port != port:
            raise ConfigError(f"host {host!r} says port {url_port} but port is {port!r}")
        port = url_port if url_port is not None else (22 if port is None else port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"port {port!r} is not a TCP port (1 to 65535)")
        if url_user and username and url_user != username:
            raise ConfigError(f"host {host!r} names user {url_user!r} but username is {username!r}")
        username = url_user or username or getpass.getuser()
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ConfigError(f"pool_size must be a whole number of at least 1, not {pool_size!r}")
        for label, value in (
            ("connect_timeout", connect_timeout),
            ("open_timeout", open_timeout),
            ("stop_grace", stop_grace),
            ("keepalive", 1 if keepalive is None else keepalive),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{label} must be a positive number of seconds, not {value!r}")
        if not isinstance(subsystem, str) or not subsystem.strip() or any(c.isspace() for c in subsystem):
            raise ConfigError(f"subsystem {subsystem!r} is not a subsystem name like 'powershell'")
        if host_key_fingerprint is not None:
            host_key_fingerprint = host_key_fingerprint.strip()
            if not host_key_fingerprint.startswith("SHA256:") or len(host_key_fingerprint) != 50:
                raise ConfigError(
                    f"host_key_fingerprint {host_key_fingerprint!r} is not a SHA256 fingerprint as "
                    "ssh-keygen -lf prints it (SHA256: and 43 base64 characters)"
                )
        key_path = None
        if key_file is not None and str(key_file):
            key_path = Path(key_file).expanduser()
            if not key_path.is_file():
                raise ConfigError(f"key_file {str(key_path)!r} is not a file")
        if passphrase is not None and key_path is None:
            raise ConfigError("a passphrase is set but no key_file is")
        if known_hosts is None:
            paths = [Path(p).expanduser() for p in DEFAULT_KNOWN_HOSTS]
        elif isinstance(known_hosts, (str, os.PathLike)):
            paths = [Path(known_hosts).expanduser()]
        else:
            paths = [Path(p).expanduser() for p in known_hosts]
        if not paths:
            raise ConfigError("known_hosts must name at least one file")
        self.host = name
        self.port = port
        self.username = username
        self.key_file = key_path
        self.passphrase = _secret(passphrase, "ssh key passphrase")
        self.password = _secret(password, "ssh password")
        self.agent = agent
        self.known_hosts = paths
        self.host_key_fingerprint = host_key_fingerprint
        self.accept_new_host_key = bool(accept_new_host_key)
        self.subsystem = subsystem
        self.proxy_jump = proxy_jump
        if proxy_jump is not None:
            split_ssh_host(proxy_jump)  # checked now, not at the first call
        self.keepalive = None if keepalive is None else float(keepalive)
        self.connect_timeout = float(connect_timeout)
        self.open_timeout = float(open_timeout)
        self.pool_size = pool_size
        self.stop_grace = float(stop_grace)
        #: How many SSH connections this transport has opened (a dropped one opens another).
        self.connections_opened = 0
        self._session = f"the SSH session with {self.host}"
        super().__init__()

    # --- configuration ---------------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls, settings: Settings, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SSHTransport:
        """The transport a profile's ``[profiles.X.ssh]`` table describes, else the ``PSWRAP_SSH_*``
        variables (:data:`SSH_VARIABLES`). ``overrides`` (such as ``host`` from the command line) win.
        ``password``/``passphrase`` in a table are best ``env:NAME`` or ``file:PATH`` references."""
        from pswrap.config import resolve_secret

        environ = os.environ if environ is None else environ
        table = settings.extra.get("ssh")
        options: dict[str, Any]
        if table is not None:
            where = f"[ssh] of {settings.origin.description}"
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where} must be a table, like [profiles.NAME.ssh]")
            options = _options_from_table(table, where)
            for name in _SECRETS:
                if options.get(name) is not None:
                    options[name] = resolve_secret(
                        options[name],
                        where=f"{name} in {where}",
                        name=f"ssh {name}",
                        base_dir=settings.origin.base_dir,
                        environ=environ,
                    )
            base_dir = settings.origin.base_dir

            def resolve(value: str) -> Path:
                path = Path(value).expanduser()
                return path if base_dir is None or path.is_absolute() else base_dir / path

            for name in _PATHS:
                value = options.get(name)
                if isinstance(value, str):
                    options[name] = resolve(value)
                elif isinstance(value, list):
                    options[name] = [resolve(v) for v in value]
        else:
            options = _options_from_env(environ)
        options.update({k: v for k, v in overrides.items() if v is not None})
        if not options.get("host"):
            where = (
                f"host in [ssh] of {settings.origin.description}"
                if table is not None
                else f"{SSH_VARIABLES['host']}, or host in the profile's [profiles.NAME.ssh] table"
            )
            raise ConfigError(f"the ssh transport needs a host: set {where} (or pass --host ssh://…)")
        return cls(**options)

    @property
    def url(self) -> str:
        """``ssh://user@host:port``."""
        return f"ssh://{self._endpoint().label}"

    def __repr__(self) -> str:
        return f"SSHTransport({self.url!r}, subsystem={self.subsystem!r}, pool_size={self.pool_size})"

    def _endpoint(self) -> Endpoint:
        from pswrap.transports._ssh_link import Endpoint

        return Endpoint(
            self.host,
            self.port,
            self.username,
            self.key_file,
            self.passphrase,
            self.password,
            self.agent,
        )

    def _policy(self) -> HostKeyPolicy:
        from pswrap.transports._ssh_link import HostKeyPolicy, KnownHosts

        return HostKeyPolicy(
            KnownHosts(self.known_hosts), self.host_key_fingerprint, self.accept_new_host_key
        )

    def connect_pipe(self, report: dict[str, str] | None = None) -> ChannelPipe:
        """A new SSH connection and a channel running the subsystem (used by :meth:`open` and ``doctor``;
        ``report`` gets how the host key was trusted and the login method)."""
        from pswrap.transports._ssh_link import ChannelPipe, Endpoint, connect

        endpoint = self._endpoint()
        timeout = self.connect_timeout
        jump = None
        sock = None
        if self.proxy_jump is not None:
            jump_host, jump_user, jump_port = split_ssh_host(self.proxy_jump)
            jump_endpoint = Endpoint(
                jump_host,
                jump_port or 22,
                jump_user or self.username,
                self.key_file,
                self.passphrase,
                self.password,
                self.agent,
            )
            jump = connect(jump_endpoint, self._policy(), timeout=timeout, keepalive=self.keepalive)
            try:
                sock = jump.open_channel(
                    "direct-tcpip", (self.host, self.port), ("127.0.0.1", 0), timeout=timeout
                )
            except Exception as exc:
                jump.close()
                from pswrap.errors import SSHError

                raise SSHError(
                    f"the jump host {jump_endpoint.label} did not forward to {endpoint.label}: {exc}",
                    host=endpoint.label,
                ) from None
        try:
            transport = connect(
                endpoint, self._policy(), timeout=timeout, keepalive=self.keepalive, sock=sock, report=report
            )
        except BaseException:
            if jump is not None:
                jump.close()
            raise
        try:
            return ChannelPipe(transport, endpoint, self.subsystem, timeout, jump)
        except BaseException:
            transport.close()
            if jump is not None:
                jump.close()
            raise

    # --- the Transport interface (the rest is OutOfProcTransport's) --------------------------------

    def _new_pipe(self) -> Pipe:
        pipe = self.connect_pipe()
        self.connections_opened += 1
        return pipe


def exchange_transport(settings: Settings, provider: Any = None, **options: Any) -> SSHTransport:
    """The SSH transport of :class:`pswrap.ExchangeOnline`: :meth:`SSHTransport.from_settings` with
    ``options`` winning, and one runspace, where the module's connection lives."""
    pool_size = options.pop("pool_size", None)
    if pool_size not in (None, 1):
        raise ConfigError(
            "an Exchange Online session over SSH has one runspace (the module's connection lives in it): "
            f"pool_size {pool_size!r} does not apply; open several sessions to run cmdlets in parallel"
        )
    return SSHTransport.from_settings(settings, pool_size=1, **options)


# --- configuration helpers -----------------------------------------------------------------------


def _secret(value: str | Secret | None, name: str) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"the {name} must be a string or a Secret, not {type(value).__name__}")
    return Secret(value, name)


def _options_from_table(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    import difflib

    options: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SSH_VARIABLES:
            close = difflib.get_close_matches(key, list(SSH_VARIABLES), n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(SSH_VARIABLES)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        if key in _BOOLS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
        elif key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: {key} must be a whole number, not {value!r}")
        elif key in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key} must be a number of seconds, not {value!r}")
            value = float(value)
        elif key == "known_hosts" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: known_hosts must be a path or a list of paths")
        elif not isinstance(value, (str, Secret)):
            raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
        options[key] = value
    return options


def _options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    import difflib

    known = set(SSH_VARIABLES.values())
    for variable in environ:
        if variable.startswith("PSWRAP_SSH_") and variable not in known:
            close = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.8)
            if close:
                log.warning("%s is not a pswrap setting; did you mean %s?", variable, close[0])
    options: dict[str, Any] = {}
    for name, variable in SSH_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        if name in _SECRETS:
            options[name] = Secret(environ[variable].rstrip("\r\n"), variable)
        elif name in _BOOLS:
            lowered = raw.lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigError(f"{variable}: {raw!r} is not true/false")
            options[name] = lowered in ("1", "true", "yes", "on")
        elif name in _INTS:
            try:
                options[name] = int(raw)
            except ValueError:
                raise ConfigError(f"{variable}: {raw!r} is not a whole number") from None
        elif name in _NUMBERS:
            try:
                options[name] = float(raw)
            except ValueError:
                raise ConfigError(f"{variable}: {raw!r} is not a number of seconds") from None
        elif name == "known_hosts":
            options[name] = raw.split(os.pathsep)
        else:
            options[name] = raw
    return options
