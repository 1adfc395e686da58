"""Tokens through MSAL, unmodified, against the identity-provider stand-in."""

from __future__ import annotations

import io
import logging
import pickle
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pswrap.auth import AccessToken, TokenProvider, clear_token_providers, decode_claims, get_token_provider
from pswrap.config import ConfigFile, Settings
from pswrap.errors import (
    ApplicationNotFoundError,
    ConfigError,
    ConsentRequiredError,
    CredentialRejectedError,
    EntraError,
    IdentityProviderUnavailableError,
    ManagedIdentityError,
    PswrapError,
    ScopeRejectedError,
    TenantNotFoundError,
    TokenError,
)
from tests.fixtures.idp import CertificateFiles, ConfiguredIdentityProvider

MakeSettings = Callable[..., Settings]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- every credential, end to end ------------------------------------------------------------------


def check_exchange_token(idp: ConfiguredIdentityProvider, token: AccessToken, app_id: str, acr: str) -> None:
    claims = idp.verify(token.token.reveal())  # signed by the stand-in, audience Exchange
    assert claims["appid"] == app_id == token.app_id
    assert claims["appidacr"] == acr
    assert token.tenant_id == idp.tenant.id
    assert token.audience == "https://outlook.office365.com"
    assert token.has_exchange_role and token.warnings == ()
    assert token.expires_on == claims["exp"]
    assert 3000 < token.seconds_left() <= 3599


