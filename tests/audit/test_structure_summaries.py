"""The top-level structure names what each entry is, numpy values included."""

from __future__ import annotations

import io

import pytest

import ckptaudit

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")


def test_numpy_values_are_summarised_by_shape_and_dtype() -> None:
    buffer = io.BytesIO()
    torch.save(
        {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.zeros(4, dtype=np.int64),
            "m": np.ones((2, 2), dtype=bool),
            "s": np.array(["ab"]),
            "x": np.float64(1.5),
        },
        buffer,
    )
    top = {e.key: e.summary for e in ckptaudit.audit_bytes(buffer.getvalue()).top_level}
    assert top == {
        "a": "ndarray[2, 3] float32",
        "b": "ndarray[4] int64",
        "m": "ndarray[2, 2] bool",
        "s": "ndarray[1] U2",
        "x": "numpy float64 scalar",
    }
