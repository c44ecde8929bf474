"""Zips that Python's zipfile and torch's miniz read differently: ckptaudit's verdict follows
torch (checked live), and a payload only one reader sees is still dangerous.

From the first red-team campaign (a zip64 record that overrides the 32-bit end record, closed
in d413eec) and the fourth (fc9d47c): central-directory records beyond the end record's count
(Python's zipfile reads them, miniz does not), miniz's refusals (torch fails, so a file is never
compatible), the end record's reach, the stored-size check that reads the time field too, and
duplicate byteorder records. Payloads are reached with the plain recording stub.
"""

from __future__ import annotations

import functools
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from support.containers import raw_member, raw_zip
from support.loaders import (
    assert_dangerous_and_reached,
    audit_against_torch,
    payload_calls,
    saved_bytes,
    torch_weights_only_loads,
)
from support.payloads import BENIGN, HOSTILE, RAN

from ckptaudit.findings import Status

pytestmark = pytest.mark.torch

# --------------------------------------------------------------------------- zip64 record


def zip64_two_directories() -> bytes:
    """The 32-bit end record names a benign directory, the zip64 record (miniz's) a hostile one."""
    out, offsets, entries = bytearray(), [], []
    members = [("archive/data.pkl", BENIGN), ("archive/version", b"3\n")]
    members += [("archive/byteorder", b"little"), ("archive/data.pkl", HOSTILE)]
    for name, data in members:
        offsets.append(len(out))
        crc, n = zlib.crc32(data), name.encode()
        out += (
            struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(n), 0
            )
            + n
            + data
        )
        entries.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                0x031E,
                20,
                0,
                0,
                0,
                0x21,
                crc,
                len(data),
                len(data),
                len(n),
                0,
                0,
                0,
                0,
                0,
                offsets[-1],
            )
            + n
        )
    benign_cd, hostile_cd = b"".join(entries[:3]), entries[3] + entries[1] + entries[2]
    benign_at = len(out)
    out += benign_cd
    hostile_at = len(out)
    out += hostile_cd
    record_at = len(out)
    out += struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 3, 3, len(hostile_cd), hostile_at
    )
    out += struct.pack("<IIQI", 0x07064B50, 0, record_at, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(benign_cd), benign_at, 0)
    return bytes(out)


def test_zip64_record_overrides_32bit_end_record(tmp_path: Path) -> None:
    report = assert_dangerous_and_reached(
        tmp_path, zip64_two_directories(), "model.pt", "torch", "os.system('true',)"
    )
    assert not report.weights_only_compatible
    assert not torch_weights_only_loads(tmp_path / "model.pt")


# --------------------------------------------------------------------------- records beyond the count


def _tz(data_pkl: bytes = BENIGN, *extra: dict[str, object], **fields: int) -> list:
    return [
        raw_member("archive/data.pkl", data_pkl, **fields),
        *extra,
        raw_member("archive/version", b"3\n"),
    ]


def test_central_record_beyond_the_count_is_dangerous(tmp_path: Path) -> None:
    """The end record counts 2 records; a third, hostile archive/data.pkl sits within the
    directory's size. miniz (torch) reads two, Python's zipfile all three (the last wins)."""
    data = bytearray(raw_zip([raw_member("archive/data.pkl", HOSTILE), *_tz()]))
    end = data.rindex(b"PK\x05\x06")
    cd_size, cd_at = struct.unpack_from("<II", data, end + 12)
    first = 46 + len("archive/data.pkl")
    data[cd_at : cd_at + cd_size] = (
        data[cd_at + first : cd_at + cd_size] + data[cd_at : cd_at + first]
    )
    struct.pack_into("<HH", data, end + 8, 2, 2)
    path, report = audit_against_torch(tmp_path, bytes(data), "model.pt")
    assert report.weights_only_compatible is True  # torch loads the benign pickle (and audit
    assert report.status is Status.DANGEROUS, report.findings  # checked it against torch)
    assert any(f.rule == "CKA105" for f in report.findings), report.findings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate name
        assert zipfile.ZipFile(path).read("archive/data.pkl") == HOSTILE
    assert any(RAN in c for c in payload_calls(path, "zip-walk"))
    assert not any(RAN in c for c in payload_calls(path, "torch"))


# --------------------------------------------------------------------------- miniz refusals

