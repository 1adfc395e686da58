"""A stand-in for Microsoft Entra ID's token service that MSAL talks to unmodified.

A local HTTPS server on 127.0.0.1 (its certificate from a ``trustme`` test CA; ``ca_path`` is the CA
file to trust) serving, per tenant (by GUID or by domain):

- ``GET /<tenant>/v2.0/.well-known/openid-configuration`` — OpenID discovery (an unknown tenant gets
  Entra's real ``AADSTS90002`` answer);
- ``POST /<tenant>/oauth2/v2.0/token`` — the ``client_credentials`` grant. It checks the client
  secret (body or HTTP Basic), or the client-assertion JWT: its signature against the certificate
  registered on the app found by ``x5t`` (SHA-1) or ``x5t#S256``, its ``aud`` (the token endpoint),
  ``iss``/``sub`` (the client id) and ``exp``/``nbf``. Failures answer with Entra's real error shape
  (``error``, ``error_description`` with Trace ID/Correlation ID/Timestamp lines, ``error_codes``,
  ``trace_id``, ``correlation_id``, ``timestamp``);
- ``GET /<tenant>/discovery/v2.0/keys`` — the JWKS of the key that signs issued tokens;
- ``GET /msi/token`` — an App Service style managed-identity endpoint (``X-IDENTITY-HEADER``); point
  MSAL at it with ``IDENTITY_ENDPOINT=idp.managed_identity_endpoint`` and
  ``IDENTITY_HEADER=idp.identity_header``.

Issued tokens are RS256 JWTs shaped like Entra's v1 app-only tokens for Exchange (``aud``, ``iss``,
``tid``, ``appid``, ``appidacr``, ``roles``, ``oid``, ``exp``, ``iat``, ``nbf``…). Other stand-ins
verify them with :meth:`IdentityProvider.verify` (or ``public_key_pem`` / ``jwks``), and tests mint
them directly with :meth:`IdentityProvider.issue_token` (valid, expired, role-less…).

Behaviour switches for tests: :meth:`fail_next` (an AADSTS error or an HTTP status for the next
token requests), ``delay`` (seconds before answering a token request), ``hang`` (never answer token
requests until :meth:`reset`/:meth:`close`, bounded by ``hang_limit``). ``requests`` records every
request (kind, path, client id, status, AADSTS code); :meth:`count` counts them by kind.
Bounded: loopback only, daemon threads, a socket timeout, and a request budget.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import string
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

EXCHANGE_RESOURCE = "https://outlook.office365.com"
EXCHANGE_ROLE = "Exchange.ManageAsApp"
# Resources the stand-in's tenants know (an unknown one gets AADSTS500011).
KNOWN_RESOURCES = (
    EXCHANGE_RESOURCE,
    "https://outlook.office365.us",
    "https://outlook-dod.office365.us",
    "https://partner.outlook.cn",
    "https://outlook.office.de",
    "https://graph.microsoft.com",
)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# AADSTS code -> (HTTP status, OAuth error, Entra's message). Fields come from the request.
ERRORS: dict[int, tuple[int, str, str]] = {
    7000215: (
        401,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
        "value, not the client secret ID, for a secret added to app '{client_id}'.",
    ),
    7000222: (
        401,
        "invalid_client",
        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to "
        "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
        "credentials for added security: https://aka.ms/certCreds.",
    ),
    7000218: (
        401,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    700016: (
        400,
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This "
        "can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You may have sent your authentication request to the "
        "wrong tenant.",
    ),
    7000112: (400, "unauthorized_client", "Application '{client_id}'({app_name}) is disabled."),
    90002: (
        400,
        "invalid_request",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are "
        "no active subscriptions for the tenant.",
    ),
    700027: (
        401,
        "invalid_client",
        "The certificate with identifier used to sign the client assertion is not registered on "
        "application. [Reason - The key was not found., Thumbprint of key used by client: "
        "'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
        "configured keys for app Id '{client_id}'.]",
    ),
    700024: (
        400,
        "invalid_client",
        "Client assertion is not within its valid time range. Current time: {now}, assertion valid "
        "from {nbf}, expiry time of assertion {exp}.",
    ),
    700021: (
        401,
        "invalid_client",
        "Client assertion application identifier doesn't match 'client_id' parameter.",
    ),
    70011: (
        400,
        "invalid_scope",
        "The provided request must include a 'scope' input parameter. The provided value for the input "
        "parameter 'scope' is not valid. The scope {scope} is not valid.",
    ),
    1002012: (
        400,
        "invalid_scope",
        "The provided value for scope {scope} is not valid. Client credential flows must have a scope "
        "value with /.default suffixed to the resource identifier (application ID URI).",
    ),
    900144: (400, "invalid_request", "The request body must contain the following parameter: 'scope'."),
    500011: (
        400,
        "invalid_resource",
        "The resource principal named {resource} was not found in the tenant named {tenant_name}. This "
        "can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You might have sent your authentication request to the "
        "wrong tenant.",
    ),
    65001: (
        400,
        "invalid_grant",
        "The user or administrator has not consented to use the application with ID '{client_id}' named "
        "'{app_name}'. Send an interactive authorization request for this user and resource.",
    ),
    53003: (
        400,
        "invalid_grant",
        "Access has been blocked by Conditional Access policies. The access policy does not allow token "
        "issuance.",
    ),
    70003: (400, "unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'."),
}


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(certificate: x509.Certificate, algorithm: str = "sha1") -> str:
    """The certificate's ``x5t`` (``sha1``) or ``x5t#S256`` (``sha256``) value, base64url."""
    digest = hashes.SHA1() if algorithm == "sha1" else hashes.SHA256()
    return _b64url(certificate.fingerprint(digest))


