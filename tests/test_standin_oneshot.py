"""The stand-in in one-shot mode, compared with what real pwsh writes (the corpus captures)."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from psrpcore import types as ps

from tests.fixtures.pwsh import PwshStandin
from tests.standins.powershell.clixml import CIPHER
from tests.test_standin_language import BOOTSTRAP, request

ONESHOT = ["-NoLogo", "-NoProfile", "-NonInteractive", "-InputFormat", "Text", "-OutputFormat", "xml"]
OBJS_OPEN = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'


def encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def oneshot(standin: PwshStandin, stdin: str, script: str = BOOTSTRAP) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(standin.executable), *ONESHOT, "-EncodedCommand", encoded(script)],
        input=stdin.encode("ascii", errors="xmlcharrefreplace"),
        capture_output=True,
        env=standin.env(),
        timeout=60,
    )


def document(raw: bytes) -> ElementTree.Element:
    text = raw.decode("utf-8")
    assert text.startswith("#< CLIXML\n" + OBJS_OPEN), text[:120]
    body = text.split("\n", 1)[1]
    return ElementTree.fromstring(
        body.replace(' xmlns="http://schemas.microsoft.com/powershell/2004/04"', "", 1)
    )


def shape(element: ElementTree.Element) -> tuple[Any, ...]:
    """Tags, attribute names and children: what must match between real and stand-in CLIXML."""
    return (element.tag, tuple(sorted(element.attrib)), tuple(shape(child) for child in element))


def corpus_document(path: Path) -> ElementTree.Element:
    text = path.read_text(encoding="utf-8-sig")
    body = text.split("\n", 1)[1] if text.startswith("#< CLIXML") else text
    return ElementTree.fromstring(re.sub(r'\sxmlns="[^"]+"', "", body, count=1))


def test_output_is_one_document_each_object_marked_output(pwsh_standin: PwshStandin) -> None:
    script = (
        "'text'; 42; [pscustomobject]@{ A = 1 }; [pscustomobject]@{ A = 2 }; @{ K = 'v' }; "
        "[guid]'0a0b0c0d-0000-0000-0000-000000000001'"
    )
    result = oneshot(pwsh_standin, request(Script=script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"</Objs>")
    root = document(result.stdout)
    assert [child.get("S") for child in root] == ["Output"] * 6
    assert [child.tag for child in root] == ["S", "I32", "Obj", "Obj", "Obj", "G"]
    first, second = root[2], root[3]
    # RefIds and type-name references span the whole document, as in PowerShell.
    assert first.get("RefId") == "0" and second.get("RefId") == "1" and root[4].get("RefId") == "2"
    assert first.find("TN") is not None and second.find("TN") is None
    assert second.find("TNRef").get("RefId") == first.find("TN").get("RefId")  # type: ignore[union-attr]
    values = ps.deserialize_clixml(result.stdout.decode(), CIPHER)
    assert values[:2] == ["text", 42] and values[2].A == 1 and values[3].A == 2 and values[4]["K"] == "v"


def test_records_merged_into_output_carry_no_stream_note(pwsh_standin: PwshStandin) -> None:
    """As real pwsh 7.6 writes them: the record's remoting form, no ``writeErrorStream`` note."""
    script = "& { Write-Error 'e'; Write-Warning 'w'; Write-Host 'h'; Write-Verbose 'v' -Verbose; Write-Debug 'd' -Debug } *>&1"
    result = oneshot(pwsh_standin, request(Script=script))
    root = document(result.stdout)
    assert [obj.find("TN/T").text if obj.find("TN") is not None else None for obj in root] == [  # type: ignore[union-attr]
        "System.Management.Automation.ErrorRecord",
        "System.Management.Automation.WarningRecord",
        "System.Management.Automation.InformationRecord",
        "System.Management.Automation.VerboseRecord",
        "System.Management.Automation.DebugRecord",
    ]
    names = [member.get("N") or "" for obj in root for member in obj.iter()]
    assert not [name for name in names if name.lower().startswith("write")]
    error = ps.deserialize_clixml(result.stdout.decode(), CIPHER)[0]
    assert error.CategoryInfo.PSObject.to_string == "NotSpecified: (:) [Write-Error], WriteErrorException"
    assert error.FullyQualifiedErrorId == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert result.stderr == b""


def test_records_go_to_stderr_information_as_the_whole_record(pwsh_standin: PwshStandin) -> None:
    """Real pwsh -OutputFormat xml: Write-Information reaches stderr even under SilentlyContinue."""
    result = oneshot(pwsh_standin, "", script="Write-Warning 'w'; Write-Information 'i'; 'o'")
    assert document(result.stdout)[0].text == "o"
    err = document(result.stderr)
    assert [(child.tag, child.get("S")) for child in err] == [("S", "warning"), ("Obj", "information")]
    assert err[1].find("TN/T").text == "System.Management.Automation.InformationRecord"  # type: ignore[union-attr]


def test_progress_goes_to_stderr_in_the_corpus_shape(pwsh_standin: PwshStandin, corpus_dir: Path) -> None:
    script = "Write-Progress -Activity 'Preparing' -Status ' ' -Completed; Write-Progress -Activity 'Again' -Status ' '"
    result = oneshot(pwsh_standin, request(Script=script, ProgressPreference="Continue"))
    assert result.returncode == 0
    ours = document(result.stderr)
    real = corpus_document(corpus_dir / "pypsrp-sanitise-with-error.xml")
    real_progress = [child for child in real if child.get("S") == "progress"]
    assert [shape(child) for child in ours] == [shape(child) for child in real_progress]
    assert ours[0].find("MS/PR/T").text == "Completed"  # type: ignore[union-attr]
    assert ours[1].find("TNRef").get("RefId") == "0"  # type: ignore[union-attr]


