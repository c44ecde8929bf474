"""Output formats: each turns reports into a string; only the CLI prints.

One module per format; :class:`OutputFormat` is the closed set and :func:`render` dispatches on
it exhaustively, so a new format is one member and one module. What the renderers are given
besides the reports (how much detail, torch's own answers, generated code) is one value,
:class:`RenderOptions`, gathered by the CLI: renderers never read files or ask torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ckptaudit._compat import assert_never
from ckptaudit.findings import FileReport, TextEnum
from ckptaudit.policy.torch_policy import Policy

if TYPE_CHECKING:
    from ckptaudit.torch_oracle import TorchCheck

__all__ = ["Detail", "OutputFormat", "RenderOptions", "render"]


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


class Detail(TextEnum):
    """How much the text format says per file (``--summary``, ``-q``)."""

    FULL = "full"
    """Every issue with its paths and hint, the structure, the statistics."""
    SUMMARY = "summary"
    """One line per file (verdict, issue count, what is wrong) and the totals."""
    QUIET = "quiet"
    """The summary line of each file that fails the run or could not be read, and the totals."""


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """Everything a renderer is given besides the reports (all optional)."""

    markup: bool = False
    """text: rich colour markup, for a terminal."""
    detail: Detail = Detail.FULL
    """text: how much to say per file."""
    fails: Callable[[FileReport], bool] | None = None
    """text, ``Detail.QUIET``: which files fail the run (under ``--fail-on``)."""
    torch_checks: Mapping[str, TorchCheck] = field(default_factory=dict)
    """text, markdown: torch's own answer per path (``--torch-check``); without one, the
    predicted error is shown, labelled as predicted."""
    recommended_code: str | None = None
    """markdown: the recommended code changes generated from the checkpoints (Markdown from
    ``ckptaudit.migrate.codegen.render_recommended_code``); without it, a list by kind."""
    verification: str | None = None
    """markdown: the command that verifies the fix; default ``ckptaudit audit`` of the files."""


def render(
    reports: Sequence[FileReport],
    fmt: OutputFormat,
    policy: Policy,
    *,
    markup: bool = False,
    options: RenderOptions | None = None,
) -> str:
    """Render reports in one output format (``markup``: rich markup for a terminal, text only)."""
    options = options or RenderOptions(markup=markup)
    match fmt:
        case OutputFormat.TEXT:
            from ckptaudit.report.text import render_text

            return render_text(reports, policy, markup=options.markup or markup, options=options)
        case OutputFormat.JSON:
            from ckptaudit.report.json import render_json

            return render_json(reports, policy)
        case OutputFormat.JSONL:
            from ckptaudit.report.json import render_jsonl

            return render_jsonl(reports, policy)
        case OutputFormat.MARKDOWN:
            from ckptaudit.report.markdown import render_markdown

            return render_markdown(reports, policy, options=options)
        case OutputFormat.SARIF:
            from ckptaudit.report.sarif import render_sarif

            return render_sarif(reports, policy)
        case OutputFormat.GITHUB:
            from ckptaudit.report.github import render_github

            return render_github(reports, policy)
        case _:
            assert_never(fmt)
