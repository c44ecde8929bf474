"""Run every registered check over one file and turn what they recorded into findings."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from ckptaudit.checks.context import CheckContext, FileFacts, Group, UnitFacts
from ckptaudit.checks.registry import (
    Check,
    FileCheck,
    Stage,
    UnitCheck,
    owner_of,
    registered_checks,
    rule_for,
)
from ckptaudit.checks.verdict import status_of
from ckptaudit.findings import ContainerFormat, Finding, Severity, Status
from ckptaudit.formats.interface import Container, PickleUnit
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.paths import locate
from ckptaudit.policy.hints import hint_for
from ckptaudit.policy.torch_policy import Policy

__all__ = ["CheckOutcome", "check_file", "check_units"]


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """What the checks concluded about one file."""

    findings: tuple[Finding, ...]
    """Every finding, worst first."""
    status: Status
    """The verdict."""
    weights_only_compatible: bool
    """Whether torch.load(weights_only=True) would succeed."""
    predicted_error: str | None
    """The first error torch would raise, as predicted; None when it loads."""
    error: str | None
    """Why (part of) the file could not be analysed; None when all of it was."""
    unsafe_globals: tuple[str, ...]
    """Sorted globals a user would have to allowlist."""
    dangerous_nodes: frozenset[int] = frozenset()
    """ids of the tree nodes behind dangerous findings (``ckptaudit migrate --sanitize``
    replaces exactly these); valid while the units' trees are alive."""


def check_file(file: FileFacts, policy: Policy, limits: Limits) -> CheckOutcome:
    """Judge one read file under a policy.

    Args:
        file: the file's name and its read container (pickle units in torch's reading order).
        policy: torch's weights_only policy (plus the user's allowlist).
        limits: caps on listed paths.

    Returns:
        The findings, worst first, and the verdict.
    """
    ctx = CheckContext(policy, limits)
    checks = [cls() for cls in registered_checks()]
    units = [UnitFacts(u) for u in file.container.units]
    unit_checks = [c for c in checks if isinstance(c, UnitCheck)]
    for check in checks:
        if isinstance(check, FileCheck) and check.stage is Stage.CONTAINER:
            check.check_file(ctx, file)
    for unit in units:  # unit by unit, in torch's reading order
        for unit_check in unit_checks:
            unit_check.check_unit(ctx, unit)
    for check in checks:
        if isinstance(check, FileCheck) and check.stage is Stage.FILE:
            check.check_file(ctx, file)
    findings = _group_findings(ctx, checks, units) + ctx.findings
    findings.sort(key=lambda f: (-f.severity, f.rule, f.offset or 0))
    first = ctx.first_violation
    loads = first is None and file.container.complete
    dangerous = frozenset(
        id(node)
        for grp in ctx.groups.values()
        if (grp.severity or rule_for(grp.category).severity) is Severity.DANGEROUS
        for node in grp.nodes
    )
    return CheckOutcome(
        findings=tuple(findings),
        status=status_of(findings, loads, file.container.complete),
        weights_only_compatible=loads,
        predicted_error=first.message if first is not None else None,
        error="; ".join(ctx.errors) if ctx.errors else None,
        unsafe_globals=tuple(sorted(ctx.unsafe)),
        dangerous_nodes=dangerous,
    )


def check_units(units: Iterable[PickleUnit], policy: Policy, limits: Limits) -> CheckOutcome:
    """Judge some pickle units on their own, outside any container (the pickles of one part
    of a file: what migration converts, a nested storage)."""
    container = Container(format=ContainerFormat.PICKLE, units=list(units))
    return check_file(FileFacts("<pickle units>", container), policy, limits)


def _group_findings(
    ctx: CheckContext, checks: list[Check], units: list[UnitFacts]
) -> list[Finding]:
    """Locate every occurrence in the trees and turn the groups into findings."""
    wanted: dict[int, list[Hashable]] = {}
    for key, grp in ctx.groups.items():
        for node in grp.nodes:
            wanted.setdefault(id(node), []).append(key)
    paths: dict[Hashable, list[str]] = {}
    counts: dict[Hashable, int] = {}
    reached: set[int] = set()
    for unit in units:
        if unit.result.root is None:
            continue
        found, counted, got = locate(unit.result.root, wanted, ctx.limits.max_paths)
        reached |= got
        for key, listed in found.items():
            paths.setdefault(key, []).extend(listed)
        for key, n in counted.items():
            counts[key] = counts.get(key, 0) + n
    by_type = {type(c): c for c in checks}
    findings = []
    for key, grp in ctx.groups.items():
        finding = _finding(ctx, key, grp, paths, counts, reached)
        finding = by_type[owner_of(grp.category)].refine(ctx, grp, finding)
        if ctx.pickles_moot and finding.severity is Severity.INCOMPATIBLE:
            continue  # torch refuses the file before reading any pickle
        findings.append(finding)
    return findings


def _finding(
    ctx: CheckContext,
    key: Hashable,
    grp: Group,
    paths: dict[Hashable, list[str]],
    counts: dict[Hashable, int],
    reached: set[int],
) -> Finding:
    r = rule_for(grp.category)
    max_paths = ctx.limits.max_paths
    listed = list(paths.get(key, []))[:max_paths]
    unreached = [node for node in grp.nodes if id(node) not in reached]
    for node in unreached[: max(max_paths - len(listed), 0)]:
        offset = getattr(node, "offset", None)
        where = f" (built at byte {offset})" if offset is not None else ""
        listed.append(f"<not reachable from root{where}>")
    # Objects: every place they sit plus those built but unreachable. Opcode-level
    # findings (no nodes) keep the count they gathered.
    count = counts.get(key, 0) + len(unreached) if grp.nodes else grp.count
    kind, hint = grp.kind, grp.hint
    if hint is None:
        kind, hint = hint_for(grp.global_name, kind)
    return Finding(
        rule=r.code,
        category=r.category,
        severity=grp.severity or r.severity,
        global_name=grp.global_name,
        kind=kind,
        remedy=grp.remedy,
        message=grp.message,
        hint=hint or "",
        count=count,
        paths=tuple(listed),
        offset=grp.offset,
        member=grp.member,
        opcode=grp.opcode,
    )
