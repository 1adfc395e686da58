"""``pwsh -s``: the out-of-process PSRP transport over stdin/stdout, feeding the runtime.

Lines are read as they come (a packet may arrive in pieces, several in one read) and dispatched:
Data and Command in order on the reading thread, Close and Signal on their own threads because they
wait for pipelines to stop (pwsh processes every line on a thread-pool thread). Anything pwsh rejects
- a client-sent ``…Ack``, a Signal to the pool, an empty line, malformed XML, closing stdin - prints
pwsh's message on stderr and exits with 4000 (the OS reports 160), as pwsh does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import uuid
from typing import Any

import psrpcore

from tests.standins.powershell.engine import Engine
from tests.standins.powershell.faults import FaultInjector
from tests.standins.powershell.framing import (
    ACKS,
    FramingError,
    LineReader,
    ack_packet,
    data_packet,
    parse_packet,
    unknown_element,
)
from tests.standins.powershell.recording import Recorder
from tests.standins.powershell.runtime import PsrpServer

EXIT_CODE_UNHANDLED = 4000  # OutOfProcessUtils.EXITCODE_UNHANDLED_EXCEPTION


class StdioChannel:
    """The runtime's channel on pwsh's stdout (packets) and stderr (fatal messages)."""

    def __init__(self, recorder: Recorder, *, ssh: bool = False) -> None:
        self._lock = threading.Lock()
        self._out = sys.stdout.buffer
        self._recorder = recorder
        self._ssh = ssh

    def write(self, data: bytes) -> None:
        with self._lock:
            self._out.write(data)
            self._out.flush()

    def send(self, payload: psrpcore.PSRPPayload) -> None:
        stream = "PromptResponse" if payload.stream_type == psrpcore.StreamType.prompt_response else "Default"
        self.write(data_packet(payload.pipeline_id, payload.data, stream))

    def acknowledge(self, action: str, guid: uuid.UUID) -> None:
        self.write(ack_packet(action, guid))

    def fatal(self, message: str) -> None:
        if self._ssh:  # pwsh -sshs also reports it on stdout, as __NamedPipeError__:<message>
            with contextlib.suppress(OSError):
                self.write(f"__NamedPipeError__:{message}\n".encode())
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        self._recorder.event("fatal", message=message)
        self._recorder.exit(EXIT_CODE_UNHANDLED)
        os._exit(EXIT_CODE_UNHANDLED)


def serve(engine: Engine, config: Any, recorder: Recorder, *, ssh: bool = False) -> int:
    channel = StdioChannel(recorder, ssh=ssh)
    faults = FaultInjector(config.faults, recorder, channel.write)
    faults.at_start()
    server = PsrpServer(
        engine,
        channel,
        fragment_size=config.fragment_size,
        ack_pool_data_first=config.ack_pool_data_first,
        drop_early_input=True,
        on_output=faults.output_written,
        on_pipeline_start=faults.at_pipeline_start,
    )
    reader = LineReader()
    stdin = sys.stdin.fileno()
    while True:
        chunk = os.read(stdin, 65536)
        recorder.stdin(chunk)
        lines = reader.feed(chunk) if chunk else ([reader.pending] if reader.pending else [])
        for line in lines:
            _dispatch(server, channel, line)
        if not chunk:
            # pwsh reads a null line at the end of stdin: it closes the session and exits with 4000.
            server.shutdown()
            channel.fatal(unknown_element(""))
            return EXIT_CODE_UNHANDLED  # pragma: no cover - fatal() exits


def _dispatch(server: PsrpServer, channel: StdioChannel, line: bytes) -> None:
    try:
        packet = parse_packet(line)
    except FramingError as problem:
        server.shutdown()
        channel.fatal(str(problem))
        return
    if packet.kind in ACKS:
        channel.fatal(unknown_element(packet.kind))
    elif packet.kind == "Data":
        server.data(packet.guid, packet.data, packet.stream)
    elif packet.kind == "Command":
        server.command(packet.guid)
    elif packet.kind == "Close":
        threading.Thread(target=server.close, args=(packet.guid,), daemon=True).start()
    elif packet.kind == "Signal":
        threading.Thread(target=server.signal, args=(packet.guid,), daemon=True).start()
