"""The default transport: one persistent ``pwsh -NoLogo -NoProfile -s`` (server mode) spoken to over PSRP.

One process serves every invocation of a session; a runspace pool of ``pool_size`` runspaces lets
that many run at once. Three threads per process move the bytes (stdout packets into the PSRP client,
the client's packets onto stdin, stderr into a bounded tail for error messages). When pwsh dies,
writes garbage or hangs past a timeout, the running invocations fail with a
:class:`pswrap.TransportError` that quotes pwsh's stderr, what arrived before stays with the caller,
and the next :meth:`LocalTransport.open` starts a fresh process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import ClassVar

from pswrap.transports._outofproc_session import OutOfProcTransport
from pswrap.transports._process import StreamTail, find_pwsh, kill_tree, spawn

__all__ = ["LocalTransport"]

SERVER_MODE_ARGS = ("-NoLogo", "-NoProfile", "-s")
# pwsh exits with 4000 (160 on Linux) when its stdin closes: expected after the pool is closed.
_STDIN_CLOSED_CODES = (4000, 160)


class LocalTransport(OutOfProcTransport):
    """A local PowerShell in server mode.

    ``pwsh``: the executable (see :func:`pswrap.transports.find_pwsh`); ``pool_size``: how many
    invocations can run at once (each runspace has its own variables and modules, so keep 1 when
    state must carry from one call to the next); ``open_timeout``: how long pwsh may take to start;
    ``stop_grace``: how long a stopped invocation or a closing process may take before its process
    tree is killed.
    """

    name: ClassVar[str] = "local"
    persistent: ClassVar[bool] = True
    _session = "the local PowerShell session"

    def __init__(
        self,
        *,
        pwsh: str | os.PathLike[str] | Sequence[str] | None = None,
        pool_size: int = 1,
        open_timeout: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a whole number of at least 1, not {pool_size!r}")
        self.pwsh = pwsh
        self.pool_size = pool_size
        self.open_timeout = open_timeout
        self.stop_grace = stop_grace
        #: How many pwsh processes this transport has started (a fault or a timeout starts another).
        self.processes_started = 0
        super().__init__()

    def _new_pipe(self) -> ProcessPipe:
        pipe = ProcessPipe([*find_pwsh(self.pwsh), *SERVER_MODE_ARGS])
        self.processes_started += 1
        return pipe

    @property
    def pid(self) -> int | None:
        """The process id of the current pwsh, if one is running."""
        connection = self._connection
        pipe = None if connection is None else connection.pipe
        return pipe.process.pid if isinstance(pipe, ProcessPipe) else None


class ProcessPipe:
    """A ``pwsh -s`` process's standard streams, as the :class:`~._outofproc_session.Pipe` it runs on."""

    killed = "killed the pwsh process"

    def __init__(self, argv: list[str]) -> None:
        self.name = argv[0]
        self.process = spawn(argv)
        self.tag = f"pwsh-{self.process.pid}"

    def read(self) -> bytes:
        assert self.process.stdout is not None
        return self.process.stdout.read(65536)

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        view = memoryview(data)
        while view:
            written = self.process.stdin.write(view)
            view = view[written or 0 :]

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def read_errors(self, tail: StreamTail) -> None:
        assert self.process.stderr is not None
        tail.drain(self.process.stderr)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def wait(self, timeout: float | None) -> bool:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        kill_tree(self.process)

    def ended(self) -> str:
        code = self.process.returncode
        if code in _STDIN_CLOSED_CODES:
            return f"pwsh (pid {self.process.pid}) rejected what it was sent and exited with code {code}"
        return f"pwsh (pid {self.process.pid}) exited with code {code}"

    def release(self) -> None:
        pass  # the reader threads close nothing; Popen's pipes close with the object
