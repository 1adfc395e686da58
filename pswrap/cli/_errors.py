"""What the ``pswrap`` commands exit with, one mapping for all of them.

0 success; 1 PowerShell reported an error; 2 a usage or settings problem (retrying will not help:
a missing pwsh or module, a bad setting, a credential Entra ID or the host rejected); 3 Exchange or
the identity provider could not be reached (retrying later may help).
"""

from __future__ import annotations

from pswrap.errors import (
    AdminApiAuthError,
    ConfigError,
    ExchangeModuleError,
    IdentityProviderUnavailableError,
    PowerShellError,
    RenderError,
    TokenError,
    WinRMAuthenticationError,
)

USAGE = 2
UNREACHABLE = 3
#: What pswrap's Python API calls a setting, and what the command line calls it.
_CLI_WORDS = (("pass pwsh='/path/to/pwsh'", "give its path with --pwsh or PSWRAP_PWSH"),)


def exit_code(error: BaseException) -> int:
    """The exit code for ``error``."""
    if isinstance(error, PowerShellError):
        return 1
    if isinstance(error, IdentityProviderUnavailableError):
        return UNREACHABLE
    settings_problems = (
        ConfigError,
        RenderError,
        TokenError,
        ExchangeModuleError,
        WinRMAuthenticationError,
        AdminApiAuthError,
    )
    if isinstance(error, settings_problems):
        return USAGE
    return UNREACHABLE


def message(error: BaseException) -> str:
    """The error's text in the command line's words (``--pwsh``, not ``pwsh='…'``)."""
    from pswrap.cli.output import visible  # messages can quote data: no terminal escapes from it

    text = str(error)
    for python, cli in _CLI_WORDS:
        text = text.replace(python, cli)
    return visible(text, keep="\n")
