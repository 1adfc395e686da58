"""PowerShell scripts from Jinja2 templates that no value can break out of.

Every ``{{ expression }}`` in a template is written as a PowerShell *literal* of its value
(:func:`ps_literal`): strings single-quoted with all five of PowerShell's single-quote characters
doubled, numbers, ``$true``/``$null``, arrays, ordered hashtables, dates… Nothing reaches the script
raw except names that pass the strict ``identifier`` filter and the ``param(…)`` block that
``param_block`` writes. Secrets never enter the text: a template declares them as parameters of the
script and the transport binds them at run time (:attr:`Script.parameters`).
"""

from __future__ import annotations

import base64
import contextvars
import datetime as _dt
import functools
import math
import numbers
import operator
import os
import re
import secrets
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, NoReturn

import jinja2
from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pswrap import _pscontext
from pswrap.errors import RenderError
from pswrap.objects import PSDateTime, PSObject, PSTimeSpan, Version
from pswrap.secret import REDACTED, Secret

__all__ = [
    "TEMPLATE_SUFFIX",
    "Identifier",
    "Script",
    "Templates",
    "builtin_template_dir",
    "ps_literal",
    "render_template",
]

TEMPLATE_SUFFIX = ".ps1.j2"

#: PowerShell's single quotes: any of them opens or closes a verbatim string, and doubled (any two in
#: a row) stands for the second one. Doubling every one of them is what makes a literal unbreakable.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_QUOTE_RE = re.compile(f"([{SINGLE_QUOTES}])")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL_LIMIT = 2**96
_BIGINT_BITS = 13_000  # about 3,900 digits: beyond, Python will not even write its decimal text
_TICKS_PER_SECOND = 10_000_000
_TEMPLATE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


# --------------------------------------------------------------------------------------------------
# Literals
# --------------------------------------------------------------------------------------------------


def ps_literal(value: Any) -> str:
    """The PowerShell source text of a literal that evaluates to ``value``.

    Raises :class:`~pswrap.errors.RenderError` for a secret (declare it as a script parameter
    instead), for a string with a lone surrogate (no encoding can carry it to PowerShell), for a number
    .NET cannot hold, for a self-containing list or dict, and for any type without a literal form
    (``PSObject``, sets, arbitrary objects). The forms are listed in the README.
    """
    return _literal(value, set())


def _literal(value: Any, active: set[int]) -> str:
    if isinstance(value, Secret):  # SecureString included
        raise RenderError(
            f"a secret ({value.name}) cannot be rendered into a script: declare it as a parameter "
            "with param_block(…) and pass it to render() under that name, so it is bound at run time"
        )
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, (int, numbers.Integral)):  # PSEnum, numpy integers: their integer value
        number = operator.index(value)
        if _INT64_MIN <= number <= _INT64_MAX:
            return str(number)
        if number.bit_length() > _BIGINT_BITS:
            raise RenderError(f"an integer of {number.bit_length()} bits is too large to render")
        return f"[bigint]'{number}'"
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, float) or (
        isinstance(value, numbers.Real) and not isinstance(value, numbers.Rational)
    ):  # numpy floats too: by value, never by their repr
        real = float(value)
        if math.isnan(real):
            return "[double]::NaN"
        if math.isinf(real):
            return "[double]::PositiveInfinity" if real > 0 else "[double]::NegativeInfinity"
        return float.__repr__(real)
    if isinstance(value, _dt.datetime):
        return _datetime(value)
    if isinstance(value, _dt.timedelta):
        return _timespan(value)
    if isinstance(value, uuid.UUID):
        return f"[guid]'{value}'"
    if isinstance(value, Version):
        return f"[version]'{value}'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[Convert]::FromBase64String('{base64.b64encode(bytes(value)).decode('ascii')}')"
    if isinstance(value, PSObject):
        raise RenderError(
            "a PSObject cannot be rendered into a script: pick the properties you need "
            "(they are plain values) or pass the object as a parameter"
        )
    if isinstance(value, (list, tuple)):
        with _visiting(value, active):
            items = [_literal(item, active) for item in value]
        if not items:
            return "@()"
        if len(items) == 1:
            return f"@(,{items[0]})"
        return f"@({', '.join(items)})"
    if isinstance(value, Mapping):
        with _visiting(value, active):
            return _hashtable(value, active)
    raise RenderError(
        f"a {type(value).__module__}.{type(value).__qualname__} has no PowerShell literal form; "
        "pass a str, number, bool, None, date, time span, UUID, Version, bytes, list or dict"
    )


