"""Templates: built-in scripts that parse, parameters that never reach the text, errors that say where."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pswrap import RenderError, Script, Templates, render_template
from pswrap.objects import SecureString
from pswrap.render import builtin_template_dir
from pswrap.secret import Secret
from tests.psquote import command_names, parse, problems, split_strings, string_literals

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = json.loads((Path(__file__).parent / "data" / "injection_payloads.json").read_text("utf-8"))[
    "payloads"
]
CANARY = "eyJ0eXAiOiJKV1QiLCJjYW5hcnkiOiJyZW5kZXIifQ.canary-token-5f3a9"


@pytest.fixture(scope="module")
def builtin() -> Templates:
    return Templates()


def write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ps1.j2"
    path.write_text(source, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The built-in templates
# --------------------------------------------------------------------------------------------------

REPRESENTATIVE: dict[str, list[dict[str, Any]]] = {
    "preamble": [{}, {"ErrorActionPreference": "Continue", "ProgressPreference": "Continue"}],
    "exchange-connect": [
        {},
        {"AccessToken": Secret(CANARY, "access token"), "Organization": "contoso.onmicrosoft.com"},
        {
            "AccessToken": Secret(CANARY, "access token"),
            "Organization": "contoso.onmicrosoft.com",
            "ExchangeEnvironmentName": "O365USGovGCCHigh",
            "CommandName": ["Get-Mailbox", "Set-Mailbox", "Get-EXOMailbox"],
            "SkipLoadingFormatData": True,
            "PageSize": 1000,
        },
        {"CommandName": ["Get-Mailbox"], "SkipLoadingFormatData": False, "PageSize": None},
    ],
    "exchange-connect-steps": [{}, {"CommandName": ["Get-Mailbox"], "PageSize": 100}],
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


def test_every_builtin_template_has_representative_values(builtin: Templates) -> None:
    assert sorted(REPRESENTATIVE) == builtin.names()


@pytest.mark.parametrize(
    ("name", "values"),
    [(name, values) for name, cases in REPRESENTATIVE.items() for values in cases],
    ids=[f"{name}-{i}" for name, cases in REPRESENTATIVE.items() for i in range(len(cases))],
)
def test_builtin_templates_parse_without_error_nodes(
    builtin: Templates, name: str, values: dict[str, Any]
) -> None:
    script = builtin.render(name, **values)
    assert problems(parse(script.text)) == []
    assert CANARY not in script.text
    assert script.text.endswith("\n")


def test_exchange_connect_binds_token_and_organization_as_parameters(builtin: Templates) -> None:
    token = Secret(CANARY, "access token")
    script = builtin.render("exchange-connect", AccessToken=token, Organization="contoso.onmicrosoft.com")
    assert script.text == (
        "param($AccessToken, $Organization)\n"
        "Import-Module ExchangeOnlineManagement -MinimumVersion 3.1.0 -ErrorAction Stop\n"
        "Connect-ExchangeOnline -AccessToken $AccessToken -Organization $Organization -ShowBanner:$false"
        " -ErrorAction Stop\n"
    )
    assert script.parameters == {"AccessToken": token, "Organization": "contoso.onmicrosoft.com"}
    assert script.declared == ("AccessToken", "Organization")
    assert script.unbound == ()
    assert script.name == "exchange-connect"
    assert "contoso" not in script.text


def test_exchange_connect_with_every_option(builtin: Templates) -> None:
    script = builtin.render("exchange-connect", **REPRESENTATIVE["exchange-connect"][2])
    assert script.text.splitlines()[-1] == (
        "Connect-ExchangeOnline -AccessToken $AccessToken -Organization $Organization -ShowBanner:$false"
        " -ErrorAction Stop -ExchangeEnvironmentName 'O365USGovGCCHigh'"
        " -CommandName @('Get-Mailbox', 'Set-Mailbox', 'Get-EXOMailbox')"
        " -SkipLoadingFormatData -PageSize 1000"
    )
    assert command_names(script.text) == ["Import-Module", "Connect-ExchangeOnline"]


def test_exchange_connect_leaves_out_options_that_are_false_or_none(builtin: Templates) -> None:
    script = builtin.render("exchange-connect", **REPRESENTATIVE["exchange-connect"][3])
    assert script.text.splitlines()[-1].endswith("-ErrorAction Stop -CommandName @(,'Get-Mailbox')")
    assert script.unbound == ("AccessToken", "Organization")


def test_skip_loading_format_data_must_be_a_bool(builtin: Templates) -> None:
    # "false" is a non-empty string: truthy in Jinja and in PowerShell. Refuse rather than guess.
    with pytest.raises(RenderError, match=r"exchange-connect.*expected true or false, got str 'false'"):
        builtin.render("exchange-connect", SkipLoadingFormatData="false")


def test_exchange_disconnect_never_prompts(builtin: Templates) -> None:
    assert builtin.render("exchange-disconnect").text == "Disconnect-ExchangeOnline -Confirm:$false\n"


def test_preamble_defaults_and_overrides(builtin: Templates) -> None:
    text = builtin.render("preamble").text
    assert text.splitlines()[:3] == [
        "$ErrorActionPreference = 'Stop'",
        "$ProgressPreference = 'SilentlyContinue'",
        "if ($PSVersionTable.PSEdition -eq 'Desktop') {",
    ]
    assert "[Console]::OutputEncoding = [System.Text.UTF8Encoding]::new($false)" in text
    custom = builtin.render(
        "preamble", ErrorActionPreference="Continue", ProgressPreference="x’; Stop-Computer"
    )
    assert custom.text.splitlines()[:2] == [
        "$ErrorActionPreference = 'Continue'",
        "$ProgressPreference = 'x’’; Stop-Computer'",
    ]


# --------------------------------------------------------------------------------------------------
# Known injection payloads, through a real template
# --------------------------------------------------------------------------------------------------


def inert(text: str, benign: str) -> list[str]:
    """The strings of ``text`` if it has the same code as ``benign`` around them (PowerShell's rule)."""
    rest, strings = split_strings(text)
    assert rest == split_strings(benign)[0], "the value changed the code around it"
    assert problems(parse(text)) == []
    return strings


@pytest.mark.parametrize("case", PAYLOADS, ids=[case["name"] for case in PAYLOADS])
def test_known_injection_payloads_stay_inert_in_exchange_connect(
    builtin: Templates, case: dict[str, str]
) -> None:
    payload = case["payload"]
    values = {
        "ExchangeEnvironmentName": payload,
        "CommandName": [payload, "Get-Mailbox"],
        "PageSize": payload,
    }
    script = builtin.render("exchange-connect", AccessToken=Secret(CANARY), Organization=payload, **values)
    benign = builtin.render(
        "exchange-connect", ExchangeEnvironmentName="e", CommandName=["c", "d"], PageSize="p"
    )
    strings = inert(script.text, benign.text)
    assert strings[-4:] == [payload, payload, "Get-Mailbox", payload]
    assert command_names(script.text) == ["Import-Module", "Connect-ExchangeOnline"]
    assert script.parameters["Organization"] == payload


@pytest.mark.parametrize("case", PAYLOADS, ids=[case["name"] for case in PAYLOADS])
def test_known_injection_payloads_stay_inert_as_keys_and_values(tmp_path: Path, case: dict[str, str]) -> None:
    write(tmp_path, "set-props", "$props = {{ Props }}\nSet-Mailbox -Identity {{ Identity }} @props\n")
    payload = case["payload"]
    script = Templates([tmp_path]).render("set-props", Props={payload: [payload]}, Identity=payload)
    benign = Templates([tmp_path]).render("set-props", Props={"k": ["v"]}, Identity="i")
    assert inert(script.text, benign.text) == [payload, payload, payload]
    assert command_names(script.text) == ["Set-Mailbox"]
    assert len(string_literals(script.text)) == 3


# --------------------------------------------------------------------------------------------------
# Parameters and secrets never reach the text
# --------------------------------------------------------------------------------------------------


def test_repr_of_a_script_shows_parameter_names_only(builtin: Templates) -> None:
    script = builtin.render("exchange-connect", AccessToken=CANARY, Organization="contoso.onmicrosoft.com")
    shown = repr(script)
    assert CANARY not in shown
    assert "contoso" not in shown
    assert "AccessToken=<redacted>" in shown
    assert isinstance(script, Script)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ AccessToken }}",
        "{{ AccessToken | lower }}",
        "{{ 'Bearer ' ~ AccessToken }}",
        "{{ AccessToken[:8] }}",
        "{{ AccessToken | string }}",
        "{{ '%s' % AccessToken }}",
        "{{ AccessToken | list }}",
        "{% for c in AccessToken %}{{ c }}{% endfor %}",
    ],
)
def test_a_declared_parameter_cannot_be_rendered(tmp_path: Path, expression: str) -> None:
    write(tmp_path, "leak", f'{{{{ param_block("AccessToken") }}}}\n$x = {expression}\n')
    for token in (CANARY, Secret(CANARY)):
        with pytest.raises(
            RenderError, match=r"AccessToken is a parameter of 'leak'.*\$AccessToken"
        ) as caught:
            Templates([tmp_path]).render("leak", AccessToken=token)
        assert CANARY not in str(caught.value)
        assert caught.value.template == "leak"
        assert caught.value.line == 2


