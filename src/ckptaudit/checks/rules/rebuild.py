"""Tensor rebuilds (CKA205): tensors torch could not rebuild from what the file declares.

torch rebuilds each tensor from a storage record (``data/<key>`` in a zip, a storage after
the pickles in the legacy format) and a view on it (offset, size, stride). It fails when the
record is missing, when the record's size does not match the storage's element count and
type, or when a view reaches past the end of its storage. None of these needs the storage's
bytes: the sizes in the zip's central directory and the numbers in the pickle say it.

- **CKA205 rebuild-error**: the first tensor torch could not rebuild, with torch's reason.
  The file is damaged or hand-made; re-save it from the original objects.
"""

from __future__ import annotations

from ckptaudit.checks.context import CheckContext, FileFacts, TorchStep
from ckptaudit.checks.registry import FileCheck, Rule, Stage
from ckptaudit.findings import Category, ContainerFormat, Remedy, Severity
from ckptaudit.formats.interface import Container
from ckptaudit.pickle.nodes import PersId
from ckptaudit.structure import tensor_problem

__all__ = ["REBUILD_ERROR", "TensorRebuilds", "storage_problems"]

REBUILD_ERROR = Rule(
    code="CKA205",
    category=Category.REBUILD_ERROR,
    severity=Severity.INCOMPATIBLE,
    summary="A tensor cannot be rebuilt from what the checkpoint declares.",
    why="torch fails when a storage record is missing or a tensor reaches past its storage.",
    fix="The file is damaged or hand-made: re-save it from the original objects.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility", "reliability"),
)

_WITH_RECORDS = (ContainerFormat.TORCH_ZIP, ContainerFormat.TORCH_LEGACY)


def storage_problems(container: Container) -> list[str]:
    """Tensors torch could not rebuild: a missing record, one of the wrong size, a view past
    the end of its storage."""
    problems: list[str] = []
    if container.format in _WITH_RECORDS:
        for call in container.tensor_rebuilds():
            if call.func.qualified != "torch._utils._rebuild_tensor_v2":
                continue
            storage = call.args[0] if type(call.args) is tuple and call.args else None
            pid = storage.pid if isinstance(storage, PersId) else None
            if type(pid) is tuple and len(pid) > 5 and pid[5] is not None:
                continue  # a legacy storage view: its own size applies
            problem = tensor_problem(call)
            if problem:
                problems.append(problem)
                break
    records = container.storage_records
    if records is None:
        return problems
    for ref in container.storages().values():
        size = records.get(ref.key.lower())
        if size is None:
            problems.append(
                f"PytorchStreamReader failed locating file data/{ref.key}: file not found"
            )
        elif ref.dtype != "unknown" and size != ref.nbytes:
            problems.append(
                f"record size ({size} bytes) of data/{ref.key} does not match expected size "
                f"({ref.nbytes} bytes = {ref.numel} elements * {ref.element_size} "
                "bytes/element)"
            )
    return problems


class TensorRebuilds(FileCheck):
    """Report the first tensor torch could not rebuild."""

    rules = (REBUILD_ERROR,)
    stage = Stage.FILE

    def check_file(self, ctx: CheckContext, file: FileFacts) -> None:
        """Judge every tensor rebuild against its storage record."""
        container = file.container
        for problem in storage_problems(container)[:1]:
            # After the unit errors of the same reading step: torch reads the pickle first.
            ctx.torch_fails(TorchStep.READING, len(container.units), problem)
            ctx.add_finding(REBUILD_ERROR.finding(problem, remedy=Remedy.INSPECT))
