"""The WinRM transport's cost per call: pswrap's PSRP client over pypsrp's WSMan, against pypsrp's own
PSRP client (RunspacePool/PowerShell), both talking to the WSMan stand-in (HTTP, NTLM, encryption).

    python benchmarks/winrm.py                       # 40 calls of 1, 200 and 2000 objects
    python benchmarks/winrm.py --calls 10 --objects 5000

Same host, same calls, measured in the same run. pypsrp's figures are for its own objects; pswrap's
include the conversion to pswrap's object model (what a user gets). Figures vary with the machine:
compare the columns, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

from pswrap import Secret, Session, WinRMTransport  # noqa: E402
from tests.standins.wsman.server import WSManStandin  # noqa: E402

SCRIPT = "param($n) 1..$n | Write-Output"


def timed(run: Callable[[], object], calls: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    first = run()
    opened = time.perf_counter() - started
    del first
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return opened, samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--objects", type=int, nargs="*", default=[1, 200, 2000])
    args = parser.parse_args()
    password = secrets.token_hex(8)
    with tempfile.TemporaryDirectory() as directory:
        users = Path(directory) / "users"
        users.write_text(f":bench:{password}\n", encoding="utf-8")
        host = WSManStandin(users).start()
        try:
            print(
                f"{'objects':>8} {'client':<22} {'first call s':>12} {'median ms':>10} {'p90 ms':>8} {'objects/s':>10}"
            )
            for objects in args.objects:
                transport = WinRMTransport(
                    "127.0.0.1",
                    port=host.port,
                    scheme="http",
                    auth="ntlm",
                    username="bench",
                    password=Secret(password),
                )
                with Session(transport) as session:
                    row(
                        "pswrap (psrpcore+WSMan)",
                        objects,
                        args.calls,
                        lambda n=objects: session.script(SCRIPT, n=n).output,
                    )
                wsman = WSMan(
                    "127.0.0.1", port=host.port, ssl=False, auth="ntlm", username="bench", password=password,
                    encryption="always",
                )  # fmt: skip
                with wsman, RunspacePool(wsman) as pool:

                    def pypsrp_call(pool: RunspacePool = pool, n: int = objects) -> object:
                        powershell = PowerShell(pool)
                        powershell.add_script(SCRIPT).add_parameter("n", n)
                        output = powershell.invoke()
                        powershell.close()
                        return output

                    row("pypsrp RunspacePool", objects, args.calls, pypsrp_call)
        finally:
            host.stop()


def row(name: str, objects: int, calls: int, run: Callable[[], object]) -> None:
    opened, samples = timed(run, calls)
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1] if len(samples) >= 10 else max(samples)
    print(
        f"{objects:>8} {name:<22} {opened:>12.3f} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {objects / median:>10.0f}"
    )


if __name__ == "__main__":
    main()
