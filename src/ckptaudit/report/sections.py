"""The four-section report of the original plan's audit script (scripts/checkpoint_audit.py).

1. whether ``weights_only=True`` succeeds, in the plan's words (``SUCCESS - checkpoint is
already compatible!`` or ``FAILED: <error>``), the error being torch's own with
``--torch-check`` and ckptaudit's prediction, labelled so, otherwise; 2. what the checkpoint
contains; 3. every compatibility issue, one line each (path, type, conversion), counted as
every other output counts them; 4. the top-level structure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptaudit.findings import FileReport, Status
from ckptaudit.report.text import torch_answer, unreadable

if TYPE_CHECKING:
    from ckptaudit.torch_oracle import TorchCheck

__all__ = ["FAILED", "SUCCESS", "render_sections"]

SUCCESS = "SUCCESS - checkpoint is already compatible!"
"""Section 1 when the checkpoint loads (the plan's words)."""
FAILED = "FAILED: "
"""Section 1's prefix when it does not, before the error (the plan's words)."""

_PATHS_SHOWN = 20


def render_sections(report: FileReport, check: TorchCheck | None = None) -> str:
    """Render one report in the four numbered sections.

    ``check`` is torch's own answer (``--torch-check``); without it, section 1 gives
    ckptaudit's prediction of torch's first error, labelled as predicted.
    """
    out: list[str] = [f"Checkpoint audit: {report.path}", ""]
    out.append("=== 1. weights_only=True load test ===")
    answer = torch_answer(report, check)
    loads = report.weights_only_compatible if check is None or not check.ran else not check.error
    if loads:
        out.append(SUCCESS)
    elif unreadable(report):
        out.append(f"{FAILED}{report.error}")
    elif answer is not None:
        _, text = answer
        error = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
        out.append(f"{FAILED}{error[0]}")
        out.extend(f"    {line.strip()}" for line in error[1:])
        if check is not None and check.ran:
            out.append(
                f"(torch {check.torch_version}'s own error: its weights_only unpickler over the "
                "file's pickle; storages not read)"
            )
        else:
            why = f"; torch check not run: {check.note}" if check is not None else ""
            out.append(
                f"(predicted by ckptaudit without running torch{why}; --torch-check quotes "
                "torch's own error)"
            )
    else:
        out.append(f"{FAILED}{report.error or report.status.value}")
    out.append("")
    out.append("=== 2. What the checkpoint contains ===")
    s = report.stats
    out.append(f"format: {report.format}; ckptaudit verdict: {report.status.value}")
    out.append(
        f"pickle: {s.pickle_bytes:,} bytes, {s.opcodes:,} opcodes (analysed without executing)"
    )
    out.append(f"tensors: {s.tensors:,} ({s.tensor_bytes:,} bytes of storage, not read)")
    out.append(f"read from file: {s.bytes_read:,} bytes")
    if report.error:
        out.append(f"error: {report.error}")
    out.append("")
    out.append(f"=== 3. Compatibility issues ({report.issue_count:,}) ===")
    lines: list[str] = []
    for issue in report.issues:
        label = f"{issue.subject} ({issue.kind.value}, {issue.severity.label})"
        convert = issue.hint.split(" (allowlisting")[0]
        for path in issue.paths[:_PATHS_SHOWN] or ("<file>",):
            lines.append(f"{path}: {label} -> {convert}")
        shown = min(len(issue.paths), _PATHS_SHOWN) or 1
        if issue.count > shown:
            lines.append(f"  ... {issue.count - shown:,} more places of {issue.subject}")
    out.extend(lines or ["none"])
    notes = [n for n in report.notes if n.findings[0].category == "untrusted-code"]
    if notes:
        out.append(
            "not counted (weights_only=True never runs it): loading without weights_only "
            "imports " + ", ".join(n.subject for n in notes)
        )
    out.append("")
    out.append("=== 4. Top-level structure ===")
    for e in report.top_level:
        out.append(f"{e.key}: {e.summary}")
    if not report.top_level:
        out.append("(not available)")
    if report.status is Status.DANGEROUS:
        out.append("")
        out.append("WARNING: dangerous content; never load this file without weights_only=True.")
    return "\n".join(out) + "\n"
