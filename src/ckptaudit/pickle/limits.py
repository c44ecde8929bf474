"""Resource limits of an audit, as one validated frozen value."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds that keep a hostile file from exhausting time or memory.

    Work in the emulator is linear in the pickle's size by construction (every opcode does
    O(1) work plus popping what earlier opcodes pushed), so the bounds that matter are on
    sizes; exceeding one becomes a CKA402 finding and the file is never called compatible.
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

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"limit {name} must not be negative")


DEFAULT_LIMITS = Limits()
