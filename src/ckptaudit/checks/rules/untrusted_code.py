"""Untrusted code (CKA304): packages outside the known pool that loading would import and run.

Every global a pickle names is imported by a full unpickler, and importing a module runs its
code; calling a class from it (an Enum lookup, a dataclass, a whole ``nn.Module``) runs more.
ckptaudit judges the standard library and torch's install closure call by call, but it does
not know a user's ``mylib`` or a library such as ultralytics: it cannot say that their code is
harmful, and must not say that it is safe. So a file that names them does not pass silently:
this rule lists, per top-level package, the globals that loading would import, with every
place their objects sit. A file whose verdict is otherwise ``compatible`` (the user allowlisted
a class) still carries the finding: even ``torch.load(weights_only=True)`` imports an
allowlisted class's module and calls its ``__setstate__``.

- **CKA304 untrusted-code**: the packages whose code a full load runs. Review (trust) them, or
  store plain data instead of their objects; ``--trust PACKAGE`` marks a package as reviewed,
  and ``--fail-on untrusted`` makes any remaining one fail the run.
"""

from __future__ import annotations

from dataclasses import replace

from ckptaudit.checks.context import CheckContext, Group, UnitFacts
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.findings import Category, Finding, Kind, Remedy, Severity
from ckptaudit.policy.closure import is_known_pool, top_package
from ckptaudit.policy.dangerous import danger_reason

__all__ = ["UNTRUSTED_CODE", "UntrustedCode"]

UNTRUSTED_CODE = Rule(
    code="CKA304",
    category=Category.UNTRUSTED_CODE,
    severity=Severity.UNTRUSTED,
    summary="Loading the file imports and runs code outside the standard library and torch.",
    why="ckptaudit judges the known pool call by call; other packages are not known to be "
    "harmful or safe, so what a full load would trust is listed instead of guessed.",
    fix="Review the packages (then --trust them), or store plain data instead of their objects.",
    doc=__doc__ or "",
    module=__name__,
    cwe=502,
    tags=("security",),
)


class UntrustedCode(UnitCheck):
    """List, per top-level package, the globals outside the known pool."""

    rules = (UNTRUSTED_CODE,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Record every global whose module is outside the known pool and not catalogued."""
        calls_by_func = unit.calls_by_func
        trusted = ctx.policy.trusted_packages
        for g in unit.result.globals:
            if g.dynamic or is_known_pool(g.module):
                continue
            package = top_package(g.module)
            if package in trusted or danger_reason(g.module, g.name) is not None:
                continue  # reviewed by the user; or dangerous, which CKA301 says
            grp = ctx.group(
                unit,
                Category.UNTRUSTED_CODE,
                package,
                global_name=package,
                message=f"loading imports and runs code of {package}",
                kind=Kind.REFERENCE,
                remedy=Remedy.REVIEW,
                hint=f"review {package} before loading without weights_only (then "
                f"--trust {package}), or store plain data instead of its objects",
            )
            grp.names.add(g.qualified)
            for node in calls_by_func.get(id(g)) or (g,):
                grp.add(node, g.offset)

    def refine(self, ctx: CheckContext, group: Group, finding: Finding) -> Finding:
        """Name the globals of the package the file uses."""
        names = sorted(group.names)
        shown = ", ".join(names[:8]) + (f", and {len(names) - 8} more" if len(names) > 8 else "")
        return replace(finding, message=f"{finding.message}: {shown}")
