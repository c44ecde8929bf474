"""Side-by-side timing of ckptaudit and its peers on the benchmark corpus.

Usage::

    python benchmarks/compare.py CORPUS_DIR [--runs N] [--tools a,b,c]
                                 [--targets objgraph.pt,dir1000] [--out FILE.md]
                                 [--json FILE.json] [--timeout S]

For every target (default: whichever of ``objgraph.pt many.pt big.pt dir1000
dir20000`` exist in CORPUS_DIR) each selected tool is run ``--runs`` times.  The
tool order is rotated every round (round r starts with tool r mod k), so no tool
always runs first or last.  Each target is read once before measuring, so every
tool sees a warm page cache.  The Markdown table reports the median wall time,
min/max, the ratio ``tool / ckptaudit`` (above 1 means slower than ckptaudit),
the peak RSS (max over runs) and the verdict of the last run.

``ckptaudit`` runs as ``python -m ckptaudit audit --format json PATH`` with
``src/`` on ``PYTHONPATH`` (interpreter: ``$CKPTAUDIT_PYTHON`` or the repo's
``.venv``).  If it cannot be imported yet it is left out and the ratio column
shows ``n/a``.  Peers run from ``$CKPT_BENCH_VENV`` (default ``/tmp/venv-bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers

DEFAULT_TARGETS = ("objgraph.pt", "many.pt", "big.pt", "dir1000", "dir20000")
VERSIONED = ("torch", "picklescan", "modelscan", "fickling")


@dataclass
class Cell:
    """All runs of one tool on one target."""

    tool: str
    target: str
    runs: list[peers.PeerResult] = field(default_factory=list)

    def median(self) -> float:
        """Median wall time in seconds."""
        return statistics.median(r.seconds for r in self.runs)

    def inner_median(self) -> float | None:
        """Median in-process audit time, when the tool reports one."""
        inner = [r.inner_seconds for r in self.runs if r.inner_seconds is not None]
        return statistics.median(inner) if inner else None

    def peak_rss(self) -> float:
        """Largest peak RSS over the runs, in MB."""
        return max(r.peak_rss_mb for r in self.runs)

    def verdict(self) -> str:
        """Verdict of the last run, flagged when runs disagreed."""
        verdicts = {r.verdict for r in self.runs}
        last = self.runs[-1].verdict
        return last if len(verdicts) == 1 else f"{last} (varied: {len(verdicts)})"


def machine_info() -> dict[str, str]:
    """nproc, CPU model, memory, OS and interpreter versions, peer versions."""
    info: dict[str, str] = {"nproc": str(os.cpu_count())}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln]
        info["cpu"] = models[0] if models else "unknown"
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    try:
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["mem"] = f"{int(mem) / 2**20:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    info["os"] = platform.platform()
    probe = (
        "import json, sys, importlib.metadata as m\n"
        "v = {'python': sys.version.split()[0]}\n"
        f"for n in {VERSIONED!r}:\n"
        "    try: v[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: v[n] = 'absent'\n"
        "print(json.dumps(v))\n"
    )
    r = subprocess.run([peers.bench_python(), "-c", probe], capture_output=True, text=True)
    if r.returncode == 0:
        info.update(json.loads(r.stdout))
    info["bench_venv"] = str(peers.BENCH_VENV)
    info["ckptaudit_core"] = peers.ckptaudit_core()
    return info


def warm(path: Path) -> None:
    """Read every file under ``path`` once so all tools see a warm page cache."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for f in files:
        with f.open("rb") as fh:
            while fh.read(1 << 24):
                pass