def test_client_secret(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    token = TokenProvider(idp_settings()).get_token()
    check_exchange_token(idp, token, idp.app.client_id, "1")
    assert [r.kind for r in idp.requests] == ["discovery", "token"]


def test_tenant_by_guid(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    token = TokenProvider(idp_settings(tenant=idp.tenant.id)).get_token()
    check_exchange_token(idp, token, idp.app.client_id, "1")


@pytest.mark.parametrize("shape", ["pem", "encrypted_pem", "pfx", "pem_with_chain"])
def test_certificate(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, app_certificate: CertificateFiles, shape: str
) -> None:
    options: dict[str, Any] = {"certificate": app_certificate.pem}
    if shape == "encrypted_pem":
        options = {
            "certificate": app_certificate.encrypted_pem,
            "certificate_password": app_certificate.password,
        }
    elif shape == "pfx":
        options = {"certificate": app_certificate.pfx, "certificate_password": app_certificate.password}
    elif shape == "pem_with_chain":
        options["certificate_send_chain"] = True
    provider = TokenProvider(idp_settings(**options))
    check_exchange_token(idp, provider.get_token(), idp.app.client_id, "2")
    assert app_certificate.thumbprint in provider.credential_description


def test_managed_identity_system_and_user_assigned(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, managed_identity_environment: None
) -> None:
    system = idp.add_managed_identity(idp.tenant, system=True)
    user = idp.add_managed_identity(idp.tenant)
    cases = [
        ("system", system),
        (user.client_id, user),
        (f"client_id:{user.client_id}", user),
        (f"object_id:{user.object_id}", user),
        (user.resource_id, user),
    ]
    for value, identity in cases:
        settings = Settings(managed_identity=value, ca_bundle=idp.ca_path, timeout=5)
        provider = TokenProvider(settings)
        check_exchange_token(idp, provider.get_token(), identity.client_id, "2")
        assert provider.get_token() is provider.get_token()
    assert idp.count("managed_identity") == len(cases)


def test_other_clouds_use_their_hosts_and_scopes() -> None:
    settings = Settings(
        tenant="contoso.onmicrosoft.us",
        client_id="5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11",
        client_secret="x" * 40,
        environment="o365usgovgcchigh",
    )
    provider = TokenProvider(settings)
    assert provider.authority == "https://login.microsoftonline.us/contoso.onmicrosoft.us"
    assert provider.scope == "https://outlook.office365.us/.default"
    china = TokenProvider(settings.replace(environment="O365China", tenant="contoso.partner.onmschina.cn"))
    assert china.authority == "https://login.chinacloudapi.cn/contoso.partner.onmschina.cn"
    assert china.scope == "https://partner.outlook.cn/.default"


def test_scope_override_reaches_another_exchange_cloud(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    token = TokenProvider(idp_settings(scope="https://outlook.office365.us/.default")).get_token()
    assert token.audience == "https://outlook.office365.us"
    assert token.has_exchange_role


# -- caching, sharing, refreshing --------------------------------------------------------------------


def test_hundred_calls_one_request(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    settings = idp_settings()
    tokens = {id(get_token_provider(settings).get_token()) for _ in range(100)}
    assert len(tokens) == 1
    assert idp.count("token") == 1
    assert idp.count("discovery") == 1


def test_one_provider_per_identity(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, app_certificate: CertificateFiles
) -> None:
    first = get_token_provider(idp_settings())
    assert get_token_provider(idp_settings()) is first  # equal settings, separately built
    assert get_token_provider(idp_settings(tenant=idp.tenant.domain.upper())) is first
    assert get_token_provider(idp_settings(client_secret="another-secret-value")) is not first
    assert get_token_provider(idp_settings(scope="https://graph.microsoft.com/.default")) is not first
    certificate = get_token_provider(idp_settings(certificate=app_certificate.pem))
    assert certificate is not first
    assert get_token_provider(idp_settings(certificate=app_certificate.pem)) is certificate
    assert idp.app.secret not in repr(first.key)
    clear_token_providers()
    assert get_token_provider(idp_settings()) is not first


def test_token_inside_the_margin_is_replaced_before_use(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    provider = TokenProvider(idp_settings())  # default margin: 300 s
    idp.app.token_lifetime = 240  # issued already inside the margin
    short = provider.get_token()
    assert short.seconds_left() <= 300
    idp.app.token_lifetime = 3599
    fresh = provider.get_token()
    assert fresh is not short and fresh.token != short.token
    assert fresh.seconds_left() > 300
    assert idp.count("token") == 2
    assert provider.get_token() is fresh
    assert idp.count("token") == 2


def test_margin_larger_than_msals_five_minutes_forces_a_request(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    provider = TokenProvider(idp_settings(refresh_margin=1200))
    idp.app.token_lifetime = 900  # MSAL alone would serve this one from its cache for 10 more minutes
    first = provider.get_token()
    idp.app.token_lifetime = 3599
    second = provider.get_token()
    assert second.token != first.token
    assert second.seconds_left() > 1200
    assert idp.count("token") == 2


def test_short_lived_tokens_warn(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    idp.app.token_lifetime = 120
    TokenProvider(idp_settings()).get_token()
    assert "less than the refresh margin" in caplog.text


def test_eight_threads_one_request(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    idp.delay = 0.3  # keeps the first request in flight while the other threads arrive
    settings = idp_settings()
    barrier = threading.Barrier(8)
    results: list[AccessToken] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(5)
            results.append(get_token_provider(settings).get_token())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(results) == 8
    assert len({id(token) for token in results}) == 1
    assert idp.count("token") == 1
    assert idp.count("discovery") == 1


def test_refresh_replaces_a_rejected_token_once(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    provider = TokenProvider(idp_settings())
    rejected = provider.get_token()
    replacement = provider.refresh(stale=rejected)
    assert replacement is not rejected and replacement.token != rejected.token
    assert provider.refresh(stale=rejected) is replacement  # another caller with the same stale token
    assert provider.get_token() is replacement
    assert idp.count("token") == 2
    assert provider.refresh() is not replacement
    assert idp.count("token") == 3


def test_failed_early_refresh_keeps_the_valid_token(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TokenProvider(idp_settings())
    idp.app.token_lifetime = 240
    current = provider.get_token()
    idp.fail_next(status=503)
    assert provider.get_token() is current  # still valid: used while Entra ID is unavailable
    assert "still valid" in caplog.text
    assert provider.get_token() is current  # and no new attempt right away
    assert idp.count("token") == 2


def test_failed_refresh_of_an_expired_token_raises(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    provider = TokenProvider(idp_settings())
    idp.app.token_lifetime = -10
    assert provider.get_token().expired
    idp.fail_next(7000222)
    with pytest.raises(CredentialRejectedError):
        provider.get_token()


def test_token_without_exchange_role_warns(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    idp.app.roles = ()
    with caplog.at_level(logging.WARNING, logger="pswrap"):
        token = TokenProvider(idp_settings()).get_token()
    assert not token.has_exchange_role
    assert token.roles == ()
    assert len(token.warnings) == 1
    assert "Exchange.ManageAsApp" in token.warnings[0]
    assert "grant admin consent" in token.warnings[0]
    assert token.warnings[0] in caplog.text


def test_non_exchange_scope_does_not_warn_about_the_exchange_role(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings
) -> None:
    idp.app.roles = ()
    token = TokenProvider(idp_settings(scope="https://graph.microsoft.com/.default")).get_token()
    assert token.warnings == ()


# -- errors a person can act on ----------------------------------------------------------------------

ERROR_CASES: list[tuple[str, int, type[EntraError], str]] = [
    ("wrong_secret", 7000215, CredentialRejectedError, "not its Secret ID"),
    ("expired_secret", 7000222, CredentialRejectedError, "Create a new client secret"),
    ("unknown_app", 700016, ApplicationNotFoundError, "Application (client) ID"),
    ("unknown_tenant", 90002, TenantNotFoundError, "O365USGovGCCHigh"),
    ("unregistered_certificate", 700027, CredentialRejectedError, "Upload the public certificate"),
    ("invalid_scope", 70011, ScopeRejectedError, "remove the scope override"),
    ("scope_without_default", 1002012, ScopeRejectedError, "/.default"),
    ("unknown_resource", 500011, ScopeRejectedError, "no Exchange Online subscription"),
    ("consent_missing", 65001, ConsentRequiredError, "Grant admin consent"),
    ("app_disabled", 7000112, ConsentRequiredError, "Enabled for users to sign in"),
    ("assertion_expired", 700024, CredentialRejectedError, "clock"),
    ("conditional_access", 53003, EntraError, "Sign-in logs"),
]


def make_failure(
    case: str, idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, other: CertificateFiles
) -> Settings:
    """Settings (and stand-in state) that make Entra answer with the case's error naturally where it can."""
    settings = idp_settings()
    if case == "wrong_secret":
        return idp_settings(client_secret="Zq8Q~wrong-secret-canary-0123456789abcd")
    if case == "expired_secret":
        idp.app.secrets[0].expires_on = 1.0
    elif case == "unknown_app":
        return idp_settings(client_id="0d6b3d9c-2c5a-4b8e-a6c1-3f3f2d1e9a77")
    elif case == "unknown_tenant":
        return idp_settings(tenant="nowhere.onmicrosoft.com")
    elif case == "unregistered_certificate":
        return idp_settings(certificate=other.pem)
    elif case == "invalid_scope":
        return idp_settings(
            scope="https://outlook.office365.com/.default https://graph.microsoft.com/.default"
        )
    elif case == "scope_without_default":
        return idp_settings(scope="https://outlook.office365.com")
    elif case == "unknown_resource":
        idp.resources.remove("https://outlook.office365.com")
    elif case == "app_disabled":
        idp.app.disabled = True
    else:
        idp.fail_next(
            {"consent_missing": 65001, "assertion_expired": 700024, "conditional_access": 53003}[case]
        )
    return settings


@pytest.mark.parametrize(("case", "code", "cls", "action"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_entra_errors_say_what_to_do(
    idp: ConfiguredIdentityProvider,
    idp_settings: MakeSettings,
    other_certificate: CertificateFiles,
    case: str,
    code: int,
    cls: type[EntraError],
    action: str,
) -> None:
    provider = TokenProvider(make_failure(case, idp, idp_settings, other_certificate))
    with pytest.raises(cls) as caught:
        provider.get_token()
    error = caught.value
    assert type(error) is cls
    assert isinstance(error, TokenError) and isinstance(error, PswrapError)
    assert error.code == code
    assert error.description is not None and error.description.startswith(f"AADSTS{code}:")
    assert "Trace ID" not in error.description  # only Entra's first line
    answer = idp.requests[-1]
    assert answer.code == code
    assert error.correlation_id == answer.correlation_id and error.correlation_id
    assert error.trace_id and error.timestamp
    assert error.action is not None and action in error.action
    text = str(error)
    for fact in (f"AADSTS{code}", error.correlation_id, error.trace_id, error.action):
        assert fact in text
    assert error.authority == provider.authority
    assert error.client_id == provider.settings.client_id


def test_error_names_the_setting_to_fix(idp: ConfiguredIdentityProvider, idp_environ: dict[str, str]) -> None:
    settings = Settings.from_env(
        {**idp_environ, "PSWRAP_CLIENT_SECRET": "Zq8Q~wrong-but-long-enough-0123456789"}
    )
    with pytest.raises(CredentialRejectedError, match="Set PSWRAP_CLIENT_SECRET to the secret's Value"):
        TokenProvider(settings).get_token()


def test_connection_refused_names_the_authority(idp_settings: MakeSettings) -> None:
    port = closed_port()
    provider = TokenProvider(idp_settings(authority=f"https://127.0.0.1:{port}"))
    with pytest.raises(IdentityProviderUnavailableError) as caught:
        provider.get_token()
    assert caught.value.problem == "connection refused"
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert caught.value.authority == provider.authority


def test_timeout_is_named(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    idp.hang = True
    with pytest.raises(IdentityProviderUnavailableError) as caught:
        TokenProvider(idp_settings(timeout=0.3)).get_token()
    assert caught.value.problem == "timed out"
    assert "did not answer within 0.3 s" in str(caught.value)
    assert "PSWRAP_TIMEOUT" in str(caught.value)


def test_tls_failure_is_named(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    # Without the stand-in's CA the machine's CAs (or REQUESTS_CA_BUNDLE) cannot verify it.
    with pytest.raises(IdentityProviderUnavailableError) as caught:
        TokenProvider(idp_settings(ca_bundle=None)).get_token()
    assert caught.value.problem == "TLS failure"
    assert idp.broken_connections >= 1  # the stand-in saw the handshake fail
    assert "certificate verify failed" in str(caught.value)
    assert "ca_bundle" in str(caught.value)


def test_server_error_is_named(idp: ConfiguredIdentityProvider, idp_settings: MakeSettings) -> None:
    idp.fail_next(status=503)
    with pytest.raises(IdentityProviderUnavailableError) as caught:
        TokenProvider(idp_settings()).get_token()
    assert caught.value.problem == "HTTP 503"


def test_explicit_ca_bundle_beats_requests_ca_bundle(
    idp: ConfiguredIdentityProvider, idp_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing := idp.ca_path.parent / "no-such-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(missing))
    assert TokenProvider(idp_settings()).get_token().has_exchange_role


def test_managed_identity_not_assigned(
    idp: ConfiguredIdentityProvider, managed_identity_environment: None
) -> None:
    settings = Settings(
        managed_identity="0d6b3d9c-2c5a-4b8e-a6c1-3f3f2d1e9a77", ca_bundle=idp.ca_path, timeout=5
    )
    with pytest.raises(ManagedIdentityError, match="Unable to load the proper Managed Identity") as caught:
        TokenProvider(settings).get_token()
    assert "assigned to the Azure resource" in str(caught.value)


def test_managed_identity_off_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # MSAL's VM flow honours this variable; it keeps the test away from the real 169.254.169.254.
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(IdentityProviderUnavailableError, match="managed identity") as caught:
        TokenProvider(Settings(managed_identity="system", timeout=2)).get_token()
    assert caught.value.problem == "connection refused"


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("wrong_pfx_password", "certificate password is wrong"),
        ("encrypted_without_password", "is encrypted: set the certificate password"),
        ("missing_file", "cannot read"),
        ("certificate_only", "cannot read a private key"),
    ],
)
def test_unusable_certificate_files(
    idp_settings: MakeSettings, app_certificate: CertificateFiles, tmp_path: Any, shape: str, message: str
) -> None:
    options: dict[str, Any] = {
        "wrong_pfx_password": {"certificate": app_certificate.pfx, "certificate_password": "wrong"},
        "encrypted_without_password": {"certificate": app_certificate.encrypted_pem},
        "missing_file": {"certificate": tmp_path / "absent.pem"},
        "certificate_only": {"certificate": tmp_path / "cert.pem"},
    }[shape]
    (tmp_path / "cert.pem").write_text(app_certificate.pem.read_text().split("-----BEGIN PRIVATE KEY")[0])
    with pytest.raises(ConfigError, match=message):
        TokenProvider(idp_settings(**options))


def test_missing_settings_are_named() -> None:
    with pytest.raises(
        ConfigError,
        match=r"client_id, a credential \(one of client_secret, certificate, managed_identity\) must be set",
    ):
        TokenProvider(Settings(tenant="contoso.onmicrosoft.com"))
    with pytest.raises(ConfigError, match="PSWRAP_TENANT must be set"):
        TokenProvider(
            Settings.from_env(
                {"PSWRAP_CLIENT_ID": "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11", "PSWRAP_CLIENT_SECRET": "s" * 20}
            )
        )


# -- tokens as objects ---------------------------------------------------------------------------------


def test_access_token_object(idp: ConfiguredIdentityProvider) -> None:
    raw = idp.issue_token(idp.app, lifetime=600)
    token = AccessToken(raw, expires_on=decode_claims(raw)["exp"], claims=decode_claims(raw))
    assert str(token.token) == "<redacted>"
    assert raw not in repr(token) and "Exchange.ManageAsApp" in repr(token)
    assert 500 < token.seconds_left() <= 600 and not token.expired
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(token)


def test_decode_claims_never_echoes_what_it_cannot_read() -> None:
    for bad in ("opaque-token-value-123", "a.b", "a.!!!.c", "a.bnVsbA.c"):
        with pytest.raises(ValueError) as caught:
            decode_claims(bad)
        assert bad not in str(caught.value)


# -- secrets never leak --------------------------------------------------------------------------------


@pytest.fixture
def everything_logged() -> Iterator[io.StringIO]:
    """Root logger at DEBUG with a handler capturing every record (msal, urllib3, pswrap…)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def test_canaries_never_appear_in_logs_errors_or_reprs(
    idp: ConfiguredIdentityProvider,
    idp_settings: MakeSettings,
    app_certificate: CertificateFiles,
    other_certificate: CertificateFiles,
    everything_logged: io.StringIO,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = idp.app.secret
    wrong_secret = "Zq8Q~wrong-canary-" + "k" * 22
    texts: list[str] = []

    secret_settings = idp_settings()
    secret_provider = get_token_provider(secret_settings)
    tokens = [secret_provider.get_token(), secret_provider.refresh()]
    cert_settings = idp_settings(
        certificate=app_certificate.pfx, certificate_password=app_certificate.password
    )
    cert_provider = get_token_provider(cert_settings)
    tokens.append(cert_provider.get_token())
    pem_provider = TokenProvider(idp_settings(certificate=app_certificate.pem, certificate_send_chain=True))
    tokens.append(pem_provider.get_token())

    failures: list[BaseException] = []
    for settings in (
        idp_settings(client_secret=wrong_secret),
        idp_settings(certificate=other_certificate.pem),
        idp_settings(certificate=app_certificate.pfx, certificate_password="Zq8Q~wrong-pfx-password"),
        idp_settings(client_secret=secret, authority=f"https://127.0.0.1:{closed_port()}"),
    ):
        try:
            TokenProvider(settings).get_token()
        except PswrapError as exc:
            failures.append(exc)
    assert len(failures) == 4

    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.p]\ntenant = "{idp.tenant.domain}"\nclient_id = "{idp.app.client_id}"\n')
    config.write_text(config.read_text() + 'client_secret = "env:CANARY_SECRET"\n')
    monkeypatch.setenv("CANARY_SECRET", secret)
    profile_file = ConfigFile.read(config)
    profile = profile_file.settings("p")

    for thing in (
        secret_settings,
        cert_settings,
        secret_provider,
        cert_provider,
        pem_provider,
        secret_provider.key,
        profile,
        profile_file,
        *tokens,
        *failures,
    ):
        texts.append(repr(thing))
        texts.append(str(thing))
    texts.extend(str(value) for value in (secret_settings.client_secret, profile.client_secret))
    logs = everything_logged.getvalue()
    # The capture really saw the libraries' DEBUG output, and pswrap's own lines.
    assert "msal.token_cache DEBUG" in logs
    assert "urllib3.connectionpool DEBUG" in logs
    assert "pswrap.auth INFO new access token" in logs
    assert profile.client_secret is not None and profile.client_secret.reveal() == secret

    key_lines = [line for line in app_certificate.key_pem.splitlines() if "PRIVATE KEY" not in line]
    canaries = [
        secret,
        wrong_secret,
        app_certificate.password,
        "Zq8Q~wrong-pfx-password",
        *key_lines[1:4],
        *[token.token.reveal() for token in tokens],
        *[token.token.reveal().split(".")[2] for token in tokens],  # the signature alone
    ]
    everything = "\n".join([logs, *texts])
    for canary in canaries:
        assert canary not in everything
