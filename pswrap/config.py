"""Where pswrap's settings come from: arguments, ``PSWRAP_*`` environment variables, or a named profile.

Settings come from exactly one place (no mixing): arguments to :class:`Settings`, the environment
(:meth:`Settings.from_env`), or a profile in a TOML file (:meth:`Settings.from_profile`).
:meth:`Settings.load` picks the place the way the command line does.

The file (``$PSWRAP_CONFIG``, else ``$XDG_CONFIG_HOME/pswrap/config.toml``, else
``~/.config/pswrap/config.toml``)::

    default_profile = "contoso"

    [profiles.contoso]
    tenant = "contoso.onmicrosoft.com"
    client_id = "5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11"
    client_secret = "env:CONTOSO_SECRET"     # or "file:~/secrets/contoso"; inline works, discouraged

    [profiles.fabrikam]
    tenant = "b2e8a0c4-1f55-4c1e-8b3a-6a1e0e9d7c3f"
    client_id = "0d6b3d9c-2c5a-4b8e-a6c1-3f3f2d1e9a77"
    certificate = "~/certs/fabrikam.pfx"
    certificate_password = "env:FABRIKAM_PFX_PASSWORD"
    organization = "fabrikam.onmicrosoft.com"
    environment = "O365USGovGCCHigh"

Keys this module does not know (for example a ``[profiles.X.winrm]`` table for a remote runner) are
kept in :attr:`Settings.extra`; a key that looks like a misspelling of a known one is an error.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from pswrap.clouds import Cloud, get_cloud
from pswrap.errors import ConfigError
from pswrap.secret import Secret, get_logger, is_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "CONFIG_VARIABLE",
    "ENVIRONMENT_VARIABLES",
    "PROFILE_VARIABLE",
    "TRANSPORTS",
    "ConfigFile",
    "Origin",
    "Settings",
    "child_environment",
    "default_config_path",
    "resolve_secret",
    "warn_if_readable_by_others",
]

logger = get_logger(__name__)

#: Each setting and the environment variable it is read from by :meth:`Settings.from_env`.
ENVIRONMENT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "tenant": "PSWRAP_TENANT",
        "client_id": "PSWRAP_CLIENT_ID",
        "client_secret": "PSWRAP_CLIENT_SECRET",
        "certificate": "PSWRAP_CERTIFICATE",
        "certificate_password": "PSWRAP_CERTIFICATE_PASSWORD",
        "certificate_send_chain": "PSWRAP_CERTIFICATE_SEND_CHAIN",
        "managed_identity": "PSWRAP_MANAGED_IDENTITY",
        "organization": "PSWRAP_ORGANIZATION",
        "environment": "PSWRAP_ENVIRONMENT",
        "authority": "PSWRAP_AUTHORITY",
        "scope": "PSWRAP_SCOPE",
        "ca_bundle": "PSWRAP_CA_BUNDLE",
        "refresh_margin": "PSWRAP_REFRESH_MARGIN",
        "timeout": "PSWRAP_TIMEOUT",
        "transport": "PSWRAP_TRANSPORT",
    }
)
CONFIG_VARIABLE = "PSWRAP_CONFIG"
PROFILE_VARIABLE = "PSWRAP_PROFILE"
#: The ways pswrap can run PowerShell (see the transports).
TRANSPORTS = ("local", "oneshot", "winrm", "ssh", "rest")

_SECRET_FIELDS = ("client_secret", "certificate_password")
_PATH_FIELDS = ("certificate", "ca_bundle")
_BOOL_FIELDS = ("certificate_send_chain",)
_NUMBER_FIELDS = ("refresh_margin", "timeout")
_KNOWN_FIELDS = tuple(ENVIRONMENT_VARIABLES)
# Variables other parts of pswrap (and its tests) read; never reported as misspellings.
_OTHER_VARIABLES = (CONFIG_VARIABLE, PROFILE_VARIABLE, "PSWRAP_PWSH")
# Credentials whose presence in the environment means "configure from the environment".
_IDENTITY_FIELDS = ("tenant", "client_id", "client_secret", "certificate", "managed_identity")
# Keys in tables pswrap does not know yet whose inline values are secrets (wrapped at once).
_SECRET_KEY = re.compile(r"(password|passphrase|secret|token|private_key|api_key)$", re.IGNORECASE)
# pswrap's own variables that hold secrets (PSWRAP_WINRM_PASSWORD, PSWRAP_LIVE_WINRM_PASSWORD, …).
_SECRET_VARIABLE = re.compile(r"PSWRAP_\w*(PASSWORD|PASSPHRASE|SECRET|TOKEN|PRIVATE_KEY|API_KEY)\Z", re.I)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
# A tenant domain that is also the Exchange organization name (the tenant's initial domain).
_INITIAL_DOMAIN = re.compile(r"\.(onmicrosoft\.com|onmicrosoft\.us|onmschina\.cn|onmicrosoft\.de)$", re.I)
_MAX_MARGIN = 3000.0  # tokens live 60-90 minutes; a larger margin would refresh on every call


@dataclass(frozen=True)
class Origin:
    """Where a :class:`Settings` came from, so that an error can say where to fix it."""

    description: str = "arguments"
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Environment variables that held secrets (a child process must not inherit them).
    secret_variables: frozenset[str] = frozenset()
    profile: str | None = None
    base_dir: Path | None = None

    def label(self, name: str) -> str:
        """How the user spelled setting ``name`` (an environment variable, a key in a profile…)."""
        return self.labels.get(name, name)


_ARGUMENTS = Origin()


def _fail(origin: Origin, name: str, problem: str) -> NoReturn:
    raise ConfigError(f"{origin.label(name)}: {problem}")


class Settings:
    """Everything needed to get a token and reach Exchange Online for one tenant.

    Credentials: exactly one of ``client_secret``, ``certificate`` (a PEM file holding the
    certificate and its private key, or a PFX/PKCS#12 file; ``certificate_password`` if encrypted) or
    ``managed_identity`` (``"system"``, a user-assigned identity's client id, or its resource id
    ``/subscriptions/…``; ``object_id:<guid>`` for its object id).

    ``environment`` is the cloud (``-ExchangeEnvironmentName``); ``authority`` (the login host URL,
    without the tenant), ``scope`` and ``ca_bundle`` override what the cloud implies, for unusual
    set-ups and tests. ``refresh_margin`` (seconds, default 300) is how long before expiry a token is
    replaced; ``timeout`` (seconds) bounds each request to the identity provider. ``organization``
    defaults to the tenant when the tenant is its ``*.onmicrosoft.com`` domain. ``extra`` keeps what
    other parts of pswrap read (a ``winrm`` table…). Settings are immutable: use :meth:`replace`.
    """

    __slots__ = (
        "authority",
        "ca_bundle",
        "certificate",
        "certificate_password",
        "certificate_send_chain",
        "client_id",
        "client_secret",
        "environment",
        "extra",
        "managed_identity",
        "organization",
        "origin",
        "refresh_margin",
        "scope",
        "tenant",
        "timeout",
        "transport",
    )

    tenant: str | None
    client_id: str | None
    client_secret: Secret | None
    certificate: Path | None
    certificate_password: Secret | None
    certificate_send_chain: bool
    managed_identity: str | None
    organization: str | None
    environment: str
    authority: str | None
    scope: str | None
    ca_bundle: Path | None
    refresh_margin: float
    timeout: float
    transport: str | None
    extra: Mapping[str, Any]
    origin: Origin

    def __init__(
        self,
        *,
        tenant: str | None = None,
        client_id: str | None = None,
        client_secret: str | Secret | None = None,
        certificate: str | os.PathLike[str] | None = None,
        certificate_password: str | Secret | None = None,
        certificate_send_chain: bool = False,
        managed_identity: str | None = None,
        organization: str | None = None,
        environment: str | None = None,
        authority: str | None = None,
        scope: str | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        refresh_margin: float = 300.0,
        timeout: float = 30.0,
        transport: str | None = None,
        extra: Mapping[str, Any] | None = None,
        origin: Origin | None = None,
    ) -> None:
        origin = origin or _ARGUMENTS
        values: dict[str, Any] = {
            "tenant": _check_tenant(origin, _text(tenant)),
            "client_id": _check_guid(origin, "client_id", _text(client_id), "the Application (client) ID"),
            "client_secret": _secret(client_secret, "client_secret"),
            "certificate": _path(certificate, origin),
            "certificate_password": _secret(certificate_password, "certificate_password"),
            "certificate_send_chain": bool(certificate_send_chain),
            "managed_identity": _check_managed_identity(origin, _text(managed_identity)),
            "organization": _text(organization),
            "environment": _check_environment(origin, _text(environment)),
            "authority": _check_authority(origin, _text(authority)),
            "scope": _text(scope),
            "ca_bundle": _path(ca_bundle, origin),
            "refresh_margin": _check_number(origin, "refresh_margin", refresh_margin, 0.0, _MAX_MARGIN),
            "timeout": _check_number(origin, "timeout", timeout, 0.001, 3600.0),
            "transport": _check_transport(origin, _text(transport)),
            "extra": MappingProxyType(dict(extra or {})),
            "origin": origin,
        }
        given = [name for name in ("client_secret", "certificate", "managed_identity") if values[name]]
        if len(given) > 1:
            where = " and ".join(origin.label(name) for name in given)
            raise ConfigError(f"{origin.description}: give one credential, not {where}")
        if values["certificate_password"] and not values["certificate"]:
            _fail(origin, "certificate_password", "is set but no certificate is")
        if values["organization"] is None and values["tenant"] and _INITIAL_DOMAIN.search(values["tenant"]):
            values["organization"] = values["tenant"]
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are immutable; use settings.replace({name}=…)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Settings are immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Settings cannot be pickled: they may hold secrets, which never go to disk")

    @property
    def cloud(self) -> Cloud:
        """The Microsoft 365 cloud these settings point at."""
        return get_cloud(self.environment)

    @property
    def credential_kind(self) -> str | None:
        """``"client_secret"``, ``"certificate"``, ``"managed_identity"``, or ``None`` when none is set."""
        for name in ("client_secret", "certificate", "managed_identity"):
            if getattr(self, name):
                return name
        return None

    def missing(self, *, organization: bool = False) -> list[str]:
        """What is missing to get an app-only token (and, with ``organization``, to reach Exchange),
        each named where it is set (``PSWRAP_TENANT``, ``tenant in profile …``)."""
        label = self.origin.label
        found: list[str] = []
        kind = self.credential_kind
        if kind != "managed_identity":
            found += [label(name) for name in ("tenant", "client_id") if not getattr(self, name)]
        if kind is None:
            options = ", ".join(label(n) for n in ("client_secret", "certificate", "managed_identity"))
            found.append(f"a credential (one of {options})")
        if organization and not self.organization:
            found.append(f"{label('organization')} (the tenant's *.onmicrosoft.com domain)")
        return found

    def require_token_settings(self) -> None:
        """Raise :class:`ConfigError` naming what is missing to get an app-only token."""
        missing = self.missing()
        if missing:
            raise ConfigError(f"{self.origin.description}: {', '.join(missing)} must be set")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated like the original)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update(changes)
        if "origin" not in changes:
            values["origin"] = self.origin
        return Settings(**values)

    def __repr__(self) -> str:
        parts = [f"{name}={getattr(self, name)!r}" for name in ("tenant", "client_id") if getattr(self, name)]
        parts.append(f"credential={self.credential_kind}")
        if self.environment != "O365Default":
            parts.append(f"environment={self.environment!r}")
        if self.authority:
            parts.append(f"authority={self.authority!r}")
        if self.extra:
            parts.append(f"extra={sorted(self.extra)!r}")
        parts.append(f"from={self.origin.description!r}")
        return f"Settings({', '.join(parts)})"

    # -- where settings come from -------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the ``PSWRAP_*`` environment variables (see :data:`ENVIRONMENT_VARIABLES`)."""
        environ = os.environ if environ is None else environ
        _warn_about_misspelled_variables(environ)
        origin = Origin(
            description="the environment (PSWRAP_* variables)",
            labels=dict(ENVIRONMENT_VARIABLES),
            secret_variables=frozenset(
                ENVIRONMENT_VARIABLES[name]
                for name in _SECRET_FIELDS
                if environ.get(ENVIRONMENT_VARIABLES[name])
            ),
        )
        values: dict[str, Any] = {}
        for name, variable in ENVIRONMENT_VARIABLES.items():
            raw = environ.get(variable, "").strip()
            if not raw:
                continue
            if name in _SECRET_FIELDS:
                values[name] = Secret(environ[variable].rstrip("\r\n"), variable)
            elif name in _BOOL_FIELDS:
                values[name] = _parse_bool(origin, name, raw)
            elif name in _NUMBER_FIELDS:
                values[name] = _parse_number(origin, name, raw)
            else:
                values[name] = raw
        return cls(**values, origin=origin)

    @classmethod
    def from_profile(
        cls,
        name: str,
        config_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from profile ``name`` in the config file (see :func:`default_config_path`)."""
        return ConfigFile.read(config_path, environ).settings(name, environ)

    @classmethod
    def load(
        cls,
        profile: str | None = None,
        *,
        config_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings the way the ``pswrap`` command finds them.

        1. the profile named ``profile``, else ``$PSWRAP_PROFILE``;
        2. else the environment, when any of ``PSWRAP_TENANT``, ``PSWRAP_CLIENT_ID``,
           ``PSWRAP_CLIENT_SECRET``, ``PSWRAP_CERTIFICATE``, ``PSWRAP_MANAGED_IDENTITY`` is set;
        3. else the config file's ``default_profile`` (or a profile called ``default``).
        """
        environ = os.environ if environ is None else environ
        name = profile or environ.get(PROFILE_VARIABLE, "").strip() or None
        env_identity = [
            ENVIRONMENT_VARIABLES[f] for f in _IDENTITY_FIELDS if environ.get(ENVIRONMENT_VARIABLES[f])
        ]
        if name:
            if env_identity:
                logger.warning(
                    "profile %r is used; %s in the environment are ignored", name, ", ".join(env_identity)
                )
            return cls.from_profile(name, config_path, environ)
        if env_identity:
            return cls.from_env(environ)
        path = Path(config_path) if config_path else default_config_path(environ)
        if path.is_file():
            config = ConfigFile.read(path, environ)
            default = config.default_profile or ("default" if "default" in config.profile_names else None)
            if default:
                return config.settings(default, environ)
            hint = (
                f"choose one of its profiles ({', '.join(config.profile_names) or 'none yet'}) with --profile"
            )
        else:
            hint = f"or write a profile in {path}"
        raise ConfigError(
            "no pswrap settings: set PSWRAP_TENANT, PSWRAP_CLIENT_ID and PSWRAP_CLIENT_SECRET (or "
            f"PSWRAP_CERTIFICATE, or PSWRAP_MANAGED_IDENTITY), {hint}"
        )


class ConfigFile:
    """A parsed pswrap config file: named profiles, resolved into :class:`Settings` on demand.

    Profiles are resolved one at a time, so that one profile referring to a variable that is not set
    does not stop the others from loading.
    """

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        where = str(path)
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
            raise ConfigError(f"{where}: 'profiles' must hold tables, like [profiles.contoso]")
        _reject_misspellings(where, data, ("profiles", "default_profile"))
        self._profiles: dict[str, dict[str, Any]] = profiles
        default = data.get("default_profile")
        if default is not None and (not isinstance(default, str) or default not in profiles):
            raise ConfigError(
                f"{where}: default_profile = {default!r} names no profile "
                f"(profiles: {', '.join(profiles) or 'none'})"
            )
        self.default_profile: str | None = default
        self.extra: Mapping[str, Any] = MappingProxyType(
            {k: v for k, v in data.items() if k not in ("profiles", "default_profile")}
        )

    @classmethod
    def read(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> ConfigFile:
        """Read and parse the config file (``path``, else :func:`default_config_path`)."""
        resolved = Path(path).expanduser() if path else default_config_path(environ)
        try:
            raw = resolved.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"there is no pswrap config file at {resolved} (set {CONFIG_VARIABLE} to use another)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read the pswrap config file {resolved}: {exc.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{resolved} is not valid TOML: {exc}") from None
        return cls(resolved, data)

    @property
    def profile_names(self) -> tuple[str, ...]:
        """The profiles in the file, in file order."""
        return tuple(self._profiles)

    def settings(self, name: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Profile ``name`` as :class:`Settings`, with its ``env:``/``file:`` secrets resolved."""
        table = self._profiles.get(name)
        if table is None:
            close = _close_matches(name, self._profiles, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"no profile {name!r} in {self.path} (profiles: {', '.join(self._profiles) or 'none'}){hint}"
            )
        environ = os.environ if environ is None else environ
        where = f"profile {name!r} in {self.path}"
        _reject_misspellings(where, table, _KNOWN_FIELDS)
        labels = {key: f"{key} in {where}" for key in _KNOWN_FIELDS}
        base_dir = self.path.parent
        origin = Origin(description=where, labels=labels, profile=name, base_dir=base_dir)
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        secret_variables: set[str] = set()
        inline: list[str] = []
        for key, value in table.items():
            if key not in _KNOWN_FIELDS:
                extra[key] = _wrap_inline_secrets(value, key, inline)
                continue
            if key in _SECRET_FIELDS:
                values[key] = _resolve(value, labels[key], key, base_dir, environ, secret_variables, inline)
            elif key in _BOOL_FIELDS:
                if not isinstance(value, bool):
                    _fail(origin, key, f"must be true or false, not {type(value).__name__}")
                values[key] = value
            elif key in _NUMBER_FIELDS:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    _fail(origin, key, f"must be a number of seconds, not {type(value).__name__}")
                values[key] = float(value)
            elif not isinstance(value, str):
                _fail(origin, key, f"must be a string, not {type(value).__name__}")
            else:
                values[key] = value
        if inline:
            _warn_about_inline_secrets(self.path, where, inline)
        origin = Origin(
            description=where,
            labels=labels,
            secret_variables=frozenset(secret_variables),
            profile=name,
            base_dir=base_dir,
        )
        return Settings(**values, extra=extra, origin=origin)

    def __repr__(self) -> str:
        return f"ConfigFile({str(self.path)!r}, profiles={list(self._profiles)!r})"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$PSWRAP_CONFIG``, else ``$XDG_CONFIG_HOME/pswrap/config.toml``, else the platform's default."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_VARIABLE):
        return Path(environ[CONFIG_VARIABLE]).expanduser()
    if environ.get("XDG_CONFIG_HOME"):
        return Path(environ["XDG_CONFIG_HOME"]).expanduser() / "pswrap" / "config.toml"
    if sys.platform == "win32" and environ.get("APPDATA"):
        return Path(environ["APPDATA"]) / "pswrap" / "config.toml"
    return Path("~/.config/pswrap/config.toml").expanduser()


def resolve_secret(
    value: str | Secret,
    *,
    where: str,
    name: str = "secret",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Turn a secret setting into a :class:`Secret`: ``env:NAME`` reads an environment variable,
    ``file:PATH`` a file (relative to ``base_dir``; one trailing newline dropped), anything else is
    the value itself. ``where`` names the setting in error messages.

    Other parts of pswrap use this for the secrets in their own tables (``Settings.extra``).
    """
    environ = os.environ if environ is None else environ
    return _resolve(value, where, name, base_dir, environ, set(), [])


def child_environment(environ: Mapping[str, str] | None = None, *settings: Settings) -> dict[str, str]:
    """A copy of ``environ`` safe to hand a child process: without pswrap's secret variables, the
    variables the given settings read secrets from, and any variable whose value is a known secret.

    (Only equal values: a variable that merely contains a short secret, PATH say, must stay.)"""
    environ = os.environ if environ is None else environ
    drop = {ENVIRONMENT_VARIABLES[name] for name in _SECRET_FIELDS}
    for one in settings:
        drop |= one.origin.secret_variables
    return {
        k: v
        for k, v in environ.items()
        if k not in drop and not _SECRET_VARIABLE.match(k) and not is_secret(v)
    }


# -- helpers ----------------------------------------------------------------------------------


def _close_matches(word: str, candidates: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    import difflib  # only on the way to an error or a warning

    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, not {type(value).__name__}")
    return value.strip() or None


def _secret(value: str | Secret | None, name: str) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value or None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {type(value).__name__}")
    return Secret(value, name) if value else None


def _path(value: str | os.PathLike[str] | None, origin: Origin) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and origin.base_dir is not None:
        path = origin.base_dir / path
    return path


def _check_tenant(origin: Origin, tenant: str | None) -> str | None:
    if tenant is None:
        return None
    if tenant.lower() in ("common", "organizations", "consumers"):
        _fail(origin, "tenant", f"{tenant!r} is not a tenant; app-only tokens need the tenant's ID or domain")
    if not (_GUID.match(tenant) or _DOMAIN.match(tenant)):
        _fail(
            origin,
            "tenant",
            f"{tenant!r} is neither a tenant ID (a GUID) nor a domain like contoso.onmicrosoft.com",
        )
    return tenant


def _check_guid(origin: Origin, name: str, value: str | None, what: str) -> str | None:
    if value is not None and not _GUID.match(value):
        _fail(origin, name, f"{value!r} is not {what} (a GUID like 5f0c4f6e-8a55-4f8c-9d49-4d2b6f0c2f11)")
    return value


def _check_managed_identity(origin: Origin, value: str | None) -> str | None:
    if value is None:
        return None
    kind, _, rest = value.partition(":")
    if value.lower() == "system" or _GUID.match(value) or value.lower().startswith("/subscriptions/"):
        return value
    if kind in ("client_id", "object_id") and _GUID.match(rest):
        return value
    if kind == "resource_id" and rest.lower().startswith("/subscriptions/"):
        return value
    _fail(
        origin,
        "managed_identity",
        f"{value!r} is not 'system', a user-assigned identity's client id (a GUID), its resource id "
        "(/subscriptions/…), or object_id:<guid>",
    )


def _check_environment(origin: Origin, value: str | None) -> str:
    try:
        cloud = get_cloud(value)
    except ConfigError as exc:
        _fail(origin, "environment", str(exc))
    if cloud.retired:
        logger.warning(
            "%s: %s is retired; its tenants moved to O365Default", origin.label("environment"), cloud.name
        )
    return cloud.name


def _check_authority(origin: Origin, value: str | None) -> str | None:
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        _fail(
            origin, "authority", f"{value!r} must be an https:// URL like https://login.microsoftonline.com"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        _fail(
            origin,
            "authority",
            f"{value!r} must be the login host only, like https://login.microsoftonline.com "
            "(the tenant goes in the tenant setting)",
        )
    return value.rstrip("/")


def _check_number(origin: Origin, name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _fail(origin, name, f"must be a number of seconds, not {value!r}")
    if not low <= value <= high:
        _fail(origin, name, f"{value:g} is out of range: use {low:g} to {high:g} seconds")
    return float(value)


def _check_transport(origin: Origin, value: str | None) -> str | None:
    if value is not None and value.lower() not in TRANSPORTS:
        _fail(origin, "transport", f"{value!r} is not one of {', '.join(TRANSPORTS)}")
    return value.lower() if value else None


def _parse_bool(origin: Origin, name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    _fail(origin, name, f"{raw!r} is not true/false")


def _parse_number(origin: Origin, name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        _fail(origin, name, f"{raw!r} is not a number of seconds")


def _resolve(
    value: object,
    where: str,
    name: str,
    base_dir: Path | None,
    environ: Mapping[str, str],
    secret_variables: set[str],
    inline: list[str],
) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty string ('env:NAME', 'file:PATH' or the value)")
    if value.startswith("env:"):
        variable = value[4:].strip()
        if not variable:
            raise ConfigError(f"{where}: 'env:' needs a variable name, like env:CONTOSO_SECRET")
        if not environ.get(variable):
            raise ConfigError(f"{where} refers to environment variable {variable}, which is not set")
        secret_variables.add(variable)
        return Secret(environ[variable].rstrip("\r\n"), name)
    if value.startswith("file:"):
        path = Path(value[5:].strip()).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{where} refers to file {path}, which cannot be read: {reason}") from None
        warn_if_readable_by_others(path, where)
        text = text[:-1] if text.endswith("\n") else text
        text = text[:-1] if text.endswith("\r") else text
        if not text:
            raise ConfigError(f"{where} refers to file {path}, which is empty")
        return Secret(text, name)
    inline.append(name)
    return Secret(value, name)


def _wrap_inline_secrets(value: Any, key: str, inline: list[str] | None = None) -> Any:
    """Secrets in tables pswrap does not know yet become :class:`Secret` at once (references stay);
    their dotted names go to ``inline``."""
    if isinstance(value, dict):
        return {k: _wrap_inline_secrets(v, f"{key}.{k}", inline) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_inline_secrets(v, key, inline) for v in value]
    name = key.rsplit(".", 1)[-1]
    if isinstance(value, str) and _SECRET_KEY.search(name) and not value.startswith(("env:", "file:")):
        if inline is not None:
            inline.append(key)
        return Secret(value, name)
    return value


def _reject_misspellings(where: str, table: Mapping[str, Any], known: Iterable[str]) -> None:
    known = tuple(known)
    for key in table:
        if key in known:
            continue
        close = _close_matches(key, known, n=1, cutoff=0.8)
        if close:
            raise ConfigError(f"{where}: unknown key {key!r}; did you mean {close[0]!r}?")


def _warn_about_misspelled_variables(environ: Mapping[str, str]) -> None:
    known = (*ENVIRONMENT_VARIABLES.values(), *_OTHER_VARIABLES)
    for variable in environ:
        if variable.startswith("PSWRAP_") and variable not in known:
            close = _close_matches(variable, known, n=1, cutoff=0.85)
            if close:
                logger.warning("%s is not a pswrap setting; did you mean %s?", variable, close[0])


_warned_files: set[tuple[str, int]] = set()


def warn_if_readable_by_others(path: str | os.PathLike[str], where: str) -> None:
    """Log a warning (once per file and mode) when the file ``path`` (a secret, a private key) can be
    read by other users."""
    if sys.platform == "win32":
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o044 and (os.fspath(path), mode) not in _warned_files:
        _warned_files.add((os.fspath(path), mode))
        logger.warning(
            "%s: %s holds a secret and can be read by other users (mode %o): chmod 600 %s",
            where,
            os.fspath(path),
            mode & 0o777,
            os.fspath(path),
        )


def _warn_about_inline_secrets(path: Path, where: str, names: list[str]) -> None:
    if sys.platform == "win32":
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        logger.warning(
            "%s holds %s inline and the file can be read by other users (mode %o): "
            "use env:NAME or file:PATH references, or chmod 600 %s",
            where,
            " and ".join(names),
            mode & 0o777,
            path,
        )
