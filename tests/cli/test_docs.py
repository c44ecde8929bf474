"""What a new user reads first: the README's commands and install lines, and the error
messages that name an install, say what works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ckptaudit.errors import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the compat runs skip this
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {k: v for k, v in project["optional-dependencies"].items() if k != "dev"}


def test_the_install_section_shows_installs_that_work_and_every_extra() -> None:
    install = _section("Install")
    commands = [
        line.split("#")[0].strip()
        for block in re.findall(r"```sh\n(.*?)```", install, flags=re.S)
        for line in block.splitlines()
    ]
    pips = [c for c in commands if c.startswith("pip install")]
    # ckptaudit is on no registry: every install names a checkout or a git URL.
    assert pips and all(re.search(r"'\.|\s\.$|git\+", c) for c in pips), pips
    for extra in _extras():
        assert f"'.[{extra}]'" in install, extra
    assert "[s3]" in install


def test_every_extra_named_in_errors_is_one_of_the_packages() -> None:
    extras = _extras()
    assert set(EXTRAS) == set(extras)
    for name, packages in EXTRAS.items():
        wanted = {re.split(r"[<>=\[]", p)[0].replace("-", "_").lower() for p in extras[name]}
        named = {re.split(r"[<>=]", p)[0].replace("-", "_").lower() for p in packages.split()}
        assert wanted == named, name
    # No message sends a user to a registry that has no ckptaudit.
    for path in (ROOT / "src").rglob("*.py"):
        assert "install 'ckptaudit[" not in path.read_text(), path


def test_the_readme_documents_what_a_new_user_asked() -> None:
    assert "`never` also exits 0 when a file cannot be read" in README
    assert "root['rng'].__setstate__()[2]" in README  # the path notation, with an example
    for option in ("`--summary`", "`-q, --quiet`", "`--torch-check`"):
        assert option in README, option
    assert "pip install ckptaudit " not in README.replace("`pip install ckptaudit` finds", "")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_installs_the_package_and_torch_only(tmp_path: Path) -> None:
    """On a machine without .venv, `make demo` builds no development stack."""
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "demo", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installs = [line for line in dry.splitlines() if "pip install" in line]
    assert installs and all("requirements-dev" not in line for line in installs), installs
    assert any("torch==2.13.0" in line and "-e ." in line for line in installs), installs
    full = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "test", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "requirements-dev.txt" in full  # the development tools belong to make test
