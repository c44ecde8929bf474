"""The handler registry: keyed by pickletools name, refusing unknown and duplicate names."""

from __future__ import annotations

import pickletools

import pytest

from ckptaudit.pickle.handlers import HANDLERS, TABLE, handles
from ckptaudit.pickle.machine import Machine


def _never(m: Machine, pos: int) -> int:
    raise AssertionError("never registered, never called")


def test_an_unknown_opcode_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pickle opcode 'BINGETT'"):
        handles("BINGETT")(_never)
    assert "BINGETT" not in HANDLERS


def test_a_second_handler_for_an_opcode_is_refused() -> None:
    before = HANDLERS["BINGET"]
    with pytest.raises(ValueError, match="opcode 'BINGET' registered twice"):
        handles("BINGET")(_never)
    assert HANDLERS["BINGET"] is before


def test_the_table_is_the_registry_by_opcode_byte() -> None:
    assert len(TABLE) == 256
    by_byte = {ord(op.code): HANDLERS[op.name] for op in pickletools.opcodes}
    assert {byte: h for byte, h in enumerate(TABLE) if h is not None} == by_byte
