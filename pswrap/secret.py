"""Secrets that never show themselves: client secrets, private keys, access tokens.

A :class:`Secret` prints as ``<redacted>`` in ``str``, ``repr``, f-strings and JSON, refuses to be
pickled, and registers its value so that log records of pswrap and the libraries it drives (which
log whole protocol messages at DEBUG) have it replaced before any handler sees them.
"""

from __future__ import annotations

import hmac
import logging
import threading
from typing import Any, NoReturn

REDACTED = "<redacted>"

_known_lock = threading.Lock()
_known: set[str] = set()
# Values shorter than this are not scrubbed from logs: redacting "1" or "true" would wreck every line.
_MIN_SCRUB_LENGTH = 6


def _register(value: str) -> None:
    if len(value) >= _MIN_SCRUB_LENGTH:
        with _known_lock:
            _known.add(value)


def scrub(text: str) -> str:
    """Replace every known secret value in ``text`` with ``<redacted>``."""
    if not _known:
        return text
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def is_secret(text: str) -> bool:
    """Whether ``text`` (less a trailing newline) is exactly a known secret value."""
    if not _known:
        return False
    with _known_lock:
        return text.rstrip("\r\n") in _known


class Secret:
    """A secret string. Use :meth:`reveal` at the one place the plain value is needed."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str | Secret, name: str = "secret") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        self._value = value
        self.name = name
        _register(value)

    def reveal(self) -> str:
        """The plain value. Pass it straight to where it is needed; never log or print it."""
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled: secrets never go to disk")


def reveal(value: str | Secret | None) -> str | None:
    """The plain value of a secret or string (``None`` stays ``None``)."""
    if isinstance(value, Secret):
        return value.reveal()
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs every registered secret from a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug; do not hide the record
            message = None
        if message is not None:
            cleaned = scrub(message)
            if cleaned != message:
                record.msg = cleaned
                record.args = None
        if record.exc_info and not record.exc_text:
            # Handlers format the traceback after filters ran: format it now, so it is scrubbed too.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


_FILTER = RedactingFilter()
_PROTECTED_PREFIXES = ("pswrap", "psrpcore", "pypsrp", "msal", "spnego", "urllib3", "requests")


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with the redacting filter attached: every pswrap module logs through one.

    A filter on a logger only sees records logged on that very logger, so each of pswrap's loggers
    gets it where it is created, whatever the import order.
    """
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def protect_loggers(*prefixes: str) -> None:
    """Attach the redacting filter to every logger under the given names (and pswrap's libraries).

    Filters on a logger only see records logged on that very logger, so this walks every logger that
    exists now; call it again after importing a library that creates loggers lazily.
    """
    wanted = prefixes or _PROTECTED_PREFIXES
    manager: Any = logging.Logger.manager
    names = [name for name in list(manager.loggerDict) if name.split(".")[0] in wanted]
    for name in [*wanted, *names]:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
