"""Benign call patterns, recognised by their arguments alone (never evaluated).

Some callables that are dangerous in general are harmless with certain arguments: a
``copyreg._reconstructor`` with a plain builtin base, a ``getattr`` of a class attribute, the
typing constructs configs carry (``Dict[str, Any]``, ``int | str``).
"""

from __future__ import annotations

import re
from typing import Any

from ckptaudit.pickle.nodes import Call, Global
from ckptaudit.policy.dangerous import danger_reason

__all__ = [
    "ABSORBING_CALLEES",
    "absorbed_references",
    "benign_pattern",
    "getattr_target",
    "is_literal_args",
    "typing_construct",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_BASES = frozenset(
    {
        "builtins.object",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "builtins.set",
        "builtins.frozenset",
    }
)


def _is_literal(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, bytes))


def getattr_target(call: Call) -> tuple[str, str] | None:
    """For ``getattr(<global class>, '<identifier>')``, return (class, attribute)."""
    args = call.args
    if not (isinstance(args, tuple) and len(args) == 2):
        return None
    owner, attr = args
    if not isinstance(owner, Global) or owner.dynamic or not isinstance(attr, str):
        return None
    if not _IDENTIFIER.match(attr) or attr.startswith("__"):
        return None
    return owner.qualified, attr


def _bound_method(call: Call) -> bool:
    """``getattr(<object made by a call>, '<identifier>')``: how Python pickles
    ``obj.method``. Fetching it runs nothing the file chose; calling the result, or planting
    it as a method of something else, is judged where that happens."""
    args = call.args
    if not (isinstance(args, tuple) and len(args) == 2):
        return False
    owner, attr = args
    return (
        isinstance(owner, Call)
        and isinstance(attr, str)
        and _IDENTIFIER.match(attr) is not None
        and not attr.startswith("__")
    )


_TYPING_OWNERS = frozenset({"typing", "typing_extensions", "collections.abc", "collections"})
_GETITEM = frozenset({"operator.getitem", "_operator.getitem"})
_OR = frozenset({"operator.or_", "_operator.or_"})
_REDUCE = frozenset({"functools.reduce", "_functools.reduce"})


def _type_like(value: Any, depth: int = 0) -> bool:
    """A type, a typing construct, or a literal, as typing subscriptions hold them."""
    if depth > 16:
        return False
    if _is_literal(value):
        return True
    if isinstance(value, Global):
        if value.dynamic:
            return False
        return value.qualified == "builtins.type" or danger_reason(value.module, value.name) is None
    if isinstance(value, (tuple, list)):
        return all(_type_like(v, depth + 1) for v in value)
    if isinstance(value, Call) and isinstance(value.func, Global):
        return typing_construct(value.func.qualified, value, depth + 1) is not None
    return False


_TYPING_CALLABLES = _GETITEM | _REDUCE | {"types.GenericAlias", "builtins.type"}


def typing_construct(qualified: str, call: Call, depth: int = 0) -> str | None:
    """Say which typing construct a call builds, judged by its arguments, or return None.

    ``Dict[str, Any]`` pickles as ``operator.getitem(typing.Dict, (str, typing.Any))``,
    ``list[int]`` as ``types.GenericAlias(list, (int,))``, ``int | str`` as
    ``functools.reduce(operator.or_, (int, str))`` and ``type(None)`` as itself. Configs with
    type metadata (OmegaConf structured configs) carry them. The arguments must themselves
    be types, typing constructs or literals; whatever they name is judged on its own.
    """
    if qualified not in _TYPING_CALLABLES:
        return None
    args = call.args
    if not isinstance(args, tuple) or call.builds or call.items or call.setitems:
        return None
    if qualified in _GETITEM and len(args) == 2:
        owner, index = args
        owner_ok = (
            isinstance(owner, Global)
            and not owner.dynamic
            and (owner.module in _TYPING_OWNERS or owner.module == "builtins")
        ) or (isinstance(owner, Call) and _type_like(owner, depth + 1))
        if owner_ok and _type_like(index, depth + 1):
            return "a typing subscription (Dict[str, Any], Optional[int], ...)"
    if (
        qualified == "types.GenericAlias"
        and len(args) == 2
        and isinstance(args[0], Global)
        and _type_like(args[1], depth + 1)
    ):
        return "a generic alias (list[int], dict[str, float], ...)"
    if qualified in _REDUCE and len(args) == 2:
        op, items = args
        if (
            isinstance(op, Global)
            and op.qualified in _OR
            and isinstance(items, tuple)
            and _type_like(items, depth + 1)
        ):
            return "a union of types (int | str)"
    if qualified == "builtins.type" and len(args) == 1 and _is_literal(args[0]):
        return "the type of a literal (type(None))"
    return None


ABSORBING_CALLEES = _REDUCE
"""Callees for which :func:`absorbed_references` can return anything."""


def absorbed_references(qualified: str, call: Call) -> list[Global]:
    """Globals a benign pattern passes as data (the ``operator.or_`` of a type union)."""
    if qualified in _REDUCE and isinstance(call.args, tuple) and call.args:
        op = call.args[0]
        if isinstance(op, Global) and op.qualified in _OR:
            return [op]
    return []


def benign_pattern(qualified: str, call: Call) -> str | None:
    """Say why a call of a normally dangerous callable is benign here, or return None.

    Recognised by arguments only:
    - ``copyreg._reconstructor(cls, <plain builtin base>, state)``: protocol 0/1 objects;
    - ``builtins.getattr(<class>, '<identifier>')``: an attribute lookup on a class (the
      call of its result is judged separately, against :data:`INERT_CLASSMETHODS`).
    """
    args = call.args
    if qualified == "copyreg._reconstructor":
        if isinstance(args, tuple) and len(args) == 3:
            cls, base, _state = args
            if (
                isinstance(cls, Global)
                and not cls.dynamic
                and isinstance(base, Global)
                and base.qualified in _PLAIN_BASES
            ):
                return "protocol 0/1 object reconstruction with a plain builtin base"
        return None
    if qualified == "builtins.getattr":
        if _bound_method(call):
            return "a bound method of an object the file builds (obj.method pickles so)"
        target = getattr_target(call)
        owner = call.args[0] if target is not None else None
        # Only on an owner that is harmless itself: getattr(logging.os, 'system') is os.system,
        # and the result may be called without REDUCE (planted as a method, see checks).
        if (
            target is not None
            and isinstance(owner, Global)
            and danger_reason(owner.module, f"{owner.name}.{target[1]}") is None
        ):
            return f"attribute lookup {target[0]}.{target[1]}"
    return typing_construct(qualified, call)


def is_literal_args(args: Any) -> bool:
    """True when args is a tuple of literals (what an Enum member lookup passes)."""
    return isinstance(args, tuple) and all(_is_literal(a) for a in args)
