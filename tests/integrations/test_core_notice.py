"""Without a compiled core the CLI says so, once per run; chosen on purpose, it says nothing.

(The real case, a package installed where the compiler fails, is in test_action.py; here the
compiled module is hidden from the import system, which is quicker.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from integration_helpers import EVIL, clean_env

NOTE = "the compiled core is not built"

_HIDE_COMPILED = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "ckptaudit.pickle._native":
            raise ImportError(name)
sys.meta_path.insert(0, Hide())
from ckptaudit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _HIDE_COMPILED, *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
    )


def test_the_pure_python_fallback_says_so_once(tmp_path: Path) -> None:
    for i in range(12):  # enough files for worker processes: still one note
        (tmp_path / f"m{i}.pkl").write_bytes(EVIL)
    proc = _cli("audit", "--no-progress", "-j", "2", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.count(NOTE) == 1, proc.stderr
    version = _cli("--version")
    assert version.stdout.rstrip().endswith("(python core)")


def test_no_note_when_the_pure_python_core_is_chosen(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(EVIL)
    proc = _cli("audit", str(tmp_path / "m.pkl"), CKPTAUDIT_PURE_PYTHON="1")
    assert proc.returncode == 1 and NOTE not in proc.stderr
