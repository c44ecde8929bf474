"""The text report for people: a verdict line per file, then its issues grouped by global.

``Detail.SUMMARY`` and ``Detail.QUIET`` keep one line per file, for runs over many files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ckptaudit._compat import assert_never
from ckptaudit.findings import FileReport, Issue, Remedy, Severity, Status
from ckptaudit.report import Detail, RenderOptions
from ckptaudit.report.escape import printable

if TYPE_CHECKING:
    from ckptaudit.torch_oracle import TorchCheck

__all__ = ["render_text", "summary_line", "torch_answer", "unreadable"]

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
_PATHS_SHOWN = 20
_SUBJECTS_SHOWN = 3  # per summary line


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


def _remedy_text(issue: Issue) -> str:
    if issue.remedy is Remedy.ALLOWLIST and issue.findings[0].global_name:
        return f"allowlist (torch.serialization.add_safe_globals([{issue.subject}]))"
    return issue.remedy.value


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def unreadable(r: FileReport) -> bool:
    """A file that could not be opened at all: one line says why, there is nothing else."""
    return r.status is Status.ERROR and not r.findings and r.error is not None


def torch_answer(r: FileReport, check: TorchCheck | None) -> tuple[str, str] | None:
    """(label, text) of what torch says or would say about a file, or None when it loads.

    With a torch check that ran, torch's own words; otherwise ckptaudit's prediction,
    labelled as predicted.
    """
    if check is not None and check.ran:
        if check.error is None:
            return None
        return f"torch {check.torch_version} raises (--torch-check)", check.error
    if r.weights_only_compatible or not r.predicted_error:
        return None
    if check is not None:
        return f"predicted error (torch check not run: {check.note})", r.predicted_error
    return "predicted error", r.predicted_error


def summary_line(r: FileReport) -> str:
    """One line for a file: path, verdict, issue count and what the issues are about."""
    if unreadable(r):
        return f"{r.path}  ERROR  {r.error}"
    issues = r.issues
    line = f"{r.path}  {r.status.value.upper()}"
    if r.issue_count:
        subjects = [i.subject for i in issues[:_SUBJECTS_SHOWN]]
        more = f", +{len(issues) - _SUBJECTS_SHOWN} more" if len(issues) > _SUBJECTS_SHOWN else ""
        line += f"  {_plural(r.issue_count, 'issue')}: {', '.join(subjects)}{more}"
    elif r.status is Status.COMPATIBLE:
        line += "  loads with weights_only=True"
    if r.error and not r.issue_count:
        line += f"  error: {r.error}"
    return line


def _totals(reports: Sequence[FileReport]) -> str:
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    issues = sum(r.issue_count for r in reports)
    return (
        f"{len(reports)} file{'s' if len(reports) != 1 else ''} audited: {summary}; "
        f"{_plural(issues, 'issue')}"
    )


def _issue_lines(
    issue: Issue, esc: Callable[[str], str], style: Callable[[str, str], str]
) -> list[str]:
    kinds = sorted({f.kind.value for f in issue.findings})
    where = f" in {issue.member}" if issue.member else ""
    out = [
        "",
        f"  {style(issue.severity.label, _SEVERITY_STYLE[issue.severity])}  "
        f"{style(issue.subject, 'bold')}  ({esc(', '.join(kinds))})  "
        f"remedy: {esc(_remedy_text(issue))}{esc(where)}",
    ]
    for f in issue.findings:
        at = f", first at byte {f.offset}" if f.offset is not None else ""
        out.append(f"    {esc(f'[{f.rule}]')} {esc(f.message)}")
        out.append(f"      {_plural(f.count, 'occurrence')}{at}")
    if issue.hint:
        out.append(f"    hint: {esc(issue.hint)}")
    for p in issue.paths[:_PATHS_SHOWN]:
        out.append(f"      at {esc(p)}")
    shown = min(len(issue.paths), _PATHS_SHOWN)
    if issue.count > shown and shown:
        out.append(f"      ... and {issue.count - shown:,} more")
    return out


def _file_lines(
    r: FileReport,
    check: TorchCheck | None,
    esc: Callable[[str], str],
    style: Callable[[str, str], str],
) -> list[str]:
    if unreadable(r):
        status = style("ERROR", _STATUS_STYLE[r.status])
        return [f"{style(r.path, 'bold')}  {status}  {esc(r.error or '')}"]
    out = [
        f"{style(r.path, 'bold')}  {esc(f'[{r.format}]')}  "
        f"{style(r.status.value.upper(), _STATUS_STYLE[r.status])}  {esc(_verdict(r))}"
    ]
    if r.error:
        out.append(f"  error: {esc(r.error)}")
    answer = torch_answer(r, check)
    if answer is not None:
        label, text = answer
        lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
        out.append(f"  {esc(label)}: {esc(lines[0])}")
        out.extend(f"    {esc(line.strip())}" for line in lines[1:])
    elif check is not None and check.ran and r.status is not Status.COMPATIBLE:
        out.append(f"  torch {esc(check.torch_version)} loads it (--torch-check)")
    if check is not None and check.ran and (check.error is None) != r.weights_only_compatible:
        out.append(
            "  note: torch's answer differs from ckptaudit's verdict; please report this "
            "with the file"
        )
    for issue in r.issues:
        out.extend(_issue_lines(issue, esc, style))
    notes = r.notes
    if notes:
        out.append("")
        out.append("  not counted as issues (weights_only=True never runs it, or for information):")
        for issue in notes:
            out.extend(_issue_lines(issue, esc, style))
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
    groups = len(r.issues)
    out.append(
        f"  {_plural(r.issue_count, 'issue')} in {groups:,} "
        f"{'global or operation' if groups == 1 else 'globals or operations'}"
    )
    out.append(
        f"  read {s.bytes_read:,} bytes (pickle {s.pickle_bytes:,} bytes, {s.opcodes:,} "
        f"opcodes) in {s.seconds:.3f} s; {s.tensors:,} tensors, {s.tensor_bytes:,} "
        "tensor bytes (not read)"
    )
    out.append("")
    return out


def render_text(
    reports: Sequence[FileReport],
    policy: object,
    *,
    markup: bool = False,
    options: RenderOptions | None = None,
) -> str:
    """Render reports as text (``markup=True`` adds rich colour markup)."""
    options = options or RenderOptions(markup=markup)
    esc, style = _styler(markup)
    out: list[str] = []
    for r in reports:
        match options.detail:
            case Detail.FULL:
                out.extend(_file_lines(r, options.torch_checks.get(r.path), esc, style))
            case Detail.SUMMARY:
                out.append(esc(summary_line(r)))
            case Detail.QUIET:
                fails = options.fails
                if r.status is Status.ERROR or (fails is not None and fails(r)):
                    out.append(esc(summary_line(r)))
            case _:
                assert_never(options.detail)
    out.append(_totals(reports))
    return "\n".join(out) + "\n"
