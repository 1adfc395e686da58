"""The admin-API stand-in and its fixture data speak the real shapes (talked to with plain requests)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins import exchange_data as data
from tests.standins.adminapi import CONCURRENCY_TEXT, MORE_RESULTS_WARNING, PAGINATION_ERROR, AdminApi

ANCHOR = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@6babcaad-604b-40ac-a9d7-9fd97c0b779f"


@pytest.fixture
def http(adminapi: AdminApi) -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(adminapi.ca_path)
    yield session
    session.close()


class Client:
    def __init__(self, api: AdminApi, http: requests.Session, token: str, tenant: str) -> None:
        self.api = api
        self.http = http
        self.token = token
        self.tenant = tenant

    def invoke(
        self,
        cmdlet: str,
        parameters: dict[str, Any] | None = None,
        *,
        url: str | None = None,
        anchor: str | None = ANCHOR,
        page_size: int | None = None,
        token: str | None = None,
        body: Any = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        if anchor:
            headers["X-AnchorMailbox"] = anchor
        if page_size:
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        payload = (
            body
            if body is not None
            else {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters or {}}}
        )
        target = url or f"{self.api.url}/adminapi/beta/{self.tenant}/InvokeCommand"
        return self.http.post(
            target, data=json.dumps(payload), headers=headers, allow_redirects=False, timeout=10
        )


@pytest.fixture
def client(adminapi: AdminApi, http: requests.Session, idp: Any) -> Client:
    return Client(adminapi, http, idp.issue_token(idp.app), idp.tenant.domain)


def test_a_page_has_the_api_shape_with_annotations(client: Client, adminapi: AdminApi) -> None:
    answer = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    assert len(body["value"]) == 10 and "?$skiptoken=" in body["@odata.nextLink"]
    first = body["value"][0]
    assert first["Guid@data.type"] == "System.Guid" and first["Guid"] == str(data.mailbox_guid(0))
    assert first["EmailAddresses@odata.type"] == "#Collection(String)"
    assert first["WhenCreated"] == "2021-03-01T10:20:30.1234567+00:00"
    assert first["RetainDeletedItemsFor"] == "30.00:00:00" and "AuditLogAgeLimit@data.type" not in first
    assert first == data.to_rest(data.MAILBOX_FIELDS, data.mailbox_values(0))
    assert adminapi.connections == 1 and adminapi.requests[0].page == 1


def test_pages_follow_with_the_same_anchor_and_body(client: Client, adminapi: AdminApi) -> None:
    names: list[str] = []
    url = None
    while True:
        answer = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, url=url, page_size=10)
        assert answer.status_code == 200
        body = answer.json()
        names += [item["Name"] for item in body["value"]]
        url = body.get("@odata.nextLink")
        if not url:
            break
    assert names == [data.alias(i) for i in range(25)]
    assert [r.page for r in adminapi.requests] == [1, 2, 3]


@pytest.mark.parametrize("anchor", [None, "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@other"])
def test_a_page_without_the_same_anchor_is_an_invalid_pagination_request(
    client: Client, anchor: str | None
) -> None:
    first = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=10).json()
    answer = client.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, url=first["@odata.nextLink"], anchor=anchor
    )
    assert answer.status_code == 400
    assert PAGINATION_ERROR in answer.json()["error"]["details"][0]["message"]


def test_without_any_anchor_every_page_lands_on_another_backend(client: Client) -> None:
    first = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=10, anchor=None)
    assert first.status_code == 200
    again = client.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, url=first.json()["@odata.nextLink"], anchor=None
    )
    assert again.status_code == 400 and PAGINATION_ERROR in again.text


def test_skip_tokens_expire_and_are_bound_to_the_body(client: Client, adminapi: AdminApi) -> None:
    link = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=10).json()["@odata.nextLink"]
    other_body = client.invoke("Get-Mailbox", {"ResultSize": 20}, url=link)
    assert other_body.status_code == 400 and PAGINATION_ERROR in other_body.text
    link = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, page_size=10).json()["@odata.nextLink"]
    adminapi.expire_skip_tokens()
    assert client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link).status_code == 400


def test_without_result_size_1000_objects_and_a_warning(client: Client, adminapi: AdminApi) -> None:
    adminapi.mailbox_count = 1200
    body = client.invoke("Get-Mailbox", page_size=600).json()
    assert len(body["value"]) == 600 and body["@adminapi.warnings"] == [MORE_RESULTS_WARNING]
    last = client.invoke("Get-Mailbox", url=body["@odata.nextLink"]).json()
    assert len(last["value"]) == 400 and "@odata.nextLink" not in last


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [
        ("none", "no bearer token"),
        ("expired", "The token has expired."),
        ("graph", "The audience claim value is invalid"),
        ("foreign", "invalid signature"),
        ("no_role", "Exchange.ManageAsApp"),
    ],
)
def test_tokens_are_checked_with_the_reason_in_x_ms_diagnostics(
    client: Client, idp: Any, token_kind: str, reason: str
) -> None:
    if token_kind == "none":
        token = " "
    elif token_kind == "expired":
        token = idp.issue_token(idp.app, lifetime=-60)
    elif token_kind == "graph":
        token = idp.issue_token(idp.app, audience="https://graph.microsoft.com")
    elif token_kind == "foreign":
        claims = jwt.decode(idp.issue_token(idp.app), options={"verify_signature": False})
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": idp.kid})
    else:
        token = idp.issue_token(idp.app, roles=())
    answer = client.invoke("Get-Mailbox", token=token)
    assert answer.status_code == 401
    assert (
        reason in answer.headers["x-ms-diagnostics"]
        and 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    )


def test_a_token_of_another_tenant_and_an_expired_switch(
    client: Client, idp: Any, adminapi: AdminApi
) -> None:
    fabrikam = idp.add_tenant("fabrikam.onmicrosoft.com")
    other_app = idp.add_app(fabrikam, secret="x" * 40)
    answer = client.invoke("Get-Mailbox", token=idp.issue_token(other_app))
    assert answer.status_code == 401 and "does not match the tenant" in answer.headers["x-ms-diagnostics"]
    adminapi.expire(client.token)
    assert "expired" in client.invoke("Get-Mailbox").headers["x-ms-diagnostics"]


def test_403_for_a_missing_role_an_unknown_cmdlet_and_the_nul_body(
    client: Client, adminapi: AdminApi, idp: Any
) -> None:
    unknown = client.invoke("Get-Nothing")
    assert unknown.status_code == 403 and "not recognized" in unknown.headers["x-ms-diagnostics"]
    adminapi.restrict(idp.app.client_id, ["Get-Mailbox"])
    assert client.invoke("Get-Mailbox").status_code == 200
    hidden = client.invoke("Get-Recipient")
    assert hidden.status_code == 403 and "role (RBAC)" in hidden.headers["x-ms-diagnostics"]
    adminapi.revoke_role(idp.app.client_id)
    assert client.invoke("Get-Mailbox").status_code == 403
    adminapi.nul_forbidden = True
    nul = client.invoke("Get-Mailbox")
    assert nul.status_code == 403 and nul.content == b"\x00" * 64 and "x-ms-diagnostics" not in nul.headers


def test_cmdlet_errors_have_the_real_shape(client: Client) -> None:
    missing = client.invoke("Get-Mailbox", {"Identity": "nobody"})
    assert missing.status_code == 404
    error = missing.json()["error"]
    error_id, exception_type, text = error["details"][0]["message"].split("|", 2)
    assert (
        error["code"] == "NotFound"
        and error_id == ""
        and exception_type.endswith("ManagementObjectNotFoundException")
    )
    assert (
        "object 'nobody' couldn't be found" in text
        and error["innererror"]["internalexception"]["message"] == text
    )
    unknown = client.invoke("Get-Mailbox", {"Bogus": 1})
    assert unknown.status_code == 400 and "NamedParameterNotFound|" in unknown.text
    null = client.invoke(
        "Get-Mailbox", body={"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": None}}
    )
    assert null.status_code == 400 and "send {} for none" in null.text
    bad_filter = client.invoke("Get-Mailbox", {"Filter": "Alias -eq"})
    assert bad_filter.status_code == 400 and "Invalid filter syntax" in bad_filter.text


def test_set_mailbox_changes_the_tenant_and_warns_when_nothing_changed(
    client: Client, adminapi: AdminApi
) -> None:
    hashtable = {"@odata.type": "#Exchange.GenericHashTable", "Add": ["smtp:extra@contoso.com"]}
    answer = client.invoke(
        "Set-Mailbox", {"Identity": "user0000002", "EmailAddresses": hashtable, "Office": "HQ"}
    )
    assert answer.status_code == 200 and answer.json()["value"] == []
    after = client.invoke("Get-Mailbox", {"Identity": "user0000002"}).json()["value"][0]
    assert after["Office"] == "HQ" and after["EmailAddresses"][-1] == "smtp:extra@contoso.com"
    again = client.invoke("Set-Mailbox", {"Identity": "user0000002", "Office": "HQ"}).json()
    assert again["@adminapi.warnings"] == [
        "The command completed successfully but no settings of 'user0000002' have been modified."
    ]
    untyped = client.invoke("Set-Mailbox", {"Identity": "user0000002", "EmailAddresses": {"Add": ["x@y.z"]}})
    assert untyped.status_code == 400 and "#Exchange.GenericHashTable" in untyped.text
    assert client.invoke("Set-Mailbox", {"Office": "HQ"}).status_code == 400
    assert adminapi.store("contoso.onmicrosoft.com").changes == {
        2: {"Office": "HQ", "EmailAddresses": after["EmailAddresses"]}
    }


def test_throttling_switches(client: Client, adminapi: AdminApi) -> None:
    adminapi.fail_next(429, retry_after=7)
    throttled = client.invoke("Get-Mailbox")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    adminapi.fail_next(503, cmdlet="Set-Mailbox")
    assert client.invoke("Get-Mailbox").status_code == 200  # the switch waits for Set-Mailbox
    assert client.invoke("Set-Mailbox", {"Identity": "user0000001"}).status_code == 503
    adminapi.concurrency_limit_next(status=400)
    busy = client.invoke("Get-Mailbox")
    assert (
        busy.status_code == 400
        and busy.text == CONCURRENCY_TEXT
        and busy.headers["Content-Type"] == "text/plain"
    )
    assert client.invoke("Get-Mailbox").status_code == 200


def test_redirects_drops_and_warnings(client: Client, adminapi: AdminApi) -> None:
    adminapi.redirect_next("localhost")
    moved = client.invoke("Get-AcceptedDomain")
    assert moved.status_code == 307
    assert (
        moved.headers["Location"]
        == f"https://localhost:{adminapi.port}/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand"
    )
    assert client.invoke("Get-AcceptedDomain", url=moved.headers["Location"]).status_code == 200
    assert adminapi.requests[-1].host == f"localhost:{adminapi.port}"
    adminapi.drop_next(run=True)
    with pytest.raises(requests.ConnectionError):
        client.invoke("Set-Mailbox", {"Identity": "user0000004", "Office": "Dropped"})
    assert adminapi.store("contoso.onmicrosoft.com").values(4)["Office"] == "Dropped"  # it ran
    adminapi.warn("from the body")
    adminapi.warn("from the header", header=True)
    adminapi.warn("second header", header=True)
    warned = client.invoke("Get-AcceptedDomain")
    assert warned.json()["@adminapi.warnings"] == ["from the body"]
    assert warned.headers["X-Warnings"] == "from the header<eow>second header"


def test_refused_connections_while_not_listening(client: Client, adminapi: AdminApi) -> None:
    adminapi.stop_listening()
    with pytest.raises(requests.ConnectionError):
        client.invoke("Get-Mailbox")
    adminapi.start_listening()
    assert client.invoke("Get-Mailbox").status_code == 200


def test_recipients_domains_and_filters(client: Client) -> None:
    recipients = client.invoke("Get-Recipient", {"ResultSize": 3}).json()["value"]
    assert [r["Name"] for r in recipients] == [data.alias(i) for i in range(3)]
    assert (
        set(recipients[0]) >= {"RecipientTypeDetails", "PrimarySmtpAddress"}
        and "Database" not in recipients[0]
    )
    domains = client.invoke("Get-AcceptedDomain").json()["value"]
    assert [d["DomainName"] for d in domains] == [
        "contoso.onmicrosoft.com",
        "contoso.com",
        "contoso.mail.onmicrosoft.com",
    ]
    assert domains[0]["@data.type"].endswith("AcceptedDomain") and domains[0]["InitialDomain"] is True
    shared = client.invoke("Get-Mailbox", {"Filter": "RecipientTypeDetails -eq 'SharedMailbox'"}).json()[
        "value"
    ]
    assert [m["Name"] for m in shared] == ["user0000007", "user0000017"]
    rooms = client.invoke("Get-Mailbox", {"RecipientTypeDetails": ["RoomMailbox"]}).json()["value"]
    assert [m["Name"] for m in rooms] == ["user0000003"]


# --- the fixture data -------------------------------------------------------------------------


def test_mailboxes_are_deterministic_and_findable_by_every_identity() -> None:
    store = data.MailboxStore(100)
    values = store.values(42)
    assert values == data.mailbox_values(42) and [f.name for f in data.MAILBOX_FIELDS] == list(values)
    assert data.index_of_guid(values["Guid"]) == 42
    for identity in (
        "user0000042",
        "USER0000042",
        "User 0000042 Ünïcødé",
        "user0000042@contoso.onmicrosoft.com",
        "smtp:user0000042.1@contoso.com",
        str(values["Guid"]),
        str(values["ExchangeGuid"]),
        values["ExternalDirectoryObjectId"],
        values["DistinguishedName"],
    ):
        assert store.find(identity) == [42], identity
    assert store.find("user0000100") == [] and store.find("nobody") == []
    store.set(42, {"DisplayName": "Renamed"})
    assert store.find("Renamed") == [42]


def test_rest_expected_types_what_is_annotated() -> None:
    values = data.mailbox_values(4)
    expected = data.rest_expected(data.MAILBOX_FIELDS, values)
    assert isinstance(expected["Guid"], uuid.UUID) and expected["WhenCreated"] == values["WhenCreated"]
    assert (
        expected["AuditLogAgeLimit"] == "90.00:00:00"
        and expected["RetainDeletedItemsFor"] == values["RetainDeletedItemsFor"]
    )
    assert (
        expected["ProhibitSendQuota"] == "99 GB (106,300,440,576 bytes)"
        and expected["RecipientTypeDetails"] == "UserMailbox"
    )
    rest = data.to_rest(data.MAILBOX_FIELDS, values)
    json.dumps(rest)  # plain JSON
    assert rest["EmailAddresses@data.type"] == "Microsoft.Exchange.Data.ProxyAddressCollection"


@pytest.mark.parametrize(
    ("opath", "names"),
    [
        ("Alias -eq 'user0000003'", ["user0000003"]),
        ("DisplayName -like 'User 000001*'", [f"user00000{i}" for i in range(10, 20)]),
        ("(HiddenFromAddressListsEnabled -eq $true) -and (Office -ne 'Building 0')", ["user0000016"]),
        (
            "EmailAddresses -like 'smtp:*.3@*' -or Alias -eq 'user0000001'",
            ["user0000001", "user0000003", "user0000007", "user0000011", "user0000015", "user0000019"],
        ),
        ("-not (RecipientTypeDetails -eq 'UserMailbox')", ["user0000003", "user0000007", "user0000017"]),
        ('CustomAttribute1 -eq "dept-6"', ["user0000006", "user0000013"]),
    ],
)
def test_filters(opath: str, names: list[str]) -> None:
    store = data.MailboxStore(20)
    assert [data.alias(i) for i in store.indexes(opath)] == names


@pytest.mark.parametrize(
    "opath", ["Alias -eq", "Alias 'x'", "(Alias -eq 'x'", "Nope -eq 1", "Alias -eq 'x' extra"]
)
def test_filters_that_do_not_parse(opath: str) -> None:
    with pytest.raises(data.FilterError):
        data.parse_filter(opath)
