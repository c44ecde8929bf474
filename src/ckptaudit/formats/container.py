"""What a container reader hands to the audit: pickle units, container findings, facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptaudit.checks import PickleUnit
from ckptaudit.structure import StorageRef, storage_refs

__all__ = ["Container", "ContainerIssue"]


@dataclass(frozen=True)
class ContainerIssue:
    """A container-level problem, turned into a finding by the audit."""

    category: str
    """Rule category (``tar-format``, ``zip-anomaly``, ``malformed``...)."""
    message: str
    """What is wrong, for a person."""
    torch_error: str | None = None
    """The error torch.load raises because of it, if it fails because of it."""
    member: str | None = None
    """The member concerned, if any."""


@dataclass
class Container:
    """A read container: its pickles in torch's reading order, plus what else was learnt."""

    format: str
    """Detected format name."""
    units: list[PickleUnit] = field(default_factory=list)
    """Pickle streams to analyse (torch_reads=False for those torch never reads)."""
    issues: list[ContainerIssue] = field(default_factory=list)
    """Container-level problems."""
    storage_records: dict[str, int] | None = None
    """Lower-cased storage record key -> record size (zip: data/<key>); None if not applicable."""
    tensor_count: int | None = None
    """Tensor count, where the format states it (safetensors)."""
    complete: bool = True
    """False when part of the container could not be read."""
    error: str | None = None
    """Why the container could not be read in full."""
    _storages: dict[str, StorageRef] | None = field(default=None, repr=False)

    def storages(self) -> dict[str, StorageRef]:
        """Storages the pickles torch reads reference (first reference per key).

        Computed once, after the reader has added the pickles torch reads; pickles added
        later (extra members, nested payloads) are never read by torch and do not count.
        """
        if self._storages is None:
            self._storages = storage_refs(u.result for u in self.units if u.torch_reads)
        return self._storages
