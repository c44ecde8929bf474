"""Pickle streams that torch never reads but another loader may: after STOP, inside members.

``pickle.load`` in a loop reads stream after stream, ``numpy.load(allow_pickle=True)``
unpickles the body of an object array, and tools that unpack archives unpickle what they
find. A hidden stream is audited when it names a global or calls anything: then it is
somebody's to run.
"""

from __future__ import annotations

import re

from ckptaudit.findings import Category
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.pickle.result import describe_skips
from ckptaudit.pickle.vm import PickleResult, run_pickle

__all__ = [
    "add_reading_units",
    "after_frame",
    "content_end",
    "looks_like_payload",
    "npy_body_offset",
    "trailing_units",
]

_NPY_MAGIC = b"\x93NUMPY"
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


_MAX_TRAILING_STREAMS = 10_000
"""Streams followed after STOP before giving up: far more than any real file has, few enough
that a file of two-byte pickles (``N.`` x a million) costs milliseconds."""


def after_frame(
    container: Container, data: bytes, result: PickleResult, label: str, base: int = 0
) -> None:
    """Audit the streams a loader reads after a STOP that sits inside a FRAME, and after
    the other readings of the stream (see :mod:`ckptaudit.pickle.frames`).

    CPython's unpickler reads a frame whole (from a file without ``peek`` or for a large
    frame), so its next ``load`` starts where the frame ends, not after STOP: the bytes in
    between are never seen by it, and what follows the frame is. A reader that skipped to
    a frame's end ends its stream elsewhere, and its next ``load`` starts there.
    """
    followed = {result.end, result.frame_end}
    if result.frame_end is not None and result.frame_end < len(data):
        trailing_units(container, data, result.frame_end, f"{label} past its frame", base)
    for reading in result.readings:
        if not reading.complete:
            continue
        for start in (reading.end, reading.frame_end):
            if start is not None and start not in followed and start < len(data):
                followed.add(start)
                trailing_units(
                    container, data, start, f"{label} {describe_skips(reading.skips)},", base
                )


def add_reading_units(container: Container, units: list[PickleUnit]) -> None:
    """Add a unit for every other reading of the given units' streams that names or calls
    something (a file reader skipping at a FRAME's end runs other opcodes), and say so when
    the limits cut the readings short."""
    for unit in units:
        result = unit.result
        where = unit.member or "the pickle"
        for reading in result.readings:
            if reading.globals or reading.calls:
                container.units.append(
                    PickleUnit(
                        f"{where} {describe_skips(reading.skips)}",
                        reading,
                        torch_reads=False,
                        order=unit.order,
                        nested=unit.nested,
                    )
                )
        if result.readings_cut:
            container.issues.append(
                ContainerIssue(
                    Category.LIMIT_EXCEEDED,
                    f"{where}: reads cross the end of FRAMEs in more combinations than "
                    "ckptaudit runs (a reader from a file can skip at each); the rest were not "
                    "audited",
                    member=unit.member,
                )
            )
            container.complete = False


def content_end(data: bytes) -> int:
    """Where the bytes end once trailing NULs (padding) are dropped; read from the end,
    so that it costs the padding's length, not the data's."""
    end = len(data)
    while end > 0:
        begin = max(0, end - (64 << 10))
        kept = len(data[begin:end].rstrip(b"\x00"))
        if kept:
            return begin + kept
        end = begin
    return 0


def trailing_units(
    container: Container, data: bytes, start: int, label: str, base: int = 0
) -> list[PickleUnit]:
    """Audit the pickle streams from ``start`` on, one after another, as a loop of
    ``pickle.load`` reads them, until the bytes end or stop parsing.

    Streams that name or call nothing are dropped; the ones kept are added to the container
    and returned. Running out of the stream budget with bytes left is a limit finding (the
    file is then never compatible): a payload could sit after any number of empty pickles.
    ``base`` is where ``data`` sits in its member, for the labels.
    """
    units: list[PickleUnit] = []
    pos = start
    last = content_end(data)  # once: a check per stream would make many streams quadratic
    for _ in range(_MAX_TRAILING_STREAMS):
        if pos >= last:
            break  # nothing left but padding
        result = run_pickle(data, pos)
        if result.globals or result.calls:
            units.append(
                PickleUnit(
                    f"{label} after STOP (byte {base + pos})", result, torch_reads=False, order=99
                )
            )
        if not result.complete or result.end <= pos:
            break
        if result.frame_end is not None and result.frame_end < len(data):
            # The other way a loader goes on (see after_frame), followed once.
            units.extend(_from_frame_end(container, data, result, label, base))
        pos = result.end
    else:
        if pos < last:
            container.issues.append(
                ContainerIssue(
                    Category.LIMIT_EXCEEDED,
                    f"more than {_MAX_TRAILING_STREAMS} pickle streams after STOP in {label}: "
                    f"the rest (from byte {base + pos}) was not audited",
                )
            )
            container.complete = False
    container.units.extend(units)
    return units


def npy_body_offset(data: bytes) -> int | None:
    """Where the body of a ``.npy`` array starts (an object array's body is a pickle)."""
    if not data.startswith(_NPY_MAGIC) or len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    if major in (2, 3) and len(data) >= 12:
        return 12 + int.from_bytes(data[8:12], "little")
    return None


def looks_like_payload(result: PickleResult) -> bool:
    """A stream that does not parse to STOP, in a member not named as a pickle, still
    counts when it calls something it names by a real dotted name (``os`` ``system``).

    Text parses a little by accident (``class Foo:`` reads as a GLOBAL), but not into a
    call of two identifier paths; pickle payloads that end in garbage on purpose (so that
    a strict scanner gives up) do.
    """
    if not result.calls:
        return False
    return any(
        not g.dynamic and _DOTTED_NAME.match(g.module) and _DOTTED_NAME.match(g.name)
        for g in result.globals
    )


def _from_frame_end(
    container: Container, data: bytes, result: PickleResult, label: str, base: int
) -> list[PickleUnit]:
    end = result.frame_end
    if end is None:
        return []
    found = run_pickle(data, end)
    if not (found.globals or found.calls):
        return []
    unit = PickleUnit(
        f"{label} past the frame holding STOP (byte {base + end})",
        found,
        torch_reads=False,
        order=99,
    )
    return [unit]
