"""Every byte another loader reads is audited (issue 10, item 4).

Each hostile file is checked twice, the way the review found them: a real loader, run in a
fresh interpreter, reaches the payload (it creates a marker file), and ckptaudit calls the
file dangerous. Where torch can load the file, ckptaudit's ``weights_only_compatible`` is
checked against ``torch.load(weights_only=True)`` too. Benign look-alikes stay not dangerous.
"""

from __future__ import annotations

import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_bytes_helpers import (
    BENIGN,
    frame_skip,
    loader_reaches,
    marker_call,
    marker_call_text,
    npy,
    tensor_pickle,
    torch_zip_with,
    zip_of,
)

import ckptaudit
from ckptaudit.findings import FileReport, Status


def torch_loads(path: Path) -> bool:
    """What torch.load(weights_only=True) does with the file (it never runs a payload)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(str(path), weights_only=True)
        except Exception:
            return False
    return True


def audited(tmp_path: Path, name: str, data: bytes) -> tuple[Path, FileReport]:
    path = tmp_path / name
    path.write_bytes(data)
    report = ckptaudit.audit_file(path)
    assert report.weights_only_compatible is torch_loads(path), report.findings
    return path, report


def padded(data: bytes, multiple: int) -> bytes:
    """Bytes after STOP up to a multiple of ``multiple`` (a storage record's element size)."""
    return data + b"\x00" * (-len(data) % multiple)


# --------------------------------------------------------------------------- zip members


def test_referenced_storage_record_holding_an_object_npy(tmp_path: Path) -> None:
    """torch maps the record as a float storage (and loads the file under weights_only);
    numpy.load of the checkpoint as an archive reads the record as an object array."""
    marker = tmp_path / "marker"
    record = padded(npy(marker_call(marker)), 4)
    data = torch_zip_with({"data/0": record}, tensor_pickle("0", len(record) // 4))
    path, report = audited(tmp_path, "model.pt", data)
    assert report.weights_only_compatible is True
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("numpy-archive", path, marker)


def test_format_version_record_holding_an_object_npy(tmp_path: Path) -> None:
    """torch compares .format_version's bytes with b'1' and loads the file; numpy runs it."""
    marker = tmp_path / "marker"
    data = torch_zip_with({".format_version": npy(marker_call(marker))})
    path, report = audited(tmp_path, "model.pt", data)
    assert report.weights_only_compatible is True
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("numpy-archive", path, marker)


@pytest.mark.parametrize("record", ["version", "byteorder", ".data/serialization_id"])
def test_every_metadata_record_is_read_by_content(tmp_path: Path, record: str) -> None:
    marker = tmp_path / "marker"
    data = torch_zip_with({record: npy(marker_call(marker))})
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    assert ckptaudit.audit_file(path).status is Status.DANGEROUS
    assert loader_reaches("numpy-archive", path, marker)


def test_storage_record_holding_a_pickle(tmp_path: Path) -> None:
    """A record that starts with PROTO is read as the pickle it looks like."""
    record = padded(marker_call(tmp_path / "marker"), 4)
    data = torch_zip_with({"data/0": record}, tensor_pickle("0", len(record) // 4))
    _, report = audited(tmp_path, "model.pt", data)
    assert report.status is Status.DANGEROUS, report.findings


def test_real_storages_stay_unread_and_compatible(tmp_path: Path) -> None:
    """Float bytes in a storage record, even ones that start like a float .npy, are data."""
    floats = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    npy_floats = padded(npy(floats, descr="<f4"), 4)
    for record in (floats, npy_floats):
        data = torch_zip_with({"data/0": record}, tensor_pickle("0", len(record) // 4))
        _, report = audited(tmp_path, "model.pt", data)
        assert report.status is Status.COMPATIBLE, report.findings


def test_torch_save_checkpoint_stays_compatible(tmp_path: Path) -> None:
    path = tmp_path / "real.pt"
    torch.save({"w": torch.arange(6.0), "step": 3}, path)
    report = ckptaudit.audit_file(path)
    assert report.status is Status.COMPATIBLE, report.findings


# --------------------------------------------------------------------------- numpy files


PROTOCOL_BODIES = {
    "protocol-0": lambda marker: marker_call_text(marker),
    "protocol-2": lambda marker: marker_call(marker, 2),
    "protocol-4-framed": lambda marker: pickle_framed(marker_call(marker, 4)),
    "protocol-5": lambda marker: marker_call(marker, 5),
}


def pickle_framed(data: bytes) -> bytes:
    """Wrap a protocol-4 pickle's opcodes after PROTO in one FRAME, as pickle.dumps does."""
    body = data[2:]
    return data[:2] + b"\x95" + struct.pack("<Q", len(body)) + body


@pytest.mark.parametrize("protocol", list(PROTOCOL_BODIES))
def test_standalone_npy_with_any_protocol(tmp_path: Path, protocol: str) -> None:
    marker = tmp_path / "marker"
    path, report = audited(tmp_path, "array.npy", npy(PROTOCOL_BODIES[protocol](marker)))
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("numpy", path, marker)


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
def test_npz_member_with_a_protocol_0_body(tmp_path: Path, compress: bool) -> None:
    marker = tmp_path / "marker"
    data = zip_of({"arr.npy": npy(marker_call_text(marker))}, compress=compress)
    path, report = audited(tmp_path, "arrays.npz", data)
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("numpy-archive", path, marker)


def test_npy_arrays_saved_one_after_another(tmp_path: Path) -> None:
    """np.save twice to one file: a loop of np.load reads the second array too."""
    first = npy(pickle.dumps(np.array([1], dtype=object).tolist(), protocol=2))
    marker = tmp_path / "marker"
    _, report = audited(tmp_path, "two.npy", first + npy(marker_call(marker)))
    assert report.status is Status.DANGEROUS, report.findings


def test_benign_numpy_files_are_not_dangerous(tmp_path: Path) -> None:
    np.save(tmp_path / "floats.npy", np.arange(5.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, "text", 3], dtype=object))
    np.savez(tmp_path / "both.npz", floats=np.arange(3.0), objects=np.array([None], dtype=object))
    for name in ("floats.npy", "objects.npy", "both.npz"):
        report = ckptaudit.audit_file(tmp_path / name)
        assert report.status is Status.INCOMPATIBLE, (name, report.findings)


# --------------------------------------------------------------------------- frames


def test_frame_crossing_plain_pickle_from_an_in_memory_file(tmp_path: Path) -> None:
    """From bytes the pickle is a string; from a file without peek() it runs the payload."""
    marker = tmp_path / "marker"
    data = frame_skip(marker_call(marker, protocol=0))
    path, report = audited(tmp_path, "model.pkl", data)
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("pickle-bytesio", path, marker)
    assert not loader_reaches("pickle-bytes", path, marker)
    assert pickle.loads(data) == "abc" + "s" * 13


def test_frame_crossing_plain_pickle_from_a_file_on_disk(tmp_path: Path) -> None:
    """A frame of 8 KiB or more is read whole even by a file that can peek."""
    marker = tmp_path / "marker"
    path, report = audited(tmp_path, "model.pkl", frame_skip(marker_call(marker, 0), 9000))
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("pickle-file", path, marker)


def test_frame_crossing_inside_a_torch_zip(tmp_path: Path) -> None:
    """torch reads data.pkl through BytesIO: torch.load(weights_only=False) runs it."""
    marker = tmp_path / "marker"
    data = torch_zip_with({}, frame_skip(marker_call(marker, protocol=0)))
    path, report = audited(tmp_path, "model.pt", data)
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("torch", path, marker)


def test_framed_pickles_of_real_data_have_one_reading(tmp_path: Path) -> None:
    value = {"a": list(range(3000)), "b": "x" * 70000, "c": [1.5] * 2000}
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(value, protocol=4))
    report = ckptaudit.audit_file(path)
    assert report.status is Status.INCOMPATIBLE, report.findings
    assert not [f for f in report.findings if f.member and "file reader" in f.member]


def test_benign_zip_members_are_not_dangerous(tmp_path: Path) -> None:
    data = torch_zip_with({"extra/notes.txt": b"class Foo:\n    pass\n", "extra/b.pkl": BENIGN})
    _, report = audited(tmp_path, "model.pt", data)
    assert report.status is Status.COMPATIBLE, report.findings


LEGACY_HEAD = (
    b"\x80\x02\x8a\x0a"
    + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
    + b"."  # magic
    + b"\x80\x02M\xe9\x03."  # protocol version 1001
)


def test_legacy_part_read_another_way_moves_the_next_part(tmp_path: Path) -> None:
    """torch.load of a legacy file reads its parts one after another from the file: where a
    file reader reads sys_info another way, the object pickle starts elsewhere for it."""
    marker = tmp_path / "marker"
    sys_info = frame_skip(b".", 9000)  # a string either way; it ends in two places
    data = LEGACY_HEAD + sys_info + marker_call(marker) + b"\x80\x02]."
    path, report = audited(tmp_path, "model.pt", data)
    assert report.status is Status.DANGEROUS, report.findings
    assert loader_reaches("torch", path, marker)
