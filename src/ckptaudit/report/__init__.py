"""Output formats: each turns reports into a string; only the CLI prints.

One module per format; :class:`OutputFormat` is the closed set and :func:`render` dispatches on
it exhaustively, so a new format is one member and one module.
"""

from __future__ import annotations

from collections.abc import Sequence

from ckptaudit._compat import assert_never
from ckptaudit.findings import FileReport, TextEnum
from ckptaudit.policy.torch_policy import Policy

__all__ = ["OutputFormat", "render"]


class OutputFormat(TextEnum):
    """Every output format, for ``--format``."""

    TEXT = "text"
    """For people at a terminal: findings grouped per file, with paths and hints."""
    JSON = "json"
    """One JSON document (``schema`` 1) with every file's report."""
    JSONL = "jsonl"
    """One JSON object per line and file, streamed as files are audited."""
    MARKDOWN = "markdown"
    """The findings document: summary table, conversions, recommended changes."""
    SARIF = "sarif"
    """SARIF 2.1.0 for code-scanning dashboards."""
    GITHUB = "github"
    """GitHub Actions workflow commands: one annotation per file."""


def render(
    reports: Sequence[FileReport], fmt: OutputFormat, policy: Policy, *, markup: bool = False
) -> str:
    """Render reports in one output format (``markup``: rich markup for a terminal, text only)."""
    match fmt:
        case OutputFormat.TEXT:
            from ckptaudit.report.text import render_text

            return render_text(reports, policy, markup=markup)
        case OutputFormat.JSON:
            from ckptaudit.report.json import render_json

            return render_json(reports, policy)
        case OutputFormat.JSONL:
            from ckptaudit.report.json import render_jsonl

            return render_jsonl(reports, policy)
        case OutputFormat.MARKDOWN:
            from ckptaudit.report.markdown import render_markdown

            return render_markdown(reports, policy)
        case OutputFormat.SARIF:
            from ckptaudit.report.sarif import render_sarif

            return render_sarif(reports, policy)
        case OutputFormat.GITHUB:
            from ckptaudit.report.github import render_github

            return render_github(reports, policy)
        case _:
            assert_never(fmt)
