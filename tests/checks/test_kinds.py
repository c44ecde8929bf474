"""What a finding calls an object is what the pickle shows, and its hint works for every
class that pickles that way."""

from __future__ import annotations

import io
from typing import Any

import oracle_types as ot
import pytest
import torch

import ckptaudit
from ckptaudit.findings import Kind

pytestmark = pytest.mark.torch


def _finding(obj: Any, name: str) -> Any:
    buffer = io.BytesIO()
    torch.save({"x": obj}, buffer)
    report = ckptaudit.audit_bytes(buffer.getvalue())
    return next(f for f in report.findings if f.global_name == name and f.rule == "CKA201")


@pytest.mark.parametrize(
    ("obj", "name"),
    [(ot.Plain(), "oracle_types.Plain"), (ot.Config(), "oracle_types.Config")],
    ids=["plain-class", "dataclass"],
)
def test_a_plain_class_and_a_dataclass_are_both_an_object(obj: Any, name: str) -> None:
    """NEWOBJ then BUILD with a state dict: the bytes of both, so one kind and one hint."""
    finding = _finding(obj, name)
    assert finding.kind is Kind.OBJECT and finding.kind.value == "object"
    assert "dataclass" not in finding.hint and "asdict" not in finding.hint
    assert "vars(obj)" in finding.hint
    assert vars(obj)  # the hint's recipe works on both (dataclasses.asdict raises on Plain)


def test_the_datetime_hint_does_not_force_a_timezone() -> None:
    import datetime

    finding = _finding(datetime.datetime(2024, 1, 1), "datetime.datetime")
    assert finding.hint.startswith("store dt.isoformat()")
