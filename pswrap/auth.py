"""App-only access tokens from Microsoft Entra ID, through MSAL: client secret, certificate, managed identity.

One :class:`TokenProvider` per identity, shared by every session of that identity in the process
(:func:`get_token_provider`). It keeps the token in MSAL's cache, asks again only when the token is
within ``refresh_margin`` seconds of its expiry, and lets one thread do the asking while the others
wait for its answer. Errors from Entra ID become :class:`~pswrap.errors.EntraError` subclasses that
keep the AADSTS code and the correlation id and say what to fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from msal.exceptions import MsalServiceError
from requests.adapters import HTTPAdapter

from pswrap import __version__
from pswrap.clouds import EXCHANGE_ROLE, is_exchange_audience
from pswrap.config import Settings, warn_if_readable_by_others
from pswrap.errors import (
    ApplicationNotFoundError,
    ConfigError,
    ConsentRequiredError,
    CredentialRejectedError,
    EntraError,
    IdentityProviderUnavailableError,
    ManagedIdentityError,
    ScopeRejectedError,
    TenantNotFoundError,
    TokenError,
)
from pswrap.secret import Secret, get_logger, protect_loggers, scrub

__all__ = [
    "AccessToken",
    "TokenProvider",
    "clear_token_providers",
    "decode_claims",
    "get_token_provider",
]

logger = get_logger(__name__)
# msal logs whole protocol exchanges at DEBUG; urllib3 logs URLs. Scrub secrets from both.
protect_loggers()

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# A key that exists only in this process: credential fingerprints cannot be matched to secrets elsewhere.
_PROCESS_KEY = secrets.token_bytes(32)
# After a failed early refresh, how long the still-valid token is used before asking again.
_RETRY_AFTER_FAILED_REFRESH = 30.0


def decode_claims(token: str | Secret) -> dict[str, Any]:
    """The claims of a JWT access token, decoded for display only: the signature is NOT verified.

    Raises :class:`ValueError` (without echoing the token) when it is not a JWT.
    """
    raw = token.reveal() if isinstance(token, Secret) else token
    parts = raw.split(".")
    if len(parts) != 3:
        raise ValueError("the access token is not a JWT (header.payload.signature)")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        raise ValueError("the access token's payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ValueError("the access token's payload is not a JSON object")
    return claims


class AccessToken:
    """An access token (a :class:`~pswrap.secret.Secret`), its expiry and its decoded claims.

    ``token.reveal()`` gives the bearer value, at the one place it is sent. A provider hands out the
    same ``AccessToken`` object until it obtains a new one, so ``is`` tells whether it changed.
    ``warnings`` lists problems seen in the claims (such as a missing ``Exchange.ManageAsApp`` role).
    """

    __slots__ = ("claims", "expires_on", "source", "token", "warnings")

    token: Secret
    expires_on: float
    claims: Mapping[str, Any]
    source: str
    warnings: tuple[str, ...]

    def __init__(
        self,
        token: str | Secret,
        *,
        expires_on: float,
        claims: Mapping[str, Any] | None = None,
        source: str = "identity_provider",
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.token = Secret(token, "access token")
        self.expires_on = float(expires_on)
        self.claims = MappingProxyType(dict(claims or {}))
        self.source = source
        self.warnings = warnings

    @property
    def expires_at(self) -> datetime:
        """When the token expires (UTC)."""
        return datetime.fromtimestamp(self.expires_on, tz=timezone.utc)

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_on - (time.time() if now is None else now)

    @property
    def expired(self) -> bool:
        return self.seconds_left() <= 0

    @property
    def roles(self) -> tuple[str, ...]:
        """The application roles (permissions) granted to the app, from the ``roles`` claim."""
        roles = self.claims.get("roles") or ()
        return tuple(str(role) for role in roles) if isinstance(roles, (list, tuple)) else (str(roles),)

    @property
    def audience(self) -> str | None:
        aud = self.claims.get("aud")
        return str(aud) if aud is not None else None

    @property
    def tenant_id(self) -> str | None:
        tid = self.claims.get("tid")
        return str(tid) if tid is not None else None

    @property
    def app_id(self) -> str | None:
        """The application (client) id the token was issued to (``appid``, or ``azp`` in v2 tokens)."""
        app = self.claims.get("appid") or self.claims.get("azp")
        return str(app) if app is not None else None

    @property
    def has_exchange_role(self) -> bool:
        """Whether ``roles`` holds ``Exchange.ManageAsApp`` (needed to manage Exchange Online)."""
        return EXCHANGE_ROLE in self.roles

    def __repr__(self) -> str:
        facts = [f"expires_at={self.expires_at.isoformat(timespec='seconds')!r}"]
        for name in ("audience", "tenant_id", "app_id"):
            value = getattr(self, name)
            if value:
                facts.append(f"{name}={value!r}")
        facts.append(f"roles={list(self.roles)!r}")
        return f"AccessToken({', '.join(facts)})"

    def __reduce__(self) -> Any:
        raise TypeError("an AccessToken cannot be pickled: tokens never go to disk")


class _Credential:
    """What MSAL needs to prove the app's identity, and how to talk about it without showing it."""

    __slots__ = ("_msal", "description", "fingerprint")

    def __init__(self, description: str, fingerprint: str, msal_credential: Any) -> None:
        self.description = description
        self.fingerprint = fingerprint
        self._msal = msal_credential

    def __repr__(self) -> str:
        return f"<credential {self.description}>"


