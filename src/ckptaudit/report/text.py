"""The text report for people: a verdict line per file, findings grouped by global."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ckptaudit.findings import FileReport, Finding, Remedy, Severity, Status
from ckptaudit.report.escape import printable

__all__ = ["render_text"]

_STATUS_STYLE = {
    Status.COMPATIBLE: "bold green",
    Status.INCOMPATIBLE: "bold yellow",
    Status.DANGEROUS: "bold red",
    Status.ERROR: "bold magenta",
}
_SEVERITY_STYLE = {
    Severity.DANGEROUS: "red",
    Severity.ERROR: "magenta",
    Severity.UNTRUSTED: "cyan",
    Severity.INCOMPATIBLE: "yellow",
    Severity.INFO: "dim",
}


def _styler(markup: bool) -> tuple[Callable[[str], str], Callable[[str, str], str]]:
    """Return (escape, style) functions: rich markup when asked, plain text otherwise.

    Both also make the file's own strings printable (see :mod:`ckptaudit.report.escape`).
    """
    if not markup:
        return printable, (lambda t, _s: printable(t))
    from rich.markup import escape

    return (lambda t: escape(printable(t))), (lambda t, s: f"[{s}]{escape(printable(t))}[/]")


def _verdict(r: FileReport) -> str:
    if r.status is Status.COMPATIBLE:
        return "loads with weights_only=True"
    if r.status is Status.DANGEROUS:
        return "DO NOT load without weights_only: " + (
            "torch.load(weights_only=True) would still load it"
            if r.weights_only_compatible
            else "weights_only=True would refuse it"
        )
    if r.status is Status.ERROR:
        return "could not be fully analysed"
    return "weights_only=True would fail"


def _remedy_text(f: Finding) -> str:
    if f.remedy is Remedy.ALLOWLIST and f.global_name:
        return f"allowlist (torch.serialization.add_safe_globals([{f.global_name}]))"
    return f.remedy.value


def _group(findings: Sequence[Finding]) -> list[tuple[str, list[Finding]]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        key = f.global_name or (f"opcode {f.opcode}" if f.opcode else f.category)
        groups.setdefault(key, []).append(f)
    return list(groups.items())


def render_text(reports: Sequence[FileReport], policy: object, *, markup: bool = False) -> str:
    """Render reports as text (``markup=True`` adds rich colour markup)."""
    esc, style = _styler(markup)
    out: list[str] = []
    for r in reports:
        out.append(
            f"{style(r.path, 'bold')}  {esc(f'[{r.format}]')}  "
            f"{style(r.status.value.upper(), _STATUS_STYLE[r.status])}  {esc(_verdict(r))}"
        )
        if r.error:
            out.append(f"  error: {esc(r.error)}")
        if r.predicted_error and r.status is not Status.COMPATIBLE:
            out.append(f"  torch would raise: {esc(r.predicted_error)}")
        for name, group in _group(r.findings):
            worst = max(f.severity for f in group)
            kinds = sorted({f.kind.value for f in group})
            head = group[0]
            out.append("")
            out.append(
                f"  {style(worst.label, _SEVERITY_STYLE[worst])}  {style(name, 'bold')}"
                f"  ({esc(', '.join(kinds))})  remedy: {esc(_remedy_text(head))}"
            )
            for f in group:
                where = f" in {f.member}" if f.member else ""
                at = f", first at byte {f.offset}" if f.offset is not None else ""
                out.append(f"    {esc(f'[{f.rule}]')} {esc(f.message)}{esc(where)}")
                out.append(f"      {f.count} occurrence{'s' if f.count != 1 else ''}{at}")
            if head.hint:
                out.append(f"    hint: {esc(head.hint)}")
            seen = list(dict.fromkeys(p for f in group for p in f.paths))
            for p in seen[:20]:
                out.append(f"      at {esc(p)}")
            total = max(f.count for f in group)
            if total > len(seen) and seen:
                out.append(f"      ... and {total - len(seen)} more")
        if r.unsafe_globals:
            out.append("")
            out.append(f"  unsafe globals: {esc(', '.join(r.unsafe_globals))}")
        if r.top_level:
            out.append("")
            out.append("  top-level structure:")
            width = min(max(len(e.key) for e in r.top_level), 40)
            for e in r.top_level:
                out.append(f"    {esc(e.key.ljust(width))}  {esc(e.summary)}")
        s = r.stats
        out.append("")
        out.append(
            f"  read {s.bytes_read:,} bytes (pickle {s.pickle_bytes:,} bytes, {s.opcodes:,} "
            f"opcodes) in {s.seconds:.3f} s; {s.tensors:,} tensors, {s.tensor_bytes:,} "
            "tensor bytes (not read)"
        )
        out.append("")
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out.append(f"{len(reports)} file{'s' if len(reports) != 1 else ''} audited: {summary}")
    return "\n".join(out) + "\n"
