"""No value breaks out of a template: a {{ }} inside a double-quoted string, a here-string or a comment
is refused at render time; templates are sandboxed; ps_literal is bounded and renders numbers by value."""

from __future__ import annotations

import numbers
import subprocess
import sys
from pathlib import Path

import pytest

from pswrap import RenderError, Templates, ps_literal
from tests import psquote

EVIL = 'x"; $(Remove-Item C:\\ -Recurse) # \n Remove-Mailbox bob `"'


def templates(tmp_path: Path, **sources: str) -> Templates:
    for name, text in sources.items():
        (tmp_path / f"{name}.ps1.j2").write_text(text, encoding="utf-8")
    return Templates([tmp_path])


UNSAFE = {
    "double-quoted": ('$a = 1\nWrite-Output "Hello {{ Name }}"\n', 2, "double-quoted string"),
    "curly-double-quoted": (
        "$a = 1\n$b = 2\nWrite-Output \u201cHello {{ Name }}\u201d\n",
        3,
        "double-quoted string",
    ),
    "subexpression": ('Write-Output "a $( {{ Name }} ) b"\n', 1, "double-quoted string"),
    "after-escaped-quote": ('Write-Output "say ""hi"" to {{ Name }}"\n', 1, "double-quoted string"),
    "here-string": ('$x = @"\nDear {{ Name }},\n"@\n', 2, "here-string"),
    "verbatim-here-string": ("$x = @'\n{{ Name }}\n'@\n", 2, "here-string"),
    "single-quoted": ("$a = 1\n$y = '{{ Name }}'\n", 2, "single-quoted string"),
    "curly-single-quoted": ("$y = \u2018pre {{ Name }}\u2019\n", 1, "single-quoted string"),
    "line-comment": ("Write-Output 1\n# greet {{ Name }}\n", 2, "comment"),
    "trailing-comment": ("Write-Output 1 # for {{ Name }}\n", 1, "comment"),
    "block-comment": ("<#\n  about {{ Name }}\n#>\nWrite-Output 1\n", 2, "comment"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_a_value_in_an_unsafe_place_is_refused_naming_template_and_line(tmp_path: Path, case: str) -> None:
    source, line, context = UNSAFE[case]
    with pytest.raises(RenderError, match=f"inside a {context}") as caught:
        templates(tmp_path, t=source).render("t", Name=EVIL)
    assert caught.value.template == "t" and caught.value.line == line


def test_an_included_template_is_named(tmp_path: Path) -> None:
    found = templates(tmp_path, outer="Write-Output 1\n{% include 'inner' %}\n", inner="\n\n# {{ Name }}\n")
    with pytest.raises(RenderError, match="inside a comment") as caught:
        found.render("outer", Name="bob")
    assert caught.value.template == "inner" and caught.value.line == 3


SAFE = (
    "<# a block comment with \"quotes\" and 'quotes' #>\n"
    "# a comment\n"
    'Write-Output "a $(")") b" {{ Name }}\n'
    "$x = @'\nnot {{ code }}\n'@\n".replace("{{ code }}", "code")
    + "Write-Output 'single' {{ Name }} \"double\" {{ Name }} # done\n"
)


def test_values_in_code_still_render_and_stay_literal(tmp_path: Path) -> None:
    text = templates(tmp_path, t=SAFE).render("t", Name=EVIL).text
    tree = psquote.parse(text)
    assert psquote.problems(tree) == []
    assert "Remove-Item" not in psquote.command_names(text) and "Remove-Mailbox" not in psquote.command_names(
        text
    )
    assert "\ue000" not in text and "\ue001" not in text  # no marker left behind


def test_built_in_templates_render(tmp_path: Path) -> None:
    found = Templates()
    script = found.render(
        "exchange-invoke",
        AccessToken="t",
        Organization="contoso.onmicrosoft.com",
        PswrapCommand="Get-Mailbox",
        PswrapArguments=[],
        PswrapParameters={"Identity": EVIL},
        CommandName=["Get-Mailbox"],
        PageSize=500,
    )
    assert "Import-Module ExchangeOnlineManagement" in script.text


@pytest.mark.parametrize(
    "expression",
    [
        "Name.__class__",
        "Name.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "cycler.__init__.__globals__",
        "param_block.__globals__",
        "Name | attr('__class__')",
        "'{0.__class__}'.format(Name)",
    ],
)
def test_templates_are_sandboxed(tmp_path: Path, expression: str) -> None:
    with pytest.raises(RenderError, match=r"unsafe|undefined"):
        templates(tmp_path, t=f"Write-Output {{{{ {expression} }}}}\n").render("t", Name="bob")


def test_a_huge_decimal_exponent_is_refused_at_once() -> None:
    program = (
        "from decimal import Decimal\nfrom pswrap import ps_literal, RenderError\n"
        "for text in ('1E+999999999', '-7E+999999999', '1E-999999999', '1' + '0' * 200000 + 'E-200000'):\n"
        "    try:\n        print(ps_literal(Decimal(text)))\n"
        "    except RenderError as exc:\n        print('refused', str(exc).split(' does not fit')[0])\n"
        "print(ps_literal(Decimal('0E+999999999')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[:3] == ["refused 1E+999999999", "refused -7E+999999999", "refused 1E-999999999"]
    assert lines[3] == "[decimal]'1.0000000000000000000000000000'" and lines[4] == "[decimal]'0'"


class _LoudFloat(float):
    def __repr__(self) -> str:  # numpy 2 scalars repr as np.float64(1.5)
        return "np.float64(1.5); Remove-Mailbox bob"

    __str__ = __repr__


class _Float32(numbers.Real):  # a real number that is not a float subclass (like numpy.float32)
    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return "np.float32(0.25)"

    __abs__ = __add__ = __ceil__ = __eq__ = __floor__ = __floordiv__ = __le__ = __lt__ = __mod__ = None  # type: ignore[assignment]
    __mul__ = __neg__ = __pos__ = __pow__ = __radd__ = __rfloordiv__ = __rmod__ = __rmul__ = None  # type: ignore[assignment]
    __round__ = __rpow__ = __rtruediv__ = __truediv__ = __trunc__ = None  # type: ignore[assignment]


class _Int64:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return "np.int64(7)"


numbers.Integral.register(_Int64)


def test_numeric_subclasses_render_by_value() -> None:
    assert ps_literal(_LoudFloat(1.5)) == "1.5"
    assert ps_literal(_Float32(0.25)) == "0.25"
    assert ps_literal(_Int64(7)) == "7"
    assert ps_literal([_LoudFloat(2.0), _Int64(-3)]) == "@(2.0, -3)"
    with pytest.raises(RenderError, match="too large"):
        ps_literal(2**20000)


def test_two_values_side_by_side_are_refused(tmp_path: Path) -> None:
    """``{{ a }}{{ b }}`` makes one string of both (``'a''b'``): the second lands inside the first."""
    with pytest.raises(RenderError, match="inside a single-quoted string"):
        templates(tmp_path, t="Write-Output {{ Name }}{{ Name }}\n").render("t", Name="bob")
