"""Inert nodes of the object tree a pickle would build.

Primitives (None, bool, int, float, str, bytes, bytearray) and the plain containers list and
tuple are kept as native Python values: they carry no behaviour. Dicts and sets are nodes that
keep their keys, values and items in lists, so that no key is ever hashed (hash collisions
are an attack, and an unhashable key is a finding, not a crash). Everything that would run
code in a real unpickler (globals, calls, persistent ids) is a node that only records what
was asked.
"""

from __future__ import annotations

from typing import Any

from ckptaudit.pickle.names import resolve

__all__ = ["Call", "Global", "Opaque", "PDict", "PSet", "PersId"]


class Global:
    """A reference to ``module.name`` that the pickle asks to import (never resolved).

    Named as loaders resolve it: Python 2 names (``__builtin__.long``) are mapped as torch and
    CPython map them (:mod:`ckptaudit.pickle.names`). Nothing changes a node once built.
    """

    __slots__ = ("dynamic", "module", "name", "offset", "opcode", "qualified")

    def __init__(self, module: str, name: str, offset: int, opcode: str, dynamic: bool) -> None:
        if not dynamic:
            module, name = resolve(module, name)
        self.module = module
        self.name = name
        self.qualified = f"{module}.{name}"
        """``module.name``, as torch writes it in its messages (checks read it per call)."""
        self.offset = offset
        self.opcode = opcode
        self.dynamic = dynamic
        """True when the name was computed at load time (STACK_GLOBAL on non-strings, EXT*)."""

    def __repr__(self) -> str:
        return f"Global({self.qualified!r})"


class Call:
    """An object made by calling ``func``: REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ.

    Later opcodes that act on the object are recorded on it: BUILD's state, items appended by
    APPEND/APPENDS, pairs set by SETITEM/SETITEMS.
    """

    __slots__ = (
        "args",
        "build_offset",
        "builds",
        "func",
        "items",
        "kwargs",
        "offset",
        "opcode",
        "setitems",
        "state",
    )

    def __init__(self, func: Any, args: Any, kwargs: Any, opcode: str, offset: int) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.opcode = opcode
        self.offset = offset
        self.state: Any = None
        self.builds = 0
        self.build_offset: int | None = None
        self.items: list[Any] | None = None
        self.setitems: list[tuple[Any, Any]] | None = None

    def __repr__(self) -> str:
        func = self.func.qualified if isinstance(self.func, Global) else type(self.func).__name__
        return f"Call({func}, {self.opcode}, at {self.offset})"


class PersId:
    """A persistent id (BINPERSID/PERSID): in checkpoints, a reference to a tensor storage."""

    __slots__ = ("offset", "opcode", "pid")

    def __init__(self, pid: Any, offset: int, opcode: str) -> None:
        self.pid = pid
        self.offset = offset
        self.opcode = opcode


class PDict:
    """A dict, as the keys and values set on it, in order.

    ``flat`` holds them alternately (key0, value0, key1, value1, ...): an object-heavy pickle
    makes millions of dict entries, and a (key, value) tuple for each would cost more memory
    than most of the values it holds.
    """

    __slots__ = ("flat",)

    def __init__(self) -> None:
        self.flat: list[Any] = []

    @property
    def pairs(self) -> list[tuple[Any, Any]]:
        """The (key, value) pairs, in order (a new list on each call)."""
        flat = self.flat
        return list(zip(flat[0::2], flat[1::2], strict=False))

    def __len__(self) -> int:
        return len(self.flat) // 2


class PSet:
    """A set or frozenset, as its items in order."""

    __slots__ = ("frozen", "items")

    def __init__(self, frozen: bool) -> None:
        self.items: list[Any] = []
        self.frozen = frozen


class Opaque:
    """A value the pickle cannot show statically (an out-of-band buffer)."""

    __slots__ = ("offset", "what")

    def __init__(self, what: str, offset: int) -> None:
        self.what = what
        self.offset = offset
