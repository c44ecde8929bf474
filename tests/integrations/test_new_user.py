"""The README's first commands, run as a new user runs them: in a fresh clone, a fresh venv.

The install lines of the README work as written (ckptaudit is on no registry: a clone, or a
git URL): ``make integration``. ``make demo`` builds its own environment (the package and the
pinned torch, nothing of the development stack) and shows the broken and the fixed
checkpoint: it installs torch, so it runs with the other extras (``make extras``); ``make
test`` runs this suite, so here it is only checked that it adds the development tools on top
of the demo's environment, not run again inside itself.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from integration_helpers import REPO, clean_env, distributions, make_venv, run

_DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "moto", "distributed", "dask", "s3fs"}


def _install_lines() -> list[str]:
    section = (REPO / "README.md").read_text().split("\n## Install\n", 1)[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]


@pytest.fixture()
def clone(snapshot: Path, tmp_path: Path) -> Path:
    """``git clone``: what a new user starts from (no .venv, no build/, nothing generated)."""
    target = tmp_path / "ckptaudit"
    run(["git", "clone", "-q", snapshot, target])
    assert not (target / ".venv").exists() and not (target / "build").exists()
    return target


@pytest.mark.integration
def test_the_readme_install_line_works_in_a_fresh_clone_and_venv(
    clone: Path, tmp_path: Path, checkpoints: dict[str, Path]
) -> None:
    lines = _install_lines()
    assert lines[0].startswith("git clone ") and lines[1] == "pip install ."
    python = make_venv(tmp_path / "venv")
    run([python, "-m", "pip", "install", "--quiet", "."], cwd=clone, env=clean_env())
    cli = python.parent / "ckptaudit"
    assert run([cli, "--version"], env=clean_env()).stdout.startswith("ckptaudit 0.")
    bad = run([cli, "audit", checkpoints["bad.pt"]], env=clean_env(), check=False)
    assert bad.returncode == 1 and "collections.deque" in bad.stdout
    assert not distributions(python) & ({"torch", "numpy"} | _DEV_ONLY)
    # The git form resolves too (the URL pointed at this clone instead of the forge).
    (git_line,) = [line for line in lines if "git+" in line and "[" not in line.split("@")[0]]
    requirement = re.sub(r"git\+\S+?(@[\w.]+)?'", f"git+file://{clone}'", git_line.split(" ", 2)[2])
    # The pip bundled with Python 3.11 rejects git+file:/// URLs (no host), not the README's
    # https ones: a current pip reads the stand-in URL.
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], env=clean_env())
    dry_run = ["install", "--dry-run", "--no-deps", "--ignore-installed"]
    resolved = run([python, "-m", "pip", *dry_run, requirement.strip("'")], env=clean_env())
    assert "Would install ckptaudit-" in resolved.stdout, resolved.stdout


@pytest.mark.extras  # installs torch into a fresh venv: a minute, with the other extras
@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_in_a_fresh_clone_builds_only_what_the_demo_needs(clone: Path) -> None:
    started = time.perf_counter()
    demo = run(["make", "demo"], cwd=clone, env=clean_env(), timeout=900)
    seconds = time.perf_counter() - started
    out = demo.stdout
    assert "build/demo/morphogenetic-legacy.pt  [torch-zip]  INCOMPATIBLE" in out
    assert "build/demo/morphogenetic-fixed.pt  [torch-zip]  COMPATIBLE" in out
    installed = distributions(clone / ".venv" / "bin" / "python")
    assert {"ckptaudit", "torch"} <= installed
    assert not installed & _DEV_ONLY, installed & _DEV_ONLY
    print(f"make demo in a fresh clone: {seconds:.1f} s, {len(installed)} distributions")
    # `make test` would add the development tools to that environment, then run the suite.
    plan = run(["make", "-n", "test"], cwd=clone, env=clean_env()).stdout
    assert "pip install -q -r requirements-dev.txt" in plan
    assert "pytest" in plan and "mypy" in plan and "ruff check" in plan
