"""Per-call overhead: one server-mode session against one-shot processes, in one run.

    python benchmarks/session.py                # 200 calls each
    python benchmarks/session.py --calls 50     # a quicker run

Both run against the pwsh stand-in (tests/standins), set up in a temporary directory the way the
test fixture does: a ``pwsh`` wrapper first on PATH and a config that records every process started.
Each call is ``Write-Output -InputObject <i>`` and is read to its end. Server mode must start exactly
one process for all its calls; one-shot starts one per call. The stand-in is Python, so absolute
figures are not pwsh's (a real pwsh starts in 0.2-0.3 s, which makes one-shot dearer still); the
ratio and the process counts are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pswrap import LocalTransport, OneShotTransport, Session  # noqa: E402
from tests.standins.powershell.config import ENV_VAR  # noqa: E402

ENTRY = HERE.parent / "tests" / "standins" / "powershell" / "entry.py"


def set_up_standin(root: Path) -> Path:
    """Put the stand-in first on PATH with a recording config; the directory its records go to."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pwsh"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{ENTRY}' \"$@\"\n", encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    records = root / "records"
    config = root / "config.json"
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ[ENV_VAR] = str(config)
    return records


def use_records(records: Path, name: str) -> Path:
    directory = records / name
    Path(os.environ[ENV_VAR]).write_text(json.dumps({"record_dir": str(directory)}), encoding="utf-8")
    return directory


def run(transport: LocalTransport | OneShotTransport, calls: int) -> dict[str, float]:
    started = time.perf_counter()
    durations = []
    with Session(transport) as session:
        opened = time.perf_counter()
        for i in range(calls):
            begin = time.perf_counter()
            assert session.invoke("Write-Output", InputObject=i).output == [i]
            durations.append(time.perf_counter() - begin)
    ended = time.perf_counter()
    return {
        "open_s": opened - started,
        "total_s": ended - started,
        "per_call_ms": 1000 * statistics.fmean(durations),
        "median_ms": 1000 * statistics.median(durations),
        "p95_ms": 1000 * sorted(durations)[int(0.95 * (len(durations) - 1))],
        "processes": transport.processes_started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pswrap-bench-") as tmp:
        records = set_up_standin(Path(tmp))
        results = {}
        recorded = {}
        for name, transport in (("server mode", LocalTransport()), ("one-shot", OneShotTransport())):
            directory = use_records(records, name.replace(" ", "-"))
            results[name] = run(transport, args.calls)
            recorded[name] = len(list(directory.glob("proc-*.json")))

    server, oneshot = results["server mode"], results["one-shot"]
    print(f"{args.calls} calls of Write-Output against the pwsh stand-in\n")
    print(f"{'':14}{'per call':>11}{'median':>10}{'p95':>10}{'open':>9}{'total':>9}{'processes':>11}")
    for name, r in results.items():
        print(
            f"{name:14}{r['per_call_ms']:>8.2f} ms{r['median_ms']:>7.2f} ms{r['p95_ms']:>7.2f} ms"
            f"{r['open_s']:>7.2f} s{r['total_s']:>7.2f} s{recorded[name]:>11}"
        )
    print(f"\none-shot / server mode, per call: {oneshot['per_call_ms'] / server['per_call_ms']:.1f}x")
    print(f"server mode started {recorded['server mode']} process(es) for {args.calls} calls (must be 1)")
    if recorded["server mode"] != 1 or server["processes"] != 1:
        sys.exit("FAIL: server mode started more than one process")


if __name__ == "__main__":
    main()
