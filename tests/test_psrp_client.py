"""The PSRP client (sans-I/O) against psrpcore's server state machine, in memory.

These pin the protocol logic every PSRP transport shares (local server mode now, WinRM later): values
both ways, every stream, outcomes, the non-interactive host, and the logging of secrets.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal
from typing import Any

import psrpcore
import pytest
from psrpcore import types as ps

from pswrap import (
    ErrorRecord,
    InformationRecord,
    ProgressRecord,
    ProtocolError,
    PSDateTime,
    PSEnum,
    PSObject,
    PSTimeSpan,
    Secret,
    SecureString,
    VerboseRecord,
    Version,
    WarningRecord,
)
from pswrap.objects import DebugRecord, PSQueue, PSStack, ScriptBlock, Uri, XmlDocument
from pswrap.transports.base import Invocation, Outcome, StreamItem
from pswrap.transports.psrp import PSRPClient, RemotePipeline


class Peer:
    """A client and psrpcore's server wired together in memory, the way a transport would."""

    def __init__(self, pool_size: int = 1) -> None:
        self.client = PSRPClient(pool_size=pool_size)
        self.server = psrpcore.ServerRunspacePool()
        self.server_events: list[Any] = []
        self.client.open()
        self.pump()
        self.pump()
        assert self.client.ready

    def pump(self) -> list[uuid.UUID]:
        for payload in self.client.outgoing():
            self.server.receive_data(payload)
            while (event := self.server.next_event()) is not None:
                self.server_events.append(event)
        finished: list[uuid.UUID] = []
        while (payload := self.server.data_to_send()) is not None:
            finished += self.client.receive(payload)
        return finished

    def start(self, invocation: Invocation) -> tuple[RemotePipeline, psrpcore.ServerPipeline]:
        pipeline = self.client.prepare(invocation)
        server_pipeline = psrpcore.ServerPipeline(self.server, pipeline.id)  # what <Command> creates
        self.client.begin(pipeline)
        self.pump()
        server_pipeline.start()
        return pipeline, server_pipeline


def drain(pipeline: RemotePipeline) -> tuple[list[StreamItem], Outcome | None]:
    items: list[StreamItem] = []
    outcome = None
    while not pipeline.items.empty():
        item = pipeline.items.get()
        if isinstance(item, Outcome):
            outcome = item
        else:
            assert isinstance(item, StreamItem)
            items.append(item)
    return items, outcome


CANARY = "canary-7f3a_x41-SeCrEt-9d1e"  # "_x" is escaped in CLIXML: a naive log scrub would miss it

VALUES: dict[str, Any] = {
    "Text": "multi\nline ’quoted’ _x0041_ 🎵",
    "Int": 42,
    "Big": 2**40,
    "Negative": -(2**35),
    "Huge": 2**63 + 5,
    "Float": 0.1,
    "Decimal": Decimal("1291921.101291"),
    "Bool": False,
    "Null": None,
    "Bytes": b"\x00\xffabc",
    "Guid": uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f"),
    "Date": PSDateTime(2024, 2, 29, 23, 59, 58, 123456, nanosecond=700),
    "DateUtc": PSDateTime(2024, 1, 1, tzinfo=dt.timezone.utc),
    "Span": PSTimeSpan(ticks=1_234_567_890_123),
    "Version": Version(1, 2, 3),
    "Uri": Uri("https://example.org/a"),
    "Xml": XmlDocument("<a>b</a>"),
    "Block": ScriptBlock("Get-Date"),
    "List": [1, "two", [3]],
    "Tuple": (1, 2),
    "Table": {"Name": "x", "Nested": {"n": 1}},
    "Stack": PSStack([3, 2, 1]),
    "Queue": PSQueue([1, 2]),
    "Enum": PSEnum(3, "Open", ("System.IO.FileMode", "System.Enum")),
    "Object": PSObject({"Adapted": 1}, {"Note": "n"}, type_names=("My.Type", "System.Object")),
    "Secure": SecureString(CANARY),
}


