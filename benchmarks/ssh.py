"""The SSH transport's cost: connecting, and the median call returning 1, 200 and 2,000 objects, beside
local server mode and WinRM, in one run.

    python benchmarks/ssh.py                   # 20 calls of each size
    python benchmarks/ssh.py --calls 40 --objects 1 5000

Like against like: the pwsh stand-in serves all three (local ``pwsh -s``; ``-sshs`` as the ``standin``
subsystem of a real Debian sshd on loopback; the WSMan stand-in's shells host the same PSRP runtime),
so the columns differ only by transport. Where a real pwsh is found, it runs locally and over SSH too
(rows marked "real pwsh"). Connect is the first call on a fresh transport (process start, SSH handshake
and login, or WinRM authentication, plus opening the runspace pool). Figures vary with the machine
(and its load): compare rows of the same run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pswrap import LocalTransport, Secret, Session, SSHTransport, Transport, WinRMTransport  # noqa: E402
from tests import realpwsh, sshserver  # noqa: E402
from tests.standins.wsman.server import WSManStandin  # noqa: E402

SCRIPT = "param($n) 1..$n | Write-Output"


def measure(make: Callable[[], Transport], sizes: list[int], calls: int) -> tuple[float, dict[int, float]]:
    """Seconds to the first call's answer on a fresh transport, and each size's median call in seconds."""
    started = time.perf_counter()
    with Session(make(), timeout=300) as session:
        session.script(SCRIPT, n=1).wait()
        connect = time.perf_counter() - started
        medians = {}
        for n in sizes:
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                assert len(session.script(SCRIPT, n=n).output) == n
                samples.append(time.perf_counter() - start)
            medians[n] = statistics.median(samples)
    return connect, medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--objects", type=int, nargs="*", default=[1, 200, 2000])
    args = parser.parse_args()
    if sshserver.SSHD is None:
        sys.exit("needs OpenSSH's sshd (Debian: openssh-server)")
    directory = Path(tempfile.mkdtemp(prefix="pswrap-bench-ssh-"))
    bin_dir = directory / "standin-bin"
    bin_dir.mkdir()
    standin = bin_dir / "pwsh"
    standin.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{sshserver.ENTRY}' \"$@\"\n")
    standin.chmod(0o755)
    config = directory / "standin.json"
    config.write_text("{}")
    os.environ[sshserver.STANDIN_ENV] = str(config)
    password = secrets.token_hex(8)
    users = directory / "wsman-users"
    users.write_text(f":bench:{password}\n", encoding="utf-8")
    (directory / "sshd").mkdir()
    sshd = sshserver.SSHServer(directory / "sshd")
    (sshd.dir / "known_hosts").write_text(sshd.known_hosts_line())
    wsman = WSManStandin(users).start()

    def ssh(subsystem: str) -> Callable[[], Transport]:
        return lambda: SSHTransport(
            f"{sshd.user}@127.0.0.1",
            sshd.port,
            key_file=sshd.client_key,
            known_hosts=sshd.dir / "known_hosts",
            agent=False,
            subsystem=subsystem,
        )

    rows: list[tuple[str, Callable[[], Transport]]] = [
        ("local pwsh -s (stand-in)", lambda: LocalTransport(pwsh=standin)),
        ("ssh -sshs (stand-in)", ssh("standin")),
        (
            "winrm (stand-in)",
            lambda: WinRMTransport(
                "127.0.0.1",
                port=wsman.port,
                scheme="http",
                auth="ntlm",
                username="bench",
                password=Secret(password),
            ),
        ),
    ]
    if realpwsh.PWSH and "powershell" in sshd.subsystems:
        real = realpwsh.PWSH
        rows += [
            ("local pwsh -s (real pwsh)", lambda: LocalTransport(pwsh=real)),
            ("ssh -sshs (real pwsh)", ssh("powershell")),
        ]
    try:
        sizes = "".join(f"{f'{n} objects ms':>16}" for n in args.objects)
        print(f"{'transport':<28}{'connect s':>10}{sizes}")
        for name, make in rows:
            connect, medians = measure(make, args.objects, args.calls)
            figures = "".join(f"{medians[n] * 1000:>16.1f}" for n in args.objects)
            print(f"{name:<28}{connect:>10.2f}{figures}", flush=True)
    finally:
        wsman.stop()
        sshd.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
