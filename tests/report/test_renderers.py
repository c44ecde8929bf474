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
from ckptaudit.report import OutputFormat, render

CANONICAL = FileReport(
    path="run/model.pt",
    format="torch-zip",
    status=Status.INCOMPATIBLE,
    weights_only_compatible=False,
    predicted_error="Can only extend lists, but got <class 'collections.deque'>",
    unsafe_globals=("collections.deque",),
    findings=(
        Finding(
            rule="CKA201",
            category="not-allowlisted",
            severity=Severity.INCOMPATIBLE,
            global_name="collections.deque",
            kind=Kind.CONTAINER,
            remedy=Remedy.CONVERT,
            message="collections.deque is not an allowed global",
            hint="store list(d)",
            count=3,
            paths=("root['a']", "root['b'][0]"),
            offset=42,
        ),
    ),
    top_level=(TopLevelEntry(key="a", summary="deque[2 items]"),),
    stats=AuditStats(
        pickle_bytes=100, opcodes=20, tensors=1, tensor_bytes=64, bytes_read=900, seconds=0.01
    ),
)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_format_renders(fmt: OutputFormat) -> None:
    text = render([CANONICAL], fmt, ckptaudit.load_policy())
    assert "collections.deque" in text
    assert "run/model.pt" in text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(AssertionError):
        render([CANONICAL], "yaml", ckptaudit.load_policy())  # type: ignore[arg-type]


def test_text_golden() -> None:
    text = render([CANONICAL], OutputFormat.TEXT, ckptaudit.load_policy())
    golden = (Path(__file__).parent / "golden.txt").read_text()
    assert text == golden


def test_json_round_trip_keeps_every_field() -> None:
    doc = json.loads(render([CANONICAL], OutputFormat.JSON, ckptaudit.load_policy()))
    (f,) = doc["files"][0]["findings"]
    assert f == {
        "rule": "CKA201",
        "global": "collections.deque",
        "category": "not-allowlisted",
        "severity": "incompatible",
        "kind": "container",
        "remedy": "convert",
        "message": "collections.deque is not an allowed global",
        "hint": "store list(d)",
        "count": 3,
        "paths": ["root['a']", "root['b'][0]"],
        "offset": 42,
        "member": None,
        "opcode": None,
    }


def test_markdown_has_the_plan_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTAUDIT_NO_TORCH", "1")
    text = render([CANONICAL], OutputFormat.MARKDOWN, ckptaudit.load_policy())
    for heading in (
        "## Summary",
        "## Type conversions required",
        "## Recommended code changes",
        "## Verification",
        "### Top-level structure",
    ):
        assert heading in text
    assert "| `run/model.pt` | FAIL | incompatible | 3 |" in text  # 3 places of one deque
    assert "| `deque` | model.pt: `root['a']` (3) | store list(d) |" in text
    assert "Predicted first error" in text


def test_terminal_colour_keeps_every_bracket() -> None:
    """Rich reads [...] as markup: paths, labels and names full of brackets must survive."""
    from rich.console import Console

    evil = ckptaudit.audit_bytes(b"cos\nsystem\n(S'[bold]id[/]'\ntR.", name="weird [name].pt")
    text = render([CANONICAL, evil], OutputFormat.TEXT, ckptaudit.load_policy(), markup=True)
    console = Console(force_terminal=True, width=200, highlight=False, soft_wrap=True, record=True)
    console.print(text, end="")
    shown = console.export_text()
    plain = render([CANONICAL, evil], OutputFormat.TEXT, ckptaudit.load_policy(), markup=False)
    assert shown == plain


# --------------------------------------------------------------------------- hostile names
# From the third red-team campaign: a global's module and name, a member name and the file path all come
# from the attacker. Text must not carry terminal controls (clear the screen, retitle the
# window, print a fake verdict); Markdown must not gain table rows or break its code fences.

import re  # noqa: E402 - this section's own imports
import shlex  # noqa: E402

