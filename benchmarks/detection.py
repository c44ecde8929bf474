"""Detection and false alarms: ckptaudit, picklescan and modelscan on the same files.

    .venv/bin/python benchmarks/detection.py --benign /tmp/benign [--peers /tmp/venv-peers]
        [--out docs/detection.md] [--workdir /tmp/detection]

(a) every hostile case of tests/hostile_cases.py (and its benign look-alikes) is written to
``WORKDIR`` under its own file name, (b) the benign corpus built by
``benchmarks/benign_corpus.py`` is read from ``--benign``; ckptaudit audits each file in
process, and the peers' CLIs (``picklescan -p``, ``modelscan -p -r json``) run from the
peers' venv when it exists::

    python3 -m venv /tmp/venv-peers
    /tmp/venv-peers/bin/pip install picklescan==1.0.5 modelscan==0.8.8   # pulls no torch

The Markdown report (``docs/detection.md`` by default) has one row per hostile case, a
summary per tool and the benign false-alarm counts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

import hostile_cases as hc  # noqa: E402 - test data, found through the path above

import ckptaudit  # noqa: E402
from ckptaudit.findings import Severity, Status  # noqa: E402

TIMEOUT = 120.0


@dataclass
class Verdict:
    flagged: bool
    """Called dangerous / infected."""
    label: str
    """Short verdict for the table."""


def run_ckptaudit(path: Path) -> Verdict:
    report = ckptaudit.audit_file(path)
    named = sorted(
        {f.global_name for f in report.findings if f.severity is Severity.DANGEROUS} - {None}  # type: ignore[arg-type]
    )
    label = report.status.value
    if named:
        label += f" `{', '.join(n for n in named[:2] if n)}`"
    return Verdict(report.status is Status.DANGEROUS, label)


def _cli(cmd: list[str], cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, -9, "", "timeout")


def _count(text: str, label: str) -> int | None:
    m = re.search(rf"^{re.escape(label)}:\s*(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def picklescan(venv: Path) -> Callable[[Path], Verdict]:
    def run(path: Path) -> Verdict:
        p = _cli([str(venv / "bin" / "picklescan"), "-p", str(path)])
        text = p.stdout + p.stderr
        scanned = _count(text, "Scanned files")
        infected = _count(text, "Infected files") or 0
        dangerous = _count(text, "Dangerous globals") or 0
        suspicious = _count(text, "Suspicious globals") or 0
        found = re.findall(r"dangerous import '([^']+)' FOUND", text)
        if scanned is None:
            return Verdict(False, f"error (rc={p.returncode})")
        if infected or dangerous:
            return Verdict(True, "dangerous" + (f" `{found[0]}`" if found else ""))
        if scanned == 0:
            return Verdict(False, "not scanned")
        if suspicious:
            return Verdict(False, "suspicious")
        if "ERROR" in text or p.returncode not in (0, 1):
            return Verdict(False, f"clean/error (rc={p.returncode})")
        return Verdict(False, "clean")

    return run


def modelscan(venv: Path) -> Callable[[Path], Verdict]:
    def run(path: Path) -> Verdict:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            p = _cli(
                [str(venv / "bin" / "modelscan"), "-p", str(path), "-r", "json", "-o", str(out)],
                cwd=tmp,
            )
            try:
                doc = json.loads(out.read_text())
            except (OSError, ValueError):
                return Verdict(False, f"error (rc={p.returncode})")
        summary = doc.get("summary", {})
        issues = doc.get("issues", [])
        scanned = summary.get("scanned", {}).get("total_scanned", 0)
        if issues:
            first = issues[0]
            name = f"{first.get('module', '?')}.{first.get('operator', '?')}"
            return Verdict(True, f"{issues[0].get('severity', 'issue').lower()} `{name}`")
        if doc.get("errors"):
            return Verdict(False, "error")
        if not scanned:
            return Verdict(False, "skipped")
        return Verdict(False, "clean")

    return run


def write_cases(workdir: Path) -> list[tuple[str, str, str, Path]]:
    """(name, advisory, expect, path) for every hostile case and look-alike."""
    rows = []
    for i, case in enumerate(hc.CASES):
        path = workdir / "hostile" / f"{i:03d}-{case.name}" / case.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.data)
        rows.append((case.name, case.reference, case.expect, path))
    for i, benign in enumerate(hc.BENIGN_LOOKALIKES):
        path = workdir / "lookalike" / f"{i:03d}-{benign.name}" / benign.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(benign.data)
        rows.append((benign.name, benign.reference, "benign", path))
    return rows


def run_all(
    tools: dict[str, Callable[[Path], Verdict]], paths: Iterable[Path], jobs: int
) -> dict[Path, dict[str, Verdict]]:
    paths = list(paths)
    out: dict[Path, dict[str, Verdict]] = {p: {} for p in paths}
    for name, tool in tools.items():
        with ThreadPoolExecutor(jobs if name != "ckptaudit" else 1) as pool:
            for path, verdict in zip(paths, pool.map(tool, paths), strict=True):
                out[path][name] = verdict
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    tools: list[str],
    cases: list[tuple[str, str, str, Path]],
    benign: list[Path],
    results: dict[Path, dict[str, Verdict]],
    versions: dict[str, str],
    seconds: float,
) -> str:
    hostile = [c for c in cases if c[2] != "benign"]
    lookalikes = [c for c in cases if c[2] == "benign"]
    lines = [
        "# Detection: hostile files and false alarms",
        "",
        "Generated by `benchmarks/detection.py` (do not edit by hand). Tools: "
        + ", ".join(f"{t} {versions.get(t, '')}".strip() for t in tools)
        + f". Run time {seconds:.0f} s.",
        "",
        "## How ckptaudit decides",
        "",
        "A file is **dangerous** when a pickle stream in it (any stream any loader may read: "
        "`data.pkl`, other zip members, every stream after STOP, legacy parts, tar members "
        "and the storage views, `.npy` bodies, zips inside the zip, the other reading of a "
        "polyglot, pickles nested as literals) either",
        "",
        "1. names a global in the catalog of `src/ckptaudit/policy/dangerous.py` (modules and "
        "names that execute code, import, or reach files, processes and the network; one "
        "reason per entry), unless torch allows it by default or its arguments match a benign "
        "pattern of `policy/inert.py` (e.g. `copyreg._reconstructor` with a plain builtin "
        "base); or",
        "2. **calls** anything not shown to be an inert data constructor: a global outside "
        "`INERT_CONSTRUCTORS` / torch's default allowlist / the Enum-lookup shape / the "
        "mapping-subclass shape, a computed callable (the result of another call, `getattr`, "
        "a memo trick), an extension-registry code, or a global whose name is computed at "
        "load time. Calls without REDUCE count too: INST and OBJ call what they name even "
        "without arguments, a callable that the file stores under a method name the "
        "unpickler or a constructor calls (`append`, `extend`, `add`, `__setstate__`, `keys`, "
        "`detach`, ...) is called, and BUILD/SETITEM/APPEND on a class or module itself "
        "rewrites it for the whole process. This is the general rule; the catalog only names "
        "the culprit earlier and louder. A module reached under another module's name "
        "(`logging.os`, `random._os`) is in the catalog.",
        "",
        "torch's operator namespaces (`torch._C._VariableFunctionsClass`, `torch._C.TensorBase`, "
        "`torch._C._nn`, `_fft`, `_linalg`, `_special`, `_nested`, `_sparse`) are not in the "
        "catalog, so `torch.tanh` kept as a value is only incompatible, but operators that "
        "reach files, raw memory, stdout or Python callables (`from_file`, `_from_blob`, "
        "`_print`, `apply_`, `map_`, `map2_`, any named for files, save/load, JIT or scripts) "
        "stay catalogued and calling any operator is still an unsafe call. The "
        "mapping-subclass shape is how `OrderedDict.__reduce__` rebuilds a subclass "
        "(diffusers' `FrozenDict`): a CamelCase class called with `()`, then SETITEMS and at "
        "most one BUILD of an attribute dict; a function called that way (`uuid._ip_getnode`) "
        "stays dangerous.",
        "",
        "Otherwise the file is **compatible** when torch's `weights_only=True` unpickler "
        "would load it, **incompatible** when it would refuse it (each offending global is "
        "listed with object paths), and **error** when it is damaged or a resource limit "
        "stopped the analysis (never compatible). Detection below counts a `dangerous` "
        "verdict; for peers, `dangerous`/`infected` (picklescan) or any issue (modelscan).",
        "",
        "## Summary",
        "",
        "| tool | hostile flagged dangerous | hostile never called safe | benign corpus false "
        "alarms | benign look-alike false alarms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tool in tools:
        flagged = sum(results[c[3]][tool].flagged for c in hostile)
        if tool == "ckptaudit":
            not_safe = sum(not results[c[3]][tool].label.startswith("compatible") for c in hostile)
        else:
            not_safe = sum(
                not results[c[3]][tool].label.startswith(("clean", "skipped", "not scanned"))
                for c in hostile
            )
        fa = sum(results[p][tool].flagged for p in benign)
        fa_look = sum(results[c[3]][tool].flagged for c in lookalikes)
        lines.append(
            f"| {tool} | {flagged}/{len(hostile)} ({100 * flagged / len(hostile):.0f}%) "
            f"| {not_safe}/{len(hostile)} | {fa}/{len(benign)} | {fa_look}/{len(lookalikes)} |"
        )
    lines += [
        "",
        '"Never called safe" counts any verdict other than clean/compatible (errors and '
        "refusals included). The benign corpus is real `torch.save` output of torch, "
        "transformers, pytorch_lightning, torchmetrics, accelerate-style RNG states, sklearn, "
        "omegaconf, numpy and stdlib values (`benchmarks/benign_corpus.py`).",
        "",
        "## Hostile cases",
        "",
        "| # | case | advisory / technique | expected | " + " | ".join(tools) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in tools) + " |",
    ]
    for i, (name, ref, expect, path) in enumerate(hostile):
        cells = [_cell(results[path][t].label) for t in tools]
        lines.append(f"| {i} | `{name}` | {_cell(ref)} | {expect} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Benign corpus",
        "",
        "| file | " + " | ".join(tools) + " |",
        "| --- | " + " | ".join("---" for _ in tools) + " |",
    ]
    for path in benign:
        cells = [_cell(results[path][t].label) for t in tools]
        lines.append(f"| `{path.name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Benign look-alikes (tests/hostile_cases.py)",
        "",
        "| case | " + " | ".join(tools) + " |",
        "| --- | " + " | ".join("---" for _ in tools) + " |",
    ]
    for name, _ref, _expect, path in lookalikes:
        cells = [_cell(results[path][t].label) for t in tools]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _peer_version(venv: Path, dist: str) -> str:
    p = _cli([str(venv / "bin" / "python"), "-m", "pip", "show", dist])
    m = re.search(r"^Version: (\S+)", p.stdout, re.MULTILINE)
    return m.group(1) if m else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benign", type=Path, required=True, help="benign_corpus.py OUTDIR")
    parser.add_argument("--peers", type=Path, default=Path("/tmp/venv-peers"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "detection.md")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ckpt-detection-"))
    cases = write_cases(workdir)
    benign = sorted(p for p in args.benign.iterdir() if p.is_file() and p.suffix != ".json")
    tools: dict[str, Callable[[Path], Verdict]] = {"ckptaudit": run_ckptaudit}
    versions = {"ckptaudit": ckptaudit.__version__}
    if (args.peers / "bin" / "picklescan").exists():
        tools["picklescan"] = picklescan(args.peers)
        versions["picklescan"] = _peer_version(args.peers, "picklescan")
    if (args.peers / "bin" / "modelscan").exists():
        tools["modelscan"] = modelscan(args.peers)
        versions["modelscan"] = _peer_version(args.peers, "modelscan")
    paths = [c[3] for c in cases] + benign
    results = run_all(tools, paths, args.jobs)
    text = render(list(tools), cases, benign, results, versions, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    summary = text.split("## Summary", 1)[1].split("\n\n")[1]
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
