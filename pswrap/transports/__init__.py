"""Transports: the ways pswrap runs PowerShell, all behind one small interface (:mod:`.base`).

``local`` (:class:`LocalTransport`): a persistent ``pwsh -s`` spoken to over PSRP, the default.
``oneshot`` (:class:`OneShotTransport`): one ``pwsh -OutputFormat xml`` per call.
``winrm`` (:class:`WinRMTransport`): PowerShell on a remote Windows host over WinRM.
:class:`MockTransport`: built from a function, for tests.
"""

from __future__ import annotations

from pswrap.transports._process import find_pwsh
from pswrap.transports.base import Execution, Invocation, Outcome, State, StreamItem, Transport
from pswrap.transports.local import LocalTransport
from pswrap.transports.mock import MockTransport
from pswrap.transports.oneshot import OneShotTransport
from pswrap.transports.winrm import WinRMTransport

__all__ = [
    "Execution",
    "Invocation",
    "LocalTransport",
    "MockTransport",
    "OneShotTransport",
    "Outcome",
    "State",
    "StreamItem",
    "Transport",
    "WinRMTransport",
    "find_pwsh",
]
