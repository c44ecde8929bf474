"""The JSON report (schema ``ckptaudit/1``, documented in the README)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ckptaudit._version import __version__
from ckptaudit.findings import FileReport, Finding
from ckptaudit.policy.torch_policy import Policy

__all__ = ["SCHEMA", "finding_dict", "jsonl_line", "render_json", "render_jsonl", "report_dict"]

SCHEMA = "ckptaudit/1"


def finding_dict(f: Finding) -> dict[str, Any]:
    """One finding as a JSON object."""
    return {
        "rule": f.rule,
        "global": f.global_name,
        "category": f.category,
        "severity": f.severity.label,
        "kind": f.kind.value,
        "remedy": f.remedy.value,
        "message": f.message,
        "hint": f.hint,
        "count": f.count,
        "paths": list(f.paths),
        "offset": f.offset,
        "member": f.member,
        "opcode": f.opcode,
    }


def report_dict(r: FileReport) -> dict[str, Any]:
    """One file's report as a JSON object."""
    return {
        "path": r.path,
        "format": r.format,
        "status": r.status.value,
        "weights_only_compatible": r.weights_only_compatible,
        "error": r.error,
        "predicted_error": r.predicted_error,
        "unsafe_globals": list(r.unsafe_globals),
        "issue_count": r.issue_count,
        "findings": [finding_dict(f) for f in r.findings],
        "top_level": [{"key": e.key, "summary": e.summary} for e in r.top_level],
        "stats": {
            "pickle_bytes": r.stats.pickle_bytes,
            "opcodes": r.stats.opcodes,
            "tensors": r.stats.tensors,
            "tensor_bytes": r.stats.tensor_bytes,
            "bytes_read": r.stats.bytes_read,
            "seconds": round(r.stats.seconds, 6),
        },
    }


def render_json(reports: Sequence[FileReport], policy: Policy) -> str:
    """Render reports as the ckptaudit/1 JSON document."""
    doc = {
        "schema": SCHEMA,
        "tool": {"name": "ckptaudit", "version": __version__},
        "policy": {"torch": policy.torch_version, "allowed_extra": sorted(policy.extra_allowed)},
        "files": [report_dict(r) for r in reports],
    }
    return json.dumps(doc, indent=2) + "\n"


def jsonl_line(report: FileReport, policy: Policy) -> str:
    """One file's report as one self-contained JSON line (for streaming large runs)."""
    line = {"schema": SCHEMA, "torch": policy.torch_version, **report_dict(report)}
    return json.dumps(line) + "\n"


def render_jsonl(reports: Sequence[FileReport], policy: Policy) -> str:
    """Render reports as JSON Lines: one object per file, each with the schema and policy."""
    return "".join(jsonl_line(r, policy) for r in reports)
