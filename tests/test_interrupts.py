"""Interrupts are honest: Ctrl-C while reading stops the call and says so; close() from another thread
fails the calls it cut short. Against the pwsh stand-in and the real pwsh, local and one-shot."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pswrap import (
    InvocationInterrupted,
    LocalTransport,
    OneShotTransport,
    Record,
    Session,
    TransportError,
)
from tests.fixtures.pwsh import PwshStandin

SLOW = "'started'; Write-Warning 'half way'; Start-Sleep -Seconds 60; 'finished'"
BASE = Path(__file__).resolve().parent.parent / "pswrap" / "transports"


def make(kind: str, pwsh: str | None) -> Session:
    transport = LocalTransport(pwsh=pwsh, stop_grace=5) if kind == "local" else OneShotTransport(pwsh=pwsh)
    return Session(transport, timeout=120)


@pytest.fixture(params=["local", "oneshot"])
def standin_session(request: pytest.FixtureRequest, pwsh_standin: PwshStandin) -> Iterator[Session]:
    with make(request.param, None) as session:
        yield session


@pytest.fixture(params=["local", "oneshot"])
def real_session(request: pytest.FixtureRequest, real_pwsh: str) -> Iterator[Session]:
    with make(request.param, real_pwsh) as session:
        yield session


def interrupt_main_thread_once_it_waits() -> threading.Thread:
    """Send SIGINT to this process once the main thread is blocked reading an execution's items."""
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread().ident == main

    def waiting() -> bool:
        frame = sys._current_frames().get(main)
        while frame is not None:
            if frame.f_code.co_name == "__iter__" and Path(frame.f_code.co_filename).parent == BASE:
                return frame.f_lineno == _blocking_line(frame.f_code.co_filename, frame.f_lineno)
            frame = frame.f_back
        return False

    def run() -> None:
        deadline = time.monotonic() + 60
        while not waiting() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _blocking_line(filename: str, lineno: int) -> int:
    """``lineno`` when that line of ``filename`` is the queue read the reader blocks in, else -1."""
    line = Path(filename).read_text(encoding="utf-8").splitlines()[lineno - 1]
    return lineno if "self._items.get(" in line else -1


def check_interrupted(session: Session, result: Any) -> None:
    assert result.interrupted
    with pytest.raises(InvocationInterrupted, match=r"interrupted \(KeyboardInterrupt\)") as caught:
        result.wait()
    assert caught.value.partial is result and result.state == "stopped"
    assert result.output in ([], ["started"])  # what arrived before the interrupt, never "finished"
    assert [w.message for w in result.warnings] in ([], ["half way"])
    # The session is usable at once: the stopped call does not hold the runspace for its 60 s.
    assert session.invoke("Write-Output", "next", timeout=30).output == ["next"]


def check_ctrl_c_while_waiting(session: Session) -> None:
    result = session.script(SLOW)
    with pytest.raises(KeyboardInterrupt):
        thread = interrupt_main_thread_once_it_waits()
        result.wait()
    thread.join(timeout=60)
    check_interrupted(session, result)


def check_ctrl_c_in_a_record_callback(session: Session) -> None:
    def on_record(record: Record) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled while the result is being read
        time.sleep(30)  # the handler raises KeyboardInterrupt here, in the reading thread

    session.on_record = on_record
    result = session.script(SLOW)
    with pytest.raises(KeyboardInterrupt):
        result.wait()
    session.on_record = None
    check_interrupted(session, result)
    assert [w.message for w in result.warnings] == ["half way"]


def check_close_from_another_thread(session: Session) -> None:
    first = session.script(SLOW)
    queued = session.script("'second'; Start-Sleep -Seconds 60")
    closer = threading.Thread(target=session.close)
    closer.start()
    for result in (first, queued):
        with pytest.raises(TransportError, match="closed"):
            result.wait()
    closer.join(timeout=60)
    assert not closer.is_alive()


@pytest.mark.parametrize(
    "scenario",
    [check_ctrl_c_while_waiting, check_ctrl_c_in_a_record_callback, check_close_from_another_thread],
)
def test_standin(standin_session: Session, scenario: Any) -> None:
    scenario(standin_session)


@pytest.mark.real_pwsh
@pytest.mark.parametrize(
    "scenario",
    [check_ctrl_c_while_waiting, check_ctrl_c_in_a_record_callback, check_close_from_another_thread],
)
def test_real_pwsh(real_session: Session, scenario: Any) -> None:
    scenario(real_session)


def test_ctrl_c_while_a_retry_waits_is_reported() -> None:
    """Exchange's throttling backoff sleeps inside the result's restart hook: Ctrl-C there counts too."""
    from pswrap import ErrorRecord, MockTransport, Outcome, Result

    def failing(invocation: object) -> Iterator[Any]:
        yield ("output", "partial")
        yield Outcome("failed", error=ErrorRecord("Server is busy (429)"))

    def restart(outcome: Outcome, result: Result) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived during time.sleep(backoff)

    with Session(MockTransport(failing)) as session:
        invocation = session.command("Get-Mailbox")
        result = Result(session.start(invocation), invocation, restart=restart)
        with pytest.raises(KeyboardInterrupt):
            result.wait()
        with pytest.raises(InvocationInterrupted):
            result.wait()
        assert result.interrupted and result.output == ["partial"]
