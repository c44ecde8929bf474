"""One budget of emulation per file, shared by every pickle stream read from it.

A file can make the emulator run the same bytes many times: a payload handed to
``pickle.loads`` in seventy places, sixty-four directory entries that point at one zip
member, the other readings of a framed pickle, candidate offsets in bytes of unknown format.
A cap per stream would let N streams multiply it; this budget is per file instead. It counts
the bytes every run covers and the opcodes it executes (an opcode takes at least one byte, so
the byte count bounds both), across the main pickle, extra and nested pickles, streams after
STOP and carved ones. Its size is a multiple of what the file provides: its own size plus
what its compressed members inflate to, each member counted once.

:func:`ckptaudit.formats.read_container` makes a budget current for the file it reads;
:func:`~ckptaudit.pickle.vm.run_pickle` draws on the current one, whoever calls it, so that
no reader (present or future) can run a stream outside it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from ckptaudit.pickle.limits import Limits

__all__ = ["Budget", "current_budget"]

_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "ckptaudit_budget", default=None
)


class Budget:
    """What one file may still cost the emulator."""

    def __init__(self, limits: Limits, input_bytes: int) -> None:
        self.limits = limits
        """The limits the budget was made from."""
        self.input_bytes = max(input_bytes, 0)
        """Bytes the file provides: its size, plus what its compressed members inflate to."""
        self.bytes_emulated = 0
        """Bytes covered by every run so far (a stream run twice counts twice)."""
        self.opcodes = 0
        """Opcodes executed by every run so far."""
        self.runs = 0
        """Streams run so far."""
        self.exhausted = False
        """True once a run was stopped because the budget ran out."""
        self._granted: set[tuple[int, int]] = set()

    @property
    def max_bytes(self) -> int:
        """The most bytes the file's runs may cover together."""
        limits = self.limits
        return max(limits.emulated_bytes_floor, limits.emulated_bytes_ratio * self.input_bytes)

    def left(self) -> int:
        """Bytes the next runs may still cover."""
        return max(self.max_bytes - self.bytes_emulated, 0)

    def grant_inflated(self, key: tuple[int, int], inflated: int, compressed: int) -> None:
        """Count a compressed member's inflated bytes as input, once per member (``key``
        names where its compressed bytes sit), so that a checkpoint of deflated pickles
        has room for them and sixty-four entries pointing at one member do not."""
        if key in self._granted or inflated <= compressed:
            return
        self._granted.add(key)
        self.input_bytes += inflated - compressed

    def charge(self, nbytes: int, opcodes: int) -> None:
        """Record what one run covered and executed."""
        self.bytes_emulated += max(nbytes, 0)
        self.opcodes += max(opcodes, 0)
        self.runs += 1

    def mark(self) -> tuple[int, int, int]:
        """What has been spent so far, for :meth:`refund`."""
        return self.bytes_emulated, self.opcodes, self.runs

    def refund(self, mark: tuple[int, int, int]) -> None:
        """Give back what runs since ``mark`` spent, when their results are thrown away
        and the same bytes are run again with more room (a reader that grows its window
        until the pickles fit): their memory is freed, and the retries cost a fixed
        fraction more time, whatever the file."""
        self.bytes_emulated, self.opcodes, self.runs = mark

    def describe(self) -> str:
        """The budget in words, for limit findings."""
        return (
            f"the file's emulation budget ({self.max_bytes:,} bytes across all its pickle "
            f"streams: {self.limits.emulated_bytes_ratio}x its {self.input_bytes:,} bytes of "
            "input) ran out"
        )

    @contextlib.contextmanager
    def active(self) -> Iterator[Budget]:
        """Make this the budget every run draws on until the block ends.

        A budget already current stays current: a container read inside another one (a
        checkpoint stored in a zip) belongs to the same file.
        """
        if _CURRENT.get() is not None:
            yield self
            return
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


def current_budget() -> Budget | None:
    """The budget of the file being read, if any (None outside :func:`read_container`)."""
    return _CURRENT.get()
