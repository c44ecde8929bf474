"""The generated tables of the known pool are current: regenerating them changes nothing.

Both generators read the environment (the CPython versions on the machine; the installed
torch and numpy), so each check runs only where that environment matches the one the table
records; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _table(name: str) -> dict[str, object]:
    text = (resources.files("ckptaudit.policy") / "data" / name).read_text()
    table: dict[str, object] = json.loads(text)
    return table


def _run(tool: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / tool), "--check"],
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_stdlib_module_list_is_current() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_stdlib_modules as gen
    finally:
        sys.path.remove(str(ROOT / "tools"))
    here = [v for v in gen.VERSIONS if gen._interpreter(v)]
    recorded = re.findall(r"\d+\.\d+", str(_table("stdlib-modules.json")["source"]))
    if here != recorded:
        pytest.skip(f"this machine has CPython {here}, the table was made from {recorded}")
    result = _run("gen_stdlib_modules.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.torch
def test_value_class_table_is_current() -> None:
    import numpy
    import torch

    source = str(_table("value-classes.json")["source"])
    wanted = (
        f"CPython {sys.version.split()[0]}, torch {torch.__version__.split('+')[0]}, "
        f"numpy {numpy.__version__}"
    )
    if wanted not in source:
        pytest.skip(f"the table was made with {source}; this is {wanted}")
    result = _run("gen_value_classes.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_known_pool_includes_what_stdlib_module_names_omits() -> None:
    from ckptaudit.policy.closure import is_known_pool

    # Gadgets have used both (fickling advisories); neither is in sys.stdlib_module_names.
    assert is_known_pool("test.support.script_helper")
    assert is_known_pool("_xxsubinterpreters")
    assert not is_known_pool("mylib") and not is_known_pool("__main__")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("signal.Signals", "enum"),
        ("torch.distributed.checkpoint.planner.WriteItemType", "enum"),
        ("os.stat_result", "structseq"),
        ("builtins.ValueError", "exception"),
        ("inspect.FrameInfo", "namedtuple"),
        ("torch.optim.adam.Adam", "plain"),
        ("torch.distributed.checkpoint.metadata.MetadataIndex", "plain"),
    ],
)
def test_value_classes_are_what_they_say(name: str, kind: str) -> None:
    from ckptaudit.policy.callables import value_class

    assert value_class(name) == kind


@pytest.mark.parametrize(
    "name",
    [
        "subprocess.Popen",  # a finalizer, and its __init__ runs a process
        "tempfile._TemporaryFileCloser",  # its finalizer deletes a file
        "torch.distributed.device_mesh.DeviceMesh",  # __setstate__ makes process groups
        "multiprocessing.queues.Queue",  # __setstate__ opens pipes
        "collections.UserDict",  # fine to create, but __setitem__ is Python code
    ],
)
def test_classes_with_load_time_behaviour_are_not_plain(name: str) -> None:
    from ckptaudit.policy.callables import value_class

    assert value_class(name) != "plain"
