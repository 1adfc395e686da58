"""pswrap: run Exchange Online and any PowerShell from Python, with typed objects back.

The object model, the errors and the CLIXML reader load with the package; the sessions, transports,
tokens and templates (which bring MSAL, cryptography, Jinja2 and psrpcore) load on first use, so
reading CLIXML stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from pswrap.clixml import ClixmlItem, ClixmlReader, parse_clixml
from pswrap.errors import (
    AdminApiAuthError,
    AdminApiBusyError,
    AdminApiConnectionError,
    AdminApiError,
    ApplicationNotFoundError,
    ClixmlError,
    ConfigError,
    ConsentRequiredError,
    CredentialRejectedError,
    EntraError,
    ExchangeConnectError,
    ExchangeError,
    ExchangeModuleError,
    ExpansionError,
    IdentityProviderUnavailableError,
    InvocationInterrupted,
    InvocationNotStarted,
    InvocationTimeout,
    ManagedIdentityError,
    NotSupportedByTransport,
    PowerShellError,
    ProtocolError,
    PswrapError,
    RenderError,
    ScopeRejectedError,
    SSHAuthenticationError,
    SSHError,
    SSHHostKeyError,
    TenantNotFoundError,
    TokenError,
    TransportError,
    WinRMAuthenticationError,
    WinRMError,
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
    from pswrap.config import Settings
    from pswrap.exchange import ExchangeOnline
    from pswrap.fleet import Fleet
    from pswrap.render import Script, Templates, ps_literal, render_template
    from pswrap.session import Result, Session
    from pswrap.transports import (
        Invocation,
        LocalTransport,
        MockTransport,
        OneShotTransport,
        Outcome,
        SSHTransport,
        StreamItem,
        Transport,
        WinRMTransport,
    )

_LAZY = {
    "Settings": "pswrap.config",
    "ExchangeOnline": "pswrap.exchange",
    "Fleet": "pswrap.fleet",
    "Script": "pswrap.render",
    "Templates": "pswrap.render",
    "ps_literal": "pswrap.render",
    "render_template": "pswrap.render",
    "Result": "pswrap.session",
    "Session": "pswrap.session",
    "Invocation": "pswrap.transports",
    "LocalTransport": "pswrap.transports",
    "MockTransport": "pswrap.transports",
    "OneShotTransport": "pswrap.transports",
    "Outcome": "pswrap.transports",
    "SSHTransport": "pswrap.transports",
    "StreamItem": "pswrap.transports",
    "Transport": "pswrap.transports",
    "WinRMTransport": "pswrap.transports",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pswrap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AdminApiAuthError",
    "AdminApiBusyError",
    "AdminApiConnectionError",
    "AdminApiError",
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
    "ExchangeConnectError",
    "ExchangeError",
    "ExchangeModuleError",
    "ExchangeOnline",
    "ExpansionError",
    "Fleet",
    "IdentityProviderUnavailableError",
    "InformationRecord",
    "Invocation",
    "InvocationInterrupted",
    "InvocationNotStarted",
    "InvocationTimeout",
    "LocalTransport",
    "ManagedIdentityError",
    "MockTransport",
    "NotSupportedByTransport",
    "OneShotTransport",
    "Outcome",
    "PSDateTime",
    "PSEnum",
    "PSObject",
    "PSQueue",
    "PSStack",
    "PSTimeSpan",
    "PowerShellError",
    "ProgressRecord",
    "ProtocolError",
    "PswrapError",
    "Record",
    "RenderError",
    "Result",
    "SSHAuthenticationError",
    "SSHError",
    "SSHHostKeyError",
    "SSHTransport",
    "ScopeRejectedError",
    "Script",
    "ScriptBlock",
    "Secret",
    "SecureString",
    "Session",
    "Settings",
    "StreamItem",
    "Templates",
    "TenantNotFoundError",
    "TokenError",
    "Transport",
    "TransportError",
    "Uri",
    "VerboseRecord",
    "Version",
    "WarningRecord",
    "WinRMAuthenticationError",
    "WinRMError",
    "WinRMTransport",
    "XmlDocument",
    "__version__",
    "parse_clixml",
    "ps_literal",
    "render_template",
    "to_jsonable",
]
