"""The one small interface every transport implements.

A :class:`Transport` runs :class:`Invocation` s: ``start`` hands back an :class:`Execution` that yields
:class:`StreamItem` s as they arrive (output objects, and the other streams' typed records) and then
knows the :class:`Outcome`. Local server mode, one-shot processes, WinRM and the admin REST API all
fit behind it; :class:`pswrap.Session` never knows which one it talks to.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Literal, NamedTuple

from pswrap.errors import InvocationTimeout, TransportError
from pswrap.objects import ErrorRecord

__all__ = ["Execution", "Invocation", "Outcome", "QueuedExecution", "State", "StreamItem", "Transport"]

State = Literal["completed", "failed", "stopped"]


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What to run: a command with bound parameters, or a script with parameters.

    ``parameters`` are named (a switch is ``True``/``False``), ``arguments`` positional. ``input`` is
    the pipeline input (``None``: no input at all, which differs from an empty input). ``timeout`` is
    in seconds (``None``: no limit). Progress records are only delivered when ``progress`` is true.
    """

    command: str
    is_script: bool = False
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    arguments: Sequence[Any] = ()
    input: Sequence[Any] | None = None
    timeout: float | None = None
    progress: bool = False
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command.strip():
            raise ValueError("an invocation needs a command name or script text")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        for name in self.parameters:
            if not isinstance(name, str) or not name or name.startswith("-"):
                raise ValueError(f"parameter names are given without a dash, not {name!r}")
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        object.__setattr__(self, "arguments", tuple(self.arguments))
        if self.input is not None:
            object.__setattr__(self, "input", tuple(self.input))

    @property
    def description(self) -> str:
        """How messages name this invocation: the label, the command, or the script's first line."""
        if self.label:
            return self.label
        if not self.is_script:
            return self.command
        first = next((line.strip() for line in self.command.splitlines() if line.strip()), "")
        return f"script {first[:60]!r}" + ("…" if len(first) > 60 else "")


class StreamItem(NamedTuple):
    """One thing an invocation produced: ``stream`` is ``"output"``, ``"error"``, ``"warning"``, …

    ``value`` is the output object, or the typed record (:class:`pswrap.ErrorRecord`, …) of the
    other streams.
    """

    stream: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How an invocation ended.

    ``error`` is the terminating :class:`ErrorRecord` of a failed invocation. ``exit_code`` is the code
    the script passed to ``exit`` (``None`` when it did not call ``exit``).
    """

    state: State
    error: ErrorRecord | None = None
    exit_code: int | None = None


class Execution(ABC):
    """A started invocation. Iterate it for its items as they arrive; then read :attr:`outcome`.

    Iterating raises :class:`pswrap.TransportError` when the session breaks (the items yielded
    before stay valid) and :class:`pswrap.InvocationTimeout` at the invocation's timeout.
    """

    @abstractmethod
    def __iter__(self) -> Iterator[StreamItem]: ...

    @property
    @abstractmethod
    def outcome(self) -> Outcome | None:
        """The outcome, once iteration has finished (``None`` before, or when the session broke)."""

    @abstractmethod
    def stop(self) -> None:
        """Ask PowerShell to stop the invocation; iteration then ends with the ``stopped`` outcome."""


class QueuedExecution(Execution):
    """An execution whose items a reader thread puts on a queue: stream items, then the
    :class:`Outcome`, or a :class:`pswrap.TransportError` when the session broke.

    At the deadline it stops the invocation and waits ``stop_grace`` seconds for PowerShell to
    stop; if it does not, :meth:`give_up` ends the session. Subclasses say how to stop and give up.
    """

    def __init__(
        self,
        items: queue.SimpleQueue[StreamItem | Outcome | TransportError],
        invocation: Invocation,
        deadline: float | None,
        stop_grace: float,
    ) -> None:
        self._items = items
        self._invocation = invocation
        self._deadline = deadline
        self._stop_grace = stop_grace
        self._outcome: Outcome | None = None

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    @abstractmethod
    def give_up(self, limit: float) -> InvocationTimeout:
        """End the session PowerShell would not stop; the error to raise, saying what was done."""

    def __iter__(self) -> Iterator[StreamItem]:
        while self._outcome is None:
            timeout = None if self._deadline is None else self._deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                yield from self._timed_out()
                return
            try:
                item = self._items.get(timeout=timeout)
            except queue.Empty:
                continue
            if isinstance(item, Outcome):
                self._outcome = item
            elif isinstance(item, TransportError):
                raise item
            else:
                yield item

    def _timed_out(self) -> Iterator[StreamItem]:
        description = self._invocation.description
        limit = self._invocation.timeout or 0.0
        self.stop()
        grace_end = time.monotonic() + self._stop_grace
        while (remaining := grace_end - time.monotonic()) > 0:
            try:
                item = self._items.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(item, Outcome):
                self._outcome = item
                raise InvocationTimeout(
                    f"{description} did not finish within its timeout of {limit:g} s and was stopped",
                    timeout=limit,
                )
            if isinstance(item, TransportError):
                error = InvocationTimeout(
                    f"{description} did not finish within its timeout of {limit:g} s, and then: {item}",
                    timeout=limit,
                )
                error.stderr_tail = item.stderr_tail  # already in the message, through the item's
                raise error
            yield item
        raise self.give_up(limit)


class Transport(ABC):
    """A way to run PowerShell. Open it, start invocations, close it.

    ``persistent`` says whether PowerShell state (variables, imported modules, connections) lives on
    from one invocation to the next: true for a server-mode process, false for one-shot processes.
    """

    name: ClassVar[str]
    persistent: ClassVar[bool]

    @abstractmethod
    def open(self) -> None:
        """Make the transport ready. After a failure this starts afresh; when healthy it does nothing."""

    @abstractmethod
    def start(self, invocation: Invocation) -> Execution:
        """Start running ``invocation``; raises :class:`pswrap.TransportError` when it cannot."""

    @abstractmethod
    def close(self) -> None:
        """Stop what is running and release everything (processes, threads, connections)."""

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """Whether the transport is open and can start invocations now."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
