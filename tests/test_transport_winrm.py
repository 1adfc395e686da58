"""The WinRM transport end to end, against the WSMan stand-in (HTTP, NTLM, message encryption).

The stand-in hosts the same PowerShell stand-in the local transport talks to, so every result here is
also compared with what the local transport returns for the same call.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from pswrap import (
    InformationRecord,
    InvocationTimeout,
    LocalTransport,
    PowerShellError,
    PSDateTime,
    PSObject,
    PSTimeSpan,
    Secret,
    SecureString,
    Session,
    TransportError,
    Version,
    WinRMAuthenticationError,
    WinRMError,
    WinRMTransport,
)
from pswrap.transports import wsman
from tests.fixtures.pwsh import PwshStandin
from tests.fixtures.wsman import WSManHost
from tests.standins.wsman.server import WSManStandin

CANARY = "canary-winrm_x41-SeCrEt-" + uuid.uuid4().hex[:10]


def transport_for(host: WSManHost, **changes: Any) -> WinRMTransport:
    return WinRMTransport(**host.transport_options(**changes))


@pytest.fixture
def session(wsman_standin: WSManHost) -> Iterator[Session]:
    with Session(transport_for(wsman_standin), timeout=30) as s:
        yield s


EVERY_STREAM = (
    "param($Name) \"hello $Name\"; Write-Error 'an error' -ErrorId E1; Write-Warning 'a warning'; "
    "Write-Verbose 'some detail' -Verbose; Write-Debug 'internals' -Debug; "
    "Write-Information 'for your information' -Tags t1; Write-Host 'to the host'; "
    "Write-Progress -Activity 'Copying' -Status 'half way' -PercentComplete 50; 'bye'"
)


def comparable(result: Any) -> dict[str, Any]:
    """A result's user-visible content, without what differs between two runs (times, process ids)."""
    records = []
    for record in result.records:
        if isinstance(record, InformationRecord):
            record = dataclasses.replace(
                record, time_generated=None, process_id=None, computer=None, user=None
            )
        records.append(record)
    return {"output": result.output, "records": records, "state": result.state, "exit_code": result.exit_code}


def test_connect_and_invoke_over_ntlm_with_message_encryption(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin)
    assert transport.encrypted and transport.url == f"http://127.0.0.1:{wsman_standin.port}/wsman"
    with Session(transport) as session:
        assert session.healthy
        assert session.invoke("Write-Output", "a", "b").output == ["a", "b"]
        assert session.script("param($n) 1..$n", n=3).output == [1, 2, 3]
    assert transport.shells_opened == 1
    counts = wsman_standin.counts
    assert counts["Create"] == 1 and counts["Command"] == 2 and counts["Delete"] == 1
    assert counts["refused_unencrypted"] == 0 and counts["answers_over_limit"] == 0
    assert all(r.encrypted for r in wsman_standin.requests)  # every SOAP request arrived sealed
    assert {r.user for r in wsman_standin.requests} == {"alice"}


def test_every_stream_comes_back_typed(wsman_standin: WSManHost) -> None:
    with Session(transport_for(wsman_standin), progress=True) as session:
        result = session.script(EVERY_STREAM, Name="bob")
        assert result.output == ["hello bob", "bye"]
        assert [(e.message, e.error_id) for e in result.errors] == [("an error", "E1")]
        assert [w.message for w in result.warnings] == ["a warning"]
        assert [v.message for v in result.verbose] == ["some detail"]
        assert [d.message for d in result.debug] == ["internals"]
        assert [(i.message, i.tags) for i in result.information] == [
            ("for your information", ("t1",)),
            ("to the host", ("PSHOST",)),
        ]
        assert [(p.activity, p.message, p.percent_complete) for p in result.progress] == [
            ("Copying", "half way", 50)
        ]
        assert result.state == "completed"


ROUND_TRIP: dict[str, Any] = {
    "text": "multi\nline ’quoted’ _x0041_ é 🎵 <xml> & ]]>",
    "empty": "",
    "int": 42,
    "negative": -7,
    "big": 2**40,
    "float": 0.1,
    "decimal": Decimal("1291921.101291"),
    "true": True,
    "false": False,
    "none": None,
    "bytes": b"\x00\xffabc",
    "guid": uuid.UUID("9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f"),
    "date": PSDateTime(2024, 2, 29, 23, 59, 58, 123456, nanosecond=700),
    "utc": PSDateTime(2024, 1, 1, 12, tzinfo=dt.timezone.utc),
    "span": PSTimeSpan(ticks=1_234_567_890_123),
    "version": Version(1, 2, 3),
    "list": [1, "two", [3]],
    "table": {"Name": "x", "Nested": {"n": 1}},
}


