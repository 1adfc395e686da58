"""A test-only ExchangeOnlineManagement module for a real pwsh, and how to install it.

``current/ExchangeOnlineManagement/3.7.2`` is the module (a manifest and a script module; see the
psm1's header for what it checks and how it fails: as the real module does, ``../shared/docs/
real-captures.md``), ``old/ExchangeOnlineManagement/2.0.5`` a version too old for ``-AccessToken``.

:func:`install` copies a version into a folder to put on ``PSModulePath`` and writes beside the module
what it reads at run time: ``mailboxes.json`` (the fixture mailboxes of :mod:`tests.standins.exchange_data`,
the same values the pwsh and admin-API stand-ins serve) and ``standin.json`` (:class:`ModuleConfig`: the
identity provider's public key set, the tenants, the role assignment, the service's clock skew, throttling,
the journal file). Nothing in either is secret. Any pwsh that can read the folder can use it — a local
one, or one reached over SSH on this machine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.standins import exchange_data as xd

HERE = Path(__file__).resolve().parent
MODULE = "ExchangeOnlineManagement"
CURRENT = "3.7.2"
OLD = "2.0.5"
_SOURCES = {CURRENT: HERE / "current" / MODULE / CURRENT, OLD: HERE / "old" / MODULE / OLD}

MAILBOX_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.ADPresentationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
    "Deserialized.System.Object",
]
ACCEPTED_DOMAIN_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ADConfigurationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.System.Object",
]
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class ModuleConfig:
    """``standin.json``: what the module checks tokens against and how the service behaves.

    ``tenants``: ``[{"id": …, "domain": …}]`` (an organization names one by domain or id);
    ``jwks``: the identity provider's public key set; ``rbac``: the app's Exchange role —
    ``"assigned"``, ``"unsupported"`` (a directory role EXO does not take) or ``"none"``;
    ``clock_skew``: seconds the service takes tokens for expired early; ``revoked``: the ``uti`` claims
    of tokens the service no longer takes (a 401 mid-session, then refused at connect); ``throttle_after`` /
    ``throttle_times``: cmdlet calls that work before throttling starts, and how many are throttled.
    """

    tenants: list[dict[str, str]]
    jwks: dict[str, Any]
    audience: str = "https://outlook.office365.com"
    rbac: str = "assigned"
    clock_skew: float = 0.0
    revoked: list[str] = dataclasses.field(default_factory=list)
    throttle_after: int | None = None
    throttle_times: int = 0
    journal: str | None = None


def _ticks(value: dt.datetime) -> int:
    delta = value - _EPOCH
    return (
        (delta.days * 86_400 + delta.seconds) * 10_000_000
        + delta.microseconds * 10
        + (getattr(value, "nanosecond", 0) // 100)
    )


def _encode(field: xd.Field, value: Any) -> Any:
    """A value as mailboxes.json carries it for the module's ConvertFrom-ExoValue (by ``field.kind``)."""
    if value is None:
        return None
    if field.kind == "guid":
        return str(value)
    if field.kind == "datetime":
        return _ticks(value)
    if field.kind == "timespan":
        return int(value.ticks) if hasattr(value, "ticks") else int(value / dt.timedelta(microseconds=1)) * 10
    if field.kind == "strings":
        return [str(v) for v in value]
    if field.kind == "identity":
        return str(value)
    return value


def _fields(fields: Iterable[xd.Field]) -> list[list[str]]:
    return [[field.name, field.kind] for field in fields]


def _row(fields: Iterable[xd.Field], values: dict[str, Any]) -> dict[str, Any]:
    return {field.name: _encode(field, values[field.name]) for field in fields}


def mailbox_data(count: int = 12, domain: str = xd.TENANT_DOMAIN) -> dict[str, Any]:
    """The fixture mailboxes and accepted domains, as ``mailboxes.json`` holds them."""
    return {
        "mailbox_fields": _fields(xd.MAILBOX_FIELDS),
        "mailbox_types": MAILBOX_TYPES,
        "mailboxes": [_row(xd.MAILBOX_FIELDS, xd.mailbox_values(i, domain)) for i in range(count)],
        "accepted_domain_fields": _fields(xd.ACCEPTED_DOMAIN_FIELDS),
        "accepted_domain_types": ACCEPTED_DOMAIN_TYPES,
        "accepted_domains": [_row(xd.ACCEPTED_DOMAIN_FIELDS, d) for d in xd.accepted_domains(domain)],
    }


def install(
    destination: Path, *, version: str = CURRENT, mailboxes: int = 12, domain: str = xd.TENANT_DOMAIN
) -> Path:
    """Copy module ``version`` to ``destination/ExchangeOnlineManagement/<version>`` with its mailbox
    data; returns the folder to put on ``PSModulePath`` (``destination``). Configure it with
    :func:`configure` before connecting."""
    target = destination / MODULE / version
    shutil.copytree(_SOURCES[version], target, dirs_exist_ok=True)
    if version == CURRENT:
        (target / "mailboxes.json").write_text(json.dumps(mailbox_data(mailboxes, domain)), encoding="utf-8")
    return destination


def configure(module_path: Path, config: ModuleConfig) -> None:
    """Write ``standin.json`` for the current version installed under ``module_path`` (read at each
    connect and each cmdlet call, so a change applies at once)."""
    target = module_path / MODULE / CURRENT / "standin.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(config)), encoding="utf-8")
    temporary.replace(target)  # atomic: a pwsh reading it never sees half a file
