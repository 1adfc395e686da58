"""The SSH transport against a real OpenSSH server (tests/sshserver.py) with the pwsh stand-in behind
its ``standin`` subsystem: the session scenarios, host keys, authentication and faults.

The same scenarios with the real pwsh over SSH are in tests/test_ssh_real_pwsh.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pswrap import (
    InvocationTimeout,
    Secret,
    SecureString,
    Session,
    SSHAuthenticationError,
    SSHError,
    SSHHostKeyError,
    SSHTransport,
    TransportError,
)
from pswrap.errors import ConfigError
from tests import session_scenarios as scenarios
from tests.fixtures.pwsh import PwshStandin
from tests.fixtures.sshd import SSHOptions
from tests.sshserver import SilentListener, SSHServer, TcpProxy, keygen, make_server_dir

CANARY = "canary-ssh_x41-5e1f0c2a"


@pytest.fixture(scope="module")
def shared(sshd: SSHServer) -> Iterator[Session]:
    """One session over SSH for the scenarios (each leaves it usable, as they check): connecting
    costs seconds on a loaded machine."""
    sshd.standin_config.write_text("{}")
    transport = SSHTransport(
        f"{sshd.user}@127.0.0.1",
        sshd.port,
        key_file=sshd.client_key,
        known_hosts=sshd.dir / "known_hosts",
        agent=False,
        subsystem="standin",
    )
    before = ssh_threads()
    with Session(transport, timeout=60, progress=True) as s:
        yield s
    assert_no_ssh_threads(before)


@pytest.fixture
def session(shared: Session) -> Session:
    return shared


def ssh_threads() -> set[threading.Thread]:
    import paramiko

    return {
        t
        for t in threading.enumerate()
        if t.name.startswith("pswrap-ssh-") or isinstance(t, paramiko.Transport)
    }


def assert_no_ssh_threads(before: set[threading.Thread] | None = None) -> None:
    """Every thread the SSH sessions started since ``before`` has ended (pswrap's, paramiko's)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = ssh_threads() - (before or set())
        if not left:
            return
        time.sleep(0.05)
    assert sorted(t.name for t in left) == []


def test_a_session_over_ssh_runs_in_the_hosts_pwsh_sshs(
    ssh_standin: PwshStandin, ssh_options: SSHOptions
) -> None:
    value = "x'; Remove-Item -Recurse /; '"
    with Session(SSHTransport(**ssh_options(subsystem="standin"))) as session:
        assert session.invoke("Write-Output", value, 2).output == [value, 2]
    (process,) = ssh_standin.processes()
    assert process.argv[1:] == ["-sshs", "-NoLogo", "-NoProfile"]
    assert not any("Remove-Item" in script for script in process.scripts)  # a value, never script text


# --- the session scenarios (as for the local transport) ------------------------------------------


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


def test_timeout_stops_the_invocation_and_keeps_the_connection(session: Session) -> None:
    scenarios.check_timeout(session)
    assert session.transport.connections_opened == 1  # type: ignore[attr-defined]


def test_prompts_are_refused(session: Session) -> None:
    scenarios.check_prompts_refused(session)


def test_three_invocations_run_at_once_on_a_pool_of_three(
    ssh_standin: PwshStandin, ssh_options: SSHOptions
) -> None:
    transport = SSHTransport(**ssh_options(subsystem="standin", pool_size=3))
    with Session(transport, timeout=60) as session:
        scenarios.check_three_at_once(session)
        assert transport.connections_opened == 1


# --- host keys -------------------------------------------------------------------------------------


def test_an_unknown_host_is_refused_with_its_fingerprint_before_any_credential_is_sent(
    sshd: SSHServer, ssh_options: SSHOptions, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    before = sshd.log_text()
    transport = SSHTransport(**ssh_options(known_hosts=empty, password=Secret(CANARY), subsystem="standin"))
    with pytest.raises(SSHHostKeyError, match="is not known") as caught:
        transport.open()
    error = caught.value
    assert error.fingerprint == sshd.fingerprint("ed25519") and error.fingerprint in str(error)
    assert "accept_new_host_key=True" in str(error) and "ssh-keyscan" in str(error)
    assert not empty.exists()  # nothing was added
    new_log = sshd.log_text()[len(before) :]
    assert "Accepted" not in new_log and "Failed" not in new_log  # no login was attempted
    assert CANARY not in str(error) and CANARY not in repr(transport)


def test_hashed_known_hosts_entries_are_honoured(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        "# comment\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO\n" + sshd.known_hosts_line()
    )
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True, timeout=30)
    assert "127.0.0.1" not in known.read_text()  # hashed
    with Session(SSHTransport(**ssh_options(known_hosts=known, subsystem="standin"))) as session:
        assert session.invoke("Write-Output", "in").output == ["in"]


