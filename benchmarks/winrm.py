"""The WinRM transport's cost per call: pswrap's PSRP client over pypsrp's WSMan, against pypsrp's own
PSRP client (RunspacePool/PowerShell), both talking to the WSMan stand-in (HTTP, NTLM, encryption).

    python benchmarks/winrm.py                       # 40 calls of 1, 200 and 2000 objects
    python benchmarks/winrm.py --calls 10 --objects 5000

Same host (in a process of its own, as a real host is), same calls, interleaved one for one so that
both clients see the same machine load, measured in the same run. pypsrp's figures are for its own objects; pswrap's
include the conversion to pswrap's object model (what a user gets). Figures vary with the machine:
compare the columns, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

from pswrap import Secret, Session, WinRMTransport  # noqa: E402
from tests.standins.wsman.server import WSManStandin  # noqa: E402

SCRIPT = "param($n) 1..$n | Write-Output"


def serve(users: str, ports: Any, stop: Any) -> None:
    """The WinRM host, in a process of its own as a real host is: its work does not share the
    client's interpreter (and lock)."""
    host = WSManStandin(Path(users)).start()
    ports.put(host.port)
    stop.wait()
    host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--objects", type=int, nargs="*", default=[1, 200, 2000])
    args = parser.parse_args()
    password = secrets.token_hex(8)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        users = Path(directory) / "users"
        users.write_text(f":bench:{password}\n", encoding="utf-8")
        ports, stop = context.Queue(), context.Event()
        server = context.Process(target=serve, args=(str(users), ports, stop), daemon=True)
        server.start()
        try:
            port = ports.get(timeout=60)
            print(
                f"{'objects':>8} {'client':<22} {'first call s':>12} {'median ms':>10} {'p90 ms':>8} {'objects/s':>10}"
            )
            for objects in args.objects:
                compare(port, password, objects, args.calls)
        finally:
            stop.set()
            server.join(timeout=30)


def compare(port: int, password: str, objects: int, calls: int) -> None:
    """Both clients on the same host, their calls interleaved so that both see the same load."""
    transport = WinRMTransport(
        "127.0.0.1", port=port, scheme="http", auth="ntlm", username="bench", password=Secret(password)
    )
    wsman = WSMan(
        "127.0.0.1", port=port, ssl=False, auth="ntlm", username="bench", password=password,
        encryption="always",
    )  # fmt: skip
    with Session(transport) as session, wsman, RunspacePool(wsman) as pool:

        def pswrap_call() -> object:
            return session.script(SCRIPT, n=objects).output

        def pypsrp_call() -> object:
            powershell = PowerShell(pool)
            powershell.add_script(SCRIPT).add_parameter("n", objects)
            output = powershell.invoke()
            powershell.close()
            return output

        runs = {"pswrap (psrpcore+WSMan)": pswrap_call, "pypsrp RunspacePool": pypsrp_call}
        first = {name: timed(run) for name, run in runs.items()}
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(calls):
            for name, run in runs.items():
                samples[name].append(timed(run))
    for name in runs:
        row(name, objects, first[name], samples[name])


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def row(name: str, objects: int, opened: float, samples: list[float]) -> None:
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1] if len(samples) >= 10 else max(samples)
    print(
        f"{objects:>8} {name:<22} {opened:>12.3f} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {objects / median:>10.0f}"
    )


if __name__ == "__main__":
    main()
