"""A stand-in for Exchange Online's admin REST API (``InvokeCommand``), as the module and REST clients meet it.

A local HTTPS server on 127.0.0.1 (its certificate, for ``127.0.0.1`` and ``localhost``, from a
``trustme`` CA — by default the identity-provider stand-in's, so one CA file serves both) answering
``POST /adminapi/beta/<tenant>/InvokeCommand`` with the real shapes (``../shared/docs/exchange-online.md``):

- **auth**: the bearer JWT is verified against the identity-provider stand-in (signature, ``exp``,
  ``aud`` = the Exchange resource, issuer); ``roles`` must hold ``Exchange.ManageAsApp`` and ``tid``
  must be the URL's tenant, else HTTP 401 with ``WWW-Authenticate`` and an ``x-ms-diagnostics``
  reason. An app without an Exchange role (:meth:`AdminApi.revoke_role`) or an unknown cmdlet gets 403
  with the reason in ``x-ms-diagnostics`` (or, with ``nul_forbidden``, a body of NUL bytes and no reason);
- **cmdlets** over :mod:`tests.standins.exchange_data`: ``Get-Mailbox`` (``-Identity``, ``-ResultSize``,
  ``-Filter``, ``-RecipientTypeDetails``; 1000 objects and a warning without ``-ResultSize``),
  ``Get-Recipient``, ``Get-AcceptedDomain``, ``Set-Mailbox`` (changes the tenant's mailboxes; hashtables
  need ``"@odata.type": "#Exchange.GenericHashTable"``; "no settings modified" warning);
- **errors**: 400 for unknown/missing/mistyped parameters and bad filters, 404 ``NotFound`` with details
  ``<ErrorId>|<ExceptionType>|<text>`` and ``innererror.internalexception``;
- **paging**: ``Prefer: odata.maxpagesize`` (1..1000), ``@odata.nextLink`` with a ``$skiptoken`` bound to
  the backend the anchor mailbox routes to and to the request body: a page asked for without the same
  ``X-AnchorMailbox`` (or with another body, or after :meth:`AdminApi.expire_skip_tokens`) fails with the
  real "Expired or Invalid pagination request" error. Without any anchor every request lands on another
  backend, as in the service;
- **switches**: :meth:`fail_next` (429 with ``Retry-After``, 500, 503…), :meth:`concurrency_limit_next`
  (the plain-text "maximum number of concurrent requests" answer), :meth:`redirect_next` (a regional 3xx),
  :meth:`drop_next` (close the connection without answering, optionally after running the cmdlet),
  :meth:`warn` (extra warnings in the body or the ``X-Warnings`` header), :meth:`expire` (treat a token
  as expired), ``delay`` (seconds before answering), :meth:`stop_listening`/:meth:`start_listening`
  (connections refused meanwhile), ``next_link_base`` (another ``scheme://host`` in ``@odata.nextLink``).

It records every request (:class:`RecordedRequest`: headers, parsed body, status, which TCP connection)
and counts TCP connections (``connections``). Bounded: loopback only, daemon threads, at most
``max_connections`` at once, a socket timeout, a request budget, and every wait ends at :meth:`reset`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt
import trustme

from tests.standins import exchange_data as data
from tests.standins.idp import EXCHANGE_RESOURCE, EXCHANGE_ROLE, IdentityProvider, Tenant

PAGINATION_ERROR = "Expired or Invalid pagination request. Default Expiry time is 00:30:00"
CONCURRENCY_TEXT = (
    "You have reached the maximum number of concurrent requests per tenant. Please wait for the pending "
    "requests to complete and try again."
)
MORE_RESULTS_WARNING = (
    "There are more results available than are currently displayed. To view them, increase the value for "
    "the ResultSize parameter."
)
DEFAULT_RESULT_SIZE = 1000
SKIP_TOKEN_LIFETIME = 1800.0
_SERVER = "NAMPR01A001DC01.NAMPR01A001.prod.outlook.com"
_NOT_FOUND_TYPE = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
_BINDING_TYPE = "System.Management.Automation.ParameterBindingException"
_ODATA_EXCEPTION = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"


@dataclass
class RecordedRequest:
    """One request the stand-in received. ``headers`` keep the client's spelling; use :meth:`header`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    connection: int
    status: int = 0
    cmdlet: str | None = None
    page: int | None = None
    outcome: str = ""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def host(self) -> str | None:
        return self.header("Host")


