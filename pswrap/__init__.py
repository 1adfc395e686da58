"""pswrap: run Exchange Online and any PowerShell from Python, with typed objects back."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from pswrap.clixml import ClixmlItem, ClixmlReader, parse_clixml
from pswrap.config import Settings
from pswrap.errors import (
    ApplicationNotFoundError,
    ClixmlError,
    ConfigError,
    ConsentRequiredError,
    CredentialRejectedError,
    EntraError,
    IdentityProviderUnavailableError,
    ManagedIdentityError,
    PowerShellError,
    PswrapError,
    RenderError,
    ScopeRejectedError,
    TenantNotFoundError,
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

if TYPE_CHECKING:
    from pswrap.render import Script, Templates, ps_literal, render_template

# Loaded on first use: rendering needs Jinja2, which reading CLIXML does not.
_LAZY = {
    "Script": "pswrap.render",
    "Templates": "pswrap.render",
    "ps_literal": "pswrap.render",
    "render_template": "pswrap.render",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pswrap' has no attribute {name!r}")


__all__ = [
    "ApplicationNotFoundError",
    "ClixmlError",
    "ClixmlItem",
    "ClixmlReader",
    "ConfigError",
    "ConsentRequiredError",
    "CredentialRejectedError",
    "DebugRecord",
    "EntraError",
    "ErrorRecord",
    "IdentityProviderUnavailableError",
    "InformationRecord",
    "ManagedIdentityError",
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
    "ScopeRejectedError",
    "Script",
    "ScriptBlock",
    "Secret",
    "SecureString",
    "Settings",
    "Templates",
    "TenantNotFoundError",
    "TokenError",
    "TransportError",
    "Uri",
    "VerboseRecord",
    "Version",
    "WarningRecord",
    "XmlDocument",
    "__version__",
    "parse_clixml",
    "ps_literal",
    "render_template",
    "to_jsonable",
]
