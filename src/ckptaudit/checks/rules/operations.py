"""Forbidden operations (CKA203): what torch's unpickler refuses to do, whatever the allowlist.

Beyond names, torch's weights_only unpickler checks the runtime type of every object an opcode
acts on: APPEND/APPENDS only on lists; SETITEM/SETITEMS only on dict, OrderedDict and Counter;
BUILD (setting an object's state) only on Tensor, Parameter, OrderedDict and allowlisted
classes; REDUCE and NEWOBJ only of allowlisted globals; persistent ids only for tensor
storages. ckptaudit knows each object's runtime type from how the pickle builds it, so it
reports these breaches statically. Allowlisting a class does not lift them: a ``deque`` with
items is appended to, and no allowlist lets torch do that.

- **CKA203 forbidden-operation**: the operation, the type it acts on, and every object it
  acts on. Convert the object to a list, dict or tensor before saving. One case is the
  exception: a BUILD on a type the pickle never names (a numpy scalar's dtype class), which
  allowlisting that type does fix; it is reported with the remedy ``allowlist``, because
  torch's own ``get_unsafe_globals_in_checkpoint`` does not list it.
"""

from __future__ import annotations

from typing import Any

from ckptaudit.checks.context import CheckContext, UnitFacts
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.checks.shapes import shape_kind
from ckptaudit.checks.types import BUILD_ALWAYS, SETITEM_TYPES, runtime_type, type_repr
from ckptaudit.findings import Category, Kind, Remedy, Severity
from ckptaudit.pickle.describe import brief
from ckptaudit.pickle.nodes import Call, Global

__all__ = ["FORBIDDEN_OPERATION", "ForbiddenOperations"]

