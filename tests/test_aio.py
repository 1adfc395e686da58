"""pswrap.aio: the same machinery for asyncio, never blocking the loop; cancelling stops the pipeline."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pswrap.aio import AsyncExchangeOnline, AsyncFleet, AsyncSession
from pswrap.errors import PowerShellError
from pswrap.objects import ErrorRecord
from pswrap.transports.base import Invocation, Outcome, StreamItem
from pswrap.transports.mock import MockTransport
from tests.fixtures.fleet import Tenants


def test_the_loop_keeps_running_while_a_long_pipeline_streams() -> None:
    """Each object is produced only after the loop has run another tick: a blocked loop would starve
    the pipeline, and the handler's bounded wait would fail the test."""
    ticked = threading.Event()
    starved: list[int] = []

    def handler(invocation: Invocation) -> Iterator[StreamItem]:
        for number in range(200):
            if not ticked.wait(10):
                starved.append(number)
                return
            ticked.clear()
            yield StreamItem("output", number)

    async def main() -> tuple[list[int], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                ticked.set()
                await asyncio.sleep(0.001)

        ticking = asyncio.create_task(ticker())
        async with AsyncSession(MockTransport(handler)) as session:
            result = await session.invoke("Get-Numbers")
            received = [number async for number in result]
        done.set()
        await ticking
        return received, ticks

    received, ticks = asyncio.run(main())
    assert starved == []
    assert received == list(range(200))
    assert ticks >= 200


def test_cancelling_the_reader_stops_the_pipeline() -> None:
    started = threading.Event()
    produced: list[int] = []

    def handler(invocation: Invocation) -> Iterator[Any]:
        for number in range(1_000_000):
            started.set()
            produced.append(number)
            yield StreamItem("output", number)

    async def main() -> tuple[list[int], Any]:
        received: list[int] = []
        async with AsyncSession(MockTransport(handler)) as session:
            result = await session.invoke("Get-Forever")

            async def read() -> None:
                async for number in result:
                    received.append(number)

            task = asyncio.create_task(read())
            while len(received) < 5:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(result.wait(), 30)
            return received, result.result.state

    received, state = asyncio.run(main())
    assert received == list(range(len(received))) and len(received) >= 5
    assert state == "stopped"
    assert len(produced) < 1_000_000


def test_a_failure_reaches_the_async_reader_with_what_arrived() -> None:
    def handler(invocation: Invocation) -> Iterator[Any]:
        yield StreamItem("output", 1)
        yield Outcome("failed", error=ErrorRecord("it broke"))

    async def main() -> list[int]:
        received: list[int] = []
        async with AsyncSession(MockTransport(handler)) as session:
            result = await session.invoke("Get-Broken")
            with pytest.raises(PowerShellError, match="it broke"):
                async for number in result:
                    received.append(number)
        return received

    assert asyncio.run(main()) == [1]


def test_async_exchange_online_over_the_pwsh_standin(exchange_standin: Any) -> None:
    async def main() -> list[Any]:
        async with AsyncExchangeOnline(exchange_standin.settings()) as exo:
            result = await exo.invoke("Get-Mailbox", ResultSize=3)
            return [mailbox async for mailbox in result]

    mailboxes = asyncio.run(main())
    assert len(mailboxes) == 3 and all("@" in str(m.PrimarySmtpAddress) for m in mailboxes)
    assert exchange_standin.connects() == 1
    assert len(exchange_standin.events("disconnect")) == 1  # leaving `async with` disconnected


def test_async_fleet_streams_every_tenant_and_cancelling_stops_the_run(
    many_tenants: Callable[..., Tenants],
) -> None:
    tenants = many_tenants(4, mailboxes=40)

    async def main() -> tuple[collections.Counter[str], Any, int]:
        async with AsyncFleet(tenants.settings, concurrency=2, buffer=1) as fleet:
            counts = collections.Counter(
                [tenant async for tenant, _ in fleet.invoke("Get-Mailbox", ResultSize=5)]
            )
            run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
            seen = 0

            async def read() -> None:
                nonlocal seen
                async for _ in run:
                    seen += 1

            task = asyncio.create_task(read())
            while seen < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            summary = await asyncio.wait_for(run.summary(), 60)
            return counts, summary, seen

    counts, summary, seen = asyncio.run(main())
    assert counts == dict.fromkeys(tenants.settings, 5)
    assert summary.objects < 4 * 40 and len(summary) == 4
    assert any("stop" in (r.error or "") for r in summary.reports.values())
    assert seen >= 3