@dataclass
class _Failure:
    kind: str  # "status", "concurrency", "drop"
    status: int = 503
    retry_after: str | None = None
    run: bool = False
    cmdlet: str | None = None


@dataclass
class _Cursor:
    tenant: str
    backend: str
    body: str
    keys: list[Any]
    render: Callable[[Any], str]
    offset: int
    warnings: list[str]
    created: float
    pages: int = 1


@dataclass
class CmdletError(Exception):
    """A cmdlet failure answered as the API's ``{"error": …}`` body."""

    status: int
    code: str
    error_id: str
    exception_type: str
    text: str
    target: Any = None

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"message": f"{self.error_id}|{self.exception_type}|{self.text}"}
        if self.target is not None:
            detail["target"] = self.target
        return {
            "error": {
                "code": self.code,
                "message": "Error executing cmdlet",
                "details": [detail],
                "innererror": {
                    "message": self.text,
                    "type": _ODATA_EXCEPTION,
                    "internalexception": {
                        "message": self.text,
                        "type": self.exception_type,
                        "stacktrace": "",
                    },
                },
            }
        }


@dataclass
class _Answer:
    """What a cmdlet produced: objects (keys rendered lazily, page by page) and warnings."""

    keys: Sequence[Any] = ()
    render: Callable[[Any], str] = str
    warnings: list[str] = field(default_factory=list)


