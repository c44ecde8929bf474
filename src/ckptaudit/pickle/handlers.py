"""One handler per pickle opcode, registered under its ``pickletools`` name.

Each handler takes the machine and the position just after its opcode byte, does what a real
unpickler does to the stack and memo without importing or calling anything, and returns the
position of the next opcode. Registering an unknown or an already registered name fails at
import, and so does an opcode left without a handler: :data:`TABLE` covers protocols 0-5.

The dispatch loops (:mod:`ckptaudit.pickle.loop` and the compiled ``_native``) handle the
commonest opcodes inline; these handlers are the reference for what those inline cases do.
"""

from __future__ import annotations

import codecs
import pickletools
import struct
from collections.abc import Callable
from typing import Any

from ckptaudit.errors import LimitExceeded, PickleError
from ckptaudit.pickle.frames import enter_frame
from ckptaudit.pickle.machine import Machine, Stop
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet
from ckptaudit.pickle.result import Event
from ckptaudit.pickle.textnum import parse_float, parse_int, parse_long, parse_memo_key

__all__ = ["HANDLERS", "TABLE", "Handler", "append_to", "handles", "nest_tuple", "setitems_on"]

Handler = Callable[[Machine, int], int]
"""A handler: (machine, position after the opcode byte) -> position of the next opcode."""

HANDLERS: dict[str, Handler] = {}
"""Every registered handler, by pickletools opcode name."""

_BY_NAME = {op.name: op for op in pickletools.opcodes}

