"""``pswrap.Session``: run PowerShell commands, scripts and templates, and get every stream back.

::

    with pswrap.Session() as session:                       # a persistent local pwsh (server mode)
        for process in session.invoke("Get-Process", Id=4):  # objects as they arrive
            print(process.ProcessName)
        result = session.script("param($n) 1..$n; Write-Warning 'done'", n=3)
        result.output, result.warnings                        # [1, 2, 3], [WarningRecord('done')]

Parameters are bound as parameters, never pasted into script text. A result reads lazily; reading it
raises :class:`pswrap.PowerShellError` for a terminating error (or any error with
``raise_on_error=True``) and :class:`pswrap.TransportError` when the session broke — once; the
exception's ``partial`` is the result itself, whose data is then readable.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

from pswrap.errors import (
    ConfigError,
    InvocationInterrupted,
    InvocationNotStarted,
    PowerShellError,
    PswrapError,
    TransportError,
)
from pswrap.objects import (
    DebugRecord,
    ErrorRecord,
    InformationRecord,
    ProgressRecord,
    Record,
    VerboseRecord,
    WarningRecord,
)
from pswrap.render import Templates
from pswrap.secret import get_logger
from pswrap.transports.base import Execution, Invocation, Outcome, State, Transport

__all__ = ["Result", "Session", "get_transport"]

#: PowerShell's records are logged here: warnings at WARNING, errors at ERROR, verbose and debug at
#: DEBUG, information at INFO.
powershell_log = get_logger("pswrap.powershell")
log = get_logger(__name__)
# A library does not print unless the application configures logging.
get_logger("pswrap").addHandler(logging.NullHandler())

_LOG_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
}

TRANSPORTS = ("local", "oneshot", "winrm", "ssh", "rest")


def get_transport(transport: str | Transport = "local", **options: Any) -> Transport:
    """The transport called ``transport`` (``"local"``: server mode, ``"oneshot"``, ``"winrm"``: a remote
    host, see :class:`pswrap.WinRMTransport`; ``"ssh"``: see :class:`pswrap.SSHTransport`; ``"rest"``: Exchange's admin API from
    :meth:`pswrap.Settings.load`), built with ``options``.

    A :class:`Transport` object is returned as it is (``options`` must then be empty).
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(transport, Transport):
        if options:
            raise ConfigError(f"options {sorted(options)} only apply when the transport is given by name")
        return transport
    if transport == "local":
        from pswrap.transports.local import LocalTransport

        _check_options(LocalTransport, options)
        return LocalTransport(**options)
    if transport == "oneshot":
        from pswrap.transports.oneshot import OneShotTransport

        if "pool_size" in options:
            raise ConfigError("the oneshot transport starts one pwsh per call: pool_size does not apply")
        _check_options(OneShotTransport, options)
        return OneShotTransport(**options)
    if transport == "winrm":
        from pswrap.transports.winrm import WinRMTransport

        if "pwsh" in options:
            raise ConfigError("the winrm transport runs the remote host's PowerShell: pwsh does not apply")
        if not options.get("host"):
            raise ConfigError("the winrm transport needs host=… (the remote runner host)")
        _check_options(WinRMTransport, options)
        return WinRMTransport(**options)
    if transport == "ssh":
        from pswrap.transports.ssh import SSHTransport

        if "pwsh" in options:
            raise ConfigError("the ssh transport runs the host's powershell subsystem: pwsh does not apply")
        if not options.get("host"):
            raise ConfigError("the ssh transport needs host=… (the remote host)")
        _check_options(SSHTransport, options)
        return SSHTransport(**options)
    if transport == "rest":
        from pswrap.transports.rest import RestTransport

        if options:
            raise ConfigError(f"the rest transport runs no pwsh: {', '.join(sorted(options))} does not apply")
        return RestTransport()
    if isinstance(transport, str):
        raise ConfigError(f"unknown transport {transport!r}: choose one of {', '.join(TRANSPORTS)}")
    raise TypeError(f"transport must be a name or a Transport, not {type(transport).__name__}")


def _check_options(kind: type[Transport], options: dict[str, Any]) -> None:
    import inspect

    accepted = inspect.signature(kind.__init__).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"the {kind.name} transport has no option {', '.join(map(repr, unknown))}")


