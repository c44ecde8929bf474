"""The command line as a new user meets it: the real entry point, in a subprocess.

Outputs that cannot be written, the progress bar, paths that are missing or unreadable,
``--summary`` and ``-q``: each is one clear line and the documented exit status, never a
traceback, never a leftover file.
"""

from __future__ import annotations

import collections
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import oracle_types as ot
import pytest
import torch

# The checkpoints are written with torch.save; the command line, not the audit's core, is under
# test (each test starts ckptaudit in a new process): one pass of `make unit` runs them.
pytestmark = [pytest.mark.torch, pytest.mark.once]


def _cli(
    *args: str, cwd: Path | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ckptaudit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture()
def ckpts(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpts"
    folder.mkdir()
    torch.save({"w": torch.ones(2)}, folder / "clean.pt")
    torch.save({"stage": ot.Stage.ACTIVE}, folder / "enum.pt")
    torch.save({"d": collections.deque([1])}, folder / "deque.pt")
    (folder / "broken.pt").write_bytes(b"PK\x03\x04garbage")
    return folder


def _one_error_line(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), result.stderr


# --------------------------------------------------------------------------- -o
@pytest.mark.parametrize("target", ["missing-directory", "a-directory"])
@pytest.mark.parametrize(
    "command",
    [
        ("audit",),
        ("audit", "--format", "jsonl"),
        ("audit", "--format", "json"),
        ("report",),
        ("demo",),
    ],
    ids=lambda c: "-".join(c),
)
def test_an_output_that_cannot_be_written_is_one_line_exit_2_and_nothing_left(
    ckpts: Path, tmp_path: Path, command: tuple[str, ...], target: str
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "missing" / "report.txt" if target == "missing-directory" else out_dir
    args = [*command, "ppo"] if command == ("demo",) else [*command, str(ckpts / "enum.pt")]
    result = _cli(*args, "-o", str(output), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    _one_error_line(result, f"ckptaudit: error: cannot write {output}")
    assert list(out_dir.iterdir()) == []  # no .tmp-NNNN, no partial report
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


# --------------------------------------------------------------------------- progress
def test_the_progress_bar_goes_to_stderr_and_the_report_file_stays_clean(
    ckpts: Path, tmp_path: Path
) -> None:
    """`audit DIR > out.txt` on a terminal: the bar on the terminal, the file clean."""
    report = tmp_path / "out.txt"
    master, slave = pty.openpty()
    try:
        with report.open("w") as stdout:
            proc = subprocess.run(
                [sys.executable, "-m", "ckptaudit", "audit", str(ckpts), "-j", "1"],
                stdout=stdout,
                stderr=slave,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
                timeout=120,
            )
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert proc.returncode == 1  # enum.pt and deque.pt are incompatible
    text = report.read_text()
    assert text.startswith(str(ckpts / "broken.pt")), text[:200]  # no stray newline on top
    assert "auditing" in drawn.decode(errors="replace")  # the bar was drawn on the terminal


# --------------------------------------------------------------------------- paths
def test_a_path_that_does_not_exist_is_a_usage_error(ckpts: Path) -> None:
    for extra in ((), ("--fail-on", "never"), ("--format", "jsonl")):
        result = _cli("audit", str(ckpts / "clean.pt"), str(ckpts / "typo.pt"), *extra)
        assert result.returncode == 2, (extra, result.stderr)
        _one_error_line(result, f"ckptaudit: error: no such file or directory: {ckpts / 'typo.pt'}")
        assert result.stdout == ""
    result = _cli("report", str(ckpts / "typo.pt"), "-o", str(ckpts / "r.md"))
    assert result.returncode == 2
    _one_error_line(result, "ckptaudit: error: no such file or directory")


def _as_unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without root's right to read any file (or skip)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a file cannot be made unreadable")
    caps = "-dac_override,-dac_read_search"
    return (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")


def test_an_unreadable_file_is_one_line_permission_denied_exit_3(
    ckpts: Path, tmp_path: Path
) -> None:
    secret = ckpts / "secret.pt"
    shutil.copy(ckpts / "enum.pt", secret)
    secret.chmod(0)
    prefix = _as_unprivileged()
    result = _cli("audit", str(secret), prefix=prefix)
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{secret}  ERROR  cannot read: permission denied"
    assert "malformed" not in result.stdout and "Obtain the file again" not in result.stdout
    assert lines[1:] == ["1 file audited: 1 error; 0 issues"]
    # --fail-on never: still reported, exit 0 (documented).
    never = _cli("audit", str(secret), "--fail-on", "never", prefix=prefix)
    assert never.returncode == 0 and "cannot read: permission denied" in never.stdout
    as_json = json.loads(_cli("audit", str(secret), "--format", "json", prefix=prefix).stdout)
    (entry,) = as_json["files"]
    assert (entry["status"], entry["error"], entry["findings"]) == (
        "error",
        "cannot read: permission denied",
        [],
    )


# --------------------------------------------------------------------------- --summary, -q
def test_summary_is_one_line_per_file_and_the_totals(ckpts: Path) -> None:
    result = _cli("audit", str(ckpts), "--summary", "-j", "1")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    by_name = {Path(line.split("  ")[0]).name: line for line in lines[:-1]}
    assert by_name["clean.pt"].endswith("COMPATIBLE  loads with weights_only=True")
    assert "INCOMPATIBLE  1 issue: oracle_types.Stage" in by_name["enum.pt"]
    assert "INCOMPATIBLE  1 issue: collections.deque" in by_name["deque.pt"]
    assert "  ERROR  " in by_name["broken.pt"]
    assert lines[-1] == "4 files audited: 1 compatible, 1 error, 2 incompatible; 3 issues"


def test_quiet_shows_only_what_fails_the_run(ckpts: Path) -> None:
    result = _cli("audit", str(ckpts), "-q", "-j", "1")
    assert result.returncode == 1
    names = [Path(line.split("  ")[0]).name for line in result.stdout.splitlines()[:-1]]
    assert names == ["broken.pt", "deque.pt", "enum.pt"]
    allowed = _cli("audit", str(ckpts), "-q", "--allow", "oracle_types.Stage", "-j", "1")
    names = [Path(line.split("  ")[0]).name for line in allowed.stdout.splitlines()[:-1]]
    assert names == ["broken.pt", "deque.pt"]  # enum.pt passes once Stage is allowlisted


def test_summary_and_quiet_shape_only_the_text_format(ckpts: Path) -> None:
    for flag in ("--summary", "-q"):
        result = _cli("audit", str(ckpts), flag, "--format", "json")
        assert result.returncode == 2
        _one_error_line(result, "ckptaudit: error: --summary and -q shape the text format")
    both = _cli("audit", str(ckpts), "--summary", "-q")
    assert both.returncode == 2 and "Traceback" not in both.stderr


# --------------------------------------------------------------------------- one count
@pytest.mark.slow
def test_every_output_counts_the_same_issues(tmp_path: Path) -> None:
    """Text, JSON, the findings document and the plan's script give one number per file."""
    from ckptaudit_demo import build_checkpoint

    script = Path(__file__).resolve().parents[2] / "scripts" / "checkpoint_audit.py"
    for which in ("ppo", "morphogenetic"):
        path = tmp_path / f"{which}.pt"
        build_checkpoint(which, False, path)  # type: ignore[arg-type]
        text = _cli("audit", str(path)).stdout
        (from_text,) = re.findall(r"^  (\d+) issues in \d+ globals or operations$", text, re.M)
        from_json = json.loads(_cli("audit", str(path), "--format", "json").stdout)["files"][0]
        markdown = _cli("audit", str(path), "--format", "markdown").stdout
        (from_table,) = re.findall(
            r"^\| `[^`]+` \| FAIL \| incompatible \| (\d+) \|$", markdown, re.M
        )
        (from_heading,) = re.findall(r"^### Issues \((\d+)\)$", markdown, re.M)
        plan = subprocess.run(
            [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120
        ).stdout
        (from_plan,) = re.findall(r"^=== 3\. Compatibility issues \((\d+)\) ===$", plan, re.M)
        counts = {from_text, str(from_json["issue_count"]), from_table, from_heading, from_plan}
        assert len(counts) == 1, (which, counts)
        # the deque breaks two rules at one path: one issue, listed once everywhere
        assert text.count("  incompatible  collections.deque") == 1
        assert markdown.count("`collections.deque` (container)") == 1
