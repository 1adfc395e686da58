"""The WinRM transport against a real Windows host: ``pytest -m live tests/test_live_winrm.py``.

Skipped unless ``PSWRAP_LIVE_WINRM_HOST`` is set. The other ``PSWRAP_LIVE_WINRM_*`` variables are the
transport's ``PSWRAP_WINRM_*`` settings (``_USERNAME``, ``_PASSWORD``, ``_AUTH``, ``_SCHEME``, ``_PORT``,
``_CA_BUNDLE``, ``_VERIFY``, ``_CONFIGURATION``…). With ``PSWRAP_LIVE=1`` and the ``PSWRAP_*`` settings of
an Exchange app too, an Exchange Online session runs on the host (it needs ExchangeOnlineManagement 3.1+).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from pswrap import (
    ExchangeOnline,
    InvocationTimeout,
    PowerShellError,
    PSObject,
    Secret,
    SecureString,
    Session,
    WinRMTransport,
)
from pswrap.config import Settings
from pswrap.transports.winrm import WINRM_VARIABLES
from tests import session_scenarios as scenarios

pytestmark = pytest.mark.live

CANARY = "canary-live_x41-SeCrEt-" + uuid.uuid4().hex[:8]
LIVE_PREFIX = "PSWRAP_LIVE_WINRM_"


def live_environment() -> dict[str, str]:
    """``PSWRAP_LIVE_WINRM_X`` renamed ``PSWRAP_WINRM_X``, for :meth:`WinRMTransport.from_settings`."""
    return {
        variable: os.environ[LIVE_PREFIX + variable.removeprefix("PSWRAP_WINRM_")]
        for variable in WINRM_VARIABLES.values()
        if os.environ.get(LIVE_PREFIX + variable.removeprefix("PSWRAP_WINRM_"))
    }


@pytest.fixture
def transport_settings() -> dict[str, str]:
    if not os.environ.get(LIVE_PREFIX + "HOST"):
        pytest.skip(
            "live WinRM tests need PSWRAP_LIVE_WINRM_HOST (and _USERNAME, _PASSWORD…) of a Windows host"
        )
    return live_environment()


def make_transport(environ: dict[str, str], **overrides: object) -> WinRMTransport:
    return WinRMTransport.from_settings(Settings(), environ=environ, **overrides)


@pytest.fixture
def session(transport_settings: dict[str, str]) -> Iterator[Session]:
    with Session(make_transport(transport_settings), timeout=120, progress=True) as s:
        yield s


def test_every_stream(session: Session) -> None:
    result = session.script(scenarios.EVERY_STREAM, Name="bob")
    assert result.output == ["hello bob", "bye"]
    assert [e.message for e in result.errors] == ["an error"]
    assert [w.message for w in result.warnings] == ["a warning"]
    assert [v.message for v in result.verbose] == ["some detail"]
    assert [d.message for d in result.debug] == ["internals"]
    assert [i.message for i in result.information] == ["for your information"]
    assert any(p.activity == "Copying" for p in result.progress)


def test_values_state_and_errors(session: Session) -> None:
    for value in ("multi\nline ’quoted’ _x0041_ é", 42, 2**40, 0.1, True, b"\x00\xff", [1, "two"], {"a": 1}):
        assert session.script("param($Value) ,$Value", Value=value).output == [value]
    secret, length = session.script("param($S) $S; $S.Length", S=SecureString(CANARY)).output
    assert isinstance(secret, SecureString) and secret.reveal() == CANARY and length == len(CANARY)
    thing = PSObject(extended={"Note": "n"}, type_names=("My.Type",))
    assert session.script("param($Thing) $Thing.Note", Thing=thing).output == ["n"]
    session.script("$kept = 'from the first call'")
    assert session.script("$kept").output == ["from the first call"]
    with pytest.raises(PowerShellError, match="boom") as caught:
        session.script("'before'; throw 'boom'").wait()
    assert caught.value.partial.output == ["before"]
    assert session.script("'out'; exit 7").exit_code == 7


def test_stop_and_timeout(session: Session) -> None:
    result = session.script("'started'; Start-Sleep -Seconds 60; 'finished'")
    assert next(iter(result)) == "started"
    result.stop()
    assert result.state == "stopped" and result.output == ["started"]
    with pytest.raises(InvocationTimeout):
        session.script("Start-Sleep -Seconds 60", timeout=3).wait()
    assert session.invoke("Write-Output", "next").output == ["next"]


def test_three_at_once_on_a_pool_of_three(transport_settings: dict[str, str]) -> None:
    transport = make_transport(transport_settings, pool_size=3)
    with Session(transport) as session:
        script = 'param($n) "started $n"; Start-Sleep -Seconds 60; "finished $n"'
        results = [session.script(script, n=i) for i in range(3)]
        assert [next(iter(r)) for r in results] == ["started 0", "started 1", "started 2"]
        for r in results:
            r.stop()
        assert [r.state for r in results] == ["stopped"] * 3
    assert transport.shells_opened == 1


def test_prompts_are_refused(session: Session) -> None:
    result = session.script("Read-Host 'Your name'")
    with contextlib.suppress(PowerShellError):
        result.wait()
    assert any("not interactive" in e.message for e in result.errors)


def test_a_secret_parameter_is_not_logged(
    transport_settings: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Session(make_transport(transport_settings)) as session:
        assert session.script("param($Token) $Token.Length", Token=Secret(CANARY)).output == [len(CANARY)]
    assert CANARY not in "\n".join(r.getMessage() for r in caplog.records)


def test_exchange_online_on_the_runner(
    transport_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.environ.get("PSWRAP_LIVE") != "1" or not os.environ.get("PSWRAP_TENANT"):
        pytest.skip("needs PSWRAP_LIVE=1 and the PSWRAP_* settings of an Exchange app")
    for variable, value in transport_settings.items():
        monkeypatch.setenv(variable, value)
    with ExchangeOnline.from_env(transport="winrm") as exo:
        mailboxes = [exo.invoke("Get-Mailbox", ResultSize=1).output for _ in range(3)]
        assert exo.connects == 1
    assert all(len(m) == 1 and "@" in str(m[0].PrimarySmtpAddress) for m in mailboxes)
