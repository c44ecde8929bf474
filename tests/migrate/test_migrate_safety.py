"""Refusal, --sanitize, atomic writes and failure paths, --in-place, and a run without torch."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import subprocess
import sys
import warnings
import zipfile

import hostile_cases as hc
import pytest
import torch
from migrate_helpers import SLOW

import ckptaudit
from ckptaudit.findings import Status

SANITIZE = ckptaudit.MigrateOptions(sanitize=True)


def _load(path: pathlib.Path) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=True)


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "out" in p.name)


@SLOW
@pytest.mark.parametrize("case", hc.CASES, ids=lambda c: c.name)
def test_hostile_files_are_refused_and_sanitize_keeps_their_tensors(
    tmp_path: pathlib.Path, case: hc.HostileCase
) -> None:
    src = tmp_path / case.filename
    src.write_bytes(case.data)
    with pytest.raises(ckptaudit.MigrationError):
        ckptaudit.migrate(src, tmp_path / "out.pt")
    assert _leftovers(tmp_path) == []
    report = ckptaudit.audit_file(src)
    try:
        manifest = ckptaudit.migrate(src, tmp_path / "out.pt", options=SANITIZE)
    except ckptaudit.MigrationError:
        # Not a checkpoint at all (no torch format, unreadable): nothing to recover.
        assert not (tmp_path / "out.pt").exists()
        return
    assert len(manifest.tensors) >= report.stats.tensors
    assert ckptaudit.audit_file(tmp_path / "out.pt").status is Status.COMPATIBLE
    _load(tmp_path / "out.pt")
    assert manifest.removed or report.status is not Status.DANGEROUS or manifest.not_copied


def test_sanitize_replaces_the_payload_and_keeps_the_weights(tmp_path: pathlib.Path) -> None:
    weights = hc.torch_zip(
        b"\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x04tq\x07QK\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq\x08Rq\tX\x03\x00\x00\x00runq\ncposix\nsystem\nX\x02\x00\x00\x00idq\x0b\x85Rq\x0cu."
    )
    src = tmp_path / "trap.pt"
    src.write_bytes(weights)
    assert ckptaudit.audit_file(src).status is Status.DANGEROUS
    with pytest.raises(ckptaudit.MigrationRefused, match="--sanitize"):
        ckptaudit.migrate(src, tmp_path / "out.pt")
    manifest = ckptaudit.migrate(src, tmp_path / "out.pt", options=SANITIZE)
    got = _load(tmp_path / "out.pt")
    assert got["run"] == "<removed: posix.system>"
    assert torch.equal(got["w"], torch.tensor([0.5, -1.0, 2.0, 0.25]))
    assert manifest.removed == ("root['run']: posix.system",)


def test_a_plain_pickle_of_tensors_becomes_a_torch_zip(tmp_path: pathlib.Path) -> None:
    obj = {"t": torch.arange(6.0).reshape(2, 3), "n": 3}
    src = tmp_path / "plain.pkl"
    src.write_bytes(pickle.dumps(obj, protocol=2))
    manifest = ckptaudit.migrate(src, tmp_path / "out.pt")
    got = _load(tmp_path / "out.pt")
    assert torch.equal(got["t"], obj["t"]) and got["n"] == 3
    assert manifest.source_format == "pickle"


def test_torchscript_is_refused_with_the_reason(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "script.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; its archives still exist
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), src)
    with pytest.raises(ckptaudit.MigrationRefused, match="TorchScript"):
        ckptaudit.migrate(src, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_a_corrupt_storage_fails_midway_and_leaves_nothing(tmp_path: pathlib.Path) -> None:
    """A deflated storage whose data does not inflate: the write starts, then fails."""
    buffer = io.BytesIO()
    torch.save({"a": torch.ones(1000), "b": torch.zeros(100000)}, buffer)
    src = tmp_path / "bad.pt"
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zin, zipfile.ZipFile(src, "w") as zout:
        for info in zin.infolist():
            method = (
                zipfile.ZIP_DEFLATED if info.filename.endswith("data/1") else zipfile.ZIP_STORED
            )
            zout.writestr(info.filename, zin.read(info.filename), compress_type=method)
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = z.getinfo("archive/data/1")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 50 : start + 60] = b"\xff" * 10
    src.write_bytes(bytes(data))
    (tmp_path / "out.pt").write_bytes(b"previous")
    with pytest.raises(ckptaudit.MigrationError, match="storage"):
        ckptaudit.migrate(src, tmp_path / "out.pt")
    assert (tmp_path / "out.pt").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stray_operations_are_refused_not_dropped(tmp_path: pathlib.Path) -> None:
    case = next(c for c in hc.CASES if c.name == "setitem_on_non_dict")
    src = tmp_path / case.filename
    src.write_bytes(case.data)
    with pytest.raises(ckptaudit.MigrationRefused, match="SETITEM"):
        ckptaudit.migrate(src, tmp_path / "out.pt")
    manifest = ckptaudit.migrate(src, tmp_path / "out.pt", options=SANITIZE)
    assert any("SETITEM" in r for r in manifest.removed)


def test_src_is_never_overwritten_unless_in_place(tmp_path: pathlib.Path) -> None:
    import collections

    src = tmp_path / "m.pt"
    torch.save({"d": collections.deque([1])}, src)
    before = src.read_bytes()
    with pytest.raises(ckptaudit.UsageError, match="--in-place"):
        ckptaudit.migrate(src, src)
    assert src.read_bytes() == before
    ckptaudit.migrate(src, in_place=True)
    assert (tmp_path / "m.pt.bak").read_bytes() == before
    assert _load(src) == {"d": [1]}
    with pytest.raises(ckptaudit.UsageError, match="bak exists"):
        ckptaudit.migrate(src, in_place=True)


@SLOW
def test_migration_runs_without_torch_and_torch_loads_the_result(tmp_path: pathlib.Path) -> None:
    import collections

    import oracle_types as ot

    base = torch.nn.Parameter(torch.randn(4, 3))
    obj = {
        "w": base,
        "view": base[1:],
        "cfg": ot.Config(),
        "d": collections.deque([ot.Stage.ACTIVE]),
    }
    src = tmp_path / "src.pt"
    torch.save(obj, src, _use_new_zipfile_serialization=False)
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['numpy'] = None\n"
        "import ckptaudit\n"
        f"m = ckptaudit.migrate({str(src)!r}, {str(tmp_path / 'out.pt')!r})\n"
        "assert not any('torch' in v for v in m.verified), m.verified\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])},
    )
    assert result.returncode == 0, result.stderr
    got = _load(tmp_path / "out.pt")
    assert torch.equal(got["w"], base) and isinstance(got["w"], torch.nn.Parameter)
    assert got["view"].untyped_storage().data_ptr() == got["w"].untyped_storage().data_ptr()
    assert got["cfg"] == {"lr": 0.1, "name": "run", "steps": [1, 2]} and got["d"] == [2]
