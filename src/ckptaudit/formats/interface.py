"""What the container readers hand to the checks: pickle units, container issues, facts.

The types that cross the formats -> checks boundary live here and only here, so that the
checks depend on this module and never on a reader (pip-audit's ``_service/interface.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.pickle.nodes import Call
from ckptaudit.pickle.vm import PickleResult
from ckptaudit.structure import StorageRef, storage_refs, tensor_rebuild_calls

__all__ = ["Container", "ContainerIssue", "PickleUnit"]


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


@dataclass(frozen=True)
class ContainerIssue:
    """A container-level problem, turned into a finding by the container rules."""

    category: Category
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

    format: ContainerFormat
    """Detected format."""
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
    emulated_bytes: int = 0
    """Bytes the emulator ran for the whole file, every stream and reading counted."""
    emulated_opcodes: int = 0
    """Opcodes the emulator executed for the whole file."""
    _storages: dict[str, StorageRef] | None = field(default=None, repr=False)
    _rebuilds: list[Call] | None = field(default=None, repr=False)

    def storages(self) -> dict[str, StorageRef]:
        """Storages the pickles torch reads reference (first reference per key).

        Computed once, after the reader has added the pickles torch reads; pickles added
        later (extra members, nested payloads) are never read by torch and do not count.
        """
        if self._storages is None:
            self._storages = storage_refs(u.result for u in self.units if u.torch_reads)
        return self._storages

    def tensor_rebuilds(self) -> list[Call]:
        """The tensor-rebuilding calls of the pickles torch reads (computed once, like
        :meth:`storages`)."""
        if self._rebuilds is None:
            self._rebuilds = tensor_rebuild_calls(u.result for u in self.units if u.torch_reads)
        return self._rebuilds
