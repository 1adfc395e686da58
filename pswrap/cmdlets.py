"""What pswrap knows about cmdlets by their names: which ones only read.

A read can be run again safely, so pswrap retries it after a failure that happened before it could
change anything (an expired token, throttling). Anything else is never retried automatically once it
may have reached the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["READ_VERBS", "is_read"]

#: Verbs of cmdlets that only read. ``Search-Mailbox -DeleteContent`` is the exception pswrap knows of.
READ_VERBS = frozenset(
    (
        "Get",
        "Test",
        "Search",
        "Export",
        "Find",
        "Measure",
        "Resolve",
        "Compare",
        "Read",
        "Show",
        "Trace",
        "Select",
    )
)
_WRITING_PARAMETERS = frozenset(("deletecontent",))


def is_read(command: str, parameters: Mapping[str, Any] | None = None) -> bool:
    """Whether ``command`` (``Get-Mailbox``) with ``parameters`` only reads."""
    verb, dash, noun = command.partition("-")
    if not dash or not noun or verb.capitalize() not in READ_VERBS:
        return False
    return not any(name.casefold() in _WRITING_PARAMETERS for name in parameters or {})
