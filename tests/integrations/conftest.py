"""Fixtures of the integration tests: a snapshot of this repository, the built
distributions, real checkpoints, fresh virtual environments.

Everything slow here is session-scoped and built once: the snapshot (a git repository of the
working tree, committed once, so that pre-commit and pip see the current files, committed or
not), the sdist and wheel (``python -m build``), the checkpoints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EVIL = b"cos\nsystem\n(S'id'\ntR."


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected status, fail with its output."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this suite's own switches (core choice, debug)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKPTAUDIT_", "PYTEST_"))}
    env.update(extra)
    return env


def make_venv(path: Path, *, with_pip: bool = True) -> Path:
    """A fresh virtual environment (no system site-packages); returns its python."""
    venv.EnvBuilder(with_pip=with_pip, clear=True).create(path)
    return path / "bin" / "python"


def distributions(python: Path) -> set[str]:
    """Names of the distributions installed in the environment of ``python``."""
    code = ("import importlib.metadata as m; "
            "import re; print('\\n'.join(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() "
            "for d in m.distributions()})))")
    return set(run([python, "-c", code]).stdout.split())


@dataclass(frozen=True)
class Dist:
    """The built distributions."""

    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the working tree as it is (one commit)."""
    dest = tmp_path_factory.mktemp("snapshot") / "ckptaudit"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=REPO).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
           "-c", "commit.gpgsign=false"]
    run(["git", "init", "-q", "-b", "main", dest])
    run([*git, "add", "-A"], cwd=dest)
    run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest)
    return dest


@pytest.fixture(scope="session")
def dist(snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build``: an sdist, and a wheel built from it (isolated, as a release)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, snapshot], env=clean_env())
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dist(sdist=sdist, wheel=wheel)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good.pt (loads), bad.pt (a deque: incompatible), evil.pkl (dangerous)."""
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.save({"w": torch.ones(2), "step": 3}, folder / "good.pt")
    torch.save({"buffer": __import__("collections").deque([1.0, 2.0])}, folder / "bad.pt")
    (folder / "evil.pkl").write_bytes(EVIL)
    return {p.name: p for p in folder.iterdir()}
