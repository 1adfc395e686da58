"""Per-call overhead: one server-mode session against one-shot processes, in one run.

    python benchmarks/session.py                # 200 calls each
    python benchmarks/session.py --calls 50     # a quicker run
    python benchmarks/session.py --real-calls 0 # the stand-in only

Then the same against a real pwsh (``PSWRAP_PWSH``, else ``pwsh`` on PATH; skipped without one): cold
start (process start to the first call's end), warm per-call median and p95 in server mode against
one-shot, and ExchangeOnline's connect against the test-only ExchangeOnlineManagement module
(tests/standins/exchange_module) with tokens from the identity-provider stand-in: opening (pwsh, token,
connect), ``Connect-ExchangeOnline`` again in a warm session, a warm Exchange call, and a one-shot
Exchange call (a process that connects, runs and disconnects).

Both run against the pwsh stand-in (tests/standins), set up in a temporary directory the way the
test fixture does: a ``pwsh`` wrapper first on PATH and a config that records every process started.
Each call is ``Write-Output -InputObject <i>`` and is read to its end. Server mode must start exactly
one process for all its calls; one-shot starts one per call. The stand-in is Python, so absolute
figures are not pwsh's (a real pwsh starts in 0.2-0.3 s, which makes one-shot dearer still); the
ratio and the process counts are the point.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import stat
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pswrap import ExchangeOnline, LocalTransport, OneShotTransport, Session  # noqa: E402
from pswrap.config import Settings  # noqa: E402
from tests.standins import exchange_module  # noqa: E402
from tests.standins.idp import IdentityProvider  # noqa: E402
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


def _ms(durations: list[float]) -> tuple[float, float]:
    """Median and p95 in milliseconds."""
    ordered = sorted(durations)
    return 1000 * statistics.median(ordered), 1000 * ordered[int(0.95 * (len(ordered) - 1))]


def _timed(action: Any, times: int) -> list[float]:
    durations = []
    for _ in range(times):
        begin = time.perf_counter()
        action()
        durations.append(time.perf_counter() - begin)
    return durations


def real_sessions(pwsh: str, calls: int, oneshot_calls: int) -> dict[str, dict[str, float]]:
    """Cold start and warm calls of ``Write-Output`` on a real pwsh, server mode and one-shot."""
    results = {}
    for name, transport, count in (
        ("server mode", LocalTransport(pwsh=pwsh), calls),
        ("one-shot", OneShotTransport(pwsh=pwsh), oneshot_calls),
    ):
        begin = time.perf_counter()
        with Session(transport) as session:
            assert session.invoke("Write-Output", InputObject=0).output == [0]
            cold = time.perf_counter() - begin
            warm = _timed(lambda: session.invoke("Write-Output", InputObject=1).output, count)
        median, p95 = _ms(warm)
        results[name] = {"cold_s": cold, "median_ms": median, "p95_ms": p95, "calls": count}
    return results


def _connect_again(exo: ExchangeOnline, organization: str) -> None:
    """``Connect-ExchangeOnline`` once more in the session's warm pwsh (what a token refresh costs)."""
    token = exo.provider.get_token()
    exo.session.run(
        "exchange-connect", AccessToken=token.token, Organization=organization, SkipLoadingFormatData=True
    ).wait()


def _get_mailbox(exo: ExchangeOnline) -> None:
    assert exo.invoke("Get-Mailbox", Identity="user0000001").output


def real_exchange(
    pwsh: str, root: Path, calls: int, oneshot_calls: int
) -> dict[str, tuple[float, float, int]]:
    """ExchangeOnline against the test module: (median ms, p95 ms, samples) per measure."""
    with IdentityProvider(workdir=root) as idp:
        tenant = idp.add_tenant("contoso.onmicrosoft.com")
        app = idp.add_app(tenant, secret="bench~" + os.urandom(16).hex())
        modules = exchange_module.install(root / "modules")
        exchange_module.configure(
            modules,
            exchange_module.ModuleConfig(tenants=[{"id": tenant.id, "domain": tenant.domain}], jwks=idp.jwks),
        )
        os.environ["PSModulePath"] = str(modules)  # noqa: SIM112 - pwsh reads it with this spelling
        settings = Settings(
            tenant=tenant.domain, client_id=app.client_id, client_secret=app.secret, authority=idp.url,
            ca_bundle=idp.ca_path, timeout=30.0,
        )  # fmt: skip
        measures: dict[str, list[float]] = {"open (pwsh + token + connect)": [], "connect, warm session": []}
        for _ in range(3):
            exo = ExchangeOnline(settings, pwsh=pwsh, timeout=120)
            begin = time.perf_counter()
            exo.open()
            measures["open (pwsh + token + connect)"].append(time.perf_counter() - begin)
            measures["connect, warm session"] += _timed(
                functools.partial(_connect_again, exo, tenant.domain), 5
            )
            if "Get-Mailbox, warm" not in measures:
                measures["Get-Mailbox, warm"] = _timed(functools.partial(_get_mailbox, exo), calls)
            exo.close()
        oneshot = ExchangeOnline(settings, pwsh=pwsh, transport="oneshot", timeout=120)
        measures["Get-Mailbox, one-shot"] = _timed(functools.partial(_get_mailbox, oneshot), oneshot_calls)
        oneshot.close()
    return {name: (*_ms(values), len(values)) for name, values in measures.items()}


def print_real(pwsh: str, root: Path, calls: int, oneshot_calls: int) -> None:
    sessions = real_sessions(pwsh, calls, oneshot_calls)
    server, oneshot = sessions["server mode"], sessions["one-shot"]
    print(f"\nReal pwsh ({pwsh}): Write-Output, cold start and warm calls\n")
    print(f"{'':14}{'cold start':>12}{'median':>11}{'p95':>11}{'calls':>7}")
    for name, r in sessions.items():
        print(
            f"{name:14}{r['cold_s']:>10.2f} s{r['median_ms']:>8.1f} ms{r['p95_ms']:>8.1f} ms{int(r['calls']):>7}"
        )
    print(f"\none-shot / server mode, warm median: {oneshot['median_ms'] / server['median_ms']:.0f}x")
    exchange = real_exchange(pwsh, root, calls, oneshot_calls)
    print(
        "\nReal pwsh, ExchangeOnline against the test ExchangeOnlineManagement 3.7.2 and the IdP stand-in\n"
    )
    print(f"{'':32}{'median':>11}{'p95':>11}{'samples':>9}")
    for name, (median, p95, samples) in exchange.items():
        print(f"{name:32}{median:>8.1f} ms{p95:>8.1f} ms{samples:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--real-calls", type=int, default=50, help="warm calls on a real pwsh (0: skip it)")
    parser.add_argument("--real-oneshot-calls", type=int, default=10, help="one-shot calls on a real pwsh")
    args = parser.parse_args()
    real = os.environ.get("PSWRAP_PWSH") or shutil.which("pwsh")  # before the stand-in goes first on PATH
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
    if args.real_calls <= 0:
        return
    if real is None:
        print("\nReal pwsh: none found (PSWRAP_PWSH or pwsh on PATH); its figures are skipped")
        return
    with tempfile.TemporaryDirectory(prefix="pswrap-bench-real-") as tmp:
        print_real(real, Path(tmp), args.real_calls, args.real_oneshot_calls)


if __name__ == "__main__":
    main()
