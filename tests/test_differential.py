"""The differential test: each scenario through the pwsh stand-in and through real pwsh, compared.

Both peers run the same call through the same pswrap transport (server mode and one-shot); the Python
results are compared field by field (:mod:`tests.differential`: values, Python types, type names,
members, error ids, categories, targets, invocation info, progress fields). Where they differ, real
pwsh is right. One process per peer serves every server-mode scenario of the module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pswrap import LocalTransport, OneShotTransport, PSObject, SecureString, Session
from tests import realpwsh
from tests import session_scenarios as scenarios
from tests.differential import differences, snapshot

pytestmark = [pytest.mark.real_pwsh]

Scenario = Callable[[Session], Any]

SCENARIOS: dict[str, Scenario] = {
    "every stream": lambda s: s.script(scenarios.EVERY_STREAM, Name="bob"),
    "parameter round trips": lambda s: s.script(
        f"param(${', $'.join(scenarios.ROUND_TRIP)}) " + "; ".join(f",${n}" for n in scenarios.ROUND_TRIP),
        **scenarios.ROUND_TRIP,
    ),
    "positional arguments": lambda s: s.invoke("Write-Output", "a", 2),
    "named parameters": lambda s: s.invoke("Write-Output", InputObject=["b", 3], NoEnumerate=True),
    "pipeline input to a command": lambda s: s.invoke("Write-Output", input=[4, "five", None]),
    "pipeline input to a script": lambda s: s.script("@($input) | Write-Output", input=["x", "y"]),
    "a SecureString and an object with members": lambda s: s.script(
        "param($Secret, $Thing) $Secret; $Secret.Length; $Thing.Note; $Thing",
        Secret=SecureString("pa55"),
        Thing=PSObject(extended={"Note": "n"}, type_names=("My.Type",)),
    ),
    "objects with members": lambda s: s.script(
        "[pscustomobject]@{ Name = 'x'; Size = 5; Nested = [pscustomobject]@{ Deep = @(1, 'two') } }; "
        "[ordered]@{ b = 1; a = 2 }; @{ k = 'v' }; [guid]'0a0b0c0d-0000-0000-0000-000000000001'; "
        "[decimal]'1.10'; [version]'1.2.3.4'; [uri]'https://contoso.example/'; [long]5; [double]1.5; "
        "[char]'c'; [datetime]'2024-05-06T07:08:09Z'"
    ),
    "a non-terminating error with every field": lambda s: s.script(
        "Write-Error 'bad thing' -TargetObject 5 -ErrorId 'My.Error' -Category InvalidData "
        "-RecommendedAction 'Fix it' -CategoryActivity 'Doing' -CategoryReason 'Because'; 'after'"
    ),
    "a terminating error": lambda s: s.script("'before'; throw 'boom'; 'never'"),
    "ErrorActionPreference Stop": lambda s: s.script(
        "& { $ErrorActionPreference = 'Stop'; 'before'; Write-Error 'stopped here'; 'never' }"
    ),
    "ErrorAction Stop on one command": lambda s: s.script("Write-Error 'once' -ErrorAction Stop; 'never'"),
    "ErrorActionPreference SilentlyContinue": lambda s: s.script(
        "& { $ErrorActionPreference = 'SilentlyContinue'; Write-Error 'hidden'; 'after' }"
    ),
    "an unknown command": lambda s: s.script("'before'; No-Such-Command -Flag; 'after'"),
    "a parse error": lambda s: s.script("'a' + "),
    "exit codes": lambda s: s.script("'out'; exit 7; 'never'"),
    "information and host output": lambda s: s.script(
        "Write-Information 'info' -Tags 't1', 't2' -InformationAction Continue; Write-Host 'shown'; "
        "Write-Host 'red' -ForegroundColor Red; 'o'"
    ),
    "progress with every field": lambda s: s.script(
        "Write-Progress -Id 3 -ParentId 1 -Activity 'Copy' -Status 'files' -CurrentOperation 'a.txt' "
        "-PercentComplete 40 -SecondsRemaining 12; Write-Progress -Id 3 -Activity 'Copy' -Completed"
    ),
}


_WRITE_ERROR = ("every stream", "a non-terminating error with every field", "ErrorActionPreference Stop",
                "ErrorAction Stop on one command")  # fmt: skip

#: Differences found and not fixed yet: (scenarios, a pattern of the difference, why). Each is a gap in
#: the stand-in (real pwsh is right); anything not listed here fails the test.
KNOWN: list[tuple[tuple[str, ...], str, str]] = [
    (
        _WRITE_ERROR,
        r"records\[0\]\.(script_line_number|raw\.(InvocationInfo|ScriptExtent|CommandInfo|SerializeExtendedInfo))"
        r"|error\.(script_line_number|raw\.(InvocationInfo|SerializeExtendedInfo))"
        r"|raw: extended members only real pwsh has \['PSMessageDetails'\]",
        "Write-Error's record carries the invocation of the script that called it (real pwsh: line 0 of "
        "the PSRP script, or the one-shot bootstrap's `& $command` line), the stand-in Write-Error's own",
    ),
    (
        ("every stream", "an unknown command"),
        r"records\[\d\]\.raw(: extended members only real pwsh has \['InvocationInfo_|\.InformationalRecord_Serial)",
        "over PSRP real pwsh adds InvocationInfo_* notes to warning/verbose/debug records; the stand-in does not",
    ),
    (
        ("a terminating error", "an unknown command", "a parse error"),
        r"\.raw\.Exception: adapted members only real pwsh has \[('Errors', )?'ErrorRecord'",
        "RuntimeException's own members (ErrorRecord, WasThrownFromThrowStatement, CommandName, Errors) "
        "are not on the stand-in's exceptions",
    ),
    (
        ("a terminating error", "an unknown command"),
        r"(error|records\[0\])(\.script_line_number|\.raw\.InvocationInfo|\.raw\.SerializeExtendedInfo"
        r"|\.raw: extended members only real pwsh has \['(PSMessageDetails|InvocationInfo_))",
        "real pwsh gives a thrown error and a command-not-found error the invocation info of where they "
        "happened (line 1); the stand-in none",
    ),
    (
        ("a parse error",),
        r"(error|records\[0\])\.(message|exception_type|exception_message|reason|script_line_number|raw)",
        "real pwsh reports a script that ends mid-expression as IncompleteParseException whose message has "
        "no 'At line' position over PSRP (one-shot: trailing blanks cut from the quoted line, the bootstrap's "
        "line); the stand-in as ParseException with the position",
    ),
]


#: The scenarios that also run one-shot (a pwsh start each, on both peers): where that transport has its
#: own code path (records merged into output, the bootstrap's catch, parse errors, exit codes).
ONESHOT = ("every stream", "parameter round trips", "pipeline input to a command", "a terminating error",
           "ErrorActionPreference Stop", "a parse error", "exit codes", "information and host output")  # fmt: skip


def _known(name: str, difference: str) -> bool:
    return any(name in names and re.search(pattern, difference) for names, pattern, _ in KNOWN)


def _standin_pwsh(bin_dir: Path) -> str:
    return str(bin_dir / "pwsh")


class Peers:
    """(real pwsh, stand-in) sessions per transport, opened on first use and shared by the module."""

    def __init__(self, real: str, standin: str) -> None:
        self._pwsh = (real, standin)
        self._open: dict[str, tuple[Session, Session]] = {}

    def get(self, kind: str) -> tuple[Session, Session]:
        if kind not in self._open:
            pair = []
            for pwsh in self._pwsh:
                transport = LocalTransport(pwsh=pwsh) if kind == "local" else OneShotTransport(pwsh=pwsh)
                pair.append(Session(transport, timeout=120, progress=True).open())
            self._open[kind] = (pair[0], pair[1])
        return self._open[kind]

    def close(self) -> None:
        for pair in self._open.values():
            for session in pair:
                session.close()


@pytest.fixture(scope="module")
def peers(pwsh_standin_bin: Path) -> Iterator[Peers]:
    opened = Peers(realpwsh.require(), _standin_pwsh(pwsh_standin_bin))
    yield opened
    opened.close()


CASES = [("local", name) for name in SCENARIOS] + [("oneshot", name) for name in ONESHOT]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_the_stand_in_gives_what_real_pwsh_gives(peers: Peers, kind: str, name: str) -> None:
    real_session, standin_session = peers.get(kind)
    scenario = SCENARIOS[name]
    expected = snapshot(scenario(real_session))
    actual = snapshot(scenario(standin_session))
    found = differences(expected, actual)
    assert [d for d in found if not _known(name, d)] == []
