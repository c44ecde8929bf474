"""Packaging with the real tools: ``python -m build``, ``twine check``, ``pip`` into a fresh
venv. The core installs and audits without torch (and without numpy)."""

from __future__ import annotations

import configparser
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from integration_helpers import Dist, clean_env, distributions, make_venv, run

import ckptaudit

pytestmark = pytest.mark.integration


def test_build_gives_a_wheel_and_an_sdist_that_twine_accepts(dist: Dist) -> None:
    run([sys.executable, "-m", "twine", "check", "--strict", dist.sdist, dist.wheel])
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(f"{info}/entry_points.txt").decode())
    assert {"ckptaudit/py.typed", f"{info}/licenses/LICENSE"} <= names
    assert any(n.startswith("ckptaudit/policy/data/torch-") for n in names)
    assert not any(n.endswith((".c", ".h")) for n in names)  # sources stay in the sdist
    assert meta["Version"] == ckptaudit.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert set(meta.get_all("Provides-Extra")) >= {"torch", "remote", "s3", "dask"}
    core = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert not any(r.lower().startswith(("torch", "numpy")) for r in core), core
    assert dict(entry_points["pytest11"]) == {"ckptaudit": "ckptaudit.pytest_plugin"}
    assert dict(entry_points["console_scripts"]) == {"ckptaudit": "ckptaudit.cli:main"}
    with tarfile.open(dist.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        members = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert top == f"ckptaudit-{ckptaudit.__version__}"
    assert {
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "setup.py",
        "src/ckptaudit/py.typed",
        "src/ckptaudit/pickle/_native.c",
    } <= members


def test_the_core_installs_and_audits_without_torch(
    dist: Dist, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    python = make_venv(tmp_path / "venv")
    run([python, "-m", "pip", "install", "--quiet", dist.wheel], env=clean_env())
    installed = distributions(python)
    assert "ckptaudit" in installed
    assert not installed & {"torch", "numpy"}, installed
    cli = tmp_path / "venv" / "bin" / "ckptaudit"
    env = clean_env()
    assert run([cli, "--version"], env=env).stdout.strip() == (
        f"ckptaudit {ckptaudit.__version__} (compiled core)"
    )
    good = run([cli, "audit", checkpoints["good.pt"]], env=env)
    assert "COMPATIBLE" in good.stdout and good.stderr == ""
    bad = run([cli, "audit", checkpoints["bad.pt"], checkpoints["evil.pkl"]], env=env, check=False)
    assert bad.returncode == 1
    assert "collections.deque" in bad.stdout and "DANGEROUS" in bad.stdout
    # the plugin is registered, and the library API imports without torch
    code = (
        "import importlib.metadata as m, ckptaudit, sys; "
        "eps = {e.name: e.value for e in m.entry_points(group='pytest11')}; "
        "r = ckptaudit.audit_file(sys.argv[1]); "
        "print(eps['ckptaudit'], r.status.value, 'torch' in sys.modules)"
    )
    out = run([python, "-c", code, checkpoints["bad.pt"]], env=env).stdout.split()
    assert out == ["ckptaudit.pytest_plugin", "incompatible", "False"]
