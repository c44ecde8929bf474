"""SARIF 2.1.0 output, for code-scanning dashboards (GitHub and others)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ckptaudit import __version__
from ckptaudit.findings import FileReport, Severity
from ckptaudit.policy.torch_policy import Policy
from ckptaudit.rules import RULES

__all__ = ["render_sarif", "sarif_level"]

_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif_level(severity: Severity) -> str:
    """Map a severity to a SARIF result level."""
    return {
        Severity.DANGEROUS: "error",
        Severity.ERROR: "error",
        Severity.INCOMPATIBLE: "warning",
        Severity.INFO: "note",
    }[severity]


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": r.code,
            "name": r.category,
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": r.why},
            "help": {"text": r.fix},
            "defaultConfiguration": {"level": sarif_level(r.severity)},
        }
        for r in RULES.values()
    ]


def render_sarif(reports: Sequence[FileReport], policy: Policy) -> str:
    """Render reports as one SARIF run; each finding is a result on its file."""
    index = {code: i for i, code in enumerate(RULES)}
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
    doc = {
        "$schema": _SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ckptaudit",
                        "version": __version__,
                        "rules": _rules(),
                        "informationUri": "https://pypi.org/project/ckptaudit/",
                    }
                },
                "properties": {"torch": policy.torch_version},
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
