"""The session scenarios against a real PowerShell 7: ``pytest -m real_pwsh`` with pwsh on PATH.

Skipped (with the reason) where there is no pwsh. ``PSWRAP_PWSH`` names another executable. The
faults are real too: a script that writes raw bytes to pwsh's stdout (garbage in the PSRP stream), a
.NET call that ignores the stop signal (a hang), and a process killed from outside.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pswrap import (
    InvocationTimeout,
    LocalTransport,
    OneShotTransport,
    PowerShellError,
    PSDateTime,
    PSObject,
    PSTimeSpan,
    Secret,
    SecureString,
    Session,
    TransportError,
    Version,
)

PWSH = os.environ.get("PSWRAP_PWSH") or shutil.which("pwsh")

pytestmark = [
    pytest.mark.real_pwsh,
    pytest.mark.skipif(PWSH is None, reason="needs a real pwsh on PATH (or PSWRAP_PWSH); none found"),
]

CANARY = "canary-real_x41-SeCrEt-" + uuid.uuid4().hex[:8]


def make_transport(kind: str, **options: Any) -> LocalTransport | OneShotTransport:
    assert PWSH is not None
    if kind == "local":
        return LocalTransport(pwsh=PWSH, **options)
    return OneShotTransport(pwsh=PWSH)


@pytest.fixture(params=["local", "oneshot"])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    with Session(make_transport(request.param), timeout=120, progress=True) as s:
        yield s


EVERY_STREAM = """
param($Name)
$VerbosePreference = 'Continue'
$DebugPreference = 'Continue'
"hello $Name"
Write-Error 'an error'
Write-Warning 'a warning'
Write-Verbose 'some detail'
Write-Debug 'internals'
Write-Information 'for your information'
Write-Progress -Activity 'Copying' -Status 'half way' -PercentComplete 50
Write-Progress -Activity 'Copying' -Completed
'bye'
"""


def test_every_stream(session: Session) -> None:
    result = session.script(EVERY_STREAM, Name="bob")
    assert result.output == ["hello bob", "bye"]
    assert [e.message for e in result.errors] == ["an error"]
    assert [w.message for w in result.warnings] == ["a warning"]
    assert [v.message for v in result.verbose] == ["some detail"]
    assert [d.message for d in result.debug] == ["internals"]
    assert [i.message for i in result.information] == ["for your information"]
    assert any(p.activity == "Copying" for p in result.progress)
    assert result.state == "completed" and result.exit_code is None


ROUND_TRIP: dict[str, Any] = {
    "text": "multi\nline ’quoted’ _x0041_ é 🎵",
    "int": 42,
    "big": 2**40,
    "float": 0.1,
    "decimal": Decimal("1291921.101291"),
    "true": True,
    "bytes": b"\x00\xffabc",
    "guid": uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f"),
    "date": PSDateTime(2024, 2, 29, 23, 59, 58, 123456, nanosecond=700),
    "utc": PSDateTime(2024, 1, 1, 12, tzinfo=dt.timezone.utc),
    "span": PSTimeSpan(ticks=1_234_567_890_123),
    "version": Version(1, 2, 3),
    "list": [1, "two", [3]],
    "table": {"Name": "x", "Nested": {"n": 1}},
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_every_parameter_type_round_trips(session: Session, name: str) -> None:
    value = ROUND_TRIP[name]
    (back,) = session.script("param($Value) Write-Output -NoEnumerate $Value", Value=value).output
    assert back == value
    assert type(back) is type(value)


def test_secure_strings_and_objects_round_trip(session: Session) -> None:
    script = "param($Secret, $Thing) $Secret; $Secret.Length; $Thing.Note"
    thing = PSObject(extended={"Note": "n"}, type_names=("My.Type",))
    secret, length, note = session.script(script, Secret=SecureString(CANARY), Thing=thing).output
    assert isinstance(secret, SecureString) and secret.reveal() == CANARY
    assert length == len(CANARY) and note == "n"


def test_a_terminating_error_keeps_what_came_before(session: Session) -> None:
    result = session.script("'before'; throw 'boom'; 'never'")
    with pytest.raises(PowerShellError, match="boom") as caught:
        result.wait()
    assert caught.value.partial.output == ["before"]
    assert result.state == "failed"
    assert session.invoke("Get-Date").output  # the session goes on


def test_exit_codes(session: Session) -> None:
    assert session.script("'out'; exit 7").exit_code == 7
    assert session.script("'fine'").exit_code is None
    assert session.invoke("Write-Output", 1).output == [1]


def test_stop(session: Session) -> None:
    result = session.script("'started'; Start-Sleep -Seconds 60; 'finished'")
    assert next(iter(result)) == "started"
    result.stop()
    assert result.state == "stopped" and result.output == ["started"]


def test_timeout(session: Session) -> None:
    with pytest.raises(InvocationTimeout) as caught:
        session.script("'started'; Start-Sleep -Seconds 60", timeout=2).wait()
    assert caught.value.partial.output == ["started"]
    assert session.invoke("Write-Output", "next").output == ["next"]


def test_three_invocations_run_at_once_on_a_pool_of_three() -> None:
    with Session(make_transport("local", pool_size=3)) as session:
        script = 'param($n) "started $n"; Start-Sleep -Seconds 60; "finished $n"'
        results = [session.script(script, n=i) for i in range(3)]
        # Each has started while the others still sleep: with one runspace the second could only
        # start after the first finished.
        assert [next(iter(r)) for r in results] == ["started 0", "started 1", "started 2"]
        for r in results:
            r.stop()
        assert [r.state for r in results] == ["stopped"] * 3
        assert session.transport.processes_started == 1  # type: ignore[attr-defined]


def test_prompts_are_refused_clearly() -> None:
    with Session(make_transport("local")) as session:
        result = session.script("Read-Host 'Your name'")
        with contextlib.suppress(PowerShellError):
            result.wait()
        assert any("not interactive" in e.message for e in result.errors)


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
        result = session.script("'started'; Start-Sleep -Seconds 60")
        assert next(iter(result)) == "started"
        assert transport.pid is not None
        os.kill(transport.pid, signal.SIGKILL)
        with pytest.raises(TransportError, match="exited with code") as caught:
            result.wait()
        assert caught.value.partial.output == ["started"]
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
