"""Record what real pwsh writes, as test data the suite replays where there is no pwsh.

Run from the project root with pwsh on PATH (or ``PSWRAP_PWSH``)::

    python -m tests.capture_real_pwsh            # rewrites tests/data/real_pwsh/

It records three things (``tests/data/real_pwsh/manifest.json`` names the pwsh version, the date and
the command behind each file):

- ``clixml/<kind>.xml``: ``Export-Clixml`` of each value in :data:`CLIXML_KINDS`, byte for byte as
  pwsh wrote it but for the scrubbing below;
- ``session/local.jsonl``: every line pswrap's :class:`~pswrap.LocalTransport` wrote to ``pwsh -s``
  and every line pwsh answered (``in``/``out``), in the order a tee between them saw them, while the
  session scenarios of :data:`SESSION_STEPS` ran;
- ``session/oneshot-<step>.json``: stdin, stdout, stderr and exit code of each
  :class:`~pswrap.OneShotTransport` run of the same scenarios.

Scrubbing (``scrub``): the capture's temporary directory becomes ``/tmp/pswrap-capture``, pwsh's
install directory ``/opt/microsoft/powershell/7``, the home directory ``/home/user``, and the user
and host names (in the elements that carry them: ``User``, ``Computer``, ``MachineName``…) ``user``
and a neutral host name of the same length. Inside PSRP fragments only same-length replacements are
made, so every fragment and message length stays true. Nothing else is touched: the data is what
pwsh wrote. ``check_clean`` refuses to write data that still names the machine.

``tee`` mode (``python tests/capture_real_pwsh.py tee LOG -- pwsh …``) is the wrapper the capture
runs in place of pwsh: it starts the real pwsh and copies its three streams, logging each line.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "real_pwsh"
NEUTRAL_TMP = "/tmp/pswrap-capture"
NEUTRAL_PWSH_DIR = "/opt/microsoft/powershell/7"
NEUTRAL_HOME = "/home/user"

# name -> (PowerShell statements whose last writes the value, Export-Clixml -Depth). A body of one expression
# gets a leading comma (see _body); longer ones write theirs with one, so a collection is not unrolled.
CLIXML_KINDS: dict[str, tuple[str, int]] = {
    "byte": ("[byte]255", 2),
    "sbyte": ("[sbyte]-128", 2),
    "int16": ("[int16]-32768", 2),
    "uint16": ("[uint16]65535", 2),
    "int32": ("[int32]::MinValue", 2),
    "uint32": ("[uint32]::MaxValue", 2),
    "int64": ("[int64]::MinValue", 2),
    "uint64": ("[uint64]::MaxValue", 2),
    "single": ("[single]1.25", 2),
    "single_inexact": ("[single]0.1", 2),
    "double": ("[double]0.1", 2),
    "double_special": (
        "@([double]::NaN, [double]::PositiveInfinity, [double]::NegativeInfinity, "
        "[BitConverter]::Int64BitsToDouble([long]::MinValue), [double]::Epsilon, [double]::MaxValue)",
        2,
    ),
    "decimal": ("@([decimal]'1.10', [decimal]::MaxValue, [decimal]'-0.0000000000000000000000000001')", 2),
    "bigint": ("[bigint]::Parse('-123456789012345678901234567890')", 2),
    "datetime_utc": ("[datetime]::new(2024, 2, 29, 23, 59, 58, [DateTimeKind]::Utc).AddTicks(1234567)", 2),
    "datetime_local": ("[datetime]::new(2024, 7, 1, 8, 30, 0, [DateTimeKind]::Local)", 2),
    "datetime_unspecified": ("[datetime]::new(1999, 12, 31, 23, 59, 59, [DateTimeKind]::Unspecified)", 2),
    "datetime_extremes": ("@([datetime]::MinValue, [datetime]::MaxValue)", 2),
    "datetimeoffset": ("[datetimeoffset]::new(2024, 5, 6, 7, 8, 9, [timespan]::FromHours(2))", 2),
    "timespan": ("@([timespan]::new(1234567890123), [timespan]::new(-1), [timespan]::Zero)", 2),
    "guid": ("[guid]'9f3ad1c2-5b7e-4c1a-8e2f-0a1b2c3d4e5f'", 2),
    "version": ("@([version]'1.2.3.4', [version]'1.2')", 2),
    "uri": ("[uri]'https://example.com/a%20b?q=1&r=2#frag'", 2),
    "bytes": ("[byte[]](0, 1, 127, 128, 255)", 2),
    "char": ("@([char]'A', [char]0x00E9, [char]0)", 2),
    "bool": ("@($true, $false)", 2),
    "string": ('"multi`r`nline _x0041_ <&> ’quoted’ é 🎵 `t tab"', 2),
    "empty_string": ("''", 2),
    "null": ("$null", 2),
    "null_in_list": ("@(1, $null, 'x')", 2),
    "empty_list": ("@()", 2),
    "mixed_array": ("@(1, 'two', 3.5, $true, [guid]::Empty, [decimal]'4.0', @('nested'))", 2),
    "nested_list": ("@(1, @(2, @(3, @(4, @(5)))))", 2),
    "arraylist": ("$l = [System.Collections.ArrayList]::new(); [void]$l.Add('a'); [void]$l.Add(2); ,$l", 2),
    "generic_list": ("$l = [System.Collections.Generic.List[int]]::new(); $l.Add(1); $l.Add(2); ,$l", 2),
    "hashtable": ("@{ Name = 'x'; Count = 3 }", 2),
    "hashtable_keys": (
        "@{ 1 = 'one'; [guid]'00000000-0000-0000-0000-000000000001' = 'guid'; 'k' = $null }",
        2,
    ),
    "ordered": ("[ordered]@{ zeta = 1; alpha = 2; mid = 3 }", 2),
    "nested_hashtable": ("@{ outer = @{ inner = @{ deep = @{ deeper = 1 } } } }", 2),
    "empty_hashtable": ("@{}", 2),
    "stack": ("$s = [System.Collections.Stack]::new(); $s.Push(1); $s.Push('two'); ,$s", 2),
    "queue": ("$q = [System.Collections.Queue]::new(); $q.Enqueue(1); $q.Enqueue('two'); ,$q", 2),
    "enum": ("[System.DayOfWeek]::Friday", 2),
    "flags": ("[System.IO.FileAttributes]'ReadOnly, Hidden'", 2),
    "pscustomobject": (
        "[pscustomobject]@{ Name = 'parent'; Size = 10; Child = [pscustomobject]@{ Name = 'child'; "
        "Tags = @('a', 'b') } }",
        2,
    ),
    "typed_pscustomobject": ("[pscustomobject]@{ PSTypeName = 'Contoso.Widget'; Id = 7 }", 2),
    "shared_reference": ("$o = [pscustomobject]@{ A = 1 }; ,@($o, $o, [pscustomobject]@{ A = 1 })", 2),
    "string_with_note": (
        "$s = 'text' | Add-Member -NotePropertyName Source -NotePropertyValue 'n' -PassThru; ,$s",
        2,
    ),
    "error_record": (
        "try { Get-Item -LiteralPath '/nonexistent/pswrap-missing.txt' -ErrorAction Stop } catch { ,$_ }",
        2,
    ),
    "warning_record": ("Write-Warning 'careful' 3>&1", 2),
    "information_record": ("Write-Information 'for you' -Tags t1 6>&1", 2),
    "securestring": ("ConvertTo-SecureString 'not-a-secret-test-value' -AsPlainText -Force", 2),
    "scriptblock": ("{ param($x) $x + 1 }", 2),
    "xml": ("[xml]'<root a=\"1\"><child>text &amp; more</child></root>'", 2),
    "switch": ("[switch]$true", 2),
    "get_date": ("Get-Date -Date ([datetime]::new(2024, 5, 6, 7, 8, 9, [DateTimeKind]::Utc))", 2),
    "get_item": ("Get-Item -LiteralPath (Join-Path $OutDir 'sample.txt')", 1),
    "get_command": ("Get-Command -Name Get-Item", 1),
    "get_process": ("Get-Process -Id $PID", 1),
}

_GENERATOR = r"""
param([string]$OutDir, [string]$KindsFile)
$ErrorActionPreference = 'Stop'
Set-Content -LiteralPath (Join-Path $OutDir 'sample.txt') -Value 'sample' -NoNewline
[IO.File]::SetLastWriteTimeUtc((Join-Path $OutDir 'sample.txt'), [datetime]::new(2024, 1, 2, 3, 4, 5, [DateTimeKind]::Utc))
$kinds = Get-Content -LiteralPath $KindsFile -Raw | ConvertFrom-Json
foreach ($kind in $kinds) {
    $block = [scriptblock]::Create($kind.Body)
    $value = & $block
    # Piped with a comma: the value itself is the one object written (-InputObject would run a script block)
    , $value | Export-Clixml -Path (Join-Path $OutDir ($kind.Name + '.xml')) -Depth $kind.Depth
}
"""


def pwsh_path() -> str:
    found = os.environ.get("PSWRAP_PWSH") or shutil.which("pwsh")
    if not found:
        raise SystemExit("no pwsh on PATH (or PSWRAP_PWSH): nothing to capture")
    return found


def pwsh_version(pwsh: str) -> str:
    done = subprocess.run(
        [
            pwsh,
            "-NoLogo",
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "$PSVersionTable.PSVersion.ToString()",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


# --------------------------------------------------------------------------------------------------
# Scrubbing
# --------------------------------------------------------------------------------------------------


class Scrubber:
    """Replaces what names this machine (paths, user, host) with neutral text."""

    def __init__(self, pwsh: str, tmp: Path) -> None:
        self.user = getpass.getuser()
        self.tmp_name = tmp.name
        self.host = socket.gethostname()
        self.neutral_host = ("pswrap-host" * (1 + len(self.host) // 11))[: len(self.host)]
        self.neutral_user = ("user" * (1 + len(self.user) // 4))[: len(self.user)]
        pwsh_dir = str(Path(os.path.realpath(pwsh)).parent)
        self.paths = [  # longest first
            (str(tmp.resolve()), NEUTRAL_TMP),
            (str(tmp), NEUTRAL_TMP),
            (str(tmp.resolve()).lstrip("/"), NEUTRAL_TMP.lstrip("/")),  # a drive's CurrentLocation
            (pwsh_dir, NEUTRAL_PWSH_DIR),
            (str(Path(pwsh).parent), NEUTRAL_PWSH_DIR),
            (str(Path.home()), NEUTRAL_HOME),
        ]
        self.paths.sort(key=lambda pair: -len(pair[0]))
        # A path, not the same text inside a closing tag ("</root>") or a longer name.
        self._patterns = [
            (re.compile(rf"(?<!<)(?<!&lt;){re.escape(old)}(?![\w.-])"), new) for old, new in self.paths
        ]
        names = "|".join(["User", "UserName", "Computer", "ComputerName", "MachineName", "Owner", "Group"])
        self._named = re.compile(rf'(<S N="(?:{names})">)([^<]*)(</S>)')

    def text(self, text: str) -> str:
        """Scrub CLIXML or other text (lengths may change)."""
        for pattern, new in self._patterns:
            text = pattern.sub(new, text)
        return self._named.sub(self._name, text)

    def _name(self, match: re.Match[str]) -> str:
        value = match.group(2)
        if value == self.host or value.lower() == self.host.lower():
            value = self.neutral_host
        elif value == self.user or ("\\" in value and value.split("\\")[-1] == self.user):
            value = self.neutral_user
        return match.group(1) + value + match.group(3)

    def same_length(self, data: bytes) -> bytes:
        """Scrub PSRP fragment bytes without changing any length (names only, in their elements)."""
        text = data.decode("latin-1")
        scrubbed = self._named.sub(self._name, text)
        assert len(scrubbed) == len(text)
        return scrubbed.encode("latin-1")

    def leaks(self, text: str) -> list[str]:
        """What in ``text`` still names this machine."""
        found = [
            old
            for (old, _), (pattern, _) in zip(self.paths, self._patterns, strict=True)
            if pattern.search(text)
        ]
        found += [m for m in ("/root/", "/work/", str(Path.cwd()), self.tmp_name) if m in text]
        if re.search(rf">{re.escape(self.host)}<", text):
            found.append("host name")
        if re.search(rf">{re.escape(self.user)}<|\\{re.escape(self.user)}\b", text):
            found.append("user name")
        return found


def check_clean(scrubber: Scrubber, name: str, text: str) -> None:
    leaks = scrubber.leaks(text)
    if leaks:
        raise SystemExit(f"{name} still names this machine ({', '.join(leaks)}): extend the scrubbing")


# --------------------------------------------------------------------------------------------------
# Export-Clixml of each kind
# --------------------------------------------------------------------------------------------------


def _body(body: str) -> str:
    return body if ";" in body or body.startswith("try") else f",({body})"


def capture_clixml(pwsh: str, tmp: Path, scrubber: Scrubber, manifest: dict[str, Any]) -> None:
    out = tmp / "clixml"
    out.mkdir()
    kinds_file = tmp / "kinds.json"
    kinds = [{"Name": n, "Body": _body(body), "Depth": depth} for n, (body, depth) in CLIXML_KINDS.items()]
    kinds_file.write_text(json.dumps(kinds), encoding="utf-8")
    script = tmp / "generate.ps1"
    script.write_text(_GENERATOR, encoding="utf-8")
    subprocess.run(
        [
            pwsh,
            "-NoLogo",
            "-NoProfile",
            "-NonInteractive",
            "-File",
            str(script),
            "-OutDir",
            str(out),
            "-KindsFile",
            str(kinds_file),
        ],
        check=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=tmp,  # Get-Item's drive records the current location
    )
    target = DATA / "clixml"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, (body, depth) in CLIXML_KINDS.items():
        raw = (out / f"{name}.xml").read_bytes()
        text = scrubber.text(raw.decode("utf-8-sig"))
        check_clean(scrubber, f"clixml/{name}.xml", text)
        bom = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
        (target / f"{name}.xml").write_bytes(bom + text.encode("utf-8"))
        manifest["files"][f"clixml/{name}.xml"] = (
            f", (& {{ {_body(body)} }}) | Export-Clixml -Path {name}.xml -Depth {depth}"
        )


# --------------------------------------------------------------------------------------------------
# Sessions through a tee
# --------------------------------------------------------------------------------------------------


def tee(log_path: str, argv: list[str]) -> int:
    """Run ``argv`` with its streams copied to and from ours, logging each chunk (``in``/``out``/``err``)."""
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def record(direction: str, data: bytes) -> None:
        try:
            event = {"dir": direction, "text": data.decode("utf-8")}
        except UnicodeDecodeError:
            event = {"dir": direction, "base64": base64.b64encode(data).decode("ascii")}
        log.write(json.dumps(event) + "\n")
        log.flush()

    def pump(source: Any, sink: Any, direction: str) -> None:
        while True:
            data = os.read(source.fileno(), 65536)
            if not data:
                break
            with lock:  # log before passing it on: the log's order is one the peers could see
                record(direction, data)
            try:
                sink.write(data)
                sink.flush()
            except (OSError, ValueError):
                pass
        if direction == "in":
            sink.close()

    threads = [
        threading.Thread(target=pump, args=(sys.stdin.buffer, child.stdin, "in"), daemon=True),
        threading.Thread(target=pump, args=(child.stdout, sys.stdout.buffer, "out")),
        threading.Thread(target=pump, args=(child.stderr, sys.stderr.buffer, "err")),
    ]
    for thread in threads:
        thread.start()
    code = child.wait()
    for thread in threads[1:]:
        thread.join()
    with lock:
        log.write(json.dumps({"dir": "exit", "code": code}) + "\n")
        log.close()
    return code


def _tee_command(pwsh: str, log: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "tee", str(log), "--", pwsh]


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def _bytes(event: dict[str, Any]) -> bytes:
    if "text" in event:
        return str(event["text"]).encode("utf-8")
    return base64.b64decode(event["base64"])


def capture_local(pwsh: str, tmp: Path, scrubber: Scrubber, manifest: dict[str, Any]) -> None:
    from pswrap import LocalTransport, Session
    from tests.real_pwsh_replay import SESSION_STEPS

    log = tmp / "local.jsonl"
    with Session(LocalTransport(pwsh=_tee_command(pwsh, log)), timeout=120, progress=True) as session:
        for step in SESSION_STEPS.values():
            step(session)
        # The AES key pwsh chose for this session (it encrypted it with pswrap's RSA key, which dies
        # with the client): the replay re-encrypts it for the replaying client's key.
        key = session.transport._connection.client._pool._cipher._cipher.algorithm.key  # type: ignore[attr-defined]
    lines: list[dict[str, Any]] = [{"dir": "session_key", "hex": key.hex()}]
    pending: dict[str, str] = {"in": "", "out": ""}
    for event in _events(log):
        direction = event["dir"]
        if direction in pending:  # chunks into packets (one a line), in the order the tee saw them
            text = pending[direction] + _bytes(event).decode("ascii")
            *complete, pending[direction] = text.split("\n")
            lines += [{"dir": direction, "line": _scrub_packet(scrubber, p + "\n")} for p in complete]
        elif direction == "exit":
            lines.append(event)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    _check_packets(scrubber, "session/local.jsonl", lines)
    (DATA / "session").mkdir(parents=True, exist_ok=True)
    (DATA / "session" / "local.jsonl").write_text(text, encoding="utf-8")
    manifest["files"]["session/local.jsonl"] = (
        "LocalTransport (pwsh -NoLogo -NoProfile -s) through a tee, running the steps "
        f"{', '.join(SESSION_STEPS)} of tests/real_pwsh_replay.py on one Session(progress=True)"
    )


_DATA_PACKET = re.compile(r"^(<Data Stream='\w+' PSGuid='[0-9a-f-]+'>)([A-Za-z0-9+/=]*)(</Data>\s*)$")


def _scrub_packet(scrubber: Scrubber, line: str) -> str:
    match = _DATA_PACKET.match(line)
    if match is None:
        return line
    data = scrubber.same_length(base64.b64decode(match.group(2)))
    return match.group(1) + base64.b64encode(data).decode("ascii") + match.group(3)


def _check_packets(scrubber: Scrubber, name: str, lines: list[dict[str, Any]]) -> None:
    decoded = []
    for line in lines:
        match = _DATA_PACKET.match(line.get("line", ""))
        if match:
            decoded.append(base64.b64decode(match.group(2)).decode("utf-8", "replace"))
    check_clean(scrubber, name, "\n".join(decoded))


def capture_oneshot(pwsh: str, tmp: Path, scrubber: Scrubber, manifest: dict[str, Any]) -> None:
    from pswrap import OneShotTransport, Session
    from pswrap.transports.oneshot import BOOTSTRAP
    from tests.real_pwsh_replay import ONESHOT_KNOWN_DIFFERENCES, ONESHOT_STEPS

    manifest["oneshot_bootstrap_sha256"] = hashlib.sha256(BOOTSTRAP.encode("utf-8")).hexdigest()

    for name, step in ONESHOT_STEPS.items():
        log = tmp / f"oneshot-{name}.jsonl"
        with Session(OneShotTransport(pwsh=_tee_command(pwsh, log)), timeout=120, progress=True) as session:
            try:
                step(session)
            except (AssertionError, ValueError):
                if name not in ONESHOT_KNOWN_DIFFERENCES:
                    raise
                print(f"one-shot {name}: a known difference ({ONESHOT_KNOWN_DIFFERENCES[name]})")
        runs: list[dict[str, Any]] = []
        for event in _events(log):
            if not runs or "exit_code" in runs[-1]:
                runs.append({"stdin": b"", "stdout": b"", "stderr": b""})
            run = runs[-1]
            key = {"in": "stdin", "out": "stdout", "err": "stderr"}.get(event["dir"])
            if key is not None:
                run[key] += _bytes(event)
            else:
                run["exit_code"] = event["code"]
        for run in runs:
            for key in ("stdin", "stdout", "stderr"):
                run[key] = scrubber.text(run[key].decode("utf-8"))
        for run in runs:
            run.setdefault("exit_code", None)  # killed with its tee: the replay is stopped the same way
        text = json.dumps({"runs": runs}, indent=1, ensure_ascii=False) + "\n"
        check_clean(scrubber, f"session/oneshot-{name}.json", text)
        (DATA / "session" / f"oneshot-{name}.json").write_text(text, encoding="utf-8")
        manifest["files"][f"session/oneshot-{name}.json"] = (
            "OneShotTransport (pwsh -NoLogo -NoProfile -NonInteractive -InputFormat Text -OutputFormat xml "
            f"-EncodedCommand <bootstrap>) through a tee, running step {name!r} of tests/real_pwsh_replay.py"
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["tee"]:
        separator = argv.index("--")
        return tee(argv[1], argv[separator + 1 :])
    pwsh = pwsh_path()
    manifest: dict[str, Any] = {
        "pwsh_version": pwsh_version(pwsh),
        "platform": sys.platform,
        "captured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "produced_by": "python -m tests.capture_real_pwsh",
        "scrubbed": __doc__.split("Scrubbing (``scrub``): ", 1)[1].split("\n\n", 1)[0].replace("\n", " "),
        "files": {},
    }
    steps: list[Callable[..., None]] = [capture_clixml, capture_local, capture_oneshot]
    with tempfile.TemporaryDirectory(prefix="pswrap-capture-") as name:
        tmp = Path(name)
        scrubber = Scrubber(pwsh, tmp)
        for step in steps:
            step(pwsh, tmp, scrubber, manifest)
    (DATA / "manifest.json").write_text(
        json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(manifest['files'])} files under {DATA.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