class _ProviderKey(NamedTuple):
    """What makes two settings share a provider: identity, credential, scope, and how to reach it."""

    authority: str
    client_id: str
    credential: str  # a process-local fingerprint, never the secret itself
    scope: str
    ca_bundle: str
    timeout: float
    refresh_margin: float


class TokenProvider:
    """App-only tokens for one identity: cached, refreshed ``refresh_margin`` seconds before expiry.

    Use :func:`get_token_provider` to share one provider per identity across the process; building
    one directly gives a private provider with its own cache. ``http_client`` replaces the
    ``requests.Session`` the provider would build (proxies, custom adapters).
    """

    def __init__(self, settings: Settings, *, http_client: requests.Session | None = None) -> None:
        settings.require_token_settings()
        self.settings = settings
        self.scope = settings.scope or settings.cloud.scope
        self.resource = self.scope.removesuffix("/.default")
        self.refresh_margin = settings.refresh_margin
        self.managed = settings.credential_kind == "managed_identity"
        self.authority: str | None = (
            None
            if self.managed
            else f"{settings.authority or settings.cloud.authority_url}/{settings.tenant}"
        )
        self.client_id = settings.managed_identity if self.managed else settings.client_id
        self._credential = _load_credential(settings)
        self.key = _key(settings, self._credential.fingerprint)
        self._own_http = http_client is None
        self._http = http_client or _Session(settings)
        self._cache = msal.TokenCache()
        self._client: Any = None  # the MSAL application, built on first use (it fetches the OIDC metadata)
        self._lock = threading.Lock()
        self._current: AccessToken | None = None
        self._retry_not_before = 0.0

    @property
    def credential_description(self) -> str:
        """The credential in words (``client secret``, ``certificate CN=… (thumbprint …)``…)."""
        return self._credential.description

    def get_token(self) -> AccessToken:
        """A token with more than ``refresh_margin`` seconds left, from the cache or a new request.

        Many threads at once cause one request; the others wait for its answer.
        """
        current = self._current
        if current is not None and current.seconds_left() > self.refresh_margin:
            return current
        with self._lock:
            current = self._current
            if current is not None and current.seconds_left() > self.refresh_margin:
                return current
            return self._renew(current, force=False)

    def refresh(self, stale: AccessToken | None = None) -> AccessToken:
        """A new token even though the current one has time left (a service rejected it).

        With ``stale``, only replaces that token: when another thread already replaced it, the newer
        token is returned without another request.
        """
        with self._lock:
            current = self._current
            if stale is not None and current is not None and current is not stale:
                return current
            return self._renew(current, force=True)

    def close(self) -> None:
        """Release the HTTP connections (the provider still works; it reconnects when asked)."""
        if self._own_http:
            self._http.close()

    def __repr__(self) -> str:
        where = "managed identity endpoint" if self.managed else self.authority
        return (
            f"TokenProvider(client_id={self.client_id!r}, credential={self._credential.description!r}, "
            f"authority={where!r}, scope={self.scope!r})"
        )

    # -- getting a token --------------------------------------------------------------------------

    def _renew(self, current: AccessToken | None, *, force: bool) -> AccessToken:
        now = time.time()
        usable = current is not None and current.seconds_left(now) > 0
        if usable and not force and now < self._retry_not_before:
            assert current is not None
            return current
        try:
            # Replacing a token means asking Entra ID: MSAL's cache would hand back the same one while
            # it has 5 minutes left, and a larger margin is ours to enforce.
            token = self._request(force=force or current is not None)
        except TokenError as exc:
            if not usable or force:
                raise
            assert current is not None
            self._retry_not_before = now + min(_RETRY_AFTER_FAILED_REFRESH, current.seconds_left(now) / 2)
            logger.warning(
                "could not replace the token for %s early; the current one is still valid for %d s: %s",
                self.client_id,
                current.seconds_left(now),
                exc.reason,
            )
            return current
        self._current = token
        self._retry_not_before = 0.0
        return token

    def _request(self, *, force: bool) -> AccessToken:
        client = self._msal_client()
        if force:
            self._forget_cached_tokens()
        token = self._token_from(self._acquire(client))
        if token.source != "cache":
            logger.info(
                "new access token for %s (%s): expires in %d s, roles %s",
                self.client_id,
                self._credential.description,
                token.seconds_left(),
                ", ".join(token.roles) or "none",
            )
            if token.seconds_left() <= self.refresh_margin:
                logger.warning(
                    "the identity provider issued a token valid for %d s, less than the refresh margin "
                    "(%d s): every use will ask for a new one; lower refresh_margin",
                    token.seconds_left(),
                    self.refresh_margin,
                )
            for warning in token.warnings:
                logger.warning("%s", warning)
        return token

    def _msal_client(self) -> Any:
        if self._client is not None:
            return self._client
        settings = self.settings
        try:
            if self.managed:
                self._client = msal.ManagedIdentityClient(
                    self._credential._msal, http_client=self._http, token_cache=self._cache
                )
            else:
                self._client = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=self._credential._msal,
                    authority=self.authority,
                    http_client=self._http,
                    token_cache=self._cache,
                    # Entra's instance discovery is for unknown hosts; the cloud table already knows ours.
                    instance_discovery=False,
                    # MSAL_FORCE_REGION would send an overridden authority to a regional host.
                    azure_region=False if settings.authority else None,
                    app_name="pswrap",
                    app_version=__version__,
                )
        except requests.RequestException as exc:
            raise self._unavailable(exc) from None
        except ValueError as exc:
            raise self._discovery_error(exc) from None
        protect_loggers()  # loggers msal created while building the application
        return self._client

    def _acquire(self, client: Any) -> dict[str, Any]:
        try:
            if self.managed:
                result = client.acquire_token_for_client(resource=self.resource)
            else:
                result = client.acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise self._unavailable(exc) from None
        except MsalServiceError as exc:  # MSAL raises this for HTTP 5xx
            status = re.search(r"\d{3}", str(exc))
            problem = f"HTTP {status.group()}" if status else "server error"
            where = self.authority or "the managed identity endpoint"
            raise IdentityProviderUnavailableError(
                f"the identity provider at {where} answered {problem}",
                problem=problem,
                url=where,
                action="Entra ID is having trouble; try again in a minute (status.cloud.microsoft).",
                authority=self.authority,
                client_id=self.client_id,
            ) from None
        except msal.ManagedIdentityError as exc:
            raise ManagedIdentityError(
                f"the managed identity endpoint refused: {scrub(str(exc))}",
                action="Check that the identity is assigned to this Azure resource.",
                client_id=self.client_id,
            ) from None
        except ValueError:  # the answer was not JSON
            where = self.authority or "the managed identity endpoint"
            raise IdentityProviderUnavailableError(
                f"the identity provider at {where} answered with something that is not JSON",
                problem="not JSON",
                url=where,
                action="A proxy or captive portal may be answering for Entra ID: check network access.",
                authority=self.authority,
                client_id=self.client_id,
            ) from None
        if not isinstance(result, dict) or "access_token" not in result:
            raise self._refused(result if isinstance(result, dict) else {})
        return result

    def _token_from(self, result: Mapping[str, Any]) -> AccessToken:
        raw = str(result["access_token"])
        secret = Secret(raw, "access token")
        try:
            claims = decode_claims(raw)
        except ValueError:
            claims = {}
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            expires_on = float(exp)
        else:
            expires_on = time.time() + float(result.get("expires_in") or 0)
        warnings: list[str] = []
        audience = str(claims.get("aud") or self.resource)
        if is_exchange_audience(audience) and EXCHANGE_ROLE not in (claims.get("roles") or ()):
            roles = ", ".join(str(r) for r in claims.get("roles") or ()) or "none"
            warnings.append(
                f"the token for {self.client_id} has no {EXCHANGE_ROLE} role (roles: {roles}): in the "
                "app registration add API permission Office 365 Exchange Online > Exchange.ManageAsApp "
                "(Application) and grant admin consent, or Connect-ExchangeOnline will fail with 401"
            )
        return AccessToken(
            secret,
            expires_on=expires_on,
            claims=claims,
            source=str(result.get("token_source") or "identity_provider"),
            warnings=tuple(warnings),
        )

    def _forget_cached_tokens(self) -> None:
        for entry in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._cache.remove_at(entry)

    # -- turning failures into errors a person can act on -----------------------------------------

    def _refused(self, result: Mapping[str, Any], status: int | None = None) -> TokenError:
        description = scrub(str(result.get("error_description") or ""))
        if self.managed:
            said = (
                description.splitlines()[0] if description else str(result.get("error") or "no reason given")
            )
            return ManagedIdentityError(
                f"the managed identity endpoint refused a token for {self.resource}: {said}",
                action=(
                    "Check that this identity is assigned to the Azure resource pswrap runs on "
                    f"({self._credential.description}) and has the {EXCHANGE_ROLE} role."
                ),
                client_id=self.client_id,
            )
        return _entra_error(result, provider=self, status=status)

    def _discovery_error(self, exc: ValueError) -> TokenError:
        # MSAL raises ValueError when the tenant's OpenID configuration cannot be read; the answer
        # Entra gave (AADSTS90002 for an unknown tenant) is in the exception it replaced.
        text = "\n".join(str(e) for e in _exception_chain(exc))
        body = re.search(r"HTTP status: (\d{3}), Error: (\{.*\})", text, re.DOTALL)
        if body:
            try:
                answer = json.loads(body.group(2))
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                return self._refused(answer, status=int(body.group(1)))
        if "configuration" in text or "OIDC" in text:
            return TokenError(
                f"could not read the OpenID configuration of {self.authority}",
                action="Check the tenant and the environment (cloud); a custom authority must serve "
                "<authority>/<tenant>/v2.0/.well-known/openid-configuration.",
                authority=self.authority,
                client_id=self.client_id,
            )
        return TokenError(
            f"MSAL could not use the credential ({self._credential.description}): {scrub(str(exc))}",
            authority=self.authority,
            client_id=self.client_id,
        )

    def _unavailable(self, exc: requests.RequestException) -> IdentityProviderUnavailableError:
        request = getattr(exc, "request", None)
        url = getattr(request, "url", None) or self.authority or "the managed identity endpoint"
        parts = urlsplit(str(url))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))  # no query strings in errors
        host = parts.netloc or url
        text = scrub(str(exc))
        if isinstance(exc, requests.exceptions.SSLError):
            problem = "TLS failure"
            reason = re.search(
                r"(certificate verify failed[^'\")]*|wrong version number|handshake[^'\")]*)", text
            )
            message = (
                f"TLS failed talking to {host}: {reason.group(1).strip() if reason else 'handshake failed'}"
            )
            action = (
                "If a proxy inspects TLS, point ca_bundle (PSWRAP_CA_BUNDLE) at its CA certificate; "
                "otherwise check the system clock and CA certificates."
            )
        elif isinstance(exc, requests.exceptions.Timeout):
            problem = "timed out"
            message = f"{host} did not answer within {self.settings.timeout:g} s"
            action = "Check network access to it (proxy, firewall), or raise timeout (PSWRAP_TIMEOUT)."
        else:
            refused = "refused" in text.lower()
            problem = "connection refused" if refused else "could not connect"
            message = f"could not connect to {host}: {problem}"
            action = "Check network access to it (proxy, firewall, DNS)."
        if self.managed:
            action = (
                "No managed identity endpoint answered: is pswrap running on an Azure resource with a "
                "managed identity? " + action
            )
        return IdentityProviderUnavailableError(
            message,
            problem=problem,
            url=url,
            action=action,
            authority=self.authority,
            client_id=self.client_id,
        )


