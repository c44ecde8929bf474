"""SARIF 2.1.0 output, for code-scanning dashboards (GitHub and others)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ckptaudit._version import __version__
from ckptaudit.checks import Rule, all_rules
from ckptaudit.findings import FileReport, Severity
from ckptaudit.policy.torch_policy import Policy

__all__ = ["render_sarif", "sarif_level"]

_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif_level(severity: Severity) -> str:
    """Map a severity to a SARIF result level."""
    return {
        Severity.DANGEROUS: "error",
        Severity.ERROR: "error",
        Severity.UNTRUSTED: "warning",
        Severity.INCOMPATIBLE: "warning",
        Severity.INFO: "note",
    }[severity]


def _rule(r: Rule) -> dict[str, Any]:
    tags = list(r.tags)
    if r.cwe is not None:
        # GitHub code scanning reads CWE tags in this form (as bandit writes them).
        tags.append(f"external/cwe/cwe-{r.cwe}")
    return {
        "id": r.code,
        "name": r.category.value,
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": r.why},
        "help": {"text": r.fix, "markdown": f"{r.fix} [{r.code}]({r.help_uri})"},
        "helpUri": r.help_uri,
        "defaultConfiguration": {"level": sarif_level(r.severity)},
        "properties": {"tags": tags},
    }


def render_sarif(reports: Sequence[FileReport], policy: Policy) -> str:
    """Render reports as one SARIF run; each finding is a result on its file."""
    rules = all_rules()
    index = {r.code: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for report in reports:
        for f in report.findings:
            where = f"; at {', '.join(f.paths[:5])}" if f.paths else ""
            results.append(
                {
                    "ruleId": f.rule,
                    "ruleIndex": index[f.rule],
                    "level": sarif_level(f.severity),
                    "message": {"text": f"{f.message}{where}. Fix: {f.hint}"},
                    "locations": [
                        {
                            "physicalLocation": {"artifactLocation": {"uri": report.path}},
                            "logicalLocations": [{"fullyQualifiedName": p} for p in f.paths[:5]],
                        }
                    ],
                    "properties": {
                        "global": f.global_name,
                        "remedy": f.remedy.value,
                        "kind": f.kind.value,
                        "count": f.count,
                        "offset": f.offset,
                        "member": f.member,
                    },
                }
            )
    # A file that could not be read has no finding (nothing is claimed about its contents):
    # SARIF's place for "the tool could not analyse this" is a notification.
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{r.path}: {r.error}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.path}}}],
        }
        for r in reports
        if r.error and not r.findings
    ]
    doc = {
        "$schema": _SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ckptaudit",
                        "version": __version__,
                        "rules": [_rule(r) for r in rules],
                        "informationUri": "https://pypi.org/project/ckptaudit/",
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "properties": {"torch": policy.torch_version},
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
