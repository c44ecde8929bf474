"""The command line: exit codes, formats, allowlists, directories, explain."""

from __future__ import annotations

import json
from pathlib import Path

import oracle_types as ot
import pytest
import torch

from ckptaudit.cli import main


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, obj in {
        "clean": {"w": torch.ones(2)},
        "enum": {"stage": ot.Stage.ACTIVE},
        "deque": {"d": __import__("collections").deque([1])},
    }.items():
        out[name] = tmp_path / "ckpts" / f"{name}.pt"
        out[name].parent.mkdir(exist_ok=True)
        torch.save(obj, out[name])
    evil = tmp_path / "ckpts" / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    out["evil"] = evil
    broken = tmp_path / "ckpts" / "broken.pt"
    broken.write_bytes(b"PK\x03\x04garbage")
    out["broken"] = broken
    return out


def test_exit_codes(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(files["clean"])]) == 0
    assert main(["audit", str(files["enum"])]) == 1
    assert main(["audit", str(files["broken"])]) == 3
    assert main(["audit", str(files["broken"]), str(files["enum"])]) == 1
    assert main(["audit", str(files["evil"]), "--fail-on", "dangerous"]) == 1
    assert main(["audit", str(files["enum"]), "--fail-on", "dangerous"]) == 0
    assert main(["audit", str(files["evil"]), "--fail-on", "never"]) == 0
    assert main(["audit", "--no-such-flag", str(files["clean"])]) == 2
    assert main(["audit", "--allow", "nodot", str(files["clean"])]) == 2
    assert main([]) == 2
    capsys.readouterr()


def test_allow_and_allow_file(files: dict[str, Path], tmp_path: Path) -> None:
    assert main(["audit", str(files["enum"]), "--allow", "oracle_types.Stage"]) == 0
    allow = tmp_path / "allow.txt"
    allow.write_text("# our enums\noracle_types.Stage  # trusted\n")
    assert main(["audit", str(files["enum"]), "--allow-file", str(allow)]) == 0
    # Allowlisting a deque cannot work: its items arrive by APPENDS.
    assert main(["audit", str(files["deque"]), "--allow", "collections.deque"]) == 1


def test_bad_allow_file_is_a_usage_error(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not a name\n")
    assert main(["audit", str(files["clean"]), "--allow-file", str(bad)]) == 2
    assert main(["audit", str(files["clean"]), "--allow-file", str(tmp_path / "none")]) == 2


def test_json_output_follows_the_schema(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(["audit", str(files["enum"].parent), "--format", "json", "-o", str(out), "-j", "1"])
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ckptaudit/1"
    assert set(doc["tool"]) == {"name", "version"}
    assert doc["policy"] == {"torch": "2.13.0", "allowed_extra": []}
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    assert set(by_name) == {"clean.pt", "enum.pt", "deque.pt", "evil.pkl", "broken.pt"}
    enum = by_name["enum.pt"]
    assert enum["status"] == "incompatible" and enum["weights_only_compatible"] is False
    assert enum["unsafe_globals"] == ["oracle_types.Stage"]
    (finding,) = [f for f in enum["findings"] if f["global"] == "oracle_types.Stage"]
    assert finding["kind"] == "enum" and finding["remedy"] == "allowlist"
    assert finding["paths"] == ["root['stage']"] and finding["count"] == 1
    assert isinstance(finding["offset"], int)
    for key in ("category", "severity", "message", "hint"):
        assert isinstance(finding[key], str)
    assert set(enum["stats"]) >= {
        "pickle_bytes",
        "tensors",
        "tensor_bytes",
        "bytes_read",
        "seconds",
    }
    assert enum["top_level"] == [{"key": "stage", "summary": "Stage"}]
    assert by_name["evil.pkl"]["status"] == "dangerous"
    assert by_name["broken.pt"]["status"] == "error" and by_name["broken.pt"]["error"]


def test_text_output_lists_paths_and_hints(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["audit", str(files["deque"])])
    text = capsys.readouterr().out
    assert "INCOMPATIBLE" in text
    assert "collections.deque" in text and "root['d']" in text
    assert "remedy: convert" in text
    assert "top-level structure" in text and "d  collections.deque" not in text


def test_parallel_and_sequential_runs_agree(files: dict[str, Path], tmp_path: Path) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(12):
        (many / f"m{i:02}.pt").write_bytes(files["enum" if i % 2 else "clean"].read_bytes())
    from ckptaudit.runner import audit_paths

    one = audit_paths([many], jobs=1)
    two = audit_paths([many], jobs=2)
    assert [(r.path, r.status) for r in one] == [(r.path, r.status) for r in two]


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "CKA203"]) == 0
    assert "APPEND" in capsys.readouterr().out
    assert main(["explain"]) == 0
    assert "CKA301" in capsys.readouterr().out
    assert main(["explain", "CKA999"]) == 2


