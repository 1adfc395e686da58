"""The WSMan stand-in on its own, driven by pypsrp (its WSMan layer and its own PSRP client) and raw HTTP."""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import pytest
import requests
from pypsrp.complex_objects import RunspacePoolState
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import NAMESPACES, SelectorSet, WSMan, WSManAction

from pswrap.transports import wsman as messages
from tests.fixtures.wsman import WSManHost

RESOURCE = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"


def client(host: WSManHost, user: str = "alice", **options: Any) -> WSMan:
    settings: dict[str, Any] = {
        "port": host.port,
        "username": user,
        "password": host.users[user],
        "ssl": False,
        "auth": "ntlm",
        "encryption": "always",
        "operation_timeout": 5,
        **options,
    }
    return WSMan("127.0.0.1", **settings)


def selectors(shell_id: str) -> SelectorSet:
    selector_set = SelectorSet()
    selector_set.add_option("ShellId", shell_id)
    return selector_set


def test_pypsrps_own_powershell_client_runs_against_it(wsman_standin: WSManHost) -> None:
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        powershell = PowerShell(pool)
        powershell.add_script("param($n) 1..$n; Write-Warning 'careful'").add_parameter("n", 3)
        assert powershell.invoke() == [1, 2, 3]
        assert [str(w.message) for w in powershell.streams.warning] == ["careful"]
        assert not powershell.had_errors
    counts = wsman_standin.counts
    assert counts["Create"] == counts["Delete"] == 1 and counts["Command"] == 1
    assert all(r.encrypted for r in wsman_standin.requests)


def test_authentication_is_negotiated_per_connection(wsman_standin: WSManHost) -> None:
    answer = requests.post(f"http://127.0.0.1:{wsman_standin.port}/wsman", data=b"", timeout=5)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Negotiate"
    with pytest.raises(AuthenticationError):
        client(wsman_standin, password="wrong").get(RESOURCE)
    wsman_standin.set_faults(reject_credentials=True)
    with pytest.raises(AuthenticationError):
        client(wsman_standin).get(RESOURCE)
    assert wsman_standin.counts["auth_failures"] == 2


def test_an_unencrypted_message_is_refused(wsman_standin: WSManHost) -> None:
    with pytest.raises(AuthenticationError):
        client(wsman_standin, encryption="never").get(RESOURCE)
    assert wsman_standin.counts["refused_unencrypted"] >= 1 and not wsman_standin.requests


def test_what_arrives_is_recorded_before_decryption(wsman_standin: WSManHost) -> None:
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        PowerShell(pool).add_script("'recorded?'").invoke()
    received = bytes(wsman_standin.received)
    assert b"POST /wsman HTTP/1.1" in received and b"multipart/encrypted" in received
    assert wsman_standin.counts["Receive"] >= 1
    assert WSManAction.RECEIVE.encode() not in received and b"recorded?" not in received


def test_a_receive_with_nothing_to_say_times_out_with_the_wsman_fault(wsman_standin: WSManHost) -> None:
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        with pytest.raises(WSManFaultError) as caught:
            connection.receive(
                pool.shell.resource_uri, messages.receive(), selector_set=selectors(pool.id), timeout=1
            )
        assert caught.value.code == messages.OPERATION_TIMED_OUT
        assert "OperationTimeout" in caught.value.reason


def test_faults_are_wsman_faults_with_windows_codes(wsman_standin: WSManHost) -> None:
    connection = client(wsman_standin)
    gone = str(uuid.uuid4()).upper()
    with pytest.raises(WSManFaultError) as caught:
        connection.command(RESOURCE, messages.command(uuid.uuid4(), b""), selector_set=selectors(gone))
    assert caught.value.code == messages.SHELL_NOT_FOUND
    assert f"ShellId {gone} failed because the shell was not found" in caught.value.reason
    with pytest.raises(WSManFaultError, match="Cannot find the Nope session configuration") as unknown:
        connection.create(
            "http://schemas.microsoft.com/powershell/Nope", messages.create_shell(uuid.uuid4(), b"x")
        )
    assert unknown.value.code == 0x80338000
    with pytest.raises(WSManFaultError) as denied:
        client(wsman_standin, user="mallory").create(RESOURCE, messages.create_shell(uuid.uuid4(), b"x"))
    assert (denied.value.code, denied.value.reason) == (5, "Access is denied.")
    with pytest.raises(WSManFaultError) as unsupported:
        connection.enumerate(RESOURCE)
    assert unsupported.value.code == 0x80338013


