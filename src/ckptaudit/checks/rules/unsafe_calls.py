"""Unsafe calls (CKA302): a call site that runs known-pool code not shown to be inert.

A catalog of dangerous names leaks: gadgets in the standard library, numpy and torch run code
through ``__new__``, through lazy iterators a constructor later consumes, through finalizers
and hashing. So every call site a full unpickler would run is judged against the callables
table (:mod:`ckptaudit.policy.callables`), default-deny: in the standard library or torch's
install closure, a site is inert only when the table says so, for that kind of site and with
the arguments it declares. The call sites:

- a call (REDUCE, INST, OBJ) and a ``__new__`` (NEWOBJ, NEWOBJ_EX) of a global, of an
  attribute reached with ``getattr`` (``datetime.datetime.fromtimestamp``), of a bound method
  of an object the file built, of a class a legacy whole-model save names in its persistent
  ids; a call of anything else the file computed;
- BUILD, SETITEM(S), APPEND(S) and ADDITEMS on an instance (its ``__setstate__``,
  ``__setitem__``, ``append``...), and on a class, function or module itself, which rewrites
  it for the whole process;
- arguments a callable calls (``_rebuild_from_type_v2``) or keeps to call later (a
  ``defaultdict``'s factory, run by ``__missing__``); a mapping argument that is a global
  (``dict(G)`` calls ``G.keys()``); backward hooks installed on a rebuilt tensor; bytes that
  ``torch.storage._load_from_bytes`` would load but that the file computes;
- a callable planted in an object's state under a method name the unpickler or a constructor
  calls without REDUCE (``append``, ``__setstate__``, ``keys``...); a global whose name is
  computed at load time (STACK_GLOBAL of non-strings, EXT codes); a NEWOBJ that defines a class
  of the file's own.

Code outside the known pool is reported by CKA304 instead, and catalogued names by CKA301.

- **CKA302 unsafe-call**: one finding per callable (or per technique), with every place it is
  used. Do not load the file without ``weights_only``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ckptaudit.checks.callsites import Judgement, Tier
from ckptaudit.checks.context import CheckContext, UnitFacts
from ckptaudit.checks.patterns import benign_pattern, getattr_target
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.checks.types import (
    argument_at,
    is_tensor_rebuild,
    planted_hooks,
    planted_methods,
    runtime_type,
)
from ckptaudit.findings import Category, Kind, Remedy, Severity
from ckptaudit.formats.nested import literal_bytes
from ckptaudit.pickle.describe import brief
from ckptaudit.pickle.nodes import Call, Global, PDict, PersId, PSet
from ckptaudit.policy.callables import Site
from ckptaudit.policy.dangerous import danger_reason

__all__ = ["UNSAFE_CALL", "UnsafeCalls", "legacy_module_class"]

UNSAFE_CALL = Rule(
    code="CKA302",
    category=Category.UNSAFE_CALL,
    severity=Severity.DANGEROUS,
    summary="A call site runs standard-library or torch code not shown to be inert.",
    why="Known-dangerous lists leak: gadgets run code through __new__, lazy iterators, "
    "finalizers and hashing. Every call site in the known pool is judged, default-deny.",
    fix="Do not load the file with weights_only=False unless you know the callable.",
    doc=__doc__ or "",
    module=__name__,
    cwe=502,
    tags=("security",),
)

_SITE_OF_EVENT = {
    "BUILD": Site.BUILD,
    "SETITEM": Site.SETITEM,
    "SETITEMS": Site.SETITEM,
    "APPEND": Site.APPEND,
    "APPENDS": Site.APPEND,
    "ADDITEMS": Site.APPEND,
}
_GETATTR = "builtins.getattr"
_PARTIAL = frozenset({"functools.partial", "_functools.partial"})


def legacy_module_class(pid: PersId) -> Any:
    """The class in a legacy whole-model save's persistent id ('module', cls, file, source):
    torch's legacy loader returns it, so the pickle uses it as that class."""
    value = pid.pid
    if type(value) is tuple and len(value) == 4:
        kind = value[0]
        if kind == "module" or kind == b"module":
            return value[1]
    return None


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


def _split(type_name: str, node: Any) -> tuple[str, str]:
    """(qualified, module) of a runtime type: the callee's own module when the type is it."""
    if isinstance(node, Call) and isinstance(node.func, Global) and (
        node.func.qualified == type_name
    ):
        return type_name, node.func.module
    return type_name, type_name.rsplit(".", 1)[0]


