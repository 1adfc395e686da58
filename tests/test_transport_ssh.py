"""The SSH transport against a real OpenSSH server (tests/sshserver.py) and the pwsh stand-in behind
its ``standin`` subsystem: connecting, host keys, authentication, faults, settings.

The session scenarios with the real pwsh over SSH are in tests/test_ssh_real_pwsh.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pswrap import Session, SSHTransport
from tests.fixtures.pwsh import PwshStandin
from tests.fixtures.sshd import SSHOptions


@pytest.fixture
def session(ssh_standin: PwshStandin, ssh_options: SSHOptions) -> Iterator[Session]:
    with Session(SSHTransport(**ssh_options(subsystem="standin")), timeout=60, progress=True) as s:
        yield s


def test_a_session_over_ssh_runs_in_the_hosts_pwsh_sshs(session: Session, ssh_standin: PwshStandin) -> None:
    assert session.invoke("Write-Output", "x'; Remove-Item -Recurse /; '", 2).output == [
        "x'; Remove-Item -Recurse /; '",
        2,
    ]
    (process,) = ssh_standin.processes()
    assert process.argv[1:] == ["-sshs", "-NoLogo", "-NoProfile"]
    assert not any("Remove-Item" in script for script in process.scripts)
