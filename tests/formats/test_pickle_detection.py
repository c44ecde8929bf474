"""A plain pickle is recognised whatever opcode it starts with, even with a torch zip after it.

From the second red-team campaign (55da442, cde38f1): a pickle starting with FLOAT, NEWTRUE
or FRAME was taken for something else, and its payload went unread.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from support.loaders import (
    assert_dangerous_and_reached,
    payload_calls,
    saved_bytes,
    with_gadget_targets,
)
from support.opcodes import global_, unicode
from support.payloads import RAN

pytestmark = pytest.mark.torch

_SYSTEM_BODY = global_("os", "system") + unicode("true") + b"\x85R."
FIRST_OPCODE = {
    "float": b"F0\n0" + _SYSTEM_BODY,
    "newtrue": b"\x880" + _SYSTEM_BODY,
    "frame": b"\x95" + struct.pack("<Q", len(_SYSTEM_BODY)) + _SYSTEM_BODY,
}


@pytest.mark.parametrize("zip_tail", [False, True], ids=["alone", "benign-torch-zip-appended"])
@pytest.mark.parametrize("first", list(FIRST_OPCODE))
def test_pickle_starting_with_a_rare_opcode_is_dangerous_and_runs(
    tmp_path: Path, first: str, zip_tail: bool
) -> None:
    data = FIRST_OPCODE[first] + (saved_bytes({"w": torch.zeros(2)}) if zip_tail else b"")
    report = assert_dangerous_and_reached(
        tmp_path, data, "model.pt", "torch", RAN, with_gadget_targets
    )
    assert report.format == "pickle"
    assert any(
        RAN in c for c in payload_calls(tmp_path / "model.pt", "pickle", with_gadget_targets)
    )