def test_a_declared_parameter_can_still_be_tested(tmp_path: Path) -> None:
    write(tmp_path, "check", '{{ param_block("Token") }}\n{% if Token %}Write-Output $Token{% endif %}\n')
    assert Templates([tmp_path]).render("check", Token=CANARY).text == "param($Token)\nWrite-Output $Token"
    assert Templates([tmp_path]).render("check", Token="").text == "param($Token)\n"


@pytest.mark.parametrize("secret", [Secret(CANARY, "client secret"), SecureString(CANARY)])
def test_an_undeclared_secret_is_refused_and_the_error_says_to_declare_it(
    tmp_path: Path, secret: Secret
) -> None:
    write(tmp_path, "oops", "Connect-Thing -Password {{ Password }}\n")
    write(tmp_path, "oops2", "Connect-Thing -Password {{ Password | lower }}\n")
    for name in ("oops", "oops2"):
        with pytest.raises(RenderError, match=r'declare it with param_block\("Password"') as caught:
            Templates([tmp_path]).render(name, Password=secret)
        assert CANARY not in str(caught.value)


def test_a_secret_inside_a_list_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "nested", "$x = {{ Values }}\n")
    with pytest.raises(RenderError, match="declare it as a parameter"):
        Templates([tmp_path]).render("nested", Values=["a", Secret(CANARY)])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('Write-Output 1\n{{ param_block("A") }}\n', "must come first"),
        ('{{ param_block("A") }}{{ param_block("B") }}\n', "once per script"),
        ('{{ param_block("A; Stop-Computer") }}\n', "not a safe PowerShell name"),
        ('{{ param_block("A", "a") }}\n', "twice"),
        ("{{ param_block() }}\n", "at least one"),
    ],
)
def test_param_block_misuse_is_refused(tmp_path: Path, source: str, message: str) -> None:
    write(tmp_path, "bad", source)
    with pytest.raises(RenderError, match=message):
        Templates([tmp_path]).render("bad")


