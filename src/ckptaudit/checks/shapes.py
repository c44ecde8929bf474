"""What an object looks like, read from how the pickle builds it."""

from __future__ import annotations

import sys
from typing import Any

from ckptaudit.checks.patterns import is_literal_args
from ckptaudit.findings import Kind
from ckptaudit.pickle.nodes import Call, Global, PDict

__all__ = ["is_enum_shape", "is_mapping_subclass_shape", "shape_kind"]


# Library namespaces and classes whose constructor reaches files, processes or the network
# with one argument (torch.distributed.FileStore(path) creates the file): never Enums.
_SIDE_EFFECT_PREFIXES = ("torch.distributed", "torch.utils", "torch.multiprocessing")
_SIDE_EFFECT_CLASSES = frozenset(
    {
        "pandas.HDFStore",
        "pandas.ExcelWriter",
        "pandas.ExcelFile",
        "pandas.io.pytables.HDFStore",
        "h5py.File",
        "h5py._hl.files.File",
    }
)


def _class_like(func: Global) -> bool:
    """A CamelCase name outside the standard library.

    CamelCase: classes are; the functions and constants that run code are not. The standard
    library is excluded because it is where classes whose constructor does I/O live
    (``unittest.TestProgram('mod')``, ``sqlite3.Connection('f')``, ``zipfile.ZipFile``) and
    what an attacker can count on being importable; Enums and mappings that checkpoints
    hold come from the user's own code and libraries.
    """
    if func.module.split(".", 1)[0] in sys.stdlib_module_names:
        return False
    if func.module.startswith(_SIDE_EFFECT_PREFIXES) or func.qualified in _SIDE_EFFECT_CLASSES:
        return False
    last = func.name.rsplit(".", 1)[-1].lstrip("_")  # private classes (_Color) count too
    return last[:1].isupper() and not last.isupper()


def is_enum_shape(call: Call, func: Global) -> bool:
    """An Enum member lookup: ``Cls(value)``, one literal, no state, class-like name."""
    args = call.args
    if type(args) is not tuple or len(args) != 1 or call.opcode != "REDUCE":
        return False
    if call.builds or call.items or call.setitems:
        return False
    return is_literal_args(args) and _class_like(func)


def _attribute_state(state: Any) -> bool:
    """What ``object.__getstate__`` gives: None, ``vars(self)``, or (vars, slots)."""
    if state is None or type(state) is PDict:
        return True
    return (
        type(state) is tuple
        and len(state) == 2
        and (state[0] is None or type(state[0]) is PDict)
        and type(state[1]) is PDict
    )


def is_mapping_subclass_shape(call: Call, func: Global) -> bool:
    """A mapping subclass rebuilt by ``OrderedDict.__reduce__``: ``Cls()`` then SETITEMS.

    ``OrderedDict.__reduce__`` returns ``(cls, (), vars(self) or None, None, items)``, so a
    subclass (transformers' ModelOutput, diffusers' FrozenDict) is a REDUCE of the class with
    an empty tuple, its items, and at most one BUILD of an attribute dict. A class-like name
    is required: a function called with no arguments is not a constructor.
    """
    if call.opcode != "REDUCE" or type(call.args) is not tuple or call.args:
        return False
    if not call.setitems or call.items is not None or call.builds > 1:
        return False
    return _attribute_state(call.state) and _class_like(func)


def shape_kind(node: Any) -> Kind:
    """Read what an object looks like from how the pickle builds it."""
    if isinstance(node, Global):
        return Kind.REFERENCE
    if not isinstance(node, Call):
        return Kind.UNKNOWN
    func = node.func
    if isinstance(func, Global) and is_enum_shape(node, func):
        return Kind.ENUM
    state = node.state
    if type(state) is tuple and len(state) == 2 and type(state[1]) is PDict:
        state = state[0] if type(state[0]) is PDict else state[1]
    if node.builds and type(state) is PDict:
        keys = {k for k in state.flat[0::2] if isinstance(k, str)}
        if {"_parameters", "_modules"} <= keys or {"_parameters", "_buffers"} <= keys:
            return Kind.MODULE
        # A dataclass and a plain class pickle alike (NEWOBJ, then BUILD with vars(obj)):
        # the bytes say "an object with a state dict", never which.
        return Kind.OBJECT
    if node.items is not None or node.setitems is not None:
        return Kind.CONTAINER
    if node.opcode in ("NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"):
        return Kind.OBJECT
    return Kind.UNKNOWN
