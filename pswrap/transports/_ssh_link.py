"""The SSH transport's machinery: host keys, authentication, and the channel a session runs on.

:func:`connect` opens an authenticated paramiko ``Transport`` (through a jump host when asked),
checking the host key against OpenSSH ``known_hosts`` files (hashed entries, wildcards, ``[host]:port``,
``@revoked``) or a pinned fingerprint first. :class:`ChannelPipe` is an SSH channel to the
``powershell`` subsystem, as the :class:`~._outofproc_session.Pipe` the out-of-process session runs on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pswrap.errors import ConfigError, SSHAuthenticationError, SSHError, SSHHostKeyError
from pswrap.secret import Secret, get_logger

if TYPE_CHECKING:
    import paramiko

    from pswrap.transports._process import StreamTail

__all__ = ["ChannelPipe", "Endpoint", "KnownHosts", "connect", "fingerprint"]

log = get_logger(__name__)

# pwsh exits with 4000 (160 on Linux) when its input ends; a shell's "command not found" is 127.
_STDIN_CLOSED_CODES = (4000, 160)
_NOT_FOUND = 127
_tags = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and as whom, with the credentials to try."""

    host: str
    port: int
    username: str
    key_file: Path | None = None
    passphrase: Secret | None = None
    password: Secret | None = None
    agent: bool | None = None

    @property
    def label(self) -> str:
        """``user@host:port``, as messages name the host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.username}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files list the host under (``[host]:port`` unless the port is 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH shows it: ``SHA256:`` and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


# --- known_hosts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: Path
    line: int
    marker: str | None
    key_type: str
    blob: bytes


class KnownHosts:
    """OpenSSH known_hosts files: which keys they list for a host. Read when asked, never cached."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def entries(self, name: str) -> list[_Entry]:
        """Every entry whose host patterns match ``name`` (``host`` or ``[host]:port``)."""
        found = []
        for path in self.paths:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"known_hosts file {str(path)!r} cannot be read: {exc}") from None
            for number, raw in enumerate(text.splitlines(), 1):
                fields = raw.split()
                if not fields or fields[0].startswith("#"):
                    continue
                marker = None
                if fields[0].startswith("@"):
                    marker, fields = fields[0], fields[1:]
                if len(fields) < 3 or marker not in (None, "@revoked"):
                    continue  # malformed, or @cert-authority (host certificates are not checked here)
                try:
                    blob = base64.b64decode(fields[2], validate=True)
                except ValueError:
                    continue
                if _matches(fields[0], name):
                    found.append(_Entry(path, number, marker, fields[1], blob))
        return found

    def add(self, name: str, key: paramiko.PKey) -> Path:
        """Append ``key`` for ``name`` (hashed, as ``HashKnownHosts yes`` writes) to the first file."""
        path = self.paths[0]
        salt = os.urandom(20)
        digest = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
        hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
        line = f"{hashed} {key.get_name()} {key.get_base64()}\n"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        existing = path.read_bytes() if path.exists() else b""
        with path.open("a", encoding="utf-8") as file:
            if existing and not existing.endswith(b"\n"):
                file.write("\n")
            file.write(line)
        return path


def _matches(patterns: str, name: str) -> bool:
    if patterns.startswith("|1|"):
        try:
            _, _, salt, digest = patterns.split("|")
            expected = hmac.new(base64.b64decode(salt), name.encode("utf-8"), hashlib.sha1).digest()
            return hmac.compare_digest(expected, base64.b64decode(digest))
        except ValueError:
            return False
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if _wildcard(pattern).fullmatch(name.lower()):
            if negated:
                return False
            matched = True
    return matched


