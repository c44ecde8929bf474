"""What the checks of one file share: the facts they read and what they record.

Checks read :class:`FileFacts` and :class:`UnitFacts` (never changing the pickle's nodes) and
record into a :class:`CheckContext`: findings grouped by (category, label, member), the first
breach of torch's rules in torch's reading order, analysis errors, and facts that one rule
learns and another needs (which globals allowlisting cannot fix, for example).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ckptaudit.checks.callsites import Judgement, judge_name
from ckptaudit.findings import Category, Finding, Kind, Remedy, Severity
from ckptaudit.formats.interface import Container, PickleUnit
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Call, Global
from ckptaudit.pickle.vm import PickleResult
from ckptaudit.policy.callables import Site
from ckptaudit.policy.torch_policy import Policy

__all__ = ["CheckContext", "FileFacts", "Group", "TorchStep", "UnitFacts", "Violation"]


class TorchStep(enum.IntEnum):
    """Where in torch.load a failure happens; earlier steps fail first."""

    BEFORE_UNPICKLING = 0
    """The container is refused before any pickle is read (zip records, tar, names)."""
    UNPICKLING = 1
    """The weights_only unpickler refuses an opcode, global or operation."""
    READING = 2
    """A pickle cannot be read at all, or a tensor cannot be rebuilt from its storage."""
    AFTER_UNPICKLING = 3
    """The container is refused after its first pickle was read."""


@dataclass(frozen=True, order=True)
class Violation:
    """A breach of torch's rules, ordered as torch would meet it."""

    step: TorchStep
    order: int
    offset: int
    message: str = field(compare=False)
    member: str | None = field(compare=False, default=None)


@dataclass(frozen=True)
class FileFacts:
    """The file being judged: its name and what its container reader found."""

    name: str
    """The path or URL, as given."""
    container: Container
    """The read container."""


class UnitFacts:
    """One pickle unit and the indices several checks read (computed once, on demand)."""

    def __init__(self, unit: PickleUnit) -> None:
        self.unit = unit
        self.result: PickleResult = unit.result
        self.member = unit.member

    @cached_property
    def calls_by_func(self) -> dict[int, list[Call]]:
        """Calls of each global, keyed by the global's identity."""
        found: dict[int, list[Call]] = {}
        for c in self.result.calls:
            if isinstance(c.func, Global):
                found.setdefault(id(c.func), []).append(c)
        return found


@dataclass
class Group:
    """Occurrences gathered for one finding."""

    category: Category
    member: str | None
    message: str
    global_name: str | None = None
    kind: Kind = Kind.UNKNOWN
    remedy: Remedy = Remedy.ALLOWLIST
    hint: str | None = None
    severity: Severity | None = None
    nodes: list[Any] = field(default_factory=list)
    node_ids: set[int] = field(default_factory=set)
    count: int = 0
    offset: int | None = None
    opcode: str | None = None
    names: set[str] = field(default_factory=set)
    """Globals gathered under this finding's label (a package's names)."""

    def add(self, node: Any, offset: int | None) -> None:
        """Add an occurrence (an object, or None for an opcode use) and its offset."""
        if node is not None:
            key = id(node)
            if key in self.node_ids:
                return
            self.node_ids.add(key)
            self.nodes.append(node)
        self.count += 1
        if offset is not None and (self.offset is None or offset < self.offset):
            self.offset = offset


class CheckContext:
    """What the checks of one file record, and the facts they share."""

    def __init__(self, policy: Policy, limits: Limits) -> None:
        self.policy = policy
        self.limits = limits
        self.groups: dict[Hashable, Group] = {}
        """Findings with occurrences in the object tree, by (category, label, member)."""
        self.findings: list[Finding] = []
        """Findings with no occurrence in the tree (container-level)."""
        self.first_violation: Violation | None = None
        self.errors: list[str] = []
        """Why (part of) the file could not be analysed."""
        self.unsafe: set[str] = set()
        """Globals a user would have to allowlist (torch's get_unsafe_globals_in_checkpoint,
        plus types BUILD needs that the pickle never names)."""
        self.unsafe_named: set[str] = set()
        """The globals among them that the pickle names."""
        self.convert: dict[str, str] = {}
        """Globals that allowlisting cannot fix, with the reason."""
        self.unwise: dict[str, str] = {}
        """Dangerous globals used benignly here: allowlisting works but opens the door."""
        self._judged: dict[tuple[str, str, Site], Judgement] = {}
        self.pickles_moot = False
        """torch refuses the file before reading any pickle (TorchScript): the pickles'
        incompatibilities change nothing, only what could harm another loader counts."""

    def group(
        self, unit: UnitFacts, category: Category, label: Hashable, **fields: Any
    ) -> Group:
        """Return the finding of (category, label) in a unit, made with ``fields`` the first time.

        One finding per (category, global or opcode) and pickle member, as the report promises.
        """
        key = (category, label, unit.member)
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = Group(category=category, member=unit.member, **fields)
        return found

    def violate(self, unit: UnitFacts, offset: int, message: str | Callable[[], str]) -> None:
        """Record a breach of torch's unpickler rules; only the first one torch meets is kept.

        ``message`` may be a callable, so that the 200,000th breach of an object-heavy
        pickle costs a comparison, not a formatted string.
        """
        if not unit.unit.torch_reads:
            return
        first = self.first_violation
        key = (TorchStep.UNPICKLING, unit.unit.order, offset)
        if first is not None and (first.step, first.order, first.offset) <= key:
            return
        text = message() if callable(message) else message
        self.first_violation = Violation(*key, text, unit.member)

    def torch_fails(
        self, step: TorchStep, order: int, message: str, member: str | None = None
    ) -> None:
        """Record a failure of torch.load outside the unpickler's rules.

        ``order`` places it among the failures of its step (the index of the container issue
        or of the unit it comes from), so that the first one torch meets is kept whichever
        check records it first.
        """
        candidate = Violation(step, order, 0, message, member)
        if self.first_violation is None or candidate < self.first_violation:
            self.first_violation = candidate

    def judge(self, qualified: str, module: str, site: Site) -> Judgement:
        """The tier of running ``qualified`` at a kind of call site (cached per file: a
        memoized global may be called millions of times)."""
        key = (qualified, module, site)
        found = self._judged.get(key)
        if found is None:
            found = self._judged[key] = judge_name(qualified, module, site, self.policy)
        return found

    def add_finding(self, finding: Finding) -> None:
        """Record a finding that has no occurrence in the object tree."""
        self.findings.append(finding)
