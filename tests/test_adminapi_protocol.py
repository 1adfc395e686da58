"""The admin API's wire format without I/O: parameters in, objects, errors and warnings out."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pswrap import NotSupportedByTransport, PSObject, Secret, SecureString
from pswrap.objects import PSDateTime, PSEnum, PSTimeSpan, Version
from pswrap.transports import adminapi
from pswrap.transports.base import Invocation
from pswrap.verbs import is_read_only, verb_of

# --- requests ---------------------------------------------------------------------------------


class Color(enum.Enum):
    Red = 1


def test_parameters_are_encoded_as_the_api_binds_them() -> None:
    when = PSDateTime(2024, 5, 6, 7, 8, 9, 123456, dt.timezone.utc, nanosecond=700)
    encoded = adminapi.encode_parameters(
        "Set-Mailbox",
        {
            "Identity": "bob",
            "ResultSize": "Unlimited",
            "RecipientLimits": 500,
            "Ratio": 0.5,
            "Price": Decimal("1.10"),
            "HiddenFromAddressListsEnabled": True,
            "Force": True,
            "Confirm": False,
            "Type": PSEnum(4, "SharedMailbox"),
            "Color": Color.Red,
            "EmailAddresses": {"Add": ["smtp:a@contoso.com"], "Remove": ("smtp:b@contoso.com",)},
            "Nested": {"Outer": {"Inner": 1}},
            "Aliases": ["a", "b"],
            "Start": when,
            "Day": dt.date(2024, 5, 6),
            "Naive": dt.datetime(2024, 5, 6, 7, 8, 9),
            "RetainDeletedItemsFor": dt.timedelta(days=30, seconds=1),
            "Guid": uuid.UUID(int=5),
            "Version": Version(1, 2, 3),
            "Photo": b"\x00\x01\xff",
            "Nothing": None,
        },
    )
    assert encoded == {
        "Identity": "bob",
        "ResultSize": "Unlimited",
        "RecipientLimits": 500,
        "Ratio": 0.5,
        "Price": "1.10",
        "HiddenFromAddressListsEnabled": True,
        "Force": True,
        "Confirm": False,
        "Type": "SharedMailbox",
        "Color": "Red",
        "EmailAddresses": {
            "@odata.type": "#Exchange.GenericHashTable",
            "Add": ["smtp:a@contoso.com"],
            "Remove": ["smtp:b@contoso.com"],
        },
        "Nested": {
            "@odata.type": "#Exchange.GenericHashTable",
            "Outer": {"@odata.type": "#Exchange.GenericHashTable", "Inner": 1},
        },
        "Aliases": ["a", "b"],
        "Start": "2024-05-06T07:08:09.1234567+00:00",
        "Day": "2024-05-06",
        "Naive": "2024-05-06T07:08:09",
        "RetainDeletedItemsFor": "30.00:00:01",
        "Guid": "00000000-0000-0000-0000-000000000005",
        "Version": "1.2.3",
        "Photo": {"@odata.type": "#Exchange.ByteArrayType", "Data": "AAH/"},
        "Nothing": None,
    }
    json.dumps(encoded, allow_nan=False)  # all of it is JSON


def test_the_body_always_carries_a_parameters_object() -> None:
    body = adminapi.request_body(Invocation("Get-AcceptedDomain"))
    assert body == {"CmdletInput": {"CmdletName": "Get-AcceptedDomain", "Parameters": {}}}
    module_qualified = adminapi.request_body(Invocation("ExchangeOnlineManagement\\Get-Mailbox"))
    assert module_qualified["CmdletInput"]["CmdletName"] == "Get-Mailbox"


@pytest.mark.parametrize(
    ("value", "what", "words"),
    [
        (Secret("hunter2-canary", "password"), "SecureString", "local transport"),
        (SecureString("hunter2-canary"), "SecureString", "local transport"),
        (object(), "object", "string, number, bool"),
        (PSObject({"Name": "x"}, type_names=["Mailbox"]), "object parameter", "Identity=mailbox.Identity"),
    ],
)
def test_values_the_api_cannot_carry_are_refused_naming_the_parameter(
    value: object, what: str, words: str
) -> None:
    with pytest.raises(NotSupportedByTransport) as caught:
        adminapi.encode_parameters("Set-Mailbox", {"Password": value})
    assert caught.value.what == what and caught.value.transport == "rest"
    assert "Set-Mailbox parameter 'Password'" in str(caught.value) and words in str(caught.value)
    assert "hunter2-canary" not in str(caught.value)


def test_a_psobject_with_a_value_or_text_is_sent_as_that() -> None:
    wrapped = PSObject(value="bob")
    texted = PSObject(to_string="CN=bob,OU=contoso")
    encoded = adminapi.encode_parameters("Get-Mailbox", {"A": wrapped, "B": texted})
    assert encoded == {"A": "bob", "B": "CN=bob,OU=contoso"}


def test_confirm_true_is_refused_and_nan_is_not_json() -> None:
    with pytest.raises(NotSupportedByTransport, match="cannot ask for confirmation") as caught:
        adminapi.encode_parameters("Remove-Mailbox", {"Confirm": True})
    assert "Confirm=False" in str(caught.value)
    with pytest.raises(ValueError, match="'Ratio'"):
        adminapi.encode_parameters("Set-Thing", {"Ratio": float("nan")})
    with pytest.raises(ValueError, match="keys must be strings"):
        adminapi.encode_parameters("Set-Thing", {"Table": {1: "x"}})


@pytest.mark.parametrize(
    ("invocation", "what", "words"),
    [
        (Invocation("Get-Mailbox | Select Name", is_script=True), "script", "local transport"),
        (Invocation("Get-Mailbox; Get-User"), "command", "not a cmdlet name"),
        (Invocation("Get-Mailbox", arguments=["bob"]), "positional arguments", "Identity=…"),
        (Invocation("Get-Mailbox", input=["bob"]), "pipeline input", "as parameters"),
    ],
)
def test_what_is_not_a_single_named_cmdlet_is_refused(invocation: Invocation, what: str, words: str) -> None:
    with pytest.raises(NotSupportedByTransport) as caught:
        adminapi.request_body(invocation)
    assert caught.value.what == what and words in str(caught.value)


def test_result_size_anchor_page_size() -> None:
    assert adminapi.result_size({"resultsize": 7}) == 7
    assert adminapi.result_size({"ResultSize": "25"}) == 25
    assert adminapi.result_size({"ResultSize": "Unlimited"}) is None
    assert adminapi.result_size({}) is None
    tid = "6babcaad-604b-40ac-a9d7-9fd97c0b779f"
    assert adminapi.anchor_mailbox(tid) == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tid}"
    assert (
        adminapi.anchor_mailbox(None, "contoso.onmicrosoft.com")
        == "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com"
    )
    assert (
        adminapi.invoke_path("contoso.onmicrosoft.com")
        == "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand"
    )
    for bad in (0, 1001, True, "10"):
        with pytest.raises(ValueError, match="1 to 1000"):
            adminapi.check_page_size(bad)


def test_read_verbs() -> None:
    assert verb_of("Get-Mailbox") == "Get" and verb_of("get-mailbox") == "Get" and verb_of("Mailbox") == ""
    for read in ("Get-Mailbox", "Test-MailFlow", "Search-UnifiedAuditLog", "Export-QuarantineMessage"):
        assert is_read_only(read)
    for write in ("Set-Mailbox", "New-Mailbox", "Remove-Mailbox", "Enable-Mailbox", "Start-HistoricalSearch"):
        assert not is_read_only(write)
    assert not is_read_only("Search-Mailbox", ["DeleteContent"])


# --- answers ----------------------------------------------------------------------------------


def test_objects_are_typed_from_their_annotations_which_are_removed() -> None:
    page = adminapi.read_page(
        json.dumps(
            {
                "@odata.context": "https://x/adminapi/beta/t/$metadata#Collection(Exchange.GenericHashTable)",
                "value": [
                    {
                        "Guid@data.type": "System.Guid",
                        "Guid": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                        "WhenCreated@data.type": "System.DateTime",
                        "WhenCreated": "2021-03-01T10:20:30.1234567+00:00",
                        "Old@odata.type": "#DateTimeOffset",
                        "Old": "/Date(86400000)/",
                        "Never@data.type": "System.Nullable`1[[System.DateTime, mscorlib]]",
                        "Never": None,
                        "Size@odata.type": "#Int64",
                        "Size": "9007199254740993",
                        "Count@data.type": "System.Int32",
                        "Count": 3,
                        "Ids@odata.type": "#Collection(Guid)",
                        "Ids": ["00000000-0000-0000-0000-000000000001", None],
                        "Addresses@odata.type": "#Collection(String)",
                        "Addresses@data.type": "Microsoft.Exchange.Data.ProxyAddressCollection",
                        "Addresses": ["SMTP:a@b.c"],
                        "Keep@data.type": "Microsoft.Exchange.Data.EnhancedTimeSpan",
                        "Keep": "14.00:00:00",
                        "Audit": "90.00:00:00",
                        "Span@odata.type": "#Duration",
                        "Span": "PT1H30M",
                        "Flag@data.type": "System.Boolean",
                        "Flag": "True",
                        "Price@data.type": "System.Decimal",
                        "Price": "1.10",
                        "Blob@odata.type": "#Binary",
                        "Blob": "AAH/",
                        "Version@data.type": "System.Version",
                        "Version": "15.20.1.2",
                        "Quota@data.type": "Microsoft.Exchange.Data.Unlimited`1[[Microsoft.Exchange.Data.ByteQuantifiedSize]]",
                        "Quota": "99 GB (106,300,440,576 bytes)",
                        "Type@data.type": "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
                        "Type": "UserMailbox",
                        "Broken@data.type": "System.Guid",
                        "Broken": "not-a-guid",
                        "Nested": {
                            "Inner@data.type": "System.Guid",
                            "Inner": "00000000-0000-0000-0000-000000000002",
                        },
                        "List": [{"A": 1}, {"B": [2]}],
                    }
                ],
            }
        ).encode()
    )
    (raw,) = page.objects()
    obj = adminapi.convert(raw)
    assert isinstance(obj, PSObject) and obj.type_names == ()
    assert obj.Guid == uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert obj.WhenCreated == PSDateTime(2021, 3, 1, 10, 20, 30, 123456, dt.timezone.utc, nanosecond=700)
    assert obj.WhenCreated.nanosecond == 700
    assert obj.Old == dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)
    assert obj.Never is None
    assert obj.Size == 9007199254740993 and obj.Count == 3
    assert obj.Ids == [uuid.UUID(int=1), None]
    assert obj.Addresses == ["SMTP:a@b.c"]
    assert obj.Keep == PSTimeSpan(days=14) and isinstance(obj.Keep, PSTimeSpan)
    assert obj.Audit == "90.00:00:00"  # not annotated: the API's text
    assert obj.Span == PSTimeSpan(hours=1, minutes=30)
    assert obj.Flag is True and obj.Price == Decimal("1.10") and obj.Blob == b"\x00\x01\xff"
    assert obj.Version == Version(15, 20, 1, 2)
    assert obj.Quota == "99 GB (106,300,440,576 bytes)" and obj.Type == "UserMailbox"
    assert obj.Broken == "not-a-guid"  # an annotation that does not fit: kept as sent
    assert obj.Nested.Inner == uuid.UUID(int=2)
    assert obj.List[0].A == 1 and obj.List[1].B == [2]
    assert not any("@" in key for key in obj)
    assert page.next_link is None and page.warnings == [] and page.context.endswith("GenericHashTable)")


def test_an_object_keeps_the_type_names_the_api_gives_it() -> None:
    typed = adminapi.convert(
        {"@data.type": "Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain", "A": 1}
    )
    assert typed.type_names == ("Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",)
    assert typed.is_a("Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain")
    generic = adminapi.convert({"@odata.type": "#Exchange.GenericHashTable", "A": 1})
    assert generic.type_names == () and dict(generic) == {"A": 1}
    assert adminapi.convert(["a", 1, None]) == ["a", 1, None]


@given(st.integers(min_value=-(10**17), max_value=10**17))
@settings(max_examples=60)
def test_timespans_read_back_exactly(ticks: int) -> None:
    span = PSTimeSpan(ticks=ticks)
    assert adminapi.parse_timespan(str(span)).ticks == ticks


def test_warnings_come_from_the_body_and_the_header_once_each() -> None:
    page = adminapi.read_page(
        b'{"@adminapi.warnings": ["first", "second"], "value": [], "@odata.nextLink": "https://h/next"}',
        {"x-warnings": "second<eow>third<eow> <eow>"},
    )
    assert page.warnings == ["first", "second", "third"]
    assert page.next_link is None and page.next_link_hint == "https://h/next"  # final after the objects
    assert page.items == [] and page.next_link == "https://h/next"
    assert adminapi.read_page(b"\xef\xbb\xbf" + b'{"value": {"A": 1}}').items == [{"A": 1}]
    with pytest.raises(ValueError):
        adminapi.read_page(b"<html>")


def test_pages_are_read_lazily_object_by_object() -> None:
    text = (
        '{"@odata.context": "c", "value": [{"A": 1}, {"B": {"@odata.nextLink": "https://wrong/hint"}}], '
        '"@adminapi.warnings": ["late"], "@adminapi.errors": ["failed one"]}'
    )
    page = adminapi.read_page(text)
    assert page.context == "c" and page.warnings == [] and page.next_link_hint == "https://wrong/hint"
    objects = page.objects()
    assert next(objects) == {"A": 1}
    assert page.warnings == []  # not read yet
    assert list(objects) == [{"B": {"@odata.nextLink": "https://wrong/hint"}}]
    assert page.next_link is None  # the hint was not the page's link: it is not followed
    assert page.warnings == ["late"] and page.errors == ["failed one"]
    early = adminapi.read_page('{"@odata.nextLink": "https://h/2", "value": [1, 2]}')
    assert early.next_link == early.next_link_hint == "https://h/2" and early.items == [1, 2]
    broken = adminapi.read_page('{"value": [{"A": 1}, {"B": ').objects()
    assert next(broken) == {"A": 1}
    with pytest.raises(ValueError):
        next(broken)
    assert adminapi.read_page("{}").items == [] and adminapi.read_page('{"value": null}').items == []


# --- failures ---------------------------------------------------------------------------------


def _error(details: object = None, inner: object = None, code: str = "NotFound") -> bytes:
    error: dict[str, object] = {"code": code, "message": "Error executing cmdlet"}
    if details is not None:
        error["details"] = details
    if inner is not None:
        error["innererror"] = inner
    return json.dumps({"error": error}).encode()


def test_the_details_message_becomes_an_error_record() -> None:
    record = adminapi.error_record(
        404,
        _error(
            [
                {
                    "message": "ErrorNotFound|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
                    "The operation couldn't be performed because object 'bob|x' couldn't be found.",
                    "target": "bob|x",
                }
            ]
        ),
        cmdlet="Get-Mailbox",
    )
    assert record is not None
    assert record.message == "The operation couldn't be performed because object 'bob|x' couldn't be found."
    assert record.error_id == "ErrorNotFound"
    assert record.exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert record.category == "ObjectNotFound" and record.target == "bob|x"
    assert record.activity == "Get-Mailbox" and record.reason == "ManagementObjectNotFoundException"


def test_an_empty_error_id_the_category_code_and_the_inner_exception() -> None:
    record = adminapi.error_record(
        400, _error([{"message": "|System.ArgumentException|Bad value.", "code": 5}]), cmdlet="X-Y"
    )
    assert record is not None and record.error_id == "NotFound" and record.category == "InvalidArgument"
    inner = adminapi.error_record(
        500,
        _error(
            inner={"internalexception": {"message": "Boom.", "type": "System.InvalidOperationException"}},
            code="InternalServerError",
        ),
        cmdlet="X-Y",
    )
    assert (
        inner is not None
        and inner.message == "Boom."
        and inner.exception_type == "System.InvalidOperationException"
    )
    assert inner.category == "NotSpecified" and inner.error_id == "InternalServerError"
    bare = adminapi.error_record(409, b'{"error": {"code": "Conflict"}}', cmdlet="New-Thing")
    assert (
        bare is not None
        and bare.message == "New-Thing failed (HTTP 409, Conflict)"
        and bare.category == "ResourceExists"
    )
    assert adminapi.error_record(503, b"Service Unavailable", cmdlet="X-Y") is None
    assert adminapi.error_record(403, b"\x00" * 16, cmdlet="X-Y") is None
    expired = adminapi.error_record(
        400,
        _error([{"message": "||Expired or Invalid pagination request. Default Expiry time is 00:30:00"}]),
        cmdlet="Get-Mailbox",
    )
    assert expired is not None and "run the command again" in (expired.recommended_action or "")


def test_diagnostics_retry_after_and_the_concurrency_text() -> None:
    diagnostics = adminapi.parse_diagnostics(
        '2000008;reason="The token has expired.";error_category="invalid_token"'
    )
    assert diagnostics == adminapi.Diagnostics("2000008", "The token has expired.", "invalid_token")
    assert not adminapi.parse_diagnostics(None) and not adminapi.parse_diagnostics("")
    assert adminapi.parse_retry_after("30") == 30.0 and adminapi.parse_retry_after("1.5") == 1.5
    now = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.timezone.utc)
    assert adminapi.parse_retry_after("Mon, 01 Jan 2024 00:00:42 GMT", now) == 42.0
    assert adminapi.parse_retry_after("soon") is None and adminapi.parse_retry_after(None) is None
    assert adminapi.is_concurrency_limit(
        b"You have reached the maximum number of concurrent requests per tenant."
    )
    assert not adminapi.is_concurrency_limit(b'{"error": {"code": "TooManyRequests"}}')
