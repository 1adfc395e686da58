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


class ExpansionError(PswrapError, ValueError):
    """A value whose JSON would repeat its shared objects far beyond its own size (a hostile ``<Ref>`` graph)."""


class ConfigError(PswrapError):
    """Configuration that cannot be used: a missing setting, an unknown profile, a bad value."""


class RenderError(PswrapError):
    """A template or value that cannot be rendered safely.

    ``template`` names the template (when rendering one), ``line`` the line in that template's file,
    ``variable`` the undefined variable (when that was the problem); ``reason`` is the bare message.
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        line: int | None = None,
        variable: str | None = None,
    ) -> None:
        self.reason = message
        self.template = template
        self.line = line
        self.variable = variable
        where = ""
        if template is not None:
            where = f"template {template!r}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, template: str, line: int | None) -> RenderError:
        """This error with the template and line filled in (a value's error, found while rendering)."""
        if self.template is not None:
            return self
        return type(self)(self.reason, template=template, line=line, variable=self.variable)


class TokenError(PswrapError):
    """An access token could not be obtained.

    ``authority`` is where it was asked for, ``client_id`` the application (or managed identity),
    ``action`` one line a person can act on.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        authority: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.reason = message
        self.action = action
        self.authority = authority
        self.client_id = client_id
        super().__init__(f"{message}\n  -> {action}" if action else message)


class EntraError(TokenError):
    """Microsoft Entra ID answered the token request with an error (an ``AADSTS`` code).

    ``code`` is the AADSTS number, ``error`` the OAuth error (``invalid_client``…), ``description``
    Entra's own first line; ``correlation_id``, ``trace_id`` and ``timestamp`` find the request in the
    tenant's sign-in logs and in a support case.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        error: str | None = None,
        description: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        timestamp: str | None = None,
        status: int | None = None,
        action: str | None = None,
        authority: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.code = code
        self.error = error
        self.description = description
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.timestamp = timestamp
        self.status = status
        facts = [f"AADSTS{code}" if code is not None else error or "no error code"]
        if correlation_id:
            facts.append(f"correlation id {correlation_id}")
        if trace_id:
            facts.append(f"trace id {trace_id}")
        if timestamp:
            facts.append(f"at {timestamp}")
        text = f"{message} ({', '.join(facts)})"
        if description:
            text = f"{text}\n  Entra ID said: {description}"
        super().__init__(text, action=action, authority=authority, client_id=client_id)
        self.reason = message


class CredentialRejectedError(EntraError):
    """The client secret or certificate was refused: wrong, expired, or not registered on the app."""


class ApplicationNotFoundError(EntraError):
    """No application with this client id exists in the tenant."""


class TenantNotFoundError(EntraError):
    """The tenant does not exist (in this cloud)."""


class ConsentRequiredError(EntraError):
    """A tenant administrator must act on the application: grant consent, enable or create it."""


class ScopeRejectedError(EntraError):
    """The requested scope or resource is not valid for an app-only token in this tenant."""


class IdentityProviderUnavailableError(TokenError):
    """The identity provider could not be used: connection refused, timeout, TLS failure, HTTP 5xx.

    ``problem`` names which (``"connection refused"``, ``"timed out"``, ``"TLS failure"``,
    ``"HTTP 503"``…); ``url`` is the address that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: str,
        url: str | None = None,
        action: str | None = None,
        authority: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.url = url
        super().__init__(message, action=action, authority=authority, client_id=client_id)


class ManagedIdentityError(TokenError):
    """The managed identity endpoint refused or is absent (not running on Azure, identity not assigned)."""


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


class WinRMError(TransportError):
    """A WinRM host could not be reached, or refused or failed a request.

    ``url`` is the endpoint, ``operation`` what pswrap was doing (``"open a PowerShell session"``,
    ``"receive the output of Get-Mailbox"``…), ``code`` the host's WSMan fault code (``2150858843``:
    the shell is gone; ``5``: access denied) or HTTP status, ``reason`` the host's own words.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        operation: str | None = None,
        code: int | None = None,
        reason: str | None = None,
        partial: Any = None,
    ) -> None:
        self.url = url
        self.operation = operation
        self.code = code
        self.reason = reason
        super().__init__(message, partial=partial)


class WinRMAuthenticationError(WinRMError):
    """The WinRM host rejected the credentials, or the authentication method cannot be used here."""


class SSHError(TransportError):
    """An SSH host could not be reached, or the SSH connection or its ``powershell`` subsystem failed.

    ``host`` is ``user@host:port``; ``reason`` the underlying problem in the SSH library's words.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        reason: str | None = None,
        partial: Any = None,
        stderr_tail: str | None = None,
    ) -> None:
        self.host = host
        self.reason = reason
        super().__init__(message, partial=partial, stderr_tail=stderr_tail)


class SSHHostKeyError(SSHError):
    """The SSH host's key is unknown (and accepting new keys was not asked for), changed, or revoked.

    ``fingerprint`` is the key the host offered (``SHA256:…``), ``key_type`` its type, ``known`` the
    fingerprints known_hosts or ``host_key_fingerprint`` expected instead (empty for an unknown host).
    """

    def __init__(
        self, message: str, *, host: str, fingerprint: str, key_type: str, known: tuple[str, ...] = ()
    ) -> None:
        self.fingerprint = fingerprint
        self.key_type = key_type
        self.known = known
        super().__init__(message, host=host)


class SSHAuthenticationError(SSHError):
    """The SSH host accepted none of the credentials. ``tried`` names the methods (and keys) pswrap
    tried; ``offered`` the methods the host offered."""

    def __init__(self, message: str, *, host: str, tried: tuple[str, ...], offered: tuple[str, ...]) -> None:
        self.tried = tried
        self.offered = offered
        super().__init__(message, host=host)


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


class InvocationInterrupted(PswrapError):
    """Reading the invocation's result was interrupted (Ctrl-C, an exception in ``on_record``), so
    pswrap stopped the invocation. ``partial`` is the result: what arrived before stays readable."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        self.partial = partial
        super().__init__(message)