# -- what each Entra error means and what to do about it --------------------------------------------

# code -> (error class, what happened, what to do). Fields: {app} {tenant} {scope} {resource} {cloud}
# {credential} {secret_setting}.
_ENTRA_ERRORS: dict[int, tuple[type[EntraError], str, str]] = {
    7000215: (
        CredentialRejectedError,
        "Entra ID rejected the client secret of app {app}",
        "Set {secret_setting} to the secret's Value (not its Secret ID); if it is lost, create a new one "
        "under App registrations > {app} > Certificates & secrets.",
    ),
    7000222: (
        CredentialRejectedError,
        "the client secret of app {app} has expired",
        "Create a new client secret under App registrations > {app} > Certificates & secrets and put it "
        "in {secret_setting}.",
    ),
    700027: (
        CredentialRejectedError,
        "Entra ID did not accept the certificate of app {app}",
        "Upload the public certificate ({credential}) under App registrations > {app} > Certificates & "
        "secrets, or check that it has not expired.",
    ),
    700024: (
        CredentialRejectedError,
        "the client assertion of app {app} is outside its valid time range",
        "Check this machine's clock (time synchronisation).",
    ),
    700021: (
        CredentialRejectedError,
        "the client assertion names another application than {app}",
        "Use the certificate registered on app {app}.",
    ),
    700016: (
        ApplicationNotFoundError,
        "there is no application {app} in tenant {tenant}",
        "Check the Application (client) ID on the app's Overview page, and that the app is registered "
        "in (or consented to by) tenant {tenant} in {cloud}.",
    ),
    90002: (
        TenantNotFoundError,
        "tenant {tenant} does not exist in {cloud}",
        "Check the tenant ID or domain, and the environment: GCC High and DoD tenants need "
        "O365USGovGCCHigh or O365USGovDoD, 21Vianet tenants O365China.",
    ),
    900023: (
        TenantNotFoundError,
        "{tenant} is not a valid tenant",
        "Use the tenant ID (a GUID) or its domain, like contoso.onmicrosoft.com.",
    ),
    70011: (
        ScopeRejectedError,
        "the scope {scope} is not valid",
        "App-only tokens need a scope like https://outlook.office365.com/.default: remove the scope "
        "override or correct it.",
    ),
    1002012: (
        ScopeRejectedError,
        "the scope {scope} does not end with /.default",
        "App-only (client credentials) tokens need the resource followed by /.default, like "
        "https://outlook.office365.com/.default.",
    ),
    500011: (
        ScopeRejectedError,
        "the resource {resource} is not in tenant {tenant}",
        "The tenant has no Exchange Online subscription, or the environment is wrong (now {cloud}; a "
        "GCC High tenant needs O365USGovGCCHigh).",
    ),
    65001: (
        ConsentRequiredError,
        "app {app} has not been granted consent in tenant {tenant}",
        "In App registrations > {app} > API permissions, add Office 365 Exchange Online > "
        "Exchange.ManageAsApp (Application) and click Grant admin consent.",
    ),
    7000112: (
        ConsentRequiredError,
        "app {app} is disabled in tenant {tenant}",
        "An administrator must enable it: Enterprise applications > {app} > Properties > Enabled for "
        "users to sign in = Yes.",
    ),
    7000229: (
        ConsentRequiredError,
        "app {app} has no service principal in tenant {tenant}",
        "An administrator of {tenant} must consent to the app (which creates its enterprise application).",
    ),
    53003: (
        EntraError,
        "a Conditional Access policy blocked app {app}",
        "Look the sign-in up in Entra ID > Sign-in logs > Service principal sign-ins by its correlation id.",
    ),
}
_DEFAULT_ENTRA_ERROR = (
    EntraError,
    "Entra ID refused a token for app {app}",
    "Look the code up at https://login.microsoftonline.com/error and the request in the tenant's "
    "sign-in logs by its correlation id.",
)