class UnsafeCalls(UnitCheck):
    """Judge every call site a full unpickler would run, default-deny in the known pool."""

    rules = (UNSAFE_CALL,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Record each call site whose code is in the known pool and not shown inert."""
        self._dynamic_globals(ctx, unit)
        for c in unit.result.calls:
            self._call(ctx, unit, c)
            if c.builds:
                self._mutation(ctx, unit, Site.BUILD, "BUILD", c, c.build_offset or c.offset)
        for e in unit.result.events:
            self._mutation(ctx, unit, _SITE_OF_EVENT[e.op], e.op, e.target, e.offset)

    # -- calls ------------------------------------------------------------------------------

    def _call(self, ctx: CheckContext, unit: UnitFacts, c: Call) -> None:
        if c.state is not None or c.kwargs is not None or argument_at(c, "state") is not None:
            self._planted(ctx, unit, c)
        if planted_hooks(c) is not None:
            self._deferred(ctx, unit, c, "backward hooks of a tensor, run at .backward()")
        mapping = argument_at(c, "mapping")
        if isinstance(mapping, Global):
            self._keys_of_global(ctx, unit, c, mapping)
        new = c.opcode in ("NEWOBJ", "NEWOBJ_EX")
        func = c.func
        if isinstance(func, PersId):
            func = legacy_module_class(func) or func
        if new and (_makes_class(c) or not isinstance(func, Global)):
            self._unsafe_creation(ctx, unit, c)
            return
        self._judge_callee(ctx, unit, c, func, Site.NEW if new else Site.CALL)

    def _judge_callee(
        self,
        ctx: CheckContext,
        unit: UnitFacts,
        c: Call,
        func: Any,
        site: Site,
        reached_through: str | None = None,
    ) -> None:
        """Report a call of anything the tables do not show to be inert here."""
        if isinstance(func, Global):
            if func.dynamic:
                return  # reported with the dynamic global
            judgement = ctx.judge(func.qualified, func.module, site)
            label = func.qualified
        elif isinstance(func, Call):
            named = self._computed_name(func)
            if isinstance(named, Global):  # a partial: calling it calls what it binds
                self._judge_callee(ctx, unit, c, named, Site.CALL, reached_through)
                return
            label = f"<result of {brief(func.func)}>"
            if named is None:
                why = f"the file calls a computed callable ({label})"
                self._report(ctx, unit, c, label, why, reached_through)
                return
            qualified, module = named
            judgement = ctx.judge(qualified, module, site)
            if judgement.tier is Tier.CATALOGUED:
                # The catalog flags the global; here a call runs what the file reached.
                why = f"the file calls {qualified}: {judgement.reason}"
                self._report(ctx, unit, c, label, why, reached_through)
                return
            label = qualified
        else:
            return  # calling a literal fails in any unpickler; torch's rule covers it
        if judgement.tier is Tier.INERT:
            self._arguments(ctx, unit, c, label, judgement)
        elif judgement.tier is Tier.UNSAFE:
            verb = "creates" if site is Site.NEW else "calls"
            why = f"the file {verb} {label}: {judgement.reason}"
            self._report(ctx, unit, c, label, why, reached_through)
        # CATALOGUED: CKA301 reports the global; UNTRUSTED: CKA304 reports its package.

    @staticmethod
    def _computed_name(func: Call) -> tuple[str, str] | Global | None:
        """What a computed callable is, where the pickle shows it: an attribute of a global
        (``getattr(cls, 'name')``), a method of an object the file built, or a partial."""
        callee = func.func
        if not isinstance(callee, Global):
            return None
        if callee.qualified == _GETATTR:
            target = getattr_target(func)
            if target is not None:
                owner = func.args[0]
                assert isinstance(owner, Global)
                return f"{target[0]}.{target[1]}", owner.module
            args = func.args
            if type(args) is tuple and len(args) == 2 and isinstance(args[1], str):
                t = runtime_type(args[0]) if isinstance(args[0], Call) else None
                if t is not None:
                    qualified, module = _split(t, args[0])
                    return f"{qualified}.{args[1]}", module
            return None
        if callee.qualified in _PARTIAL and type(func.args) is tuple and func.args:
            bound = func.args[0]
            return bound if isinstance(bound, Global) else None
        return None

    def _arguments(
        self, ctx: CheckContext, unit: UnitFacts, c: Call, label: str, judgement: Judgement
    ) -> None:
        """The arguments an inert entry calls, keeps, or must see in a given shape."""
        entry = judgement.entry
        if entry is None:
            return
        if entry.pattern is not None and not benign_pattern(label, c):
            module, _, name = label.rpartition(".")
            if danger_reason(module, name) is None:  # catalogued ones are CKA301's
                why = f"{label} with arguments outside its inert pattern ({entry.reason})"
                self._report(ctx, unit, c, label, why, None)
        args = c.args if type(c.args) is tuple else ()
        if entry.creates is not None and len(args) > entry.creates:
            cls = args[entry.creates]
            if isinstance(cls, Global):
                self._judge_callee(ctx, unit, c, cls, Site.NEW, reached_through=label)
            elif not isinstance(cls, PersId):
                self._unsafe_creation(ctx, unit, c)
        if entry.invokes is not None and len(args) > entry.invokes:
            inner = args[entry.invokes]
            if not (isinstance(inner, Global) and is_tensor_rebuild(inner)):
                inner_args = args[entry.invokes + 2] if len(args) > entry.invokes + 2 else ()
                proxy = Call(inner, inner_args, None, "REDUCE", c.offset)
                self._judge_callee(ctx, unit, proxy, inner, Site.CALL, reached_through=label)
        if entry.deferred is not None and len(args) > entry.deferred:
            factory = args[entry.deferred]
            if factory is not None:
                proxy = Call(factory, (), None, "REDUCE", c.offset)
                self._judge_callee(
                    ctx, unit, proxy, factory, Site.CALL, reached_through=f"{label}'s factory"
                )
        if entry.nested is not None:
            payload = args[entry.nested] if len(args) > entry.nested else None
            if literal_bytes(payload) is None:
                why = (
                    f"{label} loads bytes the file computes at load time ({brief(payload)}): "
                    "they cannot be audited"
                )
                self._report(ctx, unit, c, label, why, None)

    # -- mutations --------------------------------------------------------------------------

    def _mutation(
        self, ctx: CheckContext, unit: UnitFacts, site: Site, op: str, target: Any, offset: int
    ) -> None:
        if isinstance(target, Global):
            self._mutates(ctx, unit, op, target.qualified, target, offset)
            return
        if (
            isinstance(target, Call)
            and isinstance(target.func, Global)
            and target.func.qualified == _GETATTR
        ):
            # getattr(torch, 'nn') is the module itself, not an object the file built.
            self._mutates(ctx, unit, op, brief(target), target, offset)
            return
        t = runtime_type(target)
        if t == "builtins.type":
            # type(x) and friends return a class: rewriting it is rewriting the class.
            self._mutates(ctx, unit, op, brief(target), target, offset)
            return
        if t is None or t.startswith("builtins.") or type(target) in (list, PDict, PSet):
            # An unknown type was judged where it was made; the builtins' methods are C code
            # that only stores data (or refuses: BUILD on a dict fails in every unpickler).
            return
        qualified, module = _split(t, target)
        judgement = ctx.judge(qualified, module, site)
        if judgement.tier is Tier.UNSAFE:
            why = f"{op} on a {qualified} runs its {site.value} code: {judgement.reason}"
            _never_load(ctx, unit, (site.value, qualified), target, offset, why, qualified)

    @staticmethod
    def _mutates(
        ctx: CheckContext, unit: UnitFacts, op: str, label: str, target: Any, offset: int
    ) -> None:
        """BUILD, SETITEM or APPEND on a class, function or module rather than on data.

        That rewrites the object for the whole process (a class's methods, a module's
        functions, a registry): pickle writes these opcodes only for objects it created.
        """
        message = (
            f"{op} on {label} itself: the file rewrites a class, function or module for the "
            "rest of the process (its methods may then run the file's callables)"
        )
        _never_load(ctx, unit, ("mutates", label), target, offset, message, label)

    # -- techniques -------------------------------------------------------------------------

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

    @staticmethod
    def _report(
        ctx: CheckContext,
        unit: UnitFacts,
        c: Call,
        label: str,
        why: str,
        reached_through: str | None,
    ) -> None:
        if reached_through:
            why += f", reached through {reached_through}, which calls it"
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
