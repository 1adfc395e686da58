"""Against a real tenant and a real pwsh: run with ``PSWRAP_LIVE=1 pytest -m live`` (see the README).

Skipped unless ``PSWRAP_LIVE=1`` and the ``PSWRAP_*`` settings of an app with Exchange.ManageAsApp and an
Exchange role are in the environment, and ``pwsh`` with ExchangeOnlineManagement 3.1+ is on PATH.
"""

from __future__ import annotations

import os
import shutil

import pytest

from pswrap import ExchangeOnline, PSObject

pytestmark = pytest.mark.live


@pytest.fixture
def live() -> None:
    if os.environ.get("PSWRAP_LIVE") != "1":
        pytest.skip("live tenant tests run only with PSWRAP_LIVE=1 and PSWRAP_* settings of a real app")
    if not os.environ.get("PSWRAP_TENANT") or not os.environ.get("PSWRAP_CLIENT_ID"):
        pytest.skip("PSWRAP_TENANT and PSWRAP_CLIENT_ID (and a credential) are not set")


@pytest.mark.parametrize("transport", ["local", "oneshot"])
def test_get_mailbox_against_a_real_tenant(live: None, transport: str) -> None:
    if shutil.which("pwsh") is None:
        pytest.skip("pwsh is not on PATH")
    with ExchangeOnline.from_env(transport=transport) as exo:
        mailboxes = exo.invoke("Get-Mailbox", ResultSize=1).output
    assert len(mailboxes) == 1 and isinstance(mailboxes[0], PSObject)
    assert "@" in str(mailboxes[0].PrimarySmtpAddress)
