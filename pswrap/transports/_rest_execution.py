"""One admin-API invocation of :class:`~pswrap.transports.rest.RestTransport`: its pages, retries
(:class:`RetryPolicy`), redirects and token refreshes, and how each failure is classified."""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from pswrap.clouds import EXCHANGE_ROLE
from pswrap.errors import (
    AdminApiAuthError,
    AdminApiBusyError,
    AdminApiConnectionError,
    AdminApiError,
    ConfigError,
    InvocationTimeout,
    ProtocolError,
    TokenError,
    TransportError,
)
from pswrap.objects import ErrorRecord, WarningRecord
from pswrap.secret import get_logger
from pswrap.transports import adminapi
from pswrap.transports.base import Execution, Invocation, Outcome, StreamItem
from pswrap.verbs import is_read_only

if TYPE_CHECKING:
    from pswrap.auth import AccessToken
    from pswrap.transports.rest import RestTransport

# The rest transport's logger, as before this module was split from it.
log = get_logger("pswrap.transports.rest")

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({500, 502, 503, 504})
_ERROR_BODY_LIMIT = 1 << 20  # bytes of a failure status's body kept once decoded
_GUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How reads are retried: ``retries`` more attempts after the first, waiting ``initial_delay``
    seconds, then ``backoff`` times longer each time (at most ``max_delay``), and never more than
    ``max_wait`` seconds of waiting in all for one request. A ``Retry-After`` answer is honoured as
    the wait (within the same caps). The defaults follow the ExchangeOnlineManagement module:
    5 retries from 2 s."""

    retries: int = 5
    initial_delay: float = 2.0
    backoff: float = 2.0
    max_delay: float = 60.0
    max_wait: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be a whole number of at least 0, not {self.retries!r}")
        for name in ("initial_delay", "backoff", "max_delay", "max_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if value < 0 or (name == "backoff" and value < 1):
                raise ValueError(f"{name} is out of range: {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        return float(min(self.max_delay, self.initial_delay * self.backoff ** max(0, attempt - 1)))


@dataclasses.dataclass(frozen=True)
class RetryEvent:
    """One retry: ``attempt`` (1-based) failed with ``reason`` (HTTP ``status`` when one came); the next
    attempt follows after ``delay`` seconds. ``page`` is the page number, ``request_id`` the failed
    request's ``client-request-id``."""

    cmdlet: str
    page: int
    attempt: int
    delay: float
    reason: str
    status: int | None
    request_id: str


def _is_guid(text: str | None) -> bool:
    return bool(text) and _GUID.match(text or "") is not None


class _Body:
    """A page's answer as received: its bytes (handed over once) and headers."""

    __slots__ = ("content", "headers")

    def __init__(self, content: bytes, headers: Mapping[str, str]) -> None:
        self.content = content
        self.headers = headers


class _CmdletFailed(Exception):
    """Internal: the cmdlet failed with ``record`` (the invocation ends ``failed``)."""

    def __init__(self, record: ErrorRecord) -> None:
        self.record = record


class _Stopped(Exception):
    """Internal: stop() was called (the invocation ends ``stopped``)."""