@dataclass
class Tenant:
    id: str
    domain: str
    name: str


@dataclass
class ClientSecret:
    value: str
    expires_on: float | None = None  # epoch seconds; None: never

    def __repr__(self) -> str:  # the stand-in keeps secrets out of test output too
        return f"ClientSecret(expires_on={self.expires_on!r})"


@dataclass
class Application:
    """An app registration (and its service principal) in one tenant."""

    client_id: str
    tenant: Tenant
    name: str = "pswrap test app"
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[x509.Certificate] = field(default_factory=list)
    roles: tuple[str, ...] = (EXCHANGE_ROLE,)
    token_lifetime: int = 3599
    disabled: bool = False
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    extra_claims: dict[str, Any] = field(default_factory=dict)

    @property
    def secret(self) -> str:
        """The first client secret's value."""
        return self.secrets[0].value


@dataclass
class ManagedIdentity:
    """A managed identity assigned to the (pretend) Azure resource the tests run on."""

    tenant: Tenant
    client_id: str
    object_id: str
    resource_id: str
    system: bool = False
    roles: tuple[str, ...] = (EXCHANGE_ROLE,)
    token_lifetime: int = 3599


@dataclass(frozen=True)
class Request:
    """One request the stand-in received (``kind``: discovery, token, managed_identity, keys, other)."""

    kind: str
    method: str
    path: str
    client_id: str | None
    status: int
    code: int | None = None
    correlation_id: str | None = None  # the client's client-request-id, echoed in error answers


