"""Shared test set-up. Fixtures live in ``tests/fixtures/<concern>.py`` and are loaded here as plugins."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

from tests import realpwsh

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "clixml"

pytest_plugins = [
    f"tests.fixtures.{module.name}"
    for module in pkgutil.iter_modules([str(Path(__file__).parent / "fixtures")])
]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real CLIXML corpus in ../shared (tests using it skip where it is absent)."""
    if not CORPUS.is_dir():
        pytest.skip(f"the real CLIXML corpus is not at {CORPUS} (../shared beside the project)")
    return CORPUS


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the real pwsh the real-pwsh tests run against (or say there is none)."""
    found = realpwsh.version()
    where = realpwsh.PWSH or "none on PATH"
    required = " (required: PSWRAP_REQUIRE_PWSH=1)" if realpwsh.REQUIRED else ""
    return [f"real pwsh: {found or 'not found'} at {where}{required}"]


@pytest.fixture(scope="session")
def real_pwsh() -> str:
    """The real pwsh executable; skips without one, fails where PSWRAP_REQUIRE_PWSH=1."""
    return realpwsh.require()
