"""The admin REST transport: Exchange Online cmdlets over HTTPS, with no PowerShell at all.

::

    from pswrap import Session, Settings
    from pswrap.transports.rest import RestTransport

    settings = Settings.load()                        # PSWRAP_* variables or a profile
    with Session(RestTransport(settings)) as exo:     # or Session(transport="rest")
        for mbx in exo.invoke("Get-Mailbox", ResultSize="Unlimited").stream():
            print(mbx.PrimarySmtpAddress, mbx.WhenCreated)

Each invocation is one ``POST https://<rest host>/adminapi/beta/<tenant>/InvokeCommand`` (the
protocol is in :mod:`pswrap.transports.adminapi`), followed page by page through
``@odata.nextLink`` with the same body and headers — one anchor mailbox for every page, so the skip
token stays valid. Pages are fetched one ahead of the reader and handed out object by object: memory
stays flat however many objects come back.

Failures: a cmdlet's own error (``{"error": …}``, HTTP 400/404/500) and a 403 (unknown cmdlet or no
Exchange role) end the invocation as ``failed`` with an :class:`~pswrap.objects.ErrorRecord`, so
:class:`pswrap.Session` raises :class:`pswrap.PowerShellError` as it does for pwsh. A refused token
(401) raises :class:`pswrap.errors.AdminApiAuthError` after one retry with a fresh token when it had
expired; throttling that outlasts the retries raises :class:`pswrap.errors.AdminApiBusyError`, a
broken connection :class:`pswrap.errors.AdminApiConnectionError`.

Retries (:class:`RetryPolicy`): HTTP 429 (honouring ``Retry-After``), 500/502/503/504 and the
"maximum number of concurrent requests" answer are retried with exponential backoff, capped in
attempts and in total waiting time — only for cmdlets that read (:data:`pswrap.verbs.READ_VERBS`) or
for requests that provably never reached the server (connection refused, TLS handshake failed).
A cmdlet that changes things is never sent again once it may have run; the error says so.

Regional redirects (3xx to another host under the REST host, ``nam12.outlook.office365.com``) are
followed by hand, keeping ``Authorization``; a redirect or next-page link to plain HTTP or to a host
outside the REST host's domain is refused before the token goes anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from pswrap import __version__
from pswrap.clouds import get_cloud
from pswrap.errors import ConfigError, InvocationNotStarted
from pswrap.secret import get_logger, protect_loggers
from pswrap.transports import adminapi
from pswrap.transports._rest_execution import MAX_REDIRECTS as MAX_REDIRECTS
from pswrap.transports._rest_execution import (
    RetryEvent,
    RetryPolicy,
    _Body,
    _error_body,
    _Prefetch,
    _RestExecution,
)
from pswrap.transports.base import Execution, Invocation, Transport

if TYPE_CHECKING:
    from pswrap.auth import AccessToken
    from pswrap.config import Settings

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "RestTransport", "RetryEvent", "RetryPolicy", "TokenSource"]

log = get_logger(__name__)
protect_loggers()  # urllib3 logs URLs at DEBUG; pswrap never logs headers, and scrubs tokens anyway

#: Seconds one HTTP request may take: Exchange stops a cmdlet after 15 minutes; a minute more.
DEFAULT_REQUEST_TIMEOUT = 960.0
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_EXTRA_KEYS = (
    "base_url",
    "page_size",
    "retries",
    "initial_delay",
    "backoff",
    "max_delay",
    "max_wait",
    "request_timeout",
    "redirect_domains",
    "prefetch",
)


class TokenSource(Protocol):
    """Where the transport gets access tokens: :class:`pswrap.auth.TokenProvider` is one."""

    def get_token(self) -> AccessToken: ...

    def refresh(self, stale: AccessToken | None = None) -> AccessToken: ...


class RestTransport(Transport):
    """Exchange Online's admin REST API as a pswrap transport (no PowerShell needed).

    Built from :class:`~pswrap.config.Settings` (tenant, organization, cloud → REST host, CA bundle,
    timeout) and a token source (default: the process-wide :func:`pswrap.auth.get_token_provider` for
    those settings); with neither, from :meth:`Settings.load`. Explicit arguments win over settings,
    and settings' ``extra["rest"]`` table (a ``[profiles.X.rest]`` TOML table) gives the same options
    by name: ``page_size`` (``Prefer: odata.maxpagesize``, 1..1000, default 1000), ``retries``,
    ``initial_delay``, ``backoff``, ``max_delay``, ``max_wait`` (see :class:`RetryPolicy`),
    ``request_timeout`` (seconds one HTTP request may take), ``base_url`` (``https://host:port`` instead
    of ``https://<rest host>``, for test servers and proxies), ``redirect_domains`` (hosts that
    redirects and next-page links may lead to, with their subdomains; default: the REST host),
    ``prefetch`` (fetch the next page while the current one is read; default true).

    ``on_retry(event)`` is called with a :class:`RetryEvent` before each wait. ``http_client`` replaces
    the ``requests.Session`` the transport builds (its own adapters, proxies).
    """

    name: ClassVar[str] = "rest"
    persistent: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings | None = None,
        token_provider: TokenSource | None = None,
        *,
        tenant: str | None = None,
        organization: str | None = None,
        rest_host: str | None = None,
        page_size: int | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        base_url: str | None = None,
        ca_bundle: str | Path | None = None,
        redirect_domains: tuple[str, ...] | list[str] | None = None,
        prefetch: bool | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        http_client: requests.Session | None = None,
    ) -> None:
        if settings is None and token_provider is None:
            from pswrap.config import Settings

            settings = Settings.load()
        extra = _extra_options(settings)
        if token_provider is None:
            from pswrap.auth import get_token_provider

            assert settings is not None
            token_provider = get_token_provider(settings)
        self.token_provider: TokenSource = token_provider
        cloud = settings.cloud if settings is not None else get_cloud(None)
        self.rest_host = (rest_host or cloud.rest_host).strip().lower()
        self.tenant = tenant or (settings.tenant if settings is not None else None)
        self.organization = organization or (settings.organization if settings is not None else None)
        if self.tenant is None and self.organization:
            self.tenant = self.organization
        self.page_size = adminapi.check_page_size(
            page_size if page_size is not None else extra.get("page_size", adminapi.MAX_PAGE_SIZE)
        )
        if retry is None:
            fields = {f.name for f in dataclasses.fields(RetryPolicy)}
            retry = RetryPolicy(**{k: v for k, v in extra.items() if k in fields})
        self.retry = retry
        self.request_timeout = _seconds(
            "request_timeout",
            request_timeout
            if request_timeout is not None
            else extra.get("request_timeout", DEFAULT_REQUEST_TIMEOUT),
        )
        self.connect_timeout = _seconds(
            "connect_timeout",
            connect_timeout
            if connect_timeout is not None
            else (settings.timeout if settings is not None else 30.0),
        )
        self.base_url = _check_base_url(base_url or extra.get("base_url") or f"https://{self.rest_host}")
        self.base_host = urlsplit(self.base_url).hostname or ""
        bundle = (
            ca_bundle if ca_bundle is not None else (settings.ca_bundle if settings is not None else None)
        )
        if bundle is not None and not Path(bundle).is_file():
            raise ConfigError(f"ca_bundle: there is no file {bundle}")
        self.ca_bundle = str(bundle) if bundle is not None else None
        domains = redirect_domains if redirect_domains is not None else extra.get("redirect_domains")
        self.redirect_domains: tuple[str, ...] = tuple(
            d.strip().lower().lstrip(".") for d in (domains or (self.rest_host,))
        )
        self.prefetch = bool(prefetch if prefetch is not None else extra.get("prefetch", True))
        self.on_retry = on_retry
        #: One GUID for this transport's whole life, sent as ``connection-id`` with every request.
        self.connection_id = str(uuid.uuid4())
        self._own_http = http_client is None
        self._given_http = http_client
        self._http: requests.Session | None = None
        self._lock = threading.Lock()
        self._running: weakref.WeakSet[_RestExecution] = weakref.WeakSet()
        self._fetchers: list[threading.Thread] = []

    # --- life cycle ---

    def open(self) -> None:
        with self._lock:
            if self._http is None:
                self._http = self._given_http or _new_http_session()

    def close(self) -> None:
        with self._lock:
            running = list(self._running)
            http, self._http = self._http, None
        for execution in running:
            execution.close()
        with self._lock:
            fetchers, self._fetchers = self._fetchers, []
        for thread in fetchers:  # a page still being fetched ahead: let its request end
            thread.join(self.connect_timeout)
        if http is not None and self._own_http:
            http.close()

    @property
    def healthy(self) -> bool:
        return self._http is not None

    def __repr__(self) -> str:
        state = "open" if self._http is not None else "closed"
        return f"<RestTransport {self.base_url} tenant={self.tenant!r} {state}>"

    # --- invocations ---

    def start(self, invocation: Invocation) -> Execution:
        """Check and encode ``invocation``, get a token and send the first request (on a thread): the
        cmdlet runs whether or not its result is ever read, as it does in pwsh.

        Raises :class:`pswrap.errors.NotSupportedByTransport` for what the admin API cannot run (a
        script, pipeline input, positional arguments, a SecureString) and
        :class:`pswrap.TokenError` when no token can be had.
        """
        body = adminapi.request_body(invocation)
        if self._http is None:
            raise InvocationNotStarted("the rest transport is not open (call open() first)")
        token = self.token_provider.get_token()
        execution = _RestExecution(self, invocation, body, token)
        execution._begin()
        return execution

    def _fetch_ahead(self, fetch: Callable[[str, int], _Body], url: str, number: int) -> _Prefetch:
        prefetch = _Prefetch(fetch, url, number)
        with self._lock:
            self._fetchers = [t for t in self._fetchers if t.is_alive()]
            self._fetchers.append(prefetch.thread)
        return prefetch

    # --- HTTP (used by the executions) ---

    def _post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        token: AccessToken,
        timeout: tuple[float, float],
    ) -> tuple[requests.Response, bytes]:
        """POST and read the whole answer (into one buffer: ``.content`` would briefly hold it twice)."""
        http = self._http
        if http is None:
            raise requests.ConnectionError("the rest transport was closed")
        options: dict[str, Any] = {}
        if self.ca_bundle:
            options["verify"] = self.ca_bundle  # given per request, it beats REQUESTS_CA_BUNDLE
        if (urlsplit(url).hostname or "") in _LOOPBACK:
            options["proxies"] = {"http": None, "https": None}
        response = http.post(
            url,
            data=body,
            headers=headers,
            auth=_Bearer(token),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            **options,
        )
        raw = response.raw
        try:
            if not 200 <= response.status_code < 300:
                return response, _error_body(raw, response.headers.get("Content-Encoding"))
            content = raw.read(decode_content=True) or b""
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.ReadTimeout(exc, response=response) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.ConnectionError(exc, response=response) from exc
        finally:
            raw.release_conn()  # back to the pool when the answer was read to its end
        return response, content

    def _trusted(self, url: str) -> str | None:
        """Why ``url`` must not receive the token (``None``: it may)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() != "https":
            return f"it is not HTTPS ({parts.scheme or 'no scheme'}://{host})"
        if host == self.base_host or any(host == d or host.endswith("." + d) for d in self.redirect_domains):
            return None
        allowed = adminapi.describe([self.base_host, *(f"*.{d}" for d in self.redirect_domains)])
        return f"{host or 'no host'} is outside {allowed}"

    def _invoke_url(self, tenant: str) -> str:
        return self.base_url + adminapi.invoke_path(tenant)


class _Bearer(AuthBase):
    """Puts the token in ``Authorization`` as the request is prepared (and keeps ``.netrc`` out)."""

    def __init__(self, token: AccessToken) -> None:
        self._token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = "Bearer " + self._token.token.reveal()
        return request

    def __repr__(self) -> str:
        return "<bearer token>"


def _new_http_session() -> requests.Session:
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)  # retries are ours to decide
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    http.headers["User-Agent"] = f"pswrap/{__version__} (admin API)"
    return http


def _extra_options(settings: Settings | None) -> dict[str, Any]:
    if settings is None:
        return {}
    table = settings.extra.get("rest") or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{settings.origin.description}: 'rest' must be a table of options")
    unknown = sorted(set(table) - set(_EXTRA_KEYS))
    if unknown:
        raise ConfigError(
            f"{settings.origin.description}: unknown rest option(s) {', '.join(unknown)}; "
            f"known: {', '.join(_EXTRA_KEYS)}"
        )
    return dict(table)


def _seconds(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigError(f"base_url must be an https:// URL (the token travels with it), not {url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"base_url is scheme, host and port only, not {url!r}")
    return f"https://{parts.netloc}"