def test_every_parameter_type_reaches_powershell_as_the_right_type() -> None:
    peer = Peer()
    _, server_pipeline = peer.start(Invocation("Test-Types", parameters=VALUES, arguments=["positional"]))
    command = server_pipeline.metadata.commands[0]
    assert command.command_text == "Test-Types" and not command.is_script
    sent = dict(command.parameters[1:])
    assert command.parameters[0] == (None, "positional")
    expected_types = {
        "Int": ps.PSInt,
        "Big": ps.PSInt64,
        "Negative": ps.PSInt64,
        "Huge": ps.PSUInt64,
        "Float": ps.PSDouble,  # a Python float is a Double, not psrpcore's default Single
        "Decimal": ps.PSDecimal,
        "Bytes": ps.PSByteArray,
        "Guid": ps.PSGuid,
        "Date": ps.PSDateTime,
        "Span": ps.PSDuration,
        "Version": ps.PSVersion,
        "Uri": ps.PSUri,
        "Xml": ps.PSXml,
        "Block": ps.PSScriptBlock,
        "List": ps.PSList,
        "Tuple": ps.PSList,
        "Table": ps.PSDict,  # Hashtable
        "Stack": ps.PSStack,
        "Queue": ps.PSQueue,
        "Secure": ps.PSSecureString,
    }
    for name, kind in expected_types.items():
        assert isinstance(sent[name], kind), (name, type(sent[name]))
    assert sent["Float"] == 0.1
    assert sent["Date"].nanosecond == 700 and sent["Span"].nanoseconds == 300
    assert sent["Secure"].decrypt() == CANARY  # a real SecureString, encrypted with the session key
    assert [n.removeprefix("Deserialized.") for n in sent["Object"].PSObject.type_names] == [
        "My.Type",
        "System.Object",
    ]
    assert sent["Object"].Adapted == 1 and sent["Object"].Note == "n"
    assert sent["Bool"] is False and sent["Null"] is None


def test_every_value_round_trips_through_powershell_unchanged() -> None:
    peer = Peer()
    pipeline, server_pipeline = peer.start(Invocation("Write-Output", parameters=VALUES))
    for _, value in server_pipeline.metadata.commands[0].parameters:
        server_pipeline.write_output(value)
    server_pipeline.complete()
    assert peer.pump() == [pipeline.id]
    items, outcome = drain(pipeline)
    assert outcome == Outcome("completed")
    back = dict(zip(VALUES, [item.value for item in items], strict=True))
    for name, value in VALUES.items():
        if name in ("Tuple", "Secure", "Enum", "Object"):
            continue
        assert back[name] == value, name
        assert type(back[name]) is type(value), name
    assert back["Tuple"] == [1, 2]
    assert isinstance(back["Secure"], SecureString) and back["Secure"].reveal() == CANARY
    assert back["Date"].nanosecond == 700 and back["Span"].ticks == 1_234_567_890_123
    # PowerShell hands a deserialized object back with "Deserialized." names, the members intact.
    assert back["Object"].is_a("My.Type") and back["Object"].adapted == {"Adapted": 1}
    assert back["Object"].extended == {"Note": "n"}
    assert back["Enum"] == 3  # an enum travels as its number: PowerShell binds it to the enum parameter


def test_input_is_piped_and_an_empty_input_differs_from_none() -> None:
    peer = Peer()
    _, with_input = peer.start(Invocation("Measure-Object", input=[1, "two"]))
    inputs = [e for e in peer.server_events if isinstance(e, psrpcore.PipelineInputEvent)]
    assert [e.data for e in inputs] == [1, "two"]
    assert isinstance(peer.server_events[-1], psrpcore.EndOfPipelineInputEvent)
    assert with_input.metadata.no_input is False
    _, without = peer.start(Invocation("Get-Date"))
    assert without.metadata.no_input is True