_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from
_unpack_d = struct.Struct(">d").unpack_from


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for opcodes, by their pickletools names."""

    def register(fn: Handler) -> Handler:
        for name in names:
            if name not in _BY_NAME:
                raise ValueError(f"unknown pickle opcode {name!r}")
            if name in HANDLERS:
                raise ValueError(f"opcode {name!r} registered twice")
            HANDLERS[name] = fn
        return fn

    return register


# -- control


@handles("PROTO")
def _proto(m: Machine, pos: int) -> int:
    new = m.take(pos, 1)
    proto = m.data[pos]
    if proto > 5:
        raise PickleError(f"unsupported pickle protocol {proto}", pos - 1)
    if m.result.protocol is None:
        m.result.protocol = proto
    return new


@handles("FRAME")
def _frame(m: Machine, pos: int) -> int:
    new = m.take(pos, 8)
    (size,) = _unpack_Q(m.data, pos)
    end = m.take(new, size)  # a frame longer than what remains is a truncated file
    enter_frame(m, pos, new, end)
    return new


@handles("STOP")
def _stop(m: Machine, pos: int) -> int:
    m.result.root = m.pop(pos)
    raise Stop


@handles("MARK")
def _mark(m: Machine, pos: int) -> int:
    m.metastack.append(len(m.stack))
    return pos


@handles("POP")
def _pop(m: Machine, pos: int) -> int:
    if len(m.stack) > m.fence():
        m.stack.pop()
    else:
        m.pop_mark(pos)
    return pos


@handles("POP_MARK")
def _pop_mark(m: Machine, pos: int) -> int:
    m.pop_mark(pos)
    return pos


@handles("DUP")
def _dup(m: Machine, pos: int) -> int:
    m.stack.append(m.top(pos))
    return pos


# -- primitives


@handles("NONE")
def _none(m: Machine, pos: int) -> int:
    m.stack.append(None)
    return pos


@handles("NEWTRUE")
def _true(m: Machine, pos: int) -> int:
    m.stack.append(True)
    return pos


@handles("NEWFALSE")
def _false(m: Machine, pos: int) -> int:
    m.stack.append(False)
    return pos


@handles("BININT")
def _binint(m: Machine, pos: int) -> int:
    new = m.take(pos, 4)
    m.stack.append(_unpack_i(m.data, pos)[0])
    return new


@handles("BININT1")
def _binint1(m: Machine, pos: int) -> int:
    new = m.take(pos, 1)
    m.stack.append(m.data[pos])
    return new


@handles("BININT2")
def _binint2(m: Machine, pos: int) -> int:
    new = m.take(pos, 2)
    m.stack.append(_unpack_H(m.data, pos)[0])
    return new


@handles("INT")
def _int(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    m.stack.append(parse_int(raw))
    return new


@handles("LONG")
def _long(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    m.stack.append(parse_long(raw))
    return new


@handles("LONG1")
def _long1(m: Machine, pos: int) -> int:
    start = m.take(pos, 1)
    new = m.take(start, m.data[pos])
    m.stack.append(int.from_bytes(m.data[start:new], "little", signed=True))
    return new


@handles("LONG4")
def _long4(m: Machine, pos: int) -> int:
    start = m.take(pos, 4)
    (n,) = _unpack_i(m.data, pos)
    if n < 0:
        raise PickleError("LONG4 with negative byte count", pos - 1)
    new = m.take(start, n)
    m.stack.append(int.from_bytes(m.data[start:new], "little", signed=True))
    return new


@handles("FLOAT")
def _float(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    m.stack.append(parse_float(raw))
    return new


@handles("BINFLOAT")
def _binfloat(m: Machine, pos: int) -> int:
    new = m.take(pos, 8)
    m.stack.append(_unpack_d(m.data, pos)[0])
    return new


# -- strings and bytes


def _sized(m: Machine, pos: int, width: int) -> tuple[int, int]:
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


@handles("STRING")
def _string(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    if len(raw) < 2 or raw[0] != raw[-1] or raw[0] not in b"\"'":
        raise PickleError("STRING argument is not quoted", pos - 1)
    value = codecs.escape_decode(raw[1:-1])[0]
    m.stack.append(m.decode_str8(value, pos - 1))
    return new


@handles("BINSTRING")
def _binstring(m: Machine, pos: int) -> int:
    start, new = _sized(m, pos, 4)
    m.stack.append(m.decode_str8(bytes(m.data[start:new]), pos - 1))
    return new


@handles("SHORT_BINSTRING")
def _short_binstring(m: Machine, pos: int) -> int:
    start, new = _sized(m, pos, 1)
    m.stack.append(m.decode_str8(bytes(m.data[start:new]), pos - 1))
    return new


@handles("UNICODE")
def _unicode(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    m.stack.append(raw.decode("raw-unicode-escape"))
    return new


def _push_text(m: Machine, pos: int, width: int) -> int:
    start, new = _sized(m, pos, width)
    m.stack.append(str(m.data[start:new], "utf-8", "surrogatepass"))
    return new


@handles("SHORT_BINUNICODE")
def _short_binunicode(m: Machine, pos: int) -> int:
    return _push_text(m, pos, 1)


@handles("BINUNICODE")
def _binunicode(m: Machine, pos: int) -> int:
    # torch reads this length unsigned; a length >= 2**31 cannot fit any real input anyway.
    start = m.take(pos, 4)
    (n,) = _unpack_I(m.data, pos)
    new = m.take(start, n)
    m.stack.append(str(m.data[start:new], "utf-8", "surrogatepass"))
    return new


@handles("BINUNICODE8")
def _binunicode8(m: Machine, pos: int) -> int:
    return _push_text(m, pos, 8)


def _push_bytes(m: Machine, pos: int, width: int) -> int:
    start, new = _sized(m, pos, width)
    m.stack.append(bytes(m.data[start:new]))
    return new


@handles("SHORT_BINBYTES")
def _short_binbytes(m: Machine, pos: int) -> int:
    return _push_bytes(m, pos, 1)


@handles("BINBYTES")
def _binbytes(m: Machine, pos: int) -> int:
    start = m.take(pos, 4)
    (n,) = _unpack_I(m.data, pos)
    new = m.take(start, n)
    m.stack.append(bytes(m.data[start:new]))
    return new


@handles("BINBYTES8")
def _binbytes8(m: Machine, pos: int) -> int:
    return _push_bytes(m, pos, 8)


@handles("BYTEARRAY8")
def _bytearray8(m: Machine, pos: int) -> int:
    start, new = _sized(m, pos, 8)
    m.stack.append(bytearray(m.data[start:new]))
    return new


@handles("NEXT_BUFFER")
def _next_buffer(m: Machine, pos: int) -> int:
    m.stack.append(Opaque("out-of-band buffer", pos - 1))
    return pos


@handles("READONLY_BUFFER")
def _readonly_buffer(m: Machine, pos: int) -> int:
    m.top(pos)
    return pos


# -- containers


@handles("EMPTY_LIST")
def _empty_list(m: Machine, pos: int) -> int:
    m.stack.append([])
    return pos


@handles("LIST")
def _list(m: Machine, pos: int) -> int:
    m.stack.append(m.pop_mark(pos))
    return pos


def nest_tuple(m: Machine, value: tuple[Any, ...], pos: int) -> None:
    """Note how deep a new tuple nests tuples; refuse one nested too deep.

    Hashing a tuple recurses through the tuples in it on the C stack, in a loader and in
    any code that later hashes the value; the depth is known when the tuple is made, from
    the tuples it holds. Depths of 3 and more are noted (with the tuple, so that its id is
    not reused); a tuple without a note is 2 deep if it holds a tuple, else 1. Most tuples
    that hold tuples are 2 deep (a tensor's rebuild arguments hold its size and stride),
    and the compiled loop settles those without calling here.
    """
    depths = m.tuple_depths
    deepest = 0
    for item in value:
        if type(item) is tuple:
            entry = depths.get(id(item))
            if entry is not None and entry[0] is item:
                depth = entry[1]
            else:
                depth = 2 if tuple in map(type, item) else 1
            if depth > deepest:
                deepest = depth
    if deepest >= m.max_tuple_depth:
        raise LimitExceeded(
            f"tuples nested more than {m.max_tuple_depth} deep (hashing one recurses that deep)",
            pos,
        )
    if deepest >= 2:
        depths[id(value)] = (value, deepest + 1)


@handles("EMPTY_TUPLE")
def _empty_tuple(m: Machine, pos: int) -> int:
    m.stack.append(())
    return pos


@handles("TUPLE")
def _tuple(m: Machine, pos: int) -> int:
    value = tuple(m.pop_mark(pos))
    nest_tuple(m, value, pos - 1)
    m.stack.append(value)
    return pos


@handles("TUPLE1")
def _tuple1(m: Machine, pos: int) -> int:
    m.need(1, pos)
    stack = m.stack
    value = (stack[-1],)
    nest_tuple(m, value, pos - 1)
    stack[-1] = value
    return pos


@handles("TUPLE2")
def _tuple2(m: Machine, pos: int) -> int:
    m.need(2, pos)
    stack = m.stack
    value = (stack[-2], stack[-1])
    nest_tuple(m, value, pos - 1)
    stack[-2:] = [value]
    return pos


@handles("TUPLE3")
def _tuple3(m: Machine, pos: int) -> int:
    m.need(3, pos)
    stack = m.stack
    value = (stack[-3], stack[-2], stack[-1])
    nest_tuple(m, value, pos - 1)
    stack[-3:] = [value]
    return pos


@handles("EMPTY_DICT")
def _empty_dict(m: Machine, pos: int) -> int:
    m.stack.append(PDict())
    return pos


@handles("DICT")
def _dict(m: Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if len(items) % 2:
        raise PickleError("odd number of items for DICT", pos - 1)
    node = PDict()
    node.flat = items
    m.stack.append(node)
    return pos


@handles("EMPTY_SET")
def _empty_set(m: Machine, pos: int) -> int:
    m.stack.append(PSet(frozen=False))
    return pos


@handles("FROZENSET")
def _frozenset(m: Machine, pos: int) -> int:
    node = PSet(frozen=True)
    node.items = m.pop_mark(pos)
    m.stack.append(node)
    return pos


def append_to(m: Machine, target: Any, items: list[Any], op: str, pos: int) -> None:
    """Append items to a list, or record the operation on anything else."""
    if type(target) is list:
        target.extend(items)
        return
    if isinstance(target, Call):
        if target.items is None:
            target.items = []
        target.items.extend(items)
    m.result.events.append(Event(op, target, pos - 1))


@handles("APPEND")
def _append(m: Machine, pos: int) -> int:
    item = m.pop(pos)
    append_to(m, m.top(pos), [item], "APPEND", pos)
    return pos


@handles("APPENDS")
def _appends(m: Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    append_to(m, m.top(pos), items, "APPENDS", pos)
    return pos


def setitems_on(m: Machine, target: Any, items: list[Any], op: str, pos: int) -> None:
    """Set keys and values (alternating in ``items``) on a dict, or record the operation."""
    if type(target) is PDict:
        target.flat.extend(items)
        return
    if isinstance(target, Call):
        if target.setitems is None:
            target.setitems = []
        target.setitems.extend(zip(items[::2], items[1::2], strict=True))
    m.result.events.append(Event(op, target, pos - 1))


@handles("SETITEM")
def _setitem(m: Machine, pos: int) -> int:
    value = m.pop(pos)
    key = m.pop(pos)
    setitems_on(m, m.top(pos), [key, value], "SETITEM", pos)
    return pos


@handles("SETITEMS")
def _setitems(m: Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if len(items) % 2:
        raise PickleError("odd number of items for SETITEMS", pos - 1)
    setitems_on(m, m.top(pos), items, "SETITEMS", pos)
    return pos


@handles("ADDITEMS")
def _additems(m: Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    target = m.top(pos)
    if type(target) is PSet and not target.frozen:
        target.items.extend(items)
    else:
        m.result.events.append(Event("ADDITEMS", target, pos - 1))
    return pos


# -- memo


def _put(m: Machine, index: int, pos: int) -> None:
    m.memo[index] = m.top(pos)


def _get(m: Machine, index: int, pos: int) -> None:
    try:
        m.stack.append(m.memo[index])
    except KeyError:
        raise PickleError(f"memo key {index} not found", pos - 1) from None


@handles("PUT")
def _put_text(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    index = parse_memo_key(raw)
    if index < 0:
        raise PickleError("negative PUT argument", pos - 1)
    _put(m, index, pos)
    return new


@handles("BINPUT")
def _binput(m: Machine, pos: int) -> int:
    new = m.take(pos, 1)
    _put(m, m.data[pos], pos)
    return new


@handles("LONG_BINPUT")
def _long_binput(m: Machine, pos: int) -> int:
    new = m.take(pos, 4)
    _put(m, _unpack_I(m.data, pos)[0], pos)
    return new


@handles("MEMOIZE")
def _memoize(m: Machine, pos: int) -> int:
    _put(m, len(m.memo), pos)
    return pos


@handles("GET")
def _get_text(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    _get(m, parse_memo_key(raw), pos)
    return new


@handles("BINGET")
def _binget(m: Machine, pos: int) -> int:
    new = m.take(pos, 1)
    _get(m, m.data[pos], pos)
    return new


@handles("LONG_BINGET")
def _long_binget(m: Machine, pos: int) -> int:
    new = m.take(pos, 4)
    _get(m, _unpack_I(m.data, pos)[0], pos)
    return new


# -- globals and calls: recorded, never resolved


def _text_name(raw: bytes, pos: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PickleError("global name is not UTF-8", pos) from None


@handles("GLOBAL")
def _global(m: Machine, pos: int) -> int:
    module, p = m.line(pos)
    name, new = m.line(p)
    m.stack.append(
        m.add_global(_text_name(module, pos), _text_name(name, pos), pos - 1, "GLOBAL", False)
    )
    return new


@handles("STACK_GLOBAL")
def _stack_global(m: Machine, pos: int) -> int:
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


def _ext(m: Machine, pos: int, width: int) -> int:
    new = m.take(pos, width)
    code = int.from_bytes(m.data[pos:new], "little")
    # The copyreg extension registry maps codes to globals at load time; unknowable here.
    m.stack.append(m.add_global("<extension>", str(code), pos - 1, f"EXT{width}", True))
    return new


@handles("EXT1")
def _ext1(m: Machine, pos: int) -> int:
    return _ext(m, pos, 1)


@handles("EXT2")
def _ext2(m: Machine, pos: int) -> int:
    return _ext(m, pos, 2)


@handles("EXT4")
def _ext4(m: Machine, pos: int) -> int:
    return _ext(m, pos, 4)


@handles("REDUCE")
def _reduce(m: Machine, pos: int) -> int:
    args = m.pop(pos)
    func = m.top(pos)
    m.stack[-1] = m.add_call(func, args, None, "REDUCE", pos - 1)
    return pos


@handles("NEWOBJ")
def _newobj(m: Machine, pos: int) -> int:
    args = m.pop(pos)
    cls = m.pop(pos)
    m.stack.append(m.add_call(cls, args, None, "NEWOBJ", pos - 1))
    return pos


@handles("NEWOBJ_EX")
def _newobj_ex(m: Machine, pos: int) -> int:
    kwargs = m.pop(pos)
    args = m.pop(pos)
    cls = m.pop(pos)
    m.stack.append(m.add_call(cls, args, kwargs, "NEWOBJ_EX", pos - 1))
    return pos


@handles("INST")
def _inst(m: Machine, pos: int) -> int:
    module, p = m.line(pos)
    name, new = m.line(p)
    args = tuple(m.pop_mark(pos))
    cls = m.add_global(_text_name(module, pos), _text_name(name, pos), pos - 1, "INST", False)
    nest_tuple(m, args, pos - 1)  # after the global: a refused call still names it
    m.stack.append(m.add_call(cls, args, None, "INST", pos - 1))
    return new


@handles("OBJ")
def _obj(m: Machine, pos: int) -> int:
    items = m.pop_mark(pos)
    if not items:
        raise PickleError("OBJ without a class", pos - 1)
    args = tuple(items[1:])
    nest_tuple(m, args, pos - 1)
    m.stack.append(m.add_call(items[0], args, None, "OBJ", pos - 1))
    return pos


@handles("BUILD")
def _build(m: Machine, pos: int) -> int:
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


@handles("PERSID")
def _persid(m: Machine, pos: int) -> int:
    raw, new = m.line(pos)
    node = PersId(raw.decode("ascii", "replace"), pos - 1, "PERSID")
    m.result.persids.append(node)
    m.stack.append(node)
    return new


@handles("BINPERSID")
def _binpersid(m: Machine, pos: int) -> int:
    node = PersId(m.pop(pos), pos - 1, "BINPERSID")
    m.result.persids.append(node)
    m.stack.append(node)
    return pos


def _build_table() -> tuple[Handler | None, ...]:
    missing = set(_BY_NAME) - set(HANDLERS)
    if missing:  # pragma: no cover - guarded by a test too
        raise RuntimeError(f"no handler for opcodes {sorted(missing)}")
    table: list[Handler | None] = [None] * 256
    for name, handler in HANDLERS.items():
        table[ord(_BY_NAME[name].code)] = handler
    return tuple(table)


TABLE = _build_table()
"""Opcode byte -> its handler (None for the bytes that are no opcode)."""
