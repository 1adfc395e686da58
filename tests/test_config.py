"""Settings from arguments, PSWRAP_* variables and TOML profiles; the clouds table."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from pswrap.clouds import CLOUDS, get_cloud, is_exchange_audience
from pswrap.config import (
    ENVIRONMENT_VARIABLES,
    ConfigFile,
    Settings,
    child_environment,
    default_config_path,
    resolve_secret,
)
from pswrap.errors import ConfigError
from pswrap.secret import Secret

TENANT_ID = "6babcaad-604b-40ac-a9d7-9fd97c0b779f"
CLIENT_ID = "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11"
SECRET = "Zq8Q~config-canary-0123456789abcdefghijkl"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- clouds -------------------------------------------------------------------------------------------


def test_cloud_table() -> None:
    assert [c.name for c in CLOUDS] == [
        "O365Default",
        "O365USGovGCCHigh",
        "O365USGovDoD",
        "O365China",
        "O365GermanyCloud",
    ]
    dod = get_cloud("o365usgovdod")
    assert dod.scope == "https://outlook-dod.office365.us/.default"
    assert dod.authority_url == "https://login.microsoftonline.us"
    assert get_cloud(None) is get_cloud("O365DEFAULT") is get_cloud("GCC")
    assert get_cloud("O365China").authority_host == "login.chinacloudapi.cn"
    assert is_exchange_audience("https://partner.outlook.cn/")
    assert is_exchange_audience("00000002-0000-0ff1-ce00-000000000000")
    assert not is_exchange_audience("https://graph.microsoft.com")


def test_unknown_cloud_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError) as caught:
        get_cloud("GCCHigh")
    for cloud in CLOUDS:
        assert cloud.name in str(caught.value)


# -- Settings themselves -------------------------------------------------------------------------------


def test_settings_from_arguments() -> None:
    settings = Settings(tenant="contoso.onmicrosoft.com", client_id=CLIENT_ID, client_secret=SECRET)
    assert isinstance(settings.client_secret, Secret)
    assert settings.client_secret.reveal() == SECRET
    assert settings.organization == "contoso.onmicrosoft.com"  # the initial domain is the organization
    assert settings.environment == "O365Default"
    assert settings.credential_kind == "client_secret"
    assert settings.refresh_margin == 300
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert Settings(tenant=TENANT_ID).organization is None
    assert Settings(tenant="contoso.com").organization is None
    assert Settings(environment="o365china").environment == "O365China"


def test_settings_are_immutable_and_never_pickled() -> None:
    settings = Settings(tenant=TENANT_ID, client_secret=SECRET)
    with pytest.raises(AttributeError, match="replace"):
        settings.tenant = "other"  # type: ignore[misc]
    changed = settings.replace(organization="contoso.onmicrosoft.com")
    assert changed.organization == "contoso.onmicrosoft.com" and settings.organization is None
    assert changed.client_secret == settings.client_secret
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(settings)
    with pytest.raises(TypeError, match="unknown setting"):
        settings.replace(tennant="x")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tenant": "common"}, "app-only tokens need the tenant's ID or domain"),
        ({"tenant": "not a tenant"}, "neither a tenant ID"),
        ({"client_id": "my-app"}, "not the Application \\(client\\) ID"),
        (
            {"client_secret": SECRET, "managed_identity": "system"},
            "give one credential, not client_secret and",
        ),
        ({"certificate_password": "pw"}, "certificate_password: is set but no certificate is"),
        ({"managed_identity": "mine"}, "'system', a user-assigned identity's client id"),
        ({"environment": "Mars"}, "unknown Exchange environment 'Mars'"),
        ({"authority": "http://login.example"}, "must be an https:// URL"),
        ({"authority": "https://login.microsoftonline.com/contoso"}, "the tenant goes in the tenant setting"),
        ({"refresh_margin": 4000}, "out of range"),
        ({"timeout": 0}, "out of range"),
        ({"transport": "telnet"}, "not one of local, oneshot, winrm, ssh, rest"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**arguments)  # type: ignore[arg-type]


def test_managed_identity_forms() -> None:
    for value in (
        "system",
        "SYSTEM",
        CLIENT_ID,
        f"object_id:{CLIENT_ID}",
        f"client_id:{CLIENT_ID}",
        "/subscriptions/x/y",
    ):
        assert Settings(managed_identity=value).credential_kind == "managed_identity"


# -- environment variables -----------------------------------------------------------------------------


def full_environment(tmp_path: Path) -> dict[str, str]:
    ca = write(tmp_path / "ca.pem", "ca")
    return {
        "PSWRAP_TENANT": "contoso.onmicrosoft.com",
        "PSWRAP_CLIENT_ID": CLIENT_ID,
        "PSWRAP_CLIENT_SECRET": SECRET,
        "PSWRAP_ORGANIZATION": "contoso.onmicrosoft.com",
        "PSWRAP_ENVIRONMENT": "O365USGovGCCHigh",
        "PSWRAP_AUTHORITY": "https://127.0.0.1:8443/",
        "PSWRAP_SCOPE": "https://outlook.office365.us/.default",
        "PSWRAP_CA_BUNDLE": str(ca),
        "PSWRAP_REFRESH_MARGIN": "600",
        "PSWRAP_TIMEOUT": "7.5",
        "PSWRAP_TRANSPORT": "REST",
        "PATH": "/usr/bin",
    }


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(full_environment(tmp_path))
    assert settings.tenant == "contoso.onmicrosoft.com"
    assert settings.client_secret is not None and settings.client_secret.reveal() == SECRET
    assert settings.environment == "O365USGovGCCHigh"
    assert settings.authority == "https://127.0.0.1:8443"
    assert settings.ca_bundle == tmp_path / "ca.pem"
    assert settings.refresh_margin == 600 and settings.timeout == 7.5
    assert settings.transport == "rest"
    assert settings.origin.secret_variables == {"PSWRAP_CLIENT_SECRET"}
    assert SECRET not in repr(settings)


def test_certificate_and_managed_identity_variables(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PSWRAP_TENANT": TENANT_ID,
            "PSWRAP_CLIENT_ID": CLIENT_ID,
            "PSWRAP_CERTIFICATE": "~/app.pfx",
            "PSWRAP_CERTIFICATE_PASSWORD": "pfx-password",
            "PSWRAP_CERTIFICATE_SEND_CHAIN": "yes",
        }
    )
    assert settings.certificate == Path("~/app.pfx").expanduser()
    assert (
        settings.certificate_password is not None and settings.certificate_password.reveal() == "pfx-password"
    )
    assert settings.certificate_send_chain is True
    assert settings.origin.secret_variables == {"PSWRAP_CERTIFICATE_PASSWORD"}
    managed = Settings.from_env(
        {"PSWRAP_MANAGED_IDENTITY": "system", "PSWRAP_ORGANIZATION": "contoso.onmicrosoft.com"}
    )
    assert managed.credential_kind == "managed_identity"
    managed.require_token_settings()  # no tenant or client id needed


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PSWRAP_TENANT", "organizations", "^PSWRAP_TENANT: 'organizations' is not a tenant"),
        ("PSWRAP_CLIENT_ID", "app", "^PSWRAP_CLIENT_ID: 'app' is not"),
        ("PSWRAP_REFRESH_MARGIN", "five", "^PSWRAP_REFRESH_MARGIN: 'five' is not a number"),
        (
            "PSWRAP_CERTIFICATE_SEND_CHAIN",
            "maybe",
            "^PSWRAP_CERTIFICATE_SEND_CHAIN: 'maybe' is not true/false",
        ),
        ("PSWRAP_ENVIRONMENT", "Mars", "^PSWRAP_ENVIRONMENT: unknown Exchange environment"),
        (
            "PSWRAP_MANAGED_IDENTITY",
            "system",
            "give one credential, not PSWRAP_CLIENT_SECRET and PSWRAP_MANAGED",
        ),
    ],
)
def test_bad_variables_are_named(tmp_path: Path, variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**full_environment(tmp_path), variable: value})


def test_empty_variables_are_unset_and_misspellings_warned(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env(
        {"PSWRAP_TENANT": "", "PSWRAP_CLIENT_SECERT": "x", "PSWRAP_LIVE_TENANT": "y"}
    )
    assert settings.tenant is None
    assert "PSWRAP_CLIENT_SECERT is not a pswrap setting; did you mean PSWRAP_CLIENT_SECRET?" in caplog.text
    assert "PSWRAP_LIVE_TENANT" not in caplog.text


def test_child_environment_drops_secrets(tmp_path: Path) -> None:
    environ = {
        **full_environment(tmp_path),
        "OTHER": "kept",
        "COPY_OF_SECRET": SECRET,
        "MY_SECRET": "s3cr3t-value",
    }
    profile = write(
        tmp_path / "c.toml",
        f'[profiles.p]\ntenant = "{TENANT_ID}"\nclient_id = "{CLIENT_ID}"\nclient_secret = "env:MY_SECRET"\n',
    )
    settings = Settings.from_profile("p", profile, environ)
    child = child_environment(environ, settings, Settings.from_env(environ))
    assert "PSWRAP_CLIENT_SECRET" not in child
    assert "MY_SECRET" not in child  # a profile read its secret from there
    assert "COPY_OF_SECRET" not in child  # holds a known secret value
    assert child["OTHER"] == "kept" and child["PSWRAP_TENANT"] == "contoso.onmicrosoft.com"


# -- profiles --------------------------------------------------------------------------------------------


def test_profiles_with_env_and_file_references(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    write(secrets_dir / "fabrikam", "pfx-password-from-file\n")
    config = write(
        tmp_path / "config.toml",
        f"""
