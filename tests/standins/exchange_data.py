"""Deterministic Exchange Online recipients and domains, shared by every stand-in that serves them.

Mailbox ``i`` (0-based) is always the same mailbox: alias ``user0000007``, the same GUIDs, dates,
addresses and flags, with the property names and kinds of a real ``Get-Mailbox`` object (compare
``../shared/corpus/clixml``: Exchange's ``Mailbox``/``AcceptedDomain`` objects). A field list
(:data:`MAILBOX_FIELDS`, :data:`RECIPIENT_FIELDS`, :data:`ACCEPTED_DOMAIN_FIELDS`) says each property's
kind and .NET type once; the values come from :func:`mailbox_values` & co. as plain Python values
(``UUID``, aware ``PSDateTime``, ``PSTimeSpan``, ``list``, enum names, formatted sizes).

Two renderings of the same values:

- :func:`to_rest` — the admin API's JSON item, with ``Name@data.type`` / ``Name@odata.type``
  annotations where Exchange sends them (the admin-API stand-in serves this);
- :func:`rest_expected` — the Python values a faithful client of the admin API makes of that item
  (typed where annotated, text where the API carries only text).

A pwsh stand-in renders the same values as CLIXML from :attr:`Field.kind`, :attr:`Field.dotnet_type`
and :attr:`Field.enum_values` (quotas are ``Unlimited`1`` objects whose ToString is the text; enums
carry their number). :class:`MailboxStore` is a tenant's mutable state: lookups by any identity,
``-Filter`` basics (OPATH), and ``Set-Mailbox`` changes.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pswrap.objects import PSDateTime, PSTimeSpan

TENANT_DOMAIN = "contoso.onmicrosoft.com"

_MSCORLIB = "mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089"
_EXCHANGE_DATA = "Microsoft.Exchange.Data, Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
_QUOTA_TYPE = (
    f"Microsoft.Exchange.Data.Unlimited`1[[Microsoft.Exchange.Data.ByteQuantifiedSize, {_EXCHANGE_DATA}]]"
)
_UNLIMITED_INT = f"Microsoft.Exchange.Data.Unlimited`1[[System.Int32, {_MSCORLIB}]]"
_STRING_MVP = f"Microsoft.Exchange.Data.MultiValuedProperty`1[[System.String, {_MSCORLIB}]]"
_NULLABLE_DATETIME = f"System.Nullable`1[[System.DateTime, {_MSCORLIB}]]"

#: ``Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails`` (a flags enum; the ones used).
RECIPIENT_TYPE_DETAILS = {
    "UserMailbox": 1,
    "SharedMailbox": 4,
    "RoomMailbox": 16,
    "EquipmentMailbox": 32,
    "MailContact": 64,
}
#: ``Microsoft.Exchange.Data.Directory.Recipient.RecipientType``.
RECIPIENT_TYPE = {"UserMailbox": 2, "MailContact": 4}
ARCHIVE_STATUS = {"None": 0, "Active": 1}
ACCEPTED_DOMAIN_TYPE = {"Authoritative": 0, "ExternalRelay": 1, "InternalRelay": 2}


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: field lists are constants
class Field:
    """One property: its ``kind`` (string, bool, int, guid, datetime, timespan, enum, quota, strings,
    identity), its .NET type in Exchange, and how the admin API annotates it: ``annotation`` is
    ``"data"`` (``Name@data.type``: the .NET type), ``"odata"`` (``Name@odata.type``: ``odata_type``),
    ``"both"`` or ``None`` (no annotation: the client sees plain JSON)."""

    name: str
    kind: str
    dotnet_type: str
    annotation: str | None = None
    odata_type: str | None = None
    enum_values: Mapping[str, int] | None = None


def _f(
    name: str,
    kind: str,
    dotnet: str,
    annotation: str | None = None,
    odata: str | None = None,
    enum: Mapping[str, int] | None = None,
) -> Field:
    return Field(name, kind, dotnet, annotation, odata, enum)


_BOOLEAN_NAMES = (
    "AccountDisabled",
    "AntispamBypassEnabled",
    "DeliverToMailboxAndForward",
    "DowngradeHighPriorityMessagesEnabled",
    "HiddenFromAddressListsEnabled",
    "IsInactiveMailbox",
    "IsMailboxEnabled",
    "IsResource",
    "IsShared",
    "LitigationHoldEnabled",
    "MessageCopyForSentAsEnabled",
    "MessageCopyForSendOnBehalfEnabled",
    "MessageTrackingReadStatusEnabled",
    "ModerationEnabled",
    "RequireSenderAuthenticationEnabled",
    "RetentionHoldEnabled",
    "SingleItemRecoveryEnabled",
    "UseDatabaseQuotaDefaults",
    "UseDatabaseRetentionDefaults",
    "AuditEnabled",
    "CalendarRepairDisabled",
    "ElcProcessingDisabled",
    "EmailAddressPolicyEnabled",
    "IsDirSynced",
    "IsSoftDeletedByRemove",
    "MessageRecallProcessingEnabled",
)
_QUOTAS = {
    "ProhibitSendQuota": "99 GB (106,300,440,576 bytes)",
    "ProhibitSendReceiveQuota": "100 GB (107,374,182,400 bytes)",
    "IssueWarningQuota": "98 GB (105,226,698,752 bytes)",
    "RecoverableItemsQuota": "30 GB (32,212,254,720 bytes)",
    "ArchiveQuota": "100 GB (107,374,182,400 bytes)",
    "MaxSendSize": "35 MB (36,700,160 bytes)",
    "MaxReceiveSize": "36 MB (37,748,736 bytes)",
    "RulesQuota": "256 KB (262,144 bytes)",
}

MAILBOX_FIELDS: tuple[Field, ...] = (
    _f("Database", "identity", "Microsoft.Exchange.Data.Directory.ADObjectId"),
    _f("ServerName", "string", "System.String"),
    _f("UseDatabaseRetentionDefaults", "bool", "System.Boolean"),
    _f("RetainDeletedItemsFor", "timespan", "Microsoft.Exchange.Data.EnhancedTimeSpan", "data"),
    _f("AuditLogAgeLimit", "timespan", "Microsoft.Exchange.Data.EnhancedTimeSpan"),
    *(
        _f(name, "bool", "System.Boolean")
        for name in _BOOLEAN_NAMES
        if name != "UseDatabaseRetentionDefaults"
    ),
    *(_f(name, "quota", _QUOTA_TYPE) for name in _QUOTAS),
    _f("RecipientLimits", "string", _UNLIMITED_INT),
    _f("MaxSafeSenders", "int", "System.Nullable`1[[System.Int32]]", "odata", "#Int32"),
    _f("ArchiveGuid", "guid", "System.Guid", "data"),
    _f("ArchiveName", "strings", _STRING_MVP, "odata", "#Collection(String)"),
    _f(
        "ArchiveStatus",
        "enum",
        "Microsoft.Exchange.Data.Directory.Recipient.ArchiveState",
        "data",
        enum=ARCHIVE_STATUS,
    ),
    _f("LitigationHoldDate", "datetime", _NULLABLE_DATETIME, "data"),
    _f(
        "LitigationHoldDuration",
        "string",
        _UNLIMITED_INT.replace("System.Int32", "Microsoft.Exchange.Data.EnhancedTimeSpan"),
    ),
    _f("ExchangeGuid", "guid", "System.Guid", "data"),
    _f("AuditOwner", "strings", _STRING_MVP, "both", "#Collection(String)"),
    _f("GrantSendOnBehalfTo", "strings", _STRING_MVP, "odata", "#Collection(String)"),
    _f(
        "Languages",
        "strings",
        "Microsoft.Exchange.Data.MultiValuedProperty`1[[System.Globalization.CultureInfo]]",
        "odata",
        "#Collection(String)",
    ),
    _f("UsageLocation", "string", "System.String"),
    _f(
        "RecipientTypeDetails",
        "enum",
        "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
        "data",
        enum=RECIPIENT_TYPE_DETAILS,
    ),
    _f(
        "RecipientType",
        "enum",
        "Microsoft.Exchange.Data.Directory.Recipient.RecipientType",
        "data",
        enum=RECIPIENT_TYPE,
    ),
    _f("WhenMailboxCreated", "datetime", "System.DateTime", "data"),
    _f("WhenSoftDeleted", "datetime", _NULLABLE_DATETIME, "data"),
    _f("Alias", "string", "System.String"),
    *(_f(f"CustomAttribute{n}", "string", "System.String") for n in range(1, 16)),
    _f("DisplayName", "string", "System.String"),
    _f(
        "EmailAddresses",
        "strings",
        "Microsoft.Exchange.Data.ProxyAddressCollection",
        "both",
        "#Collection(String)",
    ),
    _f("Office", "string", "System.String"),
    _f("PrimarySmtpAddress", "string", "Microsoft.Exchange.Data.SmtpAddress"),
    _f("SamAccountName", "string", "System.String"),
    _f("SimpleDisplayName", "string", "System.String"),
    _f("UserPrincipalName", "string", "System.String"),
    _f("MicrosoftOnlineServicesID", "string", "Microsoft.Exchange.Data.SmtpAddress"),
    _f("WindowsEmailAddress", "string", "Microsoft.Exchange.Data.SmtpAddress"),
    _f("ExternalDirectoryObjectId", "string", "System.String"),
    _f("RetentionComment", "string", "System.String"),
    _f("RetentionUrl", "string", "System.String"),
    _f("ExchangeVersion", "string", "Microsoft.Exchange.Data.ExchangeObjectVersion"),
    _f("Name", "string", "System.String"),
    _f("DistinguishedName", "string", "System.String"),
    _f("Identity", "identity", "Microsoft.Exchange.Data.Directory.ADObjectId"),
    _f("Id", "identity", "Microsoft.Exchange.Data.Directory.ADObjectId"),
    _f("Guid", "guid", "System.Guid", "data"),
    _f("ObjectClass", "strings", _STRING_MVP, "odata", "#Collection(String)"),
    _f("OrganizationId", "identity", "Microsoft.Exchange.Data.Directory.OrganizationId"),
    _f("WhenChanged", "datetime", "System.DateTime", "data"),
    _f("WhenCreated", "datetime", "System.DateTime", "data"),
    _f("WhenChangedUTC", "datetime", _NULLABLE_DATETIME, "data"),
    _f("WhenCreatedUTC", "datetime", _NULLABLE_DATETIME, "data"),
    _f("IsValid", "bool", "System.Boolean"),
    _f("ObjectState", "enum", "Microsoft.Exchange.Data.ObjectState", enum={"Unchanged": 0}),
)

_RECIPIENT_NAMES = (
    "ArchiveGuid",
    "ArchiveStatus",
    "RecipientTypeDetails",
    "RecipientType",
    "Alias",
    "CustomAttribute1",
    "DisplayName",
    "EmailAddresses",
    "HiddenFromAddressListsEnabled",
    "PrimarySmtpAddress",
    "ExternalDirectoryObjectId",
    "ExchangeGuid",
    "ExchangeVersion",
    "Name",
    "DistinguishedName",
    "Identity",
    "Id",
    "Guid",
    "OrganizationId",
    "WhenChanged",
    "WhenCreated",
    "WhenChangedUTC",
    "WhenCreatedUTC",
    "IsValid",
)
_BY_NAME = {field.name: field for field in MAILBOX_FIELDS}
RECIPIENT_FIELDS: tuple[Field, ...] = tuple(_BY_NAME[name] for name in _RECIPIENT_NAMES)

ACCEPTED_DOMAIN_FIELDS: tuple[Field, ...] = (
    _f("DomainName", "string", "Microsoft.Exchange.Data.SmtpDomainWithSubdomains"),
    _f("CatchAllRecipientID", "identity", "Microsoft.Exchange.Data.Directory.ADObjectId"),
    _f(
        "DomainType",
        "enum",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomainType",
        "data",
        enum=ACCEPTED_DOMAIN_TYPE,
    ),
    _f("MatchSubDomains", "bool", "System.Boolean"),
    _f("AddressBookEnabled", "bool", "System.Boolean"),
    _f("Default", "bool", "System.Boolean"),
    _f("EmailOnly", "bool", "System.Boolean"),
    _f("ExternallyManaged", "bool", "System.Boolean"),
    _f(
        "AuthenticationType",
        "enum",
        "System.Nullable`1[[Microsoft.Exchange.Data.Directory.AuthenticationType]]",
    ),
    _f("PendingRemoval", "bool", "System.Boolean"),
    _f("PendingCompletion", "bool", "System.Boolean"),
    _f("OutboundOnly", "bool", "System.Boolean"),
    _f("InitialDomain", "bool", "System.Boolean"),
    _f("ExchangeVersion", "string", "Microsoft.Exchange.Data.ExchangeObjectVersion"),
    _f("Name", "string", "System.String"),
    _f("DistinguishedName", "string", "System.String"),
    _f("Identity", "identity", "Microsoft.Exchange.Data.Directory.ADObjectId"),
    _f("Guid", "guid", "System.Guid", "data"),
    _f("ObjectClass", "strings", _STRING_MVP, "odata", "#Collection(String)"),
    _f("WhenChanged", "datetime", "System.DateTime", "data"),
    _f("WhenCreated", "datetime", "System.DateTime", "data"),
    _f("WhenChangedUTC", "datetime", _NULLABLE_DATETIME, "data"),
    _f("WhenCreatedUTC", "datetime", _NULLABLE_DATETIME, "data"),
    _f("IsValid", "bool", "System.Boolean"),
)
#: The .NET type the admin API names on each accepted domain itself (``@data.type`` of the object).
ACCEPTED_DOMAIN_TYPE_NAME = "Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain"

# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------

_MULTIPLIER = 0x9E3779B97F4A7C15
_MODULUS = 1 << 128
_INVERSE = pow(_MULTIPLIER, -1, _MODULUS)
_OFFSET = 12345
_UTC = _dt.timezone.utc
_PACIFIC = _dt.timezone(_dt.timedelta(hours=-8))
_ZERO_GUID = uuid.UUID(int=0)


def mailbox_guid(index: int) -> uuid.UUID:
    """The ``Guid`` of mailbox ``index`` (invertible: :func:`index_of_guid`)."""
    return uuid.UUID(int=(index * _MULTIPLIER + _OFFSET) % _MODULUS)


def index_of_guid(value: uuid.UUID) -> int:
    """The index whose ``Guid`` (or ``ExchangeGuid``, or ``ExternalDirectoryObjectId``) is ``value``."""
    return ((value.int - _OFFSET) * _INVERSE) % _MODULUS


def alias(index: int) -> str:
    return f"user{index:07d}"


def recipient_type_details(index: int) -> str:
    if index % 25 == 3:
        return "RoomMailbox"
    if index % 10 == 7:
        return "SharedMailbox"
    return "UserMailbox"


def mailbox_values(index: int, domain: str = TENANT_DOMAIN) -> dict[str, Any]:
    """Mailbox ``index``'s properties as plain Python values, in :data:`MAILBOX_FIELDS` order."""
    name = alias(index)
    guid = mailbox_guid(index)
    smtp = f"{name}@{domain}"
    vanity = domain.split(".")[0] + ".com"
    details = recipient_type_details(index)
    day = 1 + index % 28
    created = PSDateTime(2021, 3, day, 10, 20, 30, 123456, _UTC, nanosecond=700)
    changed = PSDateTime(2024, 11, day, 8, 9, 10, 765432, _UTC, nanosecond=100)
    label = domain.split(".")[0].upper()
    values: dict[str, Any] = {
        "Database": "NAMPR01DG001-db001",
        "ServerName": "nampr01mb0001",
        "UseDatabaseRetentionDefaults": index % 3 == 0,
        "RetainDeletedItemsFor": PSTimeSpan(days=14 if index % 5 else 30),
        "AuditLogAgeLimit": PSTimeSpan(days=90),
    }
    for position, flag in enumerate(_BOOLEAN_NAMES):
        if flag != "UseDatabaseRetentionDefaults":
            values[flag] = (index + position) % 3 == 0
    values["IsShared"] = details == "SharedMailbox"
    values["IsResource"] = details == "RoomMailbox"
    values["IsMailboxEnabled"] = True
    values["HiddenFromAddressListsEnabled"] = index % 11 == 5
    values.update(_QUOTAS)
    values.update(
        {
            "RecipientLimits": "500",
            "MaxSafeSenders": None if index % 2 else 1024,
            "ArchiveGuid": uuid.UUID(int=guid.int ^ 0xA5A5) if index % 4 == 0 else _ZERO_GUID,
            "ArchiveName": [f"In-Place Archive - User {index:07d}"] if index % 4 == 0 else [],
            "ArchiveStatus": "Active" if index % 4 == 0 else "None",
            "LitigationHoldDate": None,
            "LitigationHoldDuration": "Unlimited",
            "ExchangeGuid": uuid.UUID(int=guid.int ^ 0xFFFF),
            "AuditOwner": ["Update", "MoveToDeletedItems", "SoftDelete", "HardDelete"],
            "GrantSendOnBehalfTo": [],
            "Languages": ["en-US"] if index % 3 else [],
            "UsageLocation": "United States",
            "RecipientTypeDetails": details,
            "RecipientType": "UserMailbox",
            "WhenMailboxCreated": PSDateTime(2021, 3, day, 2, 21, 0, 0, _PACIFIC),
            "WhenSoftDeleted": None,
            "Alias": name,
        }
    )
    for n in range(1, 16):
        values[f"CustomAttribute{n}"] = f"dept-{index % 7}" if n == 1 else ""
    values.update(
        {
            "DisplayName": f"User {index:07d} Ünïcødé",
            "EmailAddresses": [
                f"SMTP:{smtp}",
                *(f"smtp:{name}.{k}@{vanity}" for k in range(1, 1 + index % 4)),
            ],
            "Office": f"Building {index % 5}",
            "PrimarySmtpAddress": smtp,
            "SamAccountName": f"$K{index:05X}-{guid.hex[:12].upper()}",
            "SimpleDisplayName": "",
            "UserPrincipalName": smtp,
            "MicrosoftOnlineServicesID": smtp,
            "WindowsEmailAddress": smtp,
            "ExternalDirectoryObjectId": str(uuid.UUID(int=guid.int ^ 0xABCDEF)),
            "RetentionComment": "",
            "RetentionUrl": "",
            "ExchangeVersion": "0.20 (15.0.0.0)",
            "Name": name,
            "DistinguishedName": f"CN={name},OU={domain},OU=Microsoft Exchange Hosted Organizations,"
            "DC=NAMPR01A001,DC=prod,DC=outlook,DC=com",
            "Identity": name,
            "Id": name,
            "Guid": guid,
            "ObjectClass": ["top", "person", "organizationalPerson", "user"],
            "OrganizationId": f"NAMPR01A001.prod.outlook.com/Microsoft Exchange Hosted Organizations/{domain} - "
            f"NAMPR01A001.prod.outlook.com/ConfigurationUnits/{domain}/Configuration ({label})",
            "WhenChanged": changed,
            "WhenCreated": created,
            "WhenChangedUTC": changed,
            "WhenCreatedUTC": created,
            "IsValid": True,
            "ObjectState": "Unchanged",
        }
    )
    return values


