"""The stand-in's PowerShell: parsing with PowerShell's quote rules, the interpreter, binding, errors.

Run in process (no subprocess): an Engine on a fresh runspace with a non-interactive host, streams
collected in lists.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

import pytest
from psrpcore import types as ps

from pswrap.transports.oneshot import BOOTSTRAP  # the script the one-shot transport sends
from tests.standins.powershell.clixml import CIPHER
from tests.standins.powershell.engine import Engine
from tests.standins.powershell.errors import ExitRequested, PSError, StandinUnsupported
from tests.standins.powershell.language.parser import ParseError, parse
from tests.standins.powershell.language.values import BigInteger, OrderedHashtable, PSArray
from tests.standins.powershell.runspace import NonInteractiveHost, Runspace
from tests.standins.powershell.streams import Collector

QUOTES = "'\u2018\u2019\u201a\u201b"


def render(value: str) -> str:
    """A safe single-quoted literal: every one of the five quote characters doubled."""
    return "'" + "".join(ch * 2 if ch in QUOTES else ch for ch in value) + "'"


def run(script: str, stdin: str = "", runspace: Runspace | None = None) -> Collector:
    engine = Engine()
    streams = Collector()
    execution = engine.execution(runspace or Runspace(), NonInteractiveHost(), read_stdin=lambda: stdin)
    engine.run_script(script, execution, streams, input_lines=execution.stdin_lines)
    return streams


def out(script: str, **kwargs: Any) -> list[Any]:
    return run(script, **kwargs).items["output"]


def request(**fields: Any) -> str:
    table = ps.PSDict()
    defaults = {
        "Command": None,
        "Script": None,
        "Parameters": ps.PSDict(),
        "Arguments": ps.PSList(),
        "HasInput": False,
        "Input": ps.PSList(),
        "ErrorActionPreference": "Continue",
        "ProgressPreference": "SilentlyContinue",
    }
    for key, value in {**defaults, **fields}.items():
        table[key] = value
    return ps.serialize_clixml(table, CIPHER) + "\n"


# --------------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------------


def test_bootstrap_parses_and_runs_a_script_with_bound_parameters_and_arguments() -> None:
    parameters = ps.PSDict()
    parameters["Name"] = "bob"
    parameters["Force"] = True
    stdin = request(
        Script='param($Name, [switch]$Force, $Extra) Write-Output "$Name/$Force/$Extra"',
        Parameters=parameters,
        Arguments=ps.PSList(["positional"]),
    )
    assert out(BOOTSTRAP, stdin=stdin) == ["bob/True/positional"]


def test_bootstrap_runs_a_command_with_pipeline_input() -> None:
    stdin = request(Command="Write-Output", HasInput=True, Input=ps.PSList([1, "two"]))
    assert out(BOOTSTRAP, stdin=stdin) == [1, "two"]


def test_bootstrap_merges_every_record_into_output_unmarked() -> None:
    script = "Write-Error 'e'; Write-Warning 'w'; Write-Verbose 'v' -Verbose; 'o'"
    streams = run(BOOTSTRAP, stdin=request(Script=script))
    kinds = [type(item).__name__ for item in streams.items["output"]]
    assert kinds == ["ErrorRecord", "WarningRecord", "VerboseRecord", "str"]
    assert streams.items["error"] == [] and streams.items["warning"] == []


def test_write_information_under_silently_continue_reaches_a_merge_but_not_the_console() -> None:
    merged = out("& { Write-Information i; 'o' } 6>&1")
    assert [type(x).__name__ for x in merged] == ["InformationRecord", "str"]
    streams = run("Write-Information i; Write-Verbose v; 'o'")
    assert streams.items["information"] == [] and streams.items["output"] == ["o"]
    assert out("Write-Verbose v *>&1; 'o'") == ["o"]


def test_bootstrap_catches_a_terminating_error_and_exits_1() -> None:
    engine = Engine()
    streams = Collector()
    execution = engine.execution(
        Runspace(), NonInteractiveHost(), read_stdin=lambda: request(Script="throw 'bad'")
    )
    with pytest.raises(ExitRequested) as exit_request:
        engine.run_script(BOOTSTRAP, execution, streams, input_lines=execution.stdin_lines)
    assert exit_request.value.code == 1
    [wrapper] = streams.items["output"]
    record = wrapper.PswrapTerminatingError
    assert isinstance(record, ps.ErrorRecord)
    assert record.Exception.Message == "bad" and record.FullyQualifiedErrorId == "bad"


def test_bootstrap_turns_command_not_found_into_the_terminating_error() -> None:
    engine = Engine()
    streams = Collector()
    execution = engine.execution(
        Runspace(), NonInteractiveHost(), read_stdin=lambda: request(Command="Get-Nothing")
    )
    with pytest.raises(ExitRequested):
        engine.run_script(BOOTSTRAP, execution, streams, input_lines=execution.stdin_lines)
    record = streams.items["output"][0].PswrapTerminatingError
    assert record.FullyQualifiedErrorId == "CommandNotFoundException"
    assert record.Exception.Message.startswith(
        "The term 'Get-Nothing' is not recognized as a name of a cmdlet, function, script file, or executable program."
    )


# --------------------------------------------------------------------------------------------
# Literals exactly as PowerShell reads them
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quote", list(QUOTES))
def test_each_of_the_five_single_quotes_delimits_a_string(quote: str) -> None:
    assert out(f"{quote}abc{quote}") == ["abc"]


def test_a_pair_of_any_two_quote_characters_stands_for_the_second() -> None:
    assert out("'a\u2019\u2018b'") == ["a\u2018b"]
    assert out("'it''s'") == ["it's"]


def test_the_u2019_injection_payload_rendered_safely_stays_one_string() -> None:
    payload = "bob\u2019; Remove-Mailbox x -Confirm:$false; \u2019"
    assert out(f"$x = {render(payload)}; $x") == [payload]


def test_an_unescaped_u2019_ends_the_string_as_in_powershell_so_injection_runs() -> None:
    script = "$x = 'bob\u2019; Remove-Mailbox x -Confirm:$false; \u2019'"
    streams = run(script)
    [error] = streams.items["error"]
    assert error.FullyQualifiedErrorId == "CommandNotFoundException"
    assert "'Remove-Mailbox'" in error.Exception.Message


def test_double_quoted_strings_expand_simple_variables_and_escapes() -> None:
    assert out('$n = "bob"; "hi $n and ${n}`t`$n ""q"""') == ['hi bob and bob\t$n "q"']