default_profile = "contoso"

[profiles.contoso]
tenant = "contoso.onmicrosoft.com"
client_id = "{CLIENT_ID}"
client_secret = "env:CONTOSO_SECRET"
refresh_margin = 120

[profiles.fabrikam]
tenant = "{TENANT_ID}"
client_id = "{CLIENT_ID}"
certificate = "certs/fabrikam.pfx"
certificate_password = "file:secrets/fabrikam"
organization = "fabrikam.onmicrosoft.com"
environment = "O365USGovGCCHigh"
transport = "winrm"

[profiles.fabrikam.winrm]
host = "runner1.fabrikam.local"
port = 5986
password = "inline-winrm-password"
username_ref = "env:RUNNER_USER"
""",
    )
    environ = {"CONTOSO_SECRET": SECRET}
    file = ConfigFile.read(config)
    assert file.profile_names == ("contoso", "fabrikam")
    assert file.default_profile == "contoso"
    contoso = file.settings("contoso", environ)
    assert contoso.client_secret is not None and contoso.client_secret.reveal() == SECRET
    assert contoso.refresh_margin == 120
    assert contoso.origin.secret_variables == {"CONTOSO_SECRET"}
    assert contoso.origin.description == f"profile 'contoso' in {config}"

    fabrikam = file.settings("fabrikam", environ)
    assert fabrikam.certificate == tmp_path / "certs" / "fabrikam.pfx"  # relative to the config file
    assert fabrikam.certificate_password is not None
    assert fabrikam.certificate_password.reveal() == "pfx-password-from-file"  # one newline dropped
    assert fabrikam.environment == "O365USGovGCCHigh" and fabrikam.transport == "winrm"
    winrm = fabrikam.extra["winrm"]
    assert winrm["host"] == "runner1.fabrikam.local" and winrm["port"] == 5986
    assert isinstance(winrm["password"], Secret)  # inline secrets in tables pswrap does not know yet
    assert winrm["username_ref"] == "env:RUNNER_USER"
    assert "inline-winrm-password" not in repr(fabrikam) and "inline-winrm-password" not in repr(file)
    resolved = resolve_secret("env:RUNNER_USER", where="winrm.username_ref", environ={"RUNNER_USER": "svc"})
    assert resolved.reveal() == "svc"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'client_secret = "env:NOT_SET"',
            "client_secret in profile 'p' in .* refers to environment variable NOT_SET",
        ),
        ('client_secret = "file:absent.txt"', "refers to file .*absent.txt, which cannot be read"),
        ('client_secret = "env:"', "'env:' needs a variable name"),
        ('client_secret = ""', "must be a non-empty string"),
        ('client_secert = "x"', "unknown key 'client_secert'; did you mean 'client_secret'\\?"),
        ("refresh_margin = true", "refresh_margin in profile 'p' in .*: must be a number of seconds"),
        ('certificate_send_chain = "yes"', "must be true or false"),
        ("tenant = 3", "tenant in profile 'p' in .*: must be a string"),
        ('tenant = "common"', "tenant in profile 'p' in .*: 'common' is not a tenant"),
    ],
)
def test_bad_profiles_are_named(tmp_path: Path, line: str, message: str) -> None:
    config = write(tmp_path / "config.toml", f"[profiles.p]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        ConfigFile.read(config).settings("p", {})


def test_unknown_profile_and_file_errors(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", '[profiles.contoso]\ntenant = "contoso.onmicrosoft.com"\n')
    with pytest.raises(
        ConfigError, match=r"no profile 'contos' in .*profiles: contoso.*did you mean 'contoso'"
    ):
        Settings.from_profile("contos", config)
    with pytest.raises(ConfigError, match=r"there is no pswrap config file at .*absent.toml"):
        Settings.from_profile("x", tmp_path / "absent.toml")
    broken = write(tmp_path / "broken.toml", "[profiles.p\ntenant = 1\n")
    with pytest.raises(ConfigError, match=r"broken.toml is not valid TOML: .*line 1"):
        ConfigFile.read(broken)
    wrong_default = write(tmp_path / "d.toml", 'default_profile = "nope"\n[profiles.p]\n')
    with pytest.raises(ConfigError, match="default_profile = 'nope' names no profile"):
        ConfigFile.read(wrong_default)
    misspelled = write(tmp_path / "m.toml", "[profile.p]\n")
    with pytest.raises(ConfigError, match="unknown key 'profile'; did you mean 'profiles'"):
        ConfigFile.read(misspelled)


def test_inline_secret_in_a_readable_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = f'[profiles.p]\ntenant = "{TENANT_ID}"\nclient_id = "{CLIENT_ID}"\nclient_secret = "{SECRET}"\n'
    private = write(tmp_path / "private.toml", text, 0o600)
    assert Settings.from_profile("p", private).client_secret is not None
    assert "inline" not in caplog.text
    shared = write(tmp_path / "shared.toml", text, 0o644)
    with caplog.at_level(logging.WARNING):
        Settings.from_profile("p", shared)
    assert "holds client_secret inline and the file can be read by other users (mode 644)" in caplog.text
    assert SECRET not in caplog.text


# -- where settings come from --------------------------------------------------------------------------


def test_default_config_path(tmp_path: Path) -> None:
    assert default_config_path({"PSWRAP_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert default_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "pswrap" / "config.toml"
    assert default_config_path({}) == Path("~/.config/pswrap/config.toml").expanduser()


def test_load_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "pswrap").mkdir(parents=True)
    write(
        xdg / "pswrap" / "config.toml",
        '[profiles.default]\ntenant = "default.onmicrosoft.com"\n'
        '[profiles.other]\ntenant = "other.onmicrosoft.com"\n',
    )
    base = {"XDG_CONFIG_HOME": str(xdg)}
    env = {**base, "PSWRAP_TENANT": "env.onmicrosoft.com"}
    assert Settings.load(environ=base).tenant == "default.onmicrosoft.com"  # the profile called default
    assert Settings.load(environ=env).tenant == "env.onmicrosoft.com"  # variables beat the default profile
    assert Settings.load(environ={**env, "PSWRAP_PROFILE": "other"}).tenant == "other.onmicrosoft.com"
    assert "PSWRAP_TENANT in the environment are ignored" in caplog.text
    assert Settings.load("other", environ=env).tenant == "other.onmicrosoft.com"
    assert Settings.load(environ=env).origin.description == "the environment (PSWRAP_* variables)"


def test_load_without_any_settings_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"set PSWRAP_TENANT, PSWRAP_CLIENT_ID and PSWRAP_CLIENT_SECRET.*absent"
    ):
        Settings.load(environ={"PSWRAP_CONFIG": str(tmp_path / "absent.toml")})
    config = write(tmp_path / "c.toml", '[profiles.a]\ntenant = "a.onmicrosoft.com"\n')
    with pytest.raises(ConfigError, match="choose one of its profiles \\(a\\) with --profile"):
        Settings.load(environ={"PSWRAP_CONFIG": str(config)})


def test_every_setting_has_a_variable() -> None:
    settable = set(Settings.__slots__) - {"extra", "origin"}
    assert settable == set(ENVIRONMENT_VARIABLES)
