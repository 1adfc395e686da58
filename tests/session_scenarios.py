"""Session scenarios shared by the stand-in tests and the real-pwsh tests: one script, both peers.

Each ``check_*`` runs a scenario on an open :class:`pswrap.Session` and asserts what a user sees.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
import uuid
from decimal import Decimal
from typing import Any

import pytest

from pswrap import (
    InvocationTimeout,
    PowerShellError,
    PSDateTime,
    PSObject,
    PSTimeSpan,
    SecureString,
    Session,
    Uri,
    Version,
)

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
'bye'
"""


def check_every_stream(session: Session) -> None:
    """Output and every other stream come back typed, in their own lists (progress when asked for)."""
    result = session.script(EVERY_STREAM, Name="bob")
    assert result.output == ["hello bob", "bye"]
    assert [e.message for e in result.errors] == ["an error"]
    assert result.errors[0].activity == "Write-Error"
    assert [w.message for w in result.warnings] == ["a warning"]
    assert [v.message for v in result.verbose] == ["some detail"]
    assert [d.message for d in result.debug] == ["internals"]
    assert [i.message for i in result.information] == ["for your information"]
    assert [(p.activity, p.message, p.percent_complete) for p in result.progress] == [
        ("Copying", "half way", 50)
    ]
    assert result.state == "completed" and result.exit_code is None and result.error is None


ROUND_TRIP: dict[str, Any] = {
    "text": "multi\nline ’quoted’ _x0041_ é 🎵 <&>",
    "empty": "",
    "nothing": None,
    "int": 42,
    "big": 2**40,
    "negative": -7,
    "uint64": 2**64 - 1,
    "float": 0.1,
    "infinity": float("-inf"),
    "decimal": Decimal("1291921.101291"),
    "yes": True,
    "no": False,
    "bytes": b"\x00\xffabc",
    "guid": uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f"),
    "date": PSDateTime(2024, 2, 29, 23, 59, 58, 123456, nanosecond=700),
    "utc": PSDateTime(2024, 1, 1, 12, tzinfo=dt.timezone.utc),
    "span": PSTimeSpan(ticks=1_234_567_890_123),
    "negative_span": PSTimeSpan(ticks=-5),
    "version": Version(1, 2, 3),
    "uri": Uri("https://contoso.example/a?b=c"),
    "list": [1, "two", [3]],
    "empty_list": [],
    "table": {"Name": "x", "Nested": {"n": 1}},
    "keys": {1: "one", "2": "two"},
}


def round_trip(session: Session) -> dict[str, Any]:
    """Every ROUND_TRIP value bound as a parameter of one script that writes each back unchanged.

    ``,$x`` writes ``$x`` as one object: real pwsh's ``Write-Output -NoEnumerate $x`` would wrap a
    scalar in a List[object] (its positional argument is ValueFromRemainingArguments).
    """
    names = list(ROUND_TRIP)
    script = f"param(${', $'.join(names)}) " + "; ".join(f",${name}" for name in names)
    back = session.script(script, **ROUND_TRIP).output
    assert len(back) == len(names), back
    return dict(zip(names, back, strict=True))


def check_round_trips(session: Session) -> None:
    """A parameter value of each type comes back from PowerShell equal, and of the same type."""
    back = round_trip(session)
    wrong = {
        name: (value, back[name])
        for name, value in ROUND_TRIP.items()
        if back[name] != value or type(back[name]) is not type(value)
    }
    assert wrong == {}


def check_secure_strings_and_objects(session: Session, secret: str) -> None:
    """A SecureString parameter arrives as a SecureString (and comes back as one); objects keep members."""
    script = "param($Secret, $Thing) $Secret; $Secret.Length; $Thing.Note"
    thing = PSObject(extended={"Note": "n"}, type_names=("My.Type",))
    back, length, note = session.script(script, Secret=SecureString(secret), Thing=thing).output
    assert isinstance(back, SecureString) and back.reveal() == secret
    assert length == len(secret) and note == "n"


def check_positional_named_and_input(session: Session) -> None:
    assert session.invoke("Write-Output", "a", 2).output == ["a", 2]
    assert session.invoke("Write-Output", InputObject=["b", 3]).output == ["b", 3]
    assert session.invoke("Write-Output", input=[4, "five"]).output == [4, "five"]
    assert session.script("@($input) | Write-Output", input=["x", "y"]).output == ["x", "y"]
    assert session.invoke("Write-Output", InputObject=[1, 2], NoEnumerate=True).output == [[1, 2]]


