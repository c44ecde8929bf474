"""Resource bombs: small (or merely large) files built to exhaust time, memory or recursion.

Each must come back as a report with the right outcome, using memory (tracemalloc peak)
bounded by the input: ``< 50 x input + 10 MiB``. Times are not asserted; input sizes keep
the whole file to a few seconds.
"""

from __future__ import annotations

import functools
import io
import struct
import tarfile
import tracemalloc
import zipfile
import zlib

import pytest
from support.containers import small_torch_zip, tar_of

import ckptaudit
from ckptaudit.findings import FileReport, Severity, Status

MIB = 1 << 20


def peak_per_input_byte(data: bytes) -> tuple[FileReport, float]:
    tracemalloc.start()
    try:
        report = ckptaudit.audit_bytes(data, name="<bomb>")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak / len(data)


def audit_bounded(data: bytes, factor: int = 50) -> FileReport:
    report, per_byte = peak_per_input_byte(data)
    peak = per_byte * len(data)
    assert isinstance(report, FileReport)
    assert peak < factor * len(data) + 10 * MIB, f"peak {peak} for {len(data)} input bytes"
    return report


def rules(report: FileReport) -> set[str]:
    return {f.rule for f in report.findings}


# --------------------------------------------------------------------------------------------
# Nesting


@functools.cache
def million_marks() -> tuple[FileReport, int, int]:
    data = b"\x80\x02" + b"(" * 1_000_000 + b"."
    tracemalloc.start()
    try:
        report = ckptaudit.audit_bytes(data, name="<marks>")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, peak, len(data)


@pytest.mark.slow
def test_a_million_marks() -> None:
    report, peak, size = million_marks()
    assert report.status is Status.ERROR  # STOP finds an empty stack
    assert report.stats.opcodes <= report.stats.pickle_bytes + 1
    assert peak < 70 * size + 10 * MIB


@pytest.mark.slow
def test_a_million_marks_within_50x() -> None:
    _, peak, size = million_marks()
    assert peak < 50 * size + 10 * MIB


def deep_list(depth: int, leaf: bytes = b"") -> bytes:
    """L0 = []; for each level: Li = []; memoize; L(i-1).append(Li); fetch Li back."""
    out = bytearray(b"\x80\x04]\x94")  # L0, memo 0
    for i in range(1, depth + 1):
        out += b"]\x94a0j" + struct.pack("<I", i)  # new list, memoize, append, pop, get it
    out += leaf
    out += b"0j" + struct.pack("<I", 0) + b"."  # drop the innermost, return L0
    return bytes(out)


@pytest.mark.slow
def test_a_million_nested_lists_via_memo() -> None:
    # Without tracemalloc (which slows this 20x); memory is checked on the next test.
    report = ckptaudit.audit_bytes(deep_list(1_000_000))
    assert report.status is Status.INCOMPATIBLE  # a plain pickle: loads nowhere, harms nothing
    assert report.stats.opcodes <= report.stats.pickle_bytes


@pytest.mark.slow
def test_nested_lists_memory_and_a_call_at_the_bottom() -> None:
    depth = 50_000
    call = b"\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85Ra"  # append posix.system('id')
    data = deep_list(depth, leaf=b"j" + struct.pack("<I", depth) + call + b"0")
    report = audit_bounded(data)
    assert report.status is Status.DANGEROUS
    names = {f.global_name for f in report.findings if f.severity is Severity.DANGEROUS}
    assert "posix.system" in names


