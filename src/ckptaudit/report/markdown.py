"""The findings document: summary, per-checkpoint errors and issues, conversions, fixes.

Follows the findings report of the original migration plan: a summary table, for each
checkpoint torch's exact error (``--torch-check``) or the predicted one, labelled so, its
issues and top-level structure, a table of type conversions grouped by type, the recommended
code changes generated from what the checkpoints hold, and a verification command.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from ckptaudit._version import __version__
from ckptaudit.findings import FileReport, Issue, Kind, Remedy, Status
from ckptaudit.policy.torch_policy import Policy
from ckptaudit.report import RenderOptions
from ckptaudit.report.escape import md, md_code, printable, shell_word
from ckptaudit.report.text import torch_answer, unreadable

_FENCE = "`" * 3
_QUOTES = "'" * 3

__all__ = ["DATE_LINE_PREFIX", "render_markdown"]

DATE_LINE_PREFIX = "Generated on "
"""The one line that changes between regenerations."""

_PASS = {True: "PASS", False: "FAIL"}
_MAX_PATHS = 8


def _error_block(report: FileReport, options: RenderOptions, out: list[str]) -> None:
    check = options.torch_checks.get(report.path)
    answer = torch_answer(report, check)
    if answer is None:
        if check is not None and check.ran and report.status is not Status.COMPATIBLE:
            out += [f"torch {md(check.torch_version)} loads it (`--torch-check`).", ""]
        return
    _, text = answer
    if check is not None and check.ran:
        label = (
            f"torch's error (torch {md(check.torch_version)}, `--torch-check`: its weights_only "
            "unpickler over this file's pickle, storages not read)"
        )
    elif check is None:
        label = "Predicted first error (ckptaudit's prediction; `--torch-check` asks torch)"
    else:
        label = f"Predicted first error (torch check not run: {md(check.note or '')})"
    out.append(f"**{label}:**")
    out.append("")
    out.append("```text")
    # The error quotes the file's own names: printable, never closing the fence.
    out.extend(
        printable(line.rstrip()).replace(_FENCE, _QUOTES) for line in text.strip().splitlines()
    )
    out.append("```")
    out.append("")


def _type_label(issue: Issue) -> str:
    if issue.findings[0].global_name:
        return f"{md_code(issue.subject)} ({issue.kind.value})"
    return md(issue.subject)


def _issue_items(issues: Sequence[Issue], out: list[str]) -> None:
    for issue in issues:
        what = "; ".join(
            "not an allowed global" if f.rule == "CKA201" else md(f.message) for f in issue.findings
        )
        places = f"{issue.count:,} place{'s' if issue.count != 1 else ''}"
        out.append(
            f"- **{issue.severity.label}** {_type_label(issue)}: {what} "
            f"[{', '.join(issue.rules)}]; remedy *{issue.remedy.value}*; {places}"
        )
        # Four spaces: every Markdown dialect nests these under the item.
        for p in issue.paths[:_MAX_PATHS]:
            out.append(f"    - at {md_code(p)}")
        if issue.count > min(len(issue.paths), _MAX_PATHS):
            out.append(f"    - ... {issue.count:,} places in all")
        out.append(f"    - convert: {md(issue.hint)}")


def _checkpoint_section(report: FileReport, options: RenderOptions, out: list[str]) -> None:
    out.append(f"## {md_code(report.path)}")
    out.append("")
    if unreadable(report):
        out += [f"Could not be read: {md(report.error or '')}.", ""]
        return
    s = report.stats
    out.append(
        f"Format `{report.format}`; verdict **{report.status.value}**; "
        f"weights_only=True: **{_PASS[report.weights_only_compatible]}**; "
        f"{s.tensors} tensors ({s.tensor_bytes:,} bytes, not read); "
        f"{s.pickle_bytes:,} bytes of pickle analysed."
    )
    out.append("")
    _error_block(report, options, out)
    issues = report.issues
    if issues:
        out.append(f"### Issues ({report.issue_count:,})")
        out.append("")
        _issue_items(issues, out)
        out.append("")
    notes = report.notes
    if notes:
        out.append("### Not counted as issues")
        out.append("")
        out.append(
            "Untrusted code (CKA304) runs only when the file is loaded without weights_only or "
            "its classes are allowlisted; information changes no verdict."
        )
        out.append("")
        _issue_items(notes, out)
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
        for issue in report.issues:
            if not {"CKA201", "CKA202"} & set(issue.rules) or not issue.findings[0].global_name:
                continue
            name = os.path.basename(report.path)
            hint, places, count = rows.get(
                issue.subject, (issue.hint.split(" (allowlisting")[0], [], 0)
            )
            places += [f"{md(name)}: {md_code(p)}" for p in issue.paths[:1]]
            rows[issue.subject] = (hint, places, count + issue.count)
    if not rows:
        return
    out.append("## Type conversions required")
    out.append("")
    out.append("One row per type; the first place it occurs, and how many places in all.")
    out.append("")
    out.append("| Current type | First location (places) | Convert to |")
    out.append("|---|---|---|")
    for name, (hint, places, count) in sorted(rows.items()):
        label = md_code(name.rsplit(".", 1)[-1])
        out.append(f"| {label} | {places[0]} ({count:,}) | {md(hint)} |")
    out.append("")


_RECOMMENDATIONS: dict[Kind, str] = {
    Kind.OBJECT: (
        "**Objects of your classes** ({names}): give each a `to_dict()` that returns its fields "
        "as primitives (nested Enums as `.value`, datetimes as `.isoformat()`) and a "
        "`from_dict()` classmethod that rebuilds it; save the dict."
    ),
    Kind.ENUM: (
        "**Enums** ({names}): store `member.value` (or `.name`) and rebuild with `Cls(value)` "
        "(or `Cls[name]`); a history of members becomes a list."
    ),
    Kind.DATETIME: (
        "**datetime values** ({names}): store `dt.isoformat()` and rebuild with "
        "`datetime.fromisoformat(text)`: exact for naive and aware values alike (a float "
        "timestamp suits only values that carry a timezone)."
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
    Kind.REFERENCE: "**Class or function references** ({names}): store the name as a string.",
}


def _fallback_recommendations(reports: Sequence[FileReport]) -> list[str]:
    """Advice by kind, for what no generated code covers (dangerous or unreadable files)."""
    by_kind: dict[Kind, set[str]] = {}
    modules: dict[bool, set[str]] = {}
    for report in reports:
        for issue in report.issues:
            if not issue.findings[0].global_name or not {"CKA201", "CKA203"} & set(issue.rules):
                continue
            short = issue.subject.rsplit(".", 1)[-1]
            if issue.kind is Kind.MODULE:
                in_extra_state = any("._extra_state'" in p for p in issue.paths)
                modules.setdefault(in_extra_state, set()).add(short)
            else:
                by_kind.setdefault(issue.kind, set()).add(short)
    items = [
        text.format(names=", ".join(md_code(n) for n in sorted(by_kind[kind])))
        for kind, text in _RECOMMENDATIONS.items()
        if kind in by_kind
    ]
    if modules.get(False):
        names = ", ".join(md_code(n) for n in sorted(modules[False]))
        items.append(
            f"**Whole nn.Modules** ({names}): save `module.state_dict()` instead of the module, "
            "and rebuild the module in code before `load_state_dict()`."
        )
    if modules.get(True):
        names = ", ".join(md_code(n) for n in sorted(modules[True]))
        items.append(
            f"**nn.Modules returned by `get_extra_state()`** ({names}): return the module's "
            "constructor config (and its `state_dict()` if it has weights) and rebuild it in "
            "`set_extra_state()`."
        )
    return items


def _recommendations(reports: Sequence[FileReport], options: RenderOptions, out: list[str]) -> None:
    remedies = {i.remedy for r in reports for i in r.issues}
    items = [] if options.recommended_code else _fallback_recommendations(reports)
    if Remedy.RESAVE in remedies:
        items.append(
            "**Pickle protocol**: save with `torch.save(obj, f)` and the default "
            "`pickle_protocol=2`."
        )
    if Remedy.NEVER in remedies:
        items.append(
            "**Dangerous content**: do not load these files with weights_only=False; "
            "re-create them from trusted code."
        )
    if options.recommended_code:
        out.append(options.recommended_code.rstrip())
        out.append("")
        if items:
            out.extend(f"- {item}" for item in items)
            out.append("")
        return
    if not items:
        return
    out.append("## Recommended code changes")
    out.append("")
    out.extend(f"{n}. {item}" for n, item in enumerate(items, 1))
    out.append("")


def render_markdown(
    reports: Sequence[FileReport], policy: Policy, *, options: RenderOptions | None = None
) -> str:
    """Render the findings document for a set of checkpoints."""
    options = options or RenderOptions()
    date = datetime.date.today().isoformat()
    out = ["# Checkpoint audit results", ""]
    out.append(
        f"{DATE_LINE_PREFIX}{date} by ckptaudit {__version__}, judged against the "
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
            f"{r.issue_count:,} |"
        )
    out.append("")
    out.append(
        "An issue is one object or operation torch refuses (or that could run code, or could "
        "not be read) at one place in a checkpoint; each is listed below with its path."
    )
    out.append("")
    for r in reports:
        _checkpoint_section(r, options, out)
    _conversions(reports, out)
    _recommendations(reports, options, out)
    out.append("## Verification")
    out.append("")
    failing = [r for r in reports if r.status is not Status.COMPATIBLE]
    if options.verification:
        out.append("After the changes, run:")
        command = options.verification
    else:
        out.append("After the changes, re-save the checkpoints that fail and run:")
        command = "ckptaudit audit " + " ".join(shell_word(r.path) for r in failing or reports)
    out.append("")
    out.append("```sh")
    out.append(command)
    out.append("```")
    out.append("")
    today = f" (today {len(failing)} of the {len(reports)} checkpoints above do not)"
    if options.verification:
        expected = "Expected: it exits 0, every checkpoint it audits compatible"
    else:
        expected = (
            "Expected: every file reports `COMPATIBLE  loads with weights_only=True` and the "
            "command exits 0"
        )
    out.append(expected + (today if failing else "") + ".")
    out.append("")
    return "\n".join(out)
