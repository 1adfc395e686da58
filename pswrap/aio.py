"""pswrap for asyncio: :class:`AsyncSession`, :class:`AsyncExchangeOnline` and :class:`AsyncFleet`.

::

    async with AsyncExchangeOnline.from_profile("contoso") as exo:
        result = await exo.invoke("Get-Mailbox", ResultSize="Unlimited")
        async for mailbox in result:                      # objects as they arrive
            print(mailbox.PrimarySmtpAddress)

    async with AsyncFleet.from_profiles() as fleet:
        async for tenant, mailbox in fleet.invoke("Get-Mailbox"):
            ...

They wrap the same machinery as the synchronous classes, which waits on pipes and sockets: every
blocking step (starting PowerShell, connecting, reading the next object) runs on a worker thread, so
the event loop never waits on PowerShell. Objects cross to the loop through a bounded queue (the
pipeline pauses while the reader is behind). Cancelling the task that reads — or leaving the
``async for`` early — stops the pipeline in PowerShell (:meth:`pswrap.Result.stop`) or the fleet's
run on every tenant (:meth:`pswrap.fleet.FleetRun.stop`); what arrived stays.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from pswrap.fleet import Fleet, FleetItem, FleetRun, FleetSummary
from pswrap.session import Result, Session

__all__ = ["AsyncExchangeOnline", "AsyncFleet", "AsyncFleetRun", "AsyncResult", "AsyncSession"]

T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"


async def _run(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` on a worker thread (the loop goes on meanwhile)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(function, *args, **kwargs)
    )


async def _iterate(
    source: Callable[[], Iterator[T]], stop: Callable[[], None], buffer: int
) -> AsyncIterator[T]:
    """The items of ``source()`` (read on a thread of its own), ``stop()`` called if the reader leaves
    or is cancelled before the end."""
    loop = asyncio.get_running_loop()
    channel: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=buffer)
    abandoned = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        try:
            future = asyncio.run_coroutine_threadsafe(channel.put(entry), loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(timeout=0.2)
                return True
            except concurrent.futures.TimeoutError:
                if abandoned.is_set():
                    future.cancel()
                    return False
            except concurrent.futures.CancelledError:
                return False

    def produce() -> None:
        try:
            for item in source():
                if not put((_ITEM, item)):
                    return
        except BaseException as exc:
            put((_ERROR, exc))
        else:
            put((_END, None))

    threading.Thread(target=produce, name="pswrap-aio-reader", daemon=True).start()
    finished = False
    try:
        while True:
            kind, value = await channel.get()
            if kind == _END:
                finished = True
                return
            if kind == _ERROR:
                finished = True
                raise value
            yield value
    finally:
        if not finished:
            abandoned.set()
            stop()


class AsyncResult:
    """A running invocation: ``async for`` its objects (handed over, not kept), ``await wait()`` for
    the rest; :attr:`result` is the underlying :class:`pswrap.Result` (read it after :meth:`wait`)."""

    def __init__(self, result: Result, *, buffer: int = 256) -> None:
        self.result = result
        self._buffer = buffer

    def __aiter__(self) -> AsyncIterator[Any]:
        return _iterate(self.result.stream, self.result.stop, self._buffer)

    async def wait(self) -> Result:
        """Wait for the end (raising the invocation's failure, as :meth:`pswrap.Result.wait` does)."""
        return await _run(self.result.wait)

    def stop(self) -> None:
        """Ask PowerShell to stop the invocation."""
        self.result.stop()

    def __repr__(self) -> str:
        return f"<Async{self.result!r}>"


class _AsyncWrapper(Generic[T]):
    """Builds the synchronous object on a thread when first needed, and closes it on one."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._made: T | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def _lazy(cls, build: Callable[[], Any]) -> Any:
        made = cls.__new__(cls)
        _AsyncWrapper.__init__(made, build)
        return made

    async def _get(self) -> T:
        if self._made is None:
            async with self._lock:
                if self._made is None:
                    self._made = await _run(self._build)
        return self._made

    async def __aenter__(self) -> Any:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> Any:
        made: Any = await self._get()
        if hasattr(made, "open"):
            await _run(made.open)
        return self

    async def close(self) -> None:
        if self._made is not None:
            await _run(self._made.close)  # type: ignore[attr-defined]


class AsyncSession(_AsyncWrapper[Session]):
    """:class:`pswrap.Session` for asyncio (same arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(lambda: Session(*args, **kwargs))

    async def invoke(self, command: str, /, *arguments: Any, **parameters: Any) -> AsyncResult:
        """Start ``command`` (see :meth:`pswrap.Session.invoke`); ``async for`` the result's objects."""
        session = await self._get()
        return AsyncResult(await _run(session.invoke, command, *arguments, **parameters))

    async def script(self, text: str, /, **parameters: Any) -> AsyncResult:
        session = await self._get()
        return AsyncResult(await _run(session.script, text, **parameters))

    async def run(self, template: str, /, **values: Any) -> AsyncResult:
        session = await self._get()
        return AsyncResult(await _run(session.run, template, **values))


class AsyncExchangeOnline(_AsyncWrapper[Any]):
    """:class:`pswrap.ExchangeOnline` for asyncio (same arguments; settings load on a thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        def build() -> Any:
            from pswrap.exchange import ExchangeOnline

            return ExchangeOnline(*args, **kwargs)

        super().__init__(build)

    @classmethod
    def from_env(cls, **options: Any) -> AsyncExchangeOnline:
        """Configured by the ``PSWRAP_*`` variables (read on a thread)."""
        from pswrap.exchange import ExchangeOnline

        made: AsyncExchangeOnline = cls._lazy(lambda: ExchangeOnline.from_env(**options))
        return made

    @classmethod
    def from_profile(cls, profile: str | None = None, **options: Any) -> AsyncExchangeOnline:
        """A named profile (read on a thread)."""
        from pswrap.exchange import ExchangeOnline

        made: AsyncExchangeOnline = cls._lazy(lambda: ExchangeOnline.from_profile(profile, **options))
        return made

    async def invoke(self, command: str, /, *arguments: Any, **parameters: Any) -> AsyncResult:
        """Run an Exchange cmdlet (see :meth:`pswrap.ExchangeOnline.invoke`); connects on first use."""
        exo = await self._get()
        return AsyncResult(await _run(exo.invoke, command, *arguments, **parameters))


class AsyncFleetRun:
    """A fleet run for asyncio: ``async for tenant, value in run``, then ``await run.summary()``."""

    def __init__(self, start: Callable[[], FleetRun], buffer: int) -> None:
        self._start = start
        self._buffer = buffer
        self.run: FleetRun | None = None

    async def _get(self) -> FleetRun:
        if self.run is None:
            self.run = await _run(self._start)
        return self.run

    async def _items(self) -> AsyncIterator[FleetItem]:
        run = await self._get()
        async for item in _iterate(run.__iter__, run.stop, self._buffer):
            yield item

    def __aiter__(self) -> AsyncIterator[FleetItem]:
        return self._items()

    async def summary(self) -> FleetSummary:
        """Every tenant's report, once all finished (objects nobody read are dropped)."""
        return await _run((await self._get()).wait)

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()


class AsyncFleet(_AsyncWrapper[Fleet]):
    """:class:`pswrap.Fleet` for asyncio (same arguments; built on a thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(lambda: Fleet(*args, **kwargs))

    @classmethod
    def from_profiles(cls, profiles: Iterable[str] | None = None, **options: Any) -> AsyncFleet:
        """The config file's profiles (see :meth:`pswrap.Fleet.from_profiles`; read on a thread)."""
        made: AsyncFleet = cls._lazy(lambda: Fleet.from_profiles(profiles, **options))
        return made

    async def open(self) -> AsyncFleet:
        await self._get()
        return self

    def invoke(self, command: str, /, *arguments: Any, buffer: int = 256, **parameters: Any) -> AsyncFleetRun:
        """Start ``command`` on the tenants when first read (see :meth:`pswrap.Fleet.invoke`)."""

        def start() -> FleetRun:
            if self._made is None:
                self._made = self._build()
            return self._made.invoke(command, *arguments, **parameters)

        return AsyncFleetRun(start, buffer)