class AdminApi:
    """The stand-in server. Use as a context manager, or :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        idp: IdentityProvider,
        ca: trustme.CA | None = None,
        *,
        mailboxes: int = 25,
        workdir: Path | None = None,
        max_requests: int = 50_000,
        max_connections: int = 32,
        socket_timeout: float = 10.0,
        hang_limit: float = 20.0,
    ) -> None:
        self.idp = idp
        self.ca = ca or idp.ca
        self._server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="pswrap-adminapi-")
        self._workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.ca_path = self._workdir / "adminapi-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self.default_mailboxes = mailboxes
        self.max_requests = max_requests
        self.socket_timeout = socket_timeout
        self.hang_limit = hang_limit
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._context: ssl.SSLContext | None = None
        self._sockets: set[socket.socket] = set()
        self.port = 0
        self._cache: dict[tuple[str, str, Any], str] = {}
        self.reset()

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> AdminApi:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        self._context = context
        self._listen()
        self.url = f"https://127.0.0.1:{self.port}"
        return self

    def _listen(self) -> None:
        handler = type("_Handler", (_Handler,), {"api": self, "timeout": self.socket_timeout})
        httpd = _Server(("127.0.0.1", self.port), handler)
        httpd.api = self
        httpd.daemon_threads = True
        assert self._context is not None
        httpd.socket = self._context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="adminapi-standin", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._release.set()
        self.stop_listening()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> AdminApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop_listening(self) -> None:
        """Close the listening socket and every open connection: new connections are refused."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def start_listening(self) -> None:
        """Listen again on the same port (after :meth:`stop_listening`)."""
        if self._httpd is None:
            self._listen()

    def reset(self) -> None:
        """Forget requests, counters, switches, cursors and mailbox changes (mailbox count back to default)."""
        with self._lock:
            previous = getattr(self, "_release", None)
            if previous is not None:
                previous.set()
            self._release = threading.Event()
            self.requests: list[RecordedRequest] = []
            self.connections = 0
            self.broken_connections = 0
            self.mailbox_count = self.default_mailboxes
            self.stores: dict[str, data.MailboxStore] = {}
            self._failures: list[_Failure] = []
            self._redirects: list[tuple[str, int]] = []
            self._warnings: list[tuple[str, bool, str | None]] = []
            self._expired_tokens: set[str] = set()
            self._verified: dict[str, dict[str, Any]] = {}
            self._cursors: dict[str, _Cursor] = {}
            self._round_robin = 0
            self.revoked: set[str] = set()
            self.restricted: dict[str, set[str]] = {}
            self.delay = 0.0
            self.hang = False
            #: 403s with a body of NUL bytes: True, or the Content-Encoding to declare for them ("gzip").
            self.nul_forbidden: bool | str = False
            self.next_link_base: str | None = None
            self._cache.clear()

    # -- switches ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 503,
        *,
        times: int = 1,
        retry_after: str | float | None = None,
        cmdlet: str | None = None,
    ) -> None:
        """Answer the next ``times`` InvokeCommand requests (of ``cmdlet`` only, if given) with ``status``
        (429 carries ``Retry-After`` when given; 5xx a JSON error body)."""
        with self._lock:
            after = None if retry_after is None else str(retry_after)
            self._failures.extend([_Failure("status", status, after, cmdlet=cmdlet)] * times)

    def concurrency_limit_next(self, *, times: int = 1, status: int = 429) -> None:
        """Answer the next ``times`` requests with the plain-text concurrency-limit refusal."""
        with self._lock:
            self._failures.extend([_Failure("concurrency", status)] * times)

    def drop_next(self, *, times: int = 1, run: bool = False, cmdlet: str | None = None) -> None:
        """Close the connection of the next ``times`` requests without answering. With ``run``, the cmdlet
        runs first (a change is made, the answer is lost)."""
        with self._lock:
            self._failures.extend([_Failure("drop", 0, None, run, cmdlet)] * times)

    def redirect_next(self, to: str = "localhost", *, times: int = 1, status: int = 307) -> None:
        """Redirect the next ``times`` requests to host ``to`` on this port (``to`` may be a whole
        ``scheme://host[:port]`` to point elsewhere), path and query kept: a regional redirect."""
        with self._lock:
            self._redirects.extend([(to, status)] * times)

    def warn(self, text: str, *, header: bool = False, cmdlet: str | None = None) -> None:
        """Add ``text`` to every answer's warnings (in ``X-Warnings`` when ``header``)."""
        with self._lock:
            self._warnings.append((text, header, cmdlet))

    def expire(self, token: str) -> None:
        """From now on, answer ``token`` as expired (401) although its ``exp`` has not passed."""
        with self._lock:
            self._expired_tokens.add(token)

    def expire_skip_tokens(self) -> None:
        """Make every skip token handed out so far invalid (as 30 minutes would)."""
        with self._lock:
            for cursor in self._cursors.values():
                cursor.created -= SKIP_TOKEN_LIFETIME + 1

    def revoke_role(self, client_id: str) -> None:
        """The app keeps its token permission but has no Exchange role: every cmdlet answers 403."""
        with self._lock:
            self.revoked.add(client_id.lower())

    def restrict(self, client_id: str, cmdlets: Iterable[str]) -> None:
        """The app's roles allow only ``cmdlets`` (others answer 403, as RBAC hides them)."""
        with self._lock:
            self.restricted[client_id.lower()] = {c.lower() for c in cmdlets}

    # -- fixture data -----------------------------------------------------------------------------

    def store(self, tenant: Tenant | str) -> data.MailboxStore:
        """The mailboxes of ``tenant`` (a :class:`Tenant`, its id or domain), created on first use."""
        found = tenant if isinstance(tenant, Tenant) else self.idp.tenants.get(str(tenant).lower())
        if found is None:
            raise KeyError(f"no tenant {tenant!r} in the identity provider")
        with self._lock:
            store = self.stores.get(found.id)
            if store is None:
                store = data.MailboxStore(self.mailbox_count, found.domain)
                self.stores[found.id] = store
            return store

    def warm(self, tenant: Tenant | str, count: int | None = None) -> None:
        """Render the first ``count`` mailboxes' JSON now, so that serving them later costs no CPU."""
        store = self.store(tenant)
        for index in range(store.count if count is None else count):
            self._mailbox_json(store, index)

    # -- records ----------------------------------------------------------------------------------

    def invocations(self, cmdlet: str | None = None) -> list[RecordedRequest]:
        """The InvokeCommand requests (of ``cmdlet``, if given), first page and next pages alike."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.cmdlet and (cmdlet is None or r.cmdlet.lower() == cmdlet.lower())
            ]

    # -- request handling (handler threads) -------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _budget_left(self) -> bool:
        with self._lock:
            return len(self.requests) < self.max_requests

    def _take(self, queue: list[Any], cmdlet: str | None = None) -> Any:
        with self._lock:
            for position, item in enumerate(queue):
                wanted = getattr(item, "cmdlet", None)
                if wanted is None or (cmdlet is not None and wanted.lower() == cmdlet.lower()):
                    return queue.pop(position)
        return None

    def _wait(self) -> bool:
        release = self._release
        if self.hang:
            release.wait(self.hang_limit)
            return False
        if self.delay:
            release.wait(self.delay)
        return True

    def _authenticate(
        self, headers: Mapping[str, str], url: str
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The token's claims, or (None, 401 headers) saying why not."""
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, _unauthorized("2000000", "The request has no bearer token.", "invalid_request")
        token = token.strip()
        with self._lock:
            expired = token in self._expired_tokens
            claims = self._verified.get(token)
        if expired:
            return None, _unauthorized("2000008", "The token has expired.", "invalid_token")
        if claims is None or claims.get("exp", 0) <= time.time():
            try:
                claims = self.idp.verify(token, audience=EXCHANGE_RESOURCE)
            except jwt.ExpiredSignatureError:
                return None, _unauthorized("2000008", "The token has expired.", "invalid_token")
            except jwt.InvalidAudienceError:
                audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
                return None, _unauthorized(
                    "2000003",
                    f"The audience claim value is invalid for current resource. Audience claim is "
                    f"'{audience}', request url is '{url}'.",
                    "invalid_resource",
                )
            except jwt.InvalidSignatureError:
                return None, _unauthorized(
                    "2000001", "The token has an invalid signature.", "invalid_signature"
                )
            except jwt.InvalidTokenError as exc:
                return None, _unauthorized("2000001", f"The token is invalid: {exc}.", "invalid_token")
            with self._lock:
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[token] = claims
        roles = claims.get("roles") or []
        if EXCHANGE_ROLE not in roles:
            return None, _unauthorized(
                "2000008",
                f"The token does not carry the role {EXCHANGE_ROLE} that app-only access needs.",
                "insufficient_claims",
            )
        return claims, {}

    def _backend(self, anchor: str | None) -> str:
        if anchor:
            return "BE" + hashlib.sha1(anchor.lower().encode()).hexdigest()[:6].upper()
        with self._lock:
            self._round_robin += 1
            return f"BE-RR{self._round_robin:05d}"

    def _handle_invoke(self, handler: _Handler, record: RecordedRequest, tenant_key: str) -> None:
        headers = {k.lower(): v for k, v in record.headers.items()}
        url = f"https://{headers.get('host', '')}{record.path}"
        # A regional redirect happens at the front door, before anything else.
        redirect = self._take(self._redirects) if self._redirects else None
        if redirect is not None:
            to, status = redirect
            base = to if "://" in to else f"https://{to}:{self.port}"
            query = handler.path.partition("?")[2]
            location = f"{base}{record.path}" + (f"?{query}" if query else "")
            handler.answer(record, status, b"", {"Location": location}, content_type=None)
            return
        claims, problem = self._authenticate(headers, url)
        if claims is None:
            handler.answer(record, 401, b"", problem, content_type=None)
            return
        tenant = self.idp.tenants.get(unquote(tenant_key).lower())
        if tenant is None or tenant.id != claims.get("tid"):
            handler.answer(
                record,
                401,
                b"",
                _unauthorized(
                    "2000005",
                    f"The tenant in the token ({claims.get('tid')}) does not match the tenant of the request "
                    f"({unquote(tenant_key)}).",
                    "invalid_tenant",
                ),
                content_type=None,
            )
            return
        try:
            body = json.loads(record.raw_body or b"null")
        except ValueError:
            handler.json(record, 400, _bad_request("The request body is not valid JSON."))
            return
        record.body = body
        cmdlet_input = body.get("CmdletInput") if isinstance(body, dict) else None
        if not isinstance(cmdlet_input, dict) or not isinstance(cmdlet_input.get("CmdletName"), str):
            handler.json(record, 400, _bad_request("The request body has no CmdletInput.CmdletName."))
            return
        parameters = cmdlet_input.get("Parameters")
        if not isinstance(parameters, dict):
            handler.json(
                record, 400, _bad_request("CmdletInput.Parameters must be an object (send {} for none).")
            )
            return
        cmdlet = cmdlet_input["CmdletName"]
        record.cmdlet = cmdlet
        app = str(claims.get("appid") or claims.get("azp") or "").lower()
        command = COMMANDS.get(cmdlet.lower())
        with self._lock:
            revoked = app in self.revoked
            allowed = self.restricted.get(app)
        if revoked or (command is not None and allowed is not None and cmdlet.lower() not in allowed):
            self._forbidden(
                handler,
                record,
                "2000016",
                f"The application is not assigned an Exchange role (RBAC) that allows running '{cmdlet}'.",
            )
            return
        if command is None:
            self._forbidden(handler, record, "2000015", f"The term '{cmdlet}' is not recognized as a cmdlet.")
            return
        failure = self._take(self._failures, cmdlet) if self._failures else None
        if failure is not None and failure.kind != "drop":
            self._fail(handler, record, failure)
            return
        if failure is not None and not failure.run:
            handler.drop(record)
            return
        skip = record.query.get("$skiptoken")
        try:
            payload, extra_headers = self._page(
                tenant, cmdlet, command, parameters, body, headers, skip, record
            )
        except CmdletError as error:
            if failure is not None:  # it ran (and failed); the answer is lost all the same
                handler.drop(record)
                return
            handler.json(record, error.status, error.body())
            return
        if failure is not None:
            handler.drop(record)
            return
        handler.answer(record, 200, payload, extra_headers)

    def _forbidden(self, handler: _Handler, record: RecordedRequest, code: str, reason: str) -> None:
        if self.nul_forbidden:
            # What Exchange sends: NUL bytes, which a client that trusts Content-Encoding cannot decode.
            declared = {"Content-Encoding": self.nul_forbidden} if isinstance(self.nul_forbidden, str) else {}
            handler.answer(record, 403, b"\x00" * 64, declared, content_type=None)
            return
        headers = {"x-ms-diagnostics": f'{code};reason="{reason}";error_category="insufficient_permissions"'}
        body = json.dumps({"error": {"code": "Forbidden", "message": "Access is denied."}}).encode()
        handler.answer(record, 403, body, headers)

    def _fail(self, handler: _Handler, record: RecordedRequest, failure: _Failure) -> None:
        if failure.kind == "concurrency":
            handler.answer(record, failure.status, CONCURRENCY_TEXT.encode(), {}, content_type="text/plain")
            return
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
        if failure.status == 429:
            body = {"error": {"code": "TooManyRequests", "message": "Too many requests. Please retry later."}}
        elif failure.status >= 500:
            body = {
                "error": {
                    "code": "ServiceUnavailable" if failure.status == 503 else "InternalServerError",
                    "message": "The server is temporarily unable to handle the request.",
                }
            }
        else:
            body = {"error": {"code": "BadRequest", "message": "The request failed."}}
        handler.answer(record, failure.status, json.dumps(body).encode(), headers)

    def _page(
        self,
        tenant: Tenant,
        cmdlet: str,
        command: Callable[[AdminApi, Tenant, dict[str, Any]], _Answer],
        parameters: dict[str, Any],
        body: Any,
        headers: Mapping[str, str],
        skip: str | None,
        record: RecordedRequest,
    ) -> tuple[bytes, dict[str, str]]:
        anchor = headers.get("x-anchormailbox")
        backend = self._backend(anchor)
        canonical = json.dumps(body, sort_keys=True)
        if skip is not None:
            with self._lock:
                cursor = self._cursors.get(skip)
            if (
                cursor is None
                or cursor.backend != backend
                or cursor.tenant != tenant.id
                or cursor.body != canonical
                or time.monotonic() - cursor.created > SKIP_TOKEN_LIFETIME
            ):
                raise CmdletError(400, "BadRequest", "", _ODATA_EXCEPTION, PAGINATION_ERROR)
            cursor.pages += 1
            record.page = cursor.pages
            keys, render, offset, warnings = cursor.keys, cursor.render, cursor.offset, cursor.warnings
        else:
            answer = command(self, tenant, parameters)
            keys, render, offset, warnings = list(answer.keys), answer.render, 0, answer.warnings
            record.page = 1
        size = _page_size(headers.get("prefer"))
        chunk = keys[offset : offset + size]
        texts = [render(key) for key in chunk]
        next_link = None
        if offset + size < len(keys):
            token = secrets.token_urlsafe(24)
            with self._lock:
                if skip is not None:
                    self._cursors.pop(skip, None)
                    cursor.offset = offset + size
                    self._cursors[token] = cursor
                else:
                    self._cursors[token] = _Cursor(
                        tenant.id, backend, canonical, keys, render, offset + size, warnings, time.monotonic()
                    )
            host = headers.get("host") or f"127.0.0.1:{self.port}"
            base = self.next_link_base or f"https://{host}"
            next_link = f"{base}/adminapi/beta/{quote(tenant.id)}/InvokeCommand?$skiptoken={token}"
        elif skip is not None:
            with self._lock:
                self._cursors.pop(skip, None)
        with self._lock:
            extra = [
                (text, header)
                for text, header, only in self._warnings
                if only is None or only.lower() == cmdlet.lower()
            ]
        body_warnings = list(warnings) + [text for text, header in extra if not header]
        if next_link and MORE_RESULTS_WARNING not in body_warnings:
            body_warnings.append(MORE_RESULTS_WARNING)  # Exchange says so on every page with a next link
        header_warnings = [text for text, header in extra if header]
        host = headers.get("host") or f"127.0.0.1:{self.port}"
        parts = [
            '{"@odata.context":',
            json.dumps(
                f"https://{host}/adminapi/beta/{tenant.id}/$metadata#Collection(Exchange.GenericHashTable)"
            ),
        ]
        if body_warnings:
            parts += [',"@adminapi.warnings":', json.dumps(body_warnings, ensure_ascii=False)]
        parts += [',"value":[', ",".join(texts), "]"]
        if next_link:
            parts += [',"@odata.nextLink":', json.dumps(next_link)]
        parts.append("}")
        extra_headers = {"X-CalculatedBETarget": f"{backend}.NAMPR01.PROD.OUTLOOK.COM"}
        if header_warnings:
            extra_headers["X-Warnings"] = "<eow>".join(header_warnings)
        return "".join(parts).encode("utf-8"), extra_headers

    # -- rendering (cached: serving the same mailbox twice costs nothing) -------------------------

    def _mailbox_json(self, store: data.MailboxStore, index: int) -> str:
        key = (store.domain, "mailbox", index)
        text = self._cache.get(key)
        if text is None:
            text = json.dumps(data.to_rest(data.MAILBOX_FIELDS, store.values(index)), ensure_ascii=False)
            self._cache[key] = text
        return text

    def _recipient_json(self, store: data.MailboxStore, index: int) -> str:
        key = (store.domain, "recipient", index)
        text = self._cache.get(key)
        if text is None:
            text = json.dumps(
                data.to_rest(data.RECIPIENT_FIELDS, store.recipient_values(index)), ensure_ascii=False
            )
            self._cache[key] = text
        return text

    def _forget(self, store: data.MailboxStore, index: int) -> None:
        self._cache.pop((store.domain, "mailbox", index), None)
        self._cache.pop((store.domain, "recipient", index), None)