def _string(value: str) -> str:
    surrogate = _SURROGATE_RE.search(value)
    if surrogate:
        raise RenderError(
            f"the string has a lone surrogate U+{ord(surrogate.group()):04X} at index {surrogate.start()}: "
            "it is not a character and cannot be sent to PowerShell in any encoding"
        )
    return "'" + _QUOTE_RE.sub(r"\1\1", value) + "'"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise RenderError(f"System.Decimal has no {value}: use a float for NaN and infinities")
    # System.Decimal is a 96-bit integer scaled by 10**-0..28. Trailing zeros beyond that may go.
    # Work on the digit string, never on 10**exponent: Decimal('1E+999999999') must not hang.
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:  # zero, with the scale it had (at most 28 places)
        return f"[decimal]'{Decimal((sign, (0,), min(max(exponent, -28), 0))):f}'"
    zeros = len(digits) - len(digits.rstrip("0"))
    # Drop the trailing zeros the scale or the size needs (never more than the scale allows).
    drop = min(zeros, max(-exponent, 0), max(-28 - exponent, len(digits) - 29, 0))
    digits, exponent = digits[: len(digits) - drop], exponent + drop
    if exponent < 0 and len(digits) == 29 and digits.endswith("0") and int(digits) >= _DECIMAL_LIMIT:
        digits, exponent = digits[:-1], exponent + 1
    if (
        exponent < -28
        or len(digits) + max(exponent, 0) > 29
        or int(digits) * 10 ** max(exponent, 0) >= _DECIMAL_LIMIT
    ):
        raise RenderError(
            f"{_short(str(value))} does not fit System.Decimal exactly (29 significant digits, 28 decimal places, "
            "magnitude below 7.9e28)"
        )
    exact = Decimal((sign, tuple(int(d) for d in digits), exponent))
    return f"[decimal]'{exact:f}'"


def _short(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:28]}…{text[-28:]}"


def _datetime(value: _dt.datetime) -> str:
    sub_microsecond = value.nanosecond // 100 if isinstance(value, PSDateTime) else 0
    offset = value.utcoffset()
    if offset is not None and offset % _dt.timedelta(minutes=1):
        value = value.astimezone(_dt.timezone.utc)  # .NET offsets are whole minutes: keep the instant
        offset = _dt.timedelta(0)
    ticks = value.microsecond * 10 + sub_microsecond
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{ticks:07d}"
    if offset is not None:
        if not offset:
            text += "Z"
        else:
            minutes = int(offset.total_seconds()) // 60
            sign = "-" if minutes < 0 else "+"
            text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return (
        f"[datetime]::Parse('{text}', [cultureinfo]::InvariantCulture, "
        "[System.Globalization.DateTimeStyles]::RoundtripKind)"
    )


def _timespan(value: _dt.timedelta) -> str:
    if isinstance(value, PSTimeSpan):
        ticks = value.ticks
    else:
        ticks = (value.days * 86_400 + value.seconds) * _TICKS_PER_SECOND + value.microseconds * 10
    if not _INT64_MIN <= ticks <= _INT64_MAX:
        raise RenderError(f"{value} is beyond System.TimeSpan's range (about ±29,227 years)")
    return f"[timespan]::new({ticks})"