def test_curly_double_quotes_delimit_strings() -> None:
    assert out("$n = 5; \u201cn=$n\u201d") == ["n=5"]


def test_numbers_booleans_and_null() -> None:
    values = out("42; 3000000000; 2.5; -7; 0x1F; $true; $false; $null")
    assert values[:7] == [42, 3000000000, 2.5, -7, 31, True, False]
    assert isinstance(values[2], ps.PSDouble)
    assert len(values) == 8 and values[7] is None


def test_arrays_and_comma_lists() -> None:
    [empty] = out(",@()")
    assert isinstance(empty, PSArray) and list(empty) == []
    [single] = out(",@(,5)")
    assert list(single) == [5]
    [pair] = out(",@(1, 'b')")
    assert list(pair) == [1, "b"]
    assert out("1, 'two', 3") == [1, "two", 3]
    [nested] = out(",@(,@(1, 2))")
    assert len(nested) == 1 and list(nested[0]) == [1, 2]


def test_ranges_as_powershell_reads_them() -> None:
    assert out("1..3") == [1, 2, 3]
    assert out("$n = 2; 1..$n | Write-Output") == [1, 2]
    assert out("$r = 3..1; $r.Count; $r[0]") == [3, 3]


def test_hashtables_ordered_and_custom_objects() -> None:
    [table] = out("@{ B = 1; 'a b' = @(1, 2); c = $null }")
    assert (
        isinstance(table, ps.PSDict)
        and table["B"] == 1
        and list(table["a b"]) == [1, 2]
        and table["c"] is None
    )
    [ordered] = out("[ordered]@{ z = 1; a = 2 }")
    assert isinstance(ordered, OrderedHashtable) and list(ordered) == ["z", "a"]
    assert ordered.PSObject.type_names[0] == "System.Collections.Specialized.OrderedDictionary"
    [obj] = out("[pscustomobject]@{ Name = 'n'; Size = 3 }")
    assert isinstance(obj, ps.PSCustomObject)
    assert [p.name for p in obj.PSObject.extended_properties] == ["Name", "Size"]
    assert out("$h = @{ Key = 'v' }; $h['key']; $h.KEY") == ["v", "v"]