def _wildcard(pattern: str) -> re.Pattern[str]:
    """OpenSSH's host pattern: ``*`` and ``?`` are wildcards, everything else (``[``, ``]``) literal."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.compile("".join(parts))


@dataclass(frozen=True)
class HostKeyPolicy:
    """How the host key is checked: known_hosts files, a pinned fingerprint, accepting new keys."""

    known_hosts: KnownHosts
    fingerprint: str | None = None
    accept_new: bool = False

    def preferred_types(self, endpoint: Endpoint) -> list[str]:
        """The key types known for the host, so that the host is asked for one of those first."""
        return [e.key_type for e in self.known_hosts.entries(endpoint.known_hosts_name) if not e.marker]

    def check(self, endpoint: Endpoint, key: paramiko.PKey) -> str:
        """Refuse an unknown, changed or revoked key (adding an unknown one when ``accept_new``); say
        why the key is trusted."""
        name = endpoint.known_hosts_name
        offered = fingerprint(key)
        kind = key.get_name()
        where = f"{endpoint.host} (port {endpoint.port})"

        def refuse(message: str, known: tuple[str, ...] = ()) -> SSHHostKeyError:
            return SSHHostKeyError(
                message, host=endpoint.label, fingerprint=offered, key_type=kind, known=known
            )

        if self.fingerprint is not None:
            if hmac.compare_digest(self.fingerprint, offered):
                return f"{kind} {offered}, the pinned host_key_fingerprint"
            raise refuse(
                f"HOST KEY MISMATCH for {where}: it offered {kind} {offered}, but host_key_fingerprint "
                f"is {self.fingerprint}. Someone may be intercepting the connection, or the host was "
                "reinstalled; pswrap refused to connect",
                (self.fingerprint,),
            )
        entries = self.known_hosts.entries(name)
        blob = key.asbytes()
        for entry in entries:
            if entry.marker == "@revoked" and entry.blob == blob:
                raise refuse(
                    f"the host key of {where} ({kind} {offered}) is marked @revoked in {entry.path} "
                    f"line {entry.line}: pswrap refused to connect"
                )
        for entry in entries:
            if entry.marker is None and entry.blob == blob:
                return f"{kind} {offered}, known ({entry.path} line {entry.line})"
        same_type = [e for e in entries if e.marker is None and e.key_type == kind]
        if same_type:
            known = tuple(_fingerprint_blob(e.blob) for e in same_type)
            lines = ", ".join(f"{e.path} line {e.line}" for e in same_type)
            raise refuse(
                f"HOST KEY CHANGED for {where}: it offered {kind} {offered}, but known_hosts ({lines}) "
                f"has {', '.join(known)}. Someone may be intercepting the connection (man in the middle), "
                "or the host was reinstalled: pswrap refused to connect. If the change is expected, "
                f"remove the old key (ssh-keygen -R '{name}') and connect again",
                known,
            )
        if self.accept_new:
            path = self.known_hosts.add(name, key)
            log.warning("added the host key of %s (%s %s) to %s", where, kind, offered, path)
            return f"{kind} {offered}, new: added to {path}"
        searched = ", ".join(str(p) for p in self.known_hosts.paths) or "no known_hosts file"
        raise refuse(
            f"the host key of {where} is not known ({kind} {offered}; looked in {searched}). Check the "
            "fingerprint with the host's administrator (ssh-keygen -lf on its host key), then add it to "
            f"known_hosts (ssh-keyscan -p {endpoint.port} {endpoint.host} >> ~/.ssh/known_hosts), pass "
            f"host_key_fingerprint='{offered}', or accept_new_host_key=True to trust it on first use"
        )


def _fingerprint_blob(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


# --- connecting -----------------------------------------------------------------------------------


def connect(
    endpoint: Endpoint,
    policy: HostKeyPolicy,
    *,
    timeout: float,
    keepalive: float | None,
    sock: socket.socket | paramiko.Channel | None = None,
    report: dict[str, str] | None = None,
) -> paramiko.Transport:
    """An authenticated SSH connection to ``endpoint`` (over ``sock``, a jump host's channel, if given).

    ``report`` gets ``host_key`` (why the key is trusted) and ``login`` (the method that worked)."""
    import paramiko

    label = endpoint.label
    if sock is None:
        try:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        except OSError as exc:
            raise SSHError(
                f"could not connect to {label}: {exc.strerror or exc}", host=label, reason=str(exc)
            ) from None
        sock.settimeout(None)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    try:
        preferred = policy.preferred_types(endpoint)
        options = transport.get_security_options()
        available = list(options.key_types)
        options.key_types = [t for t in preferred if t in available] + [
            t for t in available if t not in preferred
        ]
        negotiated = threading.Event()
        transport.start_client(event=negotiated)  # returns at once; the handshake runs in its thread
        if not negotiated.wait(timeout) or not transport.is_active():
            problem = transport.get_exception()
            reason = f"{problem}" if problem else "no answer"
            raise SSHError(
                f"{label} accepted the connection but did not complete an SSH handshake within "
                f"{timeout:g} s ({reason}): is it an SSH server?",
                host=label,
                reason=reason,
            )
        trusted = policy.check(endpoint, transport.get_remote_server_key())
        login = _authenticate(transport, endpoint)
        if report is not None:
            report.update(host_key=trusted, login=login)
        if keepalive:
            transport.set_keepalive(max(1, round(keepalive)))
    except BaseException:
        transport.close()
        raise
    return transport


def _load_key(endpoint: Endpoint) -> paramiko.PKey:
    import paramiko

    assert endpoint.key_file is not None
    path = endpoint.key_file
    passphrase = None if endpoint.passphrase is None else endpoint.passphrase.reveal()
    try:
        # paramiko hands the passphrase to cryptography, which takes only bytes
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)  # type: ignore[arg-type]
    except paramiko.PasswordRequiredException:
        raise ConfigError(f"key_file {str(path)!r} is encrypted: give its passphrase") from None
    except TypeError as exc:  # cryptography's way of saying the same for OpenSSH-format keys
        if "password" not in str(exc):
            raise
        raise ConfigError(f"key_file {str(path)!r} is encrypted: give its passphrase") from None
    except FileNotFoundError:
        raise ConfigError(f"key_file {str(path)!r} does not exist") from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        detail = "wrong passphrase, or not a private key" if passphrase else "not a private key"
        raise ConfigError(f"key_file {str(path)!r} cannot be read ({detail}: {exc})") from None


def _authenticate(transport: paramiko.Transport, endpoint: Endpoint) -> str:
    """Log in; the method that worked. Keys first (the key file, then the agent's), then the password."""
    agents: list[paramiko.Agent] = []
    try:
        return _log_in(transport, endpoint, agents)
    finally:
        for agent in agents:  # its keys sign through it, so it stays open until the login is over
            agent.close()


def _log_in(transport: paramiko.Transport, endpoint: Endpoint, agents: list[paramiko.Agent]) -> str:
    import paramiko

    user = endpoint.username
    offered: tuple[str, ...] = ()
    tried: list[str] = []
    try:
        transport.auth_none(user)
    except paramiko.BadAuthenticationType as exc:
        offered = tuple(exc.allowed_types)
    except paramiko.SSHException:
        pass
    if transport.is_authenticated():
        return "none (the host asked for no credentials)"
    keys: list[tuple[str, paramiko.PKey]] = []
    if endpoint.key_file is not None:
        keys.append((f"key_file {endpoint.key_file}", _load_key(endpoint)))
    use_agent = endpoint.agent
    if use_agent is None:
        use_agent = bool(os.environ.get("SSH_AUTH_SOCK")) and endpoint.key_file is None
    if use_agent:
        agent = paramiko.Agent()
        agents.append(agent)
        keys.extend(("the agent", key) for key in agent.get_keys())
    for source, key in keys:
        if offered and "publickey" not in offered:
            break
        tried.append(f"publickey ({key.get_name()} {fingerprint(key)} from {source})")
        try:
            transport.auth_publickey(user, key)
        except paramiko.AuthenticationException:
            continue
        except paramiko.SSHException as exc:
            raise SSHError(f"{endpoint.label}: authentication failed: {exc}", host=endpoint.label) from None
        if transport.is_authenticated():
            return tried[-1]
    if endpoint.password is not None and (
        not offered or "password" in offered or "keyboard-interactive" in offered
    ):
        tried.append("password")
        try:
            transport.auth_password(user, endpoint.password.reveal())
        except paramiko.AuthenticationException:
            pass
        except paramiko.SSHException as exc:
            raise SSHError(f"{endpoint.label}: authentication failed: {exc}", host=endpoint.label) from None
        if transport.is_authenticated():
            return "password"
    if not keys and endpoint.password is None:
        what = "no credentials were given (key_file, password, or a key in an SSH agent)"
    else:
        what = f"tried {', '.join(tried) if tried else 'nothing the host accepts'}"
    raise SSHAuthenticationError(
        f"{endpoint.label} refused the login: {what}; the host offers "
        f"{', '.join(offered) if offered else 'no method pswrap can use'}",
        host=endpoint.label,
        tried=tuple(tried),
        offered=offered,
    )


# --- the channel ----------------------------------------------------------------------------------


class ChannelPipe:
    """An SSH channel running the ``powershell`` subsystem, as a :class:`~._outofproc_session.Pipe`."""

    killed = "closed the SSH connection"

    def __init__(
        self,
        transport: paramiko.Transport,
        endpoint: Endpoint,
        subsystem: str,
        timeout: float,
        jump: paramiko.Transport | None = None,
    ) -> None:
        import paramiko

        self.transport = transport
        self.jump = jump
        self.endpoint = endpoint
        self.subsystem = subsystem
        self.name = f"ssh://{endpoint.label} (subsystem {subsystem})"
        self.tag = f"ssh-{next(_tags)}"
        self._write_lock = threading.Lock()
        try:
            self.channel = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHError(
                f"{endpoint.label} did not open an SSH session channel: {exc}", host=endpoint.label
            ) from None
        try:
            self.channel.invoke_subsystem(subsystem)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.channel.close()
            raise SSHError(
                f"{endpoint.host} has no {subsystem!r} SSH subsystem ({exc}): add the line "
                f"'Subsystem {subsystem} /usr/bin/pwsh -sshs -NoLogo' (the path of pwsh on that host; "
                f"c:/progra~1/powershell/7/pwsh.exe -sshs on Windows) to its sshd_config and restart sshd",
                host=endpoint.label,
                reason=str(exc),
            ) from None

    def read(self) -> bytes:
        return self.channel.recv(65536)

    def write(self, data: bytes) -> None:
        with self._write_lock:
            self.channel.sendall(data)

    def close_input(self) -> None:
        self.channel.shutdown_write()

    def read_errors(self, tail: StreamTail) -> None:
        try:
            while data := self.channel.recv_stderr(65536):
                tail.feed(data)
        except (OSError, EOFError):
            return

    @property
    def running(self) -> bool:
        return self.transport.is_active() and not self.channel.exit_status_ready()

    def wait(self, timeout: float | None) -> bool:
        return self.channel.status_event.wait(timeout)

    def kill(self) -> None:
        self.channel.close()
        self.transport.close()
        if self.jump is not None:
            self.jump.close()

    def ended(self) -> str:
        where = f"pwsh on {self.endpoint.host} (SSH subsystem {self.subsystem!r})"
        code = self.channel.exit_status if self.channel.status_event.is_set() else -1
        if code == -1:
            problem = self.transport.get_exception()
            detail = f" ({problem})" if problem else ""
            return f"the SSH connection to {self.endpoint.label} was lost{detail}"
        if code == _NOT_FOUND:  # sshd discards a subsystem's stderr: the exit code is all there is
            return (
                f"{where} could not be started (exit code 127: command not found): is PowerShell installed "
                f"on the host at the path its sshd_config 'Subsystem {self.subsystem}' line names?"
            )
        if code in _STDIN_CLOSED_CODES:
            return f"{where} rejected what it was sent and exited with code {code}"
        return f"{where} exited with code {code}"

    def release(self) -> None:
        self.kill()
