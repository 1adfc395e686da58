"""CLIXML reading speed and memory: pswrap against psrpcore and the floor, in one run.

    python benchmarks/clixml.py                 # the 100 MB headline document
    python benchmarks/clixml.py --size 10       # a quicker run
    python benchmarks/clixml.py --hostile       # hostile inputs: time per MB at two sizes

Generates a deterministic ``Get-Mailbox -ResultSize Unlimited | Export-Clixml``-shaped document
(benchmarks/mailboxes.py), then reads it in a fresh subprocess per reader, so each peak RSS is its own:

- ``pswrap``: ``pswrap.parse_clixml(path)``, consuming each object as it comes;
- ``psrpcore``: ``psrpcore.types.deserialize_clixml`` (reads the whole text, returns a list);
- ``floor``: ``xml.etree.ElementTree.iterparse`` doing nothing with what it parses.

Targets (issue 2): at least 10x psrpcore's throughput, peak RSS under 64 MB, first object in < 100 ms.

``--hostile`` reads inputs built to be slow (one huge tag, comment or processing instruction, a value of
escapes, many documents in one chunk, doubling and chained ``<Ref>`` s written as JSON and compared, a
dictionary of object keys) at two sizes, with the limits raised so that they are read to the end, and
prints the seconds per MB side by side: equal figures mean reading is linear (issue 14).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _child(reader: str, path: str) -> None:
    size = os.path.getsize(path)
    # Each reader imports only what it needs, before the clock starts: the figures are about reading.
    if reader == "pswrap":
        from pswrap.clixml import parse_clixml
    elif reader == "psrpcore":
        from psrpcore.types import PSCryptoProvider, deserialize_clixml
    else:
        import xml.etree.ElementTree as ET
    start = time.perf_counter()
    first = None
    count = 0
    if reader == "pswrap":
        for _ in parse_clixml(Path(path)):
            if first is None:
                first = time.perf_counter() - start
            count += 1
    elif reader == "psrpcore":
        with open(path, encoding="utf-8-sig") as handle:
            values = deserialize_clixml(handle.read(), PSCryptoProvider())
        first = time.perf_counter() - start
        count = len(values)
    elif reader == "floor":
        depth = 0
        for event, _ in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                depth += 1
            else:
                depth -= 1
                if depth == 1:
                    if first is None:
                        first = time.perf_counter() - start
                    count += 1
    else:
        raise SystemExit(f"unknown reader {reader}")
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"reader": reader, "objects": count, "seconds": elapsed, "first": first,
                      "mb_per_s": size / 1e6 / elapsed, "peak_mb": peak_kib / 1024}))  # fmt: skip


def _measure(reader: str, path: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", reader, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"{reader} failed:\n{result.stderr}")
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'
HEAD = f'<Objs Version="1.1.0.1" {NS}>'


def _hostile_inputs(mb: float) -> dict[str, bytes]:
    """Each hostile shape at about ``mb`` MB."""
    n = int(mb * 1_000_000)
    doubling = "".join(
        ['<Obj RefId="d0"><MS><S N="x">x</S></MS></Obj>']
        + [f'<Obj RefId="d{i}"><MS><Ref N="a" RefId="d{i - 1}"/><Ref N="b" RefId="d{i - 1}"/></MS></Obj>'
           for i in range(1, 20)]
    )  # fmt: skip
    items = n // len(doubling)
    chain = "".join(
        f'<Obj RefId="{i}"><MS><Ref N="p" RefId="{i - 1}"/></MS></Obj>' for i in range(1, n // 45)
    )
    keys = "".join(
        f'<En><Obj N="Key" RefId="k{i}"><TNRef RefId="0"/><Props><I32 N="Id">{i}</I32></Props></Obj>'
        f'<I32 N="Value">{i}</I32></En>'
        for i in range(1, n // 110)
    )
    inputs = {
        "one attribute value": f'{HEAD}<S N="{"v" * n}">x</S></Objs>',
        "one element name": f"{HEAD}<{'E' * n}/></Objs>",
        "one comment": f"{HEAD}<!-- {'<c>' * (n // 3)} --></Objs>",
        "PI before <Objs>": f"<?xml {'p' * n}?>{HEAD}</Objs>",
        "value of escapes": f"{HEAD}<S>{'_x0041_' * (n // 7)}</S></Objs>",
        "tiny documents": "<Objs/>" * (n // 7),
        "doubling refs as JSON": HEAD
        + "".join(doubling.replace('"d', f'"{j}d') for j in range(items))
        + "</Objs>",
        "ref chain: JSON, hash, ==": f'{HEAD}<Obj RefId="0"><MS><S N="x">x</S></MS></Obj>{chain}</Objs>',
        "dict of object keys": f'{HEAD}<Obj RefId="t"><DCT><En><Obj N="Key" RefId="k0"><TN RefId="0"><T>T</T></TN>'
        f'<Props><I32 N="Id">0</I32></Props></Obj><I32 N="Value">0</I32></En>{keys}</DCT></Obj></Objs>',
    }
    return {name: text.encode() for name, text in inputs.items()}


def _read_hostile(data: bytes) -> float:
    """Seconds to read ``data`` in 64 KB chunks (limits raised), writing each object as JSON."""
    from pswrap import ClixmlError, ExpansionError, PSObject, to_jsonable
    from pswrap.clixml import ClixmlReader

    huge = len(data) + 1
    reader = ClixmlReader(max_markup_size=huge, max_value_size=huge)
    start = time.perf_counter()
    last = previous = None
    with contextlib.suppress(ClixmlError):  # an unknown element ends its input: the time is what counts
        for offset in range(0, len(data), 65536):
            for item in reader.feed(data[offset : offset + 65536]):
                with contextlib.suppress(ExpansionError):
                    to_jsonable(item.value)
                if isinstance(item.value, PSObject):
                    hash(item.value)
                    previous, last = last, item.value
        reader.close()
    if previous is not None:
        _ = last == previous  # once: comparing every pair of a chain would walk it for each
    return time.perf_counter() - start


def _best(data: bytes) -> float:
    """The fastest of three readings for what reads in under a second (a busy machine adds noise)."""
    seconds = _read_hostile(data)
    return min(seconds, _read_hostile(data), _read_hostile(data)) if seconds < 1 else seconds


def _hostile(sizes: tuple[float, float]) -> None:
    small, large = (_hostile_inputs(mb) for mb in sizes)
    print(f"{'hostile input':<24}{f'{sizes[0]:g} MB s/MB':>13}{f'{sizes[1]:g} MB s/MB':>13}{'ratio':>8}")
    for name in small:
        per_mb = [_best(data[name]) / (len(data[name]) / 1e6) for data in (small, large)]
        print(f"{name:<24}{per_mb[0]:>13.3f}{per_mb[1]:>13.3f}{per_mb[1] / per_mb[0]:>8.2f}")
    print("\nlinear: the ratio stays near 1 (a quadratic reader doubles it with each doubling of size)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=float, default=100.0, help="document size in MB (default 100)")
    parser.add_argument("--keep", type=Path, help="write the document here and keep it")
    parser.add_argument("--hostile", action="store_true", help="hostile inputs at 1 and 4 MB instead")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.hostile:
        _hostile((1.0, 4.0))
        return

    import mailboxes

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "mailboxes.xml"
        count = mailboxes.write(path, args.size)
        size_mb = path.stat().st_size / 1e6
        print(f"document: {size_mb:.1f} MB, {count} mailboxes ({path.name})\n")
        rows = [_measure(reader, path) for reader in ("pswrap", "psrpcore", "floor")]

    by = {row["reader"]: row for row in rows}
    print(f"{'reader':<10}{'objects':>9}{'seconds':>10}{'MB/s':>9}{'peak RSS MB':>13}{'first object':>14}")
    for row in rows:
        print(
            f"{row['reader']:<10}{row['objects']:>9}{row['seconds']:>10.2f}{row['mb_per_s']:>9.2f}"
            f"{row['peak_mb']:>13.1f}{row['first'] * 1000:>11.0f} ms"
        )
    ratio = by["pswrap"]["mb_per_s"] / by["psrpcore"]["mb_per_s"]
    floor_ratio = by["pswrap"]["mb_per_s"] / by["floor"]["mb_per_s"]
    print(f"\npswrap vs psrpcore: {ratio:.1f}x throughput (target >= 10x)")
    print(f"pswrap vs floor:    {floor_ratio:.2f}x throughput")
    print(f"pswrap peak RSS:    {by['pswrap']['peak_mb']:.1f} MB (target < 64 MB)")
    print(f"pswrap first object: {by['pswrap']['first'] * 1000:.0f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
