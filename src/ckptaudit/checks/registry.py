"""Rules and the checks that apply them: each check registers itself by subclassing.

A rule module (one per rule family, under :mod:`ckptaudit.checks.rules`) defines its
:class:`Rule` objects, with the module docstring as their documentation page, and one
:class:`UnitCheck` or :class:`FileCheck` subclass that emits their findings. Defining the
subclass registers it; a second check for a rule, or a rule whose category another rule
already has, fails at import. The same rule objects feed the text output, SARIF ``rules[]``,
``ckptaudit explain`` and docs/rules.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ckptaudit.findings import Category, Finding, Kind, Remedy, Severity

if TYPE_CHECKING:
    from ckptaudit.checks.context import CheckContext, FileFacts, Group, UnitFacts

__all__ = [
    "RULES_DOC_URL",
    "Check",
    "FileCheck",
    "Rule",
    "Stage",
    "UnitCheck",
    "all_rules",
    "owner_of",
    "registered_checks",
    "rule_for",
]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One rule of the catalog."""

    code: str
    """Stable code, never reused: ``CKA201``. Hundreds group families: 1xx container format,
    2xx torch's weights_only rules, 3xx dangerous content, 4xx malformed input or limits."""
    category: Category
    """Short machine name: ``not-allowlisted``."""
    severity: Severity
    """Default severity of its findings."""
    summary: str
    """One line: what the rule detects."""
    why: str
    """Why it matters."""
    fix: str
    """How to fix it, in general."""
    doc: str
    """The documentation page of the rule's family (its module's docstring)."""
    module: str
    """The module that defines the rule and its check."""
    cwe: int | None = None
    """The CWE the rule's findings are instances of, if any (502: deserialization of
    untrusted data; 400: uncontrolled resource consumption)."""
    tags: tuple[str, ...] = ()
    """Labels for dashboards (SARIF ``properties.tags``): security, compatibility..."""

    @property
    def anchor(self) -> str:
        """The rule's anchor in docs/rules.md and the README (``cka201``)."""
        return self.code.lower()

    @property
    def help_uri(self) -> str:
        """Where the rule's documentation page is published."""
        return f"{RULES_DOC_URL}#{self.anchor}"

    def finding(
        self,
        message: str,
        *,
        member: str | None = None,
        remedy: Remedy = Remedy.INSPECT,
        hint: str | None = None,
        kind: Kind = Kind.FORMAT,
        offset: int | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        """A finding of this rule with no occurrence in the object tree (file-level)."""
        return Finding(
            rule=self.code,
            category=self.category,
            severity=severity or self.severity,
            global_name=None,
            kind=kind,
            remedy=remedy,
            message=message,
            hint=hint or self.fix,
            count=1,
            paths=(),
            offset=offset,
            member=member,
        )


class Stage(enum.IntEnum):
    """When a check runs; checks of one stage run in registration order."""

    CONTAINER = 0
    """On what the container reader found, before any pickle is judged."""
    UNITS = 1
    """On each pickle unit, in torch's reading order."""
    FILE = 2
    """On the whole file, after every unit was judged (may read the units' groups)."""


RULES_DOC_URL = "https://github.com/ckptaudit/ckptaudit/blob/main/docs/rules.md"
"""Where docs/rules.md (generated from the rule modules) is published; the one place to
change when the project's home moves."""

_CHECKS: list[type[Check]] = []
_BY_CODE: dict[str, Rule] = {}
_BY_CATEGORY: dict[Category, Rule] = {}
_OWNER: dict[Category, type[Check]] = {}


class Check:
    """Base of every check; subclassing registers the subclass and its rules."""

    rules: ClassVar[tuple[Rule, ...]] = ()
    """The rules whose findings this check emits."""
    stage: ClassVar[Stage]
    abstract: ClassVar[bool] = False
    """True on the bases checks derive from (set in the class body, not inherited)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return  # a base for checks, not a check
        if not cls.rules:
            raise TypeError(f"check {cls.__qualname__} declares no rules")
        if issubclass(cls, FileCheck) and cls.stage is Stage.UNITS:
            raise TypeError(f"file check {cls.__qualname__} cannot run in the unit stage")
        for r in cls.rules:
            if r.code in _BY_CODE or r.category in _BY_CATEGORY:
                raise TypeError(f"rule {r.code} ({r.category}) is registered twice")
        for r in cls.rules:
            _BY_CODE[r.code] = r
            _BY_CATEGORY[r.category] = r
            _OWNER[r.category] = cls
        _CHECKS.append(cls)

    def refine(self, ctx: CheckContext, group: Group, finding: Finding) -> Finding:
        """Adjust a finding built from one of this check's groups once every check ran."""
        return finding


class UnitCheck(Check):
    """A check run on every pickle unit of a file."""

    abstract = True
    stage = Stage.UNITS

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Record this check's findings and torch violations for one unit."""
        raise NotImplementedError


class FileCheck(Check):
    """A check run once per file, on the container or after the units."""

    abstract = True
    stage: ClassVar[Stage] = Stage.FILE

    def check_file(self, ctx: CheckContext, file: FileFacts) -> None:
        """Record this check's findings for the file."""
        raise NotImplementedError


def registered_checks() -> list[type[Check]]:
    """Every registered check, by stage, then in the order of ``RULE_MODULES``."""
    from ckptaudit.checks.rules import RULE_MODULES  # importing them registers the checks

    order = {m.__name__: i for i, m in enumerate(RULE_MODULES)}
    return sorted(_CHECKS, key=lambda c: (c.stage, order[c.__module__]))


def all_rules() -> list[Rule]:
    """Every rule, by code."""
    registered_checks()
    return sorted(_BY_CODE.values(), key=lambda r: r.code)


def rule_for(category: Category) -> Rule:
    """The rule of a category (``not-allowlisted`` -> CKA201)."""
    registered_checks()
    return _BY_CATEGORY[category]


def owner_of(category: Category) -> type[Check]:
    """The check that emits a category's findings."""
    registered_checks()
    return _OWNER[category]
