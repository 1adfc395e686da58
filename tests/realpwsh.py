"""Where the real pwsh is, and how a test that needs it says so.

``PSWRAP_PWSH`` names the executable, else ``pwsh`` on PATH. Tests that need it carry ``needs_pwsh``: they
skip with the reason where there is none, unless ``PSWRAP_REQUIRE_PWSH=1`` (CI sets it once it has
installed pwsh), where a missing pwsh fails them instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

PWSH = os.environ.get("PSWRAP_PWSH") or shutil.which("pwsh")
REQUIRED = os.environ.get("PSWRAP_REQUIRE_PWSH", "") not in ("", "0")


@functools.cache
def version() -> str | None:
    """The real pwsh's version (``7.6.10``), or None where there is none."""
    if PWSH is None:
        return None
    try:
        done = subprocess.run(
            [
                PWSH,
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-Command",
                "$PSVersionTable.PSVersion.ToString()",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable ({exc})"
    return done.stdout.strip() or f"unusable (exit {done.returncode}: {done.stderr.strip()[:200]})"


def require() -> str:
    """The pwsh path; skips the calling test without one (fails it when PSWRAP_REQUIRE_PWSH is set)."""
    if PWSH is None:
        reason = "needs a real pwsh on PATH (or PSWRAP_PWSH); none found"
        if REQUIRED:
            pytest.fail(reason + ", and PSWRAP_REQUIRE_PWSH=1 says it must run", pytrace=False)
        pytest.skip(reason)
    return PWSH