def test_no_progress_when_the_request_silences_it(pwsh_standin: PwshStandin) -> None:
    result = oneshot(pwsh_standin, request(Script="Write-Progress -Activity a; 'x'"))
    assert result.stderr == b"" and document(result.stdout)[0].text == "x"


def test_an_error_escaping_the_bootstrap_is_error_text_on_stderr(
    pwsh_standin: PwshStandin, corpus_dir: Path
) -> None:
    broken = BOOTSTRAP.replace("catch {", "catch {{", 1)
    result = oneshot(pwsh_standin, request(Script="'never'"), script=broken)
    assert result.returncode == 1
    assert result.stdout == b""
    ours = document(result.stderr)
    real = [
        child for child in corpus_document(corpus_dir / "pypsrp-sanitise-with-error.xml") if child.tag == "S"
    ]
    assert {shape(child) for child in ours} == {shape(child) for child in real}
    assert all(child.text.endswith("_x000D__x000A_") for child in list(ours) + real)  # type: ignore[union-attr]
    lines = [child.text.removesuffix("_x000D__x000A_") for child in ours]  # type: ignore[union-attr]
    assert lines[0].startswith("At line:")
    assert "    + CategoryInfo          : ParserError: (:) [], ParentContainsErrorRecordException" in lines
    assert "    + FullyQualifiedErrorId : MissingEndCurlyBrace" in lines
    assert lines[-1] == " " and real[-1].text == " _x000D__x000A_"


def test_a_terminating_error_is_the_bootstrap_wrapper_and_exit_1(pwsh_standin: PwshStandin) -> None:
    result = oneshot(pwsh_standin, request(Script="'before'; throw 'it broke'"))
    assert result.returncode == 1
    before, wrapper = ps.deserialize_clixml(result.stdout.decode(), CIPHER)
    assert before == "before"
    assert wrapper.PswrapTerminatingError.Exception.Message == "it broke"
    assert result.stdout.endswith(b"</Objs>")


def test_exit_n_in_the_script_is_the_exit_code(pwsh_standin: PwshStandin) -> None:
    result = oneshot(pwsh_standin, request(Script="'out'; exit 5; 'never'"))
    assert result.returncode == 5
    assert ps.deserialize_clixml(result.stdout.decode(), CIPHER) == ["out"]


def test_prompts_fail_in_non_interactive_mode(pwsh_standin: PwshStandin) -> None:
    result = oneshot(pwsh_standin, request(Script="Read-Host 'Name'"))
    [wrapper] = ps.deserialize_clixml(result.stdout.decode(), CIPHER)
    message = wrapper.PswrapTerminatingError.Exception.Message
    assert message == "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available."
    assert result.returncode == 1


def test_each_object_is_written_as_it_is_produced(pwsh_standin: PwshStandin) -> None:
    process = subprocess.Popen(
        [str(pwsh_standin.executable), *ONESHOT, "-EncodedCommand", encoded(BOOTSTRAP)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pwsh_standin.env(),
    )  # fmt: skip
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request(Script="'first'; Start-Sleep 60; 'second'").encode())
        process.stdin.close()
        seen = b""
        while b'<S S="Output">first</S>' not in seen:
            chunk = process.stdout.read1(4096)  # type: ignore[attr-defined]
            assert chunk, f"stdout ended before the first object: {seen!r}"
            seen += chunk
        assert process.poll() is None  # still sleeping: the object came before the process ended
    finally:
        process.kill()
        process.wait(timeout=30)


def test_command_mode_with_and_without_xml(pwsh_standin: PwshStandin) -> None:
    text = subprocess.run([str(pwsh_standin.executable), "-NoProfile", "-Command", "Write-Output", "hi"],
                          capture_output=True, env=pwsh_standin.env(), timeout=60)  # fmt: skip
    assert text.returncode == 0 and text.stdout == b"hi\n"
    xml = subprocess.run([str(pwsh_standin.executable), "-OutputFormat", "xml", "-c", "'a'; Write-Warning w"],
                         capture_output=True, env=pwsh_standin.env(), timeout=60)  # fmt: skip
    assert document(xml.stdout)[0].text == "a"
    assert [(c.tag, c.get("S"), c.text) for c in document(xml.stderr)] == [("S", "warning", "w")]


def test_an_unknown_argument_is_rejected_like_pwsh(pwsh_standin: PwshStandin) -> None:
    result = subprocess.run([str(pwsh_standin.executable), "-Bogus"], capture_output=True, env=pwsh_standin.env(),
                            timeout=60)  # fmt: skip
    assert result.returncode == 64
    assert b"The argument '-Bogus' is not recognized as the name of a script file." in result.stderr


@pytest.mark.parametrize("flag", ["-EncodedCommand", "-enc", "-e", "-ec"])
def test_encoded_command_spellings(pwsh_standin: PwshStandin, flag: str) -> None:
    result = subprocess.run([str(pwsh_standin.executable), "-of", "xml", flag, encoded("'ok'")],
                            capture_output=True, env=pwsh_standin.env(), timeout=60)  # fmt: skip
    assert ps.deserialize_clixml(result.stdout.decode(), CIPHER) == ["ok"]
