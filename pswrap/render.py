"""Safe PowerShell from Jinja2 templates: no value can break out of the script it is rendered into.

Every ``{{ expression }}`` in a template goes through :func:`ps_literal`, which writes the value as a
PowerShell literal that PowerShell's own tokenizer reads back as exactly that value; raw text only
comes from the template itself, from :func:`param_block` and from the ``identifier`` filter, which
admits nothing but strict names. Secrets are never rendered: a template declares them as parameters
of the script (``{{ param_block("AccessToken") }}``) and the transport binds them at run time.

PowerShell treats five characters as the single quote (U+0027, U+2018, U+2019, U+201A, U+201B);
inside a single-quoted string any of them followed by any of them stands for the second. So every
one of them is doubled: doubling only U+0027 would let ``bob\u2019; Remove-Mailbox x; \u2019`` run.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2
from jinja2 import nodes

from pswrap.errors import RenderError
from pswrap.objects import PSEnum, PSTimeSpan, Version
from pswrap.secret import REDACTED, Secret

__all__ = [
    "SINGLE_QUOTES",
    "Script",
    "Templates",
    "identifier",
    "param_block",
    "ps_literal",
    "render_template",
]

#: PowerShell's five single-quote characters.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_DOUBLE_QUOTES = str.maketrans({q: q + q for q in SINGLE_QUOTES})
_INT64 = (-(2**63), 2**63 - 1)
_SUFFIX = ".ps1.j2"

#: Names a template may put in the script raw: commands (``Get-Mailbox``), parameters and variables.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)?\Z")


class _Raw(str):
    """Text that is already PowerShell source (a checked identifier, a param block)."""

    __slots__ = ()


def _string(text: str) -> str:
    if type(text) is not str:  # a str subclass (jinja2's Markup…) could override the methods used below
        text = str.__str__(text)
    if "\x00" in text:
        # The grammar tooling (and some hosts) stop at NUL in source text: join literals around [char]0.
        return "(" + " + ".join("[char]0" if part == "" else _string(part) for part in _nul_split(text)) + ")"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RenderError("a string holds a lone surrogate, which no script text can carry") from None
    return "'" + text.translate(_DOUBLE_QUOTES) + "'"


def _nul_split(text: str) -> list[str]:
    """``"a\\0\\0b"`` -> ``["a", "", "", "b"]`` minus empty ends: text pieces and one ``""`` per NUL."""
    out: list[str] = []
    for index, piece in enumerate(text.split("\x00")):
        if index:
            out.append("")
        if piece:
            out.append(piece)
    return out


def ps_literal(value: Any) -> str:
    """``value`` as a PowerShell literal that reads back as exactly ``value``.

    Strings are single-quoted with all five single-quote characters doubled; ``True``/``False``/
    ``None`` are ``$true``/``$false``/``$null``; numbers, ``Decimal``, dates (with their 100 ns),
    durations, GUIDs, versions and bytes use forms PowerShell reads back exactly; lists become
    ``@(…)`` and mappings ``[ordered]@{…}``. A secret, or any other type, raises :class:`RenderError`.
    """
    return _literal(value, set())


def _literal(value: Any, active: set[int]) -> str:
    if isinstance(value, Secret):
        raise RenderError(
            f"refusing to render a secret ({value.name}) into script text: declare it as a parameter of "
            "the script with param_block() and pass it by name, so it is bound at run time"
        )
    if isinstance(value, _Raw):
        return str(value)
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, PSEnum):
        return str(int(value))
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return str(value)
        return f"[bigint]'{value}'"
    if isinstance(value, float):
        if math.isnan(value):
            return "[double]::NaN"
        if math.isinf(value):
            return "[double]::PositiveInfinity" if value > 0 else "[double]::NegativeInfinity"
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise RenderError(f"a .NET decimal cannot be {value}")
        return f"[decimal]'{value}'"
    if isinstance(value, _dt.datetime):
        return (
            f"[datetime]::Parse('{_iso_datetime(value)}', [cultureinfo]::InvariantCulture, "
            "[System.Globalization.DateTimeStyles]::RoundtripKind)"
        )
    if isinstance(value, _dt.timedelta):
        return f"[timespan]::new({_ticks(value)})"
    if isinstance(value, uuid.UUID):
        return f"[guid]'{value}'"
    if isinstance(value, Version):
        return f"[version]'{value}'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[Convert]::FromBase64String('{base64.b64encode(bytes(value)).decode('ascii')}')"
    key = id(value)
    if key in active:
        raise RenderError("a value contains itself; it has no literal")
    if isinstance(value, Mapping):
        active.add(key)
        try:
            pairs = "; ".join(f"{_key(k, active)} = {_literal(v, active)}" for k, v in value.items())
        finally:
            active.discard(key)
        return f"[ordered]@{{{pairs}}}"
    if isinstance(value, (list, tuple)):
        active.add(key)
        try:
            items = [_literal(v, active) for v in value]
        finally:
            active.discard(key)
        if not items:
            return "@()"
        if len(items) == 1:
            return f"@(,{items[0]})"
        return f"@({', '.join(items)})"
    raise RenderError(
        f"no PowerShell literal for a {type(value).__module__}.{type(value).__qualname__}: pass strings, "
        "numbers, booleans, dates, GUIDs, bytes, lists or mappings, or bind the value as a parameter"
    )


def _key(key: Any, active: set[int]) -> str:
    if isinstance(key, (list, tuple, Mapping)):
        raise RenderError("a hashtable key must be a single value")
    return _literal(key, active)


def _iso_datetime(value: _dt.datetime) -> str:
    ticks = value.microsecond * 10 + getattr(value, "nanosecond", 0) // 100
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    text += f".{ticks:07d}"
    offset = value.utcoffset()
    if offset is None:
        return text
    if offset == _dt.timedelta(0) and value.tzinfo is _dt.timezone.utc:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    if offset.total_seconds() % 60:
        raise RenderError(".NET offsets are whole minutes; this datetime's offset has seconds")
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _ticks(value: _dt.timedelta) -> int:
    if isinstance(value, PSTimeSpan):
        return value.ticks
    return ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 10


def identifier(name: Any) -> _Raw:
    """A command, parameter or variable name for raw use in a template; anything else raises."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise RenderError(
            f"{name!r} is not a plain PowerShell name (letters, digits, _ and one Verb-Noun dash); "
            "pass values as literals ({{ value }}) or as parameters instead"
        )
    return _Raw(name)


