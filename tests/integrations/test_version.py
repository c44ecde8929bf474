"""The version is written once (src/ckptaudit/_version.py); everything else reads it."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

import pytest
from integration_helpers import REPO

import ckptaudit
from ckptaudit._version import __version__


def test_one_version_everywhere() -> None:
    assert ckptaudit.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", __version__)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "ckptaudit._version.__version__"
    # The installed metadata (a stale editable install would disagree: `make` reinstalls).
    assert importlib.metadata.version("ckptaudit") == __version__
    out = subprocess.run(
        [sys.executable, "-m", "ckptaudit", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith(f"ckptaudit {__version__} (")


def test_the_changelog_starts_with_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    newest = re.search(r"^## (\S+)", text, re.M)
    assert newest and newest.group(1) == __version__
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