def run_all(
    corpus: Path,
    targets: list[str],
    tools: list[str],
    runs: int,
    timeout: float,
    slow: float | None = None,
) -> list[Cell]:
    """Run every tool ``runs`` times on every target, rotating tool order.

    A tool whose run on a target took longer than ``slow`` seconds (or timed out)
    is not run again on that target; its cell then has fewer runs.
    """
    cells: list[Cell] = []
    for target in targets:
        path = corpus / target
        warm(path)
        row = {t: Cell(t, target) for t in tools}
        for r in range(runs):
            k = r % len(tools)
            for tool in tools[k:] + tools[:k]:
                done = row[tool].runs
                if done and (done[-1].timed_out or (slow and done[-1].seconds > slow)):
                    continue
                res = peers.TOOLS[tool](path, timeout)
                row[tool].runs.append(res)
                print(
                    f"[{target}] round {r + 1}/{runs} {tool}: {res.seconds:.2f}s "
                    f"{res.peak_rss_mb:.0f}MB {res.verdict[:80]}",
                    file=sys.stderr,
                    flush=True,
                )
        cells.extend(row.values())
    return cells


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _cell_text(s: str, limit: int = 70) -> str:
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def markdown(cells: list[Cell], runs: int) -> str:
    """Render the results as one Markdown table (grouped by target)."""
    base = {c.target: c.median() for c in cells if c.tool == "ckptaudit"}
    lines = [
        f"| target | tool | runs (of {runs}) | median s | min–max s | in-process s "
        "| vs ckptaudit | peak RSS MB | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cells:
        times = [r.seconds for r in c.runs]
        ref = base.get(c.target)
        ratio = f"{c.median() / ref:.2f}×" if ref else "n/a"
        lines.append(
            f"| {c.target} | {c.tool} | {len(c.runs)} | {_fmt_s(c.median())} | "
            f"{_fmt_s(min(times))}–{_fmt_s(max(times))} | {_fmt_s(c.inner_median())} | "
            f"{ratio} | {c.peak_rss():.0f} | {_cell_text(c.verdict())} |"
        )
    return "\n".join(lines)


def report(cells: list[Cell], runs: int, info: dict[str, str], notes: list[str]) -> str:
    """Full Markdown report: machine, notes, table."""
    out = ["## Machine", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    out += ["", "## Results", "", markdown(cells, runs), ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", type=Path, help="corpus directory made by make_corpus.py")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and target (default 3)")
    p.add_argument("--tools", help=f"comma-separated subset of {','.join(peers.TOOLS)}")
    p.add_argument("--targets", help="comma-separated subset of targets in the corpus")
    p.add_argument("--timeout", type=float, default=peers.DEFAULT_TIMEOUT, help="per run, s")
    p.add_argument(
        "--slow",
        type=float,
        help="do not repeat a tool on a target once one of its runs took longer than this (s)",
    )
    p.add_argument("--out", type=Path, help="write the Markdown report here")
    p.add_argument("--json", type=Path, help="write every raw run here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print (and optionally write) the report."""
    args = parse_args(argv)
    notes: list[str] = []
    status = peers.available_tools()
    wanted = args.tools.split(",") if args.tools else list(peers.TOOLS)
    unknown = [t for t in wanted if t not in peers.TOOLS]
    if unknown:
        print(f"unknown tools: {unknown}; known: {list(peers.TOOLS)}", file=sys.stderr)
        return 2
    tools = []
    for t in wanted:
        if status[t] == "ok":
            tools.append(t)
        else:
            notes.append(f"{t} skipped: {status[t]}")
            print(f"skipping {t}: {status[t]}", file=sys.stderr)
    if not tools:
        print("no tool available", file=sys.stderr)
        return 1
    names = args.targets.split(",") if args.targets else list(DEFAULT_TARGETS)
    targets = [t for t in names if (args.corpus / t).exists()]
    missing = sorted(set(names) - set(targets))
    if missing:
        notes.append(f"targets not in corpus: {', '.join(missing)}")
    if not targets:
        print(f"no targets found in {args.corpus}", file=sys.stderr)
        return 1
    notes.append(
        "wall time includes interpreter start-up and imports; 'in-process s' is the audit "
        "call alone (Python-call peers only); page cache warm; tool order rotated per round; "
        "ckptaudit runs from src/ with its bytecode compiled first, as an installed package has it"
    )
    t0 = time.perf_counter()
    cells = run_all(args.corpus, targets, tools, args.runs, args.timeout, args.slow)
    if args.slow:
        notes.append(f"a tool slower than {args.slow:.0f} s on a target was run there only once")
    notes.append(f"total benchmark time {time.perf_counter() - t0:.0f} s")
    text = report(cells, args.runs, machine_info(), notes)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        raw: list[dict[str, Any]] = [r.to_dict() for c in cells for r in c.runs]
        args.json.write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
