"""The PSRP server runtime on its own: fed and drained through a Channel, no process, no stdin/stdout.

This is how a WinRM (WSMan) stand-in reuses it: its Send/Command/Signal/Delete handlers call
``data``/``command``/``signal``/``close`` and its Receive answers from what ``send`` collected.
"""

from __future__ import annotations

import queue
import threading
import uuid

import psrpcore
from psrpcore import types as ps

from tests.fixtures.pwsh import PwshStandin
from tests.standins.powershell.client import PsrpTestClient
from tests.standins.powershell.engine import Engine
from tests.standins.powershell.framing import EMPTY_GUID
from tests.standins.powershell.runtime import PsrpServer

HOST = ps.HostInfo(IsHostNull=False, IsHostUINull=False, IsHostRawUINull=True, UseRunspaceHost=False)


class QueueChannel:
    """Collects what the runtime sends, as a WSMan Receive handler would."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, object]] = queue.Queue()

    def send(self, payload: psrpcore.PSRPPayload) -> None:
        self.items.put(("data", payload))

    def acknowledge(self, action: str, guid: uuid.UUID) -> None:
        self.items.put(("ack", (action, guid)))

    def fatal(self, message: str) -> None:
        self.items.put(("fatal", message))


class InProcessClient:
    def __init__(self) -> None:
        self.channel = QueueChannel()
        self.server = PsrpServer(Engine(), self.channel)
        self.pool = psrpcore.ClientRunspacePool(max_runspaces=2)
        self.events: list[psrpcore.PSRPEvent] = []
        self.acks: list[tuple[str, uuid.UUID]] = []

    def push(self) -> None:
        while (payload := self.pool.data_to_send()) is not None:
            self.server.data(payload.pipeline_id or EMPTY_GUID, payload.data)

    def drain_until(self, done: object) -> None:
        while not done():  # type: ignore[operator]
            kind, item = self.channel.items.get(timeout=15)
            if kind == "data":
                assert isinstance(item, psrpcore.PSRPPayload)
                self.pool.receive_data(item)
                while (event := self.pool.next_event()) is not None:
                    self.events.append(event)
            elif kind == "ack":
                self.acks.append(item)  # type: ignore[arg-type]
            else:
                raise AssertionError(f"fatal: {item}")


def test_the_runtime_serves_a_pool_and_pipelines_without_stdio() -> None:
    client = InProcessClient()
    client.pool.open()
    client.push()
    client.drain_until(
        lambda: client.pool.state == ps.RunspacePoolState.Opened and ("Data", EMPTY_GUID) in client.acks
    )
    pipeline = psrpcore.ClientPowerShell(client.pool, host=HOST)
    pipeline.add_script("param($n) 1..$n | Write-Output; Write-Warning 'careful'")
    pipeline.add_parameter("n", 3)
    client.server.command(pipeline.pipeline_id)
    pipeline.start()
    client.push()
    client.drain_until(lambda: pipeline.state != ps.PSInvocationState.Running)
    outputs = [e.data for e in client.events if isinstance(e, psrpcore.PipelineOutputEvent)]
    warnings = [str(e.record.Message) for e in client.events if isinstance(e, psrpcore.WarningRecordEvent)]
    assert (outputs, warnings, pipeline.state) == ([1, 2, 3], ["careful"], ps.PSInvocationState.Completed)
    assert ("Command", pipeline.pipeline_id) in client.acks and ("Data", pipeline.pipeline_id) in client.acks

    stopper = psrpcore.ClientPowerShell(client.pool, host=HOST)
    stopper.add_script("'go'; Start-Sleep 60")
    client.server.command(stopper.pipeline_id)
    stopper.start()
    client.push()
    client.drain_until(lambda: any(isinstance(e, psrpcore.PipelineOutputEvent) and e.pipeline_id ==
                                   stopper.pipeline_id for e in client.events))  # fmt: skip
    signal = threading.Thread(target=client.server.signal, args=(stopper.pipeline_id,))
    signal.start()
    client.drain_until(lambda: ("Signal", stopper.pipeline_id) in client.acks)
    signal.join()
    assert stopper.state == ps.PSInvocationState.Stopped


def test_pool_data_can_be_acknowledged_before_its_replies(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(ack_pool_data_first=True)
    client = PsrpTestClient(pwsh_standin.spawn("-NoLogo", "-s"))
    try:
        client.open()
        first_ack = next(i for i, p in enumerate(client.packets) if p.kind == "DataAck")
        first_data = next(i for i, p in enumerate(client.packets) if p.kind == "Data")
        assert first_ack < first_data
    finally:
        client.kill()


def test_by_default_pool_replies_come_before_the_ack(pwsh_standin: PwshStandin) -> None:
    client = PsrpTestClient(pwsh_standin.spawn("-NoLogo", "-s"))
    try:
        client.open()
        kinds = [p.kind for p in client.packets]
        assert kinds.index("Data") < kinds.index("DataAck")
    finally:
        client.kill()