class Session:
    """A PowerShell session: a transport plus what pswrap does with the results.

    ``transport``: ``"local"`` (a persistent ``pwsh -s``, the default), ``"oneshot"`` (one ``pwsh``
    per call), ``"winrm"`` or ``"ssh"`` (a remote host; its options, such as ``host``, ``username`` and
    ``password``, go in ``transport_options``), ``"rest"`` (Exchange's admin REST API, no pwsh) or a
    :class:`Transport` object. ``pwsh`` and ``pool_size`` configure the local ones. ``timeout``
    (seconds) applies to every invocation unless a call gives its own. ``on_record`` is called with
    every record of the other streams as it arrives; records are also logged on
    ``pswrap.powershell``. ``on_open(session)`` runs whenever a fresh PowerShell opens (at the first
    call, and again after a fault replaced the process): the place for set-up such as connecting.
    ``templates`` is a :class:`pswrap.render.Templates` (or its directories) for :meth:`run`.
    """

    def __init__(
        self,
        transport: str | Transport = "local",
        *,
        pwsh: str | os.PathLike[str] | Sequence[str] | None = None,
        pool_size: int | None = None,
        timeout: float | None = None,
        raise_on_error: bool = False,
        on_record: Callable[[Record], None] | None = None,
        on_open: Callable[[Session], None] | None = None,
        progress: bool = False,
        templates: Any = None,
        **transport_options: Any,
    ) -> None:
        self.transport = get_transport(transport, pwsh=pwsh, pool_size=pool_size, **transport_options)
        self.timeout = timeout
        self.raise_on_error = raise_on_error
        self.on_record = on_record
        self.on_open = on_open
        self.progress = progress
        self._templates = templates
        self._lock = threading.RLock()
        self._ready = False
        self._in_on_open = False
        self._closed = False

    # --- life cycle ---

    def open(self) -> Session:
        """Start PowerShell now (calls do it on demand) and run ``on_open``. Returns the session."""
        with self._lock:
            if self._closed:
                raise TransportError("this session is closed")
            if self._in_on_open:
                return self
            if not self.transport.healthy:
                self.transport.open()
                self._ready = False
            if not self._ready:
                if self.on_open is not None:
                    self._in_on_open = True
                    try:
                        self.on_open(self)
                    finally:
                        self._in_on_open = False
                self._ready = True
        return self

    def close(self) -> None:
        """Stop what is still running and end PowerShell."""
        with self._lock:
            self._closed = True
            self.transport.close()

    @property
    def healthy(self) -> bool:
        """Whether PowerShell is up and ready for the next call."""
        return not self._closed and self.transport.healthy

    def __enter__(self) -> Session:
        try:
            return self.open()
        except BaseException:
            self.close()  # __exit__ will not run: do not leave a pwsh behind
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self.transport.healthy else "not started"
        return f"<Session {self.transport.name} {state}>"

    # --- running things ---

    def invoke(
        self,
        command: str,
        /,
        *arguments: Any,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        **parameters: Any,
    ) -> Result:
        """Run ``command`` with positional ``arguments`` and named ``parameters`` (a switch: ``True``).

        ``input`` is piped into the command. pswrap's own options are lowercase (``input``,
        ``timeout``); PowerShell's parameters keep their usual capitals (``Timeout=5`` reaches
        PowerShell). The command starts now; the result fills as it is read.
        """
        return self._start(self.command(command, *arguments, input=input, timeout=timeout, **parameters))

    def command(
        self,
        command: str,
        /,
        *arguments: Any,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        **parameters: Any,
    ) -> Invocation:
        """The :class:`Invocation` :meth:`invoke` would start, with this session's defaults applied."""
        return Invocation(
            command,
            parameters=parameters,
            arguments=arguments,
            input=None if input is None else list(input),
            timeout=self.timeout if timeout is None else timeout,
            progress=self.progress,
        )

    def script(
        self,
        text: str,
        /,
        *,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        label: str | None = None,
        **parameters: Any,
    ) -> Result:
        """Run script ``text`` with ``parameters`` bound to its ``param()`` block (never pasted in)."""
        return self._start(
            Invocation(
                text,
                is_script=True,
                parameters=parameters,
                input=None if input is None else list(input),
                timeout=self.timeout if timeout is None else timeout,
                progress=self.progress,
                label=label,
            )
        )

    def run(
        self,
        template: str,
        /,
        *,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        **values: Any,
    ) -> Result:
        """Render the template ``template`` with ``values`` and run it; its parameters are bound."""
        script = self.templates.render(template, **values)
        return self.script(
            script.text,
            input=input,
            timeout=timeout,
            label=f"template {script.name!r}",
            **dict(script.parameters),
        )

    @property
    def templates(self) -> Templates:
        """The templates :meth:`run` renders (pswrap's own unless the session was given others)."""
        given = self._templates
        if isinstance(given, Templates):
            return given
        if given is None:
            templates = Templates()
        elif isinstance(given, (str, os.PathLike)):
            templates = Templates([given])
        else:
            templates = Templates(list(given))
        self._templates = templates
        return templates

    def start(self, invocation: Invocation) -> Execution:
        """Start ``invocation`` (opening PowerShell first when needed) and return its execution.

        The layer for callers that build their own :class:`Result` (the Exchange session does).
        """
        self.open()
        try:
            return self.transport.start(invocation)
        except InvocationNotStarted:
            if self.transport.healthy or self._in_on_open:
                raise
            # PowerShell went away between calls; nothing ran, so start afresh and try once more.
            self.open()
            return self.transport.start(invocation)

    def _start(self, invocation: Invocation) -> Result:
        return Result(
            self.start(invocation), invocation, raise_on_error=self.raise_on_error, on_record=self.on_record
        )


