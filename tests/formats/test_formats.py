"""Containers: detection from bytes, every format, and bad input as clear per-file errors."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from support.containers import legacy_tar, rezip, safetensors_file
from support.loaders import torch_weights_only_loads
from torch import nn

import ckptaudit
from ckptaudit import formats
from ckptaudit.errors import InputError
from ckptaudit.findings import ContainerFormat, Status
from ckptaudit.formats import BytesSource
from ckptaudit.pickle.limits import DEFAULT_LIMITS

pytestmark = pytest.mark.torch


def _saved(tmp_path: Path, obj: object, name: str = "m.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("fmt", list(ContainerFormat))
def test_every_container_format_has_a_reader(fmt: ContainerFormat) -> None:
    """The dispatch is exhaustive: a member without a reader ends in assert_never."""
    source = BytesSource(b"\x80\x02}q\x00.", "x")
    try:
        container = formats._read(fmt, source, DEFAULT_LIMITS)
    except InputError:
        return  # the reader ran and refused bytes of another format
    assert isinstance(container.format, ContainerFormat)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty file"),
        (b"hello world, not a checkpoint\n", "not a checkpoint"),
        (b"\x93NUMPY\x01\x00", "not a checkpoint"),
        (b"PK\x03\x04" + b"\x00" * 40, "end-of-central-directory"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    report = ckptaudit.audit_file(path)
    assert report.status is Status.ERROR
    assert report.weights_only_compatible is False
    assert report.error is not None and needle in report.error


def test_truncated_checkpoints_are_never_compatible(tmp_path: Path) -> None:
    data = _saved(tmp_path, {"w": torch.ones(3), "n": 1}).read_bytes()
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        report = ckptaudit.audit_file(path)
        assert report.status is Status.ERROR, (cut, report)
        assert not report.weights_only_compatible
        assert not torch_weights_only_loads(path)


def test_missing_file_is_an_error_and_other_files_still_audited(tmp_path: Path) -> None:
    good = _saved(tmp_path, {"a": 1})
    from ckptaudit.runner import audit_paths

    reports = audit_paths([tmp_path / "missing.pt", good], jobs=1)
    assert [r.status for r in reports] == [Status.ERROR, Status.COMPATIBLE]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_is_refused_but_scanned(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    report = ckptaudit.audit_file(path)
    assert report.format == "torchscript"
    assert report.status is Status.INCOMPATIBLE
    assert not report.weights_only_compatible and not torch_weights_only_loads(path)
    assert any(f.rule == "CKA102" for f in report.findings)


def test_tar_format_is_refused_and_its_pickles_audited(tmp_path: Path) -> None:
    clean = tmp_path / "old.tar"
    clean.write_bytes(legacy_tar(pickle.dumps({"a": 1}, protocol=2)))
    report = ckptaudit.audit_file(clean)
    assert report.format == "torch-tar"
    assert report.status is Status.INCOMPATIBLE and not torch_weights_only_loads(clean)
    hostile = tmp_path / "evil.tar"
    hostile.write_bytes(legacy_tar(b"cos\nsystem\n(S'id'\ntR."))
    assert ckptaudit.audit_file(hostile).status is Status.DANGEROUS


def test_safetensors_is_compatible_with_its_tensor_count(tmp_path: Path) -> None:
    (tmp_path / "w.safetensors").write_bytes(safetensors_file(3))
    report = ckptaudit.audit_file(tmp_path / "w.safetensors")
    assert (report.format, report.status, report.stats.tensors) == (
        "safetensors",
        Status.COMPATIBLE,
        3,
    )
    (tmp_path / "w.pt").write_bytes(safetensors_file(3))
    misnamed = ckptaudit.audit_file(tmp_path / "w.pt")
    assert misnamed.format == "safetensors" and not misnamed.weights_only_compatible


def test_extension_does_not_decide_the_format(tmp_path: Path) -> None:
    plain = tmp_path / "model.pt"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert ckptaudit.audit_file(plain).format == "pickle"
    zipped = _saved(tmp_path, {"a": 1}, "weights.safetensors.bin")
    assert ckptaudit.audit_file(zipped).format == "torch-zip"


def test_unusual_top_folder_is_read(tmp_path: Path) -> None:
    src = _saved(tmp_path, {"w": torch.ones(2)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buffer, "w") as zout:
        for info in zin.infolist():
            zout.writestr("we ird δ/" + info.filename.split("/", 1)[1], zin.read(info.filename))
    path = tmp_path / "renamed.pt"
    path.write_bytes(buffer.getvalue())
    report = ckptaudit.audit_file(path)
    assert report.status is Status.COMPATIBLE
    assert torch_weights_only_loads(path)


def test_extra_pickle_member_is_a_hidden_payload(tmp_path: Path) -> None:
    src = _saved(tmp_path, {"a": 1})
    path = tmp_path / "extra.pt"
    path.write_bytes(
        rezip(
            src.read_bytes(),
            extra={"extra.pkl": b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."},
        )
    )
    report = ckptaudit.audit_file(path)
    assert report.status is Status.DANGEROUS
    assert report.weights_only_compatible and torch_weights_only_loads(path)
    assert any(f.rule == "CKA303" for f in report.findings)


def test_second_pickle_after_stop_is_a_hidden_payload(tmp_path: Path) -> None:
    src = _saved(tmp_path, {"a": 1})
    with zipfile.ZipFile(src) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    evil = data + b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."
    path = tmp_path / "after.pt"
    path.write_bytes(rezip(src.read_bytes(), replace={"data.pkl": evil}))
    report = ckptaudit.audit_file(path)
    assert report.status is Status.DANGEROUS
    assert report.weights_only_compatible and torch_weights_only_loads(path)


def test_junk_before_a_zip_is_not_a_torch_checkpoint(tmp_path: Path) -> None:
    src = _saved(tmp_path, {"a": 1})
    path = tmp_path / "prefixed.pt"
    path.write_bytes(
        rezip(
            src.read_bytes(),
            extra={"x.pkl": b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."},
            prefix=b"junk" * 25,
        )
    )
    report = ckptaudit.audit_file(path)
    assert report.format == "zip"
    assert report.status is Status.DANGEROUS
    assert not report.weights_only_compatible and not torch_weights_only_loads(path)


def test_missing_storage_record_is_incompatible(tmp_path: Path) -> None:
    src = _saved(tmp_path, {"w": torch.ones(2)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buffer, "w") as zout:
        for info in zin.infolist():
            if "/data/" not in info.filename:
                zout.writestr(info.filename, zin.read(info.filename))
    path = tmp_path / "nostorage.pt"
    path.write_bytes(buffer.getvalue())
    report = ckptaudit.audit_file(path)
    assert not report.weights_only_compatible and not torch_weights_only_loads(path)
    assert any(f.rule == "CKA205" for f in report.findings)


def test_a_torch_zip_named_safetensors_does_not_load(tmp_path: Path) -> None:
    path = _saved(tmp_path, {"a": 1}, "weights.safetensors")
    report = ckptaudit.audit_file(path)
    assert report.format == "torch-zip"
    assert not report.weights_only_compatible and not torch_weights_only_loads(path)
    assert any(f.rule == "CKA104" for f in report.findings)


def test_a_bug_inside_ckptaudit_becomes_an_error_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users get a per-file error and the run goes on; tests (CKPTAUDIT_DEBUG) see the raise."""
    import ckptaudit.audit as audit_module

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(audit_module, "check_file", broken)
    path = _saved(tmp_path, {"a": 1})
    with pytest.raises(ZeroDivisionError):
        ckptaudit.audit_file(path)
    monkeypatch.delenv("CKPTAUDIT_DEBUG")
    report = ckptaudit.audit_file(path)
    assert report.status is Status.ERROR
    assert report.error is not None and "internal error" in report.error
