"""A minimal PSRP client over a stand-in process, for the stand-in's own tests (not the product's client).

It drives ``pwsh -s`` with psrpcore's client state machines and exposes the raw packets too, so tests
can check acknowledgement order and break the protocol on purpose. Single-threaded for the caller: a
reader thread only queues what arrives; :meth:`PsrpTestClient.pump` feeds it to psrpcore.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psrpcore
from psrpcore import types as ps

from tests.standins.powershell.framing import (
    EMPTY_GUID,
    FramingError,
    LineReader,
    Packet,
    action_packet,
    data_packet,
    parse_packet,
)

TIMEOUT = 15.0


class PsrpTestClient:
    def __init__(
        self, process: subprocess.Popen[bytes], *, max_runspaces: int = 1, host: ps.HostInfo | None = None
    ) -> None:
        self.process = process
        self.pool = psrpcore.ClientRunspacePool(min_runspaces=1, max_runspaces=max_runspaces, host=host)
        self.packets: list[Packet] = []  # everything received, in order
        self.events: list[psrpcore.PSRPEvent] = []
        self._incoming: queue.Queue[Packet | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    # --- raw I/O --------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.process.stdout is not None
        reader = LineReader()
        while True:
            chunk = self.process.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                self._incoming.put(None)
                return
            for line in reader.feed(chunk):
                try:
                    packet = parse_packet(line)
                except FramingError:
                    packet = Packet("garbage", EMPTY_GUID, data=line)
                self._incoming.put(packet)

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        while True:
            chunk = self.process.stderr.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            self._stderr.append(chunk)

    @property
    def stderr(self) -> str:
        self._err_reader.join(timeout=0.2) if self.process.poll() is not None else None
        return b"".join(self._stderr).decode("utf-8", errors="replace")

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send_action(self, kind: str, guid: uuid.UUID | None) -> None:
        self.write(action_packet(kind, guid))

    def send_pending(self) -> list[uuid.UUID | None]:
        """Send every queued PSRP payload as Data packets; returns their targets."""
        targets = []
        while True:
            payload = self.pool.data_to_send()
            if payload is None:
                return targets
            stream = (
                "PromptResponse" if payload.stream_type == psrpcore.StreamType.prompt_response else "Default"
            )
            self.write(data_packet(payload.pipeline_id, payload.data, stream))
            targets.append(payload.pipeline_id)

    # --- receiving ------------------------------------------------------------------------------

    def pump(self, timeout: float = 0.1) -> bool:
        """Handle one packet if one arrives within ``timeout``; False at end of output."""
        try:
            packet = self._incoming.get(timeout=timeout)
        except queue.Empty:
            return True
        if packet is None:
            self._incoming.put(None)
            return False
        self.packets.append(packet)
        if packet.kind == "Data":
            self.pool.receive_data(
                psrpcore.PSRPPayload(
                    packet.data,
                    psrpcore.StreamType.default,
                    None if packet.guid == EMPTY_GUID else packet.guid,
                )
            )
            while True:
                event = self.pool.next_event()
                if event is None:
                    break
                self.events.append(event)
        return True

    def wait_for(
        self, condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; stderr: {self.stderr!r}")
            if not self.pump(0.05):
                result = condition()
                if result:
                    return result
                raise AssertionError(f"stand-in ended while waiting for {what}; stderr: {self.stderr!r}")

    def has_ack(self, kind: str, guid: uuid.UUID | None) -> int:
        target = guid or EMPTY_GUID
        return sum(1 for p in self.packets if p.kind == f"{kind}Ack" and p.guid == target)

    def wait_ack(self, kind: str, guid: uuid.UUID | None, count: int = 1) -> None:
        self.wait_for(lambda: self.has_ack(kind, guid) >= count, what=f"{kind}Ack for {guid}")

    # --- the usual conversation -----------------------------------------------------------------

    def open(self) -> None:
        self.pool.open()
        self.send_pending()
        self.wait_for(
            lambda: self.pool.state == ps.RunspacePoolState.Opened and self.has_ack("Data", None),
            what="the pool to open",
        )

    def start(self, pipeline: psrpcore.ClientPowerShell, *, wait_ack: bool = True) -> None:
        """Command, CommandAck, then CREATE_PIPELINE (and any queued input)."""
        self.send_action("Command", pipeline.pipeline_id)
        self.wait_ack("Command", pipeline.pipeline_id)
        pipeline.start()
        self.send_pending()
        if wait_ack:
            self.wait_ack("Data", pipeline.pipeline_id)

    def powershell(
        self,
        script: str | None = None,
        command: str | None = None,
        *,
        no_input: bool = True,
        host: ps.HostInfo | None = None,
        **parameters: Any,
    ) -> psrpcore.ClientPowerShell:
        """A pipeline whose host has a UI (prompts reach the client) unless ``host`` says otherwise."""
        host = host or ps.HostInfo(
            IsHostNull=False, IsHostUINull=False, IsHostRawUINull=True, UseRunspaceHost=False
        )
        pipeline = psrpcore.ClientPowerShell(self.pool, no_input=no_input, host=host)
        if script is not None:
            pipeline.add_script(script)
        else:
            assert command is not None
            pipeline.add_command(command)
        if parameters:
            pipeline.add_parameters(**parameters)
        return pipeline

    def run(self, pipeline: psrpcore.ClientPowerShell) -> None:
        self.start(pipeline)
        self.wait_done(pipeline)

    def wait_done(self, pipeline: psrpcore.ClientPowerShell) -> ps.PSInvocationState:
        self.wait_for(
            lambda: self.state_event(pipeline) is not None, what=f"pipeline {pipeline.pipeline_id} end"
        )
        return pipeline.state

    def state_event(self, pipeline: psrpcore.ClientPowerShell) -> psrpcore.PipelineStateEvent | None:
        for event in self.events:
            if (
                isinstance(event, psrpcore.PipelineStateEvent)
                and event.pipeline_id == pipeline.pipeline_id
                and event.state
                not in (
                    ps.PSInvocationState.Running,
                    ps.PSInvocationState.Stopping,
                    ps.PSInvocationState.NotStarted,
                )
            ):
                return event
        return None

    def of(self, pipeline: psrpcore.ClientPowerShell, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.pipeline_id == pipeline.pipeline_id]

    def output(self, pipeline: psrpcore.ClientPowerShell) -> list[Any]:
        return [e.data for e in self.of(pipeline, psrpcore.PipelineOutputEvent)]

    def close_pipeline(self, pipeline: psrpcore.ClientPowerShell) -> None:
        self.send_action("Close", pipeline.pipeline_id)
        self.wait_ack("Close", pipeline.pipeline_id)
        pipeline.close()

    def close(self) -> None:
        """Close the pool; the caller closes stdin afterwards (pwsh then exits with 4000)."""
        self.send_action("Close", None)
        self.wait_ack("Close", None)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Close stdin and wait for the process to exit."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