class _RestExecution(Execution):
    """One cmdlet over the admin API: pages fetched one ahead, objects converted as they are read."""

    def __init__(
        self, transport: RestTransport, invocation: Invocation, body: dict[str, Any], token: AccessToken
    ) -> None:
        self._transport = transport
        self._invocation = invocation
        self.cmdlet: str = body["CmdletInput"]["CmdletName"]
        self._body = adminapi.encode_body(body)
        self.read_only = is_read_only(self.cmdlet, invocation.parameters)
        self._limit = adminapi.result_size(invocation.parameters)
        self.page_size = min(transport.page_size, self._limit) if self._limit else transport.page_size
        self._deadline = None if invocation.timeout is None else time.monotonic() + invocation.timeout
        self._token = token
        tenant = transport.tenant or token.tenant_id
        if not tenant:
            raise ConfigError(
                "the rest transport needs the tenant (a GUID or *.onmicrosoft.com domain): set tenant"
            )
        tenant_id = token.tenant_id or (tenant if _is_guid(tenant) else None)
        domain = transport.organization or (None if _is_guid(tenant) else tenant)
        #: The anchor mailbox sent on every page (and every retry) of this invocation.
        self.anchor = adminapi.anchor_mailbox(tenant_id, domain)
        self.url = transport._invoke_url(tenant)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-AnchorMailbox": self.anchor,
            "Prefer": f"odata.maxpagesize={self.page_size}",
            "connection-id": transport.connection_id,
        }
        self._stopped = threading.Event()
        self._closed = False
        self._outcome: Outcome | None = None
        self._started = False
        self._first: _Prefetch | None = None
        #: HTTP requests made, pages received, and the retries (with their reasons) so far.
        self.requests = 0
        self.pages = 0
        self.retries: list[RetryEvent] = []

    def _begin(self) -> None:
        """Send the first request now (the command runs whether or not its result is ever read)."""
        transport = self._transport
        with transport._lock:
            transport._running.add(self)
        self._first = transport._fetch_ahead(self._fetch, self.url, 1)

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def stop(self) -> None:
        """Hand out no more objects and ask for no further page (a request in flight is not cut short);
        the outcome is ``stopped``."""
        self._stopped.set()

    def close(self) -> None:
        """Stop it because the transport is closing: reading it then fails instead of ending ``stopped``."""
        self._closed = True
        self.stop()

    def __repr__(self) -> str:
        return f"<RestExecution {self.cmdlet}: {self.pages} pages, {self.requests} requests>"

    # --- reading ---

    def __iter__(self) -> Iterator[StreamItem]:
        if self._started:
            raise RuntimeError("an execution can be read only once")
        self._started = True
        transport = self._transport
        prefetch: _Prefetch | None = None
        seen: set[str] = set()
        limit = self._limit
        yielded = 0
        try:
            number = 1
            first, self._first = self._first, None
            assert first is not None
            page = self._page(first.result(self._stopped), number)
            while True:
                reported = yield from self._records(page, seen)
                hint = page.next_link_hint
                if (
                    hint is not None
                    and transport.prefetch
                    and self.read_only
                    and (limit is None or yielded + self.page_size < limit)
                    and transport._trusted(hint) is None
                ):
                    prefetch = transport._fetch_ahead(self._fetch, hint, number + 1)
                try:
                    for value in page.objects(converted=True):
                        if self._stopped.is_set():
                            break
                        yield StreamItem("output", value)
                        yielded += 1
                        if limit is not None and yielded >= limit:
                            break
                except ValueError as exc:
                    raise ProtocolError(
                        f"{self.cmdlet}: page {number} of the admin API's answer broke off: {exc}"
                    ) from None
                if self._stopped.is_set():
                    raise _Stopped
                if limit is not None and yielded >= limit:
                    break
                yield from self._records(page, seen, reported, final=True)  # members after the objects
                next_link = page.next_link
                if next_link is None:
                    break
                self._check_link(next_link)
                number += 1
                if prefetch is not None and prefetch.url == next_link:
                    body, prefetch = prefetch.result(self._stopped), None
                else:
                    if prefetch is not None:
                        prefetch.abandon()
                        prefetch = None
                    body = self._fetch(next_link, number)
                page = self._page(body, number)
            self._outcome = Outcome("completed")
        except _CmdletFailed as failure:
            self._outcome = Outcome("failed", error=failure.record)
        except _Stopped:
            if self._closed:
                raise TransportError(f"the session was closed while running {self.cmdlet}") from None
            self._outcome = Outcome("stopped")
        except InvocationTimeout:
            self._outcome = Outcome("stopped")
            raise
        finally:
            if prefetch is not None:
                prefetch.abandon()
            with transport._lock:
                transport._running.discard(self)

    def _records(
        self, page: adminapi.Page, seen: set[str], reported: int = 0, *, final: bool = False
    ) -> Generator[StreamItem, None, int]:
        """The page's warnings not yet seen in this invocation, and its errors from number ``reported`` on.

        Returns how many of the page's errors are reported now (the API repeats a command's warnings on
        every page; errors are the page's own)."""
        # Exchange's "more results available" rides every page with a next link, which pswrap follows
        # itself: said only by a last page (the link is final once the objects are read).
        follows = (page.next_link if final else page.next_link_hint) is not None
        for text in page.warnings:
            if follows and text.startswith(adminapi.MORE_RESULTS_TEXT):
                continue
            if text not in seen:
                seen.add(text)
                yield StreamItem("warning", WarningRecord(text))
        errors = page.errors
        for text in errors[reported:]:
            yield StreamItem(
                "error", ErrorRecord(text, error_id="AdminApiError", activity=self.cmdlet, raw=text)
            )
        return len(errors)

    def _page(self, body: _Body, number: int) -> adminapi.Page:
        """Decode a page's body (the bytes are let go as soon as the text exists)."""
        content, body.content = body.content, b""
        problem = f"{self.cmdlet}: the admin API's answer to page {number} is not its JSON"
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{problem} ({exc})", data=content[:200]) from None
        del content
        try:
            page = adminapi.Page(text.removeprefix("\ufeff"), body.headers)
        except ValueError as exc:
            raise ProtocolError(f"{problem} ({exc})", data=text[:200].encode()) from None
        log.debug("%s page %d received, next page %s", self.cmdlet, number, bool(page.next_link_hint))
        return page

    def _check_link(self, link: str) -> None:
        why = self._transport._trusted(link)
        if why is not None:
            raise AdminApiConnectionError(
                f"{self.cmdlet}: the next page's link {_safe_url(link)} was not followed: {why}",
                problem="unsafe next page link",
                cmdlet=self.cmdlet,
                action="the token is only sent over HTTPS to the REST host and its subdomains; "
                "set redirect_domains if this host is genuinely Exchange's",
            )

    # --- one page, with retries, redirects and a token refresh ---

    def _fetch(self, url: str, number: int) -> _Body:
        transport = self._transport
        policy = transport.retry
        attempt = 0
        waited = 0.0
        refreshed = False
        redirects = 0
        target = url
        while True:
            self._check_time(may_have_run=False)
            token = self._current_token(number)
            attempt += 1
            self.requests += 1
            request_id = str(uuid.uuid4())
            headers = {**self._headers, "client-request-id": request_id}
            log.debug(
                "%s page %d: POST %s (client-request-id %s)",
                self.cmdlet,
                number,
                _safe_url(target),
                request_id,
            )
            try:
                response, content = transport._post(target, self._body, headers, token, self._timeouts())
            except requests.RequestException as exc:
                if self._stopped.is_set():
                    raise _Stopped from None
                never_sent = _never_sent(exc)
                problem = _problem(exc)
                if isinstance(exc, requests.Timeout) and self._past_deadline():
                    self._timed_out(may_have_run=not never_sent)
                why_not = None if (self.read_only or never_sent) else self._mutating_reason()
                if why_not is None:
                    delay = policy.delay(attempt)
                    why_not = self._budget(attempt, waited, delay)
                    if why_not is None:
                        self._wait(RetryEvent(self.cmdlet, number, attempt, delay, problem, None, request_id))
                        waited += delay
                        continue
                raise AdminApiConnectionError(
                    f"{self.cmdlet}: {problem} talking to {transport.base_host}"
                    + ("" if never_sent else " (the request may have reached Exchange)"),
                    problem=problem,
                    attempts=attempt,
                    not_retried=why_not,
                    cmdlet=self.cmdlet,
                    request_id=request_id,
                    may_have_run=not never_sent and not self.read_only,
                    action=f"not retried: {why_not}",
                ) from exc
            status = response.status_code
            if status in _REDIRECTS:
                redirects += 1
                location = response.headers.get("Location")
                attempt -= 1  # a redirect is not a failed attempt
                target = self._follow(target, location, redirects, request_id)
                continue
            if 200 <= status < 300:
                self.pages += 1
                log.debug("%s page %d: %d bytes", self.cmdlet, number, len(content))
                return _Body(content, response.headers)
            diagnostics = adminapi.parse_diagnostics(response.headers.get("x-ms-diagnostics"))
            if status == 401:
                problem = _auth_problem(diagnostics, response.headers.get("WWW-Authenticate"), token)
                if problem == "expired_token" and not refreshed:
                    refreshed = True
                    attempt -= 1  # the server refused the token, so nothing ran: one retry with a fresh one
                    log.info(
                        "%s: the access token was refused as expired; retrying once with a fresh one",
                        self.cmdlet,
                    )
                    self._refresh(token, number)
                    continue
                raise self._unauthorized(problem, diagnostics, content, request_id, refreshed)
            if status == 403:
                raise _CmdletFailed(self._forbidden(diagnostics, content, request_id))
            concurrency = status != 200 and adminapi.is_concurrency_limit(content[:4096])
            if status == 429 or status in _TRANSIENT or concurrency:
                retry_after = adminapi.parse_retry_after(response.headers.get("Retry-After"))
                reason = (
                    "the tenant's maximum number of concurrent requests"
                    if concurrency
                    else "throttled (HTTP 429)"
                    if status == 429
                    else f"HTTP {status}"
                )
                why_not = None if self.read_only else self._mutating_reason()
                if why_not is None:
                    delay = retry_after if retry_after is not None else policy.delay(attempt)
                    why_not = self._budget(attempt, waited, delay)
                    if why_not is None:
                        self._wait(
                            RetryEvent(self.cmdlet, number, attempt, delay, reason, status, request_id)
                        )
                        waited += delay
                        continue
                said = None if concurrency else adminapi.error_record(status, content, cmdlet=self.cmdlet)
                if said is not None and status == 500:  # the cmdlet's own failure, in Exchange's words
                    raise _CmdletFailed(
                        dataclasses.replace(said, recommended_action=f"not retried: {why_not}")
                    )
                later = f" after {retry_after:g} s" if retry_after is not None else " later"
                raise AdminApiBusyError(
                    f"{self.cmdlet}: Exchange Online is busy: {reason}",
                    retry_after=retry_after,
                    attempts=attempt,
                    not_retried=why_not,
                    status=status,
                    reason=diagnostics.reason or (said.message if said else adminapi.short_reason(content)),
                    cmdlet=self.cmdlet,
                    request_id=request_id,
                    may_have_run=not self.read_only,
                    action=f"not retried: {why_not}; run it again{later}"
                    + (" if it did not take effect" if not self.read_only else ""),
                )
            record = adminapi.error_record(status, content, cmdlet=self.cmdlet)
            if record is not None:
                raise _CmdletFailed(record)
            raise AdminApiError(
                f"{self.cmdlet}: unexpected answer from the admin API (HTTP {status})",
                status=status,
                reason=diagnostics.reason or adminapi.short_reason(content),
                cmdlet=self.cmdlet,
                request_id=request_id,
                may_have_run=not self.read_only,
            )

    def _follow(self, current: str, location: str | None, redirects: int, request_id: str) -> str:
        if not location:
            raise AdminApiConnectionError(
                f"{self.cmdlet}: the admin API redirected without a Location",
                problem="bad redirect",
                cmdlet=self.cmdlet,
                request_id=request_id,
            )
        target = urljoin(current, location)
        why = self._transport._trusted(target)
        if why is not None:
            raise AdminApiConnectionError(
                f"{self.cmdlet}: a redirect to {_safe_url(target)} was not followed: {why}",
                problem="unsafe redirect",
                cmdlet=self.cmdlet,
                request_id=request_id,
                action="the token is only sent over HTTPS to the REST host and its subdomains; "
                "set redirect_domains if this host is genuinely Exchange's",
            )
        if redirects > MAX_REDIRECTS:
            raise AdminApiConnectionError(
                f"{self.cmdlet}: more than {MAX_REDIRECTS} redirects in a row (last to {_safe_url(target)})",
                problem="redirect loop",
                cmdlet=self.cmdlet,
                request_id=request_id,
            )
        log.info("%s: redirected to %s", self.cmdlet, urlsplit(target).hostname)
        return target

    # --- tokens ---

    def _current_token(self, number: int) -> AccessToken:
        try:
            token = self._transport.token_provider.get_token()
        except TokenError as exc:
            raise AdminApiError(
                f"{self.cmdlet}: no access token for page {number}: {exc}",
                cmdlet=self.cmdlet,
                action=getattr(exc, "action", None),
            ) from exc
        self._token = token
        return token

    def _refresh(self, stale: AccessToken, number: int) -> None:
        try:
            self._token = self._transport.token_provider.refresh(stale=stale)
        except TokenError as exc:
            raise AdminApiAuthError(
                f"{self.cmdlet}: the access token expired and no fresh one could be had: {exc}",
                problem="expired_token",
                cmdlet=self.cmdlet,
                action=getattr(exc, "action", None),
            ) from exc

    def _unauthorized(
        self,
        problem: str,
        diagnostics: adminapi.Diagnostics,
        content: bytes,
        request_id: str,
        refreshed: bool,
    ) -> AdminApiAuthError:
        transport = self._transport
        reason = diagnostics.reason or adminapi.short_reason(content)
        actions = {
            "expired_token": "the token was refused as expired"
            + (" even after a fresh one: check this host's clock" if refreshed else ""),
            "missing_permission": f"grant the app the API permission Office 365 Exchange Online -> {EXCHANGE_ROLE} "
            "(application, with admin consent), then get a new token",
            "wrong_audience": f"get the token for https://{transport.rest_host}/.default (the scope setting)",
            "wrong_tenant": f"the token comes from another tenant than {transport.tenant}: check the tenant and "
            "organization settings",
            "invalid_token": "get the token from Microsoft Entra ID for this tenant (see `pswrap token --claims`)",
        }
        words = {
            "expired_token": "an expired token",
            "missing_permission": f"a token without the {EXCHANGE_ROLE} permission",
            "wrong_audience": "a token for another resource",
            "wrong_tenant": "a token for another tenant",
            "invalid_token": "an invalid token",
        }
        return AdminApiAuthError(
            f"{self.cmdlet}: Exchange Online refused {words[problem]} (HTTP 401)"
            + (f": {reason}" if reason else ""),
            problem=problem,
            status=401,
            reason=reason,
            cmdlet=self.cmdlet,
            request_id=request_id,
            action=actions[problem],
        )

    def _forbidden(self, diagnostics: adminapi.Diagnostics, content: bytes, request_id: str) -> ErrorRecord:
        reason = diagnostics.reason
        if reason is None:
            answer = adminapi.error_record(403, content, cmdlet=self.cmdlet)
            reason = answer.message if answer is not None else adminapi.short_reason(content)
        nul_body = bool(content) and not content.strip(b"\x00")
        text = (reason or "").lower()
        role_action = (
            f"give the app's service principal an Exchange role that allows {self.cmdlet} (for example the "
            "Entra role Exchange Administrator); role changes can take an hour to apply"
        )
        if re.search(r"not recognized|not found|unknown|does not exist|isn't recognized|no such", text):
            kind, category, error_id = "unknown cmdlet", "ObjectNotFound", "CommandNotFoundException"
            exception_type = "System.Management.Automation.CommandNotFoundException"
            action = f"check the name {self.cmdlet!r}; Exchange also hides cmdlets the app's roles do not allow: {role_action}"
        elif re.search(r"role|rbac|not authori[sz]ed|access (is )?denied|permission|not allowed", text):
            kind, category, error_id = "missing Exchange role", "PermissionDenied", "AccessDenied"
            exception_type = None
            action = role_action
        else:
            kind, category, error_id = (
                "unknown cmdlet or missing Exchange role",
                "PermissionDenied",
                "Forbidden",
            )
            exception_type = None
            action = f"check the name {self.cmdlet!r}, then: {role_action}"
        said = reason or ("no reason given: the body was NUL bytes" if nul_body else "no reason given")
        return ErrorRecord(
            f"{self.cmdlet} was refused by Exchange Online (HTTP 403, {kind}): {said}\n  -> {action}",
            raw={"status": 403, "x-ms-diagnostics": diagnostics.reason, "client-request-id": request_id},
            category=category,
            error_id=error_id,
            exception_type=exception_type,
            exception_message=reason,
            recommended_action=action,
            activity=self.cmdlet,
            reason=kind,
        )

    # --- time, stopping, retries ---

    def _timeouts(self) -> tuple[float, float]:
        transport = self._transport
        read = transport.request_timeout
        if self._deadline is not None:
            read = max(0.001, min(read, self._deadline - time.monotonic()))
        return (min(transport.connect_timeout, read), read)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _check_time(self, *, may_have_run: bool) -> None:
        if self._stopped.is_set():
            raise _Stopped
        if self._past_deadline():
            self._timed_out(may_have_run=may_have_run)

    def _timed_out(self, *, may_have_run: bool) -> None:
        limit = self._invocation.timeout or 0.0
        self._outcome = Outcome("stopped")
        note = (
            " (the request reached Exchange: it may have run)" if may_have_run and not self.read_only else ""
        )
        raise InvocationTimeout(
            f"{self.cmdlet} did not finish within its timeout of {limit:g} s{note}", timeout=limit
        )

    def _mutating_reason(self) -> str:
        return (
            f"{self.cmdlet} changes things and the request reached Exchange, so it may have run; "
            "pswrap never sends such a cmdlet again on its own"
        )

    def _budget(self, attempt: int, waited: float, delay: float) -> str | None:
        policy = self._transport.retry
        if attempt > policy.retries:
            return f"gave up after {attempt} attempts (retries={policy.retries})"
        if waited + delay > policy.max_wait:
            return f"waiting {delay:g} s more would pass the retry time cap of {policy.max_wait:g} s"
        if self._deadline is not None and time.monotonic() + delay >= self._deadline:
            return f"waiting {delay:g} s would pass the invocation's timeout"
        return None

    def _wait(self, event: RetryEvent) -> None:
        self.retries.append(event)
        log.info(
            "%s page %d: %s; attempt %d failed, retrying in %.3g s",
            event.cmdlet,
            event.page,
            event.reason,
            event.attempt,
            event.delay,
        )
        callback = self._transport.on_retry
        if callback is not None:
            callback(event)
        if self._stopped.wait(event.delay):
            raise _Stopped


