"""A transport built from a plain function: for tests of code that uses :class:`pswrap.Session`.

::

    def handler(invocation):
        yield StreamItem("warning", WarningRecord("careful"))
        yield StreamItem("output", {"Name": invocation.parameters["Name"]})

    with Session(MockTransport(handler)) as session:
        assert list(session.invoke("Get-Thing", Name="x")) == [{"Name": "x"}]

The handler yields :class:`StreamItem` s (or ``(stream, value)`` pairs), may yield an :class:`Outcome`
last (the default is ``completed``), and may raise, e.g. :class:`pswrap.TransportError`. It runs lazily,
as the result is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from pswrap.transports.base import Execution, Invocation, Outcome, StreamItem, Transport

__all__ = ["MockTransport"]

Handler = Callable[[Invocation], Iterable[Any]]


class MockTransport(Transport):
    """Answers every invocation by calling ``handler(invocation)``. ``invocations`` records them all."""

    name: ClassVar[str] = "mock"
    persistent: ClassVar[bool] = True

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.invocations: list[Invocation] = []
        self.opened = 0
        self._open = False

    def open(self) -> None:
        if not self._open:
            self._open = True
            self.opened += 1

    def start(self, invocation: Invocation) -> Execution:
        if not self._open:
            raise RuntimeError("MockTransport.start() before open()")
        self.invocations.append(invocation)
        return _MockExecution(self.handler, invocation)

    def close(self) -> None:
        self._open = False

    @property
    def healthy(self) -> bool:
        return self._open


class _MockExecution(Execution):
    def __init__(self, handler: Handler, invocation: Invocation) -> None:
        self._handler = handler
        self._invocation = invocation
        self._outcome: Outcome | None = None
        self._stopped = threading.Event()

    def __iter__(self) -> Iterator[StreamItem]:
        outcome = Outcome("completed")
        for item in self._handler(self._invocation):
            if self._stopped.is_set():
                outcome = Outcome("stopped")
                break
            if isinstance(item, Outcome):
                outcome = item
                break
            stream, value = item
            yield StreamItem(stream, value)
        else:
            if self._stopped.is_set():
                outcome = Outcome("stopped")
        self._outcome = outcome

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def stop(self) -> None:
        self._stopped.set()
