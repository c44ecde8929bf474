"""Helpers of the integration tests: running commands, fresh venvs, the built dists.

Kept out of conftest.py so that test modules import them by a name of their own
(several conftest.py files share the module name ``conftest``).
"""

from __future__ import annotations

import os
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EVIL = b"cos\nsystem\n(S'id'\ntR."


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected status, fail with its output."""
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
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
    code = (
        "import importlib.metadata as m; "
        "import re; print('\\n'.join(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() "
        "for d in m.distributions()})))"
    )
    return set(run([python, "-c", code]).stdout.split())


@dataclass(frozen=True)
class Dist:
    """The built distributions."""

    sdist: Path
    wheel: Path