def test_a_request_larger_than_max_envelope_size_is_refused(wsman_standin: WSManHost) -> None:
    with client(wsman_standin, max_envelope_size=2_000_000) as connection, RunspacePool(connection) as pool:
        big = messages.send("stdin", b"\0" * 600_000)
        with pytest.raises(WSManFaultError) as caught:
            connection.send(pool.shell.resource_uri, big, selector_set=selectors(pool.id))
        assert caught.value.code == 0x80338035 and "MaxEnvelopeSize" in caught.value.reason


def test_receive_answers_fit_the_clients_envelope(wsman_standin: WSManHost) -> None:
    with client(wsman_standin, max_envelope_size=12_288) as connection, RunspacePool(connection) as pool:
        output = PowerShell(pool).add_script("'y' * 50000; 'z' * 30000").invoke()
    assert output == ["y" * 50_000, "z" * 30_000]
    assert wsman_standin.counts["answers_over_limit"] == 0 and wsman_standin.counts["Receive"] >= 8


def test_fault_switches(wsman_standin: WSManHost) -> None:
    connection = client(wsman_standin, read_timeout=1)
    wsman_standin.set_faults(fault=("Get", 2150858770, "The client cannot connect to the destination."))
    with pytest.raises(WSManFaultError) as caught:
        connection.get(messages.SHELL_RESOURCE, selector_set=selectors("X"))
    assert (caught.value.code, caught.value.reason) == (
        2150858770,
        "The client cannot connect to the destination.",
    )
    with pytest.raises(WSManFaultError) as next_one:  # one fault only: the next Get is processed
        connection.get(messages.SHELL_RESOURCE, selector_set=selectors("X"))
    assert next_one.value.code == messages.SHELL_NOT_FOUND

    wsman_standin.set_faults(stall={"Get"})
    with pytest.raises(requests.exceptions.ReadTimeout):
        client(wsman_standin, read_timeout=1).get(messages.SHELL_RESOURCE, selector_set=selectors("X"))
    assert wsman_standin.counts["stalled"] == 1
    wsman_standin.set_faults()  # releases what was held

    with client(wsman_standin) as fresh, RunspacePool(fresh) as pool:
        wsman_standin.set_faults(drop_receive=1)
        powershell = PowerShell(pool).add_script("'lost'")
        with pytest.raises(requests.exceptions.ConnectionError):
            powershell.invoke()
        assert wsman_standin.counts["dropped"] == 1
        pool.state = (
            RunspacePoolState.CLOSED
        )  # skip pypsrp's close on the broken connection; the reset deletes the shell


def test_shells_belong_to_their_user_and_can_be_killed(wsman_standin: WSManHost) -> None:
    with client(wsman_standin) as alice, RunspacePool(alice) as pool:
        shell_id = pool.id
        with pytest.raises(WSManFaultError) as caught:
            client(wsman_standin, user="CONTOSO\\bob").get(
                messages.SHELL_RESOURCE, selector_set=selectors(shell_id)
            )
        assert caught.value.code == 5
        body = alice.get(messages.SHELL_RESOURCE, selector_set=selectors(shell_id))
        assert body.findtext("rsp:Shell/rsp:Owner", namespaces=NAMESPACES) == "alice"
        assert wsman_standin.kill_shells() == 1
        with pytest.raises(WSManFaultError) as gone:
            alice.get(messages.SHELL_RESOURCE, selector_set=selectors(shell_id))
        assert gone.value.code == messages.SHELL_NOT_FOUND
        pool.state = RunspacePoolState.CLOSED  # already gone: nothing to close


def test_a_pending_receive_ends_when_the_shell_is_deleted(wsman_standin: WSManHost) -> None:
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        outcome: list[Any] = []

        def receive() -> None:
            try:
                client(wsman_standin).receive(
                    pool.shell.resource_uri, messages.receive(), selector_set=selectors(pool.id), timeout=30
                )
            except WSManFaultError as fault:
                outcome.append(fault.code)

        waiter = threading.Thread(target=receive)
        waiter.start()
        connection.delete(pool.shell.resource_uri, selector_set=selectors(pool.id))
        waiter.join(timeout=30)
        pool.state = RunspacePoolState.CLOSED
    assert outcome == [messages.SHELL_NOT_FOUND]


