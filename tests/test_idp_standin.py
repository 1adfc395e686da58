"""The identity-provider stand-in speaks Entra ID's protocol: checked here with plain HTTP, no MSAL."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.idp import CertificateFiles, ConfiguredIdentityProvider
from tests.standins.idp import ASSERTION_TYPE, EXCHANGE_RESOURCE, IdentityProvider, thumbprint

SCOPE = f"{EXCHANGE_RESOURCE}/.default"


@pytest.fixture
def http(idp: ConfiguredIdentityProvider) -> Any:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the stand-in's CA
    session.verify = str(idp.ca_path)
    yield session
    session.close()


def token_url(idp: ConfiguredIdentityProvider, tenant: str | None = None) -> str:
    return f"{idp.url}/{tenant or idp.tenant.id}/oauth2/v2.0/token"


def post_secret(http: Any, idp: ConfiguredIdentityProvider, **form: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": idp.app.client_id, "scope": SCOPE}
    data["client_secret"] = idp.app.secret
    data.update(form)
    return http.post(
        token_url(idp), data=data, headers={"client-request-id": "11111111-2222-3333-4444-555555555555"}
    )


def assertion(
    idp: ConfiguredIdentityProvider, cert: CertificateFiles, *, algorithm: str = "RS256", **claims: Any
) -> str:
    key = serialization.load_pem_private_key(cert.key_pem.encode(), None)
    now = int(time.time())
    body = {
        "aud": token_url(idp),
        "iss": idp.app.client_id,
        "sub": idp.app.client_id,
        "exp": now + 600,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    body.update(claims)
    header = {"x5t": thumbprint(cert.certificate)} if algorithm == "RS256" else {}
    if algorithm == "PS256":
        header["x5t#S256"] = thumbprint(cert.certificate, "sha256")
    return jwt.encode(body, key, algorithm=algorithm, headers=header)  # type: ignore[arg-type]


def post_assertion(http: Any, idp: ConfiguredIdentityProvider, signed: str) -> requests.Response:
    return http.post(
        token_url(idp),
        data={
            "grant_type": "client_credentials",
            "client_id": idp.app.client_id,
            "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


def test_discovery_by_guid_and_domain_points_at_the_tenant_guid(
    http: Any, idp: ConfiguredIdentityProvider
) -> None:
    for key in (idp.tenant.id, idp.tenant.domain, idp.tenant.domain.upper()):
        answer = http.get(f"{idp.url}/{key}/v2.0/.well-known/openid-configuration")
        assert answer.status_code == 200
        assert answer.json()["token_endpoint"] == token_url(idp)
    assert idp.count("discovery") == 3


def test_discovery_of_an_unknown_tenant_is_entras_aadsts90002(
    http: Any, idp: ConfiguredIdentityProvider
) -> None:
    answer = http.get(f"{idp.url}/nowhere.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'nowhere.onmicrosoft.com' not found.")


def test_secret_in_body_or_basic_auth_gets_a_verifiable_token(
    http: Any, idp: ConfiguredIdentityProvider
) -> None:
    answer = post_secret(http, idp)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    claims = idp.verify(body["access_token"])
    assert claims["aud"] == EXCHANGE_RESOURCE
    assert claims["tid"] == idp.tenant.id
    assert claims["appid"] == idp.app.client_id
    assert claims["appidacr"] == "1"
    assert claims["roles"] == ["Exchange.ManageAsApp"]
    assert claims["iss"] == f"https://sts.windows.net/{idp.tenant.id}/"
    assert claims["exp"] - claims["iat"] >= 3599

    basic = base64.b64encode(f"{idp.app.client_id}:{idp.app.secret}".encode()).decode()
    data = {"grant_type": "client_credentials", "client_id": idp.app.client_id, "scope": SCOPE}
    answer = http.post(token_url(idp), data=data, headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200
    assert idp.count("token") == 2


def test_wrong_secret_is_a_real_shaped_aadsts7000215(http: Any, idp: ConfiguredIdentityProvider) -> None:
    answer = post_secret(http, idp, client_secret="not-the-secret")
    assert answer.status_code == 401
    body = answer.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["correlation_id"] == "11111111-2222-3333-4444-555555555555"
    lines = body["error_description"].split("\r\n")
    assert lines[0].startswith("AADSTS7000215: Invalid client secret provided.")
    assert lines[1] == f"Trace ID: {body['trace_id']}"
    assert lines[2] == f"Correlation ID: {body['correlation_id']}"
    assert lines[3] == f"Timestamp: {body['timestamp']}"
    assert idp.requests[-1].code == 7000215


def test_expired_secret_unknown_app_disabled_app(http: Any, idp: ConfiguredIdentityProvider) -> None:
    idp.app.secrets[0].expires_on = time.time() - 60
    assert post_secret(http, idp).json()["error_codes"] == [7000222]
    assert post_secret(http, idp, client_id=str(uuid.uuid4())).json()["error_codes"] == [700016]
    idp.app.secrets[0].expires_on = None
    idp.app.disabled = True
    assert post_secret(http, idp).json()["error_codes"] == [7000112]


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("https://outlook.office365.com", 1002012),
        ("https://nothing.example/.default", 500011),
        (f"{SCOPE} https://graph.microsoft.com/.default", 70011),
        ("", 900144),
    ],
)
def test_scope_errors(http: Any, idp: ConfiguredIdentityProvider, scope: str, code: int) -> None:
    assert post_secret(http, idp, scope=scope).json()["error_codes"] == [code]


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_client_assertion_signed_by_the_registered_certificate(
    http: Any, idp: ConfiguredIdentityProvider, app_certificate: CertificateFiles, algorithm: str
) -> None:
    answer = post_assertion(http, idp, assertion(idp, app_certificate, algorithm=algorithm))
    assert answer.status_code == 200, answer.text
    assert idp.verify(answer.json()["access_token"])["appidacr"] == "2"


def test_client_assertion_failures(
    http: Any,
    idp: ConfiguredIdentityProvider,
    app_certificate: CertificateFiles,
    other_certificate: CertificateFiles,
) -> None:
    def code(signed: str) -> int:
        return int(post_assertion(http, idp, signed).json()["error_codes"][0])

    assert code(assertion(idp, other_certificate)) == 700027  # not registered
    assert code(assertion(idp, app_certificate, exp=int(time.time()) - 10)) == 700024
    assert code(assertion(idp, app_certificate, aud="https://elsewhere/token")) == 700027
    assert code(assertion(idp, app_certificate, sub="someone-else", iss="someone-else")) == 700021
    # A valid header naming the registered certificate, but signed with another key.
    forged = assertion(idp, other_certificate).split(".")
    genuine = assertion(idp, app_certificate).split(".")
    assert code(".".join([genuine[0], forged[1], forged[2]])) == 700027
    assert (
        "signature validation" in post_assertion(http, idp, ".".join([genuine[0], forged[1], forged[2]])).text
    )


def test_failures_on_request_then_back_to_normal(http: Any, idp: ConfiguredIdentityProvider) -> None:
    idp.fail_next(65001)
    idp.fail_next(status=503, retry_after="7")
    first = post_secret(http, idp)
    assert first.json()["error_codes"] == [65001]
    assert "has not consented to use the application" in first.json()["error_description"]
    second = post_secret(http, idp)
    assert second.status_code == 503
    assert second.headers["Retry-After"] == "7"
    assert post_secret(http, idp).status_code == 200
    assert idp.count("token") == 3


def test_hang_answers_nothing_until_reset(http: Any, idp: ConfiguredIdentityProvider) -> None:
    idp.hang = True
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(token_url(idp), data={"client_id": idp.app.client_id}, timeout=0.2)
    assert idp.requests[-1].status == 0


def test_issued_tokens_verify_and_forgeries_do_not(idp: ConfiguredIdentityProvider) -> None:
    good = idp.issue_token(idp.app)
    assert idp.verify(good)["roles"] == ["Exchange.ManageAsApp"]
    assert "roles" not in idp.verify(idp.issue_token(idp.app, roles=()))
    with pytest.raises(jwt.ExpiredSignatureError):
        idp.verify(idp.issue_token(idp.app, lifetime=-60))
    with pytest.raises(jwt.InvalidAudienceError):
        idp.verify(idp.issue_token(idp.app, audience="https://graph.microsoft.com"))
    header, payload, _ = good.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        idp.verify(f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 256).rstrip(b'=').decode()}")
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        jwt.decode(good, options={"verify_signature": False}), stranger_key, algorithm="RS256"
    )
    with pytest.raises(jwt.InvalidSignatureError):
        idp.verify(forged)
    keys = idp.jwks["keys"]
    assert keys[0]["kid"] == jwt.get_unverified_header(good)["kid"]
    public = jwt.PyJWK(keys[0]).key
    assert jwt.decode(good, public, algorithms=["RS256"], audience=EXCHANGE_RESOURCE)["tid"] == idp.tenant.id
    assert "BEGIN PUBLIC KEY" in idp.public_key_pem


def test_managed_identity_endpoint(http: Any, idp: ConfiguredIdentityProvider) -> None:
    system = idp.add_managed_identity(idp.tenant, system=True)
    user = idp.add_managed_identity(idp.tenant)
    url = idp.managed_identity_endpoint
    params = {"api-version": "2019-08-01", "resource": EXCHANGE_RESOURCE}
    headers = {"X-IDENTITY-HEADER": idp.identity_header}
    assert http.get(url, params=params).status_code == 401
    as_system = http.get(url, params=params, headers=headers).json()
    assert idp.verify(as_system["access_token"])["appid"] == system.client_id
    assert int(as_system["expires_on"]) > time.time()
    for selector in (
        {"client_id": user.client_id},
        {"object_id": user.object_id},
        {"mi_res_id": user.resource_id},
    ):
        answer = http.get(url, params={**params, **selector}, headers=headers).json()
        assert idp.verify(answer["access_token"])["appid"] == user.client_id
    unknown = http.get(url, params={**params, "client_id": str(uuid.uuid4())}, headers=headers)
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "Unable to load the proper Managed Identity."


def test_request_budget_is_enforced(tmp_path: Any) -> None:
    with IdentityProvider(workdir=tmp_path, max_requests=1) as server:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(server.ca_path)
        assert session.get(f"{server.url}/nowhere/v2.0/.well-known/openid-configuration").status_code == 400
        assert session.get(f"{server.url}/nowhere/v2.0/.well-known/openid-configuration").status_code == 503
        session.close()
