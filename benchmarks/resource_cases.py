"""Time and peak memory of ckptaudit on the resource cases of issue 10 (item 5).

Each case is a file under 12 MB whose analysis once cost far more than its size. Each audit
runs in a fresh interpreter; the figures are its wall time and its peak RSS
(``resource.getrusage``). Run from the repository root:

    python benchmarks/resource_cases.py [CASE...]

Prints one line per case: status, seconds, peak RSS, and how the process ended. The figures
before and after the per-file budget are in the commit that added it and in SECURITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loader_bytes_helpers import (
    deep_tuple_key,
    many_nested_loads,
    repeated_proto,
    same_member_directory,
    streams_after_stop,
)

CASES = {
    "deep-tuple-key": lambda: deep_tuple_key(400_000),
    "nested-loads-x70": lambda: many_nested_loads(300_000, 70),
    "directory-x64": lambda: same_member_directory(
        "payload", b"\x80\x02(" + b"}" * 300_000 + b"l.", 64
    ),
    "streams-after-stop": lambda: streams_after_stop(1 + 10_001, 600),
    "carve-proto": lambda: repeated_proto(12 << 20),
}

_CHILD = """
import json, resource, sys, time
import ckptaudit
started = time.perf_counter()
report = ckptaudit.audit_file(sys.argv[1])
print(json.dumps({
    "status": str(report.status),
    "seconds": round(time.perf_counter() - started, 2),
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    "error": (report.error or "")[:100],
}))
"""


def measure(name: str, data: bytes) -> str:
    """Audit ``data`` in a fresh interpreter; one line of figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.bin"
        path.write_bytes(data)
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
            timeout=3600, check=False,
        )
    size = f"{len(data) / 1e6:.1f} MB"
    if proc.returncode != 0:
        return f"{name:20} {size:>8}  process ended with status {proc.returncode}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return (
        f"{name:20} {size:>8}  {out['status']:12} {out['seconds']:7.2f} s "
        f"{out['peak_mib']:6d} MiB  {out['error']}"
    )


def main(argv: list[str]) -> None:
    """Measure the cases named in argv (all by default)."""
    for name in argv or list(CASES):
        print(measure(name, CASES[name]()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