def check_terminating_error(session: Session) -> None:
    """A terminating error raises PowerShellError with its record, keeping what came before."""
    result = session.script("'before'; throw 'boom'; 'never'")
    with pytest.raises(PowerShellError, match="boom") as caught:
        result.wait()
    assert caught.value.record.message == "boom"
    assert caught.value.partial is result and result.output == ["before"]
    assert result.state == "failed" and result.error is caught.value.record
    assert session.invoke("Write-Output", "next").output == ["next"]  # the session goes on


def check_error_action_preference(session: Session) -> None:
    """Non-terminating errors are records; ``$ErrorActionPreference`` and ``-ErrorAction`` decide."""
    result = session.script("'before'; Write-Error 'first'; Write-Error 'second'; 'after'")
    assert result.output == ["before", "after"] and [e.message for e in result.errors] == ["first", "second"]
    assert result.state == "completed" and result.error is None
    quiet = session.script("& { $ErrorActionPreference = 'SilentlyContinue'; Write-Error 'hidden'; 'after' }")
    assert quiet.output == ["after"] and quiet.errors == []
    stopped = session.script("& { $ErrorActionPreference = 'Stop'; 'before'; Write-Error 'fatal'; 'never' }")
    with pytest.raises(PowerShellError, match="fatal"):
        stopped.wait()
    assert stopped.output == ["before"] and stopped.state == "failed"
    once = session.script("Write-Error 'once' -ErrorAction Stop; 'never'")
    with pytest.raises(PowerShellError, match="once"):
        once.wait()
    assert once.output == []


def check_many_objects_stream_in_bounded_memory(session: Session, count: int) -> None:
    """``count`` objects of 1 KB each stream through ``Result.stream()`` without being kept."""
    script = "param($n) foreach ($i in 1..$n) { \"$i \" + ('x' * 1000) }"
    result = session.script(script, n=count)
    tracemalloc.start()
    try:
        seen = 0
        for item in result.stream():
            seen += 1
            assert item.startswith(f"{seen} ")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count and result.state == "completed"
    assert peak < count * 1000 // 4, f"{peak} bytes at the peak for {count} objects of 1 KB"


def check_exit_codes(session: Session) -> None:
    result = session.script("'out'; exit 7; 'never'")
    assert result.output == ["out"] and result.exit_code == 7 and result.state == "completed"
    assert session.script("'fine'").exit_code is None
    assert session.invoke("Write-Output", 1).output == [1]


def check_stop(session: Session, *, streams: bool = True) -> None:
    """``stop()`` ends a running call as stopped, keeping what arrived; the session goes on.

    ``streams=False`` for real pwsh's one-shot mode: ``pwsh -OutputFormat xml`` buffers its CLIXML
    (about 4 KB) until it exits, so nothing has arrived yet and the kill loses what it held.
    """
    result = session.script("'started'; Start-Sleep -Seconds 60; 'finished'")
    if streams:
        assert next(iter(result)) == "started"
    result.stop()
    assert result.state == "stopped" and result.output == (["started"] if streams else [])
    assert session.invoke("Write-Output", "next").output == ["next"]


def check_timeout(session: Session, *, streams: bool = True) -> None:
    """A call past its timeout raises InvocationTimeout, keeping what arrived (see :func:`check_stop`)."""
    result = session.script("'started'; Start-Sleep -Seconds 60; 'finished'", timeout=5)
    with pytest.raises(InvocationTimeout, match="timeout of 5 s") as caught:
        result.wait()
    assert caught.value.timeout == 5 and caught.value.partial is result
    assert result.output == (["started"] if streams else [])
    assert session.invoke("Write-Output", "next").output == ["next"]


def check_three_at_once(session: Session) -> None:
    """On a pool of three, three invocations run at once: each starts while the others still sleep.

    With one runspace the second could only start after the first had finished ("finished 0"), so
    all three stopping with nothing but "started" proves the overlap without timing anything.
    """
    script = 'param($n) "started $n"; Start-Sleep -Seconds 60; "finished $n"'
    results = [session.script(script, n=i) for i in range(3)]
    assert [next(iter(r)) for r in results] == ["started 0", "started 1", "started 2"]
    for r in results:
        r.stop()
    assert [r.state for r in results] == ["stopped"] * 3
    assert [r.output for r in results] == [["started 0"], ["started 1"], ["started 2"]]


def check_prompts_refused(session: Session) -> None:
    """A prompt cannot hang a non-interactive session: it fails, saying why."""
    result = session.script("'before'; Read-Host 'Your name'")
    try:
        result.wait()
    except PowerShellError as exc:
        messages = [exc.record.message]
    else:
        messages = []
    messages += [e.message for e in result.errors]
    assert result.output == ["before"]
    assert any("not interactive" in m or "NonInteractive" in m for m in messages), messages