class IdentityProvider:
    """The stand-in server. Use as a context manager, or :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        ca: trustme.CA | None = None,
        *,
        workdir: Path | None = None,
        max_requests: int = 20_000,
        hang_limit: float = 20.0,
        socket_timeout: float = 10.0,
    ) -> None:
        self.ca = ca or trustme.CA()
        self._server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="pswrap-idp-")
        self._workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.ca_path = self._workdir / "idp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self.max_requests = max_requests
        self.hang_limit = hang_limit
        self.socket_timeout = socket_timeout
        self.identity_header = uuid.uuid4().hex + uuid.uuid4().hex
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha1(public_der).digest())
        self.public_key_pem = (
            self._signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> IdentityProvider:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        handler = type("_Handler", (_Handler,), {"idp": self, "timeout": self.socket_timeout})
        httpd = _Server(("127.0.0.1", 0), handler)
        httpd.idp = self
        httpd.daemon_threads = True
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.managed_identity_endpoint = f"{self.url}/msi/token"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="idp-standin", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget tenants, apps, identities, counters and switches (keys and CA stay)."""
        with self._lock:
            previous = getattr(self, "_release", None)
            if previous is not None:
                previous.set()  # let hanging requests go
            self._release = threading.Event()
            self.tenants: dict[str, Tenant] = {}
            self.apps: dict[tuple[str, str], Application] = {}
            self.identities: list[ManagedIdentity] = []
            self.requests: list[Request] = []
            self.broken_connections = 0  # TLS handshakes that failed, clients that vanished
            self._failures: list[tuple[int | None, int | None, str | None]] = []
            self.delay = 0.0
            self.hang = False
            self.resources = list(KNOWN_RESOURCES)

    # -- registrations ----------------------------------------------------------------------------

    def add_tenant(self, domain: str = "contoso.onmicrosoft.com", *, tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(id=tenant_id or str(uuid.uuid4()), domain=domain, name=domain.split(".")[0].title())
        with self._lock:
            self.tenants[tenant.id.lower()] = tenant
            self.tenants[tenant.domain.lower()] = tenant
        return tenant

    def add_app(
        self,
        tenant: Tenant,
        *,
        client_id: str | None = None,
        secret: str | None = None,
        certificates: Iterable[x509.Certificate] = (),
        roles: Iterable[str] = (EXCHANGE_ROLE,),
        name: str = "pswrap test app",
    ) -> Application:
        app = Application(
            client_id=client_id or str(uuid.uuid4()),
            tenant=tenant,
            name=name,
            secrets=[ClientSecret(secret)] if secret else [],
            certificates=list(certificates),
            roles=tuple(roles),
        )
        with self._lock:
            self.apps[(tenant.id, app.client_id.lower())] = app
        return app

    def add_managed_identity(
        self,
        tenant: Tenant,
        *,
        system: bool = False,
        client_id: str | None = None,
        roles: Iterable[str] = (EXCHANGE_ROLE,),
    ) -> ManagedIdentity:
        name = "system" if system else f"uami-{len(self.identities)}"
        identity = ManagedIdentity(
            tenant=tenant,
            client_id=client_id or str(uuid.uuid4()),
            object_id=str(uuid.uuid4()),
            resource_id=(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ),
            system=system,
            roles=tuple(roles),
        )
        with self._lock:
            self.identities.append(identity)
        return identity

    # -- behaviour switches -----------------------------------------------------------------------

    def fail_next(
        self,
        code: int | None = None,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` token requests with AADSTS ``code``, or with HTTP ``status``."""
        if code is None and status is None:
            raise ValueError("give an AADSTS code or an HTTP status")
        if code is not None and code not in ERRORS:
            raise ValueError(f"no message known for AADSTS{code}; add it to ERRORS")
        with self._lock:
            self._failures.extend([(code, status, retry_after)] * times)

    def count(self, kind: str = "token") -> int:
        """How many requests of ``kind`` arrived (token, discovery, managed_identity, keys, other)."""
        with self._lock:
            return sum(1 for r in self.requests if r.kind == kind)

    @property
    def token_requests(self) -> int:
        """Requests to the token endpoints (client credentials and managed identity)."""
        with self._lock:
            return sum(1 for r in self.requests if r.kind in ("token", "managed_identity"))

    # -- tokens -----------------------------------------------------------------------------------

    @property
    def jwks(self) -> dict[str, Any]:
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self._signing_key.public_key(), as_dict=True)
        key.update({"kid": self.kid, "x5t": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [key]}

    def issue_token(
        self,
        subject: Application | ManagedIdentity,
        *,
        audience: str = EXCHANGE_RESOURCE,
        lifetime: float | None = None,
        roles: Iterable[str] | None = None,
        claims: Mapping[str, Any] | None = None,
        credential_type: str = "1",
    ) -> str:
        """A signed access token for ``subject``, as this stand-in would issue it.

        ``lifetime`` in seconds (negative: already expired); ``roles`` replaces the subject's roles
        (empty: no ``roles`` claim, as Entra does); ``claims`` adds or overrides claims.
        """
        now = int(time.time())
        lifetime = subject.token_lifetime if lifetime is None else lifetime
        roles = tuple(subject.roles if roles is None else roles)
        tenant = subject.tenant
        issuer = f"https://sts.windows.net/{tenant.id}/"
        body: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": min(now, int(now + lifetime)) - 5,
            "nbf": min(now, int(now + lifetime)) - 5,
            "exp": int(now + lifetime),
            "aio": _b64url(uuid.uuid4().bytes),
            "appid": subject.client_id,
            "appidacr": credential_type,
            "idp": issuer,
            "idtyp": "app",
            "oid": subject.object_id,
            "rh": "0.AAAA" + _b64url(uuid.uuid4().bytes),
            "sub": subject.object_id,
            "tid": tenant.id,
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if isinstance(subject, Application):
            body["app_displayname"] = subject.name
            body.update(subject.extra_claims)
        else:
            body["xms_mirid"] = subject.resource_id
        if roles:
            body["roles"] = list(roles)
        body.update(claims or {})
        return jwt.encode(
            body, self._signing_key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid}
        )

    def verify(
        self, token: str, *, audience: str | Iterable[str] | None = EXCHANGE_RESOURCE
    ) -> dict[str, Any]:
        """The claims of a token this stand-in issued; raises a ``jwt.InvalidTokenError`` otherwise
        (bad signature, another issuer's key, expired, wrong audience). ``audience=None`` skips it."""
        options = {"require": ["exp", "iat", "nbf", "tid"], "verify_aud": audience is not None}
        claims: dict[str, Any] = jwt.decode(
            token,
            self._signing_key.public_key(),
            algorithms=["RS256"],
            audience=list(audience) if audience and not isinstance(audience, str) else audience,
            options=options,  # type: ignore[arg-type]
        )
        tenant = self.tenants.get(str(claims["tid"]).lower())
        if tenant is None or claims.get("iss") != f"https://sts.windows.net/{tenant.id}/":
            raise jwt.InvalidIssuerError("the token's issuer is not a tenant of this identity provider")
        return claims

    # -- request handling (called from the handler threads) ---------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _budget_left(self) -> bool:
        with self._lock:
            return len(self.requests) < self.max_requests

    def _take_failure(self) -> tuple[int | None, int | None, str | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _wait_as_configured(self, request: Request) -> bool:
        """Sleep ``delay``; with ``hang``, record the request and wait for a reset: then answer nothing."""
        release = self._release
        if self.hang:
            self._record(request)
            release.wait(self.hang_limit)
            return False
        if self.delay:
            release.wait(self.delay)
        return True

    def _tenant(self, key: str) -> Tenant | None:
        with self._lock:
            return self.tenants.get(unquote(key).lower())

    def _app(self, tenant: Tenant, client_id: str) -> Application | None:
        with self._lock:
            return self.apps.get((tenant.id, client_id.lower()))

    def _openid_configuration(self, tenant: Tenant) -> dict[str, Any]:
        base = f"{self.url}/{tenant.id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "tid",
                "ver",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _error(
        self, code: int, correlation_id: str, *, message: str | None = None, **facts: Any
    ) -> tuple[int, dict[str, Any]]:
        """Entra's error answer for ``code`` (``message`` replaces the usual text)."""
        status, error, template = ERRORS[code]
        template = message or template
        trace_id = str(uuid.uuid4())
        timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        message = string.Formatter().vformat(template, (), _Facts({k: str(v) for k, v in facts.items()}))
        return status, {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}"
                f"\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.url}/error?code={code}",
        }

    def _token(self, tenant_key: str, form: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        facts: dict[str, Any] = {"client_id": client_id, "tenant": tenant_key, "scope": scope}
        tenant = self._tenant(tenant_key)
        app = self._app(tenant, client_id) if tenant else None
        if tenant is not None:
            facts.update(tenant_name=tenant.name, tenant=tenant.id)
        if app is not None:
            facts.update(app_name=app.name)
        failure = self._take_failure()
        if failure is not None:
            code, status, retry_after = failure
            if code is not None:
                facts.setdefault("resource", scope.removesuffix("/.default"))
                return self._error(code, correlation_id, **facts)
            return status or 500, {"error": "temporarily_unavailable", "retry_after": retry_after}
        if form.get("grant_type") != "client_credentials":
            return self._error(70003, correlation_id, grant_type=form.get("grant_type"), **facts)
        if tenant is None:
            return self._error(90002, correlation_id, **facts)
        if app is None:
            return self._error(700016, correlation_id, **facts)
        if app.disabled:
            return self._error(7000112, correlation_id, **facts)
        failed = self._check_client(app, form, headers, correlation_id, facts)
        if failed is not None:
            return failed
        if not scope:
            return self._error(900144, correlation_id, **facts)
        if len(scope.split()) != 1 or "://" not in scope:
            return self._error(70011, correlation_id, **facts)
        if not scope.endswith("/.default"):
            return self._error(1002012, correlation_id, **facts)
        resource = scope.removesuffix("/.default")
        if resource not in self.resources:
            return self._error(500011, correlation_id, resource=resource, **facts)
        credential_type = "2" if "client_assertion" in form else "1"
        token = self.issue_token(app, audience=resource, credential_type=credential_type)
        return 200, {
            "token_type": "Bearer",
            "expires_in": app.token_lifetime,
            "ext_expires_in": app.token_lifetime,
            "access_token": token,
        }

    def _check_client(
        self,
        app: Application,
        form: Mapping[str, str],
        headers: Mapping[str, str],
        correlation_id: str,
        facts: dict[str, Any],
    ) -> tuple[int, Any] | None:
        secret = form.get("client_secret")
        basic = headers.get("authorization", "")
        if secret is None and basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode("utf-8")
            secret = unquote(decoded.partition(":")[2].replace("+", " "))
        assertion = form.get("client_assertion")
        if secret is not None:
            now = time.time()
            for known in app.secrets:
                if hmac.compare_digest(known.value.encode(), secret.encode()):
                    if known.expires_on is not None and known.expires_on < now:
                        return self._error(7000222, correlation_id, **facts)
                    return None
            return self._error(7000215, correlation_id, **facts)
        if assertion is None or form.get("client_assertion_type") != ASSERTION_TYPE:
            return self._error(7000218, correlation_id, **facts)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return self._error(700027, correlation_id, thumbprint="(unreadable assertion)", **facts)
        if "x5t#S256" in header:
            presented, algorithm = header["x5t#S256"], "sha256"
        else:
            presented, algorithm = header.get("x5t", ""), "sha1"
        # MSAL pads its base64url thumbprints with "="; Entra accepts both spellings.
        wanted = str(presented).rstrip("=")
        certificate = next((c for c in app.certificates if thumbprint(c, algorithm) == wanted), None)
        if certificate is None or header.get("alg") not in ("RS256", "PS256"):
            return self._error(700027, correlation_id, thumbprint=presented, **facts)
        tenant = app.tenant
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[header["alg"]],
                audience=f"{self.url}/{tenant.id}/oauth2/v2.0/token",
                options={"require": ["exp", "iss", "sub", "aud"]},
                leeway=0,
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            plain = jwt.decode(assertion, options={"verify_signature": False})
            return self._error(
                700024,
                correlation_id,
                now=int(time.time()),
                nbf=plain.get("nbf"),
                exp=plain.get("exp"),
                **facts,
            )
        except jwt.InvalidAudienceError:
            return self._error(
                700027,
                correlation_id,
                message="Client assertion contains an invalid audience claim.",
                **facts,
            )
        except jwt.InvalidTokenError:
            return self._error(
                700027, correlation_id, message="Client assertion failed signature validation.", **facts
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return self._error(700021, correlation_id, **facts)
        return None

    def _managed_identity(
        self, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, Any, str | None]:
        correlation_id = str(uuid.uuid4())
        if headers.get("x-identity-header") != self.identity_header:
            return (
                401,
                {"statusCode": 401, "message": "Unauthorized request.", "correlationId": correlation_id},
                None,
            )
        failure = self._take_failure()
        if failure is not None:
            code, status, _ = failure
            message = f"AADSTS{code}: {ERRORS[code][2]}" if code else "Service unavailable."
            return (
                status or 400,
                {"statusCode": status or 400, "message": message, "correlationId": correlation_id},
                None,
            )
        resource = query.get("resource", "")
        with self._lock:
            candidates = list(self.identities)
        if "client_id" in query:
            found = [
                i for i in candidates if not i.system and i.client_id.lower() == query["client_id"].lower()
            ]
        elif "object_id" in query:
            found = [
                i for i in candidates if not i.system and i.object_id.lower() == query["object_id"].lower()
            ]
        elif "mi_res_id" in query:
            found = [
                i for i in candidates if not i.system and i.resource_id.lower() == query["mi_res_id"].lower()
            ]
        else:
            found = [i for i in candidates if i.system]
        if not found:
            return (
                400,
                {
                    "statusCode": 400,
                    "message": "Unable to load the proper Managed Identity.",
                    "correlationId": correlation_id,
                },
                None,
            )
        if resource not in self.resources:
            return (
                500,
                {
                    "statusCode": 500,
                    "message": f"AADSTS500011: resource {resource} not found",
                    "correlationId": correlation_id,
                },
                None,
            )
        identity = found[0]
        token = self.issue_token(identity, audience=resource, credential_type="2")
        return (
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time() + identity.token_lifetime)),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            },
            identity.client_id,
        )


class _Server(ThreadingHTTPServer):
    idp: IdentityProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that broke off (a failed TLS handshake, a timeout) is counted, not printed."""
        with self.idp._lock:
            self.idp.broken_connections += 1


class _Handler(BaseHTTPRequestHandler):
    idp: IdentityProvider
    protocol_version = "HTTP/1.1"
    server_version = "idp-standin"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read idp.requests
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.close_connection = True

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store, no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:
        idp = self.idp
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if not idp._budget_left():
            self._send(503, {"error": "stand-in request budget exhausted"})
            return
        if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = idp._tenant(segments[0])
            if tenant is None:
                correlation_id = self._headers().get("client-request-id") or str(uuid.uuid4())
                status, body = idp._error(90002, correlation_id, tenant=unquote(segments[0]))
                body["error"] = "invalid_tenant"
                idp._record(Request("discovery", "GET", parts.path, None, status, 90002, correlation_id))
                self._send(status, body)
                return
            idp._record(Request("discovery", "GET", parts.path, None, 200))
            self._send(200, idp._openid_configuration(tenant))
            return
        if segments[1:] == ["discovery", "v2.0", "keys"] or segments == ["common", "discovery", "keys"]:
            idp._record(Request("keys", "GET", parts.path, None, 200))
            self._send(200, idp.jwks)
            return
        if segments == ["msi", "token"]:
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if not idp._wait_as_configured(
                Request("managed_identity", "GET", parts.path, query.get("client_id"), 0)
            ):
                self.close_connection = True
                return
            status, body, client_id = idp._managed_identity(query, self._headers())
            idp._record(
                Request("managed_identity", "GET", parts.path, client_id or query.get("client_id"), status)
            )
            self._send(status, body)
            return
        idp._record(Request("other", "GET", parts.path, None, 404))
        self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        idp = self.idp
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1_000_000)).decode("utf-8")
        if not idp._budget_left():
            self._send(503, {"error": "stand-in request budget exhausted"})
            return
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            if not idp._wait_as_configured(Request("token", "POST", parts.path, form.get("client_id"), 0)):
                self.close_connection = True
                return
            status, body = idp._token(segments[0], form, self._headers())
            code = body.get("error_codes", [None])[0] if isinstance(body, dict) else None
            correlation_id = body.get("correlation_id") or self._headers().get("client-request-id")
            idp._record(
                Request("token", "POST", parts.path, form.get("client_id"), status, code, correlation_id)
            )
            headers = {}
            if isinstance(body, dict) and body.get("retry_after"):
                headers["Retry-After"] = str(body.pop("retry_after"))
            elif isinstance(body, dict):
                body.pop("retry_after", None)
            self._send(status, body, headers)
            return
        idp._record(Request("other", "POST", parts.path, None, 404))
        self._send(404, {"error": "not_found"})


def certificate_and_key(
    common_name: str = "pswrap test app", *, days: int = 30
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA certificate of the kind people upload to an app registration."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate, key
