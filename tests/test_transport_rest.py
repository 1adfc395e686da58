"""The admin REST transport end to end: pswrap.Session -> RestTransport -> identity-provider and admin-API stand-ins."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pswrap import (
    AdminApiAuthError,
    AdminApiBusyError,
    AdminApiConnectionError,
    ConfigError,
    InvocationNotStarted,
    InvocationTimeout,
    NotSupportedByTransport,
    PowerShellError,
    Secret,
    Session,
    TransportError,
    WarningRecord,
)
from pswrap.auth import AccessToken, decode_claims
from pswrap.config import ENVIRONMENT_VARIABLES, Settings
from pswrap.objects import PSObject, PSTimeSpan
from pswrap.session import get_transport
from pswrap.transports.rest import RestTransport, RetryEvent, RetryPolicy
from tests.standins import exchange_data as data
from tests.standins.adminapi import MORE_RESULTS_WARNING, PAGINATION_ERROR, AdminApi

Make = Callable[..., RestTransport]
ANCHOR_PREFIX = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"


class FixedTokens:
    """A token source handing out the given JWTs in turn (``refresh`` moves to the next)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = [
            AccessToken(t, expires_on=decode_claims(t)["exp"], claims=decode_claims(t)) for t in tokens
        ]
        self.position = 0
        self.refreshes = 0

    def get_token(self) -> AccessToken:
        return self.tokens[self.position]

    def refresh(self, stale: AccessToken | None = None) -> AccessToken:
        self.refreshes += 1
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return self.tokens[self.position]


# --- objects and paging -----------------------------------------------------------------------


def test_every_page_arrives_as_typed_objects(rest_transport: Make, adminapi: AdminApi) -> None:
    with Session(rest_transport(page_size=10)) as session:
        mailboxes = session.invoke("Get-Mailbox", ResultSize="Unlimited").output
    assert len(mailboxes) == 25 and all(isinstance(m, PSObject) for m in mailboxes)
    for index, mailbox in enumerate(mailboxes):
        assert dict(mailbox) == data.rest_expected(data.MAILBOX_FIELDS, data.mailbox_values(index))
    first = mailboxes[0]
    assert first.Guid == data.mailbox_guid(0) and isinstance(first.Guid, uuid.UUID)
    assert first.WhenCreated.nanosecond == 700 and first.WhenCreated.tzinfo is not None
    assert first.RetainDeletedItemsFor == PSTimeSpan(days=30) and first.AuditLogAgeLimit == "90.00:00:00"
    assert first.EmailAddresses == ["SMTP:user0000000@contoso.onmicrosoft.com"] and first.ArchiveName == [
        "In-Place Archive - User 0000000"
    ]
    assert (
        first.ProhibitSendQuota == "99 GB (106,300,440,576 bytes)"
        and first.RecipientTypeDetails == "UserMailbox"
    )
    assert first.MaxSafeSenders == 1024 and first.LitigationHoldDate is None
    assert not any("@" in name for name in first)
    assert [r.page for r in adminapi.invocations("Get-Mailbox")] == [1, 2, 3]


