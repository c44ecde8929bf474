"""Unsafe calls (CKA302): the file makes a loader call something not shown to be inert.

A catalog of dangerous names leaks: every release of every library adds callables that run
code, and gadgets chain harmless-looking ones. So beyond the catalog, every call a full
unpickler would make is judged: a call (REDUCE, INST, OBJ, NEWOBJ_EX) of a callable that is
neither allowed by torch nor a catalogued inert data constructor; a call of a computed
callable (the result of another call); a global whose name is computed at load time; a
callable planted in an object's state under a method name the unpickler or a constructor
calls without REDUCE (``append``, ``__setstate__``, ``keys``...); a mapping argument that is a
global (``dict(G)`` calls ``G.keys()``); backward hooks installed on a rebuilt tensor; a NEWOBJ
that defines a class of the file's own; and BUILD, SETITEM or APPEND on a class, function or
module, which rewrites it for the whole process.

- **CKA302 unsafe-call**: one finding per callable (or per technique), with every place it is
  used. Do not load the file without ``weights_only`` unless you know the callable is
  harmless; then store plain data instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ckptaudit.checks.context import CheckContext, UnitFacts
from ckptaudit.checks.patterns import getattr_target
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.checks.shapes import is_enum_shape, is_mapping_subclass_shape
from ckptaudit.checks.types import (
    INVOKES_ARGUMENT,
    STATE_ARGUMENT,
    is_tensor_rebuild,
    planted_hooks,
    planted_methods,
    tabled_argument,
)
from ckptaudit.findings import Category, Kind, Remedy, Severity
from ckptaudit.pickle.describe import brief
from ckptaudit.pickle.nodes import Call, Global, PDict
from ckptaudit.policy.dangerous import danger_reason
from ckptaudit.policy.inert import INERT_CLASSMETHODS, is_inert_constructor

__all__ = ["UNSAFE_CALL", "UnsafeCalls"]

UNSAFE_CALL = Rule(
    code="CKA302",
    category=Category.UNSAFE_CALL,
    severity=Severity.DANGEROUS,
    summary="The pickle invokes a callable that is not shown to be an inert data constructor.",
    why="Known-dangerous lists leak; a call of an unknown or computed callable is how new "
    "gadgets run code.",
    fix="Do not load the file with weights_only=False unless you know the callable.",
    doc=__doc__ or "",
    module=__name__,
    cwe=502,
    tags=("security",),
)

_MAPPING_ARGUMENT = {
    "builtins.dict": 0,
    "collections.OrderedDict": 0,
    "collections.Counter": 0,
    "collections.defaultdict": 1,
    "copyreg._reconstructor": 2,
}
"""Data constructors that read a mapping argument through its ``keys()``."""


def _keys_argument(c: Call) -> Global | None:
    """The global passed where one of these constructors reads a mapping, if any."""
    mapping = tabled_argument(c, _MAPPING_ARGUMENT)
    return mapping if isinstance(mapping, Global) else None


def _makes_class(c: Call) -> bool:
    """NEWOBJ arguments shaped like a class statement: (name, bases, namespace)."""
    args = c.args
    return (
        type(args) is tuple
        and len(args) == 3
        and isinstance(args[0], str)
        and type(args[1]) is tuple
        and type(args[2]) is PDict
    )


def _is_getattr(call: Call) -> bool:
    return isinstance(call.func, Global) and call.func.qualified == "builtins.getattr"


class UnsafeCalls(UnitCheck):
    """Judge every call a full unpickler would make, and callables planted for later."""

    rules = (UNSAFE_CALL,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Record each call of something not shown to be an inert data constructor."""
        self._dynamic_globals(ctx, unit)
        self._calls(ctx, unit)
        for e in unit.result.events:
            if isinstance(e.target, Global):
                self._mutates_global(ctx, unit, e.op, e.target, e.offset)

    def _dynamic_globals(self, ctx: CheckContext, unit: UnitFacts) -> None:
        calls_by_func = unit.calls_by_func
        for g in unit.result.globals:
            if not g.dynamic:
                continue
            grp = ctx.group(
                unit,
                Category.UNSAFE_CALL,
                "dynamic",
                message=f"a global whose name is computed at load time ({g.opcode} "
                f"of {g.module!r}, {g.name!r}); nothing static can tell what it imports",
                kind=Kind.CALLABLE,
                remedy=Remedy.NEVER,
                hint="do not load this file without weights_only",
            )
            for node in calls_by_func.get(id(g)) or (g,):
                grp.add(node, g.offset)

    def _calls(self, ctx: CheckContext, unit: UnitFacts) -> None:
        for c in unit.result.calls:
            func = c.func
            if (
                c.state is not None
                or c.kwargs is not None
                or (isinstance(func, Global) and func.qualified in STATE_ARGUMENT)
            ):
                self._planted(ctx, unit, c)
            mapping = _keys_argument(c)
            if mapping is not None:
                self._keys_of_global(ctx, unit, c, mapping)
            if planted_hooks(c) is not None:
                self._deferred(ctx, unit, c, "backward hooks of a tensor, run at .backward()")
            # INST and OBJ call what they name even without arguments (pickle's instantiate);
            # only NEWOBJ creates without calling anything the file chose.
            if c.opcode in ("NEWOBJ", "NEWOBJ_EX"):
                if _makes_class(c) or not isinstance(func, Global):
                    self._unsafe_creation(ctx, unit, c)
                continue
            self._judge_callee(ctx, unit, c, func)
            # Allowed functions that call one of their arguments: judge that argument too.
            index = INVOKES_ARGUMENT.get(func.qualified) if isinstance(func, Global) else None
            if index is not None and type(c.args) is tuple and len(c.args) > index:
                inner = c.args[index]
                inner_args = c.args[index + 2] if len(c.args) > index + 2 else ()
                proxy = Call(inner, inner_args, None, "REDUCE", c.offset)
                if not isinstance(inner, Global) or not is_tensor_rebuild(inner):
                    self._judge_callee(ctx, unit, proxy, inner, reached_through=func.qualified)

    def _judge_callee(
        self,
        ctx: CheckContext,
        unit: UnitFacts,
        c: Call,
        func: Any,
        reached_through: str | None = None,
    ) -> None:
        """Report a call of anything not shown to be an inert data constructor."""
        policy = ctx.policy
        if isinstance(func, Global):
            if func.dynamic:
                return  # reported with the dynamic global
            q = func.qualified
            trusted = ctx.trusted_callees.get(q)
            if trusted is None:
                # Judged once per name: a memoized global may be called millions of times.
                trusted = ctx.trusted_callees[q] = (
                    q in policy.allowed
                    or q in policy.extra_allowed
                    or is_inert_constructor(q, func.module)
                    or danger_reason(func.module, func.name) is not None
                )
            if trusted or (
                reached_through is None
                and (is_enum_shape(c, func) or is_mapping_subclass_shape(c, func))
            ):
                return
            label = q
            why = f"the file calls {q}(...), which is not shown to be an inert data constructor"
        elif isinstance(func, Call):
            target = getattr_target(func) if _is_getattr(func) else None
            if target is not None and target in INERT_CLASSMETHODS:
                return
            inner = func.func.qualified if isinstance(func.func, Global) else "a computed value"
            label = f"{target[0]}.{target[1]}" if target else f"<result of {inner}>"
            why = f"the file calls a computed callable ({label})"
        else:
            return  # calling a literal fails in any unpickler; torch's rule covers it
        if reached_through:
            why += f", through {reached_through}, which calls its argument"
        _never_load(
            ctx,
            unit,
            label,
            c,
            c.offset,
            why,
            label,
            hint="do not load this file without weights_only unless you know this callable "
            "is harmless; then store plain data instead",
        )

    @staticmethod
    def _unsafe_creation(ctx: CheckContext, unit: UnitFacts, c: Call) -> None:
        """NEWOBJ that makes a class from the file's own namespace, or of a computed class.

        ``meta.__new__(meta, name, bases, namespace)`` turns a dict of the file's callables
        into dunder methods (``__del__``, ``__setstate__``) that then run by themselves; and
        the class of an ordinary object is always a global, never something the file built.
        """
        label = brief(c.func)
        what = (
            "with (name, bases, namespace): the file defines a class of its own"
            if _makes_class(c)
            else "(a class computed by the file)"
        )
        _never_load(ctx, unit, ("creates", label), c, c.offset, f"NEWOBJ of {label} {what}", label)

    @staticmethod
    def _keys_of_global(ctx: CheckContext, unit: UnitFacts, c: Call, mapping: Global) -> None:
        """dict(G), OrderedDict(G), defaultdict(f, G): CPython calls G.keys() and G[k]."""
        label = f"{mapping.qualified}.keys"
        message = (
            f"{brief(c.func)}({mapping.qualified}) calls {mapping.qualified}.keys(): "
            "a saved mapping is never a class or function"
        )
        _never_load(ctx, unit, ("keys", label), c, c.offset, message, label)

    @staticmethod
    def _deferred(ctx: CheckContext, unit: UnitFacts, c: Call, what: str) -> None:
        """A callable stored where torch or the user's code will call it later."""
        message = (
            f"the file installs {what}: torch.save never writes these, and whatever the file "
            "put there runs later in the user's process"
        )
        _never_load(ctx, unit, ("deferred", what), c, c.offset, message)

    @staticmethod
    def _planted(ctx: CheckContext, unit: UnitFacts, c: Call) -> None:
        """Methods the unpickler calls without REDUCE, set by the file on an object.

        APPEND calls ``obj.append``, BUILD ``obj.__setstate__`` (looked up on the instance),
        ``dict(obj)`` calls ``obj.keys``: a callable stored in an object's state under such
        a name is called as surely as by REDUCE. No saved object holds one.
        """
        planted = planted_methods(c)
        if c.builds > 1:
            # pickle never builds one object twice; a second BUILD calls whatever
            # __setstate__ the first one set.
            planted.append(("__setstate__", c.state))
        for name, value in planted:
            _never_load(
                ctx,
                unit,
                ("planted", name),
                c,
                c.build_offset or c.offset,
                f"the file sets the {name!r} attribute of an object to {brief(value)}; "
                "the unpickler or a constructor calls that method without REDUCE",
                brief(value),
                hint="do not load this file: no saved object carries its own methods",
            )

    @staticmethod
    def _mutates_global(
        ctx: CheckContext, unit: UnitFacts, op: str, target: Global, offset: int
    ) -> None:
        """BUILD, SETITEM or APPEND on a class, function or module rather than on data.

        That rewrites the object for the whole process (a class's methods, a module's
        functions, a registry): pickle writes these opcodes only for objects it created.
        """
        label = target.qualified
        message = (
            f"{op} on {label} itself: the file rewrites a class, function or module for the "
            "rest of the process (its methods may then run the file's callables)"
        )
        _never_load(ctx, unit, ("mutates", label), target, offset, message, label)


def _never_load(
    ctx: CheckContext,
    unit: UnitFacts,
    key: Hashable,
    node: Any,
    offset: int,
    message: str,
    global_name: str | None = None,
    hint: str = "do not load this file without weights_only",
) -> None:
    """Record one occurrence of an unsafe call that no saved object explains."""
    ctx.group(
        unit,
        Category.UNSAFE_CALL,
        key,
        global_name=global_name,
        message=message,
        kind=Kind.CALLABLE,
        remedy=Remedy.NEVER,
        hint=hint,
    ).add(node, offset)
