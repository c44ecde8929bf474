"""``--torch-check``: torch's own error, from its weights_only unpickler over the pickle alone.

The check must say word for word what ``torch.load(f, weights_only=True)`` says, apply the
``--allow`` list, never read a tensor storage, and run only when asked.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import oracle_types as ot
import pytest
import torch
from support.loaders import save, torch_loads
from support.oracle_corpus import CASES

from ckptaudit.torch_oracle import torch_check

# torch's loader, not the audit's core, is under test: one pass of `make unit` runs it.
pytestmark = [pytest.mark.torch, pytest.mark.once]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# torch has no meta kernel to rebuild these without their data: the check says so instead.
_NEEDS_DATA = frozenset({"quantized", "nested_tensor"})


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_check_says_what_torch_load_says(tmp_path: Path, case: str, legacy: bool) -> None:
    path = save(CASES[case](), tmp_path / f"{case}.pt", _use_new_zipfile_serialization=not legacy)
    loads, error = torch_loads(path)
    check = torch_check(str(path))
    if case in _NEEDS_DATA:
        assert not check.ran and "without the tensor's data" in (check.note or "")
        return
    assert check.ran, check.note
    assert check.torch_version == torch.__version__.split("+")[0]
    assert (check.error is None) == loads, (check.error, error)
    if not loads:
        assert check.error == _ANSI.sub("", error)  # word for word


def test_the_allow_list_is_applied_to_torch_as_well(tmp_path: Path) -> None:
    """Allowlisting the first offender moves torch's error to the next one, as in torch."""
    path = save({"stage": ot.Stage.ACTIVE, "d": collections.deque([1])}, tmp_path / "x.pt")
    torch_own = set(torch.serialization.get_safe_globals())
    plain = torch_check(str(path))
    assert plain.error is not None and "GLOBAL oracle_types.Stage" in plain.error
    allowed = torch_check(str(path), allow=["oracle_types.Stage"])
    assert allowed.error is not None and "oracle_types.Stage" not in allowed.error
    assert "GLOBAL collections.deque was not an allowed global" in allowed.error
    # The same as torch with the real class allowlisted; and the real class is not imported
    # by the check (the stand-in only has its name).
    _, real = torch_loads(path, [ot.Stage])
    assert allowed.error == _ANSI.sub("", real)
    both = torch_check(str(path), allow=["oracle_types.Stage", "collections.deque"])
    _, real = torch_loads(path, [ot.Stage, collections.deque])
    assert both.error == _ANSI.sub("", real)
    assert "lists, but got <class 'collections.deque'>" in (both.error or "")
    assert torch_check(str(path), allow=["oracle_types.Stage", "collections.deque"]).ran
    # The allowlist was for the check only: torch's own state is as it was.
    assert set(torch.serialization.get_safe_globals()) == torch_own


def test_the_cli_quotes_torch_with_the_allow_list(tmp_path: Path) -> None:
    path = save({"stage": ot.Stage.ACTIVE, "d": collections.deque([1])}, tmp_path / "x.pt")
    args = ["audit", str(path), "--torch-check", "--allow", "oracle_types.Stage"]
    out = subprocess.run(
        [sys.executable, "-m", "ckptaudit", *args],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    line = next(line for line in out.splitlines() if "(--torch-check)" in line)
    assert line.startswith(f"  torch {torch.__version__.split('+')[0]} raises (--torch-check): ")
    assert "collections.deque" in out.split("(--torch-check)")[1].split("\n\n")[0]
    assert "GLOBAL oracle_types.Stage" not in out


def test_the_container_failing_first_keeps_the_prediction(tmp_path: Path) -> None:
    """A torch zip without its version record fails before the pickle: no check runs."""
    path = save({"w": torch.ones(1)}, tmp_path / "x.pt")
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("/version"):
                dst.writestr(item, src.read(item))
    check = torch_check(str(damaged))
    assert not check.ran and "before the pickle" in (check.note or "")


def test_without_torch_check_the_error_is_predicted_and_torch_never_imported(
    tmp_path: Path,
) -> None:
    path = save({"d": collections.deque([1])}, tmp_path / "x.pt")
    out = tmp_path / "r.md"
    code = (
        "import sys; from ckptaudit.cli import main; "
        f"code = main(['report', {str(path)!r}, '-o', {str(out)!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    text = out.read_text()
    assert "**Predicted first error (ckptaudit's prediction; `--torch-check` asks torch):**" in text
    assert "Unsupported global: GLOBAL collections.deque" in text


# --------------------------------------------------------------------------- no storage read
_MEASURE = """
import json, resource, sys
from ckptaudit.cli import main
with open("/proc/self/io") as io:
    before = dict(line.split(": ") for line in io.read().splitlines())
code = main(sys.argv[1:])
with open("/proc/self/io") as io:
    after = dict(line.split(": ") for line in io.read().splitlines())
print(json.dumps({
    "code": code,
    "read": int(after["rchar"]) - int(before["rchar"]),
    "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""

_BIG = 256 << 20


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 256 MiB checkpoint and a small one, the same apart from the size of their tensor."""
    folder = tmp_path_factory.mktemp("big")
    stats = {"recent": collections.deque([1.0, 2.0])}
    torch.save({"w": torch.empty(_BIG, dtype=torch.uint8), "stats": stats}, folder / "big.pt")
    torch.save({"w": torch.empty(16, dtype=torch.uint8), "stats": stats}, folder / "small.pt")
    return folder / "big.pt", folder / "small.pt"


def _measure(*args: str) -> dict[str, int]:
    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/self/io to count the bytes read")
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, int] = json.loads(result.stdout.splitlines()[-1])
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [("report", "-o", "{out}"), ("audit",)],
    ids=["report", "audit-text"],
)
def test_torch_check_reads_no_storage(
    big: tuple[Path, Path], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The 256 MiB tensor is neither read nor held: the run costs what the small file costs."""
    large, small = big
    out = str(tmp_path / "r.md")
    args = [part.format(out=out) for part in command]
    on_big = _measure(args[0], str(large), *args[1:], "--torch-check")
    on_small = _measure(args[0], str(small), *args[1:], "--torch-check")
    assert on_big["code"] == on_small["code"]
    assert on_big["read"] - on_small["read"] < 1 << 20, (on_big, on_small)
    assert on_big["peak"] - on_small["peak"] < 32 << 20, (on_big, on_small)
