"""A pickle virtual machine that builds an inert tree and never imports or calls anything.

This is the emulator's entry point. Its parts, one job each:

- :mod:`~ckptaudit.pickle.machine`: the state of one run and its checked stack operations;
- :mod:`~ckptaudit.pickle.handlers`: one handler per opcode of protocols 0-5, registered under
  its ``pickletools`` name;
- :mod:`~ckptaudit.pickle.textnum`: protocol 0's numbers written as text, read as CPython does;
- :mod:`~ckptaudit.pickle.loop`: the dispatch loop (Python, or compiled in ``_native``);
- :mod:`~ckptaudit.pickle.result`: what a run produces;
- :mod:`~ckptaudit.pickle.frames`: FRAME reading from a file and from bytes, and where the
  two part ways;
- :mod:`~ckptaudit.pickle.budget`: what one file may cost, across all its streams.

The emulator consults no policy: it records facts (which globals are named, which objects are
called, which operations act on which objects) and :mod:`ckptaudit.checks` judges them.
Work is linear in the input: each opcode does O(1) work plus popping values that earlier
opcodes pushed, every length field is checked against the bytes that remain before anything
is allocated, and nothing recurses. Every run draws on the budget of the file being read, so
that running the same bytes again (nested payloads, overlapping members, other readings) is
bounded per file, not per stream.
"""

from __future__ import annotations

import bisect
import dataclasses
import pickletools

from ckptaudit.errors import LimitExceeded
from ckptaudit.pickle import loop
from ckptaudit.pickle.budget import Budget, current_budget
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits
from ckptaudit.pickle.machine import Machine
from ckptaudit.pickle.result import Event, PickleResult

__all__ = ["OPCODE_NAMES", "Event", "PickleResult", "run_pickle"]

OPCODE_NAMES: dict[int, str] = {ord(op.code): op.name for op in pickletools.opcodes}
"""Opcode byte -> pickletools name, for every opcode of protocols 0-5."""

Segments = list[tuple[int, int]]
"""The input of one reading: (start, end) ranges of the data, read one after the other."""


def run_pickle(data: bytes | memoryview, start: int = 0, end: int | None = None) -> PickleResult:
    """Emulate one pickle stream from ``start`` until STOP, without importing or calling.

    Within :func:`ckptaudit.formats.read_container` the run draws on the file's budget: when
    it runs out, the stream stops there with a :class:`~ckptaudit.errors.LimitExceeded`
    error. When reads of the stream cross the end of a FRAME, the readings of a loader that
    reads from a file are run too (``result.readings``).

    Args:
        data: the bytes holding the stream.
        start: offset of its first opcode.
        end: offset the stream must not read past (default: the end of ``data``).

    Returns:
        What the stream builds and names. Malformed input never raises: the result's
        ``error`` says what went wrong and everything recorded before it is kept (a payload
        before a corrupt tail still runs in a real unpickler).
    """
    end = len(data) if end is None else end
    budget = current_budget()
    limits = budget.limits if budget is not None else DEFAULT_LIMITS
    result = _run(data, [(start, end)], budget, limits)
    if result.crossings:
        _other_readings(data, start, end, result, budget, limits)
    return result


def _run(
    data: bytes | memoryview, segments: Segments, budget: Budget | None, limits: Limits
) -> PickleResult:
    """Run one reading: the bytes of ``segments`` one after another, within the budget.

    One whole range within the budget runs in place; anything else runs on a copy of just
    the bytes it may read, its offsets mapped back to the data's afterwards.
    """
    total = sum(stop - begin for begin, stop in segments)
    left = budget.left() if budget is not None else total
    start = segments[0][0]
    if left <= 0 and budget is not None:
        budget.exhausted = True
        result = PickleResult(start=start, end=start)
        result.error = LimitExceeded(budget.describe(), start)
        return result
    clamped = left < total
    if len(segments) == 1 and not clamped:
        result = loop.run(
            Machine(data, start, segments[0][1], max_tuple_depth=limits.max_tuple_depth)
        )
        if budget is not None:
            budget.charge(result.end - start, result.opcodes)
        return result
    if clamped:
        segments = _cut(segments, left)
    virtual = b"".join(bytes(data[begin:stop]) for begin, stop in segments)
    starts = [0]
    for begin, stop in segments[:-1]:
        starts.append(starts[-1] + stop - begin)
    m = Machine(
        virtual, 0, len(virtual), max_tuple_depth=limits.max_tuple_depth, resets=tuple(starts[1:])
    )
    result = loop.run(m)
    if budget is not None:
        budget.charge(result.end, result.opcodes)
        if clamped and not result.complete and "truncated" in str(result.error):
            budget.exhausted = True
            result.error = LimitExceeded(budget.describe(), result.end)
    _map_offsets(result, _OffsetMap(segments, starts))
    return result


