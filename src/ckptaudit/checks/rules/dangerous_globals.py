"""Dangerous globals (CKA301): names that execute code, import, or reach the system.

A pickle can name any importable ``module.name``, and a full unpickler (``pickle.load``,
``torch.load(weights_only=False)``, ``numpy.load(allow_pickle=True)``) imports it and may call
it: ``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``runpy._run_code``. The catalog in
:mod:`ckptaudit.policy.dangerous` lists such names, each with its reason. A catalogued global is
reported whatever the allowlist says, with two exceptions. A name the callables table
describes (an Enum such as ``signal.Signals``, an exception, a sentinel such as
``inspect._empty``) is judged by what it is, not by its module's entry. And where the pickle
uses a catalogued callable in a pattern shown to be benign by its arguments alone (a
``getattr`` of a class attribute, a typing union), it is only noted that allowlisting it would
open the door.

- **CKA301 dangerous-global**: a catalogued global, with every place it is used. Do not load
  the file without ``weights_only`` and never allowlist the global.
"""

from __future__ import annotations

from ckptaudit.checks.context import CheckContext, UnitFacts
from ckptaudit.checks.patterns import ABSORBING_CALLEES, absorbed_references, benign_pattern
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.findings import Category, Kind, Remedy, Severity
from ckptaudit.pickle.nodes import Global
from ckptaudit.policy.callables import INERT, value_class
from ckptaudit.policy.dangerous import danger_reason

__all__ = ["DANGEROUS_GLOBAL", "DangerousGlobals"]

DANGEROUS_GLOBAL = Rule(
    code="CKA301",
    category=Category.DANGEROUS_GLOBAL,
    severity=Severity.DANGEROUS,
    summary="The pickle names a global that can execute code or reach the system.",
    why="Loading the file without weights_only would let it run commands, import modules or "
    "touch files and the network.",
    fix="Do not load the file with weights_only=False and do not allowlist the global.",
    doc=__doc__ or "",
    module=__name__,
    cwe=502,
    tags=("security",),
)


class DangerousGlobals(UnitCheck):
    """Report every catalogued dangerous global not used in a benign pattern."""

    rules = (DANGEROUS_GLOBAL,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Judge each global the pickle names against the dangerous catalog."""
        policy = ctx.policy
        calls_by_func = unit.calls_by_func
        absorbed = self._absorbed(unit)
        for g in unit.result.globals:
            if g.dynamic:
                continue  # a computed name: the unsafe-call rule reports it
            q = g.qualified
            if q in policy.allowed or _described(q):
                continue
            reason = danger_reason(g.module, g.name)
            if reason is None:
                continue
            uses = calls_by_func.get(id(g), [])
            benign = [benign_pattern(q, c) for c in uses]
            harmless = (uses and all(benign)) or (not uses and id(g) in absorbed)
            if harmless:
                use = f"benign use ({benign[0]})" if benign else "only passed as data"
                ctx.unwise.setdefault(q, f"{use}, but {reason}")
                continue
            grp = ctx.group(
                unit,
                Category.DANGEROUS_GLOBAL,
                q,
                global_name=q,
                message=f"{q}: {reason}",
                kind=Kind.CALLABLE,
                remedy=Remedy.NEVER,
                hint="do not load this file without weights_only; never allowlist this global",
            )
            for node in uses or (g,):
                grp.add(node, g.offset)

    @staticmethod
    def _absorbed(unit: UnitFacts) -> set[int]:
        """Globals a benign pattern passes as data (``operator.or_`` in a union of types)."""
        absorbed: set[int] = set()
        for c in unit.result.calls:
            func = c.func
            if (
                isinstance(func, Global)
                and func.qualified in ABSORBING_CALLEES
                and benign_pattern(func.qualified, c)
            ):
                absorbed.update(id(g) for g in absorbed_references(func.qualified, c))
        return absorbed


def _described(qualified: str) -> bool:
    """The callables table says what this name is (an Enum, an exception, a named tuple, or
    a vetted entry): judged by what it is, not by its module's catalog entry. Entries whose
    inertness depends on a pattern of arguments (getattr, copyreg._reconstructor) are not."""
    entry = INERT.get(qualified)
    if entry is not None:
        return entry.pattern is None
    kind = value_class(qualified)
    # A plain class is inert only where NEWOBJ creates it; calling one runs its __init__.
    return kind is not None and kind != "plain"
