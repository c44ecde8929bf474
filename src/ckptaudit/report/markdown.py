"""The findings document: summary, per-checkpoint errors and issues, conversions, fixes.

Follows the findings report of the original migration plan: a summary table, for each
checkpoint torch's exact error (or the predicted one without torch), its issues and top-level
structure, a table of type conversions grouped by type, recommended code changes tailored to
what was found, and a verification command.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from ckptaudit._version import __version__
from ckptaudit.findings import FileReport, Finding, Kind, Remedy, Status
from ckptaudit.policy.torch_policy import Policy
from ckptaudit.report.escape import md, md_code, printable, shell_word

_FENCE = "`" * 3
_QUOTES = "'" * 3

__all__ = ["DATE_LINE_PREFIX", "render_markdown"]

DATE_LINE_PREFIX = "Generated on "
"""The one line that changes between regenerations."""

_PASS = {True: "PASS", False: "FAIL"}
_MAX_PATHS = 8


def _issues(report: FileReport) -> list[Finding]:
    return [f for f in report.findings if f.severity.label != "info"]


def _exact_error(report: FileReport) -> tuple[str, str] | None:
    """(label, text) of torch's error: measured with torch if present, else predicted."""
    if report.weights_only_compatible:
        return None
    from ckptaudit.torch_oracle import torch_available, weights_only_error

    if torch_available() and os.path.exists(report.path):
        error = weights_only_error(report.path)
        if error:
            return "torch's error (from `torch.load(path, weights_only=True)`)", error
    if report.predicted_error:
        return "predicted first error (torch not available)", report.predicted_error
    return None


def _type_label(f: Finding) -> str:
    if f.global_name:
        return f"{md_code(f.global_name)} ({f.kind.value})"
    return f"opcode {md_code(f.opcode)}" if f.opcode else f.category


def _checkpoint_section(report: FileReport, out: list[str]) -> None:
    out.append(f"## {md_code(report.path)}")
    out.append("")
    s = report.stats
    out.append(
        f"Format `{report.format}`; verdict **{report.status.value}**; "
        f"weights_only=True: **{_PASS[report.weights_only_compatible]}**; "
        f"{s.tensors} tensors ({s.tensor_bytes:,} bytes, not read); "
        f"{s.pickle_bytes:,} bytes of pickle analysed."
    )
    out.append("")
    exact = _exact_error(report)
    if exact:
        label, text = exact
        out.append(f"**{label}:**")
        out.append("")
        out.append("```text")
        # The error quotes the file's own names: printable, never closing the fence.
        out.extend(
            printable(line.rstrip()).replace(_FENCE, _QUOTES)
            for line in text.strip().splitlines()
        )
        out.append("```")
        out.append("")
    issues = _issues(report)
    if issues:
        out.append("### Issues")
        out.append("")
        for f in issues:
            what = md(f.message) if f.rule != "CKA201" else "not an allowed global"
            out.append(
                f"- **{f.severity.label}** {_type_label(f)}: {what} [{f.rule}]; "
                f"remedy *{f.remedy.value}*"
            )
            # Four spaces: every Markdown dialect nests these under the item.
            for p in f.paths[:_MAX_PATHS]:
                out.append(f"    - at {md_code(p)}")
            if f.count > min(len(f.paths), _MAX_PATHS):
                out.append(f"    - ... {f.count} occurrences in all")
            out.append(f"    - convert: {md(f.hint)}")
        out.append("")
    if report.top_level:
        out.append("### Top-level structure")
        out.append("")
        out.append("| Key | Contents |")
        out.append("|---|---|")
        for e in report.top_level:
            out.append(f"| {md_code(e.key)} | {md(e.summary)} |")
        out.append("")


def _conversions(reports: Sequence[FileReport], out: list[str]) -> None:
    rows: dict[str, tuple[str, list[str], int]] = {}
    for report in reports:
        for f in report.findings:
            if f.rule not in ("CKA201", "CKA202") or not f.global_name:
                continue
            name = os.path.basename(report.path)
            hint, places, count = rows.get(
                f.global_name, (f.hint.split(" (allowlisting")[0], [], 0)
            )
            places += [f"{md(name)}: {md_code(p)}" for p in f.paths[:1]]
            rows[f.global_name] = (hint, places, count + f.count)
    if not rows:
        return
    out.append("## Type conversions required")
    out.append("")
    out.append("One row per type; the first place it occurs, and how many places in all.")
    out.append("")
    out.append("| Current type | First location (occurrences) | Convert to |")
    out.append("|---|---|---|")
    for name, (hint, places, count) in sorted(rows.items()):
        label = md_code(name.rsplit(".", 1)[-1])
        out.append(f"| {label} | {places[0]} ({count}) | {md(hint)} |")
    out.append("")