class _Prefetch:
    """The next page's answer, fetched on a daemon thread while the current page is read."""

    def __init__(self, fetch: Callable[[str, int], _Body], url: str, number: int) -> None:
        self.url = url
        self._done = threading.Event()
        self._body: _Body | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(fetch, url, number), name=f"pswrap-rest-page-{number}", daemon=True
        )
        self.thread.start()

    def _run(self, fetch: Callable[[str, int], _Body], url: str, number: int) -> None:
        try:
            self._body = fetch(url, number)
        except BaseException as exc:  # handed to the reader, who raises it
            self._error = exc
        finally:
            self._done.set()

    def result(self, stopped: threading.Event) -> _Body:
        while not self._done.wait(0.05):
            if stopped.is_set():
                raise _Stopped
        if self._error is not None:
            raise self._error
        body, self._body = self._body, None
        assert body is not None
        return body

    def abandon(self) -> None:
        """Drop the answer (the thread finishes its request on its own; the reader no longer waits)."""
        self._body = None


# --- classifying failures -----------------------------------------------------------------------


def _error_body(raw: Any, encoding: str | None) -> bytes:
    """The body of a failure status, as far as it can be read: a received status is the status, so a
    body that cannot be read or decoded (a 403 of NUL bytes declared as gzip, as Exchange sends) is
    kept as it came (or empty) rather than turning the answer into a dropped connection."""
    try:
        body: bytes = raw.read(decode_content=False) or b""
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        log.debug("a failure status whose body could not be read: %s", exc)
        return b""
    if (encoding or "").strip().lower() in ("gzip", "x-gzip", "deflate"):
        try:  # bounded: an error body needs no more
            return zlib.decompressobj(wbits=47).decompress(body, _ERROR_BODY_LIMIT)
        except zlib.error:
            log.debug("a failure status whose body is not the %s it says it is", encoding)
    return body


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it (causes, contexts, urllib3's ``reason``, wrapped args)."""
    found: list[BaseException] = []
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or any(current is seen for seen in found):
            continue
        found.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(current.args)
    return found


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request provably never left this host (so no cmdlet can have run)."""
    import urllib3.exceptions as u3

    if isinstance(
        exc, (requests.ConnectTimeout, requests.exceptions.SSLError, requests.exceptions.ProxyError)
    ):
        return True
    if isinstance(exc, requests.exceptions.InvalidURL):
        return True
    chain = _chain(exc)
    if any(
        isinstance(e, (u3.NewConnectionError, u3.NameResolutionError, ConnectionRefusedError)) for e in chain
    ):
        return True
    return bool(str(exc) == "the rest transport was closed")


def _problem(exc: requests.RequestException) -> str:
    chain = _chain(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failure"
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer in time"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    import urllib3.exceptions as u3

    if any(isinstance(e, u3.NameResolutionError) for e in chain):
        return "host name not found"
    if any(isinstance(e, u3.NewConnectionError) for e in chain):
        return "no connection"
    return "connection dropped"


def _auth_problem(diagnostics: adminapi.Diagnostics, authenticate: str | None, token: AccessToken) -> str:
    words = " ".join(filter(None, [diagnostics.reason, diagnostics.category, authenticate])).lower()
    if "expired" in words or "lifetime" in words or token.expired:
        return "expired_token"
    if not token.has_exchange_role or EXCHANGE_ROLE.lower() in words:
        return "missing_permission"
    if "audience" in words:
        return "wrong_audience"
    if "tenant" in words:
        return "wrong_tenant"
    return "invalid_token"


def _safe_url(url: str) -> str:
    """A URL for messages: scheme, host and path (the skip token in the query is long and says nothing)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")
