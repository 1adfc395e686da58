"""A real OpenSSH server for the SSH transport's tests: Debian's ``sshd`` on a loopback port.

:class:`SSHServer` writes a temporary configuration (its own host keys, authorized_keys, pid file,
``ListenAddress 127.0.0.1``, a free port) and runs ``sshd -D -e -f <config>``. Its subsystems:

- ``powershell``: the real pwsh (``pwsh -sshs -NoLogo -NoProfile`` through a wrapper that sets PATH,
  HOME and DOTNET_ROOT, since sshd runs subsystems with a clean environment), when there is one;
- ``standin``: the pwsh stand-in (``-sshs``), configured through :attr:`SSHServer.standin_config`;
- ``nopwsh``: a path where no pwsh is (the host without PowerShell).

Tests that need sshd skip without it, or fail where ``PSWRAP_REQUIRE_SSHD=1`` (CI sets it once it has
installed openssh-server). :class:`TcpProxy` sits between client and server to drop or freeze
connections the way a network does. Everything binds to 127.0.0.1 and ends with the test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests import realpwsh

SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
)
SSH_KEYGEN = shutil.which("ssh-keygen")
REQUIRED = os.environ.get("PSWRAP_REQUIRE_SSHD", "") not in ("", "0")
ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "tests" / "standins" / "powershell" / "entry.py"
STANDIN_ENV = "PSWRAP_STANDIN_CONFIG"


def require() -> str:
    """The sshd path; skips the calling test without one (fails it when PSWRAP_REQUIRE_SSHD is set)."""
    if SSHD is None or SSH_KEYGEN is None:
        reason = "needs OpenSSH's sshd and ssh-keygen (Debian: openssh-server); not found"
        if REQUIRED:
            pytest.fail(reason + ", and PSWRAP_REQUIRE_SSHD=1 says it must run", pytrace=False)
        pytest.skip(reason)
    return SSHD


def keygen(path: Path, kind: str, passphrase: str = "", comment: str = "pswrap-test") -> Path:
    """An OpenSSH key pair at ``path`` (and ``path.pub``)."""
    assert SSH_KEYGEN is not None
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", kind, *bits, "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return path


def fingerprint_of(public_key: Path) -> str:
    """``ssh-keygen -lf``'s SHA256 fingerprint of a public key file."""
    assert SSH_KEYGEN is not None
    out = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return out.split()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def watch(argv: list[str]) -> None:
    """Run ``argv`` until stdin closes, then kill it and everything it started (the watchdog)."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        sys.stdin.buffer.read()
    finally:
        kill_all([*descendants(process.pid), process.pid])
        process.wait()


_WATCHDOG = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tests.sshserver import watch; watch(sys.argv[2:])"
)


class SSHServer:
    """One sshd with its own directory, keys and configuration."""

    def __init__(self, directory: Path, *, extra: str = "", port: int | None = None) -> None:
        require()
        self.dir = directory
        self.dir.chmod(0o755)  # the test user's subsystem reads the stand-in's config from here
        self.extra = extra
        self.port = port or free_port()
        self.host_keys = {kind: self.dir / f"ssh_host_{kind}_key" for kind in ("ed25519", "ecdsa", "rsa")}
        for kind, path in self.host_keys.items():
            if not path.exists():
                keygen(path, kind)
        self.client_key = self.dir / "id_ed25519"
        if not self.client_key.exists():
            keygen(self.client_key, "ed25519")
        self.authorized_keys = self.dir / "authorized_keys"
        if not self.authorized_keys.exists():
            self.authorized_keys.write_text(self.client_key.with_suffix(".pub").read_text())
        self.authorized_keys.chmod(0o644)
        self.standin_config = self.dir / "standin.json"
        if not self.standin_config.exists():
            self.standin_config.write_text("{}")
        self.standin_config.chmod(0o644)
        self.log = self.dir / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_wrappers()
        self.start()

    @property
    def user(self) -> str:
        import getpass

        return getpass.getuser()

    def authorize(self, public_key: Path) -> None:
        with self.authorized_keys.open("a") as file:
            file.write(public_key.read_text())

    def known_hosts_line(self, kind: str = "ed25519") -> str:
        public = self.host_keys[kind].with_suffix(".pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n"

    def fingerprint(self, kind: str = "ed25519") -> str:
        return fingerprint_of(self.host_keys[kind].with_suffix(".pub"))

    @property
    def env_file(self) -> Path:
        return self.dir / "subsystem.env"

    def subsystem_env(self, **variables: str) -> None:
        """Environment variables for the real pwsh subsystem's next sessions (none: clear them)."""
        import shlex

        self.env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items()))

    def _write_wrappers(self) -> None:
        home = os.environ.get("HOME", "/root")
        real = realpwsh.PWSH
        lines = {
            "standin": f"exec '{sys.executable}' '{ENTRY}' -sshs -NoLogo -NoProfile",
            "nopwsh": f"exec '{self.dir}/no-such-dir/pwsh' -sshs -NoLogo -NoProfile",
        }
        if real:
            path = f"{Path(real).parent}:/usr/local/bin:/usr/bin:/bin"
            dotnet = os.environ.get("DOTNET_ROOT")
            lines["powershell"] = (
                f"export PATH='{path}' HOME='{home}'\n"
                + (f"export DOTNET_ROOT='{dotnet}'\n" if dotnet else "")
                + f"[ -f '{self.env_file}' ] && . '{self.env_file}'\n"
                + f"exec '{real}' -sshs -NoLogo -NoProfile"
            )
        self.subsystems: dict[str, Path] = {}
        for name, body in lines.items():
            wrapper = self.dir / f"subsystem-{name}"
            env = f"export {STANDIN_ENV}='{self.standin_config}'\n" if name == "standin" else ""
            wrapper.write_text(f"#!/bin/sh\n{env}{body}\n")
            wrapper.chmod(0o755)
            self.subsystems[name] = wrapper

    def config_text(self) -> str:
        root = os.geteuid() == 0
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            *(f"HostKey {path}" for path in self.host_keys.values()),
            f"PidFile {self.dir}/sshd.pid",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",  # the temporary directory sits under the world-writable /tmp
            "UsePAM no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin yes" if root else "",
            "LogLevel VERBOSE",
            "MaxStartups 50",
            *(f"Subsystem {name} {path}" for name, path in self.subsystems.items()),
            self.extra,
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def start(self) -> None:
        assert SSHD is not None
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        config = self.dir / "sshd_config"
        config.write_text(self.config_text())
        seen = len(self.log.read_bytes()) if self.log.exists() else 0
        log = self.log.open("ab")
        # A watchdog runs sshd and ends it (and its sessions) when this process's pipe to it closes:
        # sshd stops even if the test process is killed.
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(ROOT), SSHD, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            if f"port {self.port}".encode() in self.log.read_bytes()[seen:]:
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start listening: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop sshd and every session it started (as a host's restart does)."""
        process, self.process = self.process, None
        if process is None:
            return
        kill_all(descendants(process.pid))
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`drop` cuts the live connections, :meth:`freeze`
    stops forwarding on them without closing (a network that swallows packets). New connections are
    forwarded normally. ``upstream_bytes`` counts what clients sent."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.upstream_bytes = 0
        self.captured = bytearray()  # what clients sent, as it crossed the network
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="test-proxy-accept").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            frozen = threading.Event()
            with self._lock:
                self._pairs.append((client, server, frozen))
            for a, b, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, frozen, up), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, frozen: threading.Event, up: bool) -> None:
        try:
            while data := source.recv(65536):
                if frozen.is_set():
                    continue  # swallowed
                if up:
                    self.upstream_bytes += len(data)
                    self.captured += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not frozen.is_set():
                for sock in (source, sink):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server, _ in pairs:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def freeze(self) -> None:
        with self._lock:
            for _, _, frozen in self._pairs:
                frozen.set()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.drop()


class SilentListener:
    """Accepts TCP connections and never says a word (a host whose sshd hangs)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="test-silent-accept").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._held.append(client)

    def close(self) -> None:
        # shutdown first: a socket closed while another thread is blocked in accept() keeps listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self._held:
            sock.close()


def make_server_dir(prefix: str) -> Path:
    """A fresh directory under the system temp dir (readable by the test user, removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