# --------------------------------------------------------------------------------------------------
# Cmdlets
# --------------------------------------------------------------------------------------------------


def _parameters(cmdlet: str, given: Mapping[str, Any], known: Mapping[str, str]) -> dict[str, Any]:
    """``given`` checked against ``known`` (name -> kind), keys in the known spelling; raises 400s."""
    lowered = {name.lower(): name for name in known}
    out: dict[str, Any] = {}
    for name, value in given.items():
        real = lowered.get(name.lower())
        if real is None:
            raise CmdletError(
                400,
                "BadRequest",
                "NamedParameterNotFound",
                _BINDING_TYPE,
                f"A parameter cannot be found that matches parameter name '{name}'.",
            )
        out[real] = _bind(cmdlet, real, known[real], value)
    return out


def _bind(cmdlet: str, name: str, kind: str, value: Any) -> Any:
    def refuse(target_type: str) -> CmdletError:
        return CmdletError(
            400,
            "BadRequest",
            "ParameterArgumentTransformationError",
            "System.Management.Automation.ParameterBindingArgumentTransformationException",
            f"Cannot process argument transformation on parameter '{name}'. Cannot convert value "
            f'"{value}" to type "{target_type}".',
        )

    if kind == "switch":
        if isinstance(value, bool):
            return value
        raise refuse("System.Management.Automation.SwitchParameter")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise refuse("System.Boolean")
    if kind == "string":
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise refuse("System.String")
    if kind == "resultsize":
        if isinstance(value, str) and value.lower() == "unlimited":
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value.isdigit() and int(value) > 0:
            return int(value)
        raise refuse("Microsoft.Exchange.Data.Unlimited`1[System.UInt32]")
    if kind == "strings":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if isinstance(value, dict):
            if value.get("@odata.type") != "#Exchange.GenericHashTable":
                raise refuse(
                    "Microsoft.Exchange.Data.MultiValuedProperty`1[System.String] (a hashtable needs "
                    '"@odata.type": "#Exchange.GenericHashTable")'
                )
            changes: dict[str, list[str]] = {}
            for key, item in value.items():
                if key == "@odata.type":
                    continue
                if key.lower() not in ("add", "remove"):
                    raise refuse("Microsoft.Exchange.Data.MultiValuedProperty`1[System.String]")
                items = [item] if isinstance(item, str) else item
                if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                    raise refuse("Microsoft.Exchange.Data.MultiValuedProperty`1[System.String]")
                changes[key.lower()] = items
            return changes
        raise refuse("Microsoft.Exchange.Data.MultiValuedProperty`1[System.String]")
    if kind == "timespan":
        if isinstance(value, str):
            from pswrap.transports.adminapi import parse_timespan

            try:
                return parse_timespan(value)
            except ValueError:
                pass
        raise refuse("Microsoft.Exchange.Data.EnhancedTimeSpan")
    if kind == "quota":
        if isinstance(value, str) and (value.lower() == "unlimited" or value[:1].isdigit()):
            return value if value.lower() != "unlimited" else "Unlimited"
        raise refuse(data._QUOTA_TYPE)
    raise AssertionError(kind)