def test_every_parameter_type_round_trips_as_from_the_local_transport(
    wsman_standin: WSManHost, pwsh_standin: PwshStandin
) -> None:
    script = "param($Value) ,$Value"  # Write-Output -NoEnumerate would wrap a scalar in a list (pwsh 7.6)
    with Session(transport_for(wsman_standin)) as remote, Session(LocalTransport()) as local:
        for name, value in ROUND_TRIP.items():
            (back,) = remote.script(script, Value=value).output
            assert back == value, name
            assert type(back) is type(value), name
            assert back == local.script(script, Value=value).output[0], name
        thing = PSObject(extended={"Note": "n"}, type_names=("My.Type",))
        secret, length, note = remote.script(
            "param($Secret, $Thing) $Secret; $Secret.Length; $Thing.Note",
            Secret=SecureString(CANARY),
            Thing=thing,
        ).output
        assert isinstance(secret, SecureString) and secret.reveal() == CANARY
        assert (length, note) == (len(CANARY), "n")
        assert remote.invoke("Write-Output", input=[1, "two"]).output == [1, "two"]


@pytest.mark.parametrize(
    "script",
    [
        EVERY_STREAM,
        "'before'; throw 'boom'; 'never'",
        "'out'; exit 7",
        "Write-Error 'not fatal'; 'after'",
        "Read-Host 'Your name'; 'next'",
        "Get-Nothing -Name x",
        "if ($x) { 'never'",
    ],
    ids=["streams", "throw", "exit", "error", "prompt", "not-found", "parse-error"],
)
def test_results_are_exactly_those_of_the_local_transport(
    script: str, wsman_standin: WSManHost, pwsh_standin: PwshStandin
) -> None:
    results = []
    for transport in (transport_for(wsman_standin), LocalTransport()):
        with Session(transport, progress=True) as session:
            result = session.script(script, **({"Name": "bob"} if "$Name" in script else {}))
            with contextlib.suppress(PowerShellError):
                result.wait()
            results.append((comparable(result), result.error))
    (remote, remote_error), (local, local_error) = results
    assert remote == local
    assert remote_error == local_error


def test_a_terminating_error_keeps_what_came_before(session: Session) -> None:
    result = session.script("'before'; throw 'boom'; 'never'")
    with pytest.raises(PowerShellError, match="boom") as caught:
        result.wait()
    assert caught.value.partial.output == ["before"] and result.state == "failed"
    assert session.invoke("Write-Output", "next").output == ["next"]


def test_a_pool_of_three_runs_three_invocations_at_once(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin, pool_size=3)
    with Session(transport) as session:
        name = uuid.uuid4().hex
        # Each waits at a rendezvous until all three are there: with fewer runspaces it fails.
        results = [session.invoke("Wait-Rendezvous", name, Parties=3) for _ in range(3)]
        assert sorted(r.output[0] for r in results) == [0, 1, 2]
        assert all(r.state == "completed" for r in results)
        assert session.invoke("Write-Output", "reused").output == ["reused"]
    assert transport.shells_opened == 1 and wsman_standin.counts["Create"] == 1


def test_a_pool_of_one_cannot_hold_that_rendezvous(wsman_standin: WSManHost) -> None:
    with Session(transport_for(wsman_standin)) as session:
        name = uuid.uuid4().hex
        first = session.invoke("Wait-Rendezvous", name, Parties=2, TimeoutSeconds=0.5)
        second = session.invoke("Wait-Rendezvous", name, Parties=2, TimeoutSeconds=0.5)
        with pytest.raises(PowerShellError, match="reached rendezvous"):
            first.wait()
        with pytest.raises(PowerShellError, match="reached rendezvous"):
            second.wait()


def test_state_lives_on_from_one_call_to_the_next(session: Session) -> None:
    session.script("$kept = 'from the first call'")
    assert session.script("$kept").output == ["from the first call"]


