"""The plan's script and its findings document, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts the script in a new Python (most of them also build checkpoints with torch).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "checkpoint_audit.py"
MORPH = "root['model_state_dict']['slots.mid._extra_state']"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_help() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "--generate-test" in result.stdout and "--generate-morphogenetic" in result.stdout


def test_missing_file_is_a_clear_error() -> None:
    result = _run("/no/such/checkpoint.pt")
    assert result.returncode == 1
    assert "no such checkpoint file" in result.stderr


@pytest.mark.torch
def test_generate_morphogenetic_has_four_sections_and_every_path(tmp_path: Path) -> None:
    result = _run("--generate-morphogenetic", "--output-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    out = result.stdout
    sections = re.findall(r"^=== (\d)\. ", out, flags=re.M)
    assert sections == ["1", "2", "3", "4"]
    assert "FAIL" in out and "WeightsUnpickler error: Unsupported global" in out
    for path, what in [
        (f"{MORPH}['seed_state']", "SeedState (dataclass"),
        (f"{MORPH}['seed_state'].stage", "SeedStage (enum"),
        (f"{MORPH}['seed_state'].stage_history[0]", "SeedStage (enum"),
        (f"{MORPH}['seed_state'].stage_entered_at", "datetime.datetime (datetime"),
        (f"{MORPH}['seed_state'].stage_history", "collections.deque (container"),
        (f"{MORPH}['alpha_schedule']", "SigmoidBlend (nn.Module"),
    ]:
        assert any(line.startswith(f"{path}: ") and what in line for line in out.splitlines()), path
    assert "model_state_dict: OrderedDict[" in out


@pytest.mark.torch
def test_fixed_checkpoints_pass(tmp_path: Path) -> None:
    for flag in ("--generate-test", "--generate-morphogenetic"):
        result = _run(flag, "--fixed", "--output-dir", str(tmp_path))
        assert result.returncode == 0, result.stdout
        assert "torch.load(path, weights_only=True): PASS" in result.stdout
        assert "=== 3. Compatibility issues (0) ===" in result.stdout


@pytest.mark.torch
def test_without_torch_section_one_gives_the_prediction(tmp_path: Path) -> None:
    result = _run("--generate-test", "--output-dir", str(tmp_path))
    path = tmp_path / "ppo-legacy.pt"
    result = _run(str(path), env={"CKPTAUDIT_NO_TORCH": "1"})
    assert result.returncode == 1
    assert "predicted first error" in result.stdout
    assert "Unsupported global: GLOBAL ckptaudit_demo.models.PPOConfig" in result.stdout


@pytest.mark.torch
def test_findings_document_regenerates_identically(tmp_path: Path) -> None:
    committed = ROOT / "docs" / "checkpoint-audit-results.md"
    if not committed.exists():
        pytest.fail("docs/checkpoint-audit-results.md is missing; run tools/make_findings_doc.py")
    out = tmp_path / "results.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_findings_doc.py"), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 0, result.stderr

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("Generated on ")]

    assert body(out.read_text()) == body(committed.read_text())
    text = committed.read_text()
    assert "| `build/examples/morphogenetic-legacy.pt` | FAIL |" in text
    assert "| `build/examples/morphogenetic-fixed.pt` | PASS | compatible | 0 |" in text
    assert "## Type conversions required" in text
    assert "`to_dict()`" in text  # dataclass recommendation tailored to what was found
