"""The session scenarios over SSH against the real thing: Debian's sshd on loopback running the real
pwsh 7 as its ``powershell`` subsystem (``pwsh -sshs -NoLogo -NoProfile``).

Skipped without pwsh (failed where ``PSWRAP_REQUIRE_PWSH=1``) or without sshd (failed where
``PSWRAP_REQUIRE_SSHD=1``). One session serves the scenarios that leave it usable: real pwsh takes
seconds to start.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pswrap import ExchangeOnline, InvocationTimeout, Secret, Session, SSHTransport, TransportError
from pswrap.config import Settings
from tests import session_scenarios as scenarios
from tests.fixtures.exchange_pwsh import ModulePaths
from tests.sshserver import SSHServer
from tests.standins import exchange_data as xd
from tests.standins import exchange_module

if TYPE_CHECKING:
    from tests.fixtures.idp import ConfiguredIdentityProvider

pytestmark = [pytest.mark.real_pwsh, pytest.mark.usefixtures("real_pwsh")]

CANARY = "canary-sshreal_x41-" + uuid.uuid4().hex[:8]


def transport(sshd: SSHServer, **options: Any) -> SSHTransport:
    if "powershell" not in sshd.subsystems:
        pytest.fail("the test sshd has no powershell subsystem although a real pwsh was found")
    return SSHTransport(
        f"{sshd.user}@127.0.0.1",
        sshd.port,
        key_file=sshd.client_key,
        known_hosts=sshd.dir / "known_hosts",
        agent=False,
        **options,
    )


@pytest.fixture(scope="module")
def shared(real_pwsh: str, sshd: SSHServer) -> Iterator[Session]:
    with Session(transport(sshd), timeout=120, progress=True) as session:
        yield session


@pytest.fixture
def session(shared: Session) -> Session:
    return shared


def test_the_session_runs_in_the_hosts_real_pwsh(session: Session) -> None:
    version, sender = session.script("$PSVersionTable.PSVersion.Major; $null -ne $PSSenderInfo").output
    assert version >= 7 and sender is True  # a remote session, as PowerShell itself sees it


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


def test_stop(session: Session) -> None:
    scenarios.check_stop(session)


def test_timeout(session: Session) -> None:
    scenarios.check_timeout(session)


def test_prompts_are_refused(session: Session) -> None:
    scenarios.check_prompts_refused(session)


def test_three_invocations_run_at_once_on_a_pool_of_three(sshd: SSHServer) -> None:
    runner = transport(sshd, pool_size=3)
    with Session(runner, timeout=120) as session:
        scenarios.check_three_at_once(session)
        assert runner.connections_opened == 1


def test_a_hung_pwsh_is_cut_off_at_the_timeout_and_replaced(sshd: SSHServer) -> None:
    runner = transport(sshd, stop_grace=2)
    with Session(runner, timeout=120) as session:
        result = session.script("'started'; [System.Threading.Thread]::Sleep(120000)", timeout=3)
        with pytest.raises(InvocationTimeout, match="pswrap closed the SSH connection"):
            result.wait()
        assert result.output == ["started"]
        assert session.invoke("Write-Output", "alive").output == ["alive"]
        assert runner.connections_opened == 2


def test_pwsh_killed_on_the_host_and_a_clean_close(sshd: SSHServer, caplog: pytest.LogCaptureFixture) -> None:
    runner = transport(sshd)
    with Session(runner, timeout=120) as session:
        result = session.script("$PID; Start-Sleep -Seconds 60")
        pid = next(iter(result))
        os.kill(pid, signal.SIGKILL)  # the host's pwsh dies (the test sshd runs on this machine)
        with pytest.raises(TransportError, match=r"pwsh on 127\.0\.0\.1 .* exited with code") as caught:
            result.wait()
        assert caught.value.partial.output == [pid]
        assert session.invoke("Write-Output", "next").output == ["next"]
    # Closing ends pwsh -sshs by ending its input; it then prints __NamedPipeError__ on stdout and
    # exits 160. That is the normal end of a session: nothing is reported.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("pswrap")]


def test_pwsh_reports_a_packet_it_rejects_in_its_own_words(sshd: SSHServer) -> None:
    runner = transport(sshd)
    with Session(runner, timeout=120) as session:
        result = session.script("'started'; Start-Sleep -Seconds 60")
        assert next(iter(result)) == "started"
        assert runner._connection is not None
        runner._connection.pipe.write(b"<DataAck PSGuid='00000000-0000-0000-0000-000000000000' />\n")
        with pytest.raises(TransportError, match="pwsh reported an error and ended the session: ") as caught:
            result.wait()
        assert "DataAck" in str(caught.value)
        assert session.invoke("Write-Output", "next").output == ["next"]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_secret_parameter_is_not_in_the_hosts_argv_environment_or_logs(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Session(transport(sshd), timeout=120) as session:
        result = session.script(
            "param($Token) $PID; Start-Sleep -Seconds 3; $Token.Length", Token=Secret(CANARY)
        )
        pid = next(iter(result))
        exposed = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        assert CANARY.encode() not in exposed
        assert result.output == [pid, len(CANARY)]
    assert CANARY not in "\n".join(r.getMessage() for r in caplog.records)


def test_exchange_online_end_to_end_on_the_hosts_real_pwsh(
    sshd: SSHServer,
    idp: ConfiguredIdentityProvider,
    idp_settings: Callable[..., Settings],
    exchange_module_paths: ModulePaths,
    tmp_path: Path,
) -> None:
    """The test ExchangeOnlineManagement module (it checks the token's signature, audience, role and
    tenant in .NET) on the host's PSModulePath: connect once with the token as a PSRP parameter."""
    journal = tmp_path / "journal.jsonl"
    exchange_module.configure(
        exchange_module_paths.current,
        exchange_module.ModuleConfig(
            tenants=[{"id": idp.tenant.id, "domain": idp.tenant.domain}], jwks=idp.jwks, journal=str(journal)
        ),
    )
    sshd.subsystem_env(PSModulePath=str(exchange_module_paths.current))
    options: dict[str, Any] = {
        "host": f"{sshd.user}@127.0.0.1",
        "port": sshd.port,
        "key_file": sshd.client_key,
        "known_hosts": sshd.dir / "known_hosts",
        "agent": False,
    }
    try:
        with ExchangeOnline(idp_settings(), transport="ssh", timeout=120, **options) as exo:
            names = [m.Name for m in exo.invoke("Get-Mailbox", ResultSize="Unlimited")]
            assert names == [xd.alias(i) for i in range(12)]
            (mailbox,) = exo.invoke("Get-Mailbox", Identity=xd.alias(3))
            assert mailbox.is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
            assert exo.connects == 1
            token = exo.token
            assert token is not None
    finally:
        sshd.subsystem_env()
    events = [json.loads(line) for line in journal.read_text().splitlines() if line]
    connects = [e for e in events if e["event"] == "connect"]
    assert len(connects) == 1 and connects[0]["ok"]
    assert len({e["pid"] for e in events}) == 1  # one pwsh on the host for all of it
    assert token.token.reveal() not in journal.read_text()