def test_stop_sends_the_stop_signal(session: Session, wsman_standin: WSManHost) -> None:
    result = session.script("'started'; Start-Sleep -Seconds 60; 'finished'")
    assert next(iter(result)) == "started"
    result.stop()
    assert result.state == "stopped" and result.output == ["started"]
    # PowerShell's own stop code, misspelt: any other one makes Windows close the command instead.
    assert "powershell/signal/crtl_c" in wsman_standin.shells.signals
    assert session.invoke("Write-Output", "next").output == ["next"]
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]


def test_a_command_the_host_closed_fails_alone_and_the_session_lives_on(
    session: Session, wsman_standin: WSManHost
) -> None:
    """Windows answers a Receive for a closed command with the code of a lost shell (2150858843): pswrap
    probes the shell, and only the call fails while the session (and its state) lives on."""
    session.script("$kept = 'still here'").wait()
    wsman_standin.set_faults(close_command=True)
    with pytest.raises(
        WinRMError, match=r"closed the command of script .* \(the session lives on\)"
    ) as caught:
        session.script("'started'; Start-Sleep -Seconds 60").wait()
    assert caught.value.code == wsman.SHELL_NOT_FOUND
    assert session.script("$kept").output == ["still here"]
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]


def test_a_timeout_stops_the_invocation_and_the_session_goes_on(session: Session) -> None:
    with pytest.raises(InvocationTimeout, match="within its timeout of 1 s and was stopped") as caught:
        session.script("'started'; Start-Sleep -Seconds 60", timeout=1).wait()
    assert caught.value.partial.output == ["started"] and caught.value.partial.state == "stopped"
    assert session.invoke("Write-Output", "next").output == ["next"]
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]


def test_a_host_that_ignores_the_stop_is_given_up_and_replaced(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin, stop_grace=1.0)
    with Session(transport) as session:
        result = session.script("'started'; Start-Sleep -Seconds 60", timeout=1)
        assert next(iter(result)) == "started"
        wsman_standin.set_faults(stall={"Signal"})
        with pytest.raises(InvocationTimeout, match="did not answer the stop signal") as caught:
            result.wait()
        assert caught.value.partial.output == ["started"]
        wsman_standin.set_faults()
        assert session.invoke("Write-Output", "next").output == ["next"]
        assert transport.shells_opened == 2


def test_bad_credentials_are_a_clear_error(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin, password=Secret("wrong-password-123"))
    with pytest.raises(WinRMAuthenticationError, match="rejected the credentials of user 'alice'") as caught:
        Session(transport).open()
    assert caught.value.code == 401 and "ntlm" in str(caught.value)
    assert "wrong-password-123" not in str(caught.value) and "wrong-password-123" not in repr(transport)
    assert wsman_standin.counts["auth_failures"] >= 1 and wsman_standin.counts["Create"] == 0


def test_rejected_credentials_and_access_denied(wsman_standin: WSManHost) -> None:
    wsman_standin.set_faults(reject_credentials=True)
    with pytest.raises(WinRMAuthenticationError):
        Session(transport_for(wsman_standin)).open()
    wsman_standin.set_faults()
    with pytest.raises(WinRMError, match="denied access") as caught:
        Session(transport_for(wsman_standin, user="mallory")).open()
    assert caught.value.code == 5 and "Remote Management Users" in str(caught.value)


def test_a_domain_user_and_another_configuration(wsman_standin: WSManHost) -> None:
    with Session(transport_for(wsman_standin, user="CONTOSO\\bob")) as session:
        assert session.invoke("Write-Output", 1).output == [1]
    assert {r.user for r in wsman_standin.requests} == {"CONTOSO\\bob"}
    with pytest.raises(WinRMError, match=r"Cannot find the PowerShell\.7 session configuration"):
        Session(transport_for(wsman_standin, configuration="PowerShell.7")).open()


def test_a_dropped_connection_keeps_what_arrived_and_the_next_call_works(
    session: Session, wsman_standin: WSManHost
) -> None:
    wsman_standin.set_faults(drop_receive=2)  # the first Receive brings 'one', the second one drops
    result = session.script("'one'; Start-Sleep -Seconds 30; 'two'")
    with pytest.raises(WinRMError, match=r"connection .* broke when asked to receive the output") as caught:
        result.wait()
    assert caught.value.partial.output == ["one"] and result.output == ["one"]
    assert wsman_standin.counts["dropped"] == 1
    assert session.invoke("Write-Output", "next").output == ["next"]
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]


