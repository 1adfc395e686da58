"""Child processes for the local transports: finding pwsh, starting it, killing its whole tree."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

from pswrap.config import child_environment
from pswrap.errors import ConfigError, TransportError

__all__ = ["StreamTail", "find_pwsh", "kill_tree", "spawn"]

_WINDOWS_POWERSHELL = ("powershell", "powershell.exe")


def find_pwsh(pwsh: str | os.PathLike[str] | Sequence[str] | None = None) -> list[str]:
    """The command that starts PowerShell, before pswrap's own arguments.

    ``None`` looks for ``pwsh`` on PATH (``pwsh.exe`` on Windows) and, on Windows, falls back to
    Windows PowerShell. A name or path is looked up the same way; a list is used as it is. Windows
    PowerShell (``powershell.exe``) gets ``-Version 5.1``. Raises :class:`pswrap.ConfigError`.
    """
    if pwsh is None:
        found = shutil.which("pwsh")
        if found is None and sys.platform == "win32":  # pragma: no cover - needs Windows
            found = shutil.which("powershell.exe")
        if found is None:
            raise ConfigError(
                "pwsh (PowerShell 7) was not found on PATH: install it (https://aka.ms/powershell) or "
                "pass pwsh='/path/to/pwsh'"
            )
        return _with_version(found)
    if isinstance(pwsh, (str, os.PathLike)):
        name = os.fspath(pwsh)
        found = shutil.which(name)
        if found is None:
            raise ConfigError(f"pwsh {name!r} was not found (not an executable file, nor a command on PATH)")
        return _with_version(found)
    command = [os.fspath(part) for part in pwsh]
    if not command:
        raise ConfigError("pwsh must not be an empty command")
    return command


def _with_version(path: str) -> list[str]:
    if os.path.basename(path).lower() in _WINDOWS_POWERSHELL:
        return [path, "-Version", "5.1"]
    return [path]


def spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its three standard streams piped, in a process group of its own, with an
    environment that holds no secret (pswrap's secret variables and any variable whose value is a
    secret pswrap has loaded, such as a profile's ``env:`` reference: every tenant's, in a fleet).
    """
    env = child_environment()
    try:
        if sys.platform == "win32":  # pragma: no cover - needs Windows
            flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                creationflags=flags,
                env=env,
            )
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        raise TransportError(f"could not start {argv[0]!r}: {exc}") from exc


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill the process and everything it started (its process group on POSIX, ``taskkill /T`` on Windows)."""
    if process.returncode is not None:
        return  # reaped: its pid (and group id) may belong to someone else now
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        subprocess.run(
            ["taskkill", "/T", "/F", "/PID", str(process.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        with contextlib.suppress(OSError):
            process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            process.kill()


class StreamTail:
    """The last ``limit`` bytes of a stream (pwsh's stderr), kept for error messages."""

    def __init__(self, limit: int = 8192) -> None:
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def drain(self, stream: IO[bytes]) -> None:
        """Read ``stream`` to its end into the tail (run it in a thread)."""
        try:
            while True:
                data = stream.read(65536)
                if not data:
                    return
                self.feed(data)
        except (OSError, ValueError):
            return

    def text(self, lines: int = 20) -> str:
        """The tail as text: its last ``lines`` non-empty lines."""
        with self._lock:
            data = b"".join(self._chunks)[-self._limit :]
        text = data.decode("utf-8", errors="replace")
        kept = [line.rstrip() for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])
