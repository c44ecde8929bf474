"""The dispatch loop: run one pickle stream on a :class:`Machine` until STOP or an error.

Two loops do the same thing: the compiled one (``_loop.c`` in the optional ``_native``
extension), used when it is built, and :func:`_python_loop`, the reference it transcribes.
Both handle the commonest opcodes inline and send every other one to its handler in
:mod:`ckptaudit.pickle.handlers`; how a run ended is classified here, in one place, for both.
"""

from __future__ import annotations

import pickletools
import struct
from collections.abc import Callable

from ckptaudit.errors import LimitExceeded, PickleError
from ckptaudit.pickle import native
from ckptaudit.pickle.frames import passed_buffer
from ckptaudit.pickle.handlers import TABLE, append_to, nest_tuple, setitems_on
from ckptaudit.pickle.machine import Machine, Stop
from ckptaudit.pickle.nodes import Call, PDict, PersId
from ckptaudit.pickle.result import Event, PickleResult

__all__ = ["COMPILED_INLINE", "INLINE_NOTED", "INLINE_UNNOTED", "run"]

_CODES = {op.name: ord(op.code) for op in pickletools.opcodes}


def _codes(*names: str) -> frozenset[int]:
    return frozenset(_CODES[name] for name in names)


# The inline cases of both loops, as sets (tests/pickle/test_inline_opcodes.py reads the
# Python chain and the C switch and checks them against these).
INLINE_UNNOTED = _codes(
    *("BINGET", "LONG_BINPUT", "BINPUT", "BINFLOAT", "BININT1", "MARK", "EMPTY_DICT"),
    *("SETITEMS", "BININT", "BININT2", "NEWFALSE", "NEWTRUE", "BINUNICODE", "EMPTY_TUPLE"),
    *("BUILD", "NEWOBJ", "REDUCE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "LONG_BINGET"),
    *("NONE", "EMPTY_LIST", "APPENDS"),
)
"""Handled inline by both loops without noting where each was first used: torch accepts all
of them, so a finding never needs their offsets. Both loops note every other opcode."""

INLINE_NOTED = _codes("SHORT_BINUNICODE", "MEMOIZE")
"""Handled inline by both loops, first use noted: protocol 4 opcodes torch refuses."""

COMPILED_INLINE = _codes("BINPERSID", "GET", "PUT", "SETITEM", "APPEND")
"""Handled inline by the compiled loop only (the Python loop calls their handlers), each with
its handler's errors and messages; first use noted."""

RunLoop = Callable[[Machine], tuple[int, int, Exception]]
"""A dispatch loop: runs the machine, returns (position, opcode position, what ended it)."""

_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_d = struct.Struct(">d").unpack_from

# How a run can end: anything else escaping the loop is a bug in the emulator.
_CLASSIFIED = (
    Stop,
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


def run(m: Machine) -> PickleResult:
    """Run the machine from its start to STOP (or to the first error) and fill its result."""
    if m.end != len(m.data):
        m.data = bytes(m.data[: m.end])
    if _compiled is not None:
        pos, op_pos, exc = _compiled(m)
    else:
        pos, op_pos, exc = _python_loop(m)
    _conclude(m, pos, op_pos, exc)
    result = m.result
    executed = 0
    for byte, n in enumerate(m.counts):
        if n:
            result.opcode_counts[byte] = n
            executed += n
    result.opcodes = executed
    return result


def _conclude(m: Machine, pos: int, op_pos: int, exc: Exception) -> None:
    """Record how the run ended: STOP, or an error located at the opcode that failed."""
    result = m.result
    end = m.end
    result.end = op_pos
    if not isinstance(exc, _CLASSIFIED):
        raise exc  # a bug in the emulator: keep its traceback
    # The traceback's frames hold this machine, and so the whole tree: dropping it keeps
    # the tree free of reference cycles, so that it is freed the moment the audit ends
    # instead of waiting for (and slowing) a full garbage collection.
    exc.__traceback__ = exc.__context__ = exc.__cause__ = None
    result.crossings = m.crossings
    if isinstance(exc, Stop):
        result.complete = True
        result.end = pos
        if m.buf_end > pos:
            result.frame_end = m.buf_end
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



def _python_loop(m: Machine) -> tuple[int, int, Exception]:
    """The dispatch loop in Python: run until an exception ends it (STOP raises one too).

    The most frequent opcodes are handled inline with local variables (this loop is the
    audit's hot path); every other opcode goes to its registered handler, which is also
    the reference for what the inline cases do. ``_loop.c`` is a transcription of this
    function; keep the two in step (the tests compare them on every corpus, and
    tests/pickle/test_inline_opcodes.py ties the inline cases here, in ``_loop.c`` and in
    the sets above together).
    """
    data = m.data
    end = m.end
    table = TABLE
    frame_handler = TABLE[_CODES["FRAME"]]
    result = m.result
    memo = m.memo
    metastack = m.metastack
    stack = m.stack
    counts = m.counts
    append = stack.append
    fence = 0
    calls = result.calls
    events = result.events
    first = result.opcode_first
    pos = m.start
    op_pos = pos
    # Where the frame buffer a file reader would hold ends (see frames.py); checked once per
    # opcode, and it is rarely reached.
    never = end + 1
    fmark = never
    try:
        while True:
            if pos >= fmark:
                passed_buffer(m, op_pos, pos)
                fmark = never
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
                items = m.pop_mark(pos)
                fence = metastack[-1] if metastack else 0
                if len(items) % 2:
                    raise PickleError("odd number of items for SETITEMS", op_pos)
                if len(stack) <= fence:
                    raise IndexError
                target = stack[-1]
                if type(target) is PDict:
                    target.flat.extend(items)
                else:
                    setitems_on(m, target, items, "SETITEMS", pos)
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
                items = m.pop_mark(pos)
                fence = metastack[-1] if metastack else 0
                value = tuple(items)
                if tuple in map(type, items):
                    nest_tuple(m, value, op_pos)
                append(value)
            elif op == 133:  # TUPLE1
                if len(stack) <= fence:
                    raise IndexError
                a = stack[-1]
                value = (a,)
                if type(a) is tuple:
                    nest_tuple(m, value, op_pos)
                stack[-1] = value
            elif op == 134:  # TUPLE2
                if len(stack) - fence < 2:
                    raise IndexError
                a = stack[-2]
                b = stack[-1]
                value = (a, b)
                if type(a) is tuple or type(b) is tuple:
                    nest_tuple(m, value, op_pos)
                stack[-2:] = [value]
            elif op == 135:  # TUPLE3
                if len(stack) - fence < 3:
                    raise IndexError
                value = (stack[-3], stack[-2], stack[-1])
                if tuple in map(type, value):
                    nest_tuple(m, value, op_pos)
                stack[-3:] = [value]
            elif op == 106:  # LONG_BINGET
                append(memo[_unpack_I(data, pos)[0]])
                pos += 4
            elif op == 78:  # NONE
                append(None)
            elif op == 93:  # EMPTY_LIST
                append([])
            elif op == 101:  # APPENDS
                items = m.pop_mark(pos)
                fence = metastack[-1] if metastack else 0
                if len(stack) <= fence:
                    raise IndexError
                target = stack[-1]
                if type(target) is list:
                    target.extend(items)
                else:
                    append_to(m, target, items, "APPENDS", pos)
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
                pos = handler(m, pos)
                fence = metastack[-1] if metastack else 0
                if handler is frame_handler:  # a file reader now holds a new frame buffer
                    fmark = m.buf_end if m.buf_end >= 0 else never
            # No bounds check here: data ends at `end`, so an inline read past it raises
            # IndexError or struct.error, and handlers check with take().
    except Exception as exc:
        return pos, op_pos, exc


def _configure_compiled() -> RunLoop:
    """Register the node classes, handlers and helpers with the compiled loop; return it."""
    from ckptaudit.pickle import _native  # typed by _native.pyi

    _native.configure_loop(
        call_type=Call,
        pdict_type=PDict,
        persid_type=PersId,
        event_type=Event,
        pickle_error=PickleError,
        struct_error=struct.error,
        append_to=append_to,
        setitems_on=setitems_on,
        handlers=TABLE,
        noted=bytes(0 if op in INLINE_UNNOTED else 1 for op in range(256)),
        nest_tuple=nest_tuple,
        passed_buffer=passed_buffer,
    )
    return _native.run


_compiled: RunLoop | None = native.configured("loop", _configure_compiled)
