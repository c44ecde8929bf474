"""Output formats: each turns reports into a string; only the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence

from ckptaudit.findings import FileReport
from ckptaudit.policy.torch_policy import Policy

__all__ = ["OUTPUT_FORMATS", "render"]

OUTPUT_FORMATS = ("text", "json", "jsonl", "markdown", "sarif", "github")
"""Every output format, for --format."""


def render(reports: Sequence[FileReport], fmt: str, policy: Policy, *, markup: bool = False) -> str:
    """Render reports in one output format (``markup``: rich markup for a terminal, text only)."""
    if fmt == "text":
        from ckptaudit.report.text import render_text

        return render_text(reports, policy, markup=markup)
    if fmt == "json":
        from ckptaudit.report.json import render_json

        return render_json(reports, policy)
    if fmt == "jsonl":
        from ckptaudit.report.json import render_jsonl

        return render_jsonl(reports, policy)
    if fmt == "markdown":
        from ckptaudit.report.markdown import render_markdown

        return render_markdown(reports, policy)
    if fmt == "sarif":
        from ckptaudit.report.sarif import render_sarif

        return render_sarif(reports, policy)
    if fmt == "github":
        from ckptaudit.report.github import render_github

        return render_github(reports, policy)
    raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
