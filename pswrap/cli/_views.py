"""Which columns a table shows for an object: PowerShell's default table views, where it has one.

For the common Exchange types, the columns of the table view Exchange's own format data gives them
(``Exchange.format.ps1xml``, what ``Get-Mailbox`` prints in a PowerShell window); for any other
object, like ``Format-Table`` without a view: every property when there are at most four, else a
list (``Format-List``). ``--select`` always wins.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Type name (last dotted part, ``Deserialized.`` dropped) to the columns of its default table view.
TABLE_VIEWS: dict[str, tuple[str, ...]] = {
    "Mailbox": ("Name", "Alias", "Database", "ProhibitSendQuota", "ExternalDirectoryObjectId"),
    "ReducedRecipient": ("Name", "RecipientType"),  # Get-Recipient
    "User": ("Name", "RecipientType"),
    "MailUser": ("Name", "RecipientType"),
    "MailContact": ("Name", "Alias", "RecipientType"),
    "Contact": ("Name", "RecipientType"),
    "DistributionGroup": ("Name", "DisplayName", "GroupType", "PrimarySmtpAddress"),
    "DynamicDistributionGroup": ("Name", "RecipientFilter"),
    "UnifiedGroup": ("Name", "Alias", "ServerName", "AccessType"),
    "AcceptedDomain": ("Name", "DomainName", "DomainType", "Default"),
    "MailboxStatistics": ("DisplayName", "ItemCount", "StorageLimitStatus", "LastLogonTime"),
    "MailboxAcePresentationObject": (
        "Identity",
        "User",
        "AccessRights",
        "IsInherited",
        "Deny",
    ),  # Get-MailboxPermission
    "RecipientPermission": ("Identity", "Trustee", "AccessControlType", "AccessRights", "Inherited"),
    "TransportRule": ("Name", "State", "Mode", "Priority", "Comments"),
    "Rule": ("Name", "State", "Priority", "Comments"),
}
#: Objects with at most this many properties and no view are a table; more, a list.
MAX_TABLE_PROPERTIES = 4


def view_columns(type_names: Sequence[str]) -> tuple[str, ...] | None:
    """The default table columns for an object with ``type_names`` (most derived first), if any."""
    for name in type_names:
        short = name.removeprefix("Deserialized.").rsplit(".", 1)[-1]
        if short in TABLE_VIEWS:
            return TABLE_VIEWS[short]
    return None