FORBIDDEN_OPERATION = Rule(
    code="CKA203",
    category=Category.FORBIDDEN_OPERATION,
    severity=Severity.INCOMPATIBLE,
    summary="The pickle performs an operation torch's unpickler forbids.",
    why="torch allows APPEND only on lists, SETITEM only on dict/OrderedDict/Counter, BUILD "
    "and NEWOBJ only on allowlisted types, and persistent ids only for storages; "
    "allowlisting the class does not lift these rules.",
    fix="Convert the object to a list, dict or tensor before saving.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)

_RULES_BY_OP = {
    "APPEND": "torch appends only to lists",
    "APPENDS": "torch extends only lists",
    "SETITEM": "torch sets items only on dict, OrderedDict and Counter",
    "SETITEMS": "torch sets items only on dict, OrderedDict and Counter",
    "BUILD": "torch builds only Tensor, Parameter, OrderedDict and allowlisted types",
}


class ForbiddenOperations(UnitCheck):
    """Apply torch's rules on the runtime types opcodes act on."""

    rules = (FORBIDDEN_OPERATION,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Judge calls, builds, appends, item sets and persistent ids of one unit."""
        self._calls(ctx, unit)
        self._events(ctx, unit)
        self._persids(ctx, unit)
        for offset in unit.result.undecodable:
            ctx.violate(
                unit, offset, "'utf-8' codec can't decode an 8-bit string (SHORT_BINSTRING)"
            )
            ctx.group(
                unit,
                Category.FORBIDDEN_OPERATION,
                "str8",
                message="an 8-bit string is not valid UTF-8; torch decodes it strictly and fails",
                kind=Kind.OPCODE,
                remedy=Remedy.RESAVE,
                hint="save again from Python 3 with protocol 2",
            ).add(None, offset)

    def _calls(self, ctx: CheckContext, unit: UnitFacts) -> None:
        for c in unit.result.calls:
            func = c.func
            # torch's rules for REDUCE and NEWOBJ on what is not an allowed global.
            if not isinstance(func, Global):
                if c.opcode == "REDUCE":
                    ctx.violate(
                        unit,
                        c.offset,
                        f"Trying to call reduce for unrecognized function {brief(func)}",
                    )
                elif c.opcode == "NEWOBJ":
                    ctx.violate(
                        unit,
                        c.offset,
                        "Can only create new object for nn.Parameter or classes allowlisted "
                        f"via `add_safe_globals` but got {brief(func)}",
                    )
            if c.builds:
                self._build(ctx, unit, c, c.build_offset or c.offset)

    def _events(self, ctx: CheckContext, unit: UnitFacts) -> None:
        for e in unit.result.events:
            t = runtime_type(e.target)
            if e.op in ("APPEND", "APPENDS"):
                if t == "builtins.list":
                    continue
                verb = "append to" if e.op == "APPEND" else "extend"
                ctx.violate(unit, e.offset, f"Can only {verb} lists, but got {type_repr(t)}")
                self._forbidden(ctx, unit, e.op, e.target, t, e.offset)
            elif e.op in ("SETITEM", "SETITEMS"):
                if t in SETITEM_TYPES:
                    continue
                ctx.violate(
                    unit,
                    e.offset,
                    f"Can only {e.op} for dict, collections.OrderedDict, collections.Counter, "
                    f"but got {type_repr(t)}",
                )
                self._forbidden(ctx, unit, e.op, e.target, t, e.offset)
            elif e.op == "BUILD":
                self._build(ctx, unit, e.target, e.offset)
            # ADDITEMS exists only in protocol 4+: the unsupported opcode is the finding.

    def _persids(self, ctx: CheckContext, unit: UnitFacts) -> None:
        for p in unit.result.persids:
            pid = p.pid
            first = pid[0] if type(pid) is tuple and pid else None
            if isinstance(first, bytes):
                first = first.decode("ascii", "replace")
            if p.opcode == "BINPERSID" and type(pid) is tuple and first == "storage":
                continue
            if p.opcode == "BINPERSID":
                ctx.violate(
                    unit,
                    p.offset,
                    "Only persistent_load of storage is allowed, but got " + brief(first),
                )
            ctx.group(
                unit,
                Category.FORBIDDEN_OPERATION,
                "persid",
                message="a persistent id that is not a tensor storage; torch allows only storages",
                kind=Kind.OPCODE,
                remedy=Remedy.CONVERT,
                opcode=p.opcode,
            ).add(p, p.offset)

    def _build(self, ctx: CheckContext, unit: UnitFacts, target: Any, offset: int) -> None:
        t = runtime_type(target)
        policy = ctx.policy
        if t is not None and (
            t in BUILD_ALWAYS or t in policy.allowed_classes or t in policy.extra_allowed
        ):
            return
        ctx.violate(
            unit,
            offset,
            lambda: (
                "Can only build Tensor, Parameter, OrderedDict or types allowlisted via "
                f"`add_safe_globals`, but got {type_repr(t)}"
            ),
        )
        if (
            isinstance(target, Call)
            and isinstance(target.func, Global)
            and t in (target.func.qualified, *ctx.unsafe_named)
        ):
            return  # an instance of a global already reported: allowlisting it fixes BUILD
        if t is not None and not t.startswith("builtins."):
            # A type the pickle never names (np.dtype('f8') is a Float64DType): torch's
            # get_unsafe_globals_in_checkpoint misses it, but it must be allowlisted too.
            ctx.unsafe.add(t)
            ctx.group(
                unit,
                Category.FORBIDDEN_OPERATION,
                ("BUILD", t),
                global_name=t,
                message=f"BUILD on a {t} object: torch builds only allowlisted types, and this "
                "type is never named in the pickle (so torch's get_unsafe_globals_in_checkpoint "
                "does not list it)",
                kind=shape_kind(target),
                remedy=Remedy.ALLOWLIST,
                opcode="BUILD",
            ).add(target, offset)
            return
        self._forbidden(ctx, unit, "BUILD", target, t, offset)

    @staticmethod
    def _forbidden(
        ctx: CheckContext, unit: UnitFacts, op: str, target: Any, t: str | None, offset: int
    ) -> None:
        label = t or "an object of unknown type"
        if t is not None and not t.startswith("builtins."):
            ctx.convert.setdefault(t, f"it is the target of {op}, which torch forbids on it")
        ctx.group(
            unit,
            Category.FORBIDDEN_OPERATION,
            (op, t),
            global_name=t if t and not t.startswith("builtins.") else None,
            message=f"{op} on {label}: {_RULES_BY_OP[op]}, even when the class is allowlisted",
            kind=Kind.CONTAINER if op != "BUILD" else shape_kind(target),
            remedy=Remedy.CONVERT,
            opcode=op,
        ).add(target, offset)
