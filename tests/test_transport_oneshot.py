"""The one-shot transport (one ``pwsh -OutputFormat xml`` per call) against the pwsh stand-in."""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Iterator

import pytest

from pswrap import (
    Invocation,
    InvocationTimeout,
    OneShotTransport,
    ProtocolError,
    Secret,
    SecureString,
    Session,
    TransportError,
)
from pswrap.clixml import parse_clixml
from pswrap.transports.oneshot import BOOTSTRAP, build_request, command_line
from tests import session_scenarios as scenarios
from tests.fixtures.pwsh import PwshStandin

CANARY = "canary-oneshot_x41-5c2b8e0f"


@pytest.fixture
def session(pwsh_standin: PwshStandin) -> Iterator[Session]:
    with Session("oneshot", timeout=60, progress=True) as s:
        yield s
    assert_nothing_left(pwsh_standin)


def assert_nothing_left(pwsh_standin: PwshStandin) -> None:
    """No thread of this test's pwsh processes still runs and every one of them has been reaped."""
    pids = {process.pid for process in pwsh_standin.processes()}
    threads = [t.name for t in threading.enumerate() if t.name.startswith("pswrap-")]
    assert [name for name in threads if int(name.split("-")[2]) in pids] == []
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # not our child any more: reaped, no zombie


def test_every_stream(session: Session) -> None:
    scenarios.check_every_stream(session)


def test_every_parameter_type_round_trips(session: Session) -> None:
    scenarios.check_round_trips(session)


def test_secure_strings_and_objects(session: Session) -> None:
    scenarios.check_secure_strings_and_objects(session, CANARY)


def test_positional_named_and_pipeline_input(session: Session) -> None:
    scenarios.check_positional_named_and_input(session)


def test_terminating_error(session: Session) -> None:
    scenarios.check_terminating_error(session)


def test_non_terminating_errors_and_error_action_preference(session: Session) -> None:
    scenarios.check_error_action_preference(session)


def test_exit_codes(session: Session) -> None:
    scenarios.check_exit_codes(session)


def test_stop(session: Session) -> None:
    scenarios.check_stop(session)


def test_timeout(session: Session) -> None:
    scenarios.check_timeout(session)


def test_prompts_are_refused(session: Session) -> None:
    scenarios.check_prompts_refused(session)


def test_output_streams_while_pwsh_still_runs(session: Session) -> None:
    result = session.script("'first'; Start-Sleep -Seconds 60; 'never'")
    assert next(iter(result)) == "first"  # arrived although the process has not ended
    result.stop()
    assert result.state == "stopped"


def test_each_call_is_one_process_with_the_fixed_command_line(
    session: Session, pwsh_standin: PwshStandin
) -> None:
    session.invoke("Write-Output", "x'; Remove-Item -Recurse /; '").wait()
    session.script("param($n) $n", n=1).wait()
    first, second = pwsh_standin.processes()
    for process in (first, second):
        assert process.mode == "oneshot"
        assert process.argv[1:] == command_line(["pwsh"])[1:]
        assert base64.b64decode(process.argv[-1]).decode("utf-16-le") == BOOTSTRAP
    (request,) = parse_clixml(first.stdin)
    assert request.value["Command"] == "Write-Output"
    assert request.value["Arguments"] == ["x'; Remove-Item -Recurse /; '"]  # a value, never script text
    assert not any("Remove-Item" in script for script in first.scripts)


def test_the_request_is_one_ascii_line_of_clixml() -> None:
    invocation = Invocation(
        "Get-Thing", parameters={"Name": "é\n🎵"}, arguments=[1], input=[2], progress=True
    )
    data = build_request(invocation)
    assert data.endswith(b"\n") and data.count(b"\n") == 1 and data.isascii()
    (item,) = parse_clixml(data)
    request = item.value
    assert request == {
        "Command": "Get-Thing",
        "Script": None,
        "Parameters": {"Name": "é\n🎵"},
        "Arguments": [1],
        "HasInput": True,
        "Input": [2],
        "ErrorActionPreference": "Continue",
        "ProgressPreference": "Continue",
    }
    no_input = next(iter(parse_clixml(build_request(Invocation("x", is_script=True))))).value
    assert no_input["HasInput"] is False and no_input["Script"] == "x" and no_input["Command"] is None
    assert no_input["ProgressPreference"] == "SilentlyContinue"


