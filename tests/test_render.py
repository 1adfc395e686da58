"""Templates: built-ins that parse, parameters bound not rendered, user folders, and `pswrap render`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pswrap import RenderError, Script, Secret, Templates, render_template
from pswrap.cli import main
from pswrap.render import builtin_template_dir
from tests.psquote import decode_string_expression, errors, node_text, parse, string_literals

ROOT = Path(__file__).resolve().parent.parent
CANARY = "eyJ0eXAiOiJKV1QiLCJjYW5hcnkiOiJ0b2tlbi04ZjNhIn0.canary"

REPRESENTATIVE = {
    "preamble": [{}, {"error_action": "Continue", "progress": "Continue"}],
    "exchange-connect": [
        {"AccessToken": Secret(CANARY), "Organization": "contoso.onmicrosoft.com"},
        {
            "AccessToken": Secret(CANARY),
            "Organization": "contoso.onmicrosoft.com",
            "environment_name": "O365USGovGCCHigh",
            "command_names": ["Get-Mailbox", "Set-Mailbox", "Get-Recipient"],
            "skip_format_data": True,
            "page_size": 1000,
        },
        {"AccessToken": Secret(CANARY), "Organization": "x", "command_names": ["Get-Mailbox"]},
    ],
    "exchange-disconnect": [{}],
    "exchange-invoke": [
        {
            "AccessToken": Secret(CANARY),
            "Organization": "contoso.onmicrosoft.com",
            "PswrapCommand": "Get-Mailbox",
            "PswrapArguments": [],
            "PswrapParameters": {"ResultSize": 5},
        }
    ],
}


def test_every_builtin_template_is_known_and_tested() -> None:
    assert set(Templates().names()) == set(REPRESENTATIVE)


@pytest.mark.parametrize(("name", "values"), [(n, v) for n, vs in REPRESENTATIVE.items() for v in vs])
def test_builtin_templates_render_to_valid_powershell_without_secrets(
    name: str, values: dict[str, object]
) -> None:
    script = render_template(name, **values)
    assert not errors(parse(script.text)), script.text
    assert CANARY not in script.text and CANARY not in repr(script) and CANARY not in script.redacted()
    for node in string_literals(parse(script.text)):
        decode_string_expression(node_text(node))  # every literal is whole under PowerShell's rule


def test_connect_binds_token_and_organization_and_renders_options() -> None:
    token = Secret(CANARY)
    script = render_template(
        "exchange-connect",
        AccessToken=token,
        Organization="contoso.onmicrosoft.com",
        command_names=["Get-Mailbox"],
    )
    assert script.parameters == {"AccessToken": token, "Organization": "contoso.onmicrosoft.com"}
    lines = script.text.splitlines()
    assert lines[0] == "param($AccessToken, $Organization)"
    assert "Import-Module ExchangeOnlineManagement -MinimumVersion 3.1.0 -ErrorAction Stop" in lines
    connect = next(line for line in lines if line.startswith("Connect-ExchangeOnline"))
    assert "-AccessToken $AccessToken -Organization $Organization -ShowBanner:$false" in connect
    assert connect.endswith("-CommandName @(,'Get-Mailbox')")
    assert "contoso" not in script.text  # bound, not rendered


def test_disconnect_never_prompts() -> None:
    assert render_template("exchange-disconnect").text.strip() == "Disconnect-ExchangeOnline -Confirm:$false"


def test_a_declared_parameter_cannot_be_rendered(tmp_path: Path) -> None:
    (tmp_path / "leak.ps1.j2").write_text('{{ param_block("Token") }}\nWrite-Output {{ Token }}\n')
    with pytest.raises(RenderError, match=r"write \$Token in the template") as caught:
        render_template("leak", template_dirs=[tmp_path], Token=Secret(CANARY))
    assert CANARY not in str(caught.value)


def test_a_secret_passed_as_a_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leak.ps1.j2").write_text("Write-Output {{ token }}\n")
    with pytest.raises(RenderError, match="declare it as a parameter") as caught:
        render_template("leak", template_dirs=[tmp_path], token=Secret(CANARY))
    assert CANARY not in str(caught.value)


def test_missing_values_and_parameters_are_named(tmp_path: Path) -> None:
    (tmp_path / "t.ps1.j2").write_text('{{ param_block("Token") }}\nGet-Mailbox -Identity {{ identity }}\n')
    with pytest.raises(RenderError, match="'identity' is undefined"):
        render_template("t", template_dirs=[tmp_path], Token="x")
    with pytest.raises(RenderError, match="needs run-time parameter"):
        render_template("t", template_dirs=[tmp_path], identity="bob")


def test_identifiers_are_admitted_only_when_strict(tmp_path: Path) -> None:
    (tmp_path / "cmd.ps1.j2").write_text("{{ cmdlet | identifier }} -{{ param | identifier }} {{ value }}\n")
    text = render_template(
        "cmd", template_dirs=[tmp_path], cmdlet="Get-Mailbox", param="Identity", value="bob"
    ).text
    assert text == "Get-Mailbox -Identity 'bob'\n"
    for hostile in [
        "Get-Mailbox; Remove-Mailbox",
        "Get-Mailbox x",
        "$(x)",
        "a-b-c",
        "",
        "1abc",
        "Get-Mailbox’",
    ]:
        with pytest.raises(RenderError, match="not a plain PowerShell name"):
            render_template("cmd", template_dirs=[tmp_path], cmdlet=hostile, param="Identity", value="x")


def test_filters_cannot_emit_raw_text(tmp_path: Path) -> None:
    (tmp_path / "f.ps1.j2").write_text(
        "Write-Output {{ x | safe }} {{ x | join(', ') }} {{ '%s' | format(x) }}\n"
    )
    text = render_template("f", template_dirs=[tmp_path], x="a'; Remove-Mailbox b; '").text
    tree = parse(text)
    assert not errors(tree)
    assert len(list(string_literals(tree))) == 3  # each filter's result is still one quoted literal


def test_user_folders_override_and_add_templates(tmp_path: Path) -> None:
    (tmp_path / "exchange-disconnect.ps1.j2").write_text(
        "Disconnect-ExchangeOnline -Confirm:$false -Verbose\n"
    )
    (tmp_path / "mine.ps1.j2").write_text("Get-Mailbox -ResultSize {{ size }}\n")
    templates = Templates([tmp_path])
    assert "mine" in templates.names() and "exchange-connect" in templates.names()
    assert templates.render("exchange-disconnect").text.endswith("-Verbose\n")
    assert templates.render("mine", size=5).text == "Get-Mailbox -ResultSize 5\n"
    with pytest.raises(RenderError, match="does not exist"):
        Templates([tmp_path / "nope"])


def test_script_repr_hides_parameter_values() -> None:
    script = Script("param($Token)", {"Token": "plain-canary-value"}, "t")
    assert "plain-canary-value" not in repr(script) and "Token" in repr(script)


def test_templates_ship_inside_the_wheel(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    wheel = Path(next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    for template in REPRESENTATIVE:
        assert f"pswrap/templates/{template}.ps1.j2" in names
    code = "from pswrap.render import builtin_template_dir; print(builtin_template_dir())"
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(found) == tmp_path / "site" / "pswrap" / "templates"
    assert builtin_template_dir() == ROOT / "templates"  # a checkout finds them beside the package


def test_cli_render_redacts_parameters_and_reads_json_values() -> None:
    result = CliRunner().invoke(
        main,
        ["render", "exchange-connect", "--var", f"AccessToken={CANARY}", "--var", "Organization=contoso",
         "--var", 'command_names:json=["Get-Mailbox","Get-Recipient"]', "--var", "page_size:json=100"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output and "contoso" not in result.output
    assert "$AccessToken = <redacted>" in result.output
    assert "-CommandName @('Get-Mailbox', 'Get-Recipient') -PageSize 100" in result.output
    assert not errors(parse(result.output))


def test_cli_render_lists_and_explains_errors(tmp_path: Path) -> None:
    listed = CliRunner().invoke(main, ["render", "--list"])
    assert listed.exit_code == 0 and "exchange-connect" in listed.output.split()
    missing = CliRunner().invoke(main, ["render", "nope"])
    assert missing.exit_code == 2 and "no template named 'nope'" in missing.stderr
    bad = CliRunner().invoke(main, ["render", "preamble", "--var", "x:json=[1,"])
    assert bad.exit_code == 2 and "not JSON" in bad.output
    (tmp_path / "t.ps1.j2").write_text("Write-Output {{ items }}\n")
    out = CliRunner().invoke(
        main, ["render", "t", "--template-dir", str(tmp_path), "--var", 'items:json=["a’b", 2]']
    )
    assert out.output == "Write-Output @('a’’b', 2)\n"
    assert json.loads('["a’b", 2]')  # the JSON itself was fine