class PowerShellError(PswrapError):
    """PowerShell reported an error: a terminating error, or any error when asked to raise on errors."""

    def __init__(self, record: ErrorRecord, *, partial: Any = None) -> None:
        self.record = record
        self.partial = partial
        super().__init__(str(record))


class ExchangeError(PswrapError):
    """Exchange Online could not be reached or used. ``action`` is one line a person can act on;
    ``record`` is PowerShell's error record when there was one."""

    def __init__(self, message: str, *, action: str | None = None, record: ErrorRecord | None = None) -> None:
        self.reason = message
        self.action = action
        self.record = record
        super().__init__(f"{message}\n  -> {action}" if action else message)


class ExchangeModuleError(ExchangeError):
    """The ExchangeOnlineManagement module is missing from, or too old on, the PowerShell pswrap runs."""


class ExchangeConnectError(ExchangeError):
    """``Connect-ExchangeOnline`` failed. ``causes`` lists what pswrap found wrong (the role, the
    organization, the token's expiry) when Exchange's own answer (401/403) says too little."""

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        record: ErrorRecord | None = None,
        causes: tuple[str, ...] = (),
    ) -> None:
        self.causes = causes
        super().__init__(message, action=action, record=record)


class NotSupportedByTransport(PswrapError, ValueError):
    """The transport cannot run the invocation as given (a script over the admin API, a SecureString…).

    ``transport`` is the transport's name, ``what`` the part it cannot run, ``action`` what to do instead.
    """

    def __init__(self, message: str, *, transport: str, what: str, action: str | None = None) -> None:
        self.transport = transport
        self.what = what
        self.action = action
        super().__init__(f"{message}\n  -> {action}" if action else message)


class AdminApiError(TransportError):
    """Exchange's admin REST API refused or failed a request before a cmdlet could answer.

    ``status`` is the HTTP status (``None`` when no answer came), ``reason`` the server's own words
    (the ``x-ms-diagnostics`` reason, or the body), ``cmdlet`` the cmdlet, ``request_id`` the
    ``client-request-id`` of the failed request (quote it to Microsoft support), ``may_have_run``
    whether the cmdlet may have run anyway (``False``: it provably did not), ``action`` what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        cmdlet: str | None = None,
        request_id: str | None = None,
        may_have_run: bool = False,
        action: str | None = None,
        partial: Any = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.cmdlet = cmdlet
        self.request_id = request_id
        self.may_have_run = may_have_run
        self.action = action
        text = message
        if request_id:
            text = f"{text} (client-request-id {request_id})"
        if action:
            text = f"{text}\n  -> {action}"
        super().__init__(text, partial=partial)


class AdminApiAuthError(AdminApiError, InvocationNotStarted):
    """HTTP 401 from the admin API: the access token was refused, so nothing ran.

    ``problem`` says why: ``"expired_token"`` (still refused after one fresh token),
    ``"missing_permission"`` (no ``Exchange.ManageAsApp`` in the token's roles), ``"wrong_audience"``,
    ``"wrong_tenant"`` or ``"invalid_token"``.
    """

    def __init__(self, message: str, *, problem: str, **facts: Any) -> None:
        self.problem = problem
        super().__init__(message, **facts)


class AdminApiBusyError(AdminApiError):
    """The admin API was throttling (429, "maximum number of concurrent requests") or unavailable (5xx).

    ``retry_after`` is the server's ``Retry-After`` in seconds (``None`` when it gave none),
    ``attempts`` how many requests were made, and ``not_retried`` why pswrap stopped retrying
    (a mutating cmdlet that may have run, the attempt or time cap…).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        attempts: int = 1,
        not_retried: str | None = None,
        **facts: Any,
    ) -> None:
        self.retry_after = retry_after
        self.attempts = attempts
        self.not_retried = not_retried
        super().__init__(message, **facts)


class AdminApiConnectionError(AdminApiError):
    """The admin API could not be reached, or the connection broke before an answer arrived.

    ``problem`` names what failed (``"connection refused"``, ``"connection dropped"``, ``"TLS failure"``,
    ``"unsafe redirect"``…); ``attempts`` how many requests were made; ``not_retried`` why no more.
    """

    def __init__(
        self, message: str, *, problem: str, attempts: int = 1, not_retried: str | None = None, **facts: Any
    ) -> None:
        self.problem = problem
        self.attempts = attempts
        self.not_retried = not_retried
        super().__init__(message, **facts)
