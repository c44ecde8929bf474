"""What one emulation run produces: the result of a pickle stream and its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptaudit.errors import PickleError
from ckptaudit.pickle.nodes import Call, Global, PersId

__all__ = ["Event", "PickleResult", "describe_skips"]


@dataclass(frozen=True)
class Event:
    """An operation on an object that is not a plain list/dict (where torch has rules)."""

    op: str
    """Opcode name: APPEND, APPENDS, SETITEM, SETITEMS, BUILD, ADDITEMS."""
    target: Any
    """The object acted on."""
    offset: int
    """Byte offset of the opcode."""


@dataclass
class PickleResult:
    """Everything the emulator learnt from one pickle stream."""

    start: int = 0
    """Offset of the stream's first opcode."""
    root: Any = None
    """The object STOP returned (None if the stream never reached STOP)."""
    complete: bool = False
    """True when STOP was reached without error."""
    error: PickleError | None = None
    """Why the stream could not be run to STOP, if it could not."""
    end: int = 0
    """Offset just after STOP (or where the error stopped the run)."""
    protocol: int | None = None
    """The first PROTO's argument, if any."""
    globals: list[Global] = field(default_factory=list)
    """Every global named, in order (GLOBAL, STACK_GLOBAL, INST, OBJ's class, EXT*)."""
    calls: list[Call] = field(default_factory=list)
    """Every object made by calling, in order."""
    persids: list[PersId] = field(default_factory=list)
    """Every persistent id, in order."""
    events: list[Event] = field(default_factory=list)
    """Operations on objects other than plain lists/dicts (and every BUILD on a non-call)."""
    opcode_counts: dict[int, int] = field(default_factory=dict)
    """How often each opcode byte ran."""
    opcode_first: dict[int, int] = field(default_factory=dict)
    """Offset of each opcode byte's first use."""
    undecodable: list[int] = field(default_factory=list)
    """Offsets of 8-bit strings that are not UTF-8 (torch decodes them strictly)."""
    opcodes: int = 0
    """Opcodes executed."""
    frame_end: int | None = None
    """Where the FRAME holding STOP ends, when bytes of it remain after STOP: CPython reads a
    whole frame at once, so a loader may start its next pickle there rather than at ``end``."""
    crossings: list[tuple[int, int]] = field(default_factory=list)
    """Reads that run past the end of a FRAME, as (where the read starts, where the frame
    ends): a reader from a file skips from the first to the second (see
    :mod:`ckptaudit.pickle.frames`)."""
    readings: list[PickleResult] = field(default_factory=list)
    """The other readings of the stream, by readers from a file that skip at crossings
    (each with ``skips`` set); empty when every loader reads it the same way."""
    skips: tuple[tuple[int, int], ...] = ()
    """For one of those readings: the crossings where its reader skips, as (where the read
    starts, where the frame ends, and so where the read takes its bytes from)."""
    readings_cut: bool = False
    """True when more readings exist than the limits let ckptaudit run."""


def describe_skips(skips: tuple[tuple[int, int], ...]) -> str:
    """A reading's skips in words, for unit labels."""
    return (
        "as a file reader reads it ("
        + "; ".join(
            f"the read at byte {at} taken from the frame's end at byte {frame_end}"
            for at, frame_end in skips
        )
        + ")"
    )