def test_casts_to_the_types_the_renderer_uses() -> None:
    guid, version, number, big, date, span = out(
        "[guid]'0a0b0c0d-0000-0000-0000-000000000001'; [version]'1.2.3.4'; [decimal]'1.50'; "
        "[bigint]'123456789012345678901234567890'; "
        "[datetime]::Parse('2024-01-02T03:04:05.1234567Z', [cultureinfo]::InvariantCulture, "
        "[System.Globalization.DateTimeStyles]::RoundtripKind); [timespan]::new(15)"
    )
    assert guid == uuid.UUID("0a0b0c0d-0000-0000-0000-000000000001")
    assert str(version) == "1.2.3.4"
    assert number == decimal.Decimal("1.50")
    assert isinstance(big, BigInteger) and big.value == 123456789012345678901234567890
    assert (date.year, date.microsecond, date.nanosecond, date.tzinfo) == (2024, 123456, 700, dt.timezone.utc)
    assert span.microseconds == 1 and span.nanoseconds == 500
    nan, inf, neg = out("[double]::NaN; [double]::PositiveInfinity; [double]::NegativeInfinity")
    assert math.isnan(nan) and inf == math.inf and neg == -math.inf


def test_base64_and_environment_statics() -> None:
    data, newline = out("[Convert]::FromBase64String('aGk='); [Environment]::NewLine")
    assert bytes(data) == b"hi" and newline == "\n"


# --------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------


def test_if_elseif_else_and_comparisons() -> None:
    script = (
        "$x = 'B'; if ($x -eq 'b') { 'eq' } else { 'ne' }; "
        "if ($x -ne 'b') { 1 } elseif (-not $false) { 2 } else { 3 }; "
        "(1, 2, 3) -eq 2; 5 -gt 3; 'a' -like 'A*'; @('x', 'y') -join '+'"
    )
    assert out(script) == ["eq", 2, 2, True, True, "x+y"]


def test_try_catch_sees_the_error_record_and_throw_rethrows() -> None:
    assert out("try { throw 'boom' } catch { $_.Exception.Message; $_.FullyQualifiedErrorId }") == [
        "boom",
        "boom",
    ]
    with pytest.raises(PSError) as caught:
        run("try { throw 'inner' } catch { throw }")
    assert caught.value.record.Exception.Message == "inner"
    assert out("try { Write-Error 'e' -ErrorAction Stop } catch { $_.FullyQualifiedErrorId }") == [
        "Microsoft.PowerShell.Commands.WriteErrorException"
    ]


def test_a_statement_terminating_error_outside_try_writes_the_error_and_continues() -> None:
    streams = run("Get-Nothing; 'after'")
    assert streams.items["output"] == ["after"]
    assert streams.items["error"][0].FullyQualifiedErrorId == "CommandNotFoundException"


def test_error_action_preference_stop_escalates_non_terminating_errors() -> None:
    with pytest.raises(PSError) as raised:
        run("$ErrorActionPreference = 'Stop'; Write-Error 'x'; 'never'")
    assert raised.value.script_terminating


