"""Migration speed against a plain copy: a 1 GiB checkpoint, time and peak memory.

Builds (once) a 1 GiB legacy-style checkpoint as the research code saves it: a state dict of
float32 tensors plus a dataclass config, an Enum, a datetime and a deque, which torch's
weights_only loader refuses. Then, each in a fresh process so that peak RSS is its own:
``cp`` of the file, ``ckptaudit migrate`` without torch verification (the audit and the
CRC-32 comparison of every storage still run), and with it. Page cache is warm for all (the
file is read once first), as on a machine that just wrote the checkpoint.

    .venv/bin/python benchmarks/migrate_speed.py [--size-mib 1024] [--runs 3] [--dir DIR]

Results go to docs/benchmarks.md by hand (the figures depend on the machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _build(path: Path, size_mib: int) -> None:
    import collections
    import datetime

    import torch

    # Classes importable by name, so torch.save can pickle them (migration never imports them).
    from ckptaudit.examples._common import SeedStage, TaskConfig

    per = 16 << 20  # 16 MiB tensors, as the layers of a mid-sized model
    count = max(1, (size_mib << 20) // per)
    state = {f"layer{i}.weight": torch.randn(per // 4) for i in range(count)}
    torch.save(
        {
            "model": state,
            "config": TaskConfig(topology="cnn", blending_steps=10),
            "stage": SeedStage.TRAINING,
            "saved_at": datetime.datetime(2025, 1, 1, 12, 0),
            "recent": collections.deque([1.0, 2.0], maxlen=100),
        },
        path,
    )


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def _peak(cmd: list[str]) -> tuple[float, int]:
    """Run under /usr/bin/time when present for an exact per-process peak RSS."""
    wrapper = ["/usr/bin/time", "-f", "%M"] if os.path.exists("/usr/bin/time") else None
    if wrapper is None:
        return _timed(cmd)
    start = time.perf_counter()
    done = subprocess.run(
        wrapper + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    return elapsed, int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to put the files (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="ckptaudit-bench-"))
    src = folder / f"legacy-{args.size_mib}.pt"
    if not src.exists():
        _build(src, args.size_mib)
    size = src.stat().st_size
    with open(src, "rb") as handle:  # warm the page cache
        while handle.read(64 << 20):
            pass
    py = sys.executable
    copy = str(folder / "copy.pt")
    commands = {
        "cp": ["cp", str(src), copy],
        # migrate fsyncs before it renames: the fair baseline is a copy that reaches the disk.
        "cp + sync": ["sh", "-c", f'cp "{src}" "{copy}" && sync -f "{copy}"'],
        "migrate (no torch check)": [
            py,
            "-m",
            "ckptaudit",
            "migrate",
            str(src),
            str(folder / "m1.pt"),
            "--no-torch",
        ],
        "migrate (with torch check)": [
            py,
            "-m",
            "ckptaudit",
            "migrate",
            str(src),
            str(folder / "m2.pt"),
        ],
    }
    print(
        f"source: {size / (1 << 20):.0f} MiB, {args.runs} runs each, median; peak RSS per process"
    )
    base = None
    for label, cmd in commands.items():
        times, peaks = [], []
        for _ in range(args.runs):
            for leftover in (
                "copy.pt",
                "m1.pt",
                "m2.pt",
                "m1.pt.migration.json",
                "m2.pt.migration.json",
            ):
                (folder / leftover).unlink(missing_ok=True)
            elapsed, peak = _peak(cmd)
            times.append(elapsed)
            peaks.append(peak)
        median = statistics.median(times)
        base = base or median
        rss = max(peaks) / 1024
        print(f"{label:<28} {median:6.2f} s  {median / base:5.2f}x cp  peak RSS {rss:6.1f} MiB")


if __name__ == "__main__":
    main()