def recipient_values(index: int, domain: str = TENANT_DOMAIN) -> dict[str, Any]:
    """Mailbox ``index`` as ``Get-Recipient`` shows it (:data:`RECIPIENT_FIELDS`)."""
    values = mailbox_values(index, domain)
    return {field.name: values[field.name] for field in RECIPIENT_FIELDS}


def accepted_domains(domain: str = TENANT_DOMAIN) -> list[dict[str, Any]]:
    """The tenant's accepted domains: its initial ``*.onmicrosoft.com`` domain, a vanity domain, and the
    ``mail.onmicrosoft.com`` routing domain (:data:`ACCEPTED_DOMAIN_FIELDS`)."""
    label = domain.split(".")[0]
    names = [
        (domain, True, False),
        (f"{label}.com", False, True),
        (f"{label}.mail.onmicrosoft.com", False, False),
    ]
    out = []
    for position, (name, initial, default) in enumerate(names):
        created = PSDateTime(2020, 6, 1 + position, 12, 0, 0, 0, _UTC)
        out.append(
            {
                "DomainName": name,
                "CatchAllRecipientID": None,
                "DomainType": "Authoritative",
                "MatchSubDomains": False,
                "AddressBookEnabled": True,
                "Default": default,
                "EmailOnly": False,
                "ExternallyManaged": False,
                "AuthenticationType": "Managed",
                "PendingRemoval": False,
                "PendingCompletion": False,
                "OutboundOnly": False,
                "InitialDomain": initial,
                "ExchangeVersion": "0.20 (15.0.0.0)",
                "Name": name,
                "DistinguishedName": f"CN={name},CN=Accepted Domains,CN=Transport Settings,CN=Configuration,"
                f"CN={domain},CN=ConfigurationUnits,DC=NAMPR01A001,DC=prod,DC=outlook,DC=com",
                "Identity": name,
                "Guid": uuid.UUID(int=(0xACCE97ED << 96) + position),
                "ObjectClass": ["top", "msExchAcceptedDomain"],
                "WhenChanged": created,
                "WhenCreated": created,
                "WhenChangedUTC": created,
                "WhenCreatedUTC": created,
                "IsValid": True,
            }
        )
    return out