def test_script_scope_per_invocation_and_dot_sourcing() -> None:
    assert out("$v = 'outer'; & { $v = 'inner' }; $v") == ["outer"]
    assert out("$v = 'outer'; . { $v = 'inner' }; $v") == ["inner"]
    assert out("& { $global:g = 1 }; $g") == [1]


def test_call_operator_on_a_command_name_and_a_scriptblock_with_named_parameters() -> None:
    assert out("& 'Write-Output' 'x'; & { param($A, $B) \"$A-$B\" } -B 2 -A:1") == ["x", "1-2"]


def test_splatting_hashtables_and_arrays() -> None:
    script = "$h = @{ B = 'b'; Flag = $false }; $a = @('a'); & { param($A, $B, [switch]$Flag) \"$A$B$Flag\" } @a @h"
    assert out(script) == ["abFalse"]


def test_pipeline_input_reaches_script_blocks_as_input() -> None:
    assert out("1, 2, 3 | & { @($input).Count }") == [3]


def test_input_is_the_stdin_lines_at_top_level() -> None:
    assert out("@($input) -join '|'", stdin="a\nb\n") == ["a|b"]


def test_exit_raises_with_its_code() -> None:
    with pytest.raises(ExitRequested) as exit_request:
        run("'x'; exit 7; 'never'")
    assert exit_request.value.code == 7


def test_redirection_merges_records_without_marking_them() -> None:
    """Real pwsh 7.6 adds no writeErrorStream note to a merged record (Windows PowerShell 5.1 did)."""
    streams = run("& { Write-Warning 'w'; Write-Error 'e'; 'o' } 2>&1")
    error, text = streams.items["output"]
    assert isinstance(error, ps.ErrorRecord) and text == "o"
    assert [p.name for p in error.PSObject.extended_properties] == []
    assert [str(w.Message) for w in streams.items["warning"]] == ["w"]


def test_preference_variables_are_per_runspace() -> None:
    runspace = Runspace()
    run("$global:VerbosePreference = 'Continue'", runspace=runspace)
    assert len(run("Write-Verbose 'shown'", runspace=runspace).items["verbose"]) == 1
    assert run("Write-Verbose 'hidden'").items["verbose"] == []


# --------------------------------------------------------------------------------------------
# Parameter binding with PowerShell's errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "error_id", "message"),
    [
        (
            "Write-Output -Nope 1",
            "NamedParameterNotFound,Microsoft.PowerShell.Commands.WriteOutputCommand",
            "A parameter cannot be found that matches parameter name 'Nope'.",
        ),
        (
            "Write-Warning",
            "MissingMandatoryParameter,Microsoft.PowerShell.Commands.WriteWarningCommand",
            "Cannot process command because of one or more missing mandatory parameters: Message.",
        ),
        (
            "Write-Warning a b",
            "PositionalParameterNotFound,Microsoft.PowerShell.Commands.WriteWarningCommand",
            "A positional parameter cannot be found that accepts argument 'b'.",
        ),
        (
            "Write-Error -Category",
            "MissingArgument,Microsoft.PowerShell.Commands.WriteErrorCommand",
            "Missing an argument for parameter 'Category'. Specify a parameter of type 'System.Object' and try again.",
        ),
        (
            "Write-Error -Categ NotSpecified",
            "AmbiguousParameter,Microsoft.PowerShell.Commands.WriteErrorCommand",
            "Parameter cannot be processed because the parameter name 'Categ' is ambiguous. Possible matches "
            "include: -Category -CategoryActivity",
        ),
    ],
)
def test_binding_errors_are_powershells(script: str, error_id: str, message: str) -> None:
    [error] = run(script).items["error"]
    assert error.FullyQualifiedErrorId == error_id
    assert error.Exception.Message.startswith(message)
    assert error.Exception.PSObject.type_names[0] == "System.Management.Automation.ParameterBindingException"