def _cut(segments: Segments, left: int) -> Segments:
    """The first ``left`` bytes of a reading."""
    kept: Segments = []
    for begin, stop in segments:
        if left <= 0:
            break
        kept.append((begin, min(stop, begin + left)))
        left -= stop - begin
    return kept


class _OffsetMap:
    """Offsets in a reading's bytes -> offsets in the data they were taken from."""

    def __init__(self, segments: Segments, starts: list[int]) -> None:
        self.segments = segments
        self.starts = starts

    def __call__(self, offset: int, closing: bool = False) -> int:
        """Map an offset; ``closing`` for the end of a range (it stays in the segment it
        closes rather than going to the start of the next)."""
        starts = self.starts
        i = (
            bisect.bisect_left(starts, offset) if closing else bisect.bisect_right(starts, offset)
        ) - 1
        i = max(i, 0)
        return self.segments[i][0] + offset - starts[i]


def _map_offsets(result: PickleResult, to_data: _OffsetMap) -> None:
    """Rewrite every offset a run recorded (in its reading's bytes) as an offset in the data."""
    result.start = to_data(result.start)
    result.end = to_data(result.end, closing=result.complete)
    if result.frame_end is not None:
        result.frame_end = to_data(result.frame_end, closing=True)
    for node in result.globals:
        node.offset = to_data(node.offset)
    for call in result.calls:
        call.offset = to_data(call.offset)
        if call.build_offset is not None:
            call.build_offset = to_data(call.build_offset)
    for persid in result.persids:
        persid.offset = to_data(persid.offset)
    result.events = [dataclasses.replace(e, offset=to_data(e.offset)) for e in result.events]
    result.opcode_first = {op: to_data(at) for op, at in result.opcode_first.items()}
    result.undecodable = [to_data(at) for at in result.undecodable]
    result.crossings = [
        (to_data(at), to_data(until, closing=True)) for at, until in result.crossings
    ]
    err = result.error
    if err is not None and err.offset is not None:
        text = str(err).removesuffix(f" (at byte {err.offset})")
        result.error = type(err)(text, to_data(err.offset))


def _other_readings(
    data: bytes | memoryview,
    start: int,
    end: int,
    main: PickleResult,
    budget: Budget | None,
    limits: Limits,
) -> None:
    """Run the readings of loaders that read from a file, one per combination of skips.

    At each crossing a file reader either holds the frame in a buffer filled by ``read()``
    (it skips to the frame's end) or does not (it reads on, as from bytes): every
    combination is a reading, explored depth first, skipping first, so that the reading
    of a file without ``peek()`` (a skip at every crossing) comes among the first ones run,
    until the limits or the budget stop it.
    """
    pending: list[tuple[tuple[int, int], ...]] = [(c,) for c in reversed(main.crossings)]
    while pending:
        if len(main.readings) >= limits.max_frame_readings or (
            budget is not None and budget.left() <= 0
        ):
            main.readings_cut = True
            return
        skips = pending.pop()
        segments: Segments = []
        at = start
        for read_at, frame_end in skips:
            segments.append((at, read_at))
            at = frame_end
        segments.append((at, end))
        reading = _run(data, segments, budget, limits)
        reading.skips = skips
        main.readings.append(reading)
        last = skips[-1][1]
        later = [c for c in reading.crossings if c[0] >= last]
        pending.extend((*skips, c) for c in reversed(later))