def test_param_block_may_follow_comments(tmp_path: Path) -> None:
    write(
        tmp_path, "commented", '#requires -Version 5.1\n<# a\nblock #>\n{{ param_block("A", "B_2") }}\n$A\n'
    )
    script = Templates([tmp_path]).render("commented", A=1, B_2=[2])
    assert script.text.endswith("param($A, $B_2)\n$A\n")
    assert dict(script.parameters) == {"A": 1, "B_2": [2]}


# --------------------------------------------------------------------------------------------------
# Nothing is emitted raw by accident; identifiers only through the strict filter
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ x }}", "'a’’b'"),
        ("{{ x | safe }}", "'a’’b'"),
        ("{{ x ~ '!' }}", "'a’’b!'"),
        ("{{ x | upper }}", "'A’’B'"),
        ("{% macro m() %}Stop-Computer{% endmacro %}{{ m() }}", "'Stop-Computer'"),
        ("{% set code %}Stop-Computer{% endset %}{{ code }}", "'Stop-Computer'"),
        ("{{ 'literal in the template' }}", "'literal in the template'"),
        ("{{ [x, 1] }}", "@('a’’b', 1)"),
        ("{{ n + 1 }}", "42"),
        ("{% autoescape true %}{{ x ~ '&<' }} {{ [x] | join }}{% endautoescape %}", "'a’’b&<' 'a’’b'"),
        ("{% autoescape true %}{{ y }}{% endautoescape %}", "'a''\nStop-Computer &#39;'"),
    ],
)
def test_every_expression_is_a_literal(tmp_path: Path, source: str, expected: str) -> None:
    write(tmp_path, "t", source)
    assert Templates([tmp_path]).render("t", x="a’b", y="a'\nStop-Computer &#39;", n=41).text == expected


