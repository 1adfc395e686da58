"""pswrap's WinRM transport against real Windows hosts' recorded answers (``../shared/corpus/wsman``).

Each recording pswrap's public API can express runs the same scenario through
``Session(WinRMTransport(...))`` against :class:`~tests.standins.wsman.replay.ReplayHost`, which serves
the real host's bytes (only the identifiers pswrap chose rewritten). Each test asserts what a user gets
- the real Windows PowerShell 5.1 values, records, states, exit codes - and that every request pswrap
sent is one the host accepts. Where pswrap's requests differ from the recorded client's (pypsrp), the
difference is listed in :data:`HARMLESS` with why it does not matter; any other difference fails.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import psrpcore.types as ps
import pytest

from pswrap import ErrorRecord, PowerShellError, PSObject, Session, Version, WinRMTransport
from pswrap.clixml import ClixmlReader
from pswrap.errors import InvocationNotStarted
from pswrap.transports._convert import from_psrp
from pswrap.transports.base import Invocation
from tests.clixml_normal import normalize_pswrap

replay = pytest.importorskip("tests.standins.wsman.replay")
CORPUS: Path = replay.CORPUS
pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason="the WSMan corpus (../shared/corpus/wsman) is absent"
)

#: Differences between pswrap's requests and the recorded client's, and why a real host does not mind.
HARMLESS: dict[str, str] = {
    "OperationTimeout": "pswrap writes PT20.0S where pypsrp wrote PT20S: both are xs:duration, the same 20 s",
    "MaxEnvelopeSize": "pypsrp raises it to 512,000 only after the host's capability; pswrap asks the host "
    "(see the envelope tests) - the host answers within the size asked for either way",
    "Send: PUBLIC_KEY: pswrap exchanges the session key on open": "PowerShell's plugin answers PUBLIC_KEY at "
    "any time; pswrap exchanges the key once, up front, so SecureStrings can travel both ways later",
    "Receive: EncryptedSessionKey made for pswrap's public key": "the recorded key was made for pypsrp's "
    "public key; the replay encrypts one for pswrap's, in the message Windows sends",
    "Receive: EncryptedSessionKey re-made for pswrap's public key": "as above, in the recorded answer",
    "Signal: not in the recording": "pswrap closes each command it is done with (Signal Terminate, which "
    "PowerShell's client sends through WSManCloseCommand); Windows answers an empty SignalResponse",
    "Delete: not in the recording": "pswrap deletes the shell it opened; Windows answers DeleteResponse",
    "Command: the pipeline's commands": "pswrap runs one command or script per pipeline; the recorded client "
    "built the same work from several commands (the test asserts what pswrap gets for its own)",
    "Send: body": "pswrap sends answers to host calls on 'pr' with the CommandId, as PowerShell's client does "
    "(WSManSendShellInputEx with the command's handle); pypsrp sends them to the shell",
    "Send: carried in the Command's argument": "the recorded client sent the pipeline input in a Send of "
    "its own; pswrap puts what fits in the Command's one argument, which PowerShell's plugin feeds to the "
    "same ProcessRawData as a Send (WSManPluginShellSession: arguments.args[0])",
    "Create: options": "the recorded client asked for WINRS_NOPROFILE, which pswrap has no option for",
    "Create: body": "the recorded client asked for a shell IdleTimeOut; pswrap takes the host's default",
}


def _harmless(kind: str) -> bool:
    return any(key in kind for key in HARMLESS)


@dataclass
class Scenario:
    """What pswrap does with a recording, and what the user must get."""

    run: Callable[[Session, Any], None]
    #: Keyword arguments of the Session (``progress=True``…).
    session: dict[str, Any] | None = None
    #: Recorded requests pswrap's scenario never makes, by operation (the recorded client's extras).
    unanswered: tuple[str, ...] = ()
    options: dict[str, Any] | None = None
    envelope_kb: int = 500


def _script(recording: str, index: int = 0) -> str:
    """The script the recorded client ran (the ``index``th pipeline), as PowerShell received it."""
    found = []
    for exchange in replay.load(recording):
        if exchange.op == "Command":
            for message in replay.messages(exchange.request.payloads):
                if replay.message_type(message) == replay.CREATE_PIPELINE:
                    found.append(replay._commands(message)[0][0])
    return html.unescape(found[index]).replace("_x000A_", "\n")


def open_only(session: Session, host: Any) -> None:
    assert session.transport.healthy
    versions = session.transport.application_private_data["PSVersionTable"]  # type: ignore[attr-defined]
    assert versions["PSVersion"] == Version(5, 1, 14393, 2248) and versions["PSEdition"] == "Desktop"
    assert versions["BuildVersion"] == Version(10, 0, 14393, 2248)
    assert versions["CLRVersion"] == Version(4, 0, 30319, 42000)
    assert versions["PSRemotingProtocolVersion"] == Version(2, 3) and versions[
        "WSManStackVersion"
    ] == Version(3, 0)
    assert versions["PSCompatibleVersions"][-1] == Version(5, 1, 14393, 2248)


def clear_commands(session: Session, host: Any) -> None:
    result = session.script("echo new")
    assert result.output == ["new"] and result.state == "completed" and result.exit_code is None


def merge_commands(session: Session, host: Any) -> None:
    # Windows merged every stream into the output: the records arrive as output objects, typed.
    result = session.script(_script("test_psrp_merge_commands.yml"))
    assert result.state == "completed"
    kinds = [next(iter(v.type_names)) for v in result.output if isinstance(v, PSObject)]
    assert kinds[:3] == [
        "System.Management.Automation.DebugRecord",
        "System.Management.Automation.VerboseRecord",
        "System.Management.Automation.ErrorRecord",
    ]
    assert "output stream" in result.output
    # Windows PowerShell 5.1 reports loading its modules as progress, before anything else.
    (loading,) = result.progress
    assert (loading.activity, loading.activity_id, loading.completed) == (
        "Preparing modules for first use.",
        0,
        True,
    )


def no_profile(session: Session, host: Any) -> None:
    assert session.script("$env:USERPROFILE.ToUpperInvariant()").output == [
        "C:\\WINDOWS\\SYSTEM32\\CONFIG\\SYSTEMPROFILE"
    ]


def pshost_methods(session: Session, host: Any) -> None:
    result = session.script("$host.CurrentCulture; $host.SetShouldExit(1)")
    (culture,) = result.output
    assert culture.type_names[0] == "System.Globalization.CultureInfo"
    assert (culture.Name, culture.LCID, culture.DisplayName) == ("en-US", 1033, "English (United States)")
    assert result.state == "completed" and result.exit_code == 1  # SetShouldExit reached the host


def raw_ui(session: Session, host: Any) -> None:
    result = session.script(_script("test_psrp_pshost_raw_ui_mocked_methods.yml"))
    assert [str(v) for v in result.output[:4]] == ["White", "Green", "Blue", "Red"]
    assert result.output[14:16] == ["pypsrp window", "New Window Title"]
    # ReadKey is a prompt: pswrap refuses it, says so, and the answer went to the command on 'pr'.
    assert [r.error_id for r in result.errors][:1] == ["PswrapPromptRefused"]
    answers = [r for r in host.requests if r.op == "Send" and r.stream == "pr"]
    assert len(answers) == 1 and answers[0].command is not None


def protocol_run(recording: str) -> Callable[[Session, Any], None]:
    def run(session: Session, host: Any) -> None:
        versions = session.transport.application_private_data["PSVersionTable"]  # type: ignore[attr-defined]
        protocol = Version(2, 2) if recording.endswith("2.2.yml") else Version(2, 3)
        assert versions["PSRemotingProtocolVersion"] == protocol  # and pswrap spoke it: the call works
        result = session.script(_script(recording), input=["message 1", 2, ["3", 3]])
        # The recorded pipeline merged errors into the output; Windows echoes the input after it.
        error, *echoed = result.output
        assert error.type_names[0] == "System.Management.Automation.ErrorRecord"
        assert echoed[:2] == ["message 1", 2] and echoed[2] == ["3", 3]
        assert [r.message for r in result.debug] == ["Start Block", "End Block"]
        assert result.state == "completed"

    return run


def stream_records(session: Session, host: Any) -> None:
    result = session.script(_script("test_psrp_stream_no_output_invocation.yml"))
    assert result.output == ["output stream"] and result.state == "completed"
    assert [r.message for r in result.debug] == ["debug stream"]
    assert [r.message for r in result.verbose] == ["verbose stream"]
    assert [r.message for r in result.warnings] == ["warning stream"]
    assert [str(r.message) for r in result.information] == ["information stream"]
    (error,) = result.errors
    assert isinstance(error, ErrorRecord) and error.message == "error stream"
    assert error.exception_type == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert error.category == "NotSpecified" and error.activity == "Write-Error"


def history(expected: int) -> Callable[[Session, Any], None]:
    def run(session: Session, host: Any) -> None:
        assert session.script("Write-Output 1; Write-Output 2").output == [1, 2]
        entries = session.script("Get-History").output
        assert len(entries) == expected
        if expected:
            assert entries[0].CommandLine == "Write-Output 1; Write-Output 2"
            assert str(entries[0].ExecutionStatus) == "Completed"

    return run


def execute_ps(session: Session, host: Any) -> None:
    result = session.invoke("Invoke-Expression", Command="Get-Service -Name winrm")
    assert result.output[:2] == ["winrm", "Running"] and result.state == "completed"


def execute_ps_failure(session: Session, host: Any) -> None:
    result = session.invoke("Invoke-Expression", Command="Get-ServiceTypo")
    with pytest.raises(PowerShellError) as caught:
        result.wait()
    assert result.state == "failed" and result.output == []
    record = caught.value.record
    assert record.error_id == "CommandNotFoundException,Microsoft.PowerShell.Commands.InvokeExpressionCommand"
    assert record.exception_type == "System.Management.Automation.CommandNotFoundException"
    assert record.message.startswith("The term 'Get-ServiceTypo' is not recognized")
    assert record.category == "ObjectNotFound" and record.target == "Get-ServiceTypo"
    # Where it happened: the cmdlet (the recorded pipeline did not ask for the script position).
    assert record.activity == "Invoke-Expression" and record.reason == "CommandNotFoundException"


def alive_probe(*answers: bool) -> Callable[[Session, Any], None]:
    """The probe pswrap sends before a call after an idle spell (a WSMan Get of the shell), answered as
    the recorded host answered it, in order: ``True`` where the shell is still there."""

    def run(session: Session, host: Any) -> None:
        transport = session.transport
        for alive in answers:
            if alive:
                assert transport._shell.alive()  # type: ignore[attr-defined]
            else:  # the call is not started, so the Session opens a fresh shell and runs it there
                with pytest.raises(InvocationNotStarted, match="is gone"):
                    transport.start(Invocation("Write-Output", arguments=["x"]))

    return run


SCENARIOS: dict[str, Scenario] = {
    "test_psrp_open_runspace.yml": Scenario(open_only),
    "test_psrp_clear_commands.yml": Scenario(clear_commands),
    "test_psrp_merge_commands.yml": Scenario(merge_commands, session={"progress": True}),
    "test_psrp_no_profile.yml": Scenario(no_profile),
    "test_psrp_pshost_methods.yml": Scenario(pshost_methods),
    "test_psrp_pshost_raw_ui_mocked_methods.yml": Scenario(raw_ui),
    "test_psrp_run_protocol_version_2.2.yml": Scenario(
        protocol_run("test_psrp_run_protocol_version_2.2.yml")
    ),
    "test_psrp_run_protocol_version_2.3.yml": Scenario(
        protocol_run("test_psrp_run_protocol_version_2.3.yml")
    ),
    "test_psrp_stream_no_output_invocation.yml": Scenario(stream_records),
    "test_psrp_with_history.yml": Scenario(history(1)),
    "test_psrp_with_no_history.yml": Scenario(history(0)),
    "test_client_execute_ps.yml": Scenario(execute_ps),
    "test_client_execute_ps_failure.yml": Scenario(execute_ps_failure),
    "test_psrp_is_alive_http_error.yml": Scenario(alive_probe(True, False), options={"idle_check": 0.0}),
    "test_psrp_is_alive_invalid_selectors.yml": Scenario(
        alive_probe(True, False), options={"idle_check": 0.0}
    ),
    # pswrap deletes a shell it gave up in the background; the scenario does not wait for it.
    "test_psrp_is_alive_other_wsman_error.yml": Scenario(
        alive_probe(False), unanswered=("Delete",), options={"idle_check": 0.0}
    ),
    # A shell another client disconnected: Windows says State Disconnected; this client cannot use it.
    "test_psrp_is_alive_state_disconnected.yml": Scenario(
        alive_probe(True, False), options={"idle_check": 0.0}
    ),
}

#: Recordings pswrap's public API cannot express, and why.
NOT_EXPRESSIBLE: dict[str, str] = {
    "test_psrp_application_args.yml": "pswrap sends no ApplicationArguments with the runspace pool",
    "test_psrp_disconnect_runspaces.yml": "pswrap does not disconnect and reconnect runspace pools",
    "test_psrp_disconnected_commands.yml": "pswrap does not disconnect and reconnect pipelines",
    "test_psrp_get_command_metadata.yml": "pswrap does not send GET_COMMAND_METADATA",
    "test_psrp_reset_runspace_state.yml": "pswrap does not reset a runspace's state",
    "test_psrp_reset_runspace_state_fail.yml": "pswrap does not reset a runspace's state",
    "test_psrp_set_runspaces.yml": "pswrap does not change a pool's size once open",
    "test_psrp_multiple_commands.yml": "a pipeline of several commands, and its output holds a SecureString "
    "encrypted with the recorded client's session key, which no other client can read",
    "test_psrp_pshost_ui_mocked_methods.yml": "the host's later output depends on prompt answers the "
    "recorded client gave; pswrap refuses prompts (and a SecureString is under the recorded client's key)",
    "test_client_execute_ps_environment.yml": "pypsrp's Client sets environment variables with a wrapper "
    "script of its own; pswrap has no environment option",
    "test_wsman_update_envelope_size_150.yml": "a host's configuration: test_the_envelope_is_what_the_host_allows",
    "test_wsman_update_envelope_size_500.yml": "a host's configuration: test_the_envelope_is_what_the_host_allows",
}
for _name in sorted(p.name for p in CORPUS.glob("test_client_*.yml")) if CORPUS.is_dir() else []:
    if _name not in SCENARIOS and _name not in NOT_EXPRESSIBLE:
        NOT_EXPRESSIBLE[_name] = "file copy and fetch through pypsrp's Client (its own PowerShell scripts)"
for _name in sorted(p.name for p in CORPUS.glob("test_winrs_*.yml")) if CORPUS.is_dir() else []:
    NOT_EXPRESSIBLE[_name] = "a raw WinRS (cmd.exe) shell: pswrap speaks PowerShell remoting only"


@pytest.fixture
def replayed(request: pytest.FixtureRequest) -> Iterator[Any]:
    name, scenario = request.param
    with replay.ReplayHost(name, max_envelope_kb=scenario.envelope_kb) as host:
        yield name, scenario, host


def check_requests(host: Any, scenario: Scenario) -> None:
    """Every request is one the host accepts; every difference from the recorded client is harmless."""
    assert host.problems == []
    unexplained = sorted(k for k in host.kinds() if not _harmless(k))
    assert unexplained == [], [str(d) for d in host.differences if not _harmless(f"{d.op}: {d.what}")]
    left = [u for u in host.unanswered if u.split()[-1] not in scenario.unanswered]
    assert left == [], f"recorded requests pswrap never made: {left}"


@pytest.mark.parametrize("replayed", sorted(SCENARIOS.items()), ids=sorted(SCENARIOS), indirect=True)
def test_a_recorded_windows_exchange(replayed: tuple[str, Scenario, Any]) -> None:
    _name, scenario, host = replayed
    options = host.transport_options(**(scenario.options or {}))
    with Session(WinRMTransport(**options), timeout=30, **(scenario.session or {})) as session:
        scenario.run(session, host)
    check_requests(host, scenario)


def test_every_recording_is_replayed_or_says_why_not() -> None:
    names = {p.name for p in CORPUS.glob("*.yml")}
    assert len(names) == 54
    assert names == set(SCENARIOS) | set(NOT_EXPRESSIBLE)
    assert not set(SCENARIOS) & set(NOT_EXPRESSIBLE)


@pytest.mark.parametrize("kilobytes", [150, 500])
def test_the_envelope_is_what_the_host_allows(kilobytes: int) -> None:
    """Once the host speaks PSRP 2.2+, pswrap reads its MaxEnvelopeSizekb (as pypsrp does) and sends and
    asks for envelopes that large: 150 KB on a host configured small, 500 KB on a default one."""
    with replay.ReplayHost("test_psrp_clear_commands.yml", max_envelope_kb=kilobytes) as host:
        with Session(WinRMTransport(**host.transport_options()), timeout=30) as session:
            assert session.script("echo new").output == ["new"]
        assert host.problems == []  # no request over the host's limit
    (asked,) = [i for i, r in enumerate(host.requests) if r.resource_uri == replay.CONFIG]
    assert {r.max_envelope_size for r in host.requests[: asked + 1]} == {153_600}  # fits any host
    after = host.requests[asked + 1 :]
    assert sorted(r.op for r in after) == ["Command", "Delete", "Receive", "Signal"]
    assert {r.max_envelope_size for r in after} == {kilobytes * 1024}


# --- every PSRP message of the recordings through pswrap's conversion and the CLIXML reader ---------

_OBJS = b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'


def _recorded_messages() -> Iterator[tuple[str, int, bytes]]:
    for path in sorted(CORPUS.glob("test_*.yml")):
        sent: list[bytes] = []
        received: list[bytes] = []
        for exchange in replay.load(path.name):
            if not exchange.request.resource_uri.startswith("http://schemas.microsoft.com/powershell/"):
                continue  # WinRS and configuration: no PSRP
            sent.extend(exchange.request.payloads)
            if exchange.response and "<rsp:Stream" in exchange.response:
                for found in re.finditer(r"<rsp:Stream\b[^>]*>([^<]+)</rsp:Stream>", exchange.response):
                    data = base64.b64decode(found.group(1))
                    if data[:1] == b"\0":  # PSRP fragments (a WinRS shell's stdout is plain text)
                        received.append(data)
        for payloads in (sent, received):
            for message in replay.messages(payloads):
                yield path.name, replay.message_type(message), message[40:]


def test_every_recorded_psrp_message_converts_as_the_reader_reads_it() -> None:
    """The real Windows messages are the widest corpus of PSRP objects: psrpcore's object converted by
    pswrap must be what pswrap's CLIXML reader makes of the same XML."""
    compared = secure = 0
    for name, kind, body in _recorded_messages():
        text = body.decode("utf-8-sig").strip()
        if not text:
            continue  # END_OF_PIPELINE_INPUT and friends carry nothing
        if "<SS>" in text or "<SS " in text:
            secure += 1  # under a session key only the recorded client had
            continue
        where = f"{name} message 0x{kind:x}"
        converted = from_psrp(ps.deserialize(ET.fromstring(text), None))
        reader = ClixmlReader(keep_references=True)
        (item,) = reader.feed(_OBJS + text.encode("utf-8") + b"</Objs>") + reader.close()
        assert normalize_pswrap(converted, both_pswrap=True) == normalize_pswrap(
            item.value, both_pswrap=True
        ), where
        compared += 1
    assert compared >= 540 and secure == 6