def _not_found(identity: str, error_id: str = "") -> CmdletError:
    return CmdletError(
        404,
        "NotFound",
        error_id,
        _NOT_FOUND_TYPE,
        f"The operation couldn't be performed because object '{identity}' couldn't be found on '{_SERVER}'.",
        target=identity,
    )


def _result_keys(keys: Iterable[int], result_size: Any, given: bool) -> tuple[list[int], list[str]]:
    limit = DEFAULT_RESULT_SIZE if not given else result_size
    if limit is None:
        return list(keys), []
    out: list[int] = []
    for key in keys:
        if len(out) == limit:
            return out, ([MORE_RESULTS_WARNING] if not given else [])
        out.append(key)
    return out, []


def _filtered(
    store: data.MailboxStore, parameters: Mapping[str, Any], fields: tuple[data.Field, ...]
) -> Iterable[int]:
    opath = parameters.get("Filter")
    types = parameters.get("RecipientTypeDetails")
    if opath is not None:
        try:
            data.parse_filter(opath, fields)
        except data.FilterError as exc:
            raise CmdletError(
                400,
                "BadRequest",
                "",
                _BINDING_TYPE,
                f'Cannot bind parameter \'Filter\' to the target. Exception setting "Filter": "{exc}"',
            ) from None
    indexes: Iterable[int] = store.indexes(opath)
    if types:
        wanted = {t.lower() for t in types}
        indexes = (i for i in indexes if data.recipient_type_details(i).lower() in wanted)
    return indexes


