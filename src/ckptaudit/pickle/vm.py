"""A pickle virtual machine that builds an inert tree and never imports or calls anything.

Every opcode of protocols 0-5 has one handler, registered under its ``pickletools`` name
(registration fails on an unknown or duplicate name). The emulator consults no policy: it
records facts (which globals are named, which objects are called, which operations act on
which objects) and :mod:`ckptaudit.checks` judges them.

Work is linear in the input: each opcode does O(1) work plus popping values that earlier
opcodes pushed, every length field is checked against the bytes that remain before anything
is allocated, and nothing recurses.
"""

from __future__ import annotations

import codecs
import pickletools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ckptaudit.errors import LimitExceeded, PickleError
from ckptaudit.pickle import native
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet

__all__ = ["OPCODE_NAMES", "Event", "PickleResult", "run_pickle"]

OPCODE_NAMES: dict[int, str] = {ord(op.code): op.name for op in pickletools.opcodes}
"""Opcode byte -> pickletools name, for every opcode of protocols 0-5."""

_Handler = Callable[["_Machine", int], int]
_HANDLERS: dict[str, _Handler] = {}
_BY_NAME = {op.name: op for op in pickletools.opcodes}

_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from
_unpack_d = struct.Struct(">d").unpack_from


def _handles(*names: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for opcodes, by their pickletools names."""

    def register(fn: _Handler) -> _Handler:
        for name in names:
            if name not in _BY_NAME:
                raise ValueError(f"unknown pickle opcode {name!r}")
            if name in _HANDLERS:
                raise ValueError(f"opcode {name!r} registered twice")
            _HANDLERS[name] = fn
        return fn

    return register


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


class _Stop(Exception):
    """Raised by STOP to leave the dispatch loop."""


# How a run can end: anything else escaping the loop is a bug in the emulator.
_CLASSIFIED = (
    _Stop,
    PickleError,
    IndexError,
    KeyError,
    struct.error,
    ValueError,
    OverflowError,
    UnicodeDecodeError,
    MemoryError,
    RecursionError,
)


class _Machine:
    """The state of one emulation run."""

    def __init__(self, data: bytes | memoryview, start: int, end: int) -> None:
        self.data = data
        self.start = start
        self.end = end
        # One stack; MARK records its length (a "fence") instead of starting a new list, so a
        # mark costs 8 bytes, and nothing may pop or peek below the innermost fence.
        self.stack: list[Any] = []
        self.metastack: list[int] = []
        self.memo: dict[int, Any] = {}
        self.frame_end = 0
        self.result = PickleResult(start=start)

    # -- helpers ---------------------------------------------------------------------------

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

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> PickleResult:
        """Run from start to STOP (or to the first error) and classify how the run ended."""
        if self.end != len(self.data):
            self.data = bytes(self.data[: self.end])
        counts = [0] * 256
        result = self.result
        if _compiled is not None:
            pos, op_pos, exc = _compiled.run(
                self,
                self.data,
                self.start,
                self.end,
                self.stack,
                self.metastack,
                result.calls,
                result.events,
                result.persids,
                result.opcode_first,
                counts,
                _TABLE,
            )
        else:
            pos, op_pos, exc = self._loop(counts)
        self._conclude(pos, op_pos, exc)
        executed = 0
        for byte, n in enumerate(counts):
            if n:
                result.opcode_counts[byte] = n
                executed += n
        result.opcodes = executed
        return result

    def _conclude(self, pos: int, op_pos: int, exc: Exception) -> None:
        """Record how the run ended: STOP, or an error located at the opcode that failed."""
        result = self.result
        end = self.end
        result.end = op_pos
        if not isinstance(exc, _CLASSIFIED):
            raise exc  # a bug in the emulator: keep its traceback
        # The traceback's frames hold this machine, and so the whole tree: dropping it keeps
        # the tree free of reference cycles, so that it is freed the moment the audit ends
        # instead of waiting for (and slowing) a full garbage collection.
        exc.__traceback__ = exc.__context__ = exc.__cause__ = None
        if isinstance(exc, _Stop):
            result.complete = True
            result.end = pos
            if self.frame_end > pos:
                result.frame_end = self.frame_end
        elif isinstance(exc, PickleError):
            result.error = exc
        elif isinstance(exc, IndexError):
            # data[pos] past the end, or a pop/peek on an empty stack or metastack.
            if op_pos >= end or pos >= end:
                message = "truncated: pickle ended without STOP"
            else:
                message = "stack underflow"
            result.error = PickleError(message, op_pos)
        elif isinstance(exc, KeyError):
            result.error = PickleError(f"memo key {exc.args[0]} not found", op_pos)
        elif isinstance(exc, struct.error):
            result.error = PickleError("truncated: a fixed-size argument runs past the end", op_pos)
        elif isinstance(exc, (ValueError, OverflowError, UnicodeDecodeError, MemoryError)):
            # Conversions of text arguments (int('...'), float('...'), escape decoding).
            result.error = PickleError(f"bad argument: {exc}", op_pos)
        elif isinstance(exc, RecursionError):  # pragma: no cover - nothing here recurses
            result.error = LimitExceeded("nesting too deep", op_pos)

    def _loop(self, counts: list[int]) -> tuple[int, int, Exception]:
        """The dispatch loop: run until an exception ends it (STOP raises one too).

        The most frequent opcodes are handled inline with local variables (this loop is the
        audit's hot path); every other opcode goes to its registered handler, which is also
        the reference for what the inline cases do. ``_native.c`` is a transcription of this
        function; keep the two in step (the tests compare them on every corpus).
        """
        data = self.data
        end = self.end
        table = _TABLE
        result = self.result
        memo = self.memo
        metastack = self.metastack
        stack = self.stack
        append = stack.append
        fence = 0
        calls = result.calls
        events = result.events
        first = result.opcode_first
        pos = self.start
        op_pos = pos
        try:
            while True:
                op_pos = pos
                op = data[pos]
                pos += 1
                counts[op] += 1
                # Ordered by how often real checkpoints use them (measured on the benchmark
                # corpus): a memo GET is a third of all opcodes, then memo PUTs and numbers.
                if op == 104:  # BINGET
                    append(memo[data[pos]])
                    pos += 1
                elif op == 114:  # LONG_BINPUT
                    if len(stack) <= fence:
                        raise IndexError
                    memo[_unpack_I(data, pos)[0]] = stack[-1]
                    pos += 4
                elif op == 113:  # BINPUT
                    if len(stack) <= fence:
                        raise IndexError
                    memo[data[pos]] = stack[-1]
                    pos += 1
                elif op == 71:  # BINFLOAT
                    append(_unpack_d(data, pos)[0])
                    pos += 8
                elif op == 75:  # BININT1
                    append(data[pos])
                    pos += 1
                elif op == 40:  # MARK
                    fence = len(stack)
                    metastack.append(fence)
                elif op == 125:  # EMPTY_DICT
                    append(PDict())
                elif op == 117:  # SETITEMS
                    items = self.pop_mark(pos)
                    fence = metastack[-1] if metastack else 0
                    if len(items) % 2:
                        raise PickleError("odd number of items for SETITEMS", op_pos)
                    if len(stack) <= fence:
                        raise IndexError
                    target = stack[-1]
                    if type(target) is PDict:
                        target.flat.extend(items)
                    else:
                        _setitems_on(self, target, items, "SETITEMS", pos)
                elif op == 74:  # BININT
                    append(_unpack_i(data, pos)[0])
                    pos += 4
                elif op == 77:  # BININT2
                    append(_unpack_H(data, pos)[0])
                    pos += 2
                elif op == 137:  # NEWFALSE
                    append(False)
                elif op == 136:  # NEWTRUE
                    append(True)
                elif op == 88:  # BINUNICODE
                    (n,) = _unpack_I(data, pos)
                    pos += 4
                    if pos + n > end:
                        raise PickleError(
                            f"truncated: {n} bytes declared but only {end - pos} remain", pos - 4
                        )
                    append(str(data[pos : pos + n], "utf-8", "surrogatepass"))
                    pos += n
                elif op == 41:  # EMPTY_TUPLE
                    append(())
                elif op == 98:  # BUILD
                    if len(stack) - fence < 2:
                        raise IndexError
                    state = stack.pop()
                    target = stack[-1]
                    if type(target) is Call:
                        target.state = state
                        target.builds += 1
                        if target.build_offset is None:
                            target.build_offset = op_pos
                    else:
                        events.append(Event("BUILD", target, op_pos))
                elif op == 129:  # NEWOBJ
                    if len(stack) - fence < 2:
                        raise IndexError
                    args = stack.pop()
                    node = Call(stack.pop(), args, None, "NEWOBJ", op_pos)
                    calls.append(node)
                    append(node)
                elif op == 82:  # REDUCE
                    if len(stack) - fence < 2:
                        raise IndexError
                    args = stack.pop()
                    node = Call(stack[-1], args, None, "REDUCE", op_pos)
                    calls.append(node)
                    stack[-1] = node
                elif op == 116:  # TUPLE
                    items = self.pop_mark(pos)
                    fence = metastack[-1] if metastack else 0
                    append(tuple(items))
                elif op == 133:  # TUPLE1
                    if len(stack) <= fence:
                        raise IndexError
                    stack[-1] = (stack[-1],)
                elif op == 134:  # TUPLE2
                    if len(stack) - fence < 2:
                        raise IndexError
                    stack[-2:] = [(stack[-2], stack[-1])]
                elif op == 135:  # TUPLE3
                    if len(stack) - fence < 3:
                        raise IndexError
                    stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                elif op == 106:  # LONG_BINGET
                    append(memo[_unpack_I(data, pos)[0]])
                    pos += 4
                elif op == 78:  # NONE
                    append(None)
                elif op == 93:  # EMPTY_LIST
                    append([])
                elif op == 101:  # APPENDS
                    items = self.pop_mark(pos)
                    fence = metastack[-1] if metastack else 0
                    if len(stack) <= fence:
                        raise IndexError
                    target = stack[-1]
                    if type(target) is list:
                        target.extend(items)
                    else:
                        _append_to(self, target, items, "APPENDS", pos)
                elif op == 140:  # SHORT_BINUNICODE (protocol 4: torch refuses it)
                    if counts[op] == 1:
                        first[op] = op_pos
                    n = data[pos]
                    pos += 1
                    if pos + n > end:
                        raise PickleError("truncated string", pos - 1)
                    append(str(data[pos : pos + n], "utf-8", "surrogatepass"))
                    pos += n
                elif op == 148:  # MEMOIZE (protocol 4: torch refuses it)
                    if counts[op] == 1:
                        first[op] = op_pos
                    if len(stack) <= fence:
                        raise IndexError
                    memo[len(memo)] = stack[-1]
                else:
                    if counts[op] == 1:
                        first[op] = op_pos
                    handler = table[op]
                    if handler is None:
                        raise PickleError(f"invalid opcode byte 0x{op:02x}", op_pos)
                    pos = handler(self, pos)
                    fence = metastack[-1] if metastack else 0
                # No bounds check here: data ends at `end`, so an inline read past it raises
                # IndexError or struct.error, and handlers check with take().
        except Exception as exc:
            return pos, op_pos, exc


# -- handlers ------------------------------------------------------------------------------
# Each takes the machine and the position after the opcode byte, returns the next position.


@_handles("PROTO")
def _proto(m: _Machine, pos: int) -> int:
    new = m.take(pos, 1)
    proto = m.data[pos]
    if proto > 5:
        raise PickleError(f"unsupported pickle protocol {proto}", pos - 1)
    if m.result.protocol is None:
        m.result.protocol = proto
    return new


@_handles("FRAME")
def _frame(m: _Machine, pos: int) -> int:
    new = m.take(pos, 8)
    (size,) = _unpack_Q(m.data, pos)
    m.frame_end = m.take(new, size)  # a frame longer than what remains is a truncated file
    return new


@_handles("STOP")
def _stop(m: _Machine, pos: int) -> int:
    m.result.root = m.pop(pos)
    raise _Stop


@_handles("MARK")
def _mark(m: _Machine, pos: int) -> int:
    m.metastack.append(len(m.stack))
    return pos


@_handles("POP")
def _pop(m: _Machine, pos: int) -> int:
    if len(m.stack) > m.fence():
        m.stack.pop()
    else:
        m.pop_mark(pos)
    return pos


@_handles("POP_MARK")
def _pop_mark(m: _Machine, pos: int) -> int:
    m.pop_mark(pos)
    return pos


@_handles("DUP")
def _dup(m: _Machine, pos: int) -> int:
    m.stack.append(m.top(pos))
    return pos


# -- primitives


@_handles("NONE")
def _none(m: _Machine, pos: int) -> int:
    m.stack.append(None)
    return pos


@_handles("NEWTRUE")
def _true(m: _Machine, pos: int) -> int:
    m.stack.append(True)
    return pos


@_handles("NEWFALSE")
def _false(m: _Machine, pos: int) -> int:
    m.stack.append(False)
    return pos


@_handles("BININT")
def _binint(m: _Machine, pos: int) -> int:
    new = m.take(pos, 4)
    m.stack.append(_unpack_i(m.data, pos)[0])
    return new


@_handles("BININT1")
def _binint1(m: _Machine, pos: int) -> int:
    new = m.take(pos, 1)
    m.stack.append(m.data[pos])
    return new


@_handles("BININT2")
def _binint2(m: _Machine, pos: int) -> int:
    new = m.take(pos, 2)
    m.stack.append(_unpack_H(m.data, pos)[0])
    return new


# C's strtol(s, &end, 0), which CPython's INT tries first: octal after a leading 0, hex after 0x.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")


def c_text_int(raw: bytes, strtol: bool = True) -> int:
    """An INT or LONG argument, parsed as CPython's C unpickler parses it.

    The line is a C string (it ends at a NUL byte). INT tries ``strtol`` with base 0
    (``010`` is 8) and, when that fails or overflows, ``PyLong_FromString`` with base 0
    (``0x1f``, ``1_000``), as LONG does directly. Parsing in base 10 instead would let a
    file read one number here and another in every real unpickler.
    """
    raw = raw.split(b"\0", 1)[0]
    if strtol and not raw:
        return 0  # strtol finds no digits and stops at the NUL: the whole string is read
    match = _STRTOL.match(raw) if strtol else None
    if match is not None:
        sign, digits = match.groups()
        if digits[1:2] in (b"x", b"X"):
            value = int(digits[2:], 16)
        elif digits[:1] == b"0":
            value = int(digits, 8)
        else:
            value = int(digits)
        value = -value if sign == b"-" else value
        if -(1 << 63) <= value < 1 << 63:  # a C long on the 64-bit platforms torch runs on
            return value
    try:
        return int(raw, 0)
    except ValueError:
        raise ValueError("could not convert string to int") from None


@_handles("INT")
def _int(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    if not raw:
        raise ValueError("pickle data was truncated")  # CPython: "bad readline"
    value: int | bool = c_text_int(raw)
    c_string = raw.split(b"\0", 1)[0]
    if len(raw) == 2 and value in (0, 1) and (not c_string or _STRTOL.match(c_string)):
        value = bool(value)  # "00"/"01" (and "+1", " 0"): protocol 0's False and True
    m.stack.append(value)
    return new


@_handles("LONG")
def _long(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    if raw.endswith(b"L"):
        raw = raw[:-1]
    m.stack.append(c_text_int(raw, strtol=False))
    return new


@_handles("LONG1")
def _long1(m: _Machine, pos: int) -> int:
    start = m.take(pos, 1)
    new = m.take(start, m.data[pos])
    m.stack.append(int.from_bytes(m.data[start:new], "little", signed=True))
    return new


@_handles("LONG4")
def _long4(m: _Machine, pos: int) -> int:
    start = m.take(pos, 4)
    (n,) = _unpack_i(m.data, pos)
    if n < 0:
        raise PickleError("LONG4 with negative byte count", pos - 1)
    new = m.take(start, n)
    m.stack.append(int.from_bytes(m.data[start:new], "little", signed=True))
    return new


_INF = float("inf")
# What PyOS_string_to_double accepts: no whitespace, no underscores, no hex.
_STRTOD = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\Z",
    re.IGNORECASE,
)


@_handles("FLOAT")
def _float(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    raw = raw.split(b"\0", 1)[0]  # the C unpickler reads the line as a C string
    if not _STRTOD.match(raw):
        raise ValueError("could not convert string to float")
    value = float(raw)
    if value in (_INF, -_INF) and b"n" not in raw.lower():
        raise OverflowError("float too large to unpickle")  # what the C unpickler raises
    m.stack.append(value)
    return new


@_handles("BINFLOAT")
def _binfloat(m: _Machine, pos: int) -> int:
    new = m.take(pos, 8)
    m.stack.append(_unpack_d(m.data, pos)[0])
    return new


# -- strings and bytes


def _sized(m: _Machine, pos: int, width: int) -> tuple[int, int]:
    """Read a length field of width 1, 4 (signed) or 8 bytes; return (start, end) of the data."""
    start = m.take(pos, width)
    if width == 1:
        n = m.data[pos]
    elif width == 4:
        (n,) = _unpack_i(m.data, pos)
        if n < 0:
            raise PickleError("negative length", pos - 1)
    else:
        (n,) = _unpack_Q(m.data, pos)
    return start, m.take(start, n)


@_handles("STRING")
def _string(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    if len(raw) < 2 or raw[0] != raw[-1] or raw[0] not in b"\"'":
        raise PickleError("STRING argument is not quoted", pos - 1)
    value = codecs.escape_decode(raw[1:-1])[0]
    m.stack.append(m.decode_str8(value, pos - 1))
    return new


@_handles("BINSTRING")
def _binstring(m: _Machine, pos: int) -> int:
    start, new = _sized(m, pos, 4)
    m.stack.append(m.decode_str8(bytes(m.data[start:new]), pos - 1))
    return new


@_handles("SHORT_BINSTRING")
def _short_binstring(m: _Machine, pos: int) -> int:
    start, new = _sized(m, pos, 1)
    m.stack.append(m.decode_str8(bytes(m.data[start:new]), pos - 1))
    return new


@_handles("UNICODE")
def _unicode(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    m.stack.append(raw.decode("raw-unicode-escape"))
    return new


def _push_text(m: _Machine, pos: int, width: int) -> int:
    start, new = _sized(m, pos, width)
    m.stack.append(str(m.data[start:new], "utf-8", "surrogatepass"))
    return new


@_handles("SHORT_BINUNICODE")
def _short_binunicode(m: _Machine, pos: int) -> int:
    return _push_text(m, pos, 1)


@_handles("BINUNICODE")
def _binunicode(m: _Machine, pos: int) -> int:
    # torch reads this length unsigned; a length >= 2**31 cannot fit any real input anyway.
    start = m.take(pos, 4)
    (n,) = _unpack_I(m.data, pos)
    new = m.take(start, n)
    m.stack.append(str(m.data[start:new], "utf-8", "surrogatepass"))
    return new


@_handles("BINUNICODE8")
def _binunicode8(m: _Machine, pos: int) -> int:
    return _push_text(m, pos, 8)


def _push_bytes(m: _Machine, pos: int, width: int) -> int:
    start, new = _sized(m, pos, width)
    m.stack.append(bytes(m.data[start:new]))
    return new


@_handles("SHORT_BINBYTES")
def _short_binbytes(m: _Machine, pos: int) -> int:
    return _push_bytes(m, pos, 1)


@_handles("BINBYTES")
def _binbytes(m: _Machine, pos: int) -> int:
    start = m.take(pos, 4)
    (n,) = _unpack_I(m.data, pos)
    new = m.take(start, n)
    m.stack.append(bytes(m.data[start:new]))
    return new


@_handles("BINBYTES8")
def _binbytes8(m: _Machine, pos: int) -> int:
    return _push_bytes(m, pos, 8)


@_handles("BYTEARRAY8")
def _bytearray8(m: _Machine, pos: int) -> int:
    start, new = _sized(m, pos, 8)
    m.stack.append(bytearray(m.data[start:new]))
    return new


@_handles("NEXT_BUFFER")
def _next_buffer(m: _Machine, pos: int) -> int:
    m.stack.append(Opaque("out-of-band buffer", pos - 1))
    return pos


@_handles("READONLY_BUFFER")
def _readonly_buffer(m: _Machine, pos: int) -> int:
    m.top(pos)
    return pos


# -- containers


@_handles("EMPTY_LIST")
def _empty_list(m: _Machine, pos: int) -> int:
    m.stack.append([])
    return pos


@_handles("LIST")
def _list(m: _Machine, pos: int) -> int:
    m.stack.append(m.pop_mark(pos))
    return pos


@_handles("EMPTY_TUPLE")
def _empty_tuple(m: _Machine, pos: int) -> int:
    m.stack.append(())
    return pos


@_handles("TUPLE")
def _tuple(m: _Machine, pos: int) -> int:
    m.stack.append(tuple(m.pop_mark(pos)))
    return pos


@_handles("TUPLE1")
def _tuple1(m: _Machine, pos: int) -> int:
    m.need(1, pos)
    stack = m.stack
    stack[-1] = (stack[-1],)
    return pos


@_handles("TUPLE2")
def _tuple2(m: _Machine, pos: int) -> int:
    m.need(2, pos)
    stack = m.stack
    stack[-2:] = [(stack[-2], stack[-1])]
    return pos


@_handles("TUPLE3")
def _tuple3(m: _Machine, pos: int) -> int:
    m.need(3, pos)
    stack = m.stack
    stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
    return pos


@_handles("EMPTY_DICT")
def _empty_dict(m: _Machine, pos: int) -> int:
    m.stack.append(PDict())
    return pos


@_handles("DICT")
def _dict(m: _Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if len(items) % 2:
        raise PickleError("odd number of items for DICT", pos - 1)
    node = PDict()
    node.flat = items
    m.stack.append(node)
    return pos


@_handles("EMPTY_SET")
def _empty_set(m: _Machine, pos: int) -> int:
    m.stack.append(PSet(frozen=False))
    return pos


@_handles("FROZENSET")
def _frozenset(m: _Machine, pos: int) -> int:
    node = PSet(frozen=True)
    node.items = m.pop_mark(pos)
    m.stack.append(node)
    return pos


def _append_to(m: _Machine, target: Any, items: list[Any], op: str, pos: int) -> None:
    if type(target) is list:
        target.extend(items)
        return
    if isinstance(target, Call):
        if target.items is None:
            target.items = []
        target.items.extend(items)
    m.result.events.append(Event(op, target, pos - 1))


@_handles("APPEND")
def _append(m: _Machine, pos: int) -> int:
    item = m.pop(pos)
    _append_to(m, m.top(pos), [item], "APPEND", pos)
    return pos


@_handles("APPENDS")
def _appends(m: _Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    _append_to(m, m.top(pos), items, "APPENDS", pos)
    return pos


def _setitems_on(m: _Machine, target: Any, items: list[Any], op: str, pos: int) -> None:
    """Set keys and values (alternating in ``items``) on a dict, or record the operation."""
    if type(target) is PDict:
        target.flat.extend(items)
        return
    if isinstance(target, Call):
        if target.setitems is None:
            target.setitems = []
        target.setitems.extend(zip(items[::2], items[1::2], strict=True))
    m.result.events.append(Event(op, target, pos - 1))


@_handles("SETITEM")
def _setitem(m: _Machine, pos: int) -> int:
    value = m.pop(pos)
    key = m.pop(pos)
    _setitems_on(m, m.top(pos), [key, value], "SETITEM", pos)
    return pos


@_handles("SETITEMS")
def _setitems(m: _Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if len(items) % 2:
        raise PickleError("odd number of items for SETITEMS", pos - 1)
    _setitems_on(m, m.top(pos), items, "SETITEMS", pos)
    return pos


@_handles("ADDITEMS")
def _additems(m: _Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    target = m.top(pos)
    if type(target) is PSet and not target.frozen:
        target.items.extend(items)
    else:
        m.result.events.append(Event("ADDITEMS", target, pos - 1))
    return pos


# -- memo


def _put(m: _Machine, index: int, pos: int) -> None:
    m.memo[index] = m.top(pos)


def _get(m: _Machine, index: int, pos: int) -> None:
    try:
        m.stack.append(m.memo[index])
    except KeyError:
        raise PickleError(f"memo key {index} not found", pos - 1) from None


@_handles("PUT")
def _put_text(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    index = int(raw.split(b"\0", 1)[0])  # a C string, as the C unpickler reads it
    if index < 0:
        raise PickleError("negative PUT argument", pos - 1)
    _put(m, index, pos)
    return new


@_handles("BINPUT")
def _binput(m: _Machine, pos: int) -> int:
    new = m.take(pos, 1)
    _put(m, m.data[pos], pos)
    return new


@_handles("LONG_BINPUT")
def _long_binput(m: _Machine, pos: int) -> int:
    new = m.take(pos, 4)
    _put(m, _unpack_I(m.data, pos)[0], pos)
    return new


@_handles("MEMOIZE")
def _memoize(m: _Machine, pos: int) -> int:
    _put(m, len(m.memo), pos)
    return pos


@_handles("GET")
def _get_text(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    _get(m, int(raw.split(b"\0", 1)[0]), pos)  # a C string, as the C unpickler reads it
    return new


@_handles("BINGET")
def _binget(m: _Machine, pos: int) -> int:
    new = m.take(pos, 1)
    _get(m, m.data[pos], pos)
    return new


@_handles("LONG_BINGET")
def _long_binget(m: _Machine, pos: int) -> int:
    new = m.take(pos, 4)
    _get(m, _unpack_I(m.data, pos)[0], pos)
    return new


# -- globals and calls: recorded, never resolved


def _text_name(raw: bytes, pos: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PickleError("global name is not UTF-8", pos) from None


@_handles("GLOBAL")
def _global(m: _Machine, pos: int) -> int:
    module, p = m.line(pos)
    name, new = m.line(p)
    m.stack.append(
        m.add_global(_text_name(module, pos), _text_name(name, pos), pos - 1, "GLOBAL", False)
    )
    return new


@_handles("STACK_GLOBAL")
def _stack_global(m: _Machine, pos: int) -> int:
    name = m.pop(pos)
    module = m.pop(pos)
    if type(module) is str and type(name) is str:
        node = m.add_global(module, name, pos - 1, "STACK_GLOBAL", False)
    else:
        # The name is computed at load time: nothing static can say what it resolves to.
        node = m.add_global(_describe(module), _describe(name), pos - 1, "STACK_GLOBAL", True)
    m.stack.append(node)
    return pos


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Call) and isinstance(value.func, Global):
        return f"<result of {value.func.qualified}(...)>"
    return f"<{type(value).__name__}>"


def _ext(m: _Machine, pos: int, width: int) -> int:
    new = m.take(pos, width)
    code = int.from_bytes(m.data[pos:new], "little")
    # The copyreg extension registry maps codes to globals at load time; unknowable here.
    m.stack.append(m.add_global("<extension>", str(code), pos - 1, f"EXT{width}", True))
    return new


@_handles("EXT1")
def _ext1(m: _Machine, pos: int) -> int:
    return _ext(m, pos, 1)


@_handles("EXT2")
def _ext2(m: _Machine, pos: int) -> int:
    return _ext(m, pos, 2)


@_handles("EXT4")
def _ext4(m: _Machine, pos: int) -> int:
    return _ext(m, pos, 4)


@_handles("REDUCE")
def _reduce(m: _Machine, pos: int) -> int:
    args = m.pop(pos)
    func = m.top(pos)
    m.stack[-1] = m.add_call(func, args, None, "REDUCE", pos - 1)
    return pos


@_handles("NEWOBJ")
def _newobj(m: _Machine, pos: int) -> int:
    args = m.pop(pos)
    cls = m.pop(pos)
    m.stack.append(m.add_call(cls, args, None, "NEWOBJ", pos - 1))
    return pos


@_handles("NEWOBJ_EX")
def _newobj_ex(m: _Machine, pos: int) -> int:
    kwargs = m.pop(pos)
    args = m.pop(pos)
    cls = m.pop(pos)
    m.stack.append(m.add_call(cls, args, kwargs, "NEWOBJ_EX", pos - 1))
    return pos


@_handles("INST")
def _inst(m: _Machine, pos: int) -> int:
    module, p = m.line(pos)
    name, new = m.line(p)
    args = tuple(m.pop_mark(pos))
    cls = m.add_global(_text_name(module, pos), _text_name(name, pos), pos - 1, "INST", False)
    m.stack.append(m.add_call(cls, args, None, "INST", pos - 1))
    return new


@_handles("OBJ")
def _obj(m: _Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if not items:
        raise PickleError("OBJ without a class", pos - 1)
    m.stack.append(m.add_call(items[0], tuple(items[1:]), None, "OBJ", pos - 1))
    return pos


@_handles("BUILD")
def _build(m: _Machine, pos: int) -> int:
    state = m.pop(pos)
    target = m.top(pos)
    if isinstance(target, Call):
        target.state = state
        target.builds += 1
        if target.build_offset is None:
            target.build_offset = pos - 1
    else:
        m.result.events.append(Event("BUILD", target, pos - 1))
    return pos


@_handles("PERSID")
def _persid(m: _Machine, pos: int) -> int:
    raw, new = m.line(pos)
    node = PersId(raw.decode("ascii", "replace"), pos - 1, "PERSID")
    m.result.persids.append(node)
    m.stack.append(node)
    return new


@_handles("BINPERSID")
def _binpersid(m: _Machine, pos: int) -> int:
    node = PersId(m.pop(pos), pos - 1, "BINPERSID")
    m.result.persids.append(node)
    m.stack.append(node)
    return pos


def _build_table() -> list[_Handler | None]:
    missing = set(_BY_NAME) - set(_HANDLERS)
    if missing:  # pragma: no cover - guarded by a test too
        raise RuntimeError(f"no handler for opcodes {sorted(missing)}")
    table: list[_Handler | None] = [None] * 256
    for name, handler in _HANDLERS.items():
        table[ord(_BY_NAME[name].code)] = handler
    return table


_TABLE = _build_table()

# Opcodes the loop handles inline without noting where each was first used; torch accepts all
# of them, so a finding never needs their offsets. Both loops note every other opcode.
_INLINE_UNNOTED = frozenset(
    {104, 114, 113, 71, 75, 40, 125, 117, 74, 77, 137, 136, 88, 41, 98, 129, 82, 116, 133}
    | {134, 135, 106, 78, 93, 101}
)


def _load_compiled() -> Any:
    """The compiled loop, configured, or None to use the Python one (see native.py)."""
    mask = bytes(0 if op in _INLINE_UNNOTED else 1 for op in range(256))
    return native.configured(
        lambda module: module.configure(
            Call, PDict, PersId, PickleError, struct.error, Event, _append_to, _setitems_on, mask
        )
    )


_compiled = _load_compiled()


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
    return _Machine(data, start, len(data) if end is None else end).run()
