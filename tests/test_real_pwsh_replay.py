"""Real pwsh, recorded: the session steps replayed through LocalTransport and OneShotTransport, no pwsh needed.

``tests/data/real_pwsh/session/`` holds what real pwsh 7.6 answered (see its manifest and
``tests/capture_real_pwsh.py``); the peers of ``tests/real_pwsh_replay.py`` play it back, so the
transports parse exactly the bytes a real pwsh wrote, and each step asserts what a user sees.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from pswrap import LocalTransport, OneShotTransport, Session, TransportError
from pswrap.transports.oneshot import BOOTSTRAP
from tests import real_pwsh_replay as replay

SESSION = replay.DATA / "session"
PEER = Path(replay.__file__).resolve()
MANIFEST = json.loads((replay.DATA / "manifest.json").read_text(encoding="utf-8"))


def local_peer(recording: Path) -> list[str]:
    return [sys.executable, str(PEER), "local", str(recording)]


def test_the_recorded_pwsh_session_replays_through_the_local_transport() -> None:
    transport = LocalTransport(pwsh=local_peer(SESSION / "local.jsonl"), stop_grace=30)
    with Session(transport, timeout=60, progress=True) as session:
        for step in replay.SESSION_STEPS.values():
            step(session)
        assert transport.processes_started == 1


def test_the_replay_peer_rejects_a_client_that_strays_from_the_recording() -> None:
    """The peer is strict: a different first message fails the open, naming what differed."""
    events = [json.loads(line) for line in (SESSION / "local.jsonl").read_text(encoding="utf-8").splitlines()]
    first_in = next(e for e in events if e["dir"] == "in")
    assert first_in["line"].startswith("<Data ")
    peer = replay.LocalReplay(SESSION / "local.jsonl")
    with pytest.raises(replay.ReplayError, match="pswrap sent Command where real pwsh was sent Data"):
        peer.match(first_in["line"], "<Command PSGuid='00000000-0000-0000-0000-000000000001' />\n")


def test_a_stray_client_fails_with_the_peers_reason(tmp_path: Path) -> None:
    recording = tmp_path / "wrong.jsonl"
    events = [json.loads(line) for line in (SESSION / "local.jsonl").read_text(encoding="utf-8").splitlines()]
    first_in = next(i for i, e in enumerate(events) if e["dir"] == "in")
    events[first_in]["line"] = "<Command PSGuid='00000000-0000-0000-0000-000000000001' />\n"
    recording.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    transport = LocalTransport(pwsh=local_peer(recording), open_timeout=30)
    with pytest.raises(TransportError) as caught:
        Session(transport).open()
    assert "pswrap sent Data where real pwsh was sent Command" in (caught.value.stderr_tail or "")


def test_the_oneshot_recording_was_made_with_this_bootstrap() -> None:
    """A one-shot recording is pwsh's answer to one bootstrap: re-record when the bootstrap changes."""
    assert MANIFEST["oneshot_bootstrap_sha256"] == hashlib.sha256(BOOTSTRAP.encode("utf-8")).hexdigest(), (
        "pswrap's one-shot bootstrap changed since the recording: run python -m tests.capture_real_pwsh"
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                raises=(AssertionError, ValueError),
                strict=True,
                reason=replay.ONESHOT_KNOWN_DIFFERENCES[name],
            ),
        )
        if name in replay.ONESHOT_KNOWN_DIFFERENCES
        else name
        for name in replay.ONESHOT_STEPS
    ],
)
def test_the_recorded_oneshot_runs_replay_through_the_oneshot_transport(name: str) -> None:
    peer = [sys.executable, str(PEER), "oneshot", str(SESSION / f"oneshot-{name}.json")]
    with Session(OneShotTransport(pwsh=peer), timeout=60, progress=True) as session:
        replay.ONESHOT_STEPS[name](session)


def test_the_recorded_data_names_no_machine() -> None:
    """Scrubbed as the capture promises: no home, work or temporary paths, no user or host names."""
    for path in sorted(replay.DATA.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8-sig")
            for marker in ("/root/", "/work/", "pswrap-capture-", "/home/runner"):
                assert marker not in text, (path.name, marker)