def test_names_match_by_prefix_alias_and_switch_values() -> None:
    assert out("Write-Output -InputOb 1 -NoEnumerate:$false") == [1]
    assert [str(r.Message) for r in run("Write-Verbose -Msg m -vb").items["verbose"]] == ["m"]
    assert run("Write-Verbose m -Verbose:$false").items["verbose"] == []


def test_common_parameters_override_preferences() -> None:
    streams = run(
        "Write-Warning w -WarningAction SilentlyContinue; Write-Error e -ErrorAction SilentlyContinue"
    )
    assert streams.items["warning"] == [] and streams.items["error"] == []


def test_write_error_parameters_fill_the_record() -> None:
    [error] = run("Write-Error -Message m -ErrorId MyId -Category InvalidArgument -TargetObject t").items[
        "error"
    ]
    assert error.FullyQualifiedErrorId == "MyId"
    assert error.CategoryInfo.Category == ps.ErrorCategory.InvalidArgument
    assert str(error.CategoryInfo) == "InvalidArgument: (t:String) [Write-Error], WriteErrorException"
    assert error.TargetObject == "t"


# --------------------------------------------------------------------------------------------
# Loud failures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "error_id", "column"),
    [
        ("if (", "MissingEndParenthesisInExpression", 5),
        ("if ($x) {", "MissingEndCurlyBrace", 10),
        ("'abc", "TerminatorExpectedAtEndOfString", 1),
        ("Write-Output 1 }", "UnexpectedToken", 16),
        ("$a = 1 +", "ExpectedValueExpression", 9),
        ("'ok'\n 'a\u2019\u2019", "TerminatorExpectedAtEndOfString", 2),
    ],
)
def test_syntax_errors_raise_a_parse_exception_record(script: str, error_id: str, column: int) -> None:
    with pytest.raises(ParseError) as problem:
        parse(script)
    record = problem.value.record
    assert record.FullyQualifiedErrorId == error_id
    assert record.CategoryInfo.Category == ps.ErrorCategory.ParserError
    assert record.Exception.PSObject.type_names[0] == "System.Management.Automation.ParseException"
    line = script.count("\n") + 1
    assert str(record.Exception.Message).startswith(f"At line:{line} char:{column}\n+ ")


def test_a_syntax_error_in_scriptblock_create_is_a_method_invocation_error() -> None:
    [wrapper] = out("try { [scriptblock]::Create('if (') } catch { $_ }")
    assert wrapper.FullyQualifiedErrorId == "ParseException"
    assert wrapper.Exception.Message.startswith(
        'Exception calling "Create" with "1" argument(s): "At line:1 char:'
    )


@pytest.mark.parametrize(
    ("script", "what"),
    [
        ("foreach ($x in 1) { $x }", "foreach_statement"),
        ("function f { 1 }", "function_statement"),
        ('"$(1)"', "subexpressions"),
        ("Where-Object { $_ }", "Where-Object"),
        ("1 -band 2", "bitwise"),
        ("[System.IO.File]::ReadAllText('x')", "System.IO.File"),
        ("$x = 1; $x.GetType()", "GetType"),
        ("Write-Output 1 > out.txt", "redirection"),
    ],
)
def test_constructs_outside_the_subset_fail_loudly(script: str, what: str) -> None:
    with pytest.raises(StandinUnsupported) as problem:
        run(script)
    assert str(problem.value).startswith("pwsh stand-in does not support")
    assert what.casefold() in str(problem.value).casefold()


def test_write_output_no_enumerate_binds_its_argument_as_pwsh_does() -> None:
    """Real pwsh 7.6: a positional argument is collected in a List[object]; -InputObject binds as it is."""
    assert out("Write-Output -NoEnumerate 42") == [[42]]
    assert out("Write-Output -NoEnumerate -InputObject 5") == [5]
    assert out("Write-Output -NoEnumerate @(1, 2)") == [[1, 2]]
    assert out("42 | Write-Output -NoEnumerate") == [42]