def _hashtable(value: Mapping[Any, Any], active: set[int]) -> str:
    entries = []
    seen: dict[str, Any] = {}
    for key, item in value.items():
        if key is None or isinstance(key, (tuple, list, Mapping)):
            raise RenderError(f"a hashtable key cannot be {type(key).__name__}: use a string or a number")
        # PowerShell compares literal keys ignoring case and refuses duplicates when it parses the script.
        folded = _fold_case(str(key)) if isinstance(key, (str, int, float)) else repr(key)
        if folded in seen:
            raise RenderError(
                f"keys {seen[folded]!r} and {key!r} are the same key to PowerShell (hashtable keys "
                "ignore case): the script would not parse"
            )
        seen[folded] = key
        entries.append(f"{_literal(key, active)} = {_literal(item, active)}")
    return f"[ordered]@{{{'; '.join(entries)}}}"


def _fold_case(text: str) -> str:
    """Upper-case one character at a time, as .NET's OrdinalIgnoreCase does (no 'ß' -> 'SS')."""
    return "".join(up if len(up := char.upper()) == 1 else char for char in text)


class _visiting:
    """Refuse a list or dict that contains itself (its literal would never end)."""

    def __init__(self, value: object, active: set[int]) -> None:
        self.key = id(value)
        self.active = active

    def __enter__(self) -> None:
        if self.key in self.active:
            raise RenderError("a list or dict contains itself: it has no literal form")
        self.active.add(self.key)

    def __exit__(self, *exc: object) -> None:
        self.active.discard(self.key)


# --------------------------------------------------------------------------------------------------
# Text a template may emit unquoted
# --------------------------------------------------------------------------------------------------


class _Code(str):
    """Source text pswrap itself produced and vouches for; ``finalize`` lets it through unquoted."""

    __slots__ = ()

    def __html__(self) -> str:
        """Left alone by HTML escaping, should a template turn on ``{% autoescape %}``."""
        return self


_NAME_PATTERNS = {
    # Variable and parameter names: letters, digits, underscore; no leading digit.
    "name": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}"),
    # Command names: hyphen-joined words (Get-Mailbox, Get-EXOMailbox), each like a name.
    "command": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:-[A-Za-z0-9_]{1,64}){0,3}"),
}


class Identifier(_Code):
    """A command, parameter or variable name that matched a strict pattern; rendered as it is."""

    __slots__ = ()

    def __new__(cls, value: object, kind: str = "name") -> Identifier:
        pattern = _NAME_PATTERNS.get(kind)
        if pattern is None:
            raise RenderError(f"unknown identifier kind {kind!r}: use one of {', '.join(_NAME_PATTERNS)}")
        if not isinstance(value, str) or not pattern.fullmatch(value):
            shown = repr(value) if isinstance(value, (str, int, float)) else f"a {type(value).__name__}"
            raise RenderError(f"{shown} is not a safe PowerShell {kind}: it must match {pattern.pattern}")
        return super().__new__(cls, value)


# --------------------------------------------------------------------------------------------------
# Scripts and templates
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Script:
    """A rendered script: its PowerShell source, and the values a transport binds as its parameters.

    ``parameters`` are never part of ``text``; they may be secrets, so ``repr`` shows only their names.
    ``declared`` lists the names of the script's ``param(…)`` block in order (some may be unbound).
    """

    text: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    name: str | None = None
    declared: tuple[str, ...] = ()

    def __repr__(self) -> str:
        bound = ", ".join(f"{key}={REDACTED}" for key in self.parameters)
        return f"Script(name={self.name!r}, {len(self.text)} characters, parameters: {bound or 'none'})"

    @property
    def unbound(self) -> tuple[str, ...]:
        """Declared parameters that were given no value (PowerShell will see ``$null``)."""
        return tuple(name for name in self.declared if name not in self.parameters)


