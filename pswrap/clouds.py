"""The Microsoft 365 clouds: where Exchange Online and its login endpoint live in each.

The names are the values of ``Connect-ExchangeOnline -ExchangeEnvironmentName``. Each cloud decides
the authority host (where tokens come from), the REST host (Exchange's admin API) and so the token
scope ``https://<rest host>/.default``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pswrap.errors import ConfigError

__all__ = [
    "CLOUDS",
    "DEFAULT_CLOUD",
    "EXCHANGE_APP_ID",
    "EXCHANGE_ROLE",
    "Cloud",
    "get_cloud",
    "is_exchange_audience",
]


@dataclass(frozen=True)
class Cloud:
    """One Microsoft 365 cloud: ``name`` is its ``-ExchangeEnvironmentName`` value."""

    name: str
    rest_host: str
    authority_host: str
    description: str
    retired: bool = False

    @property
    def resource(self) -> str:
        """The token audience: ``https://<rest host>``."""
        return f"https://{self.rest_host}"

    @property
    def scope(self) -> str:
        """The app-only scope for Exchange Online in this cloud."""
        return f"{self.resource}/.default"

    @property
    def authority_url(self) -> str:
        """The login endpoint's base URL (the tenant goes after it)."""
        return f"https://{self.authority_host}"


CLOUDS: tuple[Cloud, ...] = (
    Cloud("O365Default", "outlook.office365.com", "login.microsoftonline.com", "worldwide (also GCC)"),
    Cloud("O365USGovGCCHigh", "outlook.office365.us", "login.microsoftonline.us", "US Government GCC High"),
    Cloud("O365USGovDoD", "outlook-dod.office365.us", "login.microsoftonline.us", "US Government DoD"),
    Cloud("O365China", "partner.outlook.cn", "login.chinacloudapi.cn", "China, operated by 21Vianet"),
    Cloud(
        "O365GermanyCloud",
        "outlook.office.de",
        "login.microsoftonline.de",
        "Microsoft Cloud Deutschland (retired)",
        retired=True,
    ),
)

DEFAULT_CLOUD = CLOUDS[0]

# The application id of "Office 365 Exchange Online"; tokens sometimes carry it as their audience.
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
# The application permission an app-only token needs for Connect-ExchangeOnline and the admin API.
EXCHANGE_ROLE = "Exchange.ManageAsApp"

_BY_NAME = {cloud.name.lower(): cloud for cloud in CLOUDS}
# GCC tenants live in the worldwide cloud; people still look for the name.
_BY_NAME["gcc"] = DEFAULT_CLOUD


def get_cloud(name: str | None) -> Cloud:
    """The cloud called ``name`` (case-insensitive; ``None`` or empty means O365Default).

    Raises :class:`~pswrap.errors.ConfigError` listing the valid names when there is no such cloud.
    """
    if not name:
        return DEFAULT_CLOUD
    cloud = _BY_NAME.get(name.strip().lower())
    if cloud is None:
        valid = ", ".join(f"{c.name} ({c.description})" for c in CLOUDS)
        raise ConfigError(f"unknown Exchange environment {name!r}: use one of {valid}")
    return cloud


def is_exchange_audience(audience: str) -> bool:
    """Whether a token audience is Exchange Online in some cloud (by host or by its app id)."""
    audience = audience.rstrip("/").lower()
    if audience == EXCHANGE_APP_ID:
        return True
    return any(audience == cloud.resource for cloud in CLOUDS)