class Result:
    """What an invocation produced. Iterate it for output objects as they arrive.

    :attr:`output` and the record lists wait for the invocation to end. Reading a result raises the
    invocation's failure once (see the module docs); afterwards the data stays readable.
    """

    def __init__(
        self,
        execution: Execution,
        invocation: Invocation,
        *,
        raise_on_error: bool = False,
        on_record: Callable[[Record], None] | None = None,
        restart: Callable[[Outcome, Result], Execution | Outcome | None] | None = None,
    ) -> None:
        """``restart(outcome, result)`` is asked when the invocation failed: it returns a new execution
        to read from instead, an outcome to end with instead, or ``None``."""
        self.invocation = invocation
        self._restart = restart
        self._execution = execution
        self._items: Iterator[Any] | None = iter(execution)
        self._raise_on_error = raise_on_error
        self._on_record = on_record
        self._lock = threading.RLock()
        self._output: list[Any] = []
        self._records: list[Record] = []
        self._outcome: Outcome | None = None
        self._failure: PswrapError | None = None
        self._failure_raised = False

    # --- reading ---

    def __iter__(self) -> Iterator[Any]:
        index = 0
        while True:
            with self._lock:
                if index < len(self._output):
                    value = self._output[index]
                elif self._items is None:
                    break
                else:
                    self._pull()
                    continue
            index += 1
            yield value
        self._raise_failure()

    def stream(self) -> Iterator[Any]:
        """Output objects as they arrive, handed over and not kept: memory stays flat however many come.

        Records of the other streams are still kept. Afterwards :attr:`output` holds only objects that
        were not streamed. Raises the invocation's failure at the end, as iterating does.
        """
        while True:
            with self._lock:
                if self._output:
                    value = self._output.pop(0)
                elif self._items is None:
                    break
                else:
                    self._pull()
                    continue
            yield value
        self._raise_failure()

    def wait(self) -> Result:
        """Wait for the invocation to end (raising its failure once). Returns the result."""
        self._drain()
        self._raise_failure()
        return self

    def stop(self) -> None:
        """Ask PowerShell to stop the invocation; what it produced so far stays readable."""
        self._execution.stop()

    @property
    def output(self) -> list[Any]:
        """Every output object."""
        return self.wait()._output

    @property
    def records(self) -> list[Record]:
        """Every record of the other streams, in the order they arrived."""
        return self.wait()._records

    @property
    def errors(self) -> list[ErrorRecord]:
        """The non-terminating errors (the terminating one is :attr:`error`)."""
        return [r for r in self.records if isinstance(r, ErrorRecord)]

    @property
    def warnings(self) -> list[WarningRecord]:
        return [r for r in self.records if isinstance(r, WarningRecord)]

    @property
    def verbose(self) -> list[VerboseRecord]:
        return [r for r in self.records if isinstance(r, VerboseRecord)]

    @property
    def debug(self) -> list[DebugRecord]:
        return [r for r in self.records if isinstance(r, DebugRecord)]

    @property
    def information(self) -> list[InformationRecord]:
        return [r for r in self.records if isinstance(r, InformationRecord)]

    @property
    def progress(self) -> list[ProgressRecord]:
        """Progress records (only delivered when the session was made with ``progress=True``)."""
        return [r for r in self.records if isinstance(r, ProgressRecord)]

    @property
    def state(self) -> State | None:
        """``"completed"``, ``"failed"`` or ``"stopped"`` (``None`` when the session broke first)."""
        self.wait()
        return None if self._outcome is None else self._outcome.state

    @property
    def error(self) -> ErrorRecord | None:
        """The terminating error of a failed invocation."""
        self.wait()
        return None if self._outcome is None else self._outcome.error

    @property
    def exit_code(self) -> int | None:
        """The code the script passed to ``exit`` (``None`` when it did not call ``exit``)."""
        self.wait()
        return None if self._outcome is None else self._outcome.exit_code

    @property
    def interrupted(self) -> bool:
        """Whether reading was interrupted (Ctrl-C…) and pswrap stopped the invocation."""
        return isinstance(self._failure, InvocationInterrupted)

    @property
    def produced_output(self) -> bool:
        """Whether any output object has arrived yet."""
        return bool(self._output)

    @property
    def done(self) -> bool:
        """Whether everything has arrived (reading the result then no longer waits)."""
        return self._items is None

    def __repr__(self) -> str:
        if not self.done:
            return f"<Result {self.invocation.description}: running, {len(self._output)} objects so far>"
        counts = [f"{len(self._output)} objects"]
        for name in ("errors", "warnings"):
            kind = ErrorRecord if name == "errors" else WarningRecord
            n = sum(isinstance(r, kind) for r in self._records)
            if n:
                counts.append(f"{n} {name}")
        state = self._outcome.state if self._outcome else "broken"
        return f"<Result {self.invocation.description}: {state}, {', '.join(counts)}>"

    # --- internals ---

    def _drain(self) -> None:
        with self._lock:
            while self._items is not None:
                self._pull()

    def _pull(self) -> None:
        """Take the next item from the transport (the caller holds the lock)."""
        assert self._items is not None
        try:
            stream, value = next(self._items)
        except StopIteration:
            self._items = None
            try:
                self._end(self._execution.outcome)
            except PswrapError:
                raise
            except BaseException as exc:  # Ctrl-C while a retry waited (Exchange's backoff)
                self._interrupted(exc)
                raise
            return
        except TransportError as exc:
            self._items = None
            self._outcome = self._execution.outcome  # "stopped" when a timeout stopped it cleanly
            exc.partial = self
            self._failure = exc
            return
        except BaseException as exc:  # Ctrl-C while waiting: stop the invocation, say so, re-raise
            self._interrupted(exc)
            raise
        if stream == "output":
            self._output.append(value)
            return
        if not isinstance(value, Record):  # a transport handed over a raw value: keep it visible
            self._output.append(value)
            return
        self._records.append(value)
        level = _LOG_LEVELS.get(stream)
        if level is not None and powershell_log.isEnabledFor(level):
            powershell_log.log(
                level, "%s: %s", self.invocation.description, value.message, extra={"pswrap_record": value}
            )
        if self._on_record is not None:
            try:
                self._on_record(value)
            except BaseException as exc:
                self._interrupted(exc)
                raise

    def _interrupted(self, cause: BaseException) -> None:
        """Reading stopped half way: stop the invocation so the session is free for the next call."""
        self._items = None
        try:
            self._execution.stop()
        except Exception as exc:  # the session may be broken already; the caller's interrupt matters more
            log.debug("stopping %s after an interrupt failed: %s", self.invocation.description, exc)
        self._outcome = Outcome("stopped")
        self._failure = InvocationInterrupted(
            f"reading the result of {self.invocation.description} was interrupted "
            f"({type(cause).__name__}), so pswrap stopped it; what arrived before is kept",
            partial=self,
        )
        self._failure_raised = False

    def _end(self, outcome: Outcome | None) -> None:
        if outcome is not None and outcome.state == "failed" and self._restart is not None:
            # The caller may run it again (what it produced so far stays), or say more about the failure.
            again = self._restart(outcome, self)
            if isinstance(again, Outcome):
                outcome = again
            elif again is not None:
                self._execution = again
                self._items = iter(again)
                return
        self._outcome = outcome
        if outcome is not None and outcome.state == "failed":
            record = outcome.error or ErrorRecord(f"{self.invocation.description} failed without saying why")
            powershell_log.error(
                "%s: %s", self.invocation.description, record.message, extra={"pswrap_record": record}
            )
            self._failure = PowerShellError(record, partial=self)
        elif self._raise_on_error:
            first = next((r for r in self._records if isinstance(r, ErrorRecord)), None)
            if first is not None:
                self._failure = PowerShellError(first, partial=self)

    def _raise_failure(self) -> None:
        with self._lock:
            if self._failure is not None and not self._failure_raised:
                self._failure_raised = True
                raise self._failure