MINIZ_REFUSALS = [
    pytest.param(raw_zip(_tz(), on_disk=3), id="end-record-entries-on-disk-differ"),
    pytest.param(raw_zip(_tz(), zip64={"disks": 2}), id="zip64-locator-two-disks"),
    pytest.param(raw_zip(_tz(), zip64={"size_rec": 0}), id="zip64-record-too-short"),
    pytest.param(raw_zip(_tz(), zip64={"this_disk": 3, "cd_disk": 3}), id="zip64-this-disk-3"),
    pytest.param(raw_zip(_tz(), zip64={"on_disk": 5}), id="zip64-entries-on-disk-differ"),
    pytest.param(
        raw_zip(_tz(BENIGN, raw_member("archive/extra", b"hello", method=8, payload=b"", csize=0))),
        id="deflated-member-csize-0-size-5",
    ),
    pytest.param(raw_zip(_tz(), junk=b"J" * 5000), id="junk-5000-after-end-record"),
]


def test_consistent_zip64_layout_is_compatible(tmp_path: Path) -> None:
    """Keeps the refusals honest: the consistent zip64 layout loads and is compatible."""
    _, report = audit_against_torch(tmp_path, raw_zip(_tz(), zip64={}), "model.pt")
    assert report.status is Status.COMPATIBLE, report.findings


@pytest.mark.parametrize("data", MINIZ_REFUSALS)
def test_zip_that_miniz_refuses_is_never_compatible(tmp_path: Path, data: bytes) -> None:
    path, report = audit_against_torch(tmp_path, data, "model.pt")  # == torch's verdict
    assert not torch_weights_only_loads(path)
    assert report.status is not Status.COMPATIBLE, report.findings


# --------------------------------------------------------------------------- end record reach


@functools.cache
def _saved_small_and_large() -> dict[str, bytes]:
    return {
        "dict": saved_bytes({"a": 1, "w": torch.ones(3)}),
        "tensor-1mb": saved_bytes({"w": torch.ones(256 * 1024)}),
    }


@pytest.mark.parametrize("n", [4074, 4075, 8200, 65514, 70000])
@pytest.mark.parametrize("kind", ["dict", "tensor-1mb"])
def test_junk_after_the_end_record_follows_miniz_reach(tmp_path: Path, kind: str, n: int) -> None:
    """Junk after the end record: miniz searches back in 4 KiB steps with a signed offset,
    so whether torch finds it depends on the file's size; ckptaudit's verdict follows."""
    path, report = audit_against_torch(
        tmp_path, _saved_small_and_large()[kind] + b"J" * n, "model.pt"
    )
    assert report.weights_only_compatible is torch_weights_only_loads(path)  # live, as in audit
    if not report.weights_only_compatible:
        assert report.status is not Status.COMPATIBLE, report.findings


# --------------------------------------------------------------------------- stored sizes


def _extra_stored_mismatch(time: int) -> bytes:
    return raw_zip(_tz(BENIGN, raw_member("archive/extra", b"hellohello", csize=4, time=time)))


def _data_pkl_stored_mismatch(time: int) -> bytes:
    return raw_zip(_tz(BENIGN + b"\x00" * 8, size=len(BENIGN), time=time))


@pytest.mark.parametrize("time", [1, 0], ids=["time-1", "time-0"])
@pytest.mark.parametrize(
    "build", [_extra_stored_mismatch, _data_pkl_stored_mismatch], ids=["extra", "data-pkl"]
)
def test_stored_size_mismatch_is_read_with_the_time_field(
    tmp_path: Path, build: Callable[[int], bytes], time: int
) -> None:
    """miniz tests the method and DOS time as one 32-bit value: with a nonzero time a stored
    member's compressed size may differ from its size (torch loads: no false error), with a
    zero time it may not (torch fails: never compatible)."""
    path, report = audit_against_torch(tmp_path, build(time), "model.pt")  # == torch's verdict
    assert torch_weights_only_loads(path) is bool(time)
    assert (report.status is Status.COMPATIBLE) is bool(time), report.findings


# --------------------------------------------------------------------------- byteorder twice


@pytest.mark.parametrize(
    "order",
    [("little", "middle"), ("middle", "little")],
    ids=["little-then-middle", "middle-then-little"],
)
def test_duplicate_byteorder_records_follow_torch(tmp_path: Path, order: tuple[str, str]) -> None:
    extra = [raw_member("archive/byteorder", o.encode()) for o in order]
    path, report = audit_against_torch(tmp_path, raw_zip(_tz(BENIGN, *extra)), "model.pt")
    loads = torch_weights_only_loads(path)
    assert report.weights_only_compatible is loads
    assert (report.status is Status.COMPATIBLE) is loads, report.findings
