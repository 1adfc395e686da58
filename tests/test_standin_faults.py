"""The stand-in's fault switches, its recording, its config and extensions, and the fixture itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import psrpcore
from psrpcore import types as ps

from pswrap.transports.oneshot import BOOTSTRAP
from tests.fixtures.pwsh import PwshStandin
from tests.standins.powershell.client import PsrpTestClient
from tests.standins.powershell.clixml import CIPHER
from tests.test_standin_language import request
from tests.test_standin_oneshot import ONESHOT, encoded, oneshot

SERVER = ["-NoLogo", "-NoProfile", "-s"]


def wait_for_event(standin: PwshStandin, kind: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in standin.processes():
            for event in process.events:
                if event["kind"] == kind:
                    return event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event recorded")


def test_the_fixture_puts_the_stand_in_first_on_path(pwsh_standin: PwshStandin) -> None:
    assert shutil.which("pwsh") == str(pwsh_standin.executable)
    result = subprocess.run(["pwsh", "-Version"], capture_output=True, timeout=60)
    assert result.stdout.startswith(b"PowerShell 7.")


def test_die_on_start_in_server_mode(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(
        faults={"die_on_start": True, "stderr": "pwsh: cannot load the runtime", "exit_code": 3}
    )
    process = pwsh_standin.spawn(*SERVER)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3
    assert stdout == b"" and b"pwsh: cannot load the runtime" in stderr


def test_die_on_start_in_one_shot_mode(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"die_on_start": True, "stderr": "early death"})
    result = oneshot(pwsh_standin, request(Script="'x'"))
    assert result.returncode == 1 and result.stdout == b"" and b"early death" in result.stderr


def test_hang_on_start_stays_alive_and_silent(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"hang_on_start": True})
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    try:
        wait_for_event(pwsh_standin, "fault")
        client.pool.open()
        client.send_pending()
        assert client.process.poll() is None
        assert client.packets == []
    finally:
        client.kill()


def test_exit_after_objects_in_server_mode(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"exit_after_objects": 2, "stderr": "pwsh died mid-pipeline"})
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    try:
        client.open()
        pipeline = client.powershell(script="1..5")
        client.start(pipeline)
        assert client.process.wait(timeout=30) == 1
        while client.pump(0.05):
            pass
        assert client.output(pipeline) == [1, 2]
        assert client.state_event(pipeline) is None
        assert "pwsh died mid-pipeline" in client.stderr
    finally:
        client.kill()


def test_exit_after_objects_in_one_shot_mode_truncates_the_document(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"exit_after_objects": 2, "exit_code": 137})
    result = oneshot(pwsh_standin, request(Script="1..5"))
    assert result.returncode == 137
    text = result.stdout.decode()
    assert text.count('S="Output"') == 2 and not text.endswith("</Objs>")


def test_hang_after_objects_stops_answering(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"hang_after_objects": 1})
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    try:
        client.open()
        pipeline = client.powershell(script="'one'; 'two'")
        client.start(pipeline)
        wait_for_event(pwsh_standin, "fault")
        while client.pump(0.2):
            if not client._incoming.qsize():
                break
        assert client.output(pipeline) == ["one"]
        assert client.process.poll() is None
    finally:
        client.kill()


def test_garbage_after_objects_writes_a_line_that_is_no_packet(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"garbage_after_objects": 1, "garbage": "Welcome to the machine"})
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    try:
        client.open()
        pipeline = client.powershell(script="'one'; 'two'")
        client.run(pipeline)
        kinds = [p.kind for p in client.packets]
        assert "garbage" in kinds
        [garbage] = [p for p in client.packets if p.kind == "garbage"]
        assert garbage.data == b"Welcome to the machine"
        assert client.output(pipeline) == ["one", "two"]
    finally:
        client.kill()


def test_faults_can_target_only_the_first_process(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"processes": [1], "die_on_start": True})
    assert oneshot(pwsh_standin, request(Script="'x'")).returncode == 1
    second = oneshot(pwsh_standin, request(Script="'x'"))
    assert second.returncode == 0
    assert ps.deserialize_clixml(second.stdout.decode(), CIPHER) == ["x"]


def test_recording_of_argv_environment_stdin_scripts_and_exit(
    pwsh_standin: PwshStandin, monkeypatch: object
) -> None:
    canary = "CANARY-7f3a9c"
    stdin = request(Script='param($Value) "got $Value"', Parameters=_parameters(Value=canary))
    result = subprocess.run(
        [str(pwsh_standin.executable), *ONESHOT, "-EncodedCommand", encoded(BOOTSTRAP)],
        input=stdin.encode(),
        capture_output=True,
        env=pwsh_standin.env(PSWRAP_TEST_MARKER="marker-value"),
        timeout=60,
    )
    assert result.returncode == 0
    [process] = pwsh_standin.processes()
    assert process.argv == ["pwsh", *ONESHOT, "-EncodedCommand", encoded(BOOTSTRAP)]
    assert process.env["PSWRAP_TEST_MARKER"] == "marker-value"
    assert process.stdin == stdin.encode()
    assert process.scripts == [BOOTSTRAP, 'param($Value) "got $Value"']
    assert process.exit_code == 0 and process.mode == "oneshot"
    assert canary not in " ".join(process.argv) and canary not in json.dumps(process.env)
    assert canary.encode() in process.stdin


def test_server_mode_records_every_stdin_byte(pwsh_standin: PwshStandin) -> None:
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    sent = bytearray()
    original = client.write

    def write(data: bytes) -> None:
        sent.extend(data)
        original(data)

    client.write = write  # type: ignore[method-assign]
    client.open()
    pipeline = client.powershell(script="'recorded'")
    client.run(pipeline)
    assert client.finish() == 160
    [process] = pwsh_standin.processes()
    assert process.stdin == bytes(sent)
    assert process.scripts == ["'recorded'"]
    assert process.exit_code == 4000
    assert process.mode == "server"


def test_an_unknown_config_key_fails_loudly(pwsh_standin: PwshStandin) -> None:
    pwsh_standin.configure(faults={"explode": True})
    result = subprocess.run([str(pwsh_standin.executable), "-Version"], capture_output=True,
                            env=pwsh_standin.env(), timeout=60)  # fmt: skip
    assert result.returncode == 70 and b"unknown stand-in fault switches: ['explode']" in result.stderr


def test_extensions_register_commands_with_per_runspace_state_and_switches(
    pwsh_standin: PwshStandin, tmp_path: Path
) -> None:
    module = tmp_path / "standin_things.py"
    module.write_text(
        textwrap.dedent("""
        from psrpcore import types as ps
        from tests.standins.powershell.commands import Parameter

        def register(table):
            @table.register("Set-Thing", parameters=[Parameter("Value", position=0, mandatory=True)])
            def set_thing(ctx, Value):
                ctx.state("things")["value"] = Value

            @table.register("Get-Thing", cmdlet_type="Contoso.GetThingCommand")
            def get_thing(ctx):
                if ctx.switches.get("things_broken"):
                    ctx.throw(ctx.error_record("things are broken", error_id="Broken",
                                               category=ps.ErrorCategory.ResourceUnavailable))
                ctx.write_output(ctx.state("things").get("value"))
    """)
    )
    pwsh_standin.configure(extensions=["standin_things"], switches={"things_broken": False})
    env = pwsh_standin.env(PYTHONPATH=str(tmp_path))
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER, env=env), max_runspaces=2)
    try:
        client.open()
        setter = client.powershell(command="Set-Thing", Value="kept")
        client.run(setter)
        getter = client.powershell(command="Get-Thing")
        client.run(getter)
        assert client.output(getter) == ["kept"]
    finally:
        client.kill()
    pwsh_standin.configure(extensions=["standin_things"], switches={"things_broken": True})
    broken = subprocess.run([str(pwsh_standin.executable), "-OutputFormat", "xml", "-Command",
                             "try { Get-Thing } catch { $_.FullyQualifiedErrorId }"],
                            capture_output=True, env=env, timeout=60)  # fmt: skip
    assert ps.deserialize_clixml(broken.stdout.decode(), CIPHER) == ["Broken,Contoso.GetThingCommand"]


def _parameters(**values: object) -> ps.PSDict:
    table = ps.PSDict()
    for key, value in values.items():
        table[key] = value
    return table


def test_information_records_reach_the_client_with_their_fields(pwsh_standin: PwshStandin) -> None:
    client = PsrpTestClient(pwsh_standin.spawn(*SERVER))
    try:
        client.open()
        pipeline = client.powershell(script="Write-Host 'a' -NoNewline")
        client.run(pipeline)
        [info] = client.of(pipeline, psrpcore.InformationRecordEvent)
        assert info.record.MessageData.NoNewLine is True
    finally:
        client.kill()
