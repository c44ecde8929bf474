"""Run ckptaudit's peer tools on one checkpoint (or a directory) and measure them.

Every peer runs in its own subprocess, so that its wall time and peak RSS can be
measured the same way for all of them:

* ``picklescan``  -- the CLI, ``picklescan -p PATH``.
* ``modelscan``   -- the CLI, ``modelscan -p PATH -r json -o TMP``.
* ``fickling``    -- its Python API (``fickling.scan_zip_archive`` / ``scan_file``,
  ``graceful=True``) called in a child interpreter; fickling's own CLI does not
  open PyTorch zip files.
* ``torch_unsafe_globals`` -- ``torch.serialization.get_unsafe_globals_in_checkpoint``.
* ``torch_weights_only``   -- ``torch.load(PATH, weights_only=True)``: the ground
  truth ckptaudit predicts; it refuses (fast) on files with unknown globals.
* ``stub_unpickler`` -- a lower bound for "walk the whole pickle in C": the C
  ``pickle.Unpickler`` with ``find_class`` returning a fresh inert stub type per
  global and ``persistent_load`` returning ``None``, run over ``data.pkl``.  No
  real global is ever resolved, so this is safe on hostile input.
* ``ckptaudit``  -- ``python -m ckptaudit audit --format json --no-progress PATH``
  (left out, with a note, when ``ckptaudit`` cannot be imported).  It audits a
  directory with ``-j`` = CPU count worker processes; its peak RSS is then the
  largest single process (GNU time reports the max over reaped descendants), not
  the sum.

Peak RSS comes from GNU ``/usr/bin/time -f %M`` wrapped around the child.
``os.wait4``/``RUSAGE_CHILDREN`` are not used on their own because on Linux a
child started with vfork/fork+exec (what :mod:`subprocess` does) inherits the
*parent's* RSS high-water mark into its ``ru_maxrss``: a tool measured from a
300 MB harness never reads below 300 MB, and ``RUSAGE_CHILDREN`` is moreover a
maximum over all children so far.  ``time`` is a tiny process, so the tool it
forks starts from a ~1 MB floor.  Without ``/usr/bin/time`` the ``wait4`` value
is used (an upper bound, floored at the harness's own peak RSS).
Wall time includes interpreter start-up and imports (torch costs ~1-2 s); the
Python-call peers also report ``inner_seconds``, the time of the audit call alone.

The peers run from the benchmark venv (``$CKPT_BENCH_VENV``, default
``/tmp/venv-bench``; see ``requirements-bench.txt``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_VENV = Path(os.environ.get("CKPT_BENCH_VENV", "/tmp/venv-bench"))
DEFAULT_TIMEOUT = 1800.0
MAX_OUTPUT = 20_000  # characters of raw output kept per run
GNU_TIME = Path("/usr/bin/time")


@dataclass
class PeerResult:
    """Uniform outcome of one tool run on one target."""

    tool: str
    target: str
    verdict: str
    seconds: float
    peak_rss_mb: float
    returncode: int | None
    output: str
    inner_seconds: float | None = None
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


@dataclass
class Measured:
    """Raw outcome of one measured subprocess."""

    returncode: int | None
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool


def bench_bin(name: str) -> Path:
    """Path of an executable in the benchmark venv."""
    return BENCH_VENV / "bin" / name


def bench_python() -> str:
    """Interpreter of the benchmark venv (falls back to the current one)."""
    p = bench_bin("python")
    return str(p) if p.exists() else sys.executable


def run_measured(
    cmd: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Measured:
    """Run ``cmd`` and return its exit code, wall time, peak RSS and output.

    The child runs in its own session so a timeout kills its whole group.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss_file,
    ):
        argv = list(cmd)
        if GNU_TIME.exists():
            argv = [str(GNU_TIME), "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        fired = threading.Event()

        def _kill() -> None:
            fired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        # Both GNU time's %M and Linux's ru_maxrss are in KiB.
        max_kib = float(usage.ru_maxrss)
        words = rss_file.read().split()
        if words and words[-1].isdigit():
            max_kib = float(words[-1])
    return Measured(proc.returncode, seconds, max_kib / 1024, stdout, stderr, fired.is_set())


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    return f"{text[:half]}\n...[{len(text) - MAX_OUTPUT} chars cut]...\n{text[-half:]}"


def _result(
    tool: str, target: Path, m: Measured, verdict: str, inner: float | None = None
) -> PeerResult:
    if m.timed_out:
        verdict = "timeout"
    return PeerResult(
        tool=tool,
        target=str(target),
        verdict=verdict,
        seconds=m.seconds,
        peak_rss_mb=m.peak_rss_mb,
        returncode=m.returncode,
        output=_clip(m.stdout + ("\n[stderr]\n" + m.stderr if m.stderr.strip() else "")),
        inner_seconds=inner,
        timed_out=m.timed_out,
    )


# --------------------------------------------------------------------------- #
# CLI peers
# --------------------------------------------------------------------------- #


def _summary_int(text: str, label: str) -> int | None:
    m = re.search(rf"^{re.escape(label)}:\s*(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def run_picklescan(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """``picklescan -p PATH``; verdict from its scan summary."""
    m = run_measured([str(bench_bin("picklescan")), "-p", str(path)], timeout)
    text = m.stdout + m.stderr
    scanned = _summary_int(text, "Scanned files")
    infected = _summary_int(text, "Infected files")
    dangerous = _summary_int(text, "Dangerous globals")
    suspicious = _summary_int(text, "Suspicious globals")
    if scanned is None:
        verdict = f"error(rc={m.returncode})"
    elif infected or dangerous:
        verdict = f"dangerous(files={infected},globals={dangerous},suspicious={suspicious})"
    elif suspicious:
        verdict = f"suspicious(globals={suspicious},scanned={scanned})"
    else:
        verdict = f"clean(scanned={scanned})"
    if m.returncode not in (0, 1) and scanned is not None:
        verdict += f",rc={m.returncode}"
    return _result("picklescan", path, m, verdict)


def run_modelscan(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """``modelscan -p PATH -r json -o TMP``; verdict from the JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [str(bench_bin("modelscan")), "-p", str(path), "-r", "json", "-o", str(report)]
        # cwd=tmp so that a stray ./modelscan-settings.toml is never picked up.
        m = run_measured(cmd, timeout, cwd=tmp)
        doc: dict[str, Any] | None = None
        if report.exists():
            try:
                doc = json.loads(report.read_text())
            except json.JSONDecodeError:
                doc = None
    if doc is None:
        return _result("modelscan", path, m, f"error(rc={m.returncode})")
    summary = doc.get("summary", {})
    issues = summary.get("total_issues", 0)
    errors = doc.get("errors", [])
    scanned = summary.get("scanned", {}).get("total_scanned", 0)
    sev = {k: v for k, v in summary.get("total_issues_by_severity", {}).items() if v}
    verdict = f"issues({sev})" if issues else "clean"
    verdict += f",scanned={scanned}"
    if errors:
        verdict += f",errors={len(errors)}"
    m.stdout = json.dumps(doc)[: MAX_OUTPUT // 2] + "\n" + m.stdout
    return _result("modelscan", path, m, verdict)


# --------------------------------------------------------------------------- #
# Python-call peers (each runs a small script in a child interpreter)
# --------------------------------------------------------------------------- #

# Shared prologue: walk a file or directory, time the audit, print one JSON line.
_CHILD_PROLOGUE = r"""
import collections, json, sys, time, zipfile
from pathlib import Path

def targets(root):
    p = Path(root)
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file() and q.suffix != ".json")
    return [p]

def main(audit):
    files = targets(sys.argv[1])
    t0 = time.perf_counter()
    verdicts = [audit(str(f)) for f in files]
    inner = time.perf_counter() - t0
    if len(verdicts) == 1:
        verdict = verdicts[0]
    else:
        counts = collections.Counter(v.split(":", 1)[0] for v in verdicts)
        verdict = " ".join(f"{k}={n}" for k, n in sorted(counts.items()))
    print(json.dumps({"verdict": verdict, "inner_seconds": inner, "files": len(files),
                      "per_file": verdicts[:50]}))
"""

_FICKLING_CHILD = r"""
import fickling
from fickling.analysis import Severity

def audit(path):
    if zipfile.is_zipfile(path):
        res = fickling.scan_zip_archive(path, graceful=True)
        if not res:
            return "no_pickle"
        sev = max(r.severity for r in res.values())
        errs = [e for r in res.values() for e in r.errors]
    else:
        r = fickling.scan_file(path, graceful=True)
        sev, errs = r.severity, r.errors
    out = sev.name
    if errs:
        out += ":" + errs[0][:160].replace("\n", " ")
    return out

main(audit)
"""

_TORCH_GLOBALS_CHILD = r"""
import torch

def audit(path):
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as e:
        return f"error:{type(e).__name__}: {str(e)[:160]}"
    return ("unsafe_globals:" + ",".join(sorted(found))) if found else "clean"

main(audit)
"""

_TORCH_LOAD_CHILD = r"""
import re
import torch

def audit(path):
    try:
        torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if m:
            return "refused:" + m.group(1)
        return f"refused:{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return "loaded"

main(audit)
"""

_STUB_CHILD = r"""
import io, pickle

class _Stub:
    # Inert stand-in for every global: accepts any REDUCE/NEWOBJ/BUILD/APPEND/SETITEM.
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)
    def __init__(self, *args, **kwargs):
        pass
    def __call__(self, *args, **kwargs):
        return _Stub()
    def __setstate__(self, state):
        pass
    def __setitem__(self, key, value):
        pass
    def append(self, item):
        pass
    def extend(self, items):
        pass
    def add(self, item):
        pass

class StubUnpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.types = {}
    def find_class(self, module, name):
        key = (module, name)
        t = self.types.get(key)
        if t is None:
            t = type("Stub_" + module.replace(".", "_") + "_" + name, (_Stub,), {})
            self.types[key] = t
        return t
    def persistent_load(self, pid):
        return None

def data_pkl(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if n == "data.pkl" or n.endswith("/data.pkl"):
                    return zf.read(n)
        return None
    with open(path, "rb") as f:
        return f.read()

def audit(path):
    data = data_pkl(path)
    if data is None:
        return "no_data_pkl"
    u = StubUnpickler(io.BytesIO(data))
    try:
        u.load()
    except Exception as e:
        return f"error:{type(e).__name__}: {str(e)[:160]}"
    return f"parsed:{len(u.types)} globals"

main(audit)
"""


def _run_child(tool: str, script: str, path: Path, timeout: float) -> PeerResult:
    m = run_measured([bench_python(), "-c", _CHILD_PROLOGUE + script, str(path)], timeout)
    lines = [ln for ln in m.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return _result(tool, path, m, f"error(rc={m.returncode})")
    doc = json.loads(lines[-1])
    return _result(tool, path, m, str(doc["verdict"]), float(doc["inner_seconds"]))


def run_fickling(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """fickling's scan API (``scan_zip_archive``/``scan_file``, graceful)."""
    return _run_child("fickling", _FICKLING_CHILD, path, timeout)


def run_torch_unsafe_globals(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """``torch.serialization.get_unsafe_globals_in_checkpoint``."""
    return _run_child("torch_unsafe_globals", _TORCH_GLOBALS_CHILD, path, timeout)


def run_torch_weights_only(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """``torch.load(weights_only=True)`` (the behaviour ckptaudit predicts)."""
    return _run_child("torch_weights_only", _TORCH_LOAD_CHILD, path, timeout)


def run_stub_unpickler(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """C ``pickle.Unpickler`` with inert stub globals: a parse-speed lower bound."""
    return _run_child("stub_unpickler", _STUB_CHILD, path, timeout)


# --------------------------------------------------------------------------- #
# ckptaudit itself
# --------------------------------------------------------------------------- #


def ckptaudit_python() -> str:
    """Interpreter for ckptaudit: ``$CKPTAUDIT_PYTHON``, the repo .venv, or this one."""
    env = os.environ.get("CKPTAUDIT_PYTHON")
    if env:
        return env
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _ckptaudit_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def ckptaudit_available() -> bool:
    """True when ``python -m ckptaudit audit --help`` runs.

    First compiles ckptaudit's bytecode, as ``pip install`` does for the peers: run from
    ``src/`` where PYTHONDONTWRITEBYTECODE is set, every run would compile every module
    again (about 30 ms per process, which a real install never pays).
    """
    env = _ckptaudit_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compile_cmd = [ckptaudit_python(), "-m", "compileall", "-q", str(REPO / "src" / "ckptaudit")]
    subprocess.run(compile_cmd, capture_output=True, env=env, check=False)
    probe = [ckptaudit_python(), "-m", "ckptaudit", "audit", "--help"]
    r = subprocess.run(probe, capture_output=True, env=_ckptaudit_env(), check=False)
    return r.returncode == 0


def ckptaudit_core() -> str:
    """Which core ckptaudit runs: "compiled" (the C extension) or "python"."""
    probe = [
        ckptaudit_python(),
        "-c",
        "from ckptaudit.pickle import native; print(native.backend())",
    ]
    r = subprocess.run(probe, capture_output=True, text=True, env=_ckptaudit_env(), check=False)
    return r.stdout.strip() or "unknown"


def _summarise_ckptaudit(doc: Any) -> str:
    """Short verdict from ckptaudit's JSON report (schema ``ckptaudit/1``)."""
    if isinstance(doc, dict) and isinstance(doc.get("files"), list):
        files = [f for f in doc["files"] if isinstance(f, dict)]
        if len(files) == 1:
            f = files[0]
            verdict = str(f.get("status"))
            if f.get("unsafe_globals"):
                verdict += ":" + ",".join(map(str, f["unsafe_globals"]))
            return verdict
        counts: dict[str, int] = {}
        for f in files:
            key = str(f.get("status"))
            counts[key] = counts.get(key, 0) + 1
        return " ".join(f"{k}={n}" for k, n in sorted(counts.items()))
    if isinstance(doc, dict):
        for key in ("verdict", "status", "result", "summary"):
            if key in doc and not isinstance(doc[key], (dict, list)):
                return f"{key}={doc[key]}"
        return f"keys={sorted(doc)[:8]}"
    if isinstance(doc, list):
        return f"{len(doc)} reports"
    return str(doc)[:200]


def run_ckptaudit(path: Path, timeout: float = DEFAULT_TIMEOUT) -> PeerResult:
    """``python -m ckptaudit audit --format json PATH``."""
    cmd = [ckptaudit_python(), "-m", "ckptaudit", "audit", "--format", "json"]
    cmd += ["--no-progress", str(path)]
    m = run_measured(cmd, timeout, env=_ckptaudit_env())
    try:
        verdict = _summarise_ckptaudit(json.loads(m.stdout))
    except json.JSONDecodeError:
        verdict = f"error(rc={m.returncode})" if m.returncode else "non-json output"
    # Exit code 1 means "a file is at or above --fail-on" (default: incompatible).
    if m.returncode not in (0, 1) and not verdict.startswith("error"):
        verdict += f",rc={m.returncode}"
    return _result("ckptaudit", path, m, verdict)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #

Runner = Callable[[Path, float], PeerResult]

PEERS: dict[str, Runner] = {
    "picklescan": run_picklescan,
    "modelscan": run_modelscan,
    "fickling": run_fickling,
    "torch_unsafe_globals": run_torch_unsafe_globals,
    "torch_weights_only": run_torch_weights_only,
    "stub_unpickler": run_stub_unpickler,
}

TOOLS: dict[str, Runner] = {"ckptaudit": run_ckptaudit, **PEERS}


def _importable(module: str) -> bool:
    r = subprocess.run([bench_python(), "-c", f"import {module}"], capture_output=True, check=False)
    return r.returncode == 0


def available_tools() -> dict[str, str]:
    """Map each tool name to ``"ok"`` or the reason it cannot run."""
    status: dict[str, str] = {}
    status["ckptaudit"] = "ok" if ckptaudit_available() else "python -m ckptaudit audit fails"
    for cli in ("picklescan", "modelscan"):
        status[cli] = "ok" if bench_bin(cli).exists() else f"{bench_bin(cli)} missing"
    status["fickling"] = "ok" if _importable("fickling") else "fickling not importable"
    torch_ok = _importable("torch")
    for name in ("torch_unsafe_globals", "torch_weights_only"):
        status[name] = "ok" if torch_ok else "torch not importable"
    status["stub_unpickler"] = "ok"
    return status


def main(argv: list[str] | None = None) -> int:
    """Debug entry point: ``python benchmarks/peers.py TOOL PATH`` prints one result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in TOOLS:
        print(f"usage: peers.py {{{','.join(TOOLS)}}} PATH", file=sys.stderr)
        return 2
    res = TOOLS[args[0]](Path(args[1]), DEFAULT_TIMEOUT)
    d = res.to_dict()
    d["output"] = d["output"][-2000:]
    print(json.dumps(d, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
