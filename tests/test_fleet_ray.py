"""Fleet(backend="ray") on a local Ray instance (one for the module) with the stand-ins.

Secrets: the tenants' client secrets are canaries; after the runs, no file in Ray's session directory
and no byte of its GCS or raylet processes' memory holds one (an actor argument sent in clear, as a
control, is found there: the search can fail).
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pswrap.errors import ConfigError
from pswrap.fleet import Fleet
from tests.fixtures.fleet import Tenants

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'pswrap[ray]')")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Path]:
    """One local Ray instance for the module; its session files under a directory of its own."""
    temp = Path(tempfile.mkdtemp(prefix="pswrap-ray-"))
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False)
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def _ray_processes() -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        name = os.path.basename(command)
        if name in ("gcs_server", "raylet"):
            found[int(entry)] = name
    return found


def _in_memory(pid: int, needle: bytes) -> bool:
    """Whether ``needle`` is anywhere in process ``pid``'s readable memory."""
    with open(f"/proc/{pid}/maps", encoding="ascii") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if match is None or "r" not in match[3]:
                continue
            start, end = int(match[1], 16), int(match[2], 16)
            if end - start > 1 << 30:
                continue
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def _in_files(directory: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in directory.rglob("*"):
        try:
            if path.is_file() and not path.is_socket() and needle in path.read_bytes():
                hits.append(path)
        except OSError:
            continue
    return hits


def test_tenants_run_in_actors_stream_back_and_a_killed_actor_reconnects(
    ray_session: Path, many_tenants: Callable[..., Tenants], idp: Any
) -> None:
    tenants = many_tenants(4, mailboxes=6)
    with Fleet(tenants.settings, backend="ray", actors=2) as fleet:
        assert fleet._ray.placement == {"t000": 0, "t001": 1, "t002": 0, "t003": 1}
        run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
        items = list(run)
        assert collections.Counter(t for t, _ in items) == dict.fromkeys(tenants.settings, 6)
        for tenant, mailbox in items:
            assert str(mailbox.PrimarySmtpAddress).endswith(f"@{tenant}.onmicrosoft.com")
        assert run.summary.ok and {r.transport for r in run.summary.reports.values()} == {"rest"}

        assert fleet.invoke("Get-Mailbox").summary.ok
        assert idp.count("token") == 4  # warm: the second call reused each actor's sessions and tokens

        ray.kill(fleet._ray.actors[0], no_restart=False)  # Ray restarts it, empty
        run = fleet.invoke("Get-Mailbox")
        assert collections.Counter(t for t, _ in run) == dict.fromkeys(tenants.settings, 6)
        assert run.summary.ok
        assert idp.count("token") == 6  # the restarted actor's two tenants connected again


def test_an_actor_dying_mid_call_runs_its_unstarted_reads_again(
    ray_session: Path, many_tenants: Callable[..., Tenants], adminapi: Any
) -> None:
    tenants = many_tenants(2, mailboxes=3)
    with Fleet(tenants.settings, backend="ray", actors=1) as fleet:
        adminapi.hang = True  # every request waits: nothing has come back when the actor dies
        run = fleet.invoke("Get-Mailbox")

        def waiting() -> int:
            return sum(1 for r in list(adminapi.requests) if r.path.lower().endswith("/invokecommand"))

        deadline = time.monotonic() + 60
        while waiting() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting() >= 2
        adminapi.hang = False
        ray.kill(fleet._ray.actors[0], no_restart=False)
        items = list(run)
        summary = run.wait(timeout=120)
    assert collections.Counter(t for t, _ in items) == {"t000": 3, "t001": 3}
    assert summary.ok and all(r.retries >= 1 for r in summary.reports.values())


def test_secrets_reach_actors_sealed_never_in_clear_where_ray_keeps_things(
    ray_session: Path, many_tenants: Callable[..., Tenants]
) -> None:
    canary = "Zq8Q~raycanary" + secrets.token_urlsafe(20)
    tenants = many_tenants(2, mailboxes=2, secret=canary)
    control = "pswrap-control-" + secrets.token_hex(12)

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self, value: str) -> None:
            self.value = value

        def ping(self) -> bool:
            return True

    holder = Holder.remote(control)  # an argument in clear: Ray's GCS keeps it
    assert ray.get(holder.ping.remote())
    with Fleet(tenants.settings, backend="ray", actors=2) as fleet:
        assert fleet.invoke("Get-Mailbox").summary.ok
    processes = _ray_processes()
    assert sorted(set(processes.values())) == ["gcs_server", "raylet"]
    assert any(_in_memory(pid, control.encode()) for pid in processes)
    for pid, name in processes.items():
        assert not _in_memory(pid, canary.encode()), f"the client secret is in clear in Ray's {name}"
    assert _in_files(ray_session, canary.encode()) == []
    ray.kill(holder)


def test_a_broken_profile_is_reported_without_reaching_an_actor(
    ray_session: Path, many_tenants: Callable[..., Tenants]
) -> None:
    tenants = many_tenants(2, mailboxes=1)
    given: dict[str, Any] = dict(tenants.settings)
    given["t001"] = ConfigError("client_secret refers to environment variable NOPE, which is not set")
    with Fleet(given, backend="ray", actors=1) as fleet:
        summary = fleet.invoke("Get-Mailbox").summary
    assert summary.failed == ["t001"] and summary["t000"].objects == 1


def test_records_from_actors_reach_on_record_with_their_tenant(
    ray_session: Path, many_tenants: Callable[..., Tenants], adminapi: Any
) -> None:
    tenants = many_tenants(2, mailboxes=1)
    adminapi.warn("The mailbox database is being moved.")
    seen: list[tuple[str, str]] = []
    with Fleet(
        tenants.settings, backend="ray", actors=2, on_record=lambda t, r: seen.append((t, r.message))
    ) as fleet:
        assert fleet.invoke("Get-Mailbox").summary.ok
    assert sorted(seen) == [
        ("t000", "The mailbox database is being moved."),
        ("t001", "The mailbox database is being moved."),
    ]