_GET_MAILBOX = {
    "Identity": "string",
    "ResultSize": "resultsize",
    "Filter": "string",
    "RecipientTypeDetails": "strings",
    "SoftDeletedMailbox": "switch",
    "IncludeInactiveMailbox": "switch",
}


def get_mailbox(api: AdminApi, tenant: Tenant, given: dict[str, Any]) -> _Answer:
    parameters = _parameters("Get-Mailbox", given, _GET_MAILBOX)
    store = api.store(tenant)
    if parameters.get("SoftDeletedMailbox"):
        return _Answer()
    identity = parameters.get("Identity")
    if identity is not None:
        found = store.find(identity)
        if not found:
            raise _not_found(identity)
        keys: Iterable[int] = found
    else:
        keys = _filtered(store, parameters, data.MAILBOX_FIELDS)
    chosen, warnings = _result_keys(keys, parameters.get("ResultSize"), "ResultSize" in parameters)
    return _Answer(chosen, lambda index: api._mailbox_json(store, index), warnings)


_GET_RECIPIENT = {
    "Identity": "string",
    "ResultSize": "resultsize",
    "Filter": "string",
    "RecipientTypeDetails": "strings",
}


def get_recipient(api: AdminApi, tenant: Tenant, given: dict[str, Any]) -> _Answer:
    parameters = _parameters("Get-Recipient", given, _GET_RECIPIENT)
    store = api.store(tenant)
    identity = parameters.get("Identity")
    if identity is not None:
        found = store.find(identity)
        if not found:
            raise _not_found(identity)
        keys: Iterable[int] = found
    else:
        keys = _filtered(store, parameters, data.RECIPIENT_FIELDS)
    chosen, warnings = _result_keys(keys, parameters.get("ResultSize"), "ResultSize" in parameters)
    return _Answer(chosen, lambda index: api._recipient_json(store, index), warnings)


