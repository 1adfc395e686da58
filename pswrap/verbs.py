"""Which commands only read: the documented list pswrap may run again on its own.

pswrap never retries a command that may have changed something once it may have reached the server
(a ``Set-``, ``New-``, ``Remove-``, ``Enable-``… cmdlet). A command whose verb is in
:data:`READ_VERBS` reads, so repeating it after throttling, a server error or an expired token is
safe — unless it is given one of :data:`MUTATING_PARAMETERS` (``Search-Mailbox -DeleteContent``
deletes). Every transport and the Exchange session use this one list.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MUTATING_PARAMETERS", "READ_VERBS", "is_read_only", "verb_of"]

#: PowerShell verbs whose cmdlets read and change nothing (``Get-Mailbox``, ``Test-MailFlow``…).
READ_VERBS: frozenset[str] = frozenset(
    {
        "Get",
        "Test",
        "Search",
        "Export",
        "Find",
        "Measure",
        "Compare",
        "Resolve",
        "Read",
        "Show",
        "Select",
        "Trace",
        "Format",
    }
)

#: Parameters that turn a reading verb into a change (``Search-Mailbox -DeleteContent``).
MUTATING_PARAMETERS: frozenset[str] = frozenset({"deletecontent"})


def verb_of(command: str) -> str:
    """The verb of ``Verb-Noun`` (``"Get"`` for ``get-mailbox``), capitalised; ``""`` when there is none."""
    name = command.strip().rsplit("\\", 1)[-1]  # ExchangeOnlineManagement\Get-Mailbox
    verb, dash, _ = name.partition("-")
    return verb.capitalize() if dash and verb.isalpha() else ""


def is_read_only(command: str, parameters: Iterable[str] = ()) -> bool:
    """Whether ``command`` with these parameter names only reads (so running it again is safe)."""
    if verb_of(command) not in READ_VERBS:
        return False
    return not any(name.lower() in MUTATING_PARAMETERS for name in parameters)
