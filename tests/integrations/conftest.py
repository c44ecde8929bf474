"""Fixtures of the integration tests: a snapshot of this repository, the built
distributions, real checkpoints.

Everything slow here is session-scoped and built once: the snapshot (a git repository of the
working tree, committed once, so that pre-commit and pip see the current files, committed or
not), the sdist and wheel (``python -m build``), the checkpoints.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from integration_helpers import EVIL, REPO, Dist, clean_env, run


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the working tree as it is (one commit)."""
    dest = tmp_path_factory.mktemp("snapshot") / "ckptaudit"
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "commit.gpgsign=false",
    ]
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
