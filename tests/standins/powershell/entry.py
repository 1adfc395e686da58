"""The stand-in's executable entry: ``python entry.py <pwsh arguments>`` (the fixture's ``pwsh`` wrapper).

It puts the repository root on ``sys.path`` itself (no PYTHONPATH needed, so the environment the
product passes is recorded untouched) and exits with the code pwsh would.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(HERE)]
sys.path.insert(0, str(ROOT))

from tests.standins.powershell.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
