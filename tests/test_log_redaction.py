"""Secrets never reach a log line: every pswrap logger, whatever the import order, tracebacks included."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import pswrap
from pswrap import MockTransport, Secret, Session, WarningRecord
from pswrap.secret import RedactingFilter
from pswrap.transports import Invocation, StreamItem

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-log-7d1e0f4a"

# In a fresh interpreter, so that pswrap.auth (which used to install redaction) is never imported.
PROGRAM = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(name)s %(message)s")
    import importlib
    module = importlib.import_module(sys.argv[1])
    from pswrap import Secret
    secret = Secret(sys.argv[2], "Password")
    loggers = logging.Logger.manager.loggerDict
    for name in sorted(n for n, v in loggers.items() if n.startswith("pswrap") and isinstance(v, logging.Logger)):
        logger = logging.getLogger(name)
        logger.warning("%s said: %s", name, secret.reveal())
        try:
            raise RuntimeError("failed with " + secret.reveal())
        except RuntimeError:
            logger.exception("%s traceback", name)
        logger.warning("stack of %s", name, stack_info=True)
    """
)


def pswrap_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(pswrap.__path__, "pswrap.")
        if not info.name.startswith("pswrap.cli") and info.name != "pswrap._dpapi"
    )


@pytest.mark.parametrize(
    ("module", "logger"),
    [
        ("pswrap.session", "pswrap.powershell"),
        ("pswrap.transports.local", "pswrap.transports._outofproc_session"),
        ("pswrap.config", "pswrap.config"),
    ],
)
def test_each_logger_scrubs_messages_and_tracebacks(module: str, logger: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, module, CANARY],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    assert "RuntimeError: failed with <redacted>" in done.stdout
    assert f"{logger} said: <redacted>" in done.stdout
    assert f"{logger} traceback" in done.stdout
    assert CANARY not in done.stdout + done.stderr


def test_every_module_logs_through_a_protected_logger() -> None:
    """Each module-level logger in pswrap carries the redacting filter the moment it exists."""
    for name in pswrap_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, logging.Logger) and value.name.startswith("pswrap"):
                assert any(isinstance(f, RedactingFilter) for f in value.filters), value.name


def test_secret_parameter_echoed_by_write_warning_is_logged_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A script that echoes a Secret it was given: the record keeps it, the log line does not."""
    canary = "canary-echo-2b9c4e71"

    def echo(invocation: Invocation) -> Iterator[StreamItem]:
        secret = invocation.parameters["Password"]
        yield StreamItem("warning", WarningRecord(f"password is {secret.reveal()}"))

    with (
        caplog.at_level(logging.WARNING, logger="pswrap.powershell"),
        Session(MockTransport(echo)) as session,
    ):
        result = session.invoke("Show-Password", Password=Secret(canary))
        assert result.warnings[0].message == f"password is {canary}"
    assert "password is <redacted>" in caplog.text
    assert canary not in caplog.text
