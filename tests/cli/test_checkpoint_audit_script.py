"""The plan's script and its findings document, end to end."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts the script in a new Python (most of them also build checkpoints with torch);
# the script, not the audit's core, is under test: one pass of `make unit` runs them.
pytestmark = [pytest.mark.slow, pytest.mark.once]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "checkpoint_audit.py"
DOC = ROOT / "docs" / "checkpoint-audit-results.md"
MORPH = "root['model_state_dict']['slots.mid._extra_state']"
SUCCESS = "SUCCESS - checkpoint is already compatible!"


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Both of the plan's legacy checkpoints, built and audited by one run of the script."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("legacy")
    result = _run(
        "--generate-test", "--generate-morphogenetic", "--output-dir", str(folder), "--torch-check"
    )
    assert result.returncode == 1, result.stderr
    return folder, result.stdout


def test_help() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "--generate-test" in result.stdout and "--generate-morphogenetic" in result.stdout


def test_the_script_is_executable_in_the_repository() -> None:
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    listed = subprocess.run(
        ["git", "ls-files", "-s", "scripts/checkpoint_audit.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode == 0 and listed.stdout:
        assert listed.stdout.split()[0] == "100755", listed.stdout  # what a clone gets
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: checkpoint_audit.py" in result.stdout


def test_without_arguments_it_prints_the_usage_and_exits_1() -> None:
    result = _run()
    assert result.returncode == 1
    assert result.stderr.startswith("usage: checkpoint_audit.py")


def test_missing_file_is_a_clear_error() -> None:
    result = _run("/no/such/checkpoint.pt")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no such file or directory: /no/such/checkpoint.pt"


@pytest.mark.torch
def test_a_directory_is_audited_file_by_file(tmp_path: Path) -> None:
    import torch

    torch.save({"w": torch.ones(1)}, tmp_path / "a.pt")
    torch.save({"d": __import__("collections").deque([1])}, tmp_path / "b.pt")
    result = _run(str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.count("=== 1. weights_only=True load test ===") == 2
    assert f"Checkpoint audit: {tmp_path / 'a.pt'}" in result.stdout
    assert SUCCESS in result.stdout and "FAILED: " in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(str(empty))
    assert result.returncode == 1 and "no checkpoint files in directory" in result.stderr


@pytest.mark.torch
def test_generate_morphogenetic_has_four_sections_and_every_path(legacy: tuple[Path, str]) -> None:
    out = legacy[1].split("Checkpoint audit: ")[2]
    assert out.startswith(str(legacy[0] / "morphogenetic-legacy.pt"))
    sections = re.findall(r"^=== (\d)\. ", out, flags=re.M)
    assert sections == ["1", "2", "3", "4"]
    section1 = out.split("=== 1. weights_only=True load test ===\n")[1].split("\n")
    assert section1[0].startswith("FAILED: UnpicklingError: Weights only load failed.")
    assert "WeightsUnpickler error: Unsupported global" in out
    assert "(torch 2.13.0's own error" in out
    for path, what in [
        (f"{MORPH}['seed_state']", "SeedState (object"),
        (f"{MORPH}['seed_state'].stage", "SeedStage (enum"),
        (f"{MORPH}['seed_state'].stage_history[0]", "SeedStage (enum"),
        (f"{MORPH}['seed_state'].stage_entered_at", "datetime.datetime (datetime"),
        (f"{MORPH}['seed_state'].stage_history", "collections.deque (container"),
        (f"{MORPH}['alpha_schedule']", "SigmoidBlend (nn.Module"),
    ]:
        assert any(line.startswith(f"{path}: ") and what in line for line in out.splitlines()), path
    assert "model_state_dict: OrderedDict[" in out


@pytest.mark.torch
def test_section_three_counts_what_it_lists(legacy: tuple[Path, str]) -> None:
    """The header's count is the number of lines below it: the deque breaks two rules at one
    path and is one line, one issue."""
    for out in legacy[1].split("Checkpoint audit: ")[1:]:
        header = re.search(r"^=== 3\. Compatibility issues \((\d+)\) ===$", out, flags=re.M)
        assert header is not None
        body = out[header.end() :].split("\n\n")[0].strip().splitlines()
        issues = [line for line in body if line.startswith("root")]
        assert len(issues) == int(header.group(1)), body
        deque_lines = [line for line in issues if "collections.deque" in line]
        assert len(deque_lines) == 1, deque_lines


@pytest.mark.torch
def test_generate_test_builds_the_plans_agent(tmp_path: Path) -> None:
    import torch

    result = _run("--generate-test", "--fixed", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    saved = torch.load(tmp_path / "ppo-fixed.pt", weights_only=True)
    assert (saved["state_dim"], saved["action_dim"]) == (50, 4)  # PPOAgent(state_dim=50, ...)
    assert saved["metadata"]["test"] is True
    assert set(saved["metadata"]) == {"test", "timestamp"}
    assert isinstance(saved["metadata"]["timestamp"], float)


@pytest.mark.torch
def test_without_torch_check_section_one_gives_the_prediction(legacy: tuple[Path, str]) -> None:
    path = legacy[0] / "ppo-legacy.pt"
    result = _run(str(path), env={"CKPTAUDIT_NO_TORCH": "1"})
    assert result.returncode == 1
    assert "FAILED: Unsupported global: GLOBAL ckptaudit_demo.models.PPOConfig" in result.stdout
    assert "(predicted by ckptaudit without running torch" in result.stdout


@pytest.mark.torch
def test_findings_document_regenerates_identically(tmp_path: Path) -> None:
    if not DOC.exists():
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

    assert body(out.read_text()) == body(DOC.read_text())
    text = DOC.read_text()
    assert "| `build/examples/morphogenetic-legacy.pt` | FAIL |" in text
    assert "| `build/examples/morphogenetic-fixed.pt` | PASS | compatible | 0 |" in text
    assert "## Type conversions required" in text


def _header(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("Generated on "))


def test_findings_document_header_names_date_auditor_and_torch() -> None:
    import ckptaudit

    header = _header(DOC.read_text())
    assert re.match(r"Generated on \d{4}-\d{2}-\d{2} by ", header), header
    assert f"by ckptaudit {ckptaudit.__version__}," in header
    assert "judged against the weights_only policy of torch 2.13.0" in header


def test_findings_document_recommends_code_generated_from_the_checkpoint() -> None:
    text = DOC.read_text()
    code = text.split("## Recommended code changes")[1].split("## Verification")[0]
    # current get_extra_state beside the required one, with the plan's config key
    assert "Current code (as the checkpoint shows it):" in code
    assert "'seed_state': self.seed_state,  # SeedState (object)" in code
    assert "'alpha_schedule': self.alpha_schedule,  # SigmoidBlend (nn.Module)" in code
    assert "'seed_state': self.seed_state.to_dict()," in code
    assert "'alpha_schedule_config': self.alpha_schedule.to_config()," in code
    assert "def set_extra_state(self, state):" in code
    # SeedState's to_dict/from_dict pair, from the fields the checkpoint holds
    assert "class SeedState:\n    def to_dict(self) -> dict[str, Any]:" in code
    assert '"stage_history": [item.value for item in self.stage_history],' in code
    assert "def from_dict(cls, data: dict[str, Any]) -> SeedState:" in code
    # datetimes round-trip as they are: no timezone forced on naive values
    assert "tz=timezone.utc" not in code and "fromtimestamp" not in code


def _verification_command(text: str) -> str:
    block = text.split("## Verification")[1].split("```sh\n")[1].split("\n```")[0]
    assert "\n" not in block.strip(), "one command"
    return block.strip()


@pytest.mark.torch
def test_the_verification_command_passes_in_a_fresh_clone(tmp_path: Path) -> None:
    """It builds the fixed checkpoints and audits them: nothing needs to exist beforehand,
    and the temporary folder it builds them in is removed."""
    clone = tmp_path / "clone"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    assert not (clone / "build").exists()
    command = _verification_command(DOC.read_text())
    words = command.split()
    assert words[0] == "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, *words[1:]],
        cwd=clone,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(SUCCESS) == 2
    assert "ckptaudit_demo" not in result.stderr
