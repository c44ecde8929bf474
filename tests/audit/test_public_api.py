"""The public surface: __all__ is exact and everything in it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ckptaudit


def test_all_is_exact() -> None:
    # "@py_builtins" and "@pytest_ar": pytest rewrites the asserts of a plugin's distribution,
    # and ckptaudit is one (its pytest11 entry point); those names are no identifiers.
    public = {n for n in dir(ckptaudit) if not n.startswith(("_", "@"))}
    submodules = {
        "audit",
        "checks",
        "errors",
        "findings",
        "formats",
        "pickle",
        "policy",
        "structure",
        "report",
        "runner",
        "cli",
        "torch_oracle",
        "discovery",
        "cluster",
        # loaded by pytest through the pytest11 entry point, and what it offers
        "pytest_plugin",
        "testing",
    }
    assert set(ckptaudit.__all__) == public - submodules | {"__version__"}
    for name in ckptaudit.__all__:
        assert getattr(ckptaudit, name) is not None
    # The function, not the subpackage of the same name (from ckptaudit.migrate import ...).
    assert callable(ckptaudit.migrate) and callable(ckptaudit.load)


@pytest.mark.torch  # the demo's models are torch modules
def test_the_core_package_holds_no_demo() -> None:
    """The demo models and the plan's script live in ckptaudit_demo, not in the audit."""
    import ckptaudit_demo

    pkg = Path(ckptaudit.__file__).parent
    assert not (pkg / "examples").exists() and not (pkg / "plan_script.py").exists()
    assert Path(ckptaudit_demo.__file__).parent.name == "ckptaudit_demo"


def test_errors_form_one_tree() -> None:
    for name in (
        "UsageError",
        "PolicyError",
        "InputError",
        "UnknownFormatError",
        "ContainerError",
        "PickleError",
        "LimitExceeded",
        "MigrationError",
        "MigrationRefused",
        "VerificationFailed",
    ):
        assert issubclass(getattr(ckptaudit, name), ckptaudit.CkptAuditError)


def test_the_audit_path_imports_neither_torch_nor_numpy_nor_rich(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02}q\x00.")
    code = (
        "import sys, ckptaudit; from ckptaudit.cli import main; "
        f"main(['audit', {str(path)!r}, '--format', 'json']); "
        "bad = [m for m in ('torch', 'numpy', 'rich') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_works_without_torch_installed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hide torch and numpy from the import system: the audit still runs."""
    path = tmp_path / "x.pkl"
    path.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'numpy'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ckptaudit\n"
        f"r = ckptaudit.audit_file({str(path)!r})\n"
        "sys.exit(0 if r.status.value == 'dangerous' else 1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