def test_connections_the_host_closed_between_calls_are_replaced(
    session: Session, wsman_standin: WSManHost
) -> None:
    session.script("$kept = 'still here'")
    assert wsman_standin.close_connections() >= 1
    assert session.script("$kept").output == ["still here"]  # the same shell, over a new connection
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]
    assert wsman_standin.counts["handshakes"] >= 2


@pytest.mark.parametrize("idle_check", [0.0, None], ids=["probed", "found-by-the-call"])
def test_a_shell_that_died_while_idle_is_replaced_transparently(
    wsman_standin: WSManHost, idle_check: float | None
) -> None:
    opened: list[int] = []
    transport = transport_for(wsman_standin, idle_check=idle_check)
    with Session(transport, on_open=lambda s: opened.append(1)) as session:
        session.script("$kept = 'x'")
        assert wsman_standin.kill_shells() == 1
        assert session.invoke("Write-Output", "after").output == ["after"]
        assert session.script("$kept").output == [None]  # a fresh shell: the old state is gone
        assert transport.shells_opened == 2 and len(opened) == 2  # on_open ran again (re-connect)
    probes = [r for r in wsman_standin.requests if r.action == "Get" and "ShellId" in r.selectors]
    if idle_check is None:  # no probe before calls; one after the fault, which also means "no such command"
        assert len(probes) <= 1
    else:
        assert len(probes) >= 1


def test_when_the_fresh_shell_fails_too_the_error_says_why(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin, idle_check=None)
    with Session(transport) as session:
        session.invoke("Write-Output", 1).wait()
        wsman_standin.kill_shells()
        wsman_standin.set_faults(fault=("Create", 2150858755, "The WinRM service is shutting down."))
        with pytest.raises(
            WinRMError, match=r"could not open a PowerShell session .*shutting down"
        ) as caught:
            session.invoke("Write-Output", 2)
        assert caught.value.code == 2150858755
        assert session.invoke("Write-Output", 3).output == [3]  # and once the host is back, it works


def test_a_wsman_fault_on_a_command_is_a_clear_error_and_the_shell_stays(
    session: Session, wsman_standin: WSManHost
) -> None:
    wsman_standin.set_faults(
        fault=("Command", 2150858855, "The maximum number of concurrent operations was exceeded.")
    )
    with pytest.raises(WinRMError, match="concurrent operations") as caught:
        session.invoke("Write-Output", 1)
    assert caught.value.code == 2150858855 and caught.value.operation == "start Write-Output"
    assert session.invoke("Write-Output", 2).output == [2]
    assert session.transport.shells_opened == 1  # type: ignore[attr-defined]


def test_a_receive_with_nothing_to_say_is_polled_again(wsman_standin: WSManHost) -> None:
    with Session(transport_for(wsman_standin, operation_timeout=1.0)) as session:
        assert session.script("Start-Sleep -Seconds 2.5; 'late'").output == ["late"]
    assert wsman_standin.counts["faults"] >= 2  # the timed-out answers, each followed by another Receive


def test_messages_fit_the_envelope_size(wsman_standin: WSManHost) -> None:
    big = "x" * 60_000
    transport = transport_for(wsman_standin, max_envelope_size=16_384)
    with Session(transport) as session:
        out = session.script("param($Big) $Big; $Big.Length; $Big + $Big", Big=big).output
    assert out == [big, 60_000, big + big]
    assert wsman_standin.counts["answers_over_limit"] == 0
    assert wsman_standin.counts["Send"] >= 3  # the parameter took several envelopes


def test_envelopes_grow_to_what_the_host_allows(wsman_standin: WSManHost) -> None:
    """The opening requests fit any host (150 KB); once PowerShell says protocol 2.2+, pswrap reads the
    host's MaxEnvelopeSizekb and uses it: fewer, larger messages for big results."""
    with Session(transport_for(wsman_standin), timeout=30) as session:
        assert len(session.script("'y' * 300000").output[0]) == 300_000
    sizes = [r.max_envelope_size for r in wsman_standin.requests]
    assert sizes[0] == 153_600 and sizes[-1] == 512_000
    assert wsman_standin.counts["answers_over_limit"] == 0
    with Session(transport_for(wsman_standin, max_envelope_size=16_384), timeout=30) as session:
        assert session.script("'ok'").output == ["ok"]  # one the user set is kept


