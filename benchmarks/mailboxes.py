"""A deterministic ``Get-Mailbox -ResultSize Unlimited | Export-Clixml``-shaped document.

About 70 properties a mailbox, shaped like the real Exchange objects in ``../shared/corpus/clixml``:
nested ``ADObjectId`` objects, multi-valued properties (``LST``), enums, quotas with a ``ToString``,
dates, GUIDs, ``SerializationData`` blobs, ``TN``/``TNRef`` reuse, and ``Ref``s to shared objects
(the database and the organization) that span top-level objects, as a real document's do.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

NS = "http://schemas.microsoft.com/powershell/2004/04"
HEADER = f'<Objs Version="1.1.0.1" xmlns="{NS}">\r\n'
FOOTER = "</Objs>"

_MAILBOX_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledOrgPerson",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.MailEnabledRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.ADPresentationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
    "Deserialized.System.Object",
]
_ID_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObjectId",
    "Deserialized.Microsoft.Exchange.Data.ObjectId",
    "Deserialized.System.Object",
]
_MVP_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[System.String, mscorlib, Version=4.0.0.0, "
    "Culture=neutral, PublicKeyToken=b77a5c561934e089]]",
    "Deserialized.Microsoft.Exchange.Data.MultiValuedPropertyBase",
    "Deserialized.System.Object",
]
_ENUM_TYPES = [
    "Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails",
    "System.Enum",
    "System.ValueType",
    "System.Object",
]
_QUOTA_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Unlimited`1[[Microsoft.Exchange.Data.ByteQuantifiedSize, "
    "Microsoft.Exchange.Data, Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]",
    "Deserialized.System.ValueType",
    "Deserialized.System.Object",
]

_BOOLEAN_NAMES = [
    "AccountDisabled", "AntispamBypassEnabled", "DeliverToMailboxAndForward", "DowngradeHighPriorityMessagesEnabled",
    "HiddenFromAddressListsEnabled", "IsInactiveMailbox", "IsMailboxEnabled", "IsResource", "IsShared",
    "LitigationHoldEnabled", "MessageCopyForSentAsEnabled", "MessageCopyForSendOnBehalfEnabled",
    "MessageTrackingReadStatusEnabled", "ModerationEnabled", "RequireSenderAuthenticationEnabled",
    "RetentionHoldEnabled", "SingleItemRecoveryEnabled", "UseDatabaseQuotaDefaults", "UseDatabaseRetentionDefaults",
    "AuditEnabled", "CalendarRepairDisabled", "ElcProcessingDisabled", "EmailAddressPolicyEnabled",
    "IsDirSynced", "IsSoftDeletedByRemove", "MessageRecallProcessingEnabled",
]  # fmt: skip
_STRING_NAMES = [
    "Alias", "CustomAttribute1", "CustomAttribute2", "CustomAttribute3", "CustomAttribute4", "CustomAttribute5",
    "CustomAttribute6", "CustomAttribute7", "CustomAttribute8", "CustomAttribute9", "CustomAttribute10",
    "Department", "Office", "RetentionComment", "RetentionUrl", "SamAccountName", "ServerName",
    "SimpleDisplayName", "UsageLocation", "WindowsEmailAddress", "ArchiveName", "ExchangeVersion",
]  # fmt: skip
_QUOTA_NAMES = ["ProhibitSendQuota", "ProhibitSendReceiveQuota", "IssueWarningQuota", "RecoverableItemsQuota"]


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Writer:
    """Keeps the document-wide RefId and TNRef tables, as PowerShell's serializer does."""

    def __init__(self) -> None:
        self.ref = 0
        self.type_refs: dict[tuple[str, ...], int] = {}
        self.shared: dict[str, int] = {}

    def next_ref(self) -> int:
        self.ref += 1
        return self.ref - 1

    def tn(self, names: list[str]) -> str:
        key = tuple(names)
        if key in self.type_refs:
            return f'<TNRef RefId="{self.type_refs[key]}" />'
        self.type_refs[key] = len(self.type_refs)
        inner = "".join(f"<T>{_esc(n)}</T>" for n in names)
        return f'<TN RefId="{self.type_refs[key]}">{inner}</TN>'

    def object_id(self, name: str, dn: str, guid: uuid.UUID, shared_key: str | None = None) -> str:
        if shared_key is not None and shared_key in self.shared:
            return f'<Ref N="{name}" RefId="{self.shared[shared_key]}" />'
        ref = self.next_ref()
        if shared_key is not None:
            self.shared[shared_key] = ref
        blob = base64.b64encode(hashlib.sha256(dn.encode()).digest() * 6).decode()
        return (
            f'<Obj N="{name}" RefId="{ref}">{self.tn(_ID_TYPES)}<ToString>{_esc(dn)}</ToString><Props>'
            f'<B N="IsDeleted">false</B><S N="Rdn">{_esc(dn.split(",")[0])}</S><I32 N="Depth">5</I32>'
            f'<S N="DistinguishedName">{_esc(dn)}</S><G N="ObjectGuid">{guid}</G><S N="Name">{_esc(name)}</S>'
            f'</Props><MS><BA N="SerializationData">{blob}</BA></MS></Obj>'
        )

    def mailbox(self, index: int) -> str:
        w = self
        guid = uuid.UUID(int=(index * 0x9E3779B97F4A7C15 + 12345) % (1 << 128))
        alias = f"user{index:07d}"
        name = f"User {index:07d} Ünïcødé"
        dn = (
            f"CN={alias},OU=contoso.onmicrosoft.com,OU=Microsoft Exchange Hosted Organizations,DC=NAMPR01A001"
        )
        ref = w.next_ref()
        parts = [f'<Obj RefId="{ref}">{w.tn(_MAILBOX_TYPES)}<ToString>{_esc(name)}</ToString><Props>']
        parts.append(w.object_id("Database", "CN=NAMPR01DG001-db001,CN=Databases", uuid.UUID(int=7), "db"))
        parts.append(w.object_id("OrganizationId", "CN=contoso.onmicrosoft.com", uuid.UUID(int=9), "org"))
        parts.append(w.object_id("Identity", dn, guid))
        for i, prop in enumerate(_BOOLEAN_NAMES):
            parts.append(f'<B N="{prop}">{"true" if (index + i) % 3 == 0 else "false"}</B>')
        for prop in _STRING_NAMES:
            parts.append(f'<S N="{prop}">{_esc(prop.lower())}-{alias}_x000D__x000A_</S>')
        parts.append(f'<S N="DisplayName">{_esc(name)}</S><S N="Name">{alias}</S>')
        parts.append(f'<S N="PrimarySmtpAddress">{alias}@contoso.onmicrosoft.com</S>')
        parts.append(f'<S N="UserPrincipalName">{alias}@contoso.onmicrosoft.com</S>')
        parts.append(f'<G N="Guid">{guid}</G><G N="ExchangeGuid">{uuid.UUID(int=guid.int ^ 0xFFFF)}</G>')
        parts.append(f'<G N="ExternalDirectoryObjectId">{uuid.UUID(int=guid.int ^ 0xABCDEF)}</G>')
        day = 1 + index % 28
        parts.append(f'<DT N="WhenCreated">2021-03-{day:02d}T10:20:30.1234567+00:00</DT>')
        parts.append(f'<DT N="WhenChanged">2024-11-{day:02d}T08:09:10.7654321Z</DT>')
        parts.append(f'<DT N="WhenMailboxCreated">2021-03-{day:02d}T10:21:00</DT>')
        parts.append('<TS N="RetainDeletedItemsFor">P14D</TS><TS N="AuditLogAgeLimit">P90D</TS>')
        parts.append(f'<I32 N="RecipientLimits">{500 + index % 7}</I32><I64 N="MaxSafeSenders">1024</I64>')
        parts.append(f'<Obj N="RecipientTypeDetails" RefId="{w.next_ref()}">{w.tn(_ENUM_TYPES)}'
                     "<ToString>UserMailbox</ToString><I64>1</I64></Obj>")  # fmt: skip
        for quota in _QUOTA_NAMES:
            parts.append(
                f'<Obj N="{quota}" RefId="{w.next_ref()}">{w.tn(_QUOTA_TYPES)}'
                "<ToString>99 GB (106,300,440,576 bytes)</ToString>"
                '<Props><B N="IsUnlimited">false</B><S N="Value">99 GB (106,300,440,576 bytes)</S></Props></Obj>'
            )
        addresses = "".join(
            f"<S>{'SMTP' if k == 0 else 'smtp'}:{alias}.{k}@contoso.com</S>" for k in range(1 + index % 4)
        )
        parts.append(
            f'<Obj N="EmailAddresses" RefId="{w.next_ref()}">{w.tn(_MVP_TYPES)}<LST>{addresses}</LST></Obj>'
        )
        parts.append(
            f'<Obj N="Languages" RefId="{w.next_ref()}">{w.tn(_MVP_TYPES)}<LST><S>en-US</S></LST></Obj>'
        )
        parts.append(f'<Obj N="GrantSendOnBehalfTo" RefId="{w.next_ref()}">{w.tn(_MVP_TYPES)}<LST /></Obj>')
        parts.append(
            '<Nil N="ForwardingAddress" /><Nil N="ForwardingSmtpAddress" /><Nil N="LitigationHoldDate" />'
        )
        parts.append("</Props></Obj>\r\n")
        return "".join(parts)


def documents(size_bytes: int) -> Iterator[str]:
    """The document in pieces, one mailbox a piece, until it is at least ``size_bytes`` long."""
    writer = _Writer()
    yield HEADER
    written = len(HEADER)
    index = 0
    while written < size_bytes:
        piece = writer.mailbox(index)
        written += len(piece.encode("utf-8"))
        index += 1
        yield piece
    yield FOOTER


def write(path: Path, size_mb: float) -> int:
    """Write the document (UTF-8 with BOM, as Export-Clixml on PowerShell 7 does); return the mailbox count."""
    count = -2
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        for piece in documents(int(size_mb * 1024 * 1024)):
            handle.write(piece)
            count += 1
    return count
