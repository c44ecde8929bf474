"""Write an inert tree as a protocol-2 pickle, the way ``torch.save`` writes ``data.pkl``.

The tree uses the emulator's own vocabulary (:mod:`ckptaudit.pickle.nodes`): primitives,
lists, tuples, :class:`PDict`, :class:`PSet`, :class:`Global`, :class:`Call` and
:class:`PersId`. Only opcodes torch's weights_only unpickler implements are written (no
FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL, POP...). Every container and call is
memoized, so an object reached twice (tied weights, a shared config) is written once and
stays shared when loaded; nothing is ever resolved or called.
"""

from __future__ import annotations

import struct
from typing import Any

from ckptaudit.errors import MigrationError
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet

__all__ = ["MAX_DEPTH", "dumps"]

MAX_DEPTH = 256
"""Nesting depth beyond which a tree is refused (real checkpoints nest a few dozen levels)."""

_BATCH = 1000
_ENCODE = Global("_codecs", "encode", -1, "GLOBAL", False)
_BYTEARRAY = Global("builtins", "bytearray", -1, "GLOBAL", False)
_COMPLEX = Global("builtins", "complex", -1, "GLOBAL", False)
_SET = Global("builtins", "set", -1, "GLOBAL", False)
_FROZENSET = Global("builtins", "frozenset", -1, "GLOBAL", False)
_pack_d = struct.Struct(">d").pack
_pack_I = struct.Struct("<I").pack
_pack_i = struct.Struct("<i").pack


def dumps(root: Any) -> bytes:
    """Serialize a tree as a protocol-2 pickle (``PROTO 2`` ... ``STOP``).

    Raises:
        MigrationError: a value cannot be written in a form torch loads (an integer of more
            than 255 bytes, an out-of-band buffer) or the tree nests beyond :data:`MAX_DEPTH`.
    """
    writer = _Writer()
    writer.out += b"\x80\x02"
    writer.save(root, 0)
    writer.out += b"."
    return bytes(writer.out)


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()
        self.memo: dict[int, int] = {}
        self.globals: dict[str, int] = {}
        self.alive: list[Any] = []  # keeps memoized objects alive, so their ids stay unique

    def put(self, obj: Any) -> None:
        index = len(self.memo) + len(self.globals)
        self.memo[id(obj)] = index
        self.alive.append(obj)
        self._put(index)

    def _put(self, index: int) -> None:
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + _pack_I(index)

    def get(self, index: int) -> None:
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + _pack_I(index)

    def save(self, obj: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise MigrationError(f"the object tree nests deeper than {MAX_DEPTH} levels")
        t = type(obj)
        if obj is None:
            self.out += b"N"
        elif t is bool:
            self.out += b"\x88" if obj else b"\x89"
        elif t is int:
            self.save_int(obj)
        elif t is float:
            self.out += b"G" + _pack_d(obj)
        elif t is str:
            self.save_str(obj)
        elif t is bytes:
            self.save_call_parts(_ENCODE, (obj.decode("latin1"), "latin1"), depth)
        elif t is bytearray:
            self.save_call_parts(_BYTEARRAY, (bytes(obj),), depth)
        elif t is complex:
            self.save_call_parts(_COMPLEX, (obj.real, obj.imag), depth)
        else:
            index = self.memo.get(id(obj))
            if index is not None:
                self.get(index)
            elif t is tuple:
                self.save_tuple(obj, depth)
            elif t is list:
                self.out += b"]"
                self.put(obj)
                self.save_items(obj, depth)
            elif t is PDict:
                self.out += b"}"
                self.put(obj)
                self.save_pairs(obj.flat, depth)
            elif t is PSet:
                func = _FROZENSET if obj.frozen else _SET
                self.save_call_parts(func, (list(obj.items),), depth)
                self.put(obj)
            elif t is Global:
                self.save_global(obj)
            elif t is Call:
                self.save_call(obj, depth)
            elif t is PersId:
                self.save(obj.pid, depth + 1)
                self.out += b"Q"
            elif t is Opaque:
                raise MigrationError(f"cannot write {obj.what}: its bytes are not in the file")
            else:
                raise MigrationError(f"cannot write a value of type {t.__name__}")

    def save_int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif -(1 << 31) <= value < 1 << 31:
            self.out += b"J" + _pack_i(value)
        else:
            n = (value.bit_length() + 8) // 8
            data = value.to_bytes(n, "little", signed=True)
            # Shortest two's complement, as pickle.encode_long writes it.
            if (n > 1 and data[-1] == 0xFF and data[-2] & 0x80) or (
                n > 1 and data[-1] == 0 and not data[-2] & 0x80
            ):
                data = data[:-1]
            if len(data) > 255:
                raise MigrationError("an integer of more than 255 bytes (torch rejects LONG4)")
            self.out += b"\x8a" + bytes([len(data)]) + data

    def save_str(self, value: str) -> None:
        data = value.encode("utf-8", "surrogatepass")
        self.out += b"X" + _pack_I(len(data)) + data

    def save_global(self, node: Global) -> None:
        index = self.globals.get(node.qualified)
        if index is not None:
            self.get(index)
            return
        if "\n" in node.module or "\n" in node.name:
            raise MigrationError(f"cannot write the global {node.qualified!r}")
        self.out += b"c" + node.module.encode() + b"\n" + node.name.encode() + b"\n"
        index = len(self.memo) + len(self.globals)
        self.globals[node.qualified] = index
        self._put(index)

    def save_tuple(self, value: tuple[Any, ...], depth: int) -> None:
        n = len(value)
        if n == 0:
            self.out += b")"
            return
        if n > 3:
            self.out += b"("
        for item in value:
            self.save(item, depth + 1)
        if id(value) in self.memo:  # pragma: no cover - the emulator builds no such cycle
            raise MigrationError("a tuple that contains itself")
        self.out += b"t" if n > 3 else b"\x85\x86\x87"[n - 1 : n]
        self.put(value)

    def save_items(self, items: list[Any], depth: int) -> None:
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            if len(batch) == 1:
                self.save(batch[0], depth + 1)
                self.out += b"a"
                continue
            self.out += b"("
            for item in batch:
                self.save(item, depth + 1)
            self.out += b"e"

    def save_pairs(self, flat: list[Any], depth: int) -> None:
        for start in range(0, len(flat), 2 * _BATCH):
            batch = flat[start : start + 2 * _BATCH]
            if len(batch) == 2:
                self.save(batch[0], depth + 1)
                self.save(batch[1], depth + 1)
                self.out += b"s"
                continue
            self.out += b"("
            for item in batch:
                self.save(item, depth + 1)
            self.out += b"u"

    def save_call_parts(self, func: Any, args: tuple[Any, ...], depth: int) -> None:
        self.save(func, depth + 1)
        self.save_tuple(args, depth + 1)
        self.out += b"R"

    def save_call(self, node: Call, depth: int) -> None:
        args = node.args if type(node.args) is tuple else ()
        self.save(node.func, depth + 1)
        self.save_tuple(args, depth + 1)
        self.out += b"\x81" if node.opcode == "NEWOBJ" else b"R"
        self.put(node)
        if node.items:
            self.save_items(node.items, depth)
        if node.setitems:
            self.save_pairs([x for pair in node.setitems for x in pair], depth)
        if node.builds:
            self.save(node.state, depth + 1)
            self.out += b"b"
