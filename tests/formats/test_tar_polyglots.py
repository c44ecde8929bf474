"""Tars torch reads as its legacy tar format: polyglots (a tar that is also a legacy file, a
safetensors file or a plain pickle), a pickle among the storages, and PAX headers.

ckptaudit must read them as torch does and call a hostile one dangerous; torch.load with a
recording stub (``support.loaders``) proves the payload is reached. From the first (d413eec)
and second (55da442, cde38f1) red-team campaigns.
"""

from __future__ import annotations

import pickle
import struct
import tarfile
from pathlib import Path

import pytest
from support.containers import EMPTY_DICT_PKL, bare_legacy, tar_of
from support.loaders import assert_dangerous_and_reached, audit_against_torch, with_gadget_targets
from support.payloads import BENIGN, HOSTILE, RAN

import ckptaudit
from ckptaudit.findings import Status

pytestmark = pytest.mark.torch

# --------------------------------------------------------------------------- polyglots

TAR_HOSTILE = [
    ("x", b""),
    ("storages", HOSTILE),
    ("tensors", b"\x80\x02K\x00."),
    ("pickle", BENIGN),
]


def _legacy_in_name(header: bytearray) -> None:
    header[0:100] = bare_legacy(BENIGN).ljust(100, b"\0")  # a whole legacy file in 100 bytes


def _safetensors_in_header(header: bytearray) -> None:
    """u64 length + a JSON __metadata__ string that swallows every tar field."""
    n = 504
    header[0:8] = struct.pack("<Q", n)
    js = bytearray(b" " * n)
    prefix = b'{"__metadata__":{"k":"'
    js[: len(prefix)] = prefix
    for i in range(len(prefix), n - 4):
        c = header[8 + i]
        keep = 100 <= 8 + i < 500 and c >= 0x20 and c not in (0x22, 0x5C)
        js[i] = c if keep else 0x41 if 8 + i < 100 else 0x20
    js[n - 8 :] = b'"}}     '
    header[8 : 8 + n] = js


def _pickle_in_longname(header: bytearray) -> None:
    assert header[156:157] == b"L"  # a GNU long-name record: tarfile never uses its own name
    header[0:100] = b"}.".ljust(100, b"\0")


TARS = [
    pytest.param(
        tar_of(TAR_HOSTILE, first_header=_legacy_in_name),
        "model.pt",
        "torch",
        True,
        id="polyglot-legacy-tar",
    ),
    pytest.param(
        tar_of(TAR_HOSTILE, first_header=_safetensors_in_header),
        "model.pt",
        "torch",
        True,
        id="polyglot-safetensors-tar",
    ),
    pytest.param(
        tar_of(TAR_HOSTILE, first_header=_safetensors_in_header),
        "model.safetensors",
        "torch-fileobj",
        True,
        id="polyglot-safetensors-tar-named-safetensors",
    ),
    # Its first header's name field is the pickle `}.`: a tar and a plain pickle at once.
    pytest.param(
        tar_of(
            [("d" * 6000, b""), *TAR_HOSTILE[1:]],
            first_header=_pickle_in_longname,
            fmt=tarfile.GNU_FORMAT,
        ),
        "model.pt",
        "torch",
        True,
        id="tar-gnu-longname-past-4k",
    ),
    pytest.param(
        tar_of(
            [
                ("sys_info", EMPTY_DICT_PKL),
                ("storages", b"\x80\x02K\x00." + HOSTILE),
                ("tensors", b"\x80\x02K\x00."),
                ("pickle", BENIGN),
            ]
        ),
        "model.tar",
        "torch",
        False,
        id="tar-storage-views-pickle",
    ),
]


@pytest.mark.parametrize(("data", "filename", "loader", "polyglot"), TARS)
def test_tar_read_as_torch_reads_it(
    tmp_path: Path, data: bytes, filename: str, loader: str, polyglot: bool
) -> None:
    report = assert_dangerous_and_reached(tmp_path, data, filename, loader, "os.system('true',)")
    assert report.format == "torch-tar"
    assert any(f.rule == "CKA106" for f in report.findings) is polyglot, report.findings


# --------------------------------------------------------------------------- PAX headers


def _pax_digits_tar(n: int) -> bytes:
    """A tar whose first header is an n-byte PAX record of digits (CVE-2024-6232's quadratic
    regex in CPython < 3.11.10), then a legacy-tar member."""
    header = bytearray(512)
    header[0:14] = b"././@PaxHeader"
    header[100:108], header[108:116], header[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    header[124:136], header[136:148] = b"%011o\0" % n, b"00000000000\0"
    header[148:156], header[156:157] = b" " * 8, b"x"
    header[257:263], header[263:265] = b"ustar\0", b"00"
    header[148:156] = b"%06o\0 " % sum(header)
    body = b"1" * n + b"\0" * (-n % 512)
    return bytes(header) + body + tar_of([("sys_info", EMPTY_DICT_PKL)])


def test_huge_pax_record_is_a_limit_error() -> None:
    # torch.load is not asked: CPython 3.11.7's tarfile spends ~11 s on this header.
    report = ckptaudit.audit_bytes(_pax_digits_tar(80_000), name="model.tar")
    assert report.status is Status.ERROR, report.findings
    assert any(f.rule == "CKA402" for f in report.findings), report.findings
    assert not report.weights_only_compatible


def test_legit_pax_header_is_still_a_torch_tar(tmp_path: Path) -> None:
    members = [
        ("données-é.txt", b"x"),
        ("sys_info", pickle.dumps({"protocol_version": 1001}, 2)),
        ("pickle", pickle.dumps({"a": 1}, 2)),
        ("storages", pickle.dumps(0, 2) + pickle.dumps([], 2)),
        ("tensors", pickle.dumps(0, 2)),
    ]
    data = tar_of(members, fmt=tarfile.PAX_FORMAT)
    assert data[156:157] == b"x"  # the first header is a PAX record
    _, report = audit_against_torch(tmp_path, data, "model.tar")
    assert report.format == "torch-tar"
    assert report.status is Status.INCOMPATIBLE, report.findings
    hostile = tar_of([*members[:2], ("pickle", HOSTILE), *members[3:]], fmt=tarfile.PAX_FORMAT)
    assert_dangerous_and_reached(tmp_path, hostile, "evil.tar", "torch", RAN, with_gadget_targets)
