"""``--format github``: workflow commands as GitHub documents them, one annotation per file.

The syntax checked here is the one in GitHub's "Workflow commands for GitHub Actions":
``::{command} {key}={value},{key}={value}::{message}``; in the message ``%``, CR and LF are
written ``%25``, ``%0D``, ``%0A``; in a property value ``:`` and ``,`` also ``%3A``, ``%2C``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

import ckptaudit
from ckptaudit.cli import main
from ckptaudit.findings import AuditStats, FileReport, Finding, Kind, Remedy, Severity, Status
from ckptaudit.report.github import escape_data, escape_property, render_github, workflow_command

_COMMAND = re.compile(r"^::(?P<cmd>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """Read one workflow command as the runner does (documented escaping reversed)."""
    m = _COMMAND.match(line)
    assert m, f"not a workflow command: {line!r}"
    props: dict[str, str] = {}
    for pair in filter(None, (m.group("props") or "").split(",")):
        key, sep, value = pair.partition("=")
        assert sep, f"property without '=': {pair!r}"
        props[key] = _unescape_property(value)
    return m.group("cmd"), props, _unescape_data(m.group("data"))


def _finding(**changes: object) -> Finding:
    base = Finding(
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
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _report(path: str, *findings: Finding, status: Status = Status.INCOMPATIBLE) -> FileReport:
    return FileReport(
        path=path,
        format="torch-zip",
        status=status,
        weights_only_compatible=status is Status.COMPATIBLE,
        predicted_error="Unsupported global: GLOBAL collections.deque" if findings else None,
        unsafe_globals=tuple(sorted({f.global_name for f in findings if f.global_name})),
        findings=findings,
        stats=AuditStats(),
    )


def test_escaping_follows_the_documented_table() -> None:
    assert escape_data("50%\r\nnext: a, b") == "50%25%0D%0Anext: a, b"
    assert escape_property("50%\r\nnext: a, b") == "50%25%0D%0Anext%3A a%2C b"
    # '%' first: an escape sequence already in the text must survive as text.
    assert escape_data("%0A") == "%250A"
    assert _unescape_data(escape_data("%0A\n%25")) == "%0A\n%25"
    assert workflow_command("error", "m", file="a,b.pt", title="t: x") == (
        "::error file=a%2Cb.pt,title=t%3A x::m"
    )
    assert workflow_command("notice", "only a message") == "::notice::only a message"


def test_one_annotation_per_file_with_every_issue_once() -> None:
    reports = [
        _report(
            "models/agent.pt",
            _finding(),
            _finding(
                rule="CKA203",
                category="forbidden-operation",
                message="APPENDS on collections.deque",
            ),
        ),
        _report("models/clean.pt", status=Status.COMPATIBLE),
    ]
    lines = render_github(reports, ckptaudit.load_policy()).splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert len(commands) == 1  # the clean file has nothing to show
    cmd, props, message = parse(commands[0])
    assert cmd == "error"
    # One deque breaking two rules at the same places: one issue of 3 places, listed once.
    assert props == {"file": "models/agent.pt", "title": "ckptaudit: INCOMPATIBLE (3 issues)"}
    assert "line" not in props  # a checkpoint is binary: no line to point at
    assert message.splitlines() == [
        "predicted error: Unsupported global: GLOBAL collections.deque",
        "collections.deque (container): 3 places [CKA201, CKA203]",
        "  [CKA201] collections.deque is not an allowed global",
        "  [CKA203] APPENDS on collections.deque",
        "  remedy: convert; hint: store list(d)",
        "  at root['a']",
        "  at root['b'][0]",
        "  ... and 1 more",
        "unsafe globals: collections.deque",
    ]
    assert lines[-1] == "ckptaudit: 2 files audited: 1 compatible, 1 incompatible"


@pytest.mark.parametrize(
    ("severity", "status", "level"),
    [
        (Severity.DANGEROUS, Status.DANGEROUS, "error"),
        (Severity.ERROR, Status.ERROR, "error"),
        (Severity.INCOMPATIBLE, Status.INCOMPATIBLE, "error"),
        (Severity.INFO, Status.COMPATIBLE, "notice"),
    ],
)
def test_level_follows_the_worst_finding(severity: Severity, status: Status, level: str) -> None:
    text = render_github([_report("x.pt", _finding(severity=severity), status=status)], None)
    assert parse(text.splitlines()[0])[0] == level


def test_hostile_names_cannot_start_a_command_of_their_own() -> None:
    """A global, path or file name chosen by an attacker stays inside its own command."""
    evil = "x\n::set-output name=verdict::compatible\r\n::error::fake %0A, : done\x1b[2J"
    report = _report(
        "dir,with:odd%name\n.pt",
        _finding(
            global_name=evil,
            message=f"{evil} is not an allowed global",
            paths=(f"root[{evil!r}]", f"root['{evil}']"),
            hint=evil,
            member=evil,
        ),
    )
    text = render_github([report], None)
    lines = text.splitlines()
    assert [line[:2] == "::" for line in lines] == [True, False]
    _, props, message = parse(lines[0])
    # The file property is the exact name on disk (escaped, not rewritten) ...
    assert props["file"] == "dir,with:odd%name\n.pt"
    # ... while text from the file is made printable: no raw CR, LF or escape character.
    for line in message.splitlines():
        assert "\r" not in line and "\x1b" not in line
        assert not line.startswith("::")
    assert "::set-output name=verdict::compatible" in message  # shown, as inert text
    assert "%0A, : done" in message  # a literal escape sequence survives as text


def test_more_files_than_github_shows_are_counted_in_the_log() -> None:
    reports = [_report(f"m{i}.pt", _finding()) for i in range(12)]
    lines = render_github(reports, None).splitlines()
    assert sum(line.startswith("::error ") for line in lines) == 12
    assert (
        lines[-1]
        == "ckptaudit: GitHub shows 10 error annotations per step; 2 more are only in this log"
    )


def test_cli_format_github_on_real_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    clean, bad = tmp_path / "clean.pt", tmp_path / "bad.pt"
    torch.save({"w": torch.ones(2)}, clean)
    torch.save({"d": __import__("collections").deque([1, 2])}, bad)
    status = main(["audit", "--format", "github", str(clean), str(bad)])
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    (command,) = [line for line in out if line.startswith("::")]
    cmd, props, message = parse(command)
    assert (cmd, props["file"]) == ("error", str(bad))
    assert "collections.deque" in message and "root['d']" in message
