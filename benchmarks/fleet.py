"""Many tenants at once: the fleet against a sequential loop of ExchangeOnline sessions, in one run.

    python benchmarks/fleet.py                          # 200 tenants x 50 mailboxes
    python benchmarks/fleet.py --tenants 50 --pwsh-tenants 20

Starts the identity-provider and admin-API stand-ins (tests/standins) on loopback with ``--tenants``
tenants of ``--mailboxes`` mailboxes each (rendered before the clock starts), and writes a config for
the pwsh stand-in whose Exchange module serves the same tenants. Each client runs in a fresh
subprocess; its peak RSS is that of its whole process tree (pwsh and Ray processes included),
sampled every 50 ms. Secrets reach the children on stdin, never in argv or the environment.

- ``loop/rest``: ``for each tenant: with ExchangeOnline(settings, transport="rest")`` (the baseline);
- ``fleet/rest``: ``Fleet(settings, concurrency=…)`` over the same tenants;
- ``loop/pwsh`` and ``fleet/pwsh``: the same with ``transport="local"`` (one ``pwsh`` per tenant;
  the fleet keeps at most ``--pwsh-sessions`` warm and runs that many at once), over
  ``--pwsh-tenants`` tenants;
- ``ray/rest``: ``Fleet(…, backend="ray")`` on a local Ray instance (2 CPUs, 2 actors); the time
  Ray takes to start is shown apart.

Every client gets its tokens inside the measured time (one per tenant, as a real run would).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


# --- the children ---------------------------------------------------------------------------------


class _Peak:
    """The peak RSS of this process and its descendants, sampled on a thread."""

    def __init__(self) -> None:
        from pswrap.fleet import process_tree_rss

        self._measure = process_tree_rss
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._measure() or 0)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._measure() or 0)
        return self.peak / 2**20


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    from pswrap.config import Settings

    return {
        tenant["name"]: Settings(
            tenant=tenant["domain"],
            client_id=config["client_id"],
            client_secret=tenant["secret"],
            authority=config["authority"],
            ca_bundle=config["ca"],
            timeout=30.0,
            extra={"rest": {"base_url": config["base_url"]}},
        )
        for tenant in config["tenants"]
    }


def _loop(settings: dict[str, Any], transport: str) -> tuple[int, int]:
    from pswrap import ExchangeOnline

    objects = failed = 0
    for one in settings.values():
        try:
            with ExchangeOnline(one, transport=transport) as exo:
                for _ in exo.invoke("Get-Mailbox", ResultSize="Unlimited").stream():
                    objects += 1
        except Exception as exc:
            print(f"loop: {exc}", file=sys.stderr)
            failed += 1
    return objects, failed


def _fleet(settings: dict[str, Any], **options: Any) -> tuple[int, int]:
    from pswrap.fleet import Fleet

    with Fleet(settings, **options) as fleet:
        run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
        objects = sum(1 for _ in run)
        return objects, len(run.summary.failed)


def _child(scenario: str, options: dict[str, Any]) -> None:
    config = json.loads(sys.stdin.readline())
    settings = _settings(config)
    if scenario.endswith("pwsh"):
        settings = dict(list(settings.items())[: options["pwsh_tenants"]])
    extra: dict[str, Any] = {}
    peak = _Peak()
    if scenario == "ray/rest":
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        extra["ray_init"] = time.perf_counter() - started
    runs: dict[str, Callable[[], tuple[int, int]]] = {
        "loop/rest": lambda: _loop(settings, "rest"),
        "fleet/rest": lambda: _fleet(settings, concurrency=options["concurrency"]),
        "loop/pwsh": lambda: _loop(settings, "local"),
        "fleet/pwsh": lambda: _fleet(
            settings,
            transport="local",
            concurrency=options["pwsh_sessions"],
            max_sessions=options["pwsh_sessions"],
        ),
        "ray/rest": lambda: _fleet(settings, backend="ray", actors=2, concurrency=options["concurrency"]),
    }
    started = time.perf_counter()
    objects, failed = runs[scenario]()
    elapsed = time.perf_counter() - started
    peak_mb = peak.stop()
    result = {"scenario": scenario, "tenants": len(settings), "objects": objects, "failed": failed}
    result.update(seconds=elapsed, peak_mb=peak_mb, **extra)
    print(json.dumps(result))
    if scenario == "ray/rest":
        import ray

        ray.shutdown()


# --- the parent -------------------------------------------------------------------------------------


def _pwsh_wrapper(directory: Path) -> Path:
    entry = ROOT / "tests" / "standins" / "powershell" / "entry.py"
    wrapper = directory / "pwsh"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{entry}' \"$@\"\n", encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return directory


def _measure(
    scenario: str, config: dict[str, Any], env: dict[str, str], options: dict[str, Any]
) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", scenario, json.dumps(options)],
        input=json.dumps(config) + "\n",
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        raise SystemExit(f"{scenario} failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(lines[-1])
    print(f"  {scenario}: {data['seconds']:.1f} s", file=sys.stderr)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--pwsh-tenants", type=int, default=200, help="tenants for the pwsh runs")
    parser.add_argument("--pwsh-sessions", type=int, default=8, help="warm pwsh sessions in the fleet")
    parser.add_argument("--concurrency", type=int, default=32, help="tenants at once over REST")
    parser.add_argument("--skip", default="", help="scenarios to leave out, comma-separated")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], json.loads(args.child[1]))
        return

    from tests.standins.adminapi import AdminApi
    from tests.standins.idp import IdentityProvider
    from tests.standins.powershell.config import ENV_VAR

    client_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    options = {
        "concurrency": args.concurrency,
        "pwsh_tenants": min(args.pwsh_tenants, args.tenants),
        "pwsh_sessions": args.pwsh_sessions,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("idp", "adminapi", "bin"):
            Path(tmp, part).mkdir()
        with (
            IdentityProvider(workdir=Path(tmp, "idp"), max_requests=1_000_000) as idp,
            AdminApi(
                idp,
                workdir=Path(tmp, "adminapi"),
                mailboxes=args.mailboxes,
                max_requests=1_000_000,
                max_connections=2 * args.tenants + 64,  # warm sessions keep their connections open
            ) as api,
        ):
            tenants = []
            started = time.perf_counter()
            for index in range(args.tenants):
                name = f"t{index:03d}"
                tenant = idp.add_tenant(f"{name}.onmicrosoft.com")
                secret = "Zq8Q~" + secrets.token_urlsafe(26)
                idp.add_app(tenant, client_id=client_id, secret=secret)
                api.warm(tenant)
                tenants.append({"name": name, "domain": tenant.domain, "id": tenant.id, "secret": secret})
            print(
                f"stand-ins: {args.tenants} tenants x {args.mailboxes} mailboxes rendered in "
                f"{time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            config = {
                "client_id": client_id,
                "authority": idp.url,
                "ca": str(api.ca_path),
                "base_url": api.url,
                "tenants": tenants,
            }
            standin = Path(tmp, "pwsh-standin.json")
            switches = {
                "tenant_id": tenants[0]["id"],
                "organization": tenants[0]["domain"],
                "public_key_pem": idp.public_key_pem,
                "mailboxes": args.mailboxes,
                "tenants": {t["id"]: t["domain"] for t in tenants},
            }
            standin.write_text(
                json.dumps(
                    {"extensions": ["tests.standins.exchange.cmdlets"], "switches": {"exchange": switches}}
                ),
                encoding="utf-8",
            )
            env = dict(os.environ)
            env["PATH"] = f"{_pwsh_wrapper(Path(tmp, 'bin'))}{os.pathsep}{env.get('PATH', '')}"
            env[ENV_VAR] = str(standin)
            env["PYTHONPATH"] = str(ROOT)
            skip = {s.strip() for s in args.skip.split(",") if s.strip()}
            rows = [
                _measure(scenario, config, env, options)
                for scenario in ("loop/rest", "fleet/rest", "ray/rest", "loop/pwsh", "fleet/pwsh")
                if scenario not in skip
            ]

    print(
        f"\n{'client':<12}{'tenants':>8}{'objects':>9}{'failed':>7}{'seconds':>9}{'tenants/s':>10}{'peak RSS MB':>13}"
    )
    for row in rows:
        print(
            f"{row['scenario']:<12}{row['tenants']:>8}{row['objects']:>9}{row['failed']:>7}{row['seconds']:>9.1f}"
            f"{row['tenants'] / row['seconds']:>10.1f}{row['peak_mb']:>13.0f}"
        )
    by = {row["scenario"]: row for row in rows}
    for fast, slow in (("fleet/rest", "loop/rest"), ("fleet/pwsh", "loop/pwsh"), ("ray/rest", "fleet/rest")):
        if fast in by and slow in by:
            print(f"{fast} vs {slow}: {by[slow]['seconds'] / by[fast]['seconds']:.1f}x as fast")
    if "ray/rest" in by:
        print(f"(Ray itself took {by['ray/rest']['ray_init']:.1f} s to start, not counted above)")


if __name__ == "__main__":
    main()