def test_memo_dag_with_2_to_the_100_paths() -> None:
    """x0 = posix.system('id'); x(i+1) = (xi, xi): 2**100 paths to one call, 100 levels."""
    out = bytearray(b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R\x94")
    for i in range(100):
        out += b"h" + bytes([i]) + b"\x86\x94"  # (x_i, x_i) -> memo i+1
    out += b"."
    report = audit_bounded(bytes(out))
    assert report.status is Status.DANGEROUS
    danger = [f for f in report.findings if f.global_name == "posix.system"]
    assert danger
    assert all(f.count <= 2 for f in danger), [f.count for f in danger]
    assert all(len(f.paths) <= 20 for f in danger)


def test_wide_dag_of_dicts() -> None:
    """Every level a dict holding the previous one under 50 keys: 50**40 paths."""
    out = bytearray(b"\x80\x04}\x94")
    for i in range(40):
        out += b"}("
        for k in range(50):
            out += b"K" + bytes([k]) + b"h" + bytes([i])
        out += b"u\x94"
    out += b"."
    report = audit_bounded(bytes(out))
    assert report.status is Status.INCOMPATIBLE


# --------------------------------------------------------------------------------------------
# Declared lengths that lie


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("BINUNICODE8", b"\x8d" + struct.pack("<Q", 2**63)),
        ("BINUNICODE8-max", b"\x8d" + struct.pack("<Q", 2**64 - 1)),
        ("BINBYTES8", b"\x8e" + struct.pack("<Q", 2**62)),
        ("BYTEARRAY8", b"\x96" + struct.pack("<Q", 2**60)),
        ("BINUNICODE", b"X" + struct.pack("<I", 2**32 - 1)),
        ("BINBYTES", b"B" + struct.pack("<I", 2**32 - 1)),
        ("BINSTRING", b"T" + struct.pack("<i", 2**31 - 1)),
        ("LONG4", b"\x8b" + struct.pack("<i", 2**31 - 1)),
        ("LONG4-negative", b"\x8b" + struct.pack("<i", -(2**31))),
        ("FRAME", b"\x95" + struct.pack("<Q", 2**63)),
        ("LONG-text", b"L" + b"9" * 100_000 + b"L\n"),
    ],
)
def test_huge_declared_length_in_a_small_file(name: str, body: bytes) -> None:
    data = b"\x80\x05" + body + b"x" * 64 + b"."
    report = audit_bounded(data)
    assert report.status is Status.ERROR, name
    assert not report.weights_only_compatible


def test_huge_declared_length_inside_a_torch_zip() -> None:
    report = audit_bounded(small_torch_zip(b"\x80\x02\x8d" + struct.pack("<Q", 2**63) + b"."))
    assert report.status is Status.ERROR


# --------------------------------------------------------------------------------------------
# Containers


def test_zip_bomb_data_pkl_inflating_1000x() -> None:
    payload = b"\x80\x02B" + struct.pack("<I", 8 * MIB) + b"\x00" * (8 * MIB) + b"."
    data = small_torch_zip(payload, deflate=True)
    assert len(payload) > 500 * len(data)
    report = audit_bounded(data)
    assert report.status is not Status.COMPATIBLE
    assert report.status is Status.ERROR
    assert "CKA402" in rules(report)


def test_zip_bomb_with_a_lying_declared_size() -> None:
    """The directory says 100 bytes; the stream inflates to 8 MiB: stopped at 100."""
    payload = b"\x80\x02B" + struct.pack("<I", 8 * MIB) + b"\x00" * (8 * MIB) + b"."
    report = audit_bounded(small_torch_zip(payload, deflate=True, declared=100))
    assert report.status is Status.ERROR
    assert "CKA402" in rules(report)


