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
from ckptaudit.pickle.vm import PickleResult, run_pickle

__all__ = ["after_frame", "looks_like_payload", "npy_body_offset", "trailing_units"]

_NPY_MAGIC = b"\x93NUMPY"
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


_MAX_TRAILING_STREAMS = 10_000
"""Streams followed after STOP before giving up: far more than any real file has, few enough
that a file of two-byte pickles (``N.`` x a million) costs milliseconds."""


def after_frame(
    container: Container, data: bytes, result: PickleResult, label: str, base: int = 0
) -> None:
    """Audit the streams a loader reads after a STOP that sits inside a FRAME.

    CPython's unpickler reads a frame whole (from a file without ``peek`` or for a large
    frame), so its next ``load`` starts where the frame ends, not after STOP: the bytes in
    between are never seen by it, and what follows the frame is.
    """
    if result.frame_end is not None and result.frame_end < len(data):
        trailing_units(container, data, result.frame_end, f"{label} past its frame", base)


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
    for _ in range(_MAX_TRAILING_STREAMS):
        if pos >= len(data) or data.count(0, pos) == len(data) - pos:
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
        if pos < len(data):
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
