"""The same cmdlet through pwsh and through the admin REST API gives the same Python values, wherever
the API carries the information (both stand-ins serve tests/standins/exchange_data.py's mailboxes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from pswrap import ExchangeOnline, PSEnum, PSObject, PSTimeSpan
from pswrap.config import Settings
from tests.fixtures.adminapi import FAST_RETRIES
from tests.fixtures.exchange import ExchangeStandin
from tests.standins import exchange_data as xd
from tests.standins.adminapi import AdminApi


def _same(field: xd.Field, via_pwsh: Any, via_rest: Any) -> bool:
    """Equal, allowing the differences the README documents: the API sends sizes, identities, enum
    names and unannotated TimeSpans as text, where PowerShell sends objects, numbers and TimeSpans."""
    if via_pwsh is None or via_rest is None:
        return via_pwsh is via_rest
    if field.kind in ("quota", "identity") and isinstance(via_pwsh, PSObject):
        return str(via_pwsh) == via_rest
    if field.kind == "enum" and isinstance(via_pwsh, PSEnum):
        return str(via_pwsh) == via_rest
    if field.kind == "timespan" and isinstance(via_rest, str):
        return isinstance(via_pwsh, PSTimeSpan) and str(via_pwsh) == via_rest
    if isinstance(via_pwsh, dt.datetime):
        return via_pwsh == via_rest and via_pwsh.utcoffset() == via_rest.utcoffset()
    return bool(via_pwsh == via_rest)


@pytest.mark.parametrize(
    ("cmdlet", "fields"), [("Get-Mailbox", xd.MAILBOX_FIELDS), ("Get-Recipient", xd.RECIPIENT_FIELDS)]
)
def test_pwsh_and_rest_agree(
    exchange_standin: ExchangeStandin,
    adminapi: AdminApi,
    idp_settings: Callable[..., Settings],
    cmdlet: str,
    fields: tuple[xd.Field, ...],
) -> None:
    identities = ["user0000000", "user0000003", "user0000007", "user0000008"]  # user, room, shared, archive…
    through_pwsh = exchange_standin.open()
    with ExchangeOnline(idp_settings(), transport="rest", base_url=adminapi.url, retry=FAST_RETRIES) as rest:
        for identity in identities:
            (a,) = through_pwsh.invoke(cmdlet, Identity=identity).output
            (b,) = rest.invoke(cmdlet, Identity=identity).output
            different = [f.name for f in fields if not _same(f, a[f.name], b[f.name])]
            assert different == [], f"{cmdlet} {identity}: {different}"
            typed = [f.name for f in fields if type(a[f.name]) is not type(b[f.name])]
            assert set(typed) <= {
                f.name for f in fields if f.kind in ("quota", "identity", "enum", "timespan")
            }


def test_set_mailbox_then_read_back_through_rest(
    adminapi: AdminApi, idp_settings: Callable[..., Settings]
) -> None:
    with ExchangeOnline(idp_settings(), transport="rest", base_url=adminapi.url, retry=FAST_RETRIES) as exo:
        exo.invoke("Set-Mailbox", Identity="user0000002", HiddenFromAddressListsEnabled=True).wait()
        (mailbox,) = exo.invoke("Get-Mailbox", Identity="user0000002").output
        assert mailbox.HiddenFromAddressListsEnabled is True
        assert exo.transport_name == "rest" and not exo.persistent and exo.connects == 0
