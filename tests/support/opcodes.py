"""Pickle opcodes as bytes: one function per opcode, and a few compositions over them.

Every hostile and hand-made pickle in the tests is assembled from these, so a reader sees the
opcodes (``global_``, ``unicode``, ``reduce``...) instead of byte literals. Nothing here
unpickles anything or imports ckptaudit.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass


def proto(n: int) -> bytes:
    """PROTO: declare protocol ``n`` (2..5)."""
    return b"\x80" + bytes([n])


def frame(length: int) -> bytes:
    """FRAME: announce ``length`` bytes of frame payload (protocol 4+)."""
    return b"\x95" + struct.pack("<Q", length)


def stop() -> bytes:
    """STOP: end of pickle, return top of stack."""
    return b"."


def mark() -> bytes:
    """MARK: push the mark sentinel."""
    return b"("


def pop() -> bytes:
    """POP: discard the top of stack."""
    return b"0"


def pop_mark() -> bytes:
    """POP_MARK: discard everything down to and including the top mark."""
    return b"1"


def dup() -> bytes:
    """DUP: duplicate the top of stack."""
    return b"2"


def global_(module: str, name: str) -> bytes:
    """GLOBAL: push ``module.name`` (newline-terminated text operands)."""
    return b"c" + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def inst(module: str, name: str) -> bytes:
    """INST: call ``module.name(*items_since_mark)`` (protocol 0)."""
    return b"i" + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def obj() -> bytes:
    """OBJ: call ``items[0](*items[1:])`` for the items since the mark (protocol 1)."""
    return b"o"


def stack_global() -> bytes:
    """STACK_GLOBAL: pop name and module strings, push the global (protocol 4)."""
    return b"\x93"


def reduce() -> bytes:
    """REDUCE: pop args tuple and callable, push ``callable(*args)``."""
    return b"R"


def build() -> bytes:
    """BUILD: ``__setstate__`` / ``__dict__.update`` with the top of stack."""
    return b"b"


def newobj() -> bytes:
    """NEWOBJ: ``cls.__new__(cls, *args)`` (protocol 2)."""
    return b"\x81"


def newobj_ex() -> bytes:
    """NEWOBJ_EX: ``cls.__new__(cls, *args, **kwargs)`` (protocol 4)."""
    return b"\x92"


def text_unicode(s: str) -> bytes:
    """UNICODE: protocol-0 text string (raw-unicode-escape, newline-terminated)."""
    return b"V" + s.encode("raw-unicode-escape") + b"\n"


def unicode(s: str) -> bytes:
    """BINUNICODE: length-prefixed UTF-8 string (protocol 1+)."""
    raw = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def short_unicode(s: str) -> bytes:
    """SHORT_BINUNICODE: one-byte-length UTF-8 string (protocol 4)."""
    raw = s.encode("utf-8")
    if len(raw) > 0xFF:
        raise ValueError("SHORT_BINUNICODE takes at most 255 bytes")
    return b"\x8c" + bytes([len(raw)]) + raw


def string0(s: str) -> bytes:
    """STRING: protocol-0 quoted byte string (ASCII only, no quotes inside)."""
    if "'" in s or "\\" in s or not s.isascii():
        raise ValueError("string0 only supports simple ASCII")
    return b"S'" + s.encode("ascii") + b"'\n"


def binstring(s: str) -> bytes:
    """SHORT_BINSTRING / BINSTRING: length-prefixed latin-1 byte string."""
    raw = s.encode("latin-1")
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def binbytes(b: bytes) -> bytes:
    """SHORT_BINBYTES / BINBYTES: bytes object (protocol 3+)."""
    if len(b) < 256:
        return b"C" + bytes([len(b)]) + b
    return b"B" + struct.pack("<I", len(b)) + b


def long1(i: int) -> bytes:
    """LONG1: little-endian two's complement integer (protocol 2)."""
    raw = i.to_bytes((i.bit_length() + 8) // 8, "little", signed=True) if i else b""
    return b"\x8a" + bytes([len(raw)]) + raw


def int_(i: int) -> bytes:
    """Smallest binary integer opcode for ``i`` (BININT1/BININT2/BININT/LONG1)."""
    if 0 <= i < 0x100:
        return b"K" + bytes([i])
    if 0 <= i < 0x10000:
        return b"M" + struct.pack("<H", i)
    if -(2**31) <= i < 2**31:
        return b"J" + struct.pack("<i", i)
    return long1(i)


def int0(i: int) -> bytes:
    """INT: protocol-0 decimal integer."""
    return b"I" + str(i).encode("ascii") + b"\n"


def binfloat(f: float) -> bytes:
    """BINFLOAT: big-endian IEEE double."""
    return b"G" + struct.pack(">d", f)


def none() -> bytes:
    """NONE: push ``None``."""
    return b"N"


def newtrue() -> bytes:
    """NEWTRUE: push ``True`` (protocol 2)."""
    return b"\x88"


def newfalse() -> bytes:
    """NEWFALSE: push ``False`` (protocol 2)."""
    return b"\x89"


def empty_tuple() -> bytes:
    """EMPTY_TUPLE."""
    return b")"


def tuple_n(n: int) -> bytes:
    """EMPTY_TUPLE / TUPLE1 / TUPLE2 / TUPLE3 for ``n`` in 0..3."""
    return {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[n]


def tuple_() -> bytes:
    """TUPLE: build a tuple from the items since the mark."""
    return b"t"


def empty_list() -> bytes:
    """EMPTY_LIST."""
    return b"]"


def empty_dict() -> bytes:
    """EMPTY_DICT."""
    return b"}"


def append() -> bytes:
    """APPEND."""
    return b"a"


def appends() -> bytes:
    """APPENDS (mark based)."""
    return b"e"


def setitem() -> bytes:
    """SETITEM."""
    return b"s"


def setitems() -> bytes:
    """SETITEMS (mark based)."""
    return b"u"


def list_() -> bytes:
    """LIST: build a list from the items since the mark (protocol 0)."""
    return b"l"


def dict_() -> bytes:
    """DICT: build a dict from the key/value items since the mark (protocol 0)."""
    return b"d"


def put(i: int) -> bytes:
    """PUT: protocol-0 memo store."""
    return b"p" + str(i).encode("ascii") + b"\n"


def get(i: int) -> bytes:
    """GET: protocol-0 memo fetch."""
    return b"g" + str(i).encode("ascii") + b"\n"


def binput(i: int) -> bytes:
    """BINPUT: memo store at a one-byte index."""
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    """BINGET: memo fetch from a one-byte index."""
    return b"h" + bytes([i])


def long_binput(i: int) -> bytes:
    """LONG_BINPUT: memo store at a four-byte index."""
    return b"r" + struct.pack("<I", i)


def long_binget(i: int) -> bytes:
    """LONG_BINGET: memo fetch from a four-byte index."""
    return b"j" + struct.pack("<I", i)


def memoize() -> bytes:
    """MEMOIZE: store top of stack at index ``len(memo)`` (protocol 4)."""
    return b"\x94"


def ext1(code: int) -> bytes:
    """EXT1: push the global registered under copyreg extension ``code``."""
    return b"\x82" + bytes([code])


def ext2(code: int) -> bytes:
    """EXT2: two-byte extension code."""
    return b"\x83" + struct.pack("<H", code)


def ext4(code: int) -> bytes:
    """EXT4: four-byte extension code."""
    return b"\x84" + struct.pack("<i", code)


def binpersid() -> bytes:
    """BINPERSID: resolve the top of stack through ``persistent_load``."""
    return b"Q"


@dataclass(frozen=True)
class Raw:
    """Already-assembled opcode bytes to splice into a :func:`lit` structure."""

    ops: bytes


Literal_ = None | bool | int | float | str | bytes | tuple | list | dict | Raw


def lit(value: Literal_, protocol: int = 2) -> bytes:
    """Encode a Python literal as opcodes that push it (hand-written encoder)."""
    if isinstance(value, Raw):
        return value.ops
    if value is None:
        return none()
    if isinstance(value, bool):
        if protocol >= 2:
            return newtrue() if value else newfalse()
        return b"I01\n" if value else b"I00\n"
    if isinstance(value, int):
        return int0(value) if protocol == 0 else int_(value)
    if isinstance(value, float):
        return binfloat(value)
    if isinstance(value, str):
        if protocol == 0:
            return text_unicode(value)
        if protocol >= 4 and len(value.encode("utf-8")) < 256:
            return short_unicode(value)
        return unicode(value)
    if isinstance(value, bytes):
        if protocol >= 3:
            return binbytes(value)
        # What pickle itself does for bytes below protocol 3.
        return call(global_("_codecs", "encode"), [value.decode("latin-1"), "latin1"], protocol)
    if isinstance(value, tuple):
        if protocol >= 2 and len(value) <= 3:
            return b"".join(lit(v, protocol) for v in value) + tuple_n(len(value))
        return mark() + b"".join(lit(v, protocol) for v in value) + tuple_()
    if isinstance(value, list):
        if protocol == 0:
            return mark() + b"".join(lit(v, protocol) for v in value) + list_()
        body = b"".join(lit(v, protocol) for v in value)
        return empty_list() + (mark() + body + appends() if value else b"")
    if isinstance(value, dict):
        body = b"".join(lit(k, protocol) + lit(v, protocol) for k, v in value.items())
        if protocol == 0:
            return mark() + body + dict_()
        return empty_dict() + (mark() + body + setitems() if value else b"")
    raise TypeError(f"cannot encode {type(value).__name__}")


def ref(module: str, name: str, protocol: int = 2) -> bytes:
    """Push a global the way ``pickle.dumps`` would for ``protocol``."""
    if protocol >= 4:
        return short_unicode(module) + short_unicode(name) + stack_global()
    return global_(module, name)


def call(callable_ops: bytes, args: Sequence[Literal_], protocol: int = 2) -> bytes:
    """``callable(*args)`` via REDUCE; ``callable_ops`` pushes the callable."""
    return callable_ops + lit(tuple(args), protocol) + reduce()


def wrap(body: bytes, protocol: int = 2, *, use_frame: bool = True) -> bytes:
    """Add PROTO (and a FRAME for protocol 4+) plus the final STOP to ``body``."""
    payload = body + stop()
    if protocol < 2:
        return payload
    head = proto(protocol)
    if protocol >= 4 and use_frame:
        head += frame(len(payload))
    return head + payload


def simple(module: str, name: str, args: Sequence[Literal_], protocol: int = 2) -> bytes:
    """Complete pickle for ``module.name(*args)``."""
    return wrap(call(ref(module, name, protocol), args, protocol), protocol)


def binint(i: int) -> bytes:
    """BININT: four-byte signed little-endian integer."""
    return b"J" + struct.pack("<i", i)


def invoke(callable_ops: bytes, *args: bytes) -> bytes:
    """``callable(*args)`` as MARK, the argument opcodes, TUPLE, REDUCE (any protocol).

    Unlike :func:`call`, the arguments are opcode bytes (often other calls), and the tuple is
    always built from a mark.
    """
    return callable_ops + mark() + b"".join(args) + tuple_() + reduce()
