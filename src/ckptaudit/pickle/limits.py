"""Resource limits of an audit, as one validated frozen value."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds that keep a hostile file from exhausting time or memory.

    Work in the emulator is linear in the bytes it runs by construction (every opcode does
    O(1) work plus popping what earlier opcodes pushed), so the bounds that matter are on
    sizes, and on how often a file can make the same bytes run again (the per-file budget,
    :class:`~ckptaudit.pickle.budget.Budget`); exceeding one becomes a CKA402 finding and the
    file is never called compatible.
    """

    max_pickle_bytes: int = 4 << 30
    """Largest pickle stream analysed (after decompression)."""
    max_inflate_ratio: int = 200
    """Largest ratio of a zip member's inflated to compressed size (zip bombs)."""
    max_members: int = 1_000_000
    """Most zip or tar members read from the directory."""
    max_pickles: int = 64
    """Most pickle streams analysed in one container."""
    max_nested_depth: int = 3
    """How deep literal pickles inside pickles (pickle.loads(b'...')) are scanned."""
    max_paths: int = 20
    """Paths listed per finding; the count stays exact."""
    max_top_level: int = 200
    """Top-level entries listed."""
    emulated_bytes_ratio: int = 2
    """Bytes the emulator may run for one file, across all its pickle streams, as a multiple
    of the bytes the file provides (its size plus what its compressed members inflate to):
    a stream run twice (a payload loaded in many places, overlapping zip members, the other
    readings of a framed pickle, carving) counts twice. The opcodes executed are bounded too,
    since each takes at least one byte."""
    emulated_bytes_floor: int = 1 << 20
    """The per-file budget of a small file: bytes it may have run whatever its size."""
    max_tuple_depth: int = 200
    """Deepest nesting of tuples in tuples. Hashing a tuple (a dict key, a set item, a BUILD
    state's key; a loader does it, and so may ckptaudit) recurses through it on the C stack,
    which a tuple 400,000 deep overflows; real checkpoints nest a handful of levels."""
    max_frame_readings: int = 16
    """Other readings of a pickle whose reads cross the end of a FRAME (CPython reading from
    a file and from bytes differ there; every combination a loader can meet is audited)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"limit {name} must not be negative")
        if self.max_tuple_depth < 2:
            raise ValueError("limit max_tuple_depth must be at least 2 (a tuple of tuples)")


DEFAULT_LIMITS = Limits()
