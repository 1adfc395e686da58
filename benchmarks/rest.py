"""The admin REST transport's speed and memory: pswrap against the naive script, in one run.

    python benchmarks/rest.py                        # 2,500, 20,000 and 100,000 mailboxes, pages of 1,000
    python benchmarks/rest.py --counts 2500,20000    # a quicker run

Starts the identity-provider and admin-API stand-ins (tests/standins) on loopback with the largest count of
mailboxes shaped like Exchange's (about 5.6 kB of JSON each), renders them once so that serving costs
the stand-in next to nothing, then reads them in a fresh subprocess per client, so each peak RSS is
its own:

- ``pswrap``: ``Session(RestTransport(settings)).invoke("Get-Mailbox", ResultSize=…).stream()``, typed
  objects (GUIDs, dates, TimeSpans) handed over one by one, pages fetched one ahead;
- ``naive``: what scripts do today: ``requests`` + ``resp.json()`` per page, following
  ``@odata.nextLink``, accumulating the raw ``value`` dicts in a list (untyped, annotations left in).

Each client runs at every count: pswrap's peak (``VmHWM`` of its own process) must stay flat — within
10 MB from the smallest count to the largest, and under 64 MB — however many objects come back. The token is fetched before the clock starts; secrets reach the
children on stdin, never in argv or the environment.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ANCHOR = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant_id}"


def _pswrap(config: dict[str, Any], count: int, page_size: int) -> tuple[int, float, float]:
    from pswrap import Session, Settings
    from pswrap.transports.rest import RestTransport

    settings = Settings(
        tenant=config["tenant"],
        client_id=config["client_id"],
        client_secret=config["secret"],
        authority=config["authority"],
        ca_bundle=config["ca"],
    )
    transport = RestTransport(settings, base_url=config["base_url"], page_size=page_size)
    transport.token_provider.get_token()  # the token is not what is measured
    seen = 0
    first = 0.0
    with Session(transport) as session:
        start = time.perf_counter()
        for mailbox in session.invoke("Get-Mailbox", ResultSize=count).stream():
            if not seen:
                first = time.perf_counter() - start
            seen += 1
            mailbox["Guid"]  # a reader looks at what it gets
        elapsed = time.perf_counter() - start
    return seen, elapsed, first


def _naive(config: dict[str, Any], count: int, page_size: int) -> tuple[int, float, float]:
    import requests

    http = requests.Session()
    http.verify = config["ca"]
    http.trust_env = False
    headers = {
        "Authorization": f"Bearer {config['token']}",
        "Content-Type": "application/json",
        "X-AnchorMailbox": ANCHOR.format(tenant_id=config["tenant_id"]),
        "Prefer": f"odata.maxpagesize={page_size}",
    }
    body = json.dumps({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": count}}})
    url: str | None = f"{config['base_url']}/adminapi/beta/{config['tenant']}/InvokeCommand"
    values: list[Any] = []
    first = 0.0
    start = time.perf_counter()
    while url:
        response = http.post(url, data=body, headers=headers, timeout=300)
        response.raise_for_status()
        page = response.json()
        values.extend(page["value"])
        if not first:
            first = time.perf_counter() - start
        url = page.get("@odata.nextLink")
    elapsed = time.perf_counter() - start
    return len(values), elapsed, first


def _peak_kib() -> int:
    """This process's peak RSS. On Linux ``VmHWM``: ``ru_maxrss`` would include the parent's peak,
    which carries over a fork and exec (and the parent holds the stand-in's rendered mailboxes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(client: str, count: int, page_size: int) -> None:
    config = json.loads(sys.stdin.readline())
    run = _pswrap if client == "pswrap" else _naive
    seen, elapsed, first = run(config, count, page_size)
    peak_kib = _peak_kib()
    print(
        json.dumps(
            {
                "client": client,
                "objects": seen,
                "seconds": elapsed,
                "first": first,
                "peak_mb": peak_kib / 1024,
            }
        )
    )


def _measure(client: str, count: int, page_size: int, config: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", client, str(count), str(page_size)],
        input=json.dumps(config) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"{client} failed:\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if data["objects"] != count:
        raise SystemExit(f"{client} read {data['objects']} objects, not {count}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--counts",
        default="2500,20000,100000",
        help="mailboxes to read, comma-separated (default 2500,20000,100000)",
    )
    parser.add_argument("--page-size", type=int, default=1000, help="odata.maxpagesize (default 1000)")
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "COUNT", "PAGE_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return

    counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    largest = counts[-1]
    from tests.standins.adminapi import AdminApi
    from tests.standins.idp import IdentityProvider

    with tempfile.TemporaryDirectory() as tmp:
        idp_dir, api_dir = Path(tmp, "idp"), Path(tmp, "adminapi")
        idp_dir.mkdir()
        api_dir.mkdir()
        with (
            IdentityProvider(workdir=idp_dir) as idp,
            AdminApi(idp, workdir=api_dir, mailboxes=largest) as api,
        ):
            tenant = idp.add_tenant("contoso.onmicrosoft.com")
            secret = "Zq8Q~" + secrets.token_urlsafe(26)
            app = idp.add_app(tenant, secret=secret)
            started = time.perf_counter()
            api.warm(tenant)
            print(f"stand-in: {largest:,} mailboxes rendered in {time.perf_counter() - started:.1f} s "
                  f"(served from memory from now on), pages of {args.page_size}\n")  # fmt: skip
            common = {"tenant": tenant.domain, "ca": str(api.ca_path), "base_url": api.url}
            pswrap_config = {**common, "client_id": app.client_id, "secret": secret, "authority": idp.url}
            naive_config = {**common, "token": idp.issue_token(app), "tenant_id": tenant.id}
            rows = []
            for count in counts:
                rows.append(_measure("pswrap", count, args.page_size, pswrap_config))
                rows.append(_measure("naive", count, args.page_size, naive_config))

    print(
        f"{'client':<9}{'objects':>9}{'seconds':>9}{'objects/s':>11}{'peak RSS MB':>13}{'first object':>14}"
    )
    for row in rows:
        print(
            f"{row['client']:<9}{row['objects']:>9}{row['seconds']:>9.2f}{row['objects'] / row['seconds']:>11,.0f}"
            f"{row['peak_mb']:>13.1f}{row['first'] * 1000:>11.0f} ms"
        )
    by = {(row["client"], row["objects"]): row for row in rows}
    print()
    for count in counts:
        mine, theirs = by[("pswrap", count)], by[("naive", count)]
        speed = (mine["objects"] / mine["seconds"]) / (theirs["objects"] / theirs["seconds"])
        print(
            f"at {count:>7,}: pswrap {speed:.2f}x the naive loop's objects per second (and types every value)"
        )
    peaks = [by[("pswrap", count)]["peak_mb"] for count in counts]
    spread = max(peaks) - min(peaks)
    verdict = "flat" if spread <= 10 and max(peaks) < 64 else "NOT flat"
    print(
        f"pswrap peak RSS {min(peaks):.1f}..{max(peaks):.1f} MB over {counts[0]:,}..{largest:,} objects: "
        f"spread {spread:.1f} MB ({verdict}; target: within 10 MB, under 64 MB); "
        f"naive: {by[('naive', largest)]['peak_mb']:.0f} MB at {largest:,}"
    )


if __name__ == "__main__":
    main()