_INJECTED = "INJECTED-LINE"
_EVIL_MODULE = (
    f"os.legit\x1b[2J\x1b[H\x1b[32mOK\x1b[0m\n{_INJECTED}: compatible | `x` |\x1b]0;t\x07"
)
_EVIL_NAME = "Thing\r\x1b[K\n| injected | row |"
_EVIL_PATH = "dir/evil` | PASS | compatible | 0 |\n| `x\x1b[31m.pkl"


def _evil_report(path: str = _EVIL_PATH) -> FileReport:
    def u(s: str) -> bytes:
        raw = s.encode()
        return b"X" + len(raw).to_bytes(4, "little") + raw

    # STACK_GLOBAL of (module, name), called: a dangerous file whose names are the attack.
    report = ckptaudit.audit_bytes(
        b"\x80\x04" + u(_EVIL_MODULE) + u(_EVIL_NAME) + b"\x93)R.", name=path
    )
    assert report.status is Status.DANGEROUS, report.findings
    return report


def _assert_no_controls(text: str) -> None:
    for line in text.split("\n"):
        assert not any(c in line for c in "\x1b\x07\r"), repr(line)
        assert not line.lstrip().startswith((_INJECTED, "| injected", "| `x")), repr(line)


@pytest.mark.parametrize("markup", [False, True], ids=["plain", "markup"])
def test_text_escapes_control_characters_from_the_file(markup: bool) -> None:
    text = render(
        [_evil_report(), CANONICAL], OutputFormat.TEXT, ckptaudit.load_policy(), markup=markup
    )
    _assert_no_controls(text)
    assert "legit" in text and "Thing" in text and "DANGEROUS" in text


def _table_rows(text: str, heading: str) -> list[str]:
    lines = text.split("\n")
    start = lines.index(heading)
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[header + 2 :]:
        if not line:
            break
        rows.append(line)
    return rows


def test_markdown_summary_has_one_row_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTAUDIT_NO_TORCH", "1")
    text = render([_evil_report(), CANONICAL], OutputFormat.MARKDOWN, ckptaudit.load_policy())
    _assert_no_controls(text)
    rows = _table_rows(text, "## Summary")
    assert len(rows) == 2, rows
    for row in rows:  # four cells: five table pipes, every other pipe escaped
        assert len(re.findall(r"(?<!\\)\|", row)) == 5, row
    # CKA301 and CKA201 on one global at one place: one issue, not two.
    assert rows[0].endswith("| FAIL | dangerous | 3 |"), rows
    assert rows[1] == "| `run/model.pt` | FAIL | incompatible | 3 |"
    # Every table keeps its column count: no row is split or gains cells.
    for line in text.split("\n"):
        if line.startswith("| `Thing"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 4, line


def test_markdown_verification_command_quotes_each_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTAUDIT_NO_TORCH", "1")
    shell_path = "run dir/it's `a` | b; $(id) & x.pt"
    reports = [_evil_report(), _evil_report(shell_path)]
    text = render(reports, OutputFormat.MARKDOWN, ckptaudit.load_policy())
    lines = text.split("\n")
    fence = lines.index("```sh")
    assert lines[fence + 2] == "```", lines[fence : fence + 3]
    words = shlex.split(lines[fence + 1])
    assert words[:2] == ["ckptaudit", "audit"] and len(words) == 4, words
    assert words[3] == shell_path
    assert words[2].startswith("dir/evil` | PASS") and words[2].endswith(".pkl"), words


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_severity_renders_in_every_format(fmt: OutputFormat) -> None:
    """A new severity (or format) must be handled everywhere: no KeyError at render time."""
    from dataclasses import replace

    from ckptaudit.findings import Severity

    base = CANONICAL.findings[0]
    findings = tuple(
        replace(base, severity=s, message=f"m-{s.label}", global_name=f"mod.{s.name}")
        for s in Severity
    )
    text = render([replace(CANONICAL, findings=findings)], fmt, ckptaudit.load_policy())
    for s in Severity:
        if fmt is OutputFormat.GITHUB:
            continue  # one annotation per file
        wanted = f"**{s.label}**" if fmt is OutputFormat.MARKDOWN else f"m-{s.label}"
        assert wanted in text
