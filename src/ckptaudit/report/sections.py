"""The four-section report of the original plan's audit script (scripts/checkpoint_audit.py).

1. whether ``weights_only=True`` succeeds, with torch's exact error where torch is installed;
2. what the checkpoint contains; 3. every compatibility issue, one line each (path, type,
conversion); 4. the top-level structure.
"""

from __future__ import annotations

from ckptaudit.findings import FileReport, Severity

__all__ = ["render_sections"]


def render_sections(report: FileReport, torch_error: str | None, torch_version: str | None) -> str:
    """Render one report in the four numbered sections.

    ``torch_version`` None means torch is not installed: section 1 then gives ckptaudit's
    prediction of torch's first error instead of torch's own.
    """
    out: list[str] = [f"Checkpoint audit: {report.path}", ""]
    out.append("=== 1. weights_only=True load test ===")
    verdict = "PASS" if report.weights_only_compatible else "FAIL"
    out.append(
        f"torch.load(path, weights_only=True): {verdict} (ckptaudit verdict: {report.status.value})"
    )
    if torch_version is not None:
        if torch_error:
            out.append(f"torch {torch_version} error:")
            out.extend(f"    {line}" for line in torch_error.strip().splitlines() if line.strip())
        else:
            out.append(f"torch {torch_version} loads it.")
    elif report.predicted_error:
        out.append("torch is not installed; predicted first error:")
        out.append(f"    {report.predicted_error}")
    out.append("")
    out.append("=== 2. What the checkpoint contains ===")
    s = report.stats
    out.append(f"format: {report.format}")
    out.append(
        f"pickle: {s.pickle_bytes:,} bytes, {s.opcodes:,} opcodes (analysed without executing)"
    )
    out.append(f"tensors: {s.tensors:,} ({s.tensor_bytes:,} bytes of storage, not read)")
    out.append(f"read from file: {s.bytes_read:,} bytes")
    if report.error:
        out.append(f"error: {report.error}")
    out.append("")
    issues = [f for f in report.findings if f.severity > Severity.INFO]
    lines: list[str] = []
    for f in issues:
        what = f.global_name or (f"opcode {f.opcode}" if f.opcode else f.category)
        label = f"{what} ({f.kind.value}, {f.severity.label})"
        convert = f.hint.split(" (allowlisting")[0]
        for path in f.paths or ("<file>",):
            lines.append(f"{path}: {label} -> {convert}")
        if f.count > len(f.paths) and f.paths:
            lines.append(f"  ... {f.count - len(f.paths)} more occurrences of {what}")
    out.append(f"=== 3. Compatibility issues ({len(issues)}) ===")
    out.extend(lines or ["none"])
    out.append("")
    out.append("=== 4. Top-level structure ===")
    for e in report.top_level:
        out.append(f"{e.key}: {e.summary}")
    if not report.top_level:
        out.append("(not available)")
    return "\n".join(out) + "\n"
