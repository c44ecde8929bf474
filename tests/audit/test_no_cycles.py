"""An audit leaves no reference cycles: its tree is freed by reference counting on return.

A cycle through the tree (for example through a traceback that holds the emulator) keeps
millions of nodes alive until a full garbage collection, which then walks all of them: on a
9 M-opcode pickle that was most of a second and a fifth more peak memory.
"""

from __future__ import annotations

import gc
import io
import pickle

import pytest
from hostile_cases import CASES

import ckptaudit

# Each test runs full collections, of a heap that holds torch once the suite has imported it.
pytestmark = pytest.mark.slow


def garbage_after(data: bytes, name: str) -> int:
    """Unreachable objects found by a collection right after one audit."""
    gc.collect()
    gc.disable()
    try:
        ckptaudit.audit_bytes(data, name=name)
        return gc.collect()
    finally:
        gc.enable()


def test_a_cycle_would_be_seen() -> None:
    """The measure works: a self-containing list is garbage for the collector."""
    gc.collect()
    gc.disable()
    try:
        loop: list[object] = []
        loop.append(loop)
        del loop
        assert gc.collect() >= 1
    finally:
        gc.enable()


def test_complete_and_truncated_pickles_leave_no_cycles() -> None:
    data = pickle.dumps({"a": [1, 2.5, "x"], "b": {"c": (1, 2)}}, protocol=2)
    assert garbage_after(data, "ok.pkl") == 0
    assert garbage_after(data[:-5], "truncated.pkl") == 0
    assert garbage_after(b"\x80\x02c\xff\xfe\nx\n.", "bad-name.pkl") == 0


def test_torch_checkpoint_leaves_no_cycles() -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3), "opt": {"lr": 0.1}}, buf)
    assert garbage_after(buf.getvalue(), "model.pt") == 0


@pytest.mark.parametrize("case", CASES[::7], ids=[c.name for c in CASES[::7]])
def test_hostile_files_leave_no_cycles(case: object) -> None:
    assert garbage_after(case.data, case.filename) == 0  # type: ignore[attr-defined]