def test_identifier_filter_emits_names_unquoted(tmp_path: Path) -> None:
    write(
        tmp_path, "call", "{{ Command | identifier('command') }} -{{ Parameter | identifier }} {{ Value }}\n"
    )
    text = (
        Templates([tmp_path]).render("call", Command="Get-EXOMailbox", Parameter="ResultSize", Value=10).text
    )
    assert text == "Get-EXOMailbox -ResultSize 10\n"
    assert command_names(text) == ["Get-EXOMailbox"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("Get-Mailbox; Stop-Computer", "command"),
        ("Get-Mailbox x", "command"),
        ("-Force", "command"),
        ("Get-", "command"),
        ("Get-Mailbox", "name"),
        ("$x", "name"),
        ("1abc", "name"),
        ("a’b", "name"),
        ("", "name"),
        ("Ａbc", "name"),
        ("x\n", "name"),
        (7, "name"),
        (Secret("Password1"), "name"),
    ],
)
def test_identifier_filter_refuses_anything_else(tmp_path: Path, value: Any, kind: str) -> None:
    write(tmp_path, "call", f"{{{{ Value | identifier({kind!r}) }}}}\n")
    with pytest.raises(RenderError, match=f"not a safe PowerShell {kind}") as caught:
        Templates([tmp_path]).render("call", Value=value)
    assert caught.value.template == "call"
    assert "Password1" not in str(caught.value)


def test_unknown_identifier_kind_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "call", "{{ 'x' | identifier('verb') }}\n")
    with pytest.raises(RenderError, match="unknown identifier kind 'verb'"):
        Templates([tmp_path]).render("call")


# --------------------------------------------------------------------------------------------------
# Errors say what and where
# --------------------------------------------------------------------------------------------------


def test_an_undefined_variable_names_itself_the_template_and_the_line(tmp_path: Path) -> None:
    write(tmp_path, "needs", "Write-Output 1\nGet-Mailbox -Identity {{ Identity }}\n")
    with pytest.raises(RenderError) as caught:
        Templates([tmp_path]).render("needs")
    error = caught.value
    assert (error.variable, error.template, error.line) == ("Identity", "needs", 2)
    assert str(error).startswith("template 'needs', line 2: 'Identity' is undefined")
    assert "--var" in str(error)


def test_an_undefined_variable_in_an_included_template_names_that_template(tmp_path: Path) -> None:
    write(tmp_path, "outer", "Write-Output 1\n{% include 'inner' %}\n")
    write(tmp_path, "inner", "\n\n$x = {{ Missing }}\n")
    with pytest.raises(RenderError) as caught:
        Templates([tmp_path]).render("outer")
    assert (caught.value.variable, caught.value.template, caught.value.line) == ("Missing", "inner", 3)


def test_a_value_error_inside_a_template_says_where(tmp_path: Path) -> None:
    write(tmp_path, "where", "\n$x = {{ Value }}\n")
    with pytest.raises(
        RenderError, match=r"^template 'where', line 2: a builtins.set has no PowerShell literal"
    ):
        Templates([tmp_path]).render("where", Value={1})


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    write(tmp_path, "broken", "Write-Output 1\n{% if x %}\n")
    with pytest.raises(RenderError, match=r"^template 'broken', line \d+: syntax error"):
        Templates([tmp_path]).render("broken", x=1)


def test_a_syntax_error_in_an_included_template_names_that_template(tmp_path: Path) -> None:
    write(tmp_path, "outer", "{% include 'inner' %}\n")
    write(tmp_path, "inner", "\n{{ x }\n")
    with pytest.raises(RenderError, match=r"^template 'inner', line 2: syntax error"):
        Templates([tmp_path]).render("outer", x=1)


def test_a_failing_expression_says_where(tmp_path: Path) -> None:
    write(tmp_path, "typo", "$x = 1\n$y = {{ Count + 'x' }}\n")
    with pytest.raises(RenderError, match=r"^template 'typo', line 2: TypeError"):
        Templates([tmp_path]).render("typo", Count=1)


