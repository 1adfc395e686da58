"""No child pwsh inherits pswrap's secrets: local, one-shot and doctor's checks, stand-in and real pwsh."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pswrap import LocalTransport, OneShotTransport, Secret, Session
from pswrap.cli.doctor import Doctor
from tests.fixtures.pwsh import PwshStandin

TOKEN = uuid.uuid4().hex[:10]
CANARIES = {
    "PSWRAP_CLIENT_SECRET": f"canary-client-{TOKEN}",
    "PSWRAP_CERTIFICATE_PASSWORD": f"canary-pfx-{TOKEN}",
    "PSWRAP_WINRM_PASSWORD": f"canary-winrm-{TOKEN}",
    "CONTOSO_SECRET": f"canary-profile-{TOKEN}",  # a profile's env:CONTOSO_SECRET, loaded as a Secret
}
HARMLESS = ("PSWRAP_TENANT", "contoso.onmicrosoft.com")


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(*HARMLESS)
    Secret(CANARIES["CONTOSO_SECRET"], "client_secret")  # what loading that profile registers
    yield


def proc_environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")


def assert_clean(text: str) -> None:
    for name, value in CANARIES.items():
        assert value not in text, f"{name} reached the child"
    assert HARMLESS[1] in text  # the rest of the environment is still there


@pytest.mark.usefixtures("secret_environment")
def test_local_transport_child_has_no_secrets(pwsh_standin: PwshStandin) -> None:
    transport = LocalTransport(stop_grace=2)
    with Session(transport, timeout=60) as session:
        assert transport.pid is not None
        assert_clean(proc_environ(transport.pid))
        session.invoke("Write-Output", 1).wait()
    [process] = pwsh_standin.processes()
    assert_clean(str(process.env))


@pytest.mark.usefixtures("secret_environment")
def test_oneshot_child_has_no_secrets(pwsh_standin: PwshStandin) -> None:
    with Session(OneShotTransport(), timeout=60) as session:
        session.invoke("Write-Output", 1).wait()
    [process] = pwsh_standin.processes()
    assert_clean(str(process.env))


@pytest.mark.usefixtures("secret_environment")
def test_doctor_checks_start_pwsh_without_secrets(pwsh_standin: PwshStandin) -> None:
    doctor = Doctor(None, None, "local", None)
    assert doctor.check_pwsh().ok
    doctor.check_module()
    processes = pwsh_standin.processes()
    assert len(processes) == 2  # pwsh -Version, then the module check's session
    for process in processes:
        assert_clean(str(process.env))


SHOW_ENVIRONMENT = (
    "$env:PSWRAP_CLIENT_SECRET; $env:PSWRAP_WINRM_PASSWORD; "
    '[Environment]::GetEnvironmentVariables().GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }'
)


@pytest.mark.real_pwsh
@pytest.mark.usefixtures("secret_environment")
@pytest.mark.parametrize("kind", ["local", "oneshot"])
def test_real_pwsh_sees_no_secrets(real_pwsh: str, kind: str) -> None:
    transport = LocalTransport(pwsh=real_pwsh) if kind == "local" else OneShotTransport(pwsh=real_pwsh)
    with Session(transport, timeout=120) as session:
        if isinstance(transport, LocalTransport):
            assert transport.pid is not None
            assert_clean(proc_environ(transport.pid))
        seen = "\n".join(str(line) for line in session.script(SHOW_ENVIRONMENT).output)
    assert_clean(seen)


def test_a_secret_that_is_part_of_path_does_not_take_path_away(
    pwsh_standin: PwshStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only variables equal to a secret go: PATH or PSModulePath merely containing one must stay."""
    path = os.environ["PATH"]
    monkeypatch.setenv("PSModulePath", "/opt/modules:/usr/local/share/powershell/Modules")
    Secret(path.split(os.pathsep)[0][-8:], "unlucky")  # a substring of PATH (at least 6 characters)
    Secret("powershell", "unluckier")
    with Session(OneShotTransport(), timeout=60) as session:
        session.invoke("Write-Output", 1).wait()
    [process] = pwsh_standin.processes()
    assert process.env["PATH"] == path
    assert process.env["PSModulePath"] == "/opt/modules:/usr/local/share/powershell/Modules"
