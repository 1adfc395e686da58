"""Shared test set-up. Fixtures live in ``tests/fixtures/<concern>.py`` and are loaded here as plugins."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

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