def test_scripts_are_sent_as_scripts_with_parameters() -> None:
    peer = Peer()
    _, server_pipeline = peer.start(Invocation("param($n) 1..$n", is_script=True, parameters={"n": 3}))
    command = server_pipeline.metadata.commands[0]
    assert command.is_script and command.command_text == "param($n) 1..$n"
    assert command.parameters == [("n", 3)]


def test_every_stream_comes_back_as_typed_records_in_order() -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("Do-Everything", progress=True))
    sp.write_output("out")
    sp.write_error(
        ps.NETException(Message="no such mailbox"),
        ps.ErrorCategoryInfo(Category=ps.ErrorCategory.ObjectNotFound, Reason="NotFound"),
        target_object="bob",
        fully_qualified_error_id="NotFound,Get-Mailbox",
    )
    sp.write_warning("careful")
    sp.write_verbose("details")
    sp.write_debug("internals")
    sp.write_information("fyi", "Write-Information")
    sp.write_progress("Copying", 7, "half way", percent_complete=50)
    sp.complete()
    peer.pump()
    items, outcome = drain(pipeline)
    assert [i.stream for i in items] == [
        "output",
        "error",
        "warning",
        "verbose",
        "debug",
        "information",
        "progress",
    ]
    error = items[1].value
    assert isinstance(error, ErrorRecord)
    assert (error.message, error.category, error.error_id, error.target) == (
        "no such mailbox",
        "ObjectNotFound",
        "NotFound,Get-Mailbox",
        "bob",
    )
    assert items[2].value == WarningRecord("careful")
    assert items[3].value == VerboseRecord("details")
    assert items[4].value == DebugRecord("internals")
    info = items[5].value
    assert isinstance(info, InformationRecord) and info.data == "fyi" and info.source == "Write-Information"
    progress = items[6].value
    assert isinstance(progress, ProgressRecord)
    assert (progress.activity, progress.activity_id, progress.percent_complete) == ("Copying", 7, 50)
    assert outcome == Outcome("completed")


def test_progress_is_dropped_unless_asked_for() -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("Import-Module"))
    sp.write_progress("Loading", 1, "module")
    sp.complete()
    peer.pump()
    assert drain(pipeline) == ([], Outcome("completed"))


def test_a_failed_pipeline_carries_its_terminating_error() -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("throw 'boom'", is_script=True))
    sp.write_output("before")
    record = ps.ErrorRecord(
        Exception=ps.NETException(Message="boom"),
        CategoryInfo=ps.ErrorCategoryInfo(Category=ps.ErrorCategory.OperationStopped),
        FullyQualifiedErrorId="boom",
    )
    sp._change_state(ps.PSInvocationState.Failed, error=record)
    assert peer.pump() == [pipeline.id]
    items, outcome = drain(pipeline)
    assert items == [StreamItem("output", "before")]
    assert outcome is not None and outcome.state == "failed"
    assert outcome.error is not None and outcome.error.message == "boom"
    assert outcome.error.category == "OperationStopped"


def test_stop_sends_a_signal_only_for_a_running_pipeline() -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("Start-Sleep", parameters={"Seconds": 60}))
    assert peer.client.stop(pipeline) is True
    assert peer.client.stop(pipeline) is False  # already stopping
    sp.stop()
    peer.pump()
    assert drain(pipeline) == ([], Outcome("stopped"))
    assert peer.client.stop(pipeline) is False  # finished


def test_exit_codes_are_captured_from_set_should_exit() -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("exit 7", is_script=True))
    sp.host_call(ps.HostMethodIdentifier.SetShouldExit, [7])
    sp.complete()
    peer.pump()
    assert drain(pipeline) == ([], Outcome("completed", exit_code=7))