def _entra_error(result: Mapping[str, Any], *, provider: TokenProvider, status: int | None) -> EntraError:
    description = scrub(str(result.get("error_description") or ""))
    codes = result.get("error_codes")
    code: int | None = None
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        code = codes[0]
    else:
        found = re.search(r"AADSTS(\d+)", description)
        code = int(found.group(1)) if found else None
    cls, summary, action = _ENTRA_ERRORS.get(code, _DEFAULT_ENTRA_ERROR) if code else _DEFAULT_ENTRA_ERROR
    settings = provider.settings
    facts = {
        "app": settings.client_id,
        "tenant": settings.tenant,
        "scope": provider.scope,
        "resource": provider.resource,
        "cloud": settings.environment,
        "credential": provider.credential_description,
        "secret_setting": settings.origin.label("client_secret"),
    }
    first_line = description.split("\r\n")[0].split("\n")[0].strip()
    return cls(
        summary.format(**facts),
        code=code,
        error=str(result.get("error")) if result.get("error") else None,
        description=first_line or None,
        correlation_id=_text_or_none(result.get("correlation_id")),
        trace_id=_text_or_none(result.get("trace_id")),
        timestamp=_text_or_none(result.get("timestamp")),
        status=status,
        action=action.format(**facts),
        authority=provider.authority,
        client_id=provider.client_id,
    )