def test_sarif_output_is_valid_against_the_schema(files: dict[str, Path], tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    out = tmp_path / "r.sarif"
    main(["audit", str(files["deque"]), str(files["evil"]), "--format", "sarif", "-o", str(out)])
    doc = json.loads(out.read_text())
    schema_path = (
        Path(__file__).resolve().parents[3] / "shared" / "schemas" / "sarif-schema-2.1.0.json"
    )
    if not schema_path.exists():
        pytest.skip("shared SARIF schema not present")
    jsonschema.validate(doc, json.loads(schema_path.read_text()))
    levels = {r["ruleId"]: r["level"] for r in doc["runs"][0]["results"]}
    assert levels["CKA301"] == "error" and levels["CKA201"] == "warning"


def test_jsonl_streams_one_object_per_file(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    code = main(
        ["audit", str(files["enum"].parent), "--format", "jsonl", "-o", str(out), "-j", "2"]
    )
    assert code == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    assert all(line["schema"] == "ckptaudit/1" and line["torch"] == "2.13.0" for line in lines)
    by_name = {Path(line["path"]).name: line for line in lines}
    assert by_name["enum.pt"]["unsafe_globals"] == ["oracle_types.Stage"]
    assert by_name["evil.pkl"]["status"] == "dangerous"
    # Same content as the JSON document, file by file.
    doc = tmp_path / "r.json"
    main(["audit", str(files["enum"].parent), "--format", "json", "-o", str(doc), "-j", "1"])
    for entry in json.loads(doc.read_text())["files"]:
        line = by_name[Path(entry["path"]).name]
        assert {k: v for k, v in line.items() if k not in ("schema", "torch", "stats")} == {
            k: v for k, v in entry.items() if k != "stats"
        }


def test_progress_bar_runs_do_not_change_results(files: dict[str, Path]) -> None:
    from ckptaudit.runner import audit_paths

    quiet = audit_paths([files["enum"].parent], jobs=1)
    with_bar = audit_paths([files["enum"].parent], jobs=2, progress=True)
    assert [(r.path, r.status) for r in quiet] == [(r.path, r.status) for r in with_bar]


def test_a_directory_without_checkpoints_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    assert main(["audit", str(tmp_path)]) == 2
    assert main(["audit", str(tmp_path), "--format", "jsonl"]) == 2


# --------------------------------------------------------------------------- special files
# From the third red-team campaign: opening a FIFO for reading blocks until a writer appears, so an audit
# of a directory holding one (a tar or a model directory can ship it) never ended. The CLI runs
# in a subprocess with a timeout, so a hang fails the test instead of blocking the run.

import os  # noqa: E402 - this section's own imports
import subprocess  # noqa: E402
import sys  # noqa: E402

pytestmark = pytest.mark.torch


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "ckptaudit", *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"ckptaudit {' '.join(args)} hung (still running after 60 s)")


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no os.mkfifo on this platform")
    path = tmp_path / "d" / "f.pt"
    path.parent.mkdir()
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("target", ["directory", "fifo"])
def test_a_fifo_is_an_error_not_a_hang(fifo: Path, target: str) -> None:
    done = _run_cli("audit", str(fifo.parent if target == "directory" else fifo), "-j", "1")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "not a regular file" in done.stdout + done.stderr, (done.stdout, done.stderr)
