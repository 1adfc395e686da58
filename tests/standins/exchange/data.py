"""Deterministic fixture mailboxes, with the property names and kinds of real Exchange Online objects.

Each mailbox is a dict of plain Python values in the order Get-Mailbox lists them; ``kinds`` says
how each is typed on the wire (a quota is its formatted text, as Exchange Online sends it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

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
RECIPIENT_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.Management.ReducedRecipient",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADRawEntry",
    "Deserialized.Microsoft.Exchange.Data.ConfigurableObject",
    "Deserialized.System.Object",
]
QUOTA = "99 GB (106,300,440,576 bytes)"
WARNING_QUOTA = "98 GB (105,226,698,752 bytes)"
RECOVERABLE_QUOTA = "30 GB (32,212,254,720 bytes)"
_EPOCH = dt.datetime(2021, 3, 1, 9, 30, tzinfo=dt.timezone.utc)


def mailboxes(count: int, organization: str) -> list[dict[str, Any]]:
    """``count`` user and shared mailboxes of ``organization`` (``contoso.onmicrosoft.com``)."""
    label = organization.split(".")[0]
    result = []
    for index in range(count):
        alias = f"user{index:04d}" if index % 10 else f"shared{index:04d}"
        guid = uuid.UUID(int=(index * 0x9E3779B97F4A7C15 + 0x1234) % (1 << 128))
        shared = index % 10 == 0
        address = f"{alias}@{organization}"
        created = _EPOCH + dt.timedelta(days=index, microseconds=123456)
        result.append(
            {
                "Name": alias,
                "Alias": alias,
                "DisplayName": f"{'Shared ' if shared else ''}User {index:04d}",
                "PrimarySmtpAddress": address,
                "UserPrincipalName": address,
                "WindowsEmailAddress": address,
                "EmailAddresses": [f"SMTP:{address}", f"smtp:{alias}@{label}.mail.onmicrosoft.com"],
                "RecipientType": "UserMailbox",
                "RecipientTypeDetails": "SharedMailbox" if shared else "UserMailbox",
                "Guid": guid,
                "ExchangeGuid": uuid.UUID(int=guid.int ^ 0xFFFF_FFFF),
                "ExternalDirectoryObjectId": str(uuid.UUID(int=guid.int ^ 0xABCDEF)),
                "Identity": alias,
                "Id": alias,
                "DistinguishedName": f"CN={alias},OU={organization},OU=Microsoft Exchange Hosted Organizations,"
                "DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM",
                "OrganizationalUnit": f"NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{organization}",
                "Database": "NAMPR01DG001-db001",
                "ServerName": "sn6pr01mb0001",
                "HiddenFromAddressListsEnabled": False,
                "LitigationHoldEnabled": index % 7 == 0,
                "RetentionHoldEnabled": False,
                "SingleItemRecoveryEnabled": True,
                "DeliverToMailboxAndForward": False,
                "ForwardingSmtpAddress": None,
                "IsMailboxEnabled": True,
                "IsShared": shared,
                "ProhibitSendQuota": QUOTA,
                "ProhibitSendReceiveQuota": "100 GB (107,374,182,400 bytes)",
                "IssueWarningQuota": WARNING_QUOTA,
                "RecoverableItemsQuota": RECOVERABLE_QUOTA,
                "UseDatabaseQuotaDefaults": False,
                "RetainDeletedItemsFor": dt.timedelta(days=14),
                "ArchiveStatus": "None",
                "Languages": ["en-US"],
                "CustomAttribute1": "",
                "Department": None,
                "Office": None,
                "UsageLocation": "United States",
                "WhenCreated": created,
                "WhenChanged": created + dt.timedelta(days=30),
                "WhenMailboxCreated": created,
                "WhenCreatedUTC": created,
                "RecipientLimits": "Unlimited",
                "MaxSendSize": "35 MB (36,700,160 bytes)",
                "MaxReceiveSize": "36 MB (37,748,736 bytes)",
            }
        )
    return result


def recipient_view(mailbox: dict[str, Any]) -> dict[str, Any]:
    """What Get-Recipient shows of a mailbox."""
    names = (
        "Name", "Alias", "DisplayName", "PrimarySmtpAddress", "EmailAddresses", "RecipientType",
        "RecipientTypeDetails", "Guid", "ExternalDirectoryObjectId", "Identity", "WhenCreated", "WhenChanged",
    )  # fmt: skip
    return {name: mailbox[name] for name in names}


ACCEPTED_DOMAIN_TYPES = [
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomain",
    "Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration.ADConfigurationObject",
    "Deserialized.Microsoft.Exchange.Data.Directory.ADObject",
    "Deserialized.System.Object",
]


def accepted_domains(organization: str) -> list[dict[str, Any]]:
    return [
        {"Name": organization, "DomainName": organization, "DomainType": "Authoritative", "Default": True},
        {
            "Name": f"{organization.split('.')[0]}.mail.onmicrosoft.com",
            "DomainName": f"{organization.split('.')[0]}.mail.onmicrosoft.com",
            "DomainType": "Authoritative",
            "Default": False,
        },
    ]