def builtin_template_dir(package_dir: Path | None = None) -> Path:
    """The built-in templates: ``pswrap/templates`` in a wheel, ``templates/`` beside it in a checkout."""
    package = package_dir or Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise RenderError(
        f"the built-in templates are missing: neither {package / 'templates'} nor "
        f"{package.parent / 'templates'} exists (a broken installation?)"
    )


class _ScriptLoader(BaseLoader):
    """Template ``name`` is the file ``name.ps1.j2`` in the first folder that has it."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = list(dirs)

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        name = template.removesuffix(TEMPLATE_SUFFIX)
        if not _TEMPLATE_NAME_RE.match(name):
            raise TemplateNotFound(template)
        for folder in self.dirs:
            path = folder / f"{name}{TEMPLATE_SUFFIX}"
            if path.is_file():
                mtime = path.stat().st_mtime
                source = path.read_text(encoding="utf-8")
                return source, str(path), lambda p=path, m=mtime: p.is_file() and p.stat().st_mtime == m

        raise TemplateNotFound(template)

    def list_templates(self) -> list[str]:
        names = {
            path.name.removesuffix(TEMPLATE_SUFFIX)
            for folder in self.dirs
            if folder.is_dir()
            for path in folder.glob(f"*{TEMPLATE_SUFFIX}")
        }
        return sorted(name for name in names if _TEMPLATE_NAME_RE.match(name))


class _Withheld:
    """Stands in a template for a value that must not be rendered: a declared parameter or a secret.

    Truth tests work (``{% if AccessToken %}``); turning it into text in any way is a RenderError.
    """

    __slots__ = ("_reason", "_truth")

    def __init__(self, truth: bool, reason: str) -> None:
        self._truth = truth
        self._reason = reason

    def fail(self) -> NoReturn:
        raise RenderError(self._reason)

    def __bool__(self) -> bool:
        return self._truth

    def __str__(self) -> str:
        self.fail()

    def __repr__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        self.fail()

    def __iter__(self) -> NoReturn:
        self.fail()

    def __len__(self) -> int:
        self.fail()

    def __getitem__(self, key: object) -> NoReturn:
        self.fail()

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        self.fail()


class _RenderState:
    """What one render records: the parameters the template declared, and where each value went.

    Each rendered value is preceded by a marker (a nonce no value can guess, and its number) until
    the whole script is known and the marker's context (code, a string, a comment) checked.
    """

    def __init__(self) -> None:
        self.declared: list[str] = []
        self.nonce = secrets.token_hex(8)
        self.values: list[tuple[str | None, int | None]] = []

    def mark(self, literal: str) -> str:
        self.values.append(_rendering_at())
        return f"\ue000{self.nonce}{len(self.values) - 1}\ue001{literal}"

    def unmark(self, text: str, default: str) -> str:
        """``text`` without its markers; a :class:`RenderError` when a value landed where it could
        change the script (a double-quoted string, a here-string, a comment)."""
        pattern = re.compile(f"\ue000{self.nonce}(\\d+)\ue001")
        parts: list[str] = []
        places: dict[int, int] = {}
        last = removed = 0
        for match in pattern.finditer(text):
            parts.append(text[last : match.start()])
            places[match.start() - removed] = int(match.group(1))
            removed += match.end() - match.start()
            last = match.end()
        parts.append(text[last:])
        clean = "".join(parts)
        for offset, context in sorted(_pscontext.contexts(clean, places).items()):
            if context in _pscontext.UNSAFE:
                template, line = self.values[places[offset]]
                raise RenderError(
                    f"a {{{{ }}}} value lands inside a {context}, where PowerShell would not read it as "
                    "a literal (its quotes would end the string, a $(…) in it would run, a newline would "
                    "end the comment): render it in code, e.g. assign it to a variable and use that",
                    template=template or default,
                    line=line,
                )
        return clean


_STATE: contextvars.ContextVar[_RenderState | None] = contextvars.ContextVar("pswrap_render", default=None)


class Templates:
    """The script templates: user folders first (to override or add by name), then the built-in ones.

    ``Templates(["./my-templates"]).render("exchange-connect", AccessToken=token, Organization=org)``
    """

    def __init__(self, dirs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.dirs: tuple[Path, ...] = (*(Path(d) for d in dirs), builtin_template_dir())
        self._loader = _ScriptLoader(self.dirs)
        # Sandboxed: a template cannot reach __class__, __globals__… to emit text around the literals.
        self.environment = ImmutableSandboxedEnvironment(
            loader=self._loader,
            undefined=StrictUndefined,
            autoescape=False,
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.environment.filters["identifier"] = Identifier
        self.environment.filters["flag"] = _flag
        self.environment.tests["given"] = _given
        self.environment.globals["param_block"] = self._param_block

    def names(self) -> list[str]:
        """Every template name, user and built-in, sorted."""
        return self._loader.list_templates()

    def source_path(self, name: str) -> Path:
        """The file that ``render(name)`` would use."""
        try:
            _, filename, _ = self._loader.get_source(self.environment, name)
        except TemplateNotFound:
            raise self._not_found(name) from None
        return Path(filename)

    def render(self, name: str, /, **values: Any) -> Script:
        """Render template ``name`` with ``values``.

        Values named like a parameter the template declares (``param_block``) go to
        :attr:`Script.parameters` and never into the text; the others are available to ``{{ }}``.
        """
        # First pass: learn which parameters the template declares (it may depend on the values).
        first = _RenderState()
        try:
            text = self._run(name, {key: _withhold_secret(key, v) for key, v in values.items()}, first)
        except RenderError:
            if not set(first.declared).intersection(values):
                raise
        else:
            if not set(first.declared).intersection(values):
                return Script(text=text, name=name, declared=tuple(first.declared))
        # Second pass: the declared ones are withheld, so rendering one of them fails loudly.
        context = {
            key: (_withhold_parameter(name, key, v) if key in first.declared else _withhold_secret(key, v))
            for key, v in values.items()
        }
        second = _RenderState()
        text = self._run(name, context, second)
        parameters = {key: values[key] for key in second.declared if key in values}
        return Script(
            text=text, parameters=MappingProxyType(parameters), name=name, declared=tuple(second.declared)
        )

    def _run(self, name: str, context: dict[str, Any], state: _RenderState) -> str:
        token = _STATE.set(state)
        try:
            template = self.environment.get_template(name)
            text = template.render(context)
        except TemplateNotFound as exc:
            if exc.name in (name, f"{name}{TEMPLATE_SUFFIX}"):
                raise self._not_found(name) from None
            where, line = _location(exc.__traceback__, name)
            raise RenderError(
                f"template {exc.name!r} (included by {where!r}) was not found in {self._folders()}",
                template=where,
                line=line,
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"syntax error: {exc.message}",
                template=_template_name(exc.filename) or exc.name or name,
                line=exc.lineno,
            ) from None
        except RenderError as exc:
            raise exc.located(*_location(exc.__traceback__, name)) from None
        except jinja2.UndefinedError as exc:
            where, line = _location(exc.__traceback__, name)
            raise RenderError(
                f"{exc.message}: pass it to render() (pswrap render: --var NAME=VALUE), or test it "
                "with `is defined` in the template",
                template=where,
                line=line,
                variable=_undefined_name(exc.message),
            ) from None
        except jinja2.TemplateError as exc:
            where, line = _location(exc.__traceback__, name)
            raise RenderError(str(exc), template=where, line=line) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            where, line = _location(exc.__traceback__, name)
            raise RenderError(f"{type(exc).__name__}: {exc}", template=where, line=line) from exc
        finally:
            _STATE.reset(token)
        text = state.unmark(text, name)
        if state.declared and not _PARAM_FIRST_RE.match(text):
            raise RenderError(
                "param_block(…) must come first in the script (only comments may precede it): "
                "PowerShell accepts param(…) only as the first statement",
                template=name,
            )
        return text

    def _param_block(self, *names: str) -> _Code:
        state = _STATE.get()
        if state is None:  # pragma: no cover - only reachable by rendering outside render()
            raise RenderError("param_block() is only available while rendering through Templates.render()")
        if state.declared:
            raise RenderError("param_block() may be called once per script")
        if not names:
            raise RenderError("param_block() needs at least one parameter name")
        checked = [Identifier(n) for n in names]
        if len({n.upper() for n in checked}) != len(checked):
            raise RenderError(f"param_block() names a parameter twice: {', '.join(checked)}")
        state.declared.extend(checked)
        return _Code(f"param({', '.join('$' + n for n in checked)})")

    def _folders(self) -> str:
        return ", ".join(str(d) for d in self.dirs)

    def _not_found(self, name: str) -> RenderError:
        known = ", ".join(self.names()) or "none"
        return RenderError(
            f"no template named {name!r} (a file {name}{TEMPLATE_SUFFIX}) in {self._folders()}; known: {known}"
        )


_PARAM_FIRST_RE = re.compile(r"\A(?:\s|#[^\n]*(?:\n|\Z)|<#.*?#>)*param\(", re.DOTALL)


def _finalize(value: Any) -> _Code:
    """What every ``{{ expression }}`` goes through: vouched-for code as is, anything else a literal
    (marked, so that its place in the script can be checked once the script is complete)."""
    if isinstance(value, _Code):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, _Withheld):
        value.fail()
    literal = ps_literal(value)
    state = _STATE.get()
    return _Code(literal if state is None else state.mark(literal))


def _rendering_at() -> tuple[str | None, int | None]:
    """The template and line being rendered now (the innermost template frame on the stack)."""
    frame = sys._getframe(1)
    while frame is not None:
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            name = _template_name(template.filename) or template.name
            return name, template.get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None, None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise RenderError(
        f"expected true or false, got {type(value).__name__} {value!r} (pswrap render: --var NAME:json=true)"
    )


def _given(value: Any) -> bool:
    """``{% if PageSize is given %}``: defined and not None."""
    return not isinstance(value, Undefined) and value is not None


def _withhold_secret(key: str, value: Any) -> Any:
    if isinstance(value, Secret):
        return _Withheld(
            bool(value),
            f"{key} is a secret and cannot be rendered into a script: declare it with "
            f'param_block("{key}", …) so it is bound as a parameter at run time',
        )
    return value


def _withhold_parameter(template: str, key: str, value: Any) -> _Withheld:
    return _Withheld(
        bool(value),
        f"{key} is a parameter of {template!r}: its value is bound at run time; refer to it as "
        f"${key} in the script, not {{{{ {key} }}}}",
    )


def _template_name(filename: str | None) -> str | None:
    if not filename:
        return None
    base = Path(filename).name
    return base.removesuffix(TEMPLATE_SUFFIX) if base.endswith(TEMPLATE_SUFFIX) else None


def _location(tb: TracebackType | None, default: str) -> tuple[str, int | None]:
    """The innermost template file and line in a traceback Jinja rewrote to point at templates."""
    where, line = default, None
    while tb is not None:
        name = _template_name(tb.tb_frame.f_code.co_filename)
        if name is not None:
            where, line = name, tb.tb_lineno
        tb = tb.tb_next
    return where, line


def _undefined_name(message: str | None) -> str | None:
    match = re.match(r"'([^']+)' is undefined", message or "")
    return match.group(1) if match else None


@functools.lru_cache(maxsize=8)
def _templates(dirs: tuple[str, ...]) -> Templates:
    return Templates(dirs)


def render_template(
    name: str, /, *, template_dirs: Iterable[str | os.PathLike[str]] = (), **values: Any
) -> Script:
    """Render template ``name`` (user ``template_dirs`` first, then the built-in ones) with ``values``."""
    return _templates(tuple(str(d) for d in template_dirs)).render(name, **values)