_RECOMMENDATIONS: dict[Kind, str] = {
    Kind.DATACLASS: (
        "**Dataclasses** ({names}): give each a `to_dict()` that returns primitives "
        "(`dataclasses.asdict`, with nested Enums as `.name` and datetimes as timestamps) and a "
        "`from_dict()` classmethod that rebuilds it; save the dict."
    ),
    Kind.ENUM: (
        "**Enums** ({names}): store `member.name` and rebuild with `Cls[name]`; a history of "
        "members becomes a list of names."
    ),
    Kind.MODULE: (
        "**nn.Modules saved whole** ({names}): save the module's constructor config (e.g. "
        '`{{"algorithm": ..., "steps": ...}}`) and, if it has weights, its `state_dict()`; '
        "rebuild it in `set_extra_state` / on load. Inside `get_extra_state()`, never return a "
        "module."
    ),
    Kind.DATETIME: (
        "**datetime values** ({names}): store `dt.timestamp()` (a float, UTC) and rebuild with "
        "`datetime.fromtimestamp(ts, tz=timezone.utc)`."
    ),
    Kind.CONTAINER: (
        "**Containers** ({names}): store `list(deque)` (and `maxlen`) or `dict(defaultdict)`; "
        "rebuild them on load. Allowlisting cannot make torch load a deque with items."
    ),
    Kind.NUMPY: (
        "**numpy values** ({names}): convert arrays with `torch.from_numpy` and scalars with "
        "`.item()` before saving."
    ),
    Kind.NAMESPACE: "**Namespaces** ({names}): store `vars(ns)`.",
    Kind.PATH: "**Paths** ({names}): store `str(path)`.",
    Kind.OBJECT: "**Objects** ({names}): store their fields as a dict.",
    Kind.REFERENCE: "**Class or function references** ({names}): store the name as a string.",
}


def _recommendations(reports: Sequence[FileReport], out: list[str]) -> None:
    by_kind: dict[Kind, set[str]] = {}
    dangerous = False
    resave = False
    for report in reports:
        for f in report.findings:
            if f.remedy is Remedy.NEVER:
                dangerous = True
            if f.remedy is Remedy.RESAVE:
                resave = True
            if f.global_name and f.rule in ("CKA201", "CKA203"):
                by_kind.setdefault(f.kind, set()).add(f.global_name.rsplit(".", 1)[-1])
    items = [
        text.format(names=", ".join(md_code(n) for n in sorted(by_kind[kind])))
        for kind, text in _RECOMMENDATIONS.items()
        if kind in by_kind
    ]
    if resave:
        items.append(
            "**Pickle protocol**: save with `torch.save(obj, f)` and the default "
            "`pickle_protocol=2`."
        )
    if dangerous:
        items.append(
            "**Dangerous content**: do not load these files with weights_only=False; "
            "re-create them from trusted code."
        )
    if not items:
        return
    out.append("## Recommended code changes")
    out.append("")
    out.extend(f"{n}. {item}" for n, item in enumerate(items, 1))
    out.append("")


def render_markdown(reports: Sequence[FileReport], policy: Policy) -> str:
    """Render the findings document for a set of checkpoints."""
    today = datetime.date.today().isoformat()
    out = ["# Checkpoint audit results", ""]
    out.append(
        f"{DATE_LINE_PREFIX}{today} by ckptaudit {__version__}, judged against the "
        f"weights_only policy of torch {policy.torch_version}."
    )
    out.append("")
    out.append("## Summary")
    out.append("")
    out.append("| Checkpoint | weights_only=True | Verdict | Issues |")
    out.append("|---|---|---|---|")
    for r in reports:
        out.append(
            f"| {md_code(r.path)} | {_PASS[r.weights_only_compatible]} | {r.status.value} | "
            f"{len(_issues(r))} |"
        )
    out.append("")
    for r in reports:
        _checkpoint_section(r, out)
    _conversions(reports, out)
    _recommendations(reports, out)
    out.append("## Verification")
    out.append("")
    out.append("After the changes, re-save the checkpoints and run:")
    out.append("")
    out.append("```sh")
    paths = " ".join(shell_word(r.path) for r in reports)
    out.append(f"ckptaudit audit {paths}")
    out.append("```")
    out.append("")
    failing = [r for r in reports if r.status is not Status.COMPATIBLE]
    out.append(
        "Expected: every file reports `COMPATIBLE  loads with weights_only=True` and the "
        "command exits 0"
        + (f" (today {len(failing)} of {len(reports)} do not)." if failing else ".")
    )
    out.append("")
    return "\n".join(out)
