"""pswrap: run Exchange Online and any PowerShell from Python, with typed objects back."""

from __future__ import annotations

__version__ = "0.1.0"

from pswrap.clixml import ClixmlItem, ClixmlReader, parse_clixml
from pswrap.errors import (
    ClixmlError,
    ConfigError,
    PowerShellError,
    PswrapError,
    RenderError,
    TokenError,
    TransportError,
)
from pswrap.objects import (
    DebugRecord,
    ErrorRecord,
    InformationRecord,
    ProgressRecord,
    PSDateTime,
    PSEnum,
    PSObject,
    PSQueue,
    PSStack,
    PSTimeSpan,
    Record,
    ScriptBlock,
    SecureString,
    Uri,
    VerboseRecord,
    Version,
    WarningRecord,
    XmlDocument,
    to_jsonable,
)
from pswrap.secret import Secret

__all__ = [
    "ClixmlError",
    "ClixmlItem",
    "ClixmlReader",
    "ConfigError",
    "DebugRecord",
    "ErrorRecord",
    "InformationRecord",
    "PSDateTime",
    "PSEnum",
    "PSObject",
    "PSQueue",
    "PSStack",
    "PSTimeSpan",
    "PowerShellError",
    "ProgressRecord",
    "PswrapError",
    "Record",
    "RenderError",
    "ScriptBlock",
    "Secret",
    "SecureString",
    "TokenError",
    "TransportError",
    "Uri",
    "VerboseRecord",
    "Version",
    "WarningRecord",
    "XmlDocument",
    "__version__",
    "parse_clixml",
    "to_jsonable",
]