def test_zip_bomb_in_an_extra_member() -> None:
    buf = io.BytesIO(small_torch_zip(b"\x80\x02}q\x00."))
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("archive/extra.pkl", (1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"\x80\x02" + b"N" * (8 * MIB) + b".")
    report = audit_bounded(buf.getvalue())
    assert report.status is not Status.COMPATIBLE


def test_ratio_bound_is_what_stops_a_bomb() -> None:
    """Truthful sizes under max_pickle_bytes: only max_inflate_ratio stands in the way."""
    payload = b"\x80\x02" + b"N" * (4 * MIB) + b"."
    data = small_torch_zip(payload, deflate=True)
    compressed = len(zlib.compress(payload)) or 1
    assert len(payload) // compressed > ckptaudit.Limits().max_inflate_ratio
    report = audit_bounded(data)
    assert "CKA402" in rules(report)


def zip_declaring(count: int) -> bytes:
    """A one-member zip whose end records declare ``count`` members (zip64 when needed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl", (1980, 1, 1, 0, 0, 0)), b"\x80\x02N.")
    raw = bytearray(buf.getvalue())
    eocd = raw.rfind(b"PK\x05\x06")
    _, _, _, _, _, cd_size, cd_offset, _ = struct.unpack_from("<4sHHHHIIH", raw, eocd)
    if count < 0xFFFF:
        struct.pack_into("<HH", raw, eocd + 8, count, count)
        return bytes(raw)
    head = raw[:eocd]
    eocd64_pos = len(head)
    eocd64 = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64_pos, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, cd_size, cd_offset, 0)
    return bytes(head) + eocd64 + locator + end


@pytest.mark.parametrize("count", [10_000_000, 2**63, 999_999, 60_000])
def test_zip_declaring_millions_of_members(count: int) -> None:
    report = audit_bounded(zip_declaring(count))
    assert report.status is Status.ERROR
    if count > ckptaudit.Limits().max_members:
        assert "CKA402" in rules(report)


PICKLE = b"\x80\x02}q\x00."
EVIL = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."


@pytest.mark.parametrize("member", ["sys_info", "pickle", "storages", "tensors", "other"])
@pytest.mark.parametrize("declared", [3 << 30, 1 << 40, 1 << 80])
def test_tar_with_a_huge_member_size(member: str, declared: int) -> None:
    report = audit_bounded(
        tar_of([(member, PICKLE + b"\0" * 1024)], fmt=tarfile.GNU_FORMAT, declared_sizes=[declared])
    )
    assert report.status is Status.ERROR  # a tar, or bytes no tool can read as one


def test_tar_payload_behind_a_damaged_member_is_still_found() -> None:
    data = tar_of(
        [("sys_info", PICKLE), ("pickle", EVIL), ("zz", PICKLE)],
        fmt=tarfile.GNU_FORMAT,
        declared_sizes=[None, None, 3 << 30],
    )
    report = audit_bounded(data)
    assert report.status is Status.DANGEROUS


def test_many_small_pickles_in_a_legacy_tar_storages_member() -> None:
    """storages declares 2**40 records; each is a tiny pickle: bounded by the bytes there."""
    body = b"\x80\x02\x8a\x05\x00\x00\x00\x00\x01." + PICKLE * 20_000
    report = audit_bounded(tar_of([("storages", body)], fmt=tarfile.GNU_FORMAT))
    assert report.status is not Status.COMPATIBLE
    assert report.stats.opcodes <= report.stats.pickle_bytes + 2


# --------------------------------------------------------------------------------------------
# A million one-byte objects (second red-team campaign, cde38f1)


@pytest.mark.slow
def test_a_million_empty_dicts_in_a_list() -> None:
    # Measured tracemalloc peaks per input byte (cde38f1): compiled core 120, pure-Python core
    # 281 (before cde38f1 the compiled core took 197). Bounds: 1.5x those. The pure core is
    # fed 200,000 dicts (the same peak per byte; traced, a million take it 14 s).
    from ckptaudit.pickle.native import backend

    compiled = backend() == "compiled"
    count, bound = (1_000_000, 180) if compiled else (200_000, 420)
    report, per_byte = peak_per_input_byte(b"\x80\x02](" + b"}" * count + b"e.")
    assert report.status is Status.INCOMPATIBLE  # a plain pickle: loads nowhere, harms nothing
    assert per_byte < bound, f"{per_byte:.0f} bytes of peak per input byte"


@pytest.mark.slow
def test_a_million_nones_in_a_list() -> None:
    # Measured: 24.5 bytes of peak per input byte in both cores (100 before cde38f1, when the
    # top-level summary materialised every entry of the root); bound 1.5x that.
    report, per_byte = peak_per_input_byte(b"\x80\x02](" + b"N" * 1_000_000 + b"e.")
    assert report.status is Status.INCOMPATIBLE
    assert per_byte < 37, f"{per_byte:.0f} bytes of peak per input byte"