def test_an_unknown_template_lists_the_known_ones(builtin: Templates) -> None:
    with pytest.raises(
        RenderError,
        match=r"no template named .nope..*known: exchange-connect, exchange-connect-steps, exchange-disconnect",
    ):
        builtin.render("nope")


@pytest.mark.parametrize("name", ["../templates/preamble", "/etc/passwd", "pre amble", ".hidden", ""])
def test_template_names_cannot_reach_outside_the_folders(builtin: Templates, name: str) -> None:
    with pytest.raises(RenderError, match="no template named"):
        builtin.render(name)


def test_an_included_template_that_is_missing_is_named(tmp_path: Path) -> None:
    write(tmp_path, "outer", "{% include 'absent' %}\n")
    with pytest.raises(RenderError, match=r"template 'absent' \(included by 'outer'\) was not found"):
        Templates([tmp_path]).render("outer")


# --------------------------------------------------------------------------------------------------
# User folders come first
# --------------------------------------------------------------------------------------------------


def test_a_user_folder_overrides_and_adds_templates(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(
        first,
        "exchange-disconnect",
        "Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue\n",
    )
    write(second, "exchange-disconnect", "Write-Output 'second'\n")
    write(second, "report", "{% include 'preamble' %}\nGet-Mailbox -ResultSize {{ Size }}\n")
    templates = Templates([first, second])
    assert templates.render("exchange-disconnect").text.endswith("-ErrorAction SilentlyContinue\n")
    assert templates.source_path("exchange-disconnect") == first / "exchange-disconnect.ps1.j2"
    assert templates.source_path("preamble") == builtin_template_dir() / "preamble.ps1.j2"
    report = templates.render("report", Size="Unlimited").text
    assert report.startswith("$ErrorActionPreference = 'Stop'\n")
    assert report.endswith("Get-Mailbox -ResultSize 'Unlimited'\n")
    assert templates.names() == [
        "exchange-connect",
        "exchange-connect-steps",
        "exchange-disconnect",
        "exchange-invoke",
        "preamble",
        "report",
    ]


def test_render_template_is_the_one_call_form(tmp_path: Path) -> None:
    write(tmp_path, "hello", "Write-Output {{ Who }}\n")
    assert (
        render_template("hello", template_dirs=[tmp_path], Who="it’s me").text == "Write-Output 'it’’s me'\n"
    )
    assert render_template("exchange-disconnect").name == "exchange-disconnect"


# --------------------------------------------------------------------------------------------------
# Finding the built-in templates: in a checkout and in an installed wheel
# --------------------------------------------------------------------------------------------------


def test_builtin_templates_are_found_beside_the_package_or_one_level_up(tmp_path: Path) -> None:
    wheel = tmp_path / "site" / "pswrap"
    (wheel / "templates").mkdir(parents=True)
    assert builtin_template_dir(wheel) == wheel / "templates"
    checkout = tmp_path / "repo" / "pswrap"
    checkout.mkdir(parents=True)
    (checkout.parent / "templates").mkdir()
    assert builtin_template_dir(checkout) == checkout.parent / "templates"
    with pytest.raises(RenderError, match="built-in templates are missing"):
        builtin_template_dir(tmp_path / "nowhere" / "pswrap")
    assert builtin_template_dir() == ROOT / "templates"


def test_an_installed_wheel_carries_and_finds_the_templates(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the build backend)")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("pswrap-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    probe = (
        "from pswrap.render import builtin_template_dir, render_template;"
        "print(builtin_template_dir());"
        "print(render_template('exchange-disconnect').text, end='')"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {probe}"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    where, text = result.stdout.split("\n", 1)
    assert Path(where) == tmp_path / "site" / "pswrap" / "templates"
    assert text == "Disconnect-ExchangeOnline -Confirm:$false\n"


def test_the_readme_template_example_renders_and_parses(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    write(tmp_path, "example", readme.split("```jinja\n", 1)[1].split("```", 1)[0])
    script = Templates([tmp_path]).render(
        "example",
        AccessToken=Secret(CANARY),
        Organization="o",
        Command="Get-Mailbox",
        Parameter="Identity",
        Value="b’",
    )
    assert problems(parse(script.text)) == []
    assert script.text.startswith("param($AccessToken, $Organization)\n$ErrorActionPreference = 'Stop'\n")
    assert script.text.endswith("\nGet-Mailbox -Identity 'b’’'")