def test_only_the_misspelt_stop_code_stops_a_pipeline(wsman_standin: WSManHost) -> None:
    """``powershell/signal/crtl_c`` stops the pipeline; any other code - pypsrp's correctly spelt
    ``ctrl_c`` - closes the command, and its next Receive fails as if it never existed (as on Windows)."""
    from pypsrp.complex_objects import PSInvocationState

    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        stopped = PowerShell(pool).add_script("'started'; Start-Sleep -Seconds 60")
        stopped.begin_invoke()
        pool.shell.signal(messages.Signal.STOP, str(stopped.id).upper())
        stopped.end_invoke()
        assert stopped.state == PSInvocationState.STOPPED and stopped.output == ["started"]

        closed = PowerShell(pool).add_script("'started'; Start-Sleep -Seconds 60")
        closed.begin_invoke()
        pool.shell.signal("powershell/signal/ctrl_c", str(closed.id).upper())
        with pytest.raises(WSManFaultError) as caught:
            closed.poll_invoke()
        assert caught.value.code == messages.SHELL_NOT_FOUND
        assert "command identifier that does not exist" in caught.value.reason
    assert wsman_standin.shells.signals[:2] == ["powershell/signal/crtl_c", "powershell/signal/ctrl_c"]


# --- what the recordings of real Windows hosts show (../shared/corpus/wsman) ---------------------

CORPUS = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "corpus" / "wsman"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="the WSMan corpus is absent")


def recorded(name: str, index: int) -> Any:
    from xml.etree import ElementTree as ET

    import yaml

    document = yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))
    return ET.fromstring(document["messages"][index]["response"])


RSP = NAMESPACES["rsp"]


@needs_corpus
def test_the_shell_is_described_as_windows_describes_it(wsman_standin: WSManHost) -> None:
    windows = recorded("test_psrp_open_runspace.yml", 0).find(f".//{{{RSP}}}Shell")
    assert windows is not None
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        ours = connection.get(messages.SHELL_RESOURCE, selector_set=selectors(pool.id)).find(
            f"{{{RSP}}}Shell"
        )
    assert ours is not None
    assert [e.tag for e in ours] == [e.tag for e in windows]
    assert re.fullmatch(r"P\d+DT\d+H\d+M\d+S", ours.findtext(f"{{{RSP}}}ShellRunTime") or "")


@needs_corpus
def test_receive_answers_say_pending_then_done_with_an_exit_code(wsman_standin: WSManHost) -> None:
    windows = recorded("test_psrp_clear_commands.yml", 4).find(f".//{{{RSP}}}CommandState")
    assert windows is not None and [e.tag for e in windows] == [f"{{{RSP}}}ExitCode"]
    from pypsrp.complex_objects import PSInvocationState

    states = []
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        powershell = PowerShell(pool).add_script("'one'; Start-Sleep -Milliseconds 300; 'two'")
        powershell.begin_invoke()
        while powershell.state == PSInvocationState.RUNNING:
            body = connection.receive(
                pool.shell.resource_uri,
                messages.receive(powershell.id),
                selector_set=selectors(pool.id),
            )
            state = body.find(f".//{{{RSP}}}CommandState")
            assert state is not None
            states.append((state.get("State", "").rsplit("/", 1)[-1], state.findtext(f"{{{RSP}}}ExitCode")))
            if states[-1][0] == "Done":
                break
    assert states[0] == ("Pending", None) and states[-1] == ("Done", "0")


@needs_corpus
def test_faults_carry_windows_words(wsman_standin: WSManHost) -> None:
    timed_out = recorded("test_winrs_operation_timeout.yml", 3)
    unknown = recorded("test_winrs_bad_cmd_id.yml", 2)
    text = lambda e, tag: e.findtext(f".//{{http://www.w3.org/2003/05/soap-envelope}}{tag}")  # noqa: E731
    with client(wsman_standin) as connection, RunspacePool(connection) as pool:
        with pytest.raises(WSManFaultError) as waited:
            connection.receive(
                pool.shell.resource_uri, messages.receive(), selector_set=selectors(pool.id), timeout=1
            )
        with pytest.raises(WSManFaultError) as missing:
            connection.receive(
                pool.shell.resource_uri, messages.receive(uuid.uuid4()), selector_set=selectors(pool.id)
            )
    assert waited.value.reason == (text(timed_out, "Text") or "").strip()  # pypsrp strips it
    assert missing.value.code == messages.SHELL_NOT_FOUND
    windows_message = unknown.findtext(".//{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}Message")
    assert missing.value.reason == (windows_message or "").strip()
