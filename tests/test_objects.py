"""The object model: what a user holds after any transport returned."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
from decimal import Decimal

import pytest

from pswrap import (
    ErrorRecord,
    PSDateTime,
    PSEnum,
    PSObject,
    PSTimeSpan,
    Secret,
    SecureString,
    Version,
    to_jsonable,
)


def mailbox() -> PSObject:
    return PSObject(
        {"DisplayName": "Bob", "PrimarySmtpAddress": "bob@contoso.com", "Display name": "spaced"},
        {"RecipientTypeDetails": "UserMailbox"},
        type_names=["Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox", "System.Object"],
        to_string="Bob",
    )


def test_psobject_is_a_read_only_mapping_with_attribute_access() -> None:
    mbx = mailbox()
    assert mbx.PrimarySmtpAddress == "bob@contoso.com"
    assert mbx["Display name"] == "spaced"
    assert mbx.primarysmtpaddress == "bob@contoso.com"  # case-insensitive, as in PowerShell
    assert mbx["RECIPIENTTYPEDETAILS"] == "UserMailbox"
    assert "displayname" in mbx
    assert list(mbx) == ["DisplayName", "PrimarySmtpAddress", "Display name", "RecipientTypeDetails"]
    assert mbx.type_name == "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox"
    assert mbx.is_a("Microsoft.Exchange.Data.Directory.Management.Mailbox")
    assert str(mbx) == "Bob"
    assert dict(mbx.extended) == {"RecipientTypeDetails": "UserMailbox"}
    assert "RecipientTypeDetails" not in mbx.adapted
    with pytest.raises(AttributeError, match="no member 'Nope'"):
        _ = mbx.Nope
    with pytest.raises(AttributeError):
        mbx.DisplayName = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        mbx["DisplayName"] = "x"  # type: ignore[index]


def test_psobject_compares_by_content_and_prints_sensibly() -> None:
    assert mailbox() == mailbox()
    assert hash(mailbox()) == hash(mailbox())
    other = PSObject({"DisplayName": "Alice"}, type_names=["X"])
    assert mailbox() != other
    text = repr(mailbox())
    assert text.startswith("<Mailbox 'Bob'") and "PrimarySmtpAddress='bob@contoso.com'" in text


def test_extended_members_shadow_adapted_ones() -> None:
    obj = PSObject({"Name": "adapted"}, {"Name": "extended"})
    assert obj.Name == "extended"
    assert obj.adapted["Name"] == "adapted"


def test_datetime_keeps_ticks() -> None:
    value = PSDateTime(2024, 5, 6, 7, 8, 9, 123456, dt.timezone(dt.timedelta(hours=2)), nanosecond=700)
    assert value.isoformat() == "2024-05-06T07:08:09.1234567+02:00"
    assert value != value.replace(microsecond=123456)  # replace() drops the extra digit: not equal
    assert value.ticks_fraction == 1234567
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value).nanosecond == 700
    assert PSDateTime(2024, 1, 1) == dt.datetime(2024, 1, 1)


def test_timespan_keeps_ticks_and_prints_like_dotnet() -> None:
    span = PSTimeSpan(ticks=36_000_000_005 + 864_000_000_000)
    assert str(span) == "1.01:00:00.0000005"
    assert span.nanoseconds == 500
    assert str(PSTimeSpan(ticks=-10_000_000)) == "-00:00:01"
    assert PSTimeSpan(days=1) == dt.timedelta(days=1)
    assert pickle.loads(pickle.dumps(span)).ticks == span.ticks


def test_version_compares_like_dotnet() -> None:
    assert Version.parse("1.2") < Version.parse("1.2.0") < Version.parse("1.10")
    assert str(Version.parse("3.1.0")) == "3.1.0"
    with pytest.raises(ValueError):
        Version.parse("1")


def test_enum_is_an_int_and_a_name() -> None:
    color = PSEnum(12, "Red", ("System.ConsoleColor", "System.Enum"))
    assert color == 12 and str(color) == "Red" and color.type_name == "System.ConsoleColor"
    flags = PSEnum(3, "Read, Write", ("System.IO.FileAccess",))
    assert flags.names == ("Read", "Write")


def test_secrets_never_show() -> None:
    canary = "canary-secret-5f1e0c"
    for secret in (Secret(canary, "client secret"), SecureString(canary)):
        assert canary not in str(secret) and canary not in repr(secret) and canary not in f"{secret}"
        assert canary not in json.dumps(to_jsonable({"s": secret}))
        assert secret.reveal() == canary
        with pytest.raises(TypeError):
            pickle.dumps(secret)


def test_secure_string_from_local_clixml_reveals_utf16le() -> None:
    secret = SecureString.from_clixml("hunter2".encode("utf-16-le").hex())
    assert "hunter2" not in repr(secret)
    assert secret.reveal() == "hunter2"


def test_json_mapping() -> None:
    value = {
        "obj": mailbox(),
        "when": PSDateTime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "span": PSTimeSpan(ticks=10_000_000),
        "plain span": dt.timedelta(days=1, microseconds=5),
        "money": Decimal("1.10"),
        "bytes": b"\x00\x01",
        "nan": float("nan"),
        "version": Version(1, 2, 3),
        "enum": PSEnum(1, "One"),
        1: "int key",
    }
    data = json.loads(json.dumps(to_jsonable(value)))
    assert data["obj"]["PrimarySmtpAddress"] == "bob@contoso.com"
    assert data["when"] == "2024-01-02T03:04:05+00:00"
    assert data["span"] == "00:00:01"
    assert data["plain span"] == "1.00:00:00.0000050"
    assert data["money"] == "1.10"
    assert data["bytes"] == "AAE="
    assert data["nan"] == "NaN"
    assert data["version"] == "1.2.3"
    assert data["enum"] == "One"
    assert data["1"] == "int key"


def test_records_are_typed_and_jsonable() -> None:
    record = ErrorRecord(
        "Mailbox not found", category="ObjectNotFound", error_id="X,Get-Mailbox", target="bob"
    )
    assert str(record) == "Mailbox not found"
    data = to_jsonable(record)
    assert data["stream"] == "error" and data["category"] == "ObjectNotFound" and data["target"] == "bob"