@pytest.mark.parametrize(
    ("method", "what"),
    [
        (ps.HostMethodIdentifier.ReadLine, "Read-Host"),
        (ps.HostMethodIdentifier.PromptForChoice, "-Confirm"),
        (ps.HostMethodIdentifier.PromptForCredential2, "Get-Credential"),
        (ps.HostMethodIdentifier.ReadLineAsSecureString, "secret"),
    ],
)
def test_prompts_are_refused_with_an_error_that_says_why(method: ps.HostMethodIdentifier, what: str) -> None:
    peer = Peer()
    pipeline, sp = peer.start(Invocation("Read-Host"))
    ci = sp.host_call(method, [])
    peer.pump()
    peer.pump()
    (response,) = [e for e in peer.server_events if isinstance(e, psrpcore.PipelineHostResponseEvent)]
    assert response.ci == ci and response.result is None
    message = str(response.error)
    assert what in message and "not interactive" in message and "as a parameter" in message
    assert response.error.FullyQualifiedErrorId == "PswrapPromptRefused"
    items, _ = drain(pipeline)  # the caller sees why on the error stream
    assert [(i.stream, i.value.error_id) for i in items] == [("error", "PswrapPromptRefused")]
    assert what in items[0].value.message


def test_harmless_host_questions_are_answered() -> None:
    peer = Peer()
    _, sp = peer.start(Invocation("Get-Host"))
    sp.host_call(ps.HostMethodIdentifier.GetName)
    sp.host_call(ps.HostMethodIdentifier.GetIsRunspacePushed)
    peer.pump()
    peer.pump()
    responses = [e.result for e in peer.server_events if isinstance(e, psrpcore.PipelineHostResponseEvent)]
    assert responses == ["pswrap", False]


def test_several_pipelines_run_on_one_pool_and_keep_their_own_items() -> None:
    peer = Peer(pool_size=3)
    started = [peer.start(Invocation(f"Job-{i}")) for i in range(3)]
    for i, (_, sp) in reversed(list(enumerate(started))):
        sp.write_output(i)
        sp.complete()
    finished = peer.pump()
    assert sorted(finished) == sorted(p.id for p, _ in started)
    for i, (pipeline, _) in enumerate(started):
        assert drain(pipeline) == ([StreamItem("output", i)], Outcome("completed"))


def test_values_pswrap_cannot_send_are_refused_before_anything_is_sent() -> None:
    peer = Peer()
    with pytest.raises(TypeError, match="parameter 'Thing' is a object, which pswrap cannot send"):
        peer.client.prepare(Invocation("Set-Thing", parameters={"Thing": object()}))
    with pytest.raises(ValueError, match=r"parameter 'Size' = \d+ does not fit"):
        peer.client.prepare(Invocation("Set-Thing", parameters={"Size": 2**70}))
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="contains itself"):
        peer.client.prepare(Invocation("Set-Thing", parameters={"Loop": cyclic}))
    assert peer.client.outgoing() == []


def test_garbage_in_the_psrp_fragments_is_a_protocol_error() -> None:
    peer = Peer()
    garbage = psrpcore.PSRPPayload(
        b"\x00" * 8 + b"\x00" * 8 + b"\x03" + b"\x00\x00\x00\x05hello", ps_stream(), None
    )
    with pytest.raises(ProtocolError, match="PSRP message pswrap cannot read"):
        peer.client.receive(garbage)


def ps_stream() -> psrpcore.StreamType:
    return psrpcore.StreamType.default


def test_secrets_never_reach_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG: psrpcore logs whole messages there
    peer = Peer()
    pipeline, sp = peer.start(
        Invocation("Connect-Thing", parameters={"Token": Secret(CANARY), "Secure": SecureString(CANARY)})
    )
    sp.write_output(CANARY)  # even echoed back by PowerShell
    sp.complete()
    peer.pump()
    assert drain(pipeline)[0] == [StreamItem("output", CANARY)]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Queuing PSRP Message" in text  # the logs were there…
    assert CANARY not in text  # …without the secret, in any spelling
    assert "canary-7f3a" not in text