# --- faults ---------------------------------------------------------------------------------


def test_pwsh_dying_mid_output(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(
        faults={"processes": [1], "exit_after_objects": 2, "exit_code": 3, "stderr": "fatal: out of memory"}
    )
    with Session("oneshot") as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3, 4])
        with pytest.raises(TransportError, match="exited with code 3 before finishing its output") as caught:
            list(result)
        assert caught.value.stderr_tail == "fatal: out of memory"
        assert caught.value.partial is result and result.output == [1, 2]
        assert session.invoke("Write-Output", "next").output == ["next"]
    assert_nothing_left(pwsh_standin)


def test_garbage_on_stdout(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "garbage_after_objects": 1, "garbage": "<<not XML>>"})
    with Session("oneshot") as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3])
        with pytest.raises(ProtocolError, match="not CLIXML on its stdout") as caught:
            result.wait()
        assert "line 2" in str(caught.value)  # where in pwsh's output
        assert result.output == [1]
        assert session.invoke("Write-Output", "next").output == ["next"]
    assert_nothing_left(pwsh_standin)


def test_a_hung_pwsh_is_killed_at_the_timeout(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "hang_after_objects": 1, "stderr": "stuck"})
    with Session("oneshot") as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3], timeout=2)
        with pytest.raises(InvocationTimeout, match="killed pwsh") as caught:
            result.wait()
        assert caught.value.stderr_tail == "stuck"
        assert result.output == [1]
        assert session.invoke("Write-Output", "next").output == ["next"]
    assert_nothing_left(pwsh_standin)


@pytest.mark.parametrize("fault", ["die_on_start", "hang_on_start"])
def test_pwsh_failing_during_start(pwsh_standin: PwshStandin, fault: str) -> None:
    pwsh_standin.configure(faults={"processes": [1], fault: True, "exit_code": 9, "stderr": "no .NET"})
    with Session("oneshot", timeout=60) as session:
        with pytest.raises(TransportError) as caught:
            session.invoke("Write-Output", 1, timeout=2).wait()
        assert caught.value.stderr_tail == "no .NET"
        assert session.invoke("Write-Output", "next").output == ["next"]
    assert_nothing_left(pwsh_standin)


def test_closing_the_session_kills_what_still_runs(pwsh_standin: PwshStandin) -> None:
    session = Session("oneshot")
    result = session.script("'started'; Start-Sleep -Seconds 60")
    assert next(iter(result)) == "started"
    session.close()
    assert_nothing_left(pwsh_standin)


# --- secrets --------------------------------------------------------------------------------


def test_a_secret_is_in_neither_argv_nor_environment_nor_logs(
    pwsh_standin: PwshStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Session("oneshot") as session:
        result = session.script(
            "param($Token, $Password) $Token.Length; $Password.Length",
            Token=Secret(CANARY),
            Password=SecureString(CANARY),
        )
        assert result.output == [len(CANARY), len(CANARY)]
    (process,) = pwsh_standin.processes()
    assert CANARY not in " ".join(process.argv)
    assert not any(CANARY in key or CANARY in value for key, value in process.env.items())
    assert not any(CANARY in script for script in process.scripts)
    (request,) = parse_clixml(process.stdin)  # the one place it travels: the request on stdin
    assert request.value["Parameters"]["Token"] == CANARY
    assert CANARY not in "\n".join(record.getMessage() for record in caplog.records)


def test_transport_state() -> None:
    transport = OneShotTransport(pwsh="/no/such/pwsh")
    assert not transport.healthy
    with pytest.raises(Exception, match="was not found"):
        transport.open()
