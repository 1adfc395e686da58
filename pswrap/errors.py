"""Every exception pswrap raises. Each carries the facts as attributes and a message a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pswrap.objects import ErrorRecord


class PswrapError(Exception):
    """Base class of every pswrap error."""


class ClixmlError(PswrapError, ValueError):
    """Malformed or unsafe CLIXML. ``offset`` is the character offset in the decoded text (or ``None``)."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = message
        self.offset = offset
        self.line = line
        self.column = column
        self.source = source
        #: The items completed (in the failing call) before the error: results are never dropped.
        self.items: list[Any] = []
        #: Set when a <Ref> named an object the streaming reader no longer held.
        self.unresolved_reference = False
        where = []
        if source:
            where.append(source)
        if line is not None:
            where.append(f"line {line}, column {column}")
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class ConfigError(PswrapError):
    """Configuration that cannot be used: a missing setting, an unknown profile, a bad value."""


class RenderError(PswrapError):
    """A template or value that cannot be rendered safely."""


class TokenError(PswrapError):
    """An access token could not be obtained."""


class TransportError(PswrapError):
    """The PowerShell session failed: a dead process, garbage on the wire, a refused connection.

    ``partial`` holds whatever the failed invocation had already produced.
    """

    def __init__(self, message: str, *, partial: Any = None, stderr_tail: str | None = None) -> None:
        self.partial = partial
        self.stderr_tail = stderr_tail
        if stderr_tail:
            message = f"{message}\n--- stderr (last lines) ---\n{stderr_tail}"
        super().__init__(message)


class ProtocolError(TransportError):
    """The peer broke the wire protocol: a malformed packet, garbage where CLIXML or PSRP was expected.

    ``data`` holds (the start of) the offending bytes.
    """

    def __init__(
        self, message: str, *, data: bytes = b"", partial: Any = None, stderr_tail: str | None = None
    ) -> None:
        self.data = data
        super().__init__(message, partial=partial, stderr_tail=stderr_tail)


class InvocationNotStarted(TransportError):
    """The invocation never reached PowerShell (the session broke first): running it again is safe."""


class InvocationTimeout(TransportError, TimeoutError):
    """An invocation did not finish within its timeout. ``timeout`` is the limit in seconds.

    The invocation was stopped; when PowerShell did not answer the stop either, its process was killed.
    """

    def __init__(
        self, message: str, *, timeout: float, partial: Any = None, stderr_tail: str | None = None
    ) -> None:
        self.timeout = timeout
        super().__init__(message, partial=partial, stderr_tail=stderr_tail)


class PowerShellError(PswrapError):
    """PowerShell reported an error: a terminating error, or any error when asked to raise on errors."""

    def __init__(self, record: ErrorRecord, *, partial: Any = None) -> None:
        self.record = record
        self.partial = partial
        super().__init__(str(record))
