"""The stand-in in server mode (``pwsh -s``), driven by psrpcore's client state machines.

Every rule of powershell.md "What real pwsh enforces" has a test here; none depends on timing (a
pipeline that must be running is made to wait on a host call the test answers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psrpcore
import pytest
from psrpcore import types as ps

from tests.fixtures.pwsh import PwshStandin
from tests.standins.powershell.client import PsrpTestClient
from tests.standins.powershell.framing import EMPTY_GUID, data_packet

SERVER = ["-NoLogo", "-NoProfile", "-s"]
UNKNOWN_EMPTY = (
    'An unknown element "" was received. This can happen if the remote process closed or ended abnormally.'
)


@pytest.fixture
def client(pwsh_standin: PwshStandin) -> Iterator[PsrpTestClient]:
    connection = PsrpTestClient(pwsh_standin.spawn(*SERVER), max_runspaces=3)
    yield connection
    connection.kill()


def opened(pwsh_standin: PwshStandin, runspaces: int = 1) -> PsrpTestClient:
    connection = PsrpTestClient(pwsh_standin.spawn(*SERVER), max_runspaces=runspaces)
    connection.open()
    return connection


def host_calls(
    client: PsrpTestClient, pipeline: psrpcore.ClientPowerShell
) -> list[psrpcore.PipelineHostCallEvent]:
    return client.of(pipeline, psrpcore.PipelineHostCallEvent)


def index_of(client: PsrpTestClient, kind: str, guid: uuid.UUID | None, start: int = 0) -> int:
    target = guid or EMPTY_GUID
    for index, packet in enumerate(client.packets[start:], start):
        if packet.kind == kind and packet.guid == target:
            return index
    raise AssertionError(f"no {kind} for {guid}")


# --------------------------------------------------------------------------------------------
# The conversation
# --------------------------------------------------------------------------------------------


def test_pool_opens_with_capability_private_data_and_opened_state(client: PsrpTestClient) -> None:
    client.open()
    kinds = [type(e).__name__ for e in client.events]
    assert kinds[:3] == ["SessionCapabilityEvent", "ApplicationPrivateDataEvent", "RunspacePoolStateEvent"]
    assert client.pool.state == ps.RunspacePoolState.Opened
    private = client.events[1].data
    assert str(private["PSVersionTable"]["PSVersion"]).startswith("7.")
    assert client.has_ack("Data", None) == 1


def test_a_command_with_parameters(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(command="Write-Output", InputObject=["a", 2])
    client.run(pipeline)
    assert client.output(pipeline) == ["a", 2]
    assert client.state_event(pipeline).state == ps.PSInvocationState.Completed  # type: ignore[union-attr]


def test_a_script_with_parameters_and_pipeline_input(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="param($Suffix) @($input) | Write-Output; \"end$Suffix\"", no_input=False,
                                 Suffix="!")  # fmt: skip
    client.start(pipeline)  # waits for the CREATE_PIPELINE ack: input sent before it is dropped
    for item in ("x", "y"):
        pipeline.send(item)
    pipeline.send_eof()
    client.send_pending()
    client.wait_done(pipeline)
    assert client.output(pipeline) == ["x", "y", "end!"]


def test_input_sent_before_the_create_pipeline_ack_is_dropped(client: PsrpTestClient) -> None:
    """Real pwsh 7.6 drops input that arrives before it acknowledged CREATE_PIPELINE (same packet or not)."""
    client.open()
    pipeline = client.powershell(script="@($input) | Write-Output", no_input=False)
    pipeline.start()
    pipeline.send("early")  # packed with CREATE_PIPELINE, as psrpcore queues them
    client.send_action("Command", pipeline.pipeline_id)
    client.wait_ack("Command", pipeline.pipeline_id)
    client.send_pending()
    client.wait_ack("Data", pipeline.pipeline_id)
    pipeline.send("late")
    pipeline.send_eof()
    client.send_pending()
    client.wait_done(pipeline)
    assert client.output(pipeline) == ["late"]


def test_every_stream_type(client: PsrpTestClient) -> None:
    client.open()
    script = (
        "'out'; Write-Error 'err' -ErrorId E1; Write-Warning 'warn'; Write-Verbose 'verb' -Verbose; "
        "Write-Debug 'dbg' -Debug; Write-Information 'info' -Tags t1 -InformationAction Continue; "
        "Write-Host 'host'; Write-Progress -Activity 'act' -Status 'st' -PercentComplete 50"
    )
    pipeline = client.powershell(script=script)
    client.run(pipeline)
    assert client.output(pipeline) == ["out"]
    [error] = client.of(pipeline, psrpcore.ErrorRecordEvent)
    assert error.record.FullyQualifiedErrorId == "E1" and str(error.record.Exception.Message) == "err"
    assert [str(e.record.Message) for e in client.of(pipeline, psrpcore.WarningRecordEvent)] == ["warn"]
    assert [str(e.record.Message) for e in client.of(pipeline, psrpcore.VerboseRecordEvent)] == ["verb"]
    assert [str(e.record.Message) for e in client.of(pipeline, psrpcore.DebugRecordEvent)] == ["dbg"]
    info, host = (e.record for e in client.of(pipeline, psrpcore.InformationRecordEvent))
    assert info.MessageData == "info" and list(info.Tags) == ["t1"]
    assert (
        host.MessageData.Message == "host" and list(host.Tags) == ["PSHOST"] and host.Source == "Write-Host"
    )
    [progress] = client.of(pipeline, psrpcore.ProgressRecordEvent)
    assert (progress.record.Activity, progress.record.StatusDescription, progress.record.PercentComplete) == (
        "act", "st", 50)  # fmt: skip


def test_default_preferences_hide_verbose_and_debug_but_not_information(client: PsrpTestClient) -> None:
    client.open()
    script = "Write-Verbose v; Write-Debug d; Write-Information i; Write-Information x -InformationAction Ignore; 'done'"
    pipeline = client.powershell(script=script)
    client.run(pipeline)
    assert client.output(pipeline) == ["done"]
    for kind in (psrpcore.VerboseRecordEvent, psrpcore.DebugRecordEvent):
        assert client.of(pipeline, kind) == []
    # A remote pipeline has an information pipe: SilentlyContinue still records it, only Ignore drops it.
    assert [e.record.MessageData for e in client.of(pipeline, psrpcore.InformationRecordEvent)] == ["i"]


def test_three_pipelines_run_at_once_on_a_pool_of_three(client: PsrpTestClient) -> None:
    client.open()
    pipelines = [client.powershell(script='$v = Read-Host; "got $v"') for _ in range(3)]
    for pipeline in pipelines:
        client.start(pipeline)
    # All three are blocked in a host call at the same time: they run concurrently.
    client.wait_for(lambda: all(host_calls(client, p) for p in pipelines), what="three concurrent host calls")
    for number, pipeline in enumerate(pipelines):
        [call] = host_calls(client, pipeline)
        assert call.method_identifier == ps.HostMethodIdentifier.ReadLine
        pipeline.host_response(call.ci, f"v{number}")
    client.send_pending()
    for pipeline in pipelines:
        client.wait_done(pipeline)
    assert [client.output(p) for p in pipelines] == [["got v0"], ["got v1"], ["got v2"]]


def test_each_runspace_keeps_its_own_state(client: PsrpTestClient) -> None:
    client.open()
    first = client.powershell(script="$state = 'one'; $state")
    client.run(first)
    # Hold the runspace that has $state, so the next pipeline runs on another runspace.
    holder = client.powershell(script="Read-Host; $state")
    client.start(holder)
    client.wait_for(lambda: host_calls(client, holder), what="the holder's host call")
    other = client.powershell(script='"[$state]"')
    client.run(other)
    assert client.output(other) == ["[]"]
    holder.host_response(host_calls(client, holder)[0].ci, "x")
    client.send_pending()
    client.wait_done(holder)
    assert client.output(holder) == ["x", "one"]


def test_stop_interrupts_a_sleeping_pipeline(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="'before'; Start-Sleep 60; 'after'")
    client.start(pipeline)
    client.wait_for(lambda: client.output(pipeline) == ["before"], what="the first output")
    client.send_action("Signal", pipeline.pipeline_id)
    client.wait_ack("Signal", pipeline.pipeline_id)
    state = client.state_event(pipeline)
    assert state is not None and state.state == ps.PSInvocationState.Stopped
    assert state.reason.FullyQualifiedErrorId == "PipelineStopped"
    # The SignalAck comes after the pipeline stopped.
    assert index_of(client, "SignalAck", pipeline.pipeline_id) > max(
        i for i, p in enumerate(client.packets) if p.kind == "Data" and p.guid == pipeline.pipeline_id
    )
    assert client.output(pipeline) == ["before"]


def test_a_failed_pipeline_carries_the_error_record(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="'partial'; throw 'it failed'")
    client.run(pipeline)
    state = client.state_event(pipeline)
    assert state is not None and state.state == ps.PSInvocationState.Failed
    assert str(state.reason.Exception.Message) == "it failed"
    assert state.reason.FullyQualifiedErrorId == "it failed"
    assert state.reason.CategoryInfo.Category == ps.ErrorCategory.OperationStopped
    assert client.output(pipeline) == ["partial"]


def test_a_parse_error_fails_the_pipeline_with_a_parse_exception(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="if ($x) { 'never'")
    client.run(pipeline)
    reason = client.state_event(pipeline).reason  # type: ignore[union-attr]
    assert reason.FullyQualifiedErrorId == "MissingEndCurlyBrace"
    assert reason.CategoryInfo.Category == ps.ErrorCategory.ParserError
    assert str(reason.Exception.Message).startswith("At line:1 char:")


def test_an_unsupported_construct_fails_loudly(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="foreach ($i in 1..2) { $i }")
    client.run(pipeline)
    reason = client.state_event(pipeline).reason  # type: ignore[union-attr]
    assert reason.FullyQualifiedErrorId == "PwshStandinUnsupported"
    assert "does not support the statement 'foreach_statement'" in str(reason.Exception.Message)


def test_exit_calls_set_should_exit_on_the_host(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="'x'; exit 7; 'never'")
    client.run(pipeline)
    [call] = host_calls(client, pipeline)
    assert call.method_identifier == ps.HostMethodIdentifier.SetShouldExit
    assert call.method_parameters == [7]
    assert client.state_event(pipeline).state == ps.PSInvocationState.Completed  # type: ignore[union-attr]
    assert client.output(pipeline) == ["x"]


def test_read_host_with_a_prompt_is_a_prompt_host_call(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="Read-Host -Prompt 'Your name'")
    client.start(pipeline)
    client.wait_for(lambda: host_calls(client, pipeline), what="the prompt")
    [call] = host_calls(client, pipeline)
    assert call.method_identifier == ps.HostMethodIdentifier.Prompt
    caption, message, fields = call.method_parameters
    assert (caption, message) == ("", "")
    assert [f.Name for f in fields] == ["Your name"]
    pipeline.host_response(call.ci, {"Your name": "bob"})
    client.send_pending()
    client.wait_done(pipeline)
    assert client.output(pipeline) == ["bob"]


def test_a_host_that_refuses_prompts_fails_the_pipeline_with_its_error(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="Read-Host; 'never'")
    client.start(pipeline)
    client.wait_for(lambda: host_calls(client, pipeline), what="the read")
    refusal = ps.ErrorRecord(
        Exception=ps.NETException(Message="this host does not prompt"),
        CategoryInfo=ps.ErrorCategoryInfo(Category=ps.ErrorCategory.NotImplemented, Reason="PromptRefused"),
        FullyQualifiedErrorId="HostRefusesPrompts",
    )
    pipeline.host_response(host_calls(client, pipeline)[0].ci, error_record=refusal)
    client.send_pending()
    client.wait_done(pipeline)
    reason = client.state_event(pipeline).reason  # type: ignore[union-attr]
    assert reason.FullyQualifiedErrorId == "HostRefusesPrompts"
    assert str(reason.Exception.Message) == "this host does not prompt"
    assert client.output(pipeline) == []


def test_without_a_host_prompts_fail_like_pwsh(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="Read-Host; 'next'", host=ps.HostInfo())  # IsHostNull: no host at all
    client.run(pipeline)
    [error] = client.of(pipeline, psrpcore.ErrorRecordEvent)  # statement-terminating: the script goes on
    assert error.record.Exception.PSObject.type_names[0].endswith(
        "System.Management.Automation.Host.HostException"
    )
    assert client.output(pipeline) == ["next"]
    assert host_calls(client, pipeline) == []


def test_a_missing_mandatory_parameter_prompts_through_the_host(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(command="Write-Warning")
    client.start(pipeline)
    client.wait_for(lambda: host_calls(client, pipeline), what="the mandatory-parameter prompt")
    [call] = host_calls(client, pipeline)
    assert call.method_identifier == ps.HostMethodIdentifier.Prompt
    assert [f.Name for f in call.method_parameters[2]] == ["Message"]
    pipeline.host_response(call.ci, {"Message": "prompted"})
    client.send_pending()
    client.wait_done(pipeline)
    assert [str(e.record.Message) for e in client.of(pipeline, psrpcore.WarningRecordEvent)] == ["prompted"]


def test_a_command_that_is_not_found_fails_the_pipeline(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(command="Get-Nothing")
    client.run(pipeline)
    reason = client.state_event(pipeline).reason  # type: ignore[union-attr]
    assert reason.FullyQualifiedErrorId == "CommandNotFoundException"
    assert str(reason.Exception.Message).startswith("The term 'Get-Nothing' is not recognized")


# --------------------------------------------------------------------------------------------
# Acknowledgements and closing
# --------------------------------------------------------------------------------------------


def test_create_pipeline_is_acked_just_before_the_pipeline_starts(pwsh_standin: PwshStandin) -> None:
    client = opened(pwsh_standin, runspaces=1)
    try:
        busy = client.powershell(script="Read-Host")
        client.start(busy)
        client.wait_for(lambda: host_calls(client, busy), what="the busy pipeline's host call")
        waiting = client.powershell(script="'second'")
        client.start(waiting, wait_ack=False)
        # A round trip on the pool proves the stand-in has read the CREATE_PIPELINE packet by now.
        client.pool.get_available_runspaces()
        client.send_pending()
        client.wait_ack("Data", None, count=2)
        assert client.has_ack("Data", waiting.pipeline_id) == 0  # no free runspace: not started, not acked
        busy.host_response(host_calls(client, busy)[0].ci, "go")
        client.send_pending()
        client.wait_done(waiting)
        ack = index_of(client, "DataAck", waiting.pipeline_id)
        first_data = index_of(client, "Data", waiting.pipeline_id)
        assert ack < first_data
        assert client.output(waiting) == ["second"]
    finally:
        client.kill()


def test_pipeline_data_gets_one_ack_per_packet(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="@($input).Count", no_input=False)
    client.start(pipeline)
    for item in range(3):
        pipeline.send(item)
        client.send_pending()
    pipeline.send_eof()
    client.send_pending()
    client.wait_done(pipeline)
    assert client.output(pipeline) == [3]
    assert client.has_ack("Data", pipeline.pipeline_id) == 5  # CREATE_PIPELINE, three inputs, end of input


def test_closing_a_running_pipeline_stops_it_before_the_close_ack(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="'started'; Start-Sleep 60")
    client.start(pipeline)
    client.wait_for(lambda: client.output(pipeline), what="the pipeline to start")
    client.send_action("Close", pipeline.pipeline_id)
    client.wait_ack("Close", pipeline.pipeline_id)
    assert client.state_event(pipeline).state == ps.PSInvocationState.Stopped  # type: ignore[union-attr]


def test_pool_close_waits_for_every_pipeline_then_closing_closed_and_ack(client: PsrpTestClient) -> None:
    client.open()
    pipeline = client.powershell(script="'x'")
    client.run(pipeline)
    client.send_action("Close", None)
    client.pool.get_available_runspaces()  # a round trip: the pool Close has been read by now
    client.send_pending()
    client.wait_ack("Data", None, count=2)
    assert client.has_ack("Close", None) == 0
    client.close_pipeline(pipeline)
    client.wait_ack("Close", None)
    states = [e.state for e in client.events if isinstance(e, psrpcore.RunspacePoolStateEvent)]
    assert states[-2:] == [ps.RunspacePoolState.Closing, ps.RunspacePoolState.Closed]
    pipeline_close = index_of(client, "CloseAck", pipeline.pipeline_id)
    assert pipeline_close < index_of(client, "CloseAck", None)
    assert client.finish() == 160
    assert UNKNOWN_EMPTY in client.stderr


def test_packets_split_across_writes_and_several_in_one_write(client: PsrpTestClient) -> None:
    client.pool.open()
    payload = client.pool.data_to_send()
    assert payload is not None
    packet = data_packet(None, payload.data)
    client.write(packet[:10])
    client.write(packet[10:40])
    client.write(packet[40:])
    client.wait_for(lambda: client.pool.state == ps.RunspacePoolState.Opened, what="the pool to open")
    first, second = client.powershell(script="'one'"), client.powershell(script="'two'")
    client.send_action("Command", first.pipeline_id)
    client.wait_ack("Command", first.pipeline_id)
    client.send_action("Command", second.pipeline_id)
    client.wait_ack("Command", second.pipeline_id)
    first.start()
    second.start()
    one = client.pool.data_to_send()
    two = client.pool.data_to_send()
    assert one is not None and two is not None
    client.write(data_packet(one.pipeline_id, one.data) + data_packet(two.pipeline_id, two.data))
    client.wait_done(first)
    client.wait_done(second)
    assert (client.output(first), client.output(second)) == (["one"], ["two"])


# --------------------------------------------------------------------------------------------
# What pwsh rejects
# --------------------------------------------------------------------------------------------


def test_data_for_a_pipeline_without_command_is_acked_and_dropped(client: PsrpTestClient) -> None:
    client.open()
    rogue = client.powershell(script="'rogue'")
    rogue.start()
    client.send_pending()  # CREATE_PIPELINE without the Command packet first
    client.wait_ack("Data", rogue.pipeline_id)
    normal = client.powershell(script="'normal'")
    client.run(normal)  # later traffic proves the rogue pipeline never started
    assert client.output(normal) == ["normal"]
    assert [p for p in client.packets if p.kind == "Data" and p.guid == rogue.pipeline_id] == []


def test_create_pipeline_on_the_pool_channel_is_fatal(client: PsrpTestClient) -> None:
    client.open()
    rogue = client.powershell(script="'rogue'")
    rogue.start()
    payload = client.pool.data_to_send()
    assert payload is not None
    client.write(data_packet(None, payload.data))  # the pipeline's CREATE_PIPELINE sent as pool data
    assert client.finish() == 160
    assert "Object reference not set to an instance of an object." in client.stderr


@pytest.mark.parametrize("ack", ["DataAck", "CommandAck", "CloseAck", "SignalAck"])
def test_a_client_sent_ack_ends_pwsh_with_4000(client: PsrpTestClient, ack: str) -> None:
    client.open()
    client.write(f"<{ack} PSGuid='{EMPTY_GUID}' />\n".encode())
    assert client.process.wait(timeout=30) == 160
    assert f'An unknown element "{ack}" was received.' in client.stderr


def test_a_signal_to_the_pool_ends_pwsh_with_4000(client: PsrpTestClient) -> None:
    client.open()
    client.send_action("Signal", None)
    assert client.process.wait(timeout=30) == 160
    assert "signal" in client.stderr.lower()


def test_an_empty_line_ends_pwsh_with_4000(client: PsrpTestClient) -> None:
    client.open()
    client.write(b"\n")
    assert client.process.wait(timeout=30) == 160
    assert UNKNOWN_EMPTY in client.stderr


def test_closing_stdin_ends_pwsh_with_4000(client: PsrpTestClient) -> None:
    client.open()
    assert client.finish() == 160
    assert UNKNOWN_EMPTY in client.stderr


def test_garbage_input_ends_pwsh_with_4000(client: PsrpTestClient) -> None:
    client.write(b"hello pwsh\n")
    assert client.process.wait(timeout=30) == 160
    assert "Data at the root level is invalid." in client.stderr
