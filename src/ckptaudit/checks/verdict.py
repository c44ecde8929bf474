"""The verdict of a file: from its findings and torch's first failure to a status."""

from __future__ import annotations

from collections.abc import Iterable

from ckptaudit.findings import Finding, Severity, Status

__all__ = ["status_of"]


def status_of(findings: Iterable[Finding], torch_loads: bool, complete: bool) -> Status:
    """The status of a file.

    ``dangerous`` wins over everything (a payload is a payload, readable or not); then
    ``error`` when part of the file could not be analysed; then whether torch loads it.

    Args:
        findings: every finding of the file.
        torch_loads: whether torch.load(weights_only=True) would succeed on what was read.
        complete: whether the container was read in full.
    """
    worst = max((f.severity for f in findings), default=None)
    if worst is Severity.DANGEROUS:
        return Status.DANGEROUS
    if worst is Severity.ERROR or not complete:
        return Status.ERROR
    return Status.COMPATIBLE if torch_loads else Status.INCOMPATIBLE
