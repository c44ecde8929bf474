"""What the checks take and give: pickle units, torch violations, results."""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptaudit.findings import Finding
from ckptaudit.pickle.vm import PickleResult

__all__ = ["CheckResult", "PickleUnit", "Violation"]


@dataclass(frozen=True)
class PickleUnit:
    """One pickle stream of a container, with what torch does with it."""

    member: str | None
    """Where it sits (zip member, legacy part); None for a plain pickle file."""
    result: PickleResult
    """What the emulator found."""
    torch_reads: bool = True
    """False for pickles torch.load never reads (extra zip members, bytes after STOP)."""
    order: int = 0
    """Position in torch's reading order."""
    nested: bool = False
    """A literal payload passed to a loader inside another pickle (pickle.loads(b'...'))."""


@dataclass(frozen=True, order=True)
class Violation:
    """A breach of torch's rules, ordered as torch would meet it."""

    order: int
    offset: int
    message: str = field(compare=False)
    member: str | None = field(compare=False, default=None)


@dataclass
class CheckResult:
    """What the checks concluded for a set of pickle units."""

    findings: list[Finding]
    violations: list[Violation]
    """The first breach of torch's rules in torch's reading order (empty if none)."""
    unsafe_globals: set[str]
    dangerous_nodes: frozenset[int] = frozenset()
    """ids of the tree nodes behind dangerous findings (``ckptaudit migrate --sanitize``
    replaces exactly these); valid while the units' trees are alive."""