def test_every_page_is_a_post_with_the_same_body_anchor_and_headers(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    transport = rest_transport(page_size=10)
    with Session(transport) as session:
        session.invoke("Get-Mailbox", ResultSize="Unlimited").wait()
        session.invoke("Get-AcceptedDomain").wait()
    pages = adminapi.invocations("Get-Mailbox")
    assert len(pages) == 3 and all(r.method == "POST" and r.status == 200 for r in pages)
    assert {r.raw_body for r in pages} == {pages[0].raw_body}
    assert json.loads(pages[0].raw_body) == {
        "CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "Unlimited"}}
    }
    for name in ("X-AnchorMailbox", "Prefer", "Authorization", "connection-id", "Content-Type"):
        assert len({r.header(name) for r in pages}) == 1, name
    assert pages[0].header("X-AnchorMailbox") == ANCHOR_PREFIX + idp.tenant.id
    assert pages[0].header("Prefer") == "odata.maxpagesize=10"
    assert pages[0].header("Content-Type") == "application/json"
    token = transport.token_provider.get_token().token.reveal()
    assert pages[0].header("Authorization") == f"Bearer {token}"
    every = adminapi.invocations()
    assert len({r.header("client-request-id") for r in every}) == len(every) == 4  # one per request
    assert {r.header("connection-id") for r in every} == {transport.connection_id}  # one per transport
    assert pages[0].path == "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand"


def test_pages_are_streamed_one_ahead_of_the_reader(rest_transport: Make, adminapi: AdminApi) -> None:
    with Session(rest_transport(page_size=10)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited")
        stream = result.stream()
        first = next(stream)
        assert first.Name == "user0000000"
        assert len(adminapi.invocations()) <= 2  # page 1, perhaps page 2 ahead: never page 3 yet
        rest = list(stream)
    assert [m.Name for m in rest] == [data.alias(i) for i in range(1, 25)]
    assert result.output == [] and result.state == "completed"  # streamed objects are not kept


def test_result_size_bounds_the_page_and_the_objects(rest_transport: Make, adminapi: AdminApi) -> None:
    with Session(rest_transport()) as session:
        seven = session.invoke("Get-Mailbox", ResultSize=7).output
        twelve = session.invoke("Get-Mailbox", ResultSize=12).output
    assert [m.Name for m in seven] == [data.alias(i) for i in range(7)]
    assert len(twelve) == 12
    requests = adminapi.invocations()
    assert requests[0].header("Prefer") == "odata.maxpagesize=7" and len(requests) == 2


def test_without_result_size_exchange_stops_at_1000_and_warns_once(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    adminapi.mailbox_count = 1100
    with Session(rest_transport(page_size=500)) as session:
        result = session.invoke("Get-Mailbox").wait()
    assert len(result.output) == 1000 and result.warnings == [WarningRecord(MORE_RESULTS_WARNING)]
    assert len(adminapi.invocations()) == 2


def test_recipients_domains_filters_and_type_names(rest_transport: Make) -> None:
    with Session(rest_transport()) as session:
        recipients = session.invoke("Get-Recipient", ResultSize=2).output
        domains = session.invoke("Get-AcceptedDomain").output
        shared = session.invoke("Get-Mailbox", Filter="RecipientTypeDetails -eq 'SharedMailbox'").output
        with pytest.raises(PowerShellError) as caught:
            session.invoke("Get-Mailbox", Filter="Alias -eq").wait()
    assert dict(recipients[1]) == data.rest_expected(data.RECIPIENT_FIELDS, data.recipient_values(1))
    assert [d.DomainName for d in domains] == [
        "contoso.onmicrosoft.com",
        "contoso.com",
        "contoso.mail.onmicrosoft.com",
    ]
    assert domains[0].type_name == data.ACCEPTED_DOMAIN_TYPE_NAME
    assert domains[0].WhenCreated == dt.datetime(2020, 6, 1, 12, tzinfo=dt.timezone.utc)
    assert [m.Name for m in shared] == ["user0000007", "user0000017"]
    assert caught.value.record.category == "InvalidArgument" and "Invalid filter syntax" in str(caught.value)


# --- parameters -------------------------------------------------------------------------------


def test_parameters_arrive_encoded_and_take_effect(rest_transport: Make, adminapi: AdminApi) -> None:
    with Session(rest_transport()) as session:
        session.invoke(
            "Set-Mailbox",
            Identity="user0000005",
            EmailAddresses={"Add": ["smtp:new@contoso.com"], "Remove": "smtp:user0000005.1@contoso.com"},
            HiddenFromAddressListsEnabled=False,
            RetainDeletedItemsFor=dt.timedelta(days=21, hours=12),
            CustomAttribute3="Finance",
            Force=True,
            Confirm=False,
        ).wait()
        (after,) = session.invoke("Get-Mailbox", Identity="user0000005").output
    (sent,) = adminapi.invocations("Set-Mailbox")
    assert sent.body["CmdletInput"]["Parameters"] == {
        "Identity": "user0000005",
        "EmailAddresses": {
            "@odata.type": "#Exchange.GenericHashTable",
            "Add": ["smtp:new@contoso.com"],
            "Remove": "smtp:user0000005.1@contoso.com",
        },
        "HiddenFromAddressListsEnabled": False,
        "RetainDeletedItemsFor": "21.12:00:00",
        "CustomAttribute3": "Finance",
        "Force": True,
        "Confirm": False,
    }
    assert after.EmailAddresses == ["SMTP:user0000005@contoso.onmicrosoft.com", "smtp:new@contoso.com"]
    assert after.HiddenFromAddressListsEnabled is False and after.CustomAttribute3 == "Finance"
    assert after.RetainDeletedItemsFor == PSTimeSpan(days=21, hours=12)


def test_a_cmdlet_runs_even_when_its_result_is_never_read(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    with Session(rest_transport()) as session:
        session.invoke("Set-Mailbox", Identity="user0000008", Office="Unread")  # result dropped at once
        deadline = time.monotonic() + 30  # a bound for a slow machine, not a timing assertion
        while not adminapi.invocations("Set-Mailbox") and time.monotonic() < deadline:
            time.sleep(0.01)
    assert adminapi.store(idp.tenant).values(8)["Office"] == "Unread"


def test_what_the_api_cannot_run_is_refused_before_any_request(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    with Session(rest_transport()) as session:
        with pytest.raises(NotSupportedByTransport, match="runs single cmdlets") as script:
            session.script("Get-Mailbox | Select-Object Name")
        assert "local transport" in str(script.value)
        with pytest.raises(NotSupportedByTransport, match="no pipeline input"):
            session.invoke("Set-Mailbox", input=["bob"], Office="HQ")
        with pytest.raises(NotSupportedByTransport, match="SecureString"):
            session.invoke("Set-Mailbox", Identity="bob", Password=Secret("hunter2-canary"))
        with pytest.raises(NotSupportedByTransport, match="by name"):
            session.invoke("Get-Mailbox", "bob")
    assert adminapi.requests == []


# --- errors -----------------------------------------------------------------------------------


def test_a_cmdlet_error_is_a_powershell_error_with_its_record(rest_transport: Make) -> None:
    with Session(rest_transport()) as session:
        with pytest.raises(PowerShellError) as get:
            session.invoke("Get-Mailbox", Identity="nobody").wait()
        with pytest.raises(PowerShellError) as put:
            session.invoke("Set-Mailbox", Identity="nobody", Office="HQ").wait()
        with pytest.raises(PowerShellError) as bind:
            session.invoke("Get-Mailbox", Bogus=1).wait()
    record = get.value.record
    assert record.message.startswith(
        "The operation couldn't be performed because object 'nobody' couldn't be found"
    )
    assert (
        record.category == "ObjectNotFound" and record.target == "nobody" and record.activity == "Get-Mailbox"
    )
    assert record.exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert record.error_id == "NotFound" and put.value.record.error_id == "ErrorManagementObjectNotFound"
    assert str(get.value) == record.message and get.value.partial.state == "failed"
    assert (
        bind.value.record.category == "InvalidArgument"
        and bind.value.record.error_id == "NamedParameterNotFound"
    )
    assert "matches parameter name 'Bogus'" in str(bind.value)


def test_an_expired_skip_token_fails_keeping_the_objects_received(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    with Session(rest_transport(page_size=10, prefetch=False)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited")
        objects = iter(result)
        first_page = [next(objects) for _ in range(10)]
        adminapi.expire_skip_tokens()
        with pytest.raises(PowerShellError) as caught:
            list(objects)
    assert (
        PAGINATION_ERROR in str(caught.value)
        and "run the command again" in caught.value.record.recommended_action
    )
    assert caught.value.partial.output == first_page and len(first_page) == 10


@pytest.mark.parametrize(
    ("switch", "category", "error_id", "kind", "words"),
    [
        (
            "revoke",
            "PermissionDenied",
            "AccessDenied",
            "missing Exchange role",
            "not assigned an Exchange role",
        ),
        (
            "unknown",
            "ObjectNotFound",
            "CommandNotFoundException",
            "unknown cmdlet",
            "check the name 'Get-Nothing'",
        ),
        (
            "nul",
            "PermissionDenied",
            "Forbidden",
            "unknown cmdlet or missing Exchange role",
            "the body was NUL bytes",
        ),
    ],
)
def test_403_says_which_it_is_and_what_to_do(
    rest_transport: Make,
    adminapi: AdminApi,
    idp: Any,
    switch: str,
    category: str,
    error_id: str,
    kind: str,
    words: str,
) -> None:
    cmdlet = "Get-Nothing" if switch == "unknown" else "Get-Mailbox"
    if switch in ("revoke", "nul"):
        adminapi.revoke_role(idp.app.client_id)
    adminapi.nul_forbidden = switch == "nul"
    with Session(rest_transport()) as session, pytest.raises(PowerShellError) as caught:
        session.invoke(cmdlet).wait()
    record = caught.value.record
    assert record.category == category and record.error_id == error_id and record.reason == kind
    assert str(caught.value).startswith(f"{cmdlet} was refused by Exchange Online (HTTP 403, {kind}): ")
    assert words in str(caught.value) and "Exchange Administrator" in str(caught.value)
    assert len(adminapi.invocations()) == 1  # a 403 is never retried


@pytest.mark.parametrize("cmdlet", ["Get-Mailbox", "Set-Mailbox"])
def test_a_403_whose_body_cannot_be_decoded_is_still_a_403(
    rest_transport: Make, adminapi: AdminApi, idp: Any, cmdlet: str
) -> None:
    # Exchange's 403 can be NUL bytes declared as gzip: the status decides, at once, with no retry.
    adminapi.revoke_role(idp.app.client_id)
    adminapi.nul_forbidden = "gzip"
    parameters = {"Identity": "user0000001", "Office": "x"} if cmdlet == "Set-Mailbox" else {}
    started = time.monotonic()
    with Session(rest_transport()) as session, pytest.raises(PowerShellError) as caught:
        session.invoke(cmdlet, **parameters).wait()
    assert str(caught.value).startswith(f"{cmdlet} was refused by Exchange Online (HTTP 403, ")
    assert "the body was NUL bytes" in str(caught.value) and "Exchange Administrator" in str(caught.value)
    assert "may have run" not in str(caught.value) and "dropped" not in str(caught.value)
    assert len(adminapi.invocations()) == 1 and time.monotonic() - started < 30  # nothing retried


def test_a_token_without_the_exchange_permission(
    idp: Any, idp_settings: Callable[..., Settings], rest_transport: Make, adminapi: AdminApi
) -> None:
    bare = idp.add_app(idp.tenant, secret="Zq8Q~" + "r" * 35, roles=())
    transport = rest_transport(idp_settings(client_id=bare.client_id, client_secret=bare.secret))
    with Session(transport) as session, pytest.raises(AdminApiAuthError) as caught:
        session.invoke("Get-Mailbox").wait()
    error = caught.value
    assert (
        error.problem == "missing_permission"
        and error.status == 401
        and isinstance(error, InvocationNotStarted)
    )
    assert "Exchange.ManageAsApp" in str(error) and "admin consent" in str(error) and error.request_id
    assert len(adminapi.invocations()) == 0 and len(adminapi.requests) == 1  # refused before the cmdlet


def test_a_token_for_another_resource_or_tenant(
    idp: Any, idp_settings: Callable[..., Settings], rest_transport: Make
) -> None:
    graph = rest_transport(idp_settings(scope="https://graph.microsoft.com/.default"))
    with Session(graph) as session, pytest.raises(AdminApiAuthError) as audience:
        session.invoke("Get-Mailbox").wait()
    assert audience.value.problem == "wrong_audience" and "https://outlook.office365.com/.default" in str(
        audience.value
    )
    fabrikam = idp.add_tenant("fabrikam.onmicrosoft.com")
    other = idp.add_app(fabrikam, secret="Zq8Q~" + "f" * 35)
    wrong = rest_transport(
        idp_settings(tenant=fabrikam.domain, client_id=other.client_id, client_secret=other.secret),
        tenant="contoso.onmicrosoft.com",
    )
    with Session(wrong) as session, pytest.raises(AdminApiAuthError) as tenant:
        session.invoke("Get-Mailbox").wait()
    assert tenant.value.problem == "wrong_tenant" and "does not match the tenant" in str(tenant.value)


def test_an_expired_token_is_replaced_once_and_the_call_retried(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    transport = rest_transport()
    stale = transport.token_provider.get_token()
    adminapi.expire(stale.token.reveal())
    with Session(transport) as session:
        mailboxes = session.invoke("Set-Mailbox", Identity="user0000001", Office="Moved").wait()
    assert mailboxes.state == "completed" and adminapi.store(idp.tenant).values(1)["Office"] == "Moved"
    first, second = adminapi.requests  # the refused one never got as far as naming its cmdlet
    assert (first.status, second.status) == (401, 200) and second.cmdlet == "Set-Mailbox"
    assert first.header("Authorization") == f"Bearer {stale.token.reveal()}" != second.header("Authorization")
    assert idp.token_requests == 2


def test_a_token_refused_as_expired_twice_is_an_auth_error(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    tokens = FixedTokens(idp.issue_token(idp.app, lifetime=-60), idp.issue_token(idp.app, lifetime=-30))
    with (
        Session(rest_transport(token_provider=tokens)) as session,
        pytest.raises(AdminApiAuthError) as caught,
    ):
        session.invoke("Get-Mailbox").wait()
    assert caught.value.problem == "expired_token" and "check this host's clock" in str(caught.value)
    assert tokens.refreshes == 1 and len(adminapi.requests) == 2


# --- warnings ---------------------------------------------------------------------------------


def test_the_more_results_warning_is_dropped_when_every_page_is_read(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    # Exchange puts it on every page that has a next link; pswrap follows the links itself.
    with Session(rest_transport(page_size=10)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited").wait()
    assert len(result.output) == 25 and len(adminapi.invocations("Get-Mailbox")) == 3
    assert result.warnings == []
    first_page = adminapi.invocations("Get-Mailbox")[0]
    assert first_page.status == 200


def test_warnings_from_body_and_header_once_each_across_pages(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    adminapi.warn("Body warning, on every page.")
    adminapi.warn("Header warning.", header=True)
    adminapi.warn("Second header warning.", header=True)
    with Session(rest_transport(page_size=10)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited").wait()
        unchanged = session.invoke("Set-Mailbox", Identity="user0000001", Office="Building 1").wait()
    assert len(result.output) == 25 and len(adminapi.invocations("Get-Mailbox")) == 3
    assert [w.message for w in result.warnings] == [
        "Body warning, on every page.",
        "Header warning.",
        "Second header warning.",
    ]
    assert "The command completed successfully but no settings of 'user0000001' have been modified." in [
        w.message for w in unchanged.warnings
    ]


# --- retries ----------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(rest_transport: Make, adminapi: AdminApi) -> None:
    events: list[RetryEvent] = []
    adminapi.fail_next(429, retry_after=1)
    with Session(rest_transport(on_retry=events.append)) as session:
        mailboxes = session.invoke("Get-Mailbox", ResultSize=3).output
    assert len(mailboxes) == 3
    assert [(e.status, e.delay, e.reason, e.attempt) for e in events] == [
        (429, 1.0, "throttled (HTTP 429)", 1)
    ]
    assert [r.status for r in adminapi.invocations()] == [429, 200]


@pytest.mark.parametrize("failure", ["500", "503", "concurrency-429", "concurrency-400", "drop"])
def test_reads_are_retried_with_backoff(rest_transport: Make, adminapi: AdminApi, failure: str) -> None:
    if failure == "drop":
        adminapi.drop_next(times=2)
    elif failure.startswith("concurrency"):
        adminapi.concurrency_limit_next(times=2, status=int(failure.split("-")[1]))
    else:
        adminapi.fail_next(int(failure), times=2)
    events: list[RetryEvent] = []
    policy = RetryPolicy(initial_delay=0.01, backoff=3.0, max_delay=1.0)
    with Session(rest_transport(retry=policy, on_retry=events.append)) as session:
        mailboxes = session.invoke("Get-Mailbox", ResultSize=5).output
    assert len(mailboxes) == 5 and len(adminapi.invocations("Get-Mailbox")) == 3
    assert [e.delay for e in events] == pytest.approx([0.01, 0.03])
    assert len({e.request_id for e in events}) == 2


def test_retries_stop_at_the_attempt_cap_and_at_the_time_cap(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    adminapi.fail_next(503, times=10)
    transport = rest_transport(retry=RetryPolicy(retries=2, initial_delay=0.01))
    with Session(transport) as session, pytest.raises(AdminApiBusyError) as attempts:
        session.invoke("Get-Mailbox").wait()
    assert attempts.value.attempts == 3 and "gave up after 3 attempts" in str(attempts.value)
    assert attempts.value.may_have_run is False and len(adminapi.invocations()) == 3
    adminapi.reset()
    adminapi.fail_next(429, retry_after=120)
    with (
        Session(rest_transport(retry=RetryPolicy(max_wait=30))) as session,
        pytest.raises(AdminApiBusyError) as waiting,
    ):
        session.invoke("Get-Mailbox").wait()
    assert waiting.value.retry_after == 120 and "retry time cap of 30 s" in str(waiting.value)
    assert "run it again after 120 s" in str(waiting.value) and len(adminapi.invocations()) == 1


@pytest.mark.parametrize("failure", ["429", "503", "concurrency"])
def test_a_mutating_cmdlet_is_never_retried_once_it_reached_exchange(
    rest_transport: Make, adminapi: AdminApi, idp: Any, failure: str
) -> None:
    if failure == "concurrency":
        adminapi.concurrency_limit_next()
    else:
        adminapi.fail_next(int(failure), retry_after=1)
    with Session(rest_transport()) as session, pytest.raises(AdminApiBusyError) as caught:
        session.invoke("Set-Mailbox", Identity="user0000001", Office="Once").wait()
    error = caught.value
    assert (
        error.may_have_run
        and error.attempts == 1
        and "Set-Mailbox changes things" in (error.not_retried or "")
    )
    assert "pswrap never sends such a cmdlet again on its own" in str(error)
    assert len(adminapi.invocations("Set-Mailbox")) == 1


def test_a_mutating_cmdlet_whose_answer_was_lost_is_not_run_twice(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    adminapi.drop_next(run=True)
    with Session(rest_transport()) as session, pytest.raises(AdminApiConnectionError) as caught:
        session.invoke("Set-Mailbox", Identity="user0000002", CustomAttribute2="ran").wait()
    assert caught.value.problem == "connection dropped" and caught.value.may_have_run
    assert "may have reached Exchange" in str(caught.value) and "never sends such a cmdlet again" in str(
        caught.value
    )
    assert len(adminapi.invocations("Set-Mailbox")) == 1
    assert adminapi.store(idp.tenant).changes == {2: {"CustomAttribute2": "ran"}}  # it ran exactly once


def test_a_request_that_never_reached_the_server_is_retried_even_when_mutating(
    rest_transport: Make, adminapi: AdminApi, idp: Any
) -> None:
    events: list[RetryEvent] = []

    def listen_again(event: RetryEvent) -> None:
        events.append(event)
        adminapi.start_listening()

    transport = rest_transport(on_retry=listen_again)
    transport.token_provider.get_token()  # the identity provider is not what is being refused
    adminapi.stop_listening()
    with Session(transport) as session:
        session.invoke("Set-Mailbox", Identity="user0000003", Office="Retried").wait()
    assert [e.reason for e in events] == ["connection refused"]
    assert (
        len(adminapi.invocations("Set-Mailbox")) == 1
        and adminapi.store(idp.tenant).values(3)["Office"] == "Retried"
    )


def test_a_refused_connection_that_lasts_gives_up_saying_nothing_ran(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    transport = rest_transport(retry=RetryPolicy(retries=2, initial_delay=0.01))
    transport.token_provider.get_token()
    adminapi.stop_listening()
    with Session(transport) as session, pytest.raises(AdminApiConnectionError) as caught:
        session.invoke("Set-Mailbox", Identity="user0000003", Office="Never").wait()
    assert caught.value.problem == "connection refused" and caught.value.attempts == 3
    assert not caught.value.may_have_run and "may have reached" not in str(caught.value)


# --- redirects, connections, TLS --------------------------------------------------------------


def test_a_regional_redirect_is_followed_keeping_authorization(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    adminapi.redirect_next("localhost")
    with Session(rest_transport(page_size=10, redirect_domains=["localhost"])) as session:
        mailboxes = session.invoke("Get-Mailbox", ResultSize="Unlimited").output
    assert len(mailboxes) == 25
    requests = adminapi.requests
    assert requests[0].status == 307 and requests[0].host == f"127.0.0.1:{adminapi.port}"
    assert {r.host for r in requests[1:]} == {f"localhost:{adminapi.port}"} and len(requests) == 4
    assert {r.header("Authorization") for r in requests} == {requests[0].header("Authorization")}
    assert {r.raw_body for r in requests} == {requests[0].raw_body}


@pytest.mark.parametrize(
    ("to", "domains", "why"),
    [
        ("localhost", None, "localhost is outside 127.0.0.1 and *.outlook.office365.com"),
        ("http://localhost:{port}", ["localhost"], "it is not HTTPS"),
        ("https://evil.example", ["localhost"], "evil.example is outside"),
    ],
)
def test_an_unsafe_redirect_is_refused_before_the_token_goes_anywhere(
    rest_transport: Make, adminapi: AdminApi, to: str, domains: list[str] | None, why: str
) -> None:
    adminapi.redirect_next(to.format(port=adminapi.port))
    with (
        Session(rest_transport(redirect_domains=domains)) as session,
        pytest.raises(AdminApiConnectionError) as caught,
    ):
        session.invoke("Get-Mailbox").wait()
    assert caught.value.problem == "unsafe redirect" and why in str(caught.value)
    assert len(adminapi.requests) == 1


def test_a_redirect_loop_and_an_unsafe_next_page_link(rest_transport: Make, adminapi: AdminApi) -> None:
    adminapi.redirect_next("localhost", times=20)
    with (
        Session(rest_transport(redirect_domains=["localhost"])) as session,
        pytest.raises(AdminApiConnectionError) as loop,
    ):
        session.invoke("Get-Mailbox").wait()
    assert loop.value.problem == "redirect loop" and len(adminapi.requests) == 6
    adminapi.reset()
    adminapi.next_link_base = "https://evil.example"
    with Session(rest_transport(page_size=10)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited")
        with pytest.raises(AdminApiConnectionError) as link:
            result.wait()
    assert link.value.problem == "unsafe next page link" and "evil.example" in str(link.value)
    assert len(adminapi.requests) == 1


def test_one_connection_serves_every_page_and_call(rest_transport: Make, adminapi: AdminApi) -> None:
    with Session(rest_transport(page_size=10)) as session:
        for _ in range(3):
            assert len(session.invoke("Get-Mailbox", ResultSize="Unlimited").output) == 25
        session.invoke("Set-Mailbox", Identity="user0000001", Office="Reused").wait()
        session.invoke("Get-AcceptedDomain").wait()
    assert len(adminapi.requests) == 11 and adminapi.connections == 1


def test_the_configured_ca_bundle_wins_over_requests_ca_bundle(
    rest_transport: Make, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    with Session(rest_transport()) as session:
        assert len(session.invoke("Get-AcceptedDomain").output) == 3


# --- time, stop, configuration ----------------------------------------------------------------


def test_an_invocation_timeout_stops_waiting(rest_transport: Make, adminapi: AdminApi) -> None:
    adminapi.delay = 5.0
    with Session(rest_transport()) as session:
        result = session.invoke("Get-Mailbox", timeout=0.3)
        with pytest.raises(InvocationTimeout) as caught:
            result.wait()
    assert caught.value.timeout == 0.3 and result.state == "stopped"
    assert "Get-Mailbox did not finish within its timeout of 0.3 s" in str(caught.value)


def test_stop_hands_out_nothing_more_and_asks_for_no_further_page(
    rest_transport: Make, adminapi: AdminApi
) -> None:
    with Session(rest_transport(page_size=5, prefetch=False)) as session:
        result = session.invoke("Get-Mailbox", ResultSize="Unlimited")
        objects = iter(result)
        taken = [next(objects) for _ in range(3)]
        result.stop()
        assert list(objects) == []
    assert result.state == "stopped" and result.output == taken and len(adminapi.requests) == 1


def test_session_by_name_from_a_profile_with_a_rest_table(
    idp: Any, adminapi: AdminApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (*ENVIRONMENT_VARIABLES.values(), "PSWRAP_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        f"""default_profile = "contoso"
[profiles.contoso]
tenant = "{idp.tenant.domain}"
client_id = "{idp.app.client_id}"
client_secret = "env:CONTOSO_TEST_SECRET"
authority = "{idp.url}"
ca_bundle = "{idp.ca_path}"
[profiles.contoso.rest]
base_url = "{adminapi.url}"
page_size = 4
retries = 1
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("PSWRAP_CONFIG", str(config))
    monkeypatch.setenv("CONTOSO_TEST_SECRET", idp.app.secret)
    with Session(transport="rest") as session:
        assert session.transport.name == "rest" and session.transport.retry.retries == 1
        assert len(session.invoke("Get-Mailbox", ResultSize=10).output) == 10
    assert [r.header("Prefer") for r in adminapi.requests] == ["odata.maxpagesize=4"] * 3
    with pytest.raises(ConfigError, match="runs no pwsh"):
        get_transport("rest", pwsh="pwsh")


def test_bad_configuration_is_named(idp_settings: Callable[..., Settings]) -> None:
    settings = idp_settings()
    with pytest.raises(ConfigError, match="https://"):
        RestTransport(settings, base_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="page_size must be a whole number from 1 to 1000"):
        RestTransport(settings, page_size=5000)
    with pytest.raises(ConfigError, match=r"unknown rest option\(s\) pagesize"):
        RestTransport(idp_settings(extra={"rest": {"pagesize": 5}}))
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    transport = RestTransport(settings)
    assert (
        transport.base_url == "https://outlook.office365.com"
        and transport.tenant == "contoso.onmicrosoft.com"
    )
    assert transport.page_size == 1000 and transport.retry == RetryPolicy()
    assert (
        RestTransport(idp_settings(environment="O365USGovGCCHigh")).base_url == "https://outlook.office365.us"
    )


# --- secrets ----------------------------------------------------------------------------------


def test_the_token_never_reaches_logs_errors_or_reprs(
    rest_transport: Make, adminapi: AdminApi, idp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    transport = rest_transport(page_size=10)
    token = transport.token_provider.get_token()
    failures: list[BaseException] = []
    with Session(transport) as session:
        session.invoke("Get-Mailbox", ResultSize="Unlimited").wait()
        adminapi.fail_next(503)
        session.invoke("Get-Mailbox").wait()
        adminapi.expire(token.token.reveal())
        session.invoke("Get-AcceptedDomain").wait()
        adminapi.drop_next(run=True)
        for cmdlet, parameters in (
            ("Get-Nothing", {}),
            ("Set-Mailbox", {"Identity": "user0000001", "Office": "x"}),
            ("Get-Mailbox", {"Identity": "nobody"}),
        ):
            try:
                session.invoke(cmdlet, **parameters).wait()
            except Exception as exc:
                failures.append(exc)
        adminapi.revoke_role(idp.app.client_id)
        try:
            session.invoke("Get-Mailbox").wait()
        except Exception as exc:
            failures.append(exc)
    assert len(failures) == 4
    secrets = [token.token.reveal(), transport.token_provider.get_token().token.reveal(), idp.app.secret]
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # urllib3 did talk at DEBUG
    texts = [
        caplog.text,
        repr(transport),
        repr(token),
        *(str(e) for e in failures),
        *(repr(e) for e in failures),
    ]
    texts += [repr(e.record) for e in failures if isinstance(e, PowerShellError)]
    texts += [repr(e.record.raw) for e in failures if isinstance(e, PowerShellError)]
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "<redacted>" not in text  # not even a scrubbed copy: it was never logged
    assert (
        adminapi.requests[0].header("Authorization") == f"Bearer {secrets[0]}"
    )  # it did travel, in the header


def test_close_fails_a_call_it_cut_short(rest_transport: Make, adminapi: AdminApi) -> None:
    session = Session(rest_transport(page_size=5, prefetch=False))
    result = session.invoke("Get-Mailbox", ResultSize="Unlimited")
    objects = iter(result)
    taken = [next(objects) for _ in range(3)]
    threading.Thread(target=session.close).start()
    with pytest.raises(TransportError, match="closed while running Get-Mailbox"):
        list(objects)
    assert result.output == taken
