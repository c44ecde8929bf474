"""Payloads hidden where a scanner does not look but a real loader does: a later pickle in the
same stream, a member torch never reads, an object array, a text argument cut at a NUL.

ckptaudit must call each file dangerous, and the named loader (see ``support.loaders``) must
really reach the payload. From the first (d413eec) and second (55da442, cde38f1) red-team
campaigns.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch
from support.containers import bare_legacy, npy_object, small_torch_zip, zip_of
from support.loaders import (
    assert_dangerous_and_reached,
    payload_calls,
    saved_bytes,
    with_gadget_targets,
)
from support.payloads import BENIGN, HOSTILE, RAN, TEXT_PAYLOAD

import ckptaudit
from ckptaudit.findings import Status

pytestmark = pytest.mark.torch

# --------------------------------------------------------------------------- hidden streams

HIDDEN = [
    pytest.param(BENIGN + BENIGN + HOSTILE, "model.pkl", "pickle-loop", id="plain-third-pickle"),
    pytest.param(
        small_torch_zip(BENIGN + BENIGN + HOSTILE),
        "model.pt",
        "zip-walk",
        id="data-pkl-third-pickle",
    ),
    pytest.param(
        bare_legacy(BENIGN) + HOSTILE, "model.pt", "pickle-loop", id="legacy-sixth-pickle"
    ),
    pytest.param(
        small_torch_zip(BENIGN, {"data/extra.pkl": HOSTILE}),
        "model.pt",
        "zip-walk",
        id="unreferenced-pkl-under-data",
    ),
    pytest.param(
        small_torch_zip(BENIGN, {"extra/inner.zip": zip_of({"evil.pkl": HOSTILE})}),
        "model.pt",
        "zip-walk",
        id="nested-zip-member",
    ),
    pytest.param(
        small_torch_zip(BENIGN, {"extra.npy": npy_object(HOSTILE)}),
        "model.pt",
        "zip-walk",
        id="object-npy-member",
    ),
    pytest.param(
        zip_of({"arr.npy": npy_object(HOSTILE)}), "arrays.npz", "npz", id="npz-object-member"
    ),
    pytest.param(
        small_torch_zip(BENIGN, {"sub/model.pth": b"cos\nsystem\n(S'true'\ntR\xff\xff"}),
        "model.pt",
        "zip-walk",
        id="protocol0-payload-ending-in-garbage",
    ),
]


@pytest.mark.parametrize(("data", "filename", "loader"), HIDDEN)
def test_hidden_stream_is_audited(tmp_path: Path, data: bytes, filename: str, loader: str) -> None:
    assert_dangerous_and_reached(tmp_path, data, filename, loader, RAN)


# --------------------------------------------------------------------------- stream count
# Many empty pickles before the payload: past a count a scanner stops reading (second
# campaign); past ckptaudit's own cap the file is a limit error, never compatible.

EMPTY_STREAMS = b"N." * 70


def _torch_saved_with_tail(tail: bytes) -> bytes:
    """A real torch.save zip whose data.pkl has ``tail`` appended (still torch-loadable)."""
    saved = zipfile.ZipFile(io.BytesIO(saved_bytes({"w": torch.zeros(2), "epoch": 3})))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        for info in saved.infolist():
            body = saved.read(info)
            out.writestr(info, body + tail if info.filename.endswith("/data.pkl") else body)
    return buffer.getvalue()


def test_payload_after_70_empty_pickles_is_dangerous_and_runs(tmp_path: Path) -> None:
    data = BENIGN + EMPTY_STREAMS + HOSTILE
    assert_dangerous_and_reached(
        tmp_path, data, "model.pkl", "pickle-loop", RAN, with_gadget_targets
    )


def test_payload_after_70_empty_pickles_in_data_pkl_is_dangerous_and_runs(tmp_path: Path) -> None:
    data = _torch_saved_with_tail(EMPTY_STREAMS + HOSTILE)
    report = assert_dangerous_and_reached(
        tmp_path, data, "model.pt", "data-pkl-loop", RAN, with_gadget_targets
    )
    assert report.weights_only_compatible  # torch reads the first pickle only (checked in audit)


@pytest.mark.parametrize("count", [10_001, 30_000])
@pytest.mark.parametrize("where", ["plain", "torch-data-pkl"])
def test_payload_past_the_pickle_count_cap_is_a_limit_finding(
    tmp_path: Path, count: int, where: str
) -> None:
    tail = b"N." * count + HOSTILE
    data = BENIGN + tail if where == "plain" else _torch_saved_with_tail(tail)
    report = ckptaudit.audit_bytes(data, name="model.pt")
    assert report.status in (Status.ERROR, Status.DANGEROUS), report.findings
    assert report.status is not Status.COMPATIBLE
    assert not report.weights_only_compatible  # a limit finding: never called compatible
    assert any(f.rule == "CKA402" for f in report.findings), report.findings
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    loader = "pickle-loop" if where == "plain" else "data-pkl-loop"
    assert any(RAN in c for c in payload_calls(path, loader, with_gadget_targets))


# --------------------------------------------------------------------------- C-string arguments
# CPython parses a text argument as a C string: it ends at a NUL, and what follows the
# line is the next opcode (second campaign).

NUL_ARGUMENTS = [
    pytest.param(b"F1.5\x00junk\n0" + TEXT_PAYLOAD, id="float-nul-junk"),
    pytest.param(b"Np1\x00junk\n0" + TEXT_PAYLOAD, id="put-nul-junk"),
    pytest.param(b"Np1\n0g1\x00junk\n0" + TEXT_PAYLOAD, id="get-nul-junk"),
]


@pytest.mark.parametrize("data", NUL_ARGUMENTS)
def test_payload_after_a_text_argument_cut_at_nul_is_dangerous_and_runs(
    tmp_path: Path, data: bytes
) -> None:
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle", RAN, with_gadget_targets)
