"""The server-mode transport (a persistent ``pwsh -s``) against the pwsh stand-in."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

import pytest

from pswrap import (
    InvocationTimeout,
    LocalTransport,
    Secret,
    SecureString,
    Session,
    TransportError,
)
from tests import session_scenarios as scenarios
from tests.fixtures.pwsh import PwshStandin

CANARY = "canary-local_x41-7f3a9d1e"


@pytest.fixture
def session(pwsh_standin: PwshStandin) -> Iterator[Session]:
    with Session(LocalTransport(stop_grace=2), timeout=60, progress=True) as s:
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


def test_timeout_stops_the_invocation_and_keeps_the_process(session: Session) -> None:
    scenarios.check_timeout(session)
    assert session.transport.processes_started == 1  # type: ignore[attr-defined]


def test_prompts_are_refused(session: Session) -> None:
    scenarios.check_prompts_refused(session)


def test_commands_travel_as_commands_and_everything_runs_in_one_process(
    session: Session, pwsh_standin: PwshStandin
) -> None:
    session.invoke("Write-Output", "x'; Remove-Item -Recurse /; '")
    session.script("param($n) $n", n=1).wait()
    (process,) = pwsh_standin.processes()
    assert process.argv[1:] == ["-NoLogo", "-NoProfile", "-s"]
    assert process.mode == "server"
    assert not any("Remove-Item" in script for script in process.scripts)  # a value, never script text
    assert "param($n) $n" in process.scripts


def test_three_invocations_run_at_once_on_a_pool_of_three(pwsh_standin: PwshStandin) -> None:
    with Session(LocalTransport(pool_size=3, stop_grace=2), timeout=60) as session:
        scenarios.check_three_at_once(session)
        assert session.transport.processes_started == 1  # type: ignore[attr-defined]
    assert_nothing_left(pwsh_standin)


def test_a_pool_of_one_runs_them_one_after_the_other(pwsh_standin: PwshStandin) -> None:
    with Session(LocalTransport(pool_size=1, stop_grace=2), timeout=60) as session:
        script = 'param($n) "started $n"; Start-Sleep -Milliseconds 10; "finished $n"'
        results = [session.script(script, n=i) for i in range(2)]
        assert next(iter(results[1])) == "started 1"
        assert results[0].output == ["started 0", "finished 0"]  # it had finished before 1 could start


# --- faults ---------------------------------------------------------------------------------


def test_pwsh_dying_mid_invocation(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(
        faults={"processes": [1], "exit_after_objects": 2, "exit_code": 3, "stderr": "fatal: out of memory"}
    )
    with Session(LocalTransport(stop_grace=2), timeout=60) as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3, 4])
        with pytest.raises(TransportError) as caught:
            list(result)
        error = caught.value
        assert "exited with code 3 while running Write-Output" in str(error)
        assert "fatal: out of memory" in str(error) and error.stderr_tail == "fatal: out of memory"
        assert error.partial is result and result.output == [1, 2]  # what arrived is kept
        assert session.invoke("Write-Output", "next").output == ["next"]  # a fresh process
        assert session.transport.processes_started == 2  # type: ignore[attr-defined]
    assert_nothing_left(pwsh_standin)


def test_garbage_on_stdout(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(
        faults={"processes": [1], "garbage_after_objects": 1, "garbage": "Loading module..."}
    )
    with Session(LocalTransport(stop_grace=2), timeout=60) as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3])
        with pytest.raises(TransportError, match="not PowerShell remoting data") as caught:
            result.wait()
        assert "Loading module..." in str(caught.value)  # the offending bytes are quoted
        assert result.output == [1]
        assert session.invoke("Write-Output", "next").output == ["next"]
    assert_nothing_left(pwsh_standin)


def test_a_hung_pwsh_is_killed_at_the_timeout(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "hang_after_objects": 1, "stderr": "stuck"})
    transport = LocalTransport(stop_grace=1)
    with Session(transport) as session:
        first = transport.pid
        result = session.invoke("Write-Output", InputObject=[1, 2, 3], timeout=2)
        with pytest.raises(InvocationTimeout, match="pswrap killed the pwsh process") as caught:
            result.wait()
        assert caught.value.stderr_tail == "stuck"
        assert result.output == [1]
        assert session.invoke("Write-Output", "next").output == ["next"]
        assert transport.pid != first and transport.processes_started == 2
    assert_nothing_left(pwsh_standin)


def test_pwsh_dying_during_start(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(
        faults={"processes": [1], "die_on_start": True, "exit_code": 9, "stderr": "no .NET"}
    )
    session = Session(LocalTransport(stop_grace=2))
    with pytest.raises(TransportError, match="could not open a PowerShell session") as caught:
        session.invoke("Write-Output", 1)
    assert "exited with code 9" in str(caught.value) and caught.value.stderr_tail == "no .NET"
    assert session.invoke("Write-Output", "next").output == ["next"]
    session.close()
    assert_nothing_left(pwsh_standin)


def test_pwsh_hanging_during_start(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "hang_on_start": True})
    session = Session(LocalTransport(open_timeout=2, stop_grace=1))
    with pytest.raises(TransportError, match="did not open a PowerShell session within 2 s"):
        session.open()
    assert session.invoke("Write-Output", "next").output == ["next"]
    session.close()
    assert_nothing_left(pwsh_standin)


def test_pwsh_killed_between_calls_is_replaced_without_the_caller_noticing(pwsh_standin: PwshStandin) -> None:
    transport = LocalTransport(stop_grace=2)
    with Session(transport) as session:
        assert session.invoke("Write-Output", 1).output == [1]
        assert transport.pid is not None
        os.kill(transport.pid, 9)
        assert session.invoke("Write-Output", 2).output == [2]
        assert transport.processes_started == 2
    assert_nothing_left(pwsh_standin)


def test_on_open_runs_again_in_the_fresh_process(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "exit_after_objects": 2})

    def setup(session: Session) -> None:
        session.script("$global:ready = 'yes'").wait()

    with Session(LocalTransport(stop_grace=2), on_open=setup) as session:
        assert session.script("$global:ready").output == ["yes"]
        with pytest.raises(TransportError):
            session.invoke("Write-Output", InputObject=[1, 2]).wait()
        assert session.script("$global:ready").output == ["yes"]  # state rebuilt by on_open


# --- secrets --------------------------------------------------------------------------------


def test_a_secret_is_in_neither_argv_nor_environment_nor_logs(
    pwsh_standin: PwshStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG: psrpcore logs whole PSRP messages
    with Session(LocalTransport(stop_grace=2)) as session:
        result = session.script(
            "param($Token, $Password) $Token.Length; $Password.Length",
            Token=Secret(CANARY),
            Password=SecureString(CANARY),
        )
        assert result.output == [len(CANARY), len(CANARY)]
    (process,) = pwsh_standin.processes()
    assert CANARY not in " ".join(process.argv)
    assert not any(CANARY in key or CANARY in value for key, value in process.env.items())
    assert not any(CANARY in script for script in process.scripts)  # bound, never pasted
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Queuing PSRP Message" in logged and CANARY not in logged


def test_values_pswrap_cannot_send_fail_before_anything_runs(
    session: Session, pwsh_standin: PwshStandin
) -> None:
    with pytest.raises(TypeError, match="parameter 'Thing' is a object"):
        session.invoke("Write-Output", Thing=object())
    assert session.invoke("Write-Output", 1).output == [1]
