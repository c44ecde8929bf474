"""The state of one emulation run, and the checked stack and input operations handlers use.

The stack discipline is CPython's: one stack, and MARK records its length (a "fence") on the
metastack instead of starting a new list, so a mark costs 8 bytes and nothing may pop or peek
below the innermost fence.
"""

from __future__ import annotations

from typing import Any

from ckptaudit.errors import PickleError
from ckptaudit.pickle.nodes import Call, Global
from ckptaudit.pickle.result import PickleResult

__all__ = ["Machine", "Stop"]


class Stop(Exception):
    """Raised by STOP to leave the dispatch loop."""


class Machine:
    """The state of one emulation run: input, stack, memo, and the result being recorded."""

    def __init__(
        self,
        data: bytes | memoryview,
        start: int,
        end: int,
        *,
        max_tuple_depth: int = 200,
        resets: tuple[int, ...] = (),
    ) -> None:
        self.data = data
        """The input; the loops read it up to ``end`` only."""
        self.start = start
        """Offset of the stream's first opcode."""
        self.end = end
        """Offset nothing may be read at or past."""
        self.stack: list[Any] = []
        self.metastack: list[int] = []
        """Stack lengths at the open MARKs, innermost last."""
        self.memo: dict[int, Any] = {}
        """The Python loop's memo (the compiled loop keeps its own)."""
        self.buf_end = -1
        """End of the frame a file reader would hold in its buffer (read whole with
        ``read()``), while bytes of it remain unread; -1 when there is none. A read that
        runs past it is where readers from a file and from bytes part ways."""
        self.crossings: list[tuple[int, int]] = []
        """(where a read started, the buffer end it ran past), in reading order."""
        self.resets = resets
        """Offsets where this run's input was spliced to model a file reader (see
        :mod:`ckptaudit.pickle.frames`): the frame buffer in hand ends there."""
        self.max_tuple_depth = max_tuple_depth
        """Deepest tuple-in-tuple nesting allowed (hashing recurses through it)."""
        self.tuple_depths: dict[int, tuple[tuple[Any, ...], int]] = {}
        """id -> (tuple, depth) for tuples that hold tuples; the tuple is kept so that its
        id is not reused while the entry lives."""
        self.counts = [0] * 256
        """Runs of each opcode byte, filled by the loop."""
        self.result = PickleResult(start=start)

    def take(self, pos: int, n: int) -> int:
        """Check that n bytes remain at pos; return the position after them."""
        if n < 0:
            raise PickleError("negative length", pos)
        new = pos + n
        if new > self.end:
            raise PickleError(
                f"truncated: {n} bytes declared but only {self.end - pos} remain", pos
            )
        return new

    def line(self, pos: int) -> tuple[bytes, int]:
        """Read a newline-terminated argument (text opcodes); return it and the next position."""
        data = self.data
        nl = data.find(b"\n", pos, self.end) if isinstance(data, bytes) else -1
        if nl < 0:
            nl = bytes(data[pos : self.end]).find(b"\n")
            nl = -1 if nl < 0 else pos + nl
        if nl < 0:
            raise PickleError("truncated: line argument without newline", pos)
        return bytes(data[pos:nl]), nl + 1

    def fence(self) -> int:
        """Stack length at the innermost MARK (0 outside any mark)."""
        return self.metastack[-1] if self.metastack else 0

    def need(self, n: int, pos: int) -> None:
        """Check that n items were pushed since the innermost MARK."""
        if len(self.stack) - self.fence() < n:
            raise PickleError("stack underflow", pos - 1)

    def pop_mark(self, pos: int) -> list[Any]:
        """Pop everything pushed since the last MARK."""
        if not self.metastack:
            raise PickleError("MARK expected but not found", pos - 1)
        start = self.metastack.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self, pos: int) -> Any:
        """Return the top of the stack."""
        self.need(1, pos)
        return self.stack[-1]

    def pop(self, pos: int) -> Any:
        """Pop the top of the stack."""
        self.need(1, pos)
        return self.stack.pop()

    def add_global(self, module: str, name: str, pos: int, opcode: str, dynamic: bool) -> Global:
        """Record and return a global named by the pickle."""
        node = Global(module, name, pos, opcode, dynamic)
        self.result.globals.append(node)
        return node

    def add_call(self, func: Any, args: Any, kwargs: Any, opcode: str, pos: int) -> Call:
        """Record and return an object made by a call."""
        node = Call(func, args, kwargs, opcode, pos)
        self.result.calls.append(node)
        return node

    def decode_str8(self, raw: bytes, pos: int) -> str | bytes:
        """Decode an 8-bit string as torch does (UTF-8, strict); keep bytes if it fails."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.result.undecodable.append(pos)
            return raw
