"""The session scenarios against a real PowerShell 7: ``pytest -m real_pwsh`` with pwsh on PATH.

Skipped (with the reason) where there is no pwsh. ``PSWRAP_PWSH`` names another executable. The
faults are real too: a script that writes raw bytes to pwsh's stdout (garbage in the PSRP stream), a
.NET call that ignores the stop signal (a hang), and a process killed from outside.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pswrap import (
    InvocationTimeout,
    LocalTransport,
    OneShotTransport,
    Secret,
    Session,
    TransportError,
)
from tests import realpwsh
from tests import session_scenarios as scenarios

PWSH = realpwsh.PWSH

pytestmark = [pytest.mark.real_pwsh, pytest.mark.usefixtures("real_pwsh")]

CANARY = "canary-real_x41-SeCrEt-" + uuid.uuid4().hex[:8]


def make_transport(kind: str, **options: Any) -> LocalTransport | OneShotTransport:
    assert PWSH is not None
    if kind == "local":
        return LocalTransport(pwsh=PWSH, **options)
    return OneShotTransport(pwsh=PWSH)


@pytest.fixture(scope="module")
def shared() -> Iterator[dict[str, Session]]:
    """One session per transport for the whole module: one server-mode pwsh serves every local test."""
    realpwsh.require()
    sessions = {
        kind: Session(make_transport(kind), timeout=120, progress=True) for kind in ("local", "oneshot")
    }
    yield sessions
    for opened in sessions.values():
        opened.close()


@pytest.fixture(params=["local", "oneshot"])
def session(request: pytest.FixtureRequest, shared: dict[str, Session]) -> Session:
    return shared[request.param]


def buffers(session: Session) -> bool:
    """Whether nothing arrives before pwsh exits: real pwsh -OutputFormat xml buffers its CLIXML."""
    return session.transport.name == "oneshot"


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


def test_exit_codes(session: Session) -> None:
    scenarios.check_exit_codes(session)


def test_non_terminating_errors_and_error_action_preference(session: Session) -> None:
    scenarios.check_error_action_preference(session)


def test_stop(session: Session) -> None:
    scenarios.check_stop(session, streams=not buffers(session))


def test_timeout(session: Session) -> None:
    scenarios.check_timeout(session, streams=not buffers(session))


def test_twenty_thousand_objects_stream_in_bounded_memory(shared: dict[str, Session]) -> None:
    scenarios.check_many_objects_stream_in_bounded_memory(shared["local"], 20_000)


def test_prompts_are_refused(session: Session) -> None:
    scenarios.check_prompts_refused(session)


def test_three_invocations_run_at_once_on_a_pool_of_three() -> None:
    with Session(make_transport("local", pool_size=3)) as session:
        scenarios.check_three_at_once(session)
        assert session.transport.processes_started == 1  # type: ignore[attr-defined]


def test_a_hung_pwsh_is_killed_at_the_timeout_and_replaced() -> None:
    transport = make_transport("local", stop_grace=2)
    assert isinstance(transport, LocalTransport)
    with Session(transport) as session:
        first_pid = transport.pid
        result = session.script("'started'; [System.Threading.Thread]::Sleep(120000)", timeout=2)
        with pytest.raises(InvocationTimeout, match="killed"):
            result.wait()
        assert result.output == ["started"]
        assert session.invoke("Write-Output", "alive").output == ["alive"]
        assert transport.pid != first_pid and transport.processes_started == 2


def test_garbage_on_stdout_fails_clearly_and_the_next_call_works() -> None:
    transport = make_transport("local")
    with Session(transport) as session:
        script = (
            "'before'; $out = [Console]::OpenStandardOutput(); "
            '$bytes = [Text.Encoding]::ASCII.GetBytes("garbage`n"); $out.Write($bytes, 0, $bytes.Length); '
            "$out.Flush(); Start-Sleep -Seconds 30"
        )
        result = session.script(script)
        with pytest.raises(TransportError, match="not PowerShell remoting data") as caught:
            result.wait()
        assert caught.value.partial.output == ["before"]
        assert session.invoke("Write-Output", "next").output == ["next"]


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGKILL")
def test_a_pwsh_killed_from_outside_fails_clearly_and_the_next_call_works() -> None:
    transport = make_transport("local")
    assert isinstance(transport, LocalTransport)
    with Session(transport) as session:
        # PowerShell's own process: with a .NET tool install, the pwsh on PATH is a launcher whose child
        # runs PowerShell (killing only the launcher leaves PowerShell running and the call unharmed).
        result = session.script("$PID; Start-Sleep -Seconds 60")
        pid = next(iter(result))
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(TransportError, match="exited with code") as caught:
            result.wait()
        assert caught.value.partial.output == [pid]
        assert session.invoke("Write-Output", "next").output == ["next"]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
@pytest.mark.parametrize("kind", ["local", "oneshot"])
def test_a_secret_parameter_is_not_in_argv_environment_or_logs(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = make_transport(kind)
    with Session(transport) as session:
        result = session.script(
            "param($Token) 'started'; Start-Sleep -Seconds 5; $Token.Length", Token=Secret(CANARY)
        )
        assert next(iter(result)) == "started"
        execution: Any = result._execution
        pid = transport.pid if isinstance(transport, LocalTransport) else execution.process.pid
        exposed = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        assert CANARY.encode() not in exposed
        assert result.output == ["started", len(CANARY)]
    assert CANARY not in "\n".join(r.getMessage() for r in caplog.records)