def get_accepted_domain(api: AdminApi, tenant: Tenant, given: dict[str, Any]) -> _Answer:
    parameters = _parameters("Get-AcceptedDomain", given, {"Identity": "string"})
    domains = data.accepted_domains(tenant.domain)
    identity = parameters.get("Identity")
    if identity is not None:
        domains = [d for d in domains if identity.lower() in (d["Name"].lower(), str(d["Guid"]))]
        if not domains:
            raise _not_found(identity)
    texts = [
        json.dumps(
            data.to_rest(data.ACCEPTED_DOMAIN_FIELDS, d, data.ACCEPTED_DOMAIN_TYPE_NAME), ensure_ascii=False
        )
        for d in domains
    ]
    return _Answer(texts, lambda text: text)


_SET_MAILBOX = {"Identity": "string", "Confirm": "switch", "Force": "switch", **data.SETTABLE}


def set_mailbox(api: AdminApi, tenant: Tenant, given: dict[str, Any]) -> _Answer:
    parameters = _parameters("Set-Mailbox", given, _SET_MAILBOX)
    identity = parameters.pop("Identity", None)
    if identity is None:
        raise CmdletError(
            400,
            "BadRequest",
            "MissingMandatoryParameter",
            _BINDING_TYPE,
            "Cannot process command because of one or more missing mandatory parameters: Identity.",
        )
    parameters.pop("Confirm", None)
    parameters.pop("Force", None)
    store = api.store(tenant)
    found = store.find(identity)
    if not found:
        raise _not_found(identity, "ErrorManagementObjectNotFound")
    index = found[0]
    current = store.values(index)
    changes: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, dict):  # {"add": […], "remove": […]}
            items = [
                v for v in current[name] if v.lower() not in {r.lower() for r in value.get("remove", [])}
            ]
            items += [v for v in value.get("add", []) if v.lower() not in {i.lower() for i in items}]
            value = items
        changes[name] = value
    changed = store.set(index, changes)
    api._forget(store, index)
    if not changed:
        return _Answer(
            warnings=[
                f"The command completed successfully but no settings of '{current['Identity']}' have been modified."
            ]
        )
    return _Answer()


