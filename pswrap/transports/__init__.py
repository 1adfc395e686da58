"""Transports: the ways pswrap runs PowerShell, all behind one small interface (:mod:`.base`).

``local`` (:class:`LocalTransport`): a persistent ``pwsh -s`` spoken to over PSRP, the default.
``oneshot`` (:class:`OneShotTransport`): one ``pwsh -OutputFormat xml`` per call.
``winrm`` (:class:`WinRMTransport`): PowerShell on a remote Windows host over WinRM.
``ssh`` (:class:`SSHTransport`): PowerShell on a remote host over SSH (its ``powershell`` subsystem).
``rest`` (:class:`RestTransport`): Exchange Online's admin REST API, no PowerShell at all.
:class:`MockTransport`: built from a function, for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pswrap.transports._process import find_pwsh
from pswrap.transports.base import Execution, Invocation, Outcome, State, StreamItem, Transport
from pswrap.transports.local import LocalTransport
from pswrap.transports.mock import MockTransport
from pswrap.transports.oneshot import OneShotTransport

__all__ = [
    "Execution",
    "Invocation",
    "LocalTransport",
    "MockTransport",
    "OneShotTransport",
    "Outcome",
    "RestTransport",
    "RetryPolicy",
    "SSHTransport",
    "State",
    "StreamItem",
    "Transport",
    "WinRMTransport",
    "find_pwsh",
]

if TYPE_CHECKING:
    from pswrap.transports.rest import RestTransport, RetryPolicy
    from pswrap.transports.ssh import SSHTransport
    from pswrap.transports.winrm import WinRMTransport


def __getattr__(name: str) -> Any:
    # The rest transport pulls in requests (~0.1 s): load it when first asked for.
    if name in ("RestTransport", "RetryPolicy"):
        from pswrap.transports import rest

        return getattr(rest, name)
    if name == "WinRMTransport":  # likewise (pypsrp itself loads only when a session opens)
        from pswrap.transports import winrm

        return winrm.WinRMTransport
    if name == "SSHTransport":  # likewise: paramiko loads only when a connection opens
        from pswrap.transports import ssh

        return ssh.SSHTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
