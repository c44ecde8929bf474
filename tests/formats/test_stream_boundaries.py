"""Where one pickle ends and the next begins, as CPython and torch read it: the legacy magic
as a text INT, a STOP inside a FRAME.

A payload in the pickle a real reader goes on to must be seen. From the first red-team
campaign (d413eec) and the fourth (fc9d47c): CPython reads a frame whole, so the next pickle
starts after the frame, not after STOP.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from support.containers import (
    EMPTY_DICT_PKL,
    EMPTY_LIST_PKL,
    LEGACY_MAGIC_PKL,
    LEGACY_PROTOCOL_PKL,
    bare_legacy,
)
from support.loaders import assert_dangerous_and_reached, audit_against_torch, payload_calls
from support.payloads import BENIGN, HOSTILE, RAN

from ckptaudit.findings import Status

pytestmark = pytest.mark.torch


def test_legacy_magic_as_hex_text_int(tmp_path: Path) -> None:
    data = bare_legacy(HOSTILE, magic_pkl=b"I0x1950a86a20f9469cfc6c\n.")
    report = assert_dangerous_and_reached(tmp_path, data, "model.pt", "torch", "os.system('true',)")
    assert report.error is None


def _frame(body: bytes, size: int) -> bytes:
    """A protocol-4 FRAME of ``size`` bytes: ``body`` then NULs that nothing reads."""
    return b"\x80\x04\x95" + struct.pack("<Q", size) + body.ljust(size, b"\x00")


# --------------------------------------------------------------------------- STOP inside a FRAME

MAGIC_AND_PROTOCOL = LEGACY_MAGIC_PKL + LEGACY_PROTOCOL_PKL

# 9000 bytes is over CPython's 8 KiB prefetch, so even a peeking file reads the frame whole.
FRAME_TAILS = [
    # sys_info {} then STOP; the frame's tail 'N.N.' is what a reader resuming after STOP sees
    # (object None, storage keys None), and the real object pickle follows the frame.
    pytest.param(
        MAGIC_AND_PROTOCOL + _frame(b"}.N.N.", 9000) + HOSTILE + EMPTY_LIST_PKL,
        ["torch", "torch-fileobj", "torch-bytesio"],
        id="legacy-sysinfo-frame-tail-9000",
    ),
    # A 64-byte frame: a path is peeked (resumes after STOP), BytesIO resumes after the frame.
    pytest.param(
        MAGIC_AND_PROTOCOL + _frame(b"}.N.].", 64) + HOSTILE + EMPTY_LIST_PKL,
        ["torch-bytesio"],
        id="legacy-sysinfo-frame-tail-64",
    ),
    # The object pickle framed, so the storage-keys pickle torch really reads follows the frame.
    pytest.param(
        MAGIC_AND_PROTOCOL
        + EMPTY_DICT_PKL
        + _frame(BENIGN[2:] + b"N.", 9000)
        + HOSTILE[:-1]
        + b"0].",
        ["torch", "torch-bytesio"],
        id="legacy-object-frame-tail-9000",
    ),
]


@pytest.mark.parametrize(("data", "loaders"), FRAME_TAILS)
def test_legacy_stop_inside_a_frame_is_dangerous_and_runs(
    tmp_path: Path, data: bytes, loaders: list[str]
) -> None:
    path, report = audit_against_torch(tmp_path, data, "model.pt")
    assert report.status is Status.DANGEROUS, report.findings
    for loader in loaders:
        assert any(RAN in c for c in payload_calls(path, loader)), loader


@pytest.mark.parametrize("size", [9000, 64])
def test_plain_pickle_stop_inside_a_frame_is_dangerous_and_runs(tmp_path: Path, size: int) -> None:
    """A pickle.load loop over BytesIO goes on after the frame; 0xff after STOP is never read."""
    data = _frame(b"}.\xff", size) + HOSTILE
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle-loop", RAN)
