"""Every output format renders one canonical report; text and markdown checked by content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ckptaudit
from ckptaudit.findings import (
    AuditStats,
    FileReport,
    Finding,
    Kind,
    Remedy,
    Severity,
    Status,
    TopLevelEntry,
)
from ckptaudit.report import OUTPUT_FORMATS, render

CANONICAL = FileReport(
    path="run/model.pt",
    format="torch-zip",
    status=Status.INCOMPATIBLE,
    weights_only_compatible=False,
    predicted_error="Can only extend lists, but got <class 'collections.deque'>",
    unsafe_globals=("collections.deque",),
    findings=(
        Finding(rule="CKA201", category="not-allowlisted", severity=Severity.INCOMPATIBLE,
                global_name="collections.deque", kind=Kind.CONTAINER, remedy=Remedy.CONVERT,
                message="collections.deque is not an allowed global",
                hint="store list(d)", count=3,
                paths=("root['a']", "root['b'][0]"), offset=42),
    ),
    top_level=(TopLevelEntry(key="a", summary="deque[2 items]"),),
    stats=AuditStats(pickle_bytes=100, opcodes=20, tensors=1, tensor_bytes=64, bytes_read=900,
                     seconds=0.01),
)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_every_format_renders(fmt: str) -> None:
    text = render([CANONICAL], fmt, ckptaudit.load_policy())
    assert "collections.deque" in text
    assert "run/model.pt" in text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        render([CANONICAL], "yaml", ckptaudit.load_policy())


def test_text_golden() -> None:
    text = render([CANONICAL], "text", ckptaudit.load_policy())
    golden = (Path(__file__).parent / "golden.txt").read_text()
    assert text == golden


def test_json_round_trip_keeps_every_field() -> None:
    doc = json.loads(render([CANONICAL], "json", ckptaudit.load_policy()))
    (f,) = doc["files"][0]["findings"]
    assert f == {
        "rule": "CKA201", "global": "collections.deque", "category": "not-allowlisted",
        "severity": "incompatible", "kind": "container", "remedy": "convert",
        "message": "collections.deque is not an allowed global", "hint": "store list(d)",
        "count": 3, "paths": ["root['a']", "root['b'][0]"], "offset": 42, "member": None,
        "opcode": None,
    }


def test_markdown_has_the_plan_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTAUDIT_NO_TORCH", "1")
    text = render([CANONICAL], "markdown", ckptaudit.load_policy())
    for heading in ("## Summary", "## Type conversions required", "## Recommended code changes",
                    "## Verification", "### Top-level structure"):
        assert heading in text
    assert "| `run/model.pt` | FAIL | incompatible | 1 |" in text
    assert "| `deque` | model.pt: `root['a']` (3) | store list(d) |" in text
    assert "predicted first error" in text


def test_terminal_colour_keeps_every_bracket() -> None:
    """Rich reads [...] as markup: paths, labels and names full of brackets must survive."""
    from rich.console import Console

    evil = ckptaudit.audit_bytes(b"cos\nsystem\n(S'[bold]id[/]'\ntR.", name="weird [name].pt")
    text = render([CANONICAL, evil], "text", ckptaudit.load_policy(), markup=True)
    console = Console(force_terminal=True, width=200, highlight=False, soft_wrap=True,
                      record=True)
    console.print(text, end="")
    shown = console.export_text()
    plain = render([CANONICAL, evil], "text", ckptaudit.load_policy(), markup=False)
    assert shown == plain