# --------------------------------------------------------------------------------------------------
# The admin API's JSON, and what a client makes of it
# --------------------------------------------------------------------------------------------------


def _json(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if field.kind == "guid":
        return str(value)
    if field.kind == "datetime":
        return value.isoformat()
    if field.kind == "timespan":
        return str(value)
    if field.kind == "strings":
        return list(value)
    return value


_plans: dict[tuple[Field, ...], list[tuple[str, tuple[tuple[str, str], ...], str]]] = {}


def _plan(fields: tuple[Field, ...]) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    plan = _plans.get(fields)
    if plan is None:
        plan = []
        for field in fields:
            notes: list[tuple[str, str]] = []
            if field.annotation in ("odata", "both"):
                notes.append((f"{field.name}@odata.type", field.odata_type or ""))
            if field.annotation in ("data", "both"):
                notes.append((f"{field.name}@data.type", field.dotnet_type))
            plan.append((field.name, tuple(notes), field.kind))
        _plans[fields] = plan
    return plan


def to_rest(
    fields: tuple[Field, ...], values: Mapping[str, Any], type_name: str | None = None
) -> dict[str, Any]:
    """An object as ``InvokeCommand`` answers it: JSON values, annotations before their property."""
    item: dict[str, Any] = {}
    if type_name:
        item["@data.type"] = type_name
    for name, notes, kind in _plan(fields):
        for key, note in notes:
            item[key] = note
        value = values[name]
        if value is not None and kind in ("guid", "datetime", "timespan", "strings"):
            value = (
                list(value) if kind == "strings" else value.isoformat() if kind == "datetime" else str(value)
            )
        item[name] = value
    return item


def rest_expected(fields: tuple[Field, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """What a faithful admin-API client returns for :func:`to_rest`'s item: the annotated GUIDs, dates
    and TimeSpans typed; TimeSpans without an annotation, enums and sizes as the text the API sends."""
    out: dict[str, Any] = {}
    for field in fields:
        value = values[field.name]
        if value is not None and field.annotation is None and field.kind in ("guid", "datetime", "timespan"):
            value = _json(field, value)
        elif field.kind == "strings" and value is not None:
            value = list(value)
        out[field.name] = value
    return out


# --------------------------------------------------------------------------------------------------
# A tenant's mailboxes: lookups, filters, changes
# --------------------------------------------------------------------------------------------------


class FilterError(ValueError):
    """An OPATH ``-Filter`` the stand-ins cannot read; ``position`` is where it went wrong."""

    def __init__(self, message: str, position: int = 0) -> None:
        self.position = position
        super().__init__(message)


_ALIAS = re.compile(r"\Auser(\d{7})\Z", re.IGNORECASE)
_DISPLAY = re.compile(r"\AUser (\d{7}) Ünïcødé\Z", re.IGNORECASE)
#: The properties ``Set-Mailbox`` accepts in the stand-ins (and how each is checked).
SETTABLE: dict[str, str] = {
    "DisplayName": "string",
    "HiddenFromAddressListsEnabled": "bool",
    "LitigationHoldEnabled": "bool",
    "SingleItemRecoveryEnabled": "bool",
    "Office": "string",
    "EmailAddresses": "strings",
    "GrantSendOnBehalfTo": "strings",
    "RetainDeletedItemsFor": "timespan",
    "ProhibitSendQuota": "quota",
    **{f"CustomAttribute{n}": "string" for n in range(1, 16)},
}


class MailboxStore:
    """``count`` mailboxes of ``domain`` (generated on demand) and the changes made to them."""

    def __init__(self, count: int = 25, domain: str = TENANT_DOMAIN) -> None:
        self.count = count
        self.domain = domain
        self.changes: dict[int, dict[str, Any]] = {}

    def values(self, index: int) -> dict[str, Any]:
        values = mailbox_values(index, self.domain)
        changed = self.changes.get(index)
        if changed:
            values.update(changed)
        return values

    def recipient_values(self, index: int) -> dict[str, Any]:
        values = self.values(index)
        return {field.name: values[field.name] for field in RECIPIENT_FIELDS}

    def find(self, identity: str) -> list[int]:
        """Indexes of the mailboxes ``identity`` names (alias, name, display name, any SMTP address,
        UPN, GUID, ExchangeGuid, ExternalDirectoryObjectId, distinguished name)."""
        text = identity.strip()
        found: list[int] = []
        candidates: set[int] = set()
        for pattern in (_ALIAS, _DISPLAY):
            match = pattern.match(text)
            if match:
                candidates.add(int(match.group(1)))
        local = text.split("@", 1)[0].removeprefix("smtp:").removeprefix("SMTP:")
        match = _ALIAS.match(local.split(".", 1)[0])
        if match:
            candidates.add(int(match.group(1)))
        if text.upper().startswith("CN="):
            match = _ALIAS.match(text[3:].split(",", 1)[0])
            if match:
                candidates.add(int(match.group(1)))
        try:
            value = uuid.UUID(text)
        except ValueError:
            pass
        else:
            for mask in (0, 0xFFFF, 0xABCDEF):
                candidates.add(index_of_guid(uuid.UUID(int=value.int ^ mask)))
        candidates.update(self.changes)
        wanted = text.lower().removeprefix("smtp:")
        for index in sorted(candidates):
            if 0 <= index < self.count and self._names(index, wanted):
                found.append(index)
        return found

    def _names(self, index: int, wanted: str) -> bool:
        values = self.values(index)
        for key in (
            "Alias",
            "Name",
            "DisplayName",
            "PrimarySmtpAddress",
            "UserPrincipalName",
            "DistinguishedName",
            "ExternalDirectoryObjectId",
        ):
            if str(values[key]).lower() == wanted:
                return True
        if wanted in (str(values["Guid"]), str(values["ExchangeGuid"])):
            return True
        return any(address.lower().split(":", 1)[-1] == wanted for address in values["EmailAddresses"])

    def indexes(self, opath: str | None = None) -> Iterator[int]:
        """Every mailbox index, or those ``opath`` (an OPATH ``-Filter``) selects, in order."""
        test = parse_filter(opath) if opath else None
        for index in range(self.count):
            if test is None or test(self.values(index)):
                yield index

    def set(self, index: int, changes: Mapping[str, Any]) -> list[str]:
        """Apply ``changes`` (already checked) to mailbox ``index``; the names that really changed."""
        current = self.values(index)
        changed = [name for name, value in changes.items() if current.get(name) != value]
        if changed:
            self.changes.setdefault(index, {}).update({name: changes[name] for name in changed})
        return changed


# --- OPATH filters --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<op>-(?:eq|ne|like|notlike|gt|lt|ge|le|and|or|not)\b)"
    r"|'(?P<single>(?:[^']|'')*)'|\"(?P<double>[^\"]*)\"|(?P<variable>\$(?:true|false|null)\b)"
    r"|(?P<number>-?\d+(?:\.\d+)?)\b|(?P<word>[A-Za-z][A-Za-z0-9]*))",
    re.IGNORECASE,
)


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise FilterError(f'Invalid filter syntax. "{text}" at position {position + 1}.', position + 1)
        kind = match.lastgroup or ""
        start = match.start(kind)
        raw = match.group(kind)
        if kind == "single":
            out.append(("value", raw.replace("''", "'"), start))
        elif kind == "double":
            out.append(("value", raw, start))
        elif kind == "variable":
            out.append(("value", {"$true": True, "$false": False, "$null": None}[raw.lower()], start))
        elif kind == "number":
            out.append(("value", float(raw) if "." in raw else int(raw), start))
        elif kind == "op":
            out.append(("op", raw.lower(), start))
        else:
            out.append((kind, raw, start))
        position = match.end()
    return out


Test = Any  # Callable[[Mapping[str, Any]], bool]


def parse_filter(text: str, known: tuple[Field, ...] = MAILBOX_FIELDS) -> Test:
    """A predicate for an OPATH filter: comparisons (``-eq -ne -like -notlike -gt -lt -ge -le``)
    joined by ``-and``/``-or``, ``-not`` and parentheses. Strings compare case-insensitively; a
    multi-valued property matches when any value does."""
    tokens = _tokens(text)
    names = {field.name.lower(): field.name for field in known}
    position = 0

    def peek() -> tuple[str, Any, int] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, Any, int]:
        nonlocal position
        if position >= len(tokens):
            raise FilterError(f'Invalid filter syntax. "{text}" at position {len(text) + 1}.', len(text) + 1)
        token = tokens[position]
        position += 1
        return token

    def expression() -> Test:
        left = conjunction()
        while (token := peek()) is not None and token[:2] == ("op", "-or"):
            take()
            right = conjunction()
            left = (lambda a, b: lambda v: a(v) or b(v))(left, right)
        return left

    def conjunction() -> Test:
        left = unary()
        while (token := peek()) is not None and token[:2] == ("op", "-and"):
            take()
            right = unary()
            left = (lambda a, b: lambda v: a(v) and b(v))(left, right)
        return left

    def unary() -> Test:
        token = take()
        if token[:2] == ("op", "-not"):
            inner = unary()
            return lambda v: not inner(v)
        if token[0] == "lparen":
            inner = expression()
            closing = take()
            if closing[0] != "rparen":
                raise FilterError(
                    f'Invalid filter syntax. "{text}" at position {closing[2] + 1}.', closing[2] + 1
                )
            return inner
        if token[0] != "word":
            raise FilterError(f'Invalid filter syntax. "{text}" at position {token[2] + 1}.', token[2] + 1)
        name = names.get(token[1].lower())
        if name is None:
            raise FilterError(f'"{token[1]}" is not a recognized filterable property.', token[2] + 1)
        operator = take()
        if operator[0] != "op" or operator[1] in ("-and", "-or", "-not"):
            raise FilterError(
                f'Invalid filter syntax. "{text}" at position {operator[2] + 1}.', operator[2] + 1
            )
        operand = take()
        if operand[0] not in ("value", "word"):
            raise FilterError(
                f'Invalid filter syntax. "{text}" at position {operand[2] + 1}.', operand[2] + 1
            )
        return _comparison(name, operator[1], operand[1])

    test = expression()
    if position != len(tokens):
        at = tokens[position][2] + 1
        raise FilterError(f'Invalid filter syntax. "{text}" at position {at}.', at)
    return test


def _comparison(name: str, operator: str, operand: Any) -> Test:
    def compare(value: Any) -> bool:
        if isinstance(value, (bool, type(None))) or isinstance(operand, (bool, type(None))):
            if isinstance(operand, str) and operand.lower() in ("true", "false"):
                other: Any = operand.lower() == "true"
            else:
                other = operand
            equal = value == other
        else:
            left, right = str(value).lower(), str(operand).lower()
            if operator in ("-like", "-notlike"):
                equal = fnmatch.fnmatchcase(left, right)
            elif operator in ("-gt", "-lt", "-ge", "-le"):
                return {"-gt": left > right, "-lt": left < right, "-ge": left >= right, "-le": left <= right}[
                    operator
                ]
            else:
                equal = left == right
        return not equal if operator in ("-ne", "-notlike") else equal

    def test(values: Mapping[str, Any]) -> bool:
        value = values.get(name)
        if isinstance(value, list):
            matches = [compare(item) for item in value]
            return all(matches) if operator in ("-ne", "-notlike") else any(matches)
        return compare(value)

    return test
