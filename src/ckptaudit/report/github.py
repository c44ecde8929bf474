"""GitHub Actions workflow commands (``--format github``): findings become annotations.

Each file that is not plainly compatible becomes one command, for example::

    ::error file=models/agent.pt,title=ckptaudit%3A INCOMPATIBLE (3 issues)::collections.deque ...

which the Actions runner turns into an annotation on that file (the log keeps every line).
One annotation per *file*, not per issue: GitHub shows at most 10 annotations of each level
per step and drops the rest silently, and a single checkpoint easily has 10 issues.

Escaping follows GitHub's documented workflow-command syntax: in the message, ``%``, CR and
LF become ``%25``, ``%0D`` and ``%0A`` (so a message may span lines); in a property, ``:`` and
``,`` also become ``%3A`` and ``%2C``. Text that comes from the checkpoint (globals, paths,
members, messages quoting them) is made printable first, so a hostile file can neither start
a command of its own on a new line nor colour the log. The ``file`` property is escaped but
not rewritten, so that it still names the file on disk. There is no ``line`` property: a
checkpoint is binary.
"""

from __future__ import annotations

from collections.abc import Sequence

from ckptaudit.findings import FileReport, Issue, Severity, Status
from ckptaudit.report.escape import printable

__all__ = ["escape_data", "escape_property", "render_github", "workflow_command"]

_PATHS_SHOWN = 5  # per issue; the annotation is a summary, the JSON report has them all
_SHOWN_PER_LEVEL = 10  # GitHub's limit of annotations per level and step

_LEVEL = {
    Severity.DANGEROUS: "error",
    Severity.ERROR: "error",
    # torch.load(weights_only=True) raises on it: the default --fail-on fails the job on it.
    Severity.INCOMPATIBLE: "error",
    # Code outside the known pool would run: worth a look, not a failure by default.
    Severity.UNTRUSTED: "warning",
    Severity.INFO: "notice",
}


def escape_data(text: str) -> str:
    """Escape a workflow command's message: ``%``, CR and LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: as data, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str) -> str:
    """One workflow command line: ``::command key=value,...::message`` (escaped)."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def _issue_lines(issue: Issue) -> list[str]:
    where = f" in {issue.member}" if issue.member else ""
    times = f"{issue.count} place{'s' if issue.count != 1 else ''}"
    lines = [f"{issue.subject} ({issue.kind.value}){where}: {times} [{', '.join(issue.rules)}]"]
    lines.extend(f"  [{f.rule}] {f.message}" for f in issue.findings)
    if issue.hint:
        lines.append(f"  remedy: {issue.remedy.value}; hint: {issue.hint}")
    lines.extend(f"  at {p}" for p in issue.paths[:_PATHS_SHOWN])
    shown = min(len(issue.paths), _PATHS_SHOWN)
    if issue.count > shown and shown:
        lines.append(f"  ... and {issue.count - shown} more")
    return lines


def _annotation(r: FileReport) -> tuple[str, str] | None:
    """(level, command) for one file, or None when there is nothing to show."""
    worst = r.worst
    if worst is None and r.status is Status.ERROR:
        worst = Severity.ERROR  # could not be read at all: no finding, still an error
    if worst is None:
        return None
    count = r.issue_count
    title = f"ckptaudit: {r.status.value.upper()} ({count} issue{'s' if count != 1 else ''})"
    lines: list[str] = []
    if r.error:
        lines.append(f"error: {r.error}")
    if r.predicted_error and r.status is not Status.COMPATIBLE:
        lines.append(f"predicted error: {r.predicted_error}")
    for issue in r.issues:
        lines.extend(_issue_lines(issue))
    notes = r.notes
    if notes:
        lines.append("not counted as issues:")
        for issue in notes:
            lines.extend(_issue_lines(issue))
    if r.unsafe_globals:
        lines.append(f"unsafe globals: {', '.join(r.unsafe_globals)}")
    level = _LEVEL[worst]
    message = "\n".join(printable(line) for line in lines)
    return level, workflow_command(level, message, file=r.path, title=printable(title))


def render_github(reports: Sequence[FileReport], policy: object) -> str:
    """Render reports as GitHub Actions workflow commands, one annotation per file."""
    out: list[str] = []
    per_level: dict[str, int] = {}
    for r in reports:
        found = _annotation(r)
        if found is None:
            continue
        level, command = found
        per_level[level] = per_level.get(level, 0) + 1
        out.append(command)
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out.append(
        f"ckptaudit: {len(reports)} file{'s' if len(reports) != 1 else ''} audited: {summary}"
    )
    hidden = {lvl: n - _SHOWN_PER_LEVEL for lvl, n in per_level.items() if n > _SHOWN_PER_LEVEL}
    for level, n in sorted(hidden.items()):
        out.append(
            f"ckptaudit: GitHub shows {_SHOWN_PER_LEVEL} {level} annotations per step; "
            f"{n} more are only in this log"
        )
    return "\n".join(out) + "\n"
