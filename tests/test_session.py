"""pswrap.Session and its results, over a transport built from a function (no PowerShell needed)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import pswrap
from pswrap import (
    ConfigError,
    ErrorRecord,
    InformationRecord,
    Invocation,
    InvocationNotStarted,
    MockTransport,
    Outcome,
    PowerShellError,
    ProgressRecord,
    Session,
    StreamItem,
    TransportError,
    VerboseRecord,
    WarningRecord,
)
from pswrap.objects import DebugRecord
from pswrap.session import get_transport


def echo(invocation: Invocation) -> Iterator[Any]:
    yield StreamItem("output", invocation)


def test_invoke_binds_named_and_positional_parameters_and_input() -> None:
    transport = MockTransport(echo)
    with Session(transport, timeout=30) as session:
        (seen,) = session.invoke("Get-Thing", "first", 2, input=iter([1, 2]), Name="x", Force=True, Timeout=5)
    assert seen.command == "Get-Thing" and not seen.is_script
    assert seen.arguments == ("first", 2)
    assert dict(seen.parameters) == {"Name": "x", "Force": True, "Timeout": 5}  # Timeout: PowerShell's
    assert seen.input == (1, 2)
    assert seen.timeout == 30  # the session's default


def test_script_binds_parameters_and_a_call_timeout_wins() -> None:
    with Session(MockTransport(echo), timeout=30) as session:
        (seen,) = session.script("param($n) 1..$n", n=3, timeout=2)
        (no_input,) = session.invoke("Get-Date")
    assert seen.is_script and seen.command == "param($n) 1..$n"
    assert dict(seen.parameters) == {"n": 3} and seen.timeout == 2 and seen.input is None
    assert no_input.input is None  # no input differs from an empty input
    assert seen.description == "script 'param($n) 1..$n'"


def test_results_are_lazy_and_keep_what_arrived() -> None:
    produced: list[int] = []

    def counting(invocation: Invocation) -> Iterator[StreamItem]:
        for i in range(3):
            produced.append(i)
            yield StreamItem("output", i)

    with Session(MockTransport(counting)) as session:
        result = session.invoke("Get-Numbers")
        assert produced == []  # nothing read yet
        iterator = iter(result)
        assert next(iterator) == 0
        assert produced == [0]  # the second object is not fetched before it is asked for
        assert list(iterator) == [1, 2]
        assert list(result) == [0, 1, 2] == result.output  # read again from what was kept
        assert result.done and result.state == "completed"


def every_stream(invocation: Invocation) -> Iterator[Any]:
    yield StreamItem("output", "first")
    yield StreamItem("error", ErrorRecord("not found", category="ObjectNotFound"))
    yield StreamItem("warning", WarningRecord("careful"))
    yield StreamItem("verbose", VerboseRecord("details"))
    yield StreamItem("debug", DebugRecord("internals"))
    yield StreamItem("information", InformationRecord("fyi"))
    yield StreamItem("progress", ProgressRecord("half", activity="copy", percent_complete=50))
    yield ("output", "second")
    yield Outcome("completed", exit_code=3)


def test_each_stream_lands_in_its_own_list(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    caplog.set_level(logging.DEBUG, logger="pswrap.powershell")
    with Session(MockTransport(every_stream), on_record=seen.append) as session:
        result = session.invoke("Do-Things")
        assert result.output == ["first", "second"]
    assert [r.message for r in result.errors] == ["not found"]
    assert [r.message for r in result.warnings] == ["careful"]
    assert [r.message for r in result.verbose] == ["details"]
    assert [r.message for r in result.debug] == ["internals"]
    assert [r.message for r in result.information] == ["fyi"]
    assert [r.percent_complete for r in result.progress] == [50]
    assert [type(r) for r in result.records] == [type(r) for r in seen]  # callback, in arrival order
    assert result.exit_code == 3 and result.error is None
    logged = {(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pswrap.powershell"}
    assert logged == {
        (logging.ERROR, "Do-Things: not found"),
        (logging.WARNING, "Do-Things: careful"),
        (logging.DEBUG, "Do-Things: details"),
        (logging.DEBUG, "Do-Things: internals"),
        (logging.INFO, "Do-Things: fyi"),
    }
    assert "2 objects, 1 errors, 1 warnings" in repr(result)


def failing(invocation: Invocation) -> Iterator[Any]:
    yield StreamItem("output", 1)
    yield StreamItem("warning", WarningRecord("about to fail"))
    yield Outcome("failed", error=ErrorRecord("it broke", error_id="Broke"))


def test_a_terminating_error_raises_with_the_record_and_what_arrived() -> None:
    with Session(MockTransport(failing)) as session:
        result = session.invoke("Break-It")
        got = []
        with pytest.raises(PowerShellError) as caught:
            for value in result:
                got.append(value)
    assert got == [1]
    error = caught.value
    assert error.record.message == "it broke" and error.record.error_id == "Broke"
    assert error.partial is result
    # Raised once: afterwards the result is plain data.
    assert result.output == [1]
    assert result.warnings[0].message == "about to fail"
    assert result.state == "failed" and result.error is error.record


def test_reading_any_property_of_a_failed_result_raises_first() -> None:
    with Session(MockTransport(failing)) as session:
        result = session.invoke("Break-It")
        with pytest.raises(PowerShellError, match="it broke"):
            _ = result.warnings
        assert result.warnings[0].message == "about to fail"


def nonterminating(invocation: Invocation) -> Iterator[Any]:
    yield StreamItem("output", "kept")
    yield StreamItem("error", ErrorRecord("one mailbox failed"))
    yield StreamItem("output", "also kept")


def test_non_terminating_errors_are_collected() -> None:
    with Session(MockTransport(nonterminating)) as session:
        result = session.invoke("Get-Mailbox")
        assert result.output == ["kept", "also kept"]
        assert [e.message for e in result.errors] == ["one mailbox failed"]


def test_raise_on_error_raises_on_any_error() -> None:
    with Session(MockTransport(nonterminating), raise_on_error=True) as session:
        result = session.invoke("Get-Mailbox")
        with pytest.raises(PowerShellError, match="one mailbox failed") as caught:
            result.wait()
    assert caught.value.partial.output == ["kept", "also kept"]


def test_a_broken_transport_raises_with_the_partial_result() -> None:
    def dying(invocation: Invocation) -> Iterator[Any]:
        yield StreamItem("output", "before")
        raise TransportError("pwsh exited with code 1", stderr_tail="Segmentation fault")

    with Session(MockTransport(dying)) as session:
        result = session.invoke("Get-Thing")
        with pytest.raises(TransportError) as caught:
            list(result)
    assert caught.value.partial is result and result.output == ["before"]
    assert "Segmentation fault" in str(caught.value)
    assert result.state is None


def test_stop_ends_the_invocation_as_stopped() -> None:
    def endless(invocation: Invocation) -> Iterator[StreamItem]:
        i = 0
        while True:
            yield StreamItem("output", i)
            i += 1

    with Session(MockTransport(endless)) as session:
        result = session.invoke("Get-Forever")
        for value in result:
            if value == 2:
                result.stop()
        assert result.state == "stopped"
        assert result.output[:3] == [0, 1, 2]


def test_on_open_runs_for_each_fresh_powershell_and_may_use_the_session() -> None:
    transport = MockTransport(echo)
    opened: list[int] = []

    def connect(session: Session) -> None:
        session.invoke("Connect-Thing").wait()  # a call from inside on_open runs, without recursing
        opened.append(transport.opened)

    with Session(transport, on_open=connect) as session:
        session.invoke("Get-A").wait()
        session.invoke("Get-B").wait()
        assert opened == [1]
        transport.close()  # as if pwsh died: the next call opens a fresh one and connects again
        session.invoke("Get-C").wait()
        assert opened == [1, 2]
    assert [i.command for i in transport.invocations] == [
        "Connect-Thing",
        "Get-A",
        "Get-B",
        "Connect-Thing",
        "Get-C",
    ]


def test_a_failing_on_open_is_retried_by_the_next_call() -> None:
    attempts: list[int] = []

    def flaky(session: Session) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise TransportError("connect failed")

    session = Session(MockTransport(echo), on_open=flaky)
    with pytest.raises(TransportError, match="connect failed"):
        session.invoke("Get-A")
    assert len(session.invoke("Get-A").output) == 1
    assert len(attempts) == 2
    session.close()
    with pytest.raises(TransportError, match="closed"):
        session.invoke("Get-A")


def test_transports_by_name_and_by_object() -> None:
    transport = MockTransport(echo)
    assert get_transport(transport) is transport
    assert get_transport("local").name == "local"
    assert get_transport("oneshot").name == "oneshot"
    assert get_transport("local", pool_size=3).pool_size == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown transport 'winrn': choose one of local, oneshot, winrm"):
        get_transport("winrn")
    with pytest.raises(ConfigError, match="pool_size does not apply"):
        Session("oneshot", pool_size=2)
    with pytest.raises(ConfigError, match="only apply when the transport is given by name"):
        Session(transport, pool_size=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": " "}, "needs a command"),
        ({"command": "Get-Date", "timeout": 0}, "timeout must be a positive"),
        ({"command": "Get-Date", "parameters": {"-Name": 1}}, "without a dash"),
    ],
)
def test_bad_invocations_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Invocation(**kwargs)


def test_the_public_names_are_importable_from_pswrap() -> None:
    for name in ("Session", "Result", "Transport", "Invocation", "StreamItem", "Outcome", "LocalTransport"):
        assert name in pswrap.__all__ and hasattr(pswrap, name)


@pytest.mark.skipif(
    importlib.util.find_spec("pswrap.render") is None,
    reason="pswrap.render (templates) is not on this branch yet",
)
def test_run_renders_a_template_and_binds_its_parameters(tmp_path: Any) -> None:
    (tmp_path / "greet.ps1.j2").write_text("param($Name)\n'hello ' + $Name\n", encoding="utf-8")
    with Session(MockTransport(echo), templates=[tmp_path]) as session:
        (seen,) = session.run("greet", Name="bob’; Remove-Item x; ’")
    assert seen.is_script and "Remove-Item" not in seen.command
    assert seen.label == "template 'greet'"


def test_a_call_that_never_reached_powershell_is_retried_once_on_a_fresh_one() -> None:
    class GoneBetweenCalls(MockTransport):
        failures = 1

        def start(self, invocation: Invocation) -> Any:
            if self.failures:
                self.failures -= 1
                self.close()  # pwsh died while the session was idle
                raise InvocationNotStarted("pwsh exited with code 1")
            return super().start(invocation)

    transport = GoneBetweenCalls(echo)
    with Session(transport) as session:
        assert len(session.invoke("Get-A").output) == 1
        assert transport.opened == 2
        transport.failures = 2
        with pytest.raises(InvocationNotStarted):  # only once: a second failure is reported
            session.invoke("Get-B")


def test_a_with_block_that_cannot_open_leaves_nothing_open() -> None:
    def refuse(session: Session) -> None:
        raise TransportError("connect failed")

    transport = MockTransport(echo)
    with pytest.raises(TransportError, match="connect failed"), Session(transport, on_open=refuse):
        pass
    assert transport.opened == 1 and not transport.healthy  # __exit__ never ran; __enter__ closed it
