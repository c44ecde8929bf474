"""A pickle virtual machine that builds an inert tree and never imports or calls anything.

This is the emulator's entry point. Its parts, one job each:

- :mod:`~ckptaudit.pickle.machine`: the state of one run and its checked stack operations;
- :mod:`~ckptaudit.pickle.handlers`: one handler per opcode of protocols 0-5, registered under
  its ``pickletools`` name;
- :mod:`~ckptaudit.pickle.textnum`: protocol 0's numbers written as text, read as CPython does;
- :mod:`~ckptaudit.pickle.loop`: the dispatch loop (Python, or compiled in ``_native``);
- :mod:`~ckptaudit.pickle.result`: what a run produces.

The emulator consults no policy: it records facts (which globals are named, which objects are
called, which operations act on which objects) and :mod:`ckptaudit.checks` judges them.
Work is linear in the input: each opcode does O(1) work plus popping values that earlier
opcodes pushed, every length field is checked against the bytes that remain before anything
is allocated, and nothing recurses.
"""

from __future__ import annotations

import pickletools

from ckptaudit.pickle import loop
from ckptaudit.pickle.machine import Machine
from ckptaudit.pickle.result import Event, PickleResult

__all__ = ["OPCODE_NAMES", "Event", "PickleResult", "run_pickle"]

OPCODE_NAMES: dict[int, str] = {ord(op.code): op.name for op in pickletools.opcodes}
"""Opcode byte -> pickletools name, for every opcode of protocols 0-5."""


def run_pickle(data: bytes | memoryview, start: int = 0, end: int | None = None) -> PickleResult:
    """Emulate one pickle stream from ``start`` until STOP, without importing or calling.

    Args:
        data: the bytes holding the stream.
        start: offset of its first opcode.
        end: offset the stream must not read past (default: the end of ``data``).

    Returns:
        What the stream builds and names. Malformed input never raises: the result's
        ``error`` says what went wrong and everything recorded before it is kept (a payload
        before a corrupt tail still runs in a real unpickler).
    """
    return loop.run(Machine(data, start, len(data) if end is None else end))