def test_a_wildcard_entry_of_another_key_type_is_asked_for(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin, tmp_path: Path
) -> None:
    """Only the host's ECDSA key is known (under a pattern): pswrap asks the host for that type."""
    known = tmp_path / "known_hosts"
    _, kind, blob = sshd.known_hosts_line("ecdsa").split()
    known.write_text(f"[127.0.0.?]:{sshd.port},!nothere {kind} {blob}\n")
    with Session(SSHTransport(**ssh_options(known_hosts=known, subsystem="standin"))) as session:
        assert session.invoke("Write-Output", 1).output == [1]


def test_accepting_a_new_host_key_only_when_asked(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    with Session(
        SSHTransport(**ssh_options(known_hosts=known, accept_new_host_key=True, subsystem="standin"))
    ) as s:
        assert s.invoke("Write-Output", 1).output == [1]
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.returncode == 0 and "|1|" in known.read_text()  # OpenSSH finds the (hashed) entry
    with Session(SSHTransport(**ssh_options(known_hosts=known, subsystem="standin"))) as s:
        assert s.invoke("Write-Output", 2).output == [2]  # now known


def test_a_changed_host_key_is_refused_loudly_even_when_accepting_new_keys(
    sshd: SSHServer, ssh_options: SSHOptions, tmp_path: Path
) -> None:
    other = keygen(tmp_path / "other_host_key", "ed25519")
    known = tmp_path / "known_hosts"
    public = other.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")
    before = sshd.log_text()
    transport = SSHTransport(
        **ssh_options(
            known_hosts=known, accept_new_host_key=True, password=Secret(CANARY), subsystem="standin"
        )
    )
    with pytest.raises(SSHHostKeyError, match="HOST KEY CHANGED") as caught:
        transport.open()
    message = str(caught.value)
    assert sshd.fingerprint("ed25519") in message and "man in the middle" in message
    assert f"{known} line 1" in message and "ssh-keygen -R" in message
    assert known.read_text().count("\n") == 1  # not replaced
    assert "Accepted" not in sshd.log_text()[len(before) :]


def test_a_pinned_fingerprint(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin, tmp_path: Path
) -> None:
    nowhere = tmp_path / "none"
    pinned = SSHTransport(
        **ssh_options(known_hosts=nowhere, host_key_fingerprint=sshd.fingerprint(), subsystem="standin")
    )
    with Session(pinned) as session:
        assert session.invoke("Write-Output", 1).output == [1]
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(SSHHostKeyError, match="HOST KEY MISMATCH"):
        SSHTransport(**ssh_options(known_hosts=nowhere, host_key_fingerprint=wrong)).open()


def test_a_revoked_host_key_is_refused(sshd: SSHServer, ssh_options: SSHOptions, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        sshd.known_hosts_line() + "@revoked * " + " ".join(sshd.known_hosts_line().split()[1:]) + "\n"
    )
    with pytest.raises(SSHHostKeyError, match="@revoked"):
        SSHTransport(**ssh_options(known_hosts=known)).open()


# --- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "passphrase"), [("ecdsa", "pass phrase ’x"), ("rsa", None)])
def test_ecdsa_and_rsa_keys_with_a_passphrase_as_a_secret(
    sshd: SSHServer,
    ssh_options: SSHOptions,
    ssh_standin: PwshStandin,
    tmp_path: Path,
    kind: str,
    passphrase: str | None,
) -> None:
    key = keygen(tmp_path / f"id_{kind}", kind, passphrase or "")
    sshd.authorize(key.with_suffix(".pub"))
    secret = None if passphrase is None else Secret(passphrase)
    transport = SSHTransport(**ssh_options(key_file=key, passphrase=secret, subsystem="standin"))
    with Session(transport) as session:
        assert session.invoke("Write-Output", kind).output == [kind]
    if passphrase:
        with pytest.raises(ConfigError, match="is encrypted: give its passphrase"):
            SSHTransport(**ssh_options(key_file=key)).open()
        with pytest.raises(ConfigError, match="wrong passphrase") as caught:
            SSHTransport(**ssh_options(key_file=key, passphrase=Secret("not it"))).open()
        assert "not it" not in str(caught.value)


def test_a_key_in_the_agent(
    sshd: SSHServer,
    ssh_options: SSHOptions,
    ssh_standin: PwshStandin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("ssh-agent") is None:
        pytest.skip("needs ssh-agent (openssh-client)")
    key = keygen(tmp_path / "agent_key", "ed25519")
    sshd.authorize(key.with_suffix(".pub"))
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=30, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        transport = SSHTransport(**ssh_options(key_file=None, agent=None, subsystem="standin"))
        with Session(transport) as session:
            assert session.invoke("Write-Output", "agent").output == ["agent"]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_a_refused_login_names_the_methods_tried_and_offered(
    sshd: SSHServer, ssh_options: SSHOptions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stranger = keygen(tmp_path / "stranger", "ed25519")
    transport = SSHTransport(**ssh_options(key_file=stranger, password=Secret(CANARY)))
    with pytest.raises(SSHAuthenticationError) as caught:
        transport.open()
    error = caught.value
    assert error.offered == ("publickey", "password")
    assert error.tried[0].startswith("publickey (ssh-ed25519 SHA256:") and str(stranger) in error.tried[0]
    assert error.tried[1:] == ("password",)
    assert "tried publickey" in str(error) and "the host offers publickey, password" in str(error)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert CANARY not in str(error) and CANARY not in repr(error) and CANARY not in logged


def test_no_credentials_at_all(ssh_options: SSHOptions) -> None:
    with pytest.raises(SSHAuthenticationError, match="no credentials were given"):
        SSHTransport(**ssh_options(key_file=None, agent=False)).open()


# --- faults ----------------------------------------------------------------------------------------


def test_a_connection_dropped_mid_pipeline_keeps_what_arrived_and_the_next_call_reconnects(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin
) -> None:
    before = ssh_threads()
    proxy = TcpProxy(sshd.port)
    try:
        known = sshd.dir / "known_hosts_proxy"
        known.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
        transport = SSHTransport(**ssh_options(port=proxy.port, known_hosts=known, subsystem="standin"))
        with Session(transport, timeout=60) as session:
            result = session.script("'first'; 'second'; Start-Sleep -Seconds 60; 'never'")
            items = iter(result)
            assert [next(items), next(items)] == ["first", "second"]
            proxy.drop()
            with pytest.raises(TransportError, match=r"SSH connection .* was lost") as caught:
                result.wait()
            assert caught.value.partial is result and result.output == ["first", "second"]
            assert session.invoke("Write-Output", "next").output == ["next"]
            assert transport.connections_opened == 2
    finally:
        proxy.close()
    assert_no_ssh_threads(before)


def test_sshd_restarted_between_calls(ssh_standin: PwshStandin, sshd: SSHServer) -> None:
    directory = make_server_dir("pswrap-sshd-restart-")
    try:
        for name in ("authorized_keys", "standin.json"):
            shutil.copy(sshd.dir / name, directory / name)
        for path in sshd.host_keys.values():
            shutil.copy(path, directory / path.name)
            shutil.copy(path.with_suffix(".pub"), directory / (path.name + ".pub"))
        shutil.copy(sshd.client_key, directory / "id_ed25519")
        shutil.copy(sshd.client_key.with_suffix(".pub"), directory / "id_ed25519.pub")
        server = SSHServer(directory)
        server.standin_config = sshd.standin_config
        known = directory / "known_hosts"
        known.write_text(server.known_hosts_line())
        transport = SSHTransport(
            f"{server.user}@127.0.0.1",
            server.port,
            key_file=server.client_key,
            known_hosts=known,
            subsystem="standin",
            agent=False,
        )
        with Session(transport, timeout=60) as session:
            assert session.invoke("Write-Output", 1).output == [1]
            server.restart()
            assert session.invoke("Write-Output", 2).output == [2]
            assert transport.connections_opened == 2
        server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_no_powershell_subsystem_on_the_host(ssh_options: SSHOptions) -> None:
    with pytest.raises(SSHError, match="has no 'pwsh-nowhere' SSH subsystem") as caught:
        SSHTransport(**ssh_options(subsystem="pwsh-nowhere")).open()
    assert "'Subsystem pwsh-nowhere /usr/bin/pwsh -sshs -NoLogo'" in str(caught.value)
    assert "sshd_config" in str(caught.value)


def test_no_pwsh_on_the_host(ssh_options: SSHOptions) -> None:
    with pytest.raises(TransportError, match="exit code 127: command not found") as caught:
        SSHTransport(**ssh_options(subsystem="nopwsh")).open()
    assert "could not open a PowerShell session" in str(caught.value)
    assert "'Subsystem nopwsh' line" in str(caught.value)
    assert caught.value.stderr_tail is None  # sshd discards a subsystem's stderr


def test_a_host_that_accepts_the_connection_and_says_nothing(ssh_options: SSHOptions) -> None:
    silent = SilentListener()
    try:
        transport = SSHTransport(**ssh_options(port=silent.port, connect_timeout=2))
        with pytest.raises(SSHError, match="did not complete an SSH handshake within 2 s"):
            transport.open()
    finally:
        silent.close()


def test_a_subsystem_that_never_opens_the_session(ssh_standin: PwshStandin, ssh_options: SSHOptions) -> None:
    ssh_standin.configure(faults={"hang_on_start": True})
    before = ssh_threads()
    transport = SSHTransport(**ssh_options(subsystem="standin", open_timeout=2, stop_grace=1))
    with pytest.raises(TransportError, match="did not open a PowerShell session within 2 s"):
        transport.open()
    transport.close()
    # The host did start it (sshd may do so late on a loaded machine: wait, so that the next test's
    # stand-in configuration is not the one it reads).
    deadline = time.monotonic() + 30
    while not ssh_standin.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(ssh_standin.processes()) == 1
    assert_no_ssh_threads(before)


def test_pwsh_dying_mid_invocation_on_the_host(ssh_standin: PwshStandin, ssh_options: SSHOptions) -> None:
    ssh_standin.configure(
        faults={"processes": [1], "exit_after_objects": 2, "exit_code": 3, "stderr": "fatal: out of memory"}
    )
    with Session(SSHTransport(**ssh_options(subsystem="standin")), timeout=60) as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3, 4])
        with pytest.raises(TransportError, match="exited with code 3 while running Write-Output") as caught:
            list(result)
        assert caught.value.stderr_tail is None  # sshd discards a subsystem's stderr
        assert result.output == [1, 2]
        assert session.invoke("Write-Output", "next").output == ["next"]


def test_pwsh_rejecting_what_it_was_sent_reports_its_own_words(
    ssh_standin: PwshStandin, ssh_options: SSHOptions
) -> None:
    """pwsh -sshs writes its fatal error to stdout as __NamedPipeError__:…; that is what the user reads."""
    transport = SSHTransport(**ssh_options(subsystem="standin"))
    with Session(transport, timeout=60) as session:
        result = session.script("'started'; Start-Sleep -Seconds 30")
        assert next(iter(result)) == "started"
        connection = transport._connection
        assert connection is not None
        connection.pipe.write(
            b"<DataAck PSGuid='00000000-0000-0000-0000-000000000000' />\n"
        )  # a client never acks
        with pytest.raises(
            TransportError, match='pwsh reported an error and ended the session: An unknown element "DataAck"'
        ):
            result.wait()
        assert session.invoke("Write-Output", "next").output == ["next"]


def test_an_idle_connection_sends_keepalives_and_a_frozen_one_is_replaced(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin
) -> None:
    proxy = TcpProxy(sshd.port)
    try:
        known = sshd.dir / "known_hosts_proxy"
        known.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
        transport = SSHTransport(
            **ssh_options(port=proxy.port, known_hosts=known, subsystem="standin", keepalive=1)
        )
        with Session(transport, timeout=60) as session:
            assert session.invoke("Write-Output", 1).output == [1]
            sent = proxy.upstream_bytes
            deadline = time.monotonic() + 30
            while proxy.upstream_bytes == sent and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proxy.upstream_bytes > sent  # keepalive messages while no call runs
            proxy.freeze()  # the network now swallows everything on that connection
            # the call's channel is never acknowledged: after its timeout the connection is replaced
            assert session.invoke("Write-Output", 2, timeout=5).output == [2]
            assert transport.connections_opened == 2
    finally:
        proxy.close()


def test_a_jump_host(sshd: SSHServer, ssh_options: SSHOptions, ssh_standin: PwshStandin) -> None:
    jump = f"{sshd.user}@127.0.0.1:{sshd.port}"
    with Session(SSHTransport(**ssh_options(proxy_jump=jump, subsystem="standin"))) as session:
        assert session.invoke("Write-Output", "via jump").output == ["via jump"]
    assert "direct-tcpip" in sshd.log_text() or "Accepted" in sshd.log_text()


# --- secrets ---------------------------------------------------------------------------------------


def test_secrets_reach_neither_the_host_process_nor_logs(
    ssh_standin: PwshStandin, ssh_options: SSHOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = SSHTransport(**ssh_options(subsystem="standin"))
    with Session(transport) as session:
        result = session.script(
            "param($Token, $Password) $Token.Length; $Password.Length",
            Token=Secret(CANARY),
            Password=SecureString(CANARY),
        )
        assert result.output == [len(CANARY), len(CANARY)]
    (process,) = ssh_standin.processes()
    assert CANARY not in " ".join(process.argv)
    assert not any(CANARY in key or CANARY in value for key, value in process.env.items())
    assert not any(CANARY in script for script in process.scripts)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY not in logged


def test_the_timeout_of_a_host_that_ignores_stop_closes_the_connection(
    ssh_standin: PwshStandin, ssh_options: SSHOptions
) -> None:
    ssh_standin.configure(faults={"processes": [1], "hang_after_objects": 1, "stderr": "stuck"})
    transport = SSHTransport(**ssh_options(subsystem="standin", stop_grace=1))
    with Session(transport) as session:
        result = session.invoke("Write-Output", InputObject=[1, 2, 3], timeout=2)
        with pytest.raises(InvocationTimeout, match="pswrap closed the SSH connection"):
            result.wait()
        assert result.output == [1]
        assert session.invoke("Write-Output", "next").output == ["next"]
        assert transport.connections_opened == 2


def test_a_password_login_as_an_unprivileged_user(
    sshd: SSHServer, ssh_options: SSHOptions, ssh_user: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The login itself (this test Python may not be runnable by another user, so no session is opened)."""
    caplog.set_level(logging.DEBUG)
    name, password = ssh_user
    options = ssh_options(
        host=f"{name}@127.0.0.1", key_file=None, password=Secret(password), subsystem="nopwsh"
    )
    report: dict[str, str] = {}
    SSHTransport(**options).connect_pipe(report).release()
    assert report["login"] == "password"
    assert f"Accepted password for {name} from 127.0.0.1" in sshd.log_text()
    wrong = ssh_options(host=f"{name}@127.0.0.1", key_file=None, password=Secret("not-" + password))
    with pytest.raises(SSHAuthenticationError) as caught:
        SSHTransport(**wrong).open()
    assert caught.value.tried == ("password",) and "tried password" in str(caught.value)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert password not in logged and password not in str(caught.value) and password not in sshd.log_text()


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": "https://runner"}, "not a host name, user@host\\[:port\\] or an ssh:// URL"),
        ({"host": "ssh://svc:pw@runner"}, "no path, no password"),
        ({"host": "runner", "port": 70000}, "is not a TCP port"),
        ({"host": "ssh://runner:2222", "port": 22}, "says port 2222 but port is 22"),
        ({"host": "a@runner", "username": "b"}, "names user 'a' but username is 'b'"),
        ({"host": "runner", "host_key_fingerprint": "MD5:ab:cd"}, "not a SHA256 fingerprint"),
        ({"host": "runner", "passphrase": "x"}, "a passphrase is set but no key_file is"),
        ({"host": "runner", "key_file": "/nonexistent/key"}, "is not a file"),
        ({"host": "runner", "subsystem": "power shell"}, "is not a subsystem name"),
        ({"host": "runner", "pool_size": 0}, "pool_size must be a whole number of at least 1"),
        ({"host": "runner", "connect_timeout": 0}, "connect_timeout must be a positive number"),
        ({"host": "runner", "proxy_jump": "http://jump"}, "is not a host name"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSHTransport(**options)  # type: ignore[arg-type]


def test_a_host_in_every_spelling() -> None:
    for spelling in ("ssh://svc@runner:2222", "svc@runner:2222", "runner"):
        transport = SSHTransport(spelling, username="svc", port=2222 if spelling == "runner" else None)
        assert transport.url == "ssh://svc@runner:2222"
    assert SSHTransport("[::1]:2200", username="u").url == "ssh://u@[::1]:2200"


def test_a_host_that_refuses_the_connection(ssh_options: SSHOptions) -> None:
    silent = SilentListener()
    port = silent.port
    silent.close()  # nothing listens there any more
    with pytest.raises(SSHError, match=f"could not connect to .*127.0.0.1:{port}"):
        SSHTransport(**ssh_options(port=port)).open()