def param_block(*names: str) -> _Raw:
    """``param($A, $B)``: the script's run-time parameters. Values passed under these names are bound
    by the transport when the script runs and are never rendered."""
    return _Raw("param(" + ", ".join("$" + identifier(n) for n in names) + ")")


@dataclasses.dataclass(frozen=True)
class Script:
    """Rendered PowerShell: ``text`` to run, and ``parameters`` to bind to it at run time."""

    text: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    def __repr__(self) -> str:
        bound = ", ".join(self.parameters) or "none"
        return (
            f"Script(name={self.name!r}, {len(self.text)} characters, parameters bound at run time: {bound})"
        )

    def redacted(self) -> str:
        """The text with a comment naming the bound parameters, their values shown as ``<redacted>``."""
        if not self.parameters:
            return self.text
        bound = ", ".join(f"${name} = {REDACTED}" for name in self.parameters)
        return f"# parameters bound at run time: {bound}\n{self.text}"


class _BoundParameter:
    """Stands in the template context for a value that is bound, not rendered."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        raise RenderError(
            f"{self.name} is a run-time parameter of this script: write ${self.name} in the template, "
            f"not {{{{ {self.name} }}}}"
        )

    __repr__ = __str__


def _finalize(value: Any) -> str:
    if isinstance(value, (_BoundParameter, jinja2.Undefined)):
        str(value)  # both raise, naming the value
    return ps_literal(value)


def builtin_template_dir() -> Path:
    """Where the built-in templates are: inside the installed package, or beside it in a checkout."""
    packaged = resources.files("pswrap").joinpath("templates")
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise RenderError("pswrap's built-in templates are missing (a broken installation?)")


class Templates:
    """The scripts pswrap can render: user folders first (to override or add by name), then built-ins."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.dirs = [Path(d) for d in dirs]
        for folder in self.dirs:
            if not folder.is_dir():
                raise RenderError(f"template folder {folder} does not exist")
        search = [str(d) for d in self.dirs] + [str(builtin_template_dir())]
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=_finalize,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Whatever a filter returns still passes through finalize (ps_literal): only ``identifier`` and
        # ``param_block`` produce raw source, and only after checking every name.
        self.environment.filters["identifier"] = identifier
        self.environment.globals["param_block"] = param_block

    def names(self) -> list[str]:
        """Every template name available (user ones shadowing built-ins of the same name).

        Names starting with ``_`` are partials for ``{% include %}`` and are not listed.
        """
        return sorted(
            {
                n[: -len(_SUFFIX)]
                for n in self.environment.list_templates()
                if n.endswith(_SUFFIX) and not n.startswith("_")
            }
        )

    def render(self, name: str, /, **values: Any) -> Script:
        """Render template ``name`` (``"exchange-connect"``) with ``values``.

        Values named in the template's ``param_block`` go to :attr:`Script.parameters`; the others
        are rendered as literals wherever the template uses them.
        """
        filename = name if name.endswith(_SUFFIX) else name + _SUFFIX
        try:
            source, _, _ = self.environment.loader.get_source(self.environment, filename)  # type: ignore[union-attr]
            template = self.environment.get_template(filename)
        except jinja2.TemplateNotFound:
            raise RenderError(
                f"no template named {name!r} (available: {', '.join(self.names()) or 'none'})"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {name!r} line {exc.lineno}: {exc.message}") from None
        declared = _declared_parameters(self.environment, source)
        context = {k: (_BoundParameter(k) if k in declared else v) for k, v in values.items()}
        try:
            text = template.render(**context)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {name!r}: {exc.message}; pass it as a value") from None
        except RenderError as exc:
            raise RenderError(f"template {name!r}: {exc}") from None
        missing = [p for p in declared if p not in values]
        parameters = {p: values[p] for p in declared if p in values}
        if missing:
            raise RenderError(f"template {name!r} needs run-time parameter(s) {', '.join(missing)}")
        return Script(text, parameters, name)


def _declared_parameters(environment: jinja2.Environment, source: str) -> list[str]:
    """The names given to ``param_block(...)`` in a template (constant strings only)."""
    declared: list[str] = []
    for call in environment.parse(source).find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "param_block":
            for arg in call.args:
                if not isinstance(arg, nodes.Const) or not isinstance(arg.value, str):
                    raise RenderError("param_block() takes parameter names as plain strings")
                declared.append(arg.value)
    return declared


def render_template(
    name: str, *, template_dirs: Iterable[str | os.PathLike[str]] = (), **values: Any
) -> Script:
    """Render a template by name (user folders in ``template_dirs`` are searched first)."""
    return Templates(template_dirs).render(name, **values)