COMMANDS: dict[str, Callable[[AdminApi, Tenant, dict[str, Any]], _Answer]] = {
    "get-mailbox": get_mailbox,
    "get-recipient": get_recipient,
    "get-accepteddomain": get_accepted_domain,
    "set-mailbox": set_mailbox,
}


def _page_size(prefer: str | None) -> int:
    for part in (prefer or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            return max(1, min(1000, int(value)))
    return 1000


def _unauthorized(code: str, reason: str, category: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
        'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
        'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token"',
        "x-ms-diagnostics": f'{code};reason="{reason}";error_category="{category}"',
    }


def _bad_request(text: str) -> dict[str, Any]:
    return CmdletError(400, "BadRequest", "", _ODATA_EXCEPTION, text).body()


# --------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    api: AdminApi
    allow_reuse_address = True

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.api._slots.acquire(blocking=False):  # bounded: refuse past max_connections
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.api._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.api._lock:
            self.api.broken_connections += 1


class _Handler(BaseHTTPRequestHandler):
    api: AdminApi
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        api = self.api
        with api._lock:
            api.connections += 1
            self.connection_number = api.connections
            api._sockets.add(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.api._lock:
                self.api._sockets.discard(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read api.requests
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    # -- answering --

    def answer(
        self,
        record: RecordedRequest,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        content_type: str
        | None = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8",
    ) -> None:
        record.status = status
        self.send_response(status)
        if content_type and body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", str(uuid.uuid4()))
        self.send_header("Date", _dt.datetime.now(_dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def json(self, record: RecordedRequest, status: int, body: Any) -> None:
        self.answer(record, status, json.dumps(body, ensure_ascii=False).encode("utf-8"), {})

    def drop(self, record: RecordedRequest) -> None:
        record.status = 0
        record.outcome = "dropped"
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    # -- routing --

    def _read(self) -> RecordedRequest:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 2_000_000)) if length else b""
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        record = RecordedRequest(
            self.command, parts.path, query, dict(self.headers.items()), None, raw, self.connection_number
        )
        try:
            record.body = json.loads(raw) if raw else None
        except ValueError:
            record.body = raw
        return record

    def do_POST(self) -> None:
        api = self.api
        record = self._read()
        api._record(record)
        if not api._budget_left():
            self.json(
                record,
                503,
                {"error": {"code": "ServiceUnavailable", "message": "stand-in request budget used up"}},
            )
            return
        segments = [s for s in record.path.split("/") if s]
        if (
            len(segments) == 4
            and segments[:2] == ["adminapi", "beta"]
            and segments[3].lower() == "invokecommand"
        ):
            if not api._wait():
                self.drop(record)
                return
            api._handle_invoke(self, record, segments[2])
            return
        self.json(record, 404, {"error": {"code": "NotFound", "message": f"No resource at {record.path}."}})

    def do_GET(self) -> None:
        record = self._read()
        self.api._record(record)
        self.json(record, 405, {"error": {"code": "MethodNotAllowed", "message": "Use POST."}})