def _text_or_none(value: object) -> str | None:
    return str(value) if value else None


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# -- credentials ------------------------------------------------------------------------------------


def _fingerprint(*parts: bytes) -> str:
    mac = hmac.new(_PROCESS_KEY, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()[:24]


def _read_certificate_file(settings: Settings) -> bytes:
    assert settings.certificate is not None
    label = settings.origin.label("certificate")
    warn_if_readable_by_others(settings.certificate, label)  # it holds the private key
    try:
        return settings.certificate.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {settings.certificate}: {exc.strerror}") from None


def _credential_fingerprint(settings: Settings) -> str:
    kind = settings.credential_kind
    if kind == "client_secret":
        assert settings.client_secret is not None
        return "secret:" + _fingerprint(settings.client_secret.reveal().encode("utf-8"))
    if kind == "certificate":
        password = (
            settings.certificate_password.reveal().encode("utf-8") if settings.certificate_password else b""
        )
        chain = b"chain" if settings.certificate_send_chain else b""
        return "certificate:" + _fingerprint(_read_certificate_file(settings), password, chain)
    return f"managed_identity:{(settings.managed_identity or '').lower()}"


def _key(settings: Settings, fingerprint: str) -> _ProviderKey:
    managed = settings.credential_kind == "managed_identity"
    authority = "managed_identity" if managed else f"{settings.authority or settings.cloud.authority_url}"
    return _ProviderKey(
        authority=f"{authority}/{settings.tenant or ''}".lower(),
        client_id=(settings.managed_identity if managed else settings.client_id) or "",
        credential=fingerprint,
        scope=settings.scope or settings.cloud.scope,
        ca_bundle=str(settings.ca_bundle or ""),
        timeout=settings.timeout,
        refresh_margin=settings.refresh_margin,
    )


def _load_credential(settings: Settings) -> _Credential:
    kind = settings.credential_kind
    fingerprint = _credential_fingerprint(settings)
    if kind == "client_secret":
        assert settings.client_secret is not None
        return _Credential("client secret", fingerprint, settings.client_secret.reveal())
    if kind == "certificate":
        return _load_certificate(settings, fingerprint)
    value = settings.managed_identity or ""
    lowered = value.lower()
    prefix, _, rest = value.partition(":")
    identity: Any
    if lowered == "system":
        identity, description = msal.SystemAssignedManagedIdentity(), "system-assigned managed identity"
    elif prefix == "object_id":
        identity = msal.UserAssignedManagedIdentity(object_id=rest)
        description = f"user-assigned managed identity (object id {rest})"
    elif prefix == "resource_id" or lowered.startswith("/subscriptions/"):
        rid = rest if prefix == "resource_id" else value
        identity = msal.UserAssignedManagedIdentity(resource_id=rid)
        description = f"user-assigned managed identity {rid}"
    else:
        cid = rest if prefix == "client_id" else value
        identity = msal.UserAssignedManagedIdentity(client_id=cid)
        description = f"user-assigned managed identity (client id {cid})"
    return _Credential(description, fingerprint, identity)


def _load_certificate(settings: Settings, fingerprint: str) -> _Credential:
    """Read a PEM (certificate + private key) or PFX file into what MSAL signs assertions with."""
    label = settings.origin.label("certificate")
    path = settings.certificate
    data = _read_certificate_file(settings)
    password = (
        settings.certificate_password.reveal().encode("utf-8") if settings.certificate_password else None
    )
    key: Any
    if b"-----BEGIN" in data:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(
                f"{label}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password)
        except TypeError:
            raise ConfigError(
                f"{label}: the private key in {path} is encrypted: set the certificate password"
                if password is None
                else f"{label}: the private key in {path} is not encrypted: remove the certificate password"
            ) from None
        except ValueError:
            raise ConfigError(
                f"{label}: cannot read a private key from {path}: the password is wrong, or the file "
                "holds only the certificate (put the key in the same PEM file)"
            ) from None
    else:
        try:
            key, first, more = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            raise ConfigError(
                f"{label}: cannot open {path}: the certificate password is wrong, or it is not a PFX "
                "(PKCS#12) or PEM file"
            ) from None
        if key is None or first is None:
            raise ConfigError(f"{label}: {path} must hold both the certificate and its private key")
        certificates = [first, *more]
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"{label}: the key in {path} is not an RSA key (Entra ID signs assertions with RSA)"
        )
    public = key.public_key().public_numbers()
    certificate = next((c for c in certificates if _same_key(c, public)), None)
    if certificate is None:
        raise ConfigError(f"{label}: no certificate in {path} matches its private key")
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()
    expires = certificate.not_valid_after_utc
    subject = certificate.subject.rfc4514_string() or "(no subject)"
    description = f"certificate {subject} (thumbprint {thumbprint}, expires {expires:%Y-%m-%d})"
    if expires < datetime.now(timezone.utc):
        logger.warning("%s: the %s has expired; Entra ID will refuse it (AADSTS700027)", label, description)
    key_pem = Secret(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        "private key",
    )
    # Default: RS256 with the SHA-1 thumbprint (x5t), the form every Entra cloud accepts. With
    # certificate_send_chain: PS256 with x5t#S256 and the certificate in x5c (subject name/issuer auth).
    msal_credential: dict[str, str]
    if settings.certificate_send_chain:
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        msal_credential = {"private_key": key_pem.reveal(), "public_certificate": cert_pem}
    else:
        msal_credential = {"private_key": key_pem.reveal(), "thumbprint": thumbprint}
    return _Credential(description, fingerprint, msal_credential)


def _same_key(certificate: x509.Certificate, public: rsa.RSAPublicNumbers) -> bool:
    key = certificate.public_key()
    return isinstance(key, rsa.RSAPublicKey) and key.public_numbers() == public


# -- HTTP ---------------------------------------------------------------------------------------------


class _Session(requests.Session):
    """The HTTP client MSAL uses: a timeout on every request, and an explicit CA bundle that wins.

    ``requests`` lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's ``verify``, so
    the configured bundle is passed on each request instead. Loopback addresses (an App Service
    identity endpoint, a local test identity provider) never go through a proxy.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._timeout = settings.timeout
        self._ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
        if self._ca_bundle and not Path(self._ca_bundle).is_file():
            raise ConfigError(f"{settings.origin.label('ca_bundle')}: there is no file {self._ca_bundle}")
        adapter = HTTPAdapter(max_retries=1)  # retries connecting once, never a request that was sent
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        if self._ca_bundle:
            kwargs.setdefault("verify", self._ca_bundle)
        host = urlsplit(url if isinstance(url, str) else url.decode()).hostname
        if host in _LOOPBACK:
            kwargs.setdefault("proxies", {"http": None, "https": None})
        return super().request(method, url, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<pswrap HTTP session timeout={self._timeout:g}s ca_bundle={self._ca_bundle!r}>"


# -- one provider per identity ------------------------------------------------------------------------

_providers_lock = threading.Lock()
_providers: dict[_ProviderKey, TokenProvider] = {}


def get_token_provider(settings: Settings) -> TokenProvider:
    """The process-wide provider for these settings' identity (created on first use).

    Settings naming the same authority, tenant, client id, credential, scope and connection options
    share one provider, hence one token cache and one request at a time.
    """
    settings.require_token_settings()
    key = _key(settings, _credential_fingerprint(settings))
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = TokenProvider(settings)
            _providers[key] = provider
        return provider


def clear_token_providers() -> None:
    """Forget every shared provider and its cached tokens (tests; credential rotation in place)."""
    with _providers_lock:
        providers = list(_providers.values())
        _providers.clear()
    for provider in providers:
        provider.close()
