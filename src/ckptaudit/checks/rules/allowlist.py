"""torch's allowlist (CKA201-CKA202): globals the weights_only unpickler refuses by name.

Every GLOBAL opcode names a ``module.name`` that the unpickler must import. torch's weights_only
unpickler looks the name up in its allowlist (its defaults, plus whatever the user added with
``torch.serialization.add_safe_globals`` or the ``safe_globals`` context manager) and stops at
the first name that is not there: ``Unsupported global: GLOBAL collections.deque was not an
allowed global by default``. ckptaudit lists every such name at once, with every path in the
object tree where one of its objects sits, what the object looks like (an Enum, a dataclass, a
whole ``nn.Module``...), and what to store instead.

- **CKA201 not-allowlisted**: a global outside the allowlist. Its remedy says whether
  allowlisting it would be enough (``allowlist``) or the object must be converted
  (``convert``: torch would still refuse an operation on it, or the global is unwise to allow).
- **CKA202 blocked-module**: a global of a module torch refuses even when allowlisted (``sys``,
  ``os``, ``posix``, ``nt``): no allowlist can make torch load it.
"""

from __future__ import annotations

from dataclasses import replace

from ckptaudit.checks.context import CheckContext, Group, UnitFacts
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.checks.shapes import shape_kind
from ckptaudit.checks.types import torch_global_name
from ckptaudit.findings import Category, Finding, Kind, Remedy, Severity
from ckptaudit.pickle.nodes import Global
from ckptaudit.policy.hints import NEEDS_CONVERSION, hint_for

__all__ = ["BLOCKED_MODULE", "NOT_ALLOWLISTED", "TorchAllowlist"]

NOT_ALLOWLISTED = Rule(
    code="CKA201",
    category=Category.NOT_ALLOWLISTED,
    severity=Severity.INCOMPATIBLE,
    summary="The pickle names a global that torch's weights_only unpickler does not allow.",
    why="torch.load(weights_only=True) stops at the first such global.",
    fix="Convert the object to primitives/tensors, or allowlist it with "
    "torch.serialization.add_safe_globals if the remedy is 'allowlist'.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)
BLOCKED_MODULE = Rule(
    code="CKA202",
    category=Category.BLOCKED_MODULE,
    severity=Severity.INCOMPATIBLE,
    summary="The pickle names a global from a module torch never allows (sys, os, posix, nt).",
    why="No allowlist can make torch load it.",
    fix="Remove it from what is saved.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)


class TorchAllowlist(UnitCheck):
    """Judge every global the pickle names against torch's allowlist and blocked modules."""

    rules = (NOT_ALLOWLISTED, BLOCKED_MODULE)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Record each global torch would refuse, and the first refusal torch meets."""
        policy = ctx.policy
        calls_by_func = unit.calls_by_func
        for g in unit.result.globals:
            if g.dynamic:
                continue  # a computed name: the unsafe-call rule reports it
            q = g.qualified
            if not policy.is_allowed(q):
                ctx.unsafe.add(q)
                ctx.unsafe_named.add(q)
            if g.opcode == "GLOBAL":
                self._torch_global(ctx, unit, g)
            if policy.is_allowed(q):
                continue
            if policy.is_blocked(g.module):
                grp = ctx.group(
                    unit,
                    Category.BLOCKED_MODULE,
                    q,
                    global_name=q,
                    message=f"{q} is in module {g.module}, which torch never allows",
                    kind=Kind.CALLABLE,
                    remedy=Remedy.NEVER,
                    hint="remove it from what is saved",
                )
            else:
                grp = ctx.group(
                    unit,
                    Category.NOT_ALLOWLISTED,
                    q,
                    global_name=q,
                    message=f"{q} is not an allowed global for torch's weights_only unpickler",
                )
            for node in calls_by_func.get(id(g)) or (g,):
                grp.add(node, g.offset)

    @staticmethod
    def _torch_global(ctx: CheckContext, unit: UnitFacts, g: Global) -> None:
        """The error torch's GLOBAL raises for this name, if any."""
        policy = ctx.policy
        q = g.qualified
        if policy.is_blocked(g.module):
            ctx.violate(
                unit,
                g.offset,
                f"Trying to load unsupported GLOBAL {q} whose module {g.module} is blocked.",
            )
        elif policy.is_allowed(q):
            return
        elif q in policy.special_error_globals:
            what = (
                "``torch.distributed.tensor`` must be imported to load DTensors"
                if q.startswith("torch.distributed")
                else "``torch.nested`` and ``torch._dynamo`` must be imported to load nested "
                "jagged tensors (NJTs)"
            )
            ctx.violate(unit, g.offset, what)
        else:
            name = torch_global_name(q)
            ctx.violate(
                unit,
                g.offset,
                f"Unsupported global: GLOBAL {name} was not an allowed global by default. "
                f"Please use `torch.serialization.add_safe_globals([{name}])` or the "
                f"`torch.serialization.safe_globals([{name}])` context manager to allowlist "
                "this global if you trust this class/function.",
            )

    def refine(self, ctx: CheckContext, group: Group, finding: Finding) -> Finding:
        """Say what the object is and whether allowlisting its global would be enough."""
        if group.category is not Category.NOT_ALLOWLISTED:
            return finding
        q = group.global_name
        kind, hint = hint_for(q, shape_kind(group.nodes[0]) if group.nodes else Kind.UNKNOWN)
        if q in ctx.convert:
            remedy = Remedy.CONVERT
            hint = f"{hint} (allowlisting cannot work: {ctx.convert[q or '']})"
        elif q in NEEDS_CONVERSION or q in ctx.unwise:
            remedy = Remedy.CONVERT
            why = NEEDS_CONVERSION.get(q or "") or ctx.unwise.get(q or "", "")
            hint = f"{hint} (do not allowlist it, though torch would accept it: {why})"
        else:
            remedy = Remedy.ALLOWLIST
        message = finding.message
        if kind is not Kind.UNKNOWN:
            message = f"{message} ({kind.value})"
        return replace(finding, kind=kind, remedy=remedy, hint=hint or "", message=message)