def test_the_session_is_closed_on_the_host(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin)
    session = Session(transport).open()
    running = session.script("'started'; Start-Sleep -Seconds 60")
    assert next(iter(running)) == "started"
    session.close()
    with pytest.raises(TransportError, match="closed while running"):  # not an empty success
        running.wait()
    assert running.output == ["started"]
    assert wsman_standin.counts["Delete"] == 1 and not wsman_standin.shells.shells
    assert not transport.healthy


# --- secrets ---------------------------------------------------------------------------------


def leaks(secret: str, data: bytes) -> bool:
    """Whether ``secret`` is in ``data`` as text, UTF-16, or inside any base64 run (as PSRP sends it),
    also as CLIXML writes it (``_x`` escaped as ``_x005F_x``)."""
    variants = {secret, secret.replace("_x", "_x005F_x")}
    forms = [v.encode(encoding) for v in variants for encoding in ("utf-8", "utf-16-le")]
    if any(form in data for form in forms):
        return True
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", data):
        try:
            decoded = base64.b64decode(run + b"=" * (-len(run) % 4))
        except ValueError:
            continue
        if any(form in decoded for form in forms):
            return True
    return False


def test_an_access_token_never_crosses_the_network_readable(
    wsman_standin: WSManHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = Secret(CANARY, "access token")
    transport = transport_for(wsman_standin)
    with Session(transport) as session:
        result = session.script("param($AccessToken) $AccessToken.Length", AccessToken=token)
        assert result.output == [len(CANARY)]
        wsman_standin.set_faults(drop_receive=2)
        failing = session.script("param($AccessToken) 'one'; Start-Sleep 30; $AccessToken", AccessToken=token)
        with pytest.raises(WinRMError) as caught:
            failing.wait()
        texts = [
            str(caught.value),
            repr(caught.value),
            repr(transport),
            repr(session),
            repr(failing),
            repr(result),
        ]
    assert wsman_standin.received and not leaks(CANARY, bytes(wsman_standin.received))
    assert not any(CANARY in text for text in texts)
    assert not any(CANARY in s for s in wsman_standin.scripts)  # bound as a parameter, never script text
    logged = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert "Sending message" in logged.decode() and not leaks(CANARY, logged)


def test_the_leak_check_sees_a_token_sent_without_encryption(wsman_standin: WSManHost) -> None:
    wsman_standin.standin.allow_unencrypted = True
    transport = transport_for(wsman_standin, encryption="never", allow_unencrypted=True)
    with Session(transport) as session:
        assert session.script("param($T) $T.Length", T=Secret(CANARY)).output == [len(CANARY)]
    assert not transport.encrypted and leaks(CANARY, bytes(wsman_standin.received))


def test_an_encrypting_host_refuses_unencrypted_messages(wsman_standin: WSManHost) -> None:
    transport = transport_for(wsman_standin, encryption="never", allow_unencrypted=True)
    with pytest.raises(WinRMAuthenticationError, match=r"over plain HTTP .*AllowUnencrypted") as caught:
        Session(transport).open()
    assert "rejected the credentials" not in str(caught.value)
    assert wsman_standin.counts["refused_unencrypted"] >= 1 and wsman_standin.counts["Create"] == 0


def test_basic_over_http_to_a_host_refusing_unencrypted_traffic_says_so(wsman_host: WSManHost) -> None:
    """Windows answers 401 to Basic over HTTP unless AllowUnencrypted: the cause is the plain HTTP,
    not the password, and the error says so and what to use instead."""
    standin = WSManStandin(wsman_host.standin.users_file, basic=True).start()
    try:
        transport = WinRMTransport(
            **{**wsman_host.transport_options(auth="basic", allow_unencrypted=True), "port": standin.port}
        )
        with pytest.raises(WinRMAuthenticationError) as caught:
            transport.open()
    finally:
        standin.stop()
    message = str(caught.value)
    assert "refused to open a PowerShell session (Microsoft.PowerShell) over plain HTTP (HTTP 401)" in message
    assert "AllowUnencrypted" in message and "scheme='https'" in message
    assert "rejected the credentials" not in message and standin.counts["refused_unencrypted"] >= 1


# --- set-up and configuration ----------------------------------------------------------------


def test_sessions_by_name(wsman_standin: WSManHost) -> None:
    options = wsman_standin.transport_options()
    with Session(transport="winrm", **options) as session:
        assert isinstance(session.transport, WinRMTransport)
        assert session.invoke("Write-Output", "by name").output == ["by name"]
    with pytest.raises(Exception, match="winrm transport has no option 'hots'"):
        Session(transport="winrm", host="x", hots="y")


def test_a_connection_refused_is_a_clear_error() -> None:
    transport = WinRMTransport("127.0.0.1", port=1, scheme="http", auth="ntlm", username="a", password="b")
    with pytest.raises(WinRMError, match=r"could not connect to http://127.0.0.1:1/wsman .*refused"):
        transport.open()
    assert not transport.healthy


def test_unknown_shell_faults_name_the_code() -> None:
    assert wsman.SHELL_NOT_FOUND == 2150858843 and wsman.OPERATION_TIMED_OUT == 2150858793


# --- HTTPS -----------------------------------------------------------------------------------


def test_https_checks_the_certificate_against_the_ca_bundle(wsman_https: WSManHost) -> None:
    transport = transport_for(wsman_https, ca_bundle=wsman_https.standin.ca_path)
    assert transport.url.startswith("https://") and not transport.encrypted  # TLS protects the messages
    with Session(transport) as session:
        assert session.script("param($T) $T.Length", T=Secret(CANARY)).output == [len(CANARY)]
    assert wsman_https.counts["Create"] == 1 and not any(r.encrypted for r in wsman_https.requests)


def test_https_refuses_a_certificate_it_cannot_check(wsman_https: WSManHost) -> None:
    with pytest.raises(WinRMError) as caught:
        Session(transport_for(wsman_https)).open()
    message = str(caught.value)
    assert re.fullmatch(
        r"the certificate of https://127\.0\.0\.1:\d+/wsman could not be checked \(certificate verify "
        r"failed: [^)]+\): give the certificate of the CA that issued it with ca_bundle \(verify=False "
        r"turns checking off\)",
        message,
    ), message
    assert "Max retries" not in message and "Caused by" not in message
    assert wsman_https.counts["Create"] == 0


def test_https_to_the_http_listener_says_so(wsman_standin: WSManHost) -> None:
    """TLS sent to WinRM's HTTP port fails with OpenSSL's wrong-version error: the fix is the scheme
    or the port, not a CA bundle."""
    with pytest.raises(WinRMError) as caught:
        Session(transport_for(wsman_standin, scheme="https", auth="basic", verify=False)).open()
    message = str(caught.value)
    assert re.fullmatch(
        rf"https://127\.0\.0\.1:{wsman_standin.port}/wsman does not answer in TLS \([^)]+\): port "
        rf"{wsman_standin.port} is likely WinRM's HTTP listener, so use scheme='http' .*",
        message,
    ), message
    assert "ca_bundle" not in message and "Max retries" not in message and "Caused by" not in message


def test_https_without_checking_when_told_so(wsman_https: WSManHost) -> None:
    with Session(transport_for(wsman_https, verify=False)) as session:
        assert session.invoke("Write-Output", "unchecked").output == ["unchecked"]


def test_basic_authentication_over_https(wsman_https: WSManHost) -> None:
    transport = transport_for(
        wsman_https, auth="basic", ca_bundle=wsman_https.standin.ca_path, user="CONTOSO\\bob"
    )
    with Session(transport) as session:
        assert session.invoke("Write-Output", "basic").output == ["basic"]
    assert {r.user for r in wsman_https.requests} == {"CONTOSO\\bob"} and wsman_https.counts[
        "handshakes"
    ] == 0
    wrong = transport_for(
        wsman_https, auth="basic", ca_bundle=wsman_https.standin.ca_path, password="nope-123456"
    )
    with pytest.raises(WinRMAuthenticationError, match="basic authentication") as caught:
        Session(wrong).open()
    assert "nope-123456" not in str(caught.value)


def test_a_bug_while_receiving_fails_the_call_instead_of_hanging(
    session: Session, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = wsman.parse_receive
    calls = []

    def broken_once(body: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(body)

    monkeypatch.setattr(wsman, "parse_receive", broken_once)
    with pytest.raises(WinRMError, match="pswrap failed receiving the output of Write-Output: RuntimeError"):
        session.invoke("Write-Output", 1).wait()
    assert "receiving the output of Write-Output failed" in caplog.text
    assert session.invoke("Write-Output", 2).output == [2]
