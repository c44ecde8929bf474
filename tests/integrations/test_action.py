"""action.yml, the composite GitHub Action: what can be checked without GitHub.

The YAML parses and declares what the README says; every ``run`` script is valid bash and
takes inputs only through the environment; the audit step's script is run, as the runner
runs it, against real checkpoints (exit status, GITHUB_OUTPUT, annotations, SARIF valid
against the official 2.1.0 schema); the install step installs from the action's own
checkout into a fresh venv, here without a C compiler.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from integration_helpers import REPO, clean_env, distributions, make_venv, run

yaml = pytest.importorskip("yaml")
torch = pytest.importorskip("torch")

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
STEPS: dict[str, dict[str, Any]] = {step["name"]: step for step in ACTION["runs"]["steps"]}
INSTALL, AUDIT, VERDICT = (STEPS[n] for n in ("Install ckptaudit", "Audit checkpoints", "Verdict"))


def _schema() -> dict[str, Any] | None:
    for parent in REPO.parents:
        found = parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"
        if found.exists():
            return json.loads(found.read_text())  # type: ignore[no-any-return]
    return None


def test_it_is_a_composite_action_with_the_documented_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) == {
        "paths",
        "fail-on",
        "format",
        "allow-file",
        "sarif",
        "sarif-file",
        "extras",
        "python-version",
    }
    assert set(ACTION["outputs"]) == {"exit-code", "sarif-file"}
    upload = STEPS["Upload SARIF to code scanning"]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert "inputs.sarif == 'true'" in upload["if"]
    # every ${{ inputs.x }} names a declared input
    used = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", (REPO / "action.yml").read_text()))
    assert used <= set(ACTION["inputs"]), used - set(ACTION["inputs"])


@pytest.mark.parametrize("name", [n for n, s in STEPS.items() if "run" in s])
def test_run_scripts_are_bash_and_take_inputs_only_from_the_environment(name: str) -> None:
    step = STEPS[name]
    assert step["shell"] == "bash"
    # An expression inside a script is pasted into it before bash runs: an input holding
    # `$(...)` would run. Inputs come in through `env:` instead.
    assert "${{" not in step["run"]
    result = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _workspace(tmp_path: Path) -> Path:
    models = tmp_path / "ws" / "models" / "nested"
    models.mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, models.parent / "good.pt")
    torch.save({"buffer": __import__("collections").deque([1])}, models / "bad.pt")
    (models.parent / "evil.pkl").write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    return tmp_path / "ws"


def run_step(
    step: dict[str, Any], workspace: Path, bin_dir: Path, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run a step's script as the runner does: its env (inputs at their defaults unless
    given), GITHUB_OUTPUT, bash; returns the process and the outputs it set."""
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    env = clean_env(
        PATH=f"{bin_dir}:/usr/bin:/bin",
        GITHUB_OUTPUT=str(workspace / ".out"),
        GITHUB_ACTION_PATH=str(REPO),
    )
    for key, value in step.get("env", {}).items():
        env[key] = re.sub(
            r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], str(value)
        )
    (workspace / ".out").write_text("")
    proc = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs = dict(line.split("=", 1) for line in (workspace / ".out").read_text().splitlines())
    return proc, outputs


BIN = Path(sys.executable).parent


def test_audit_step_annotates_and_hands_the_status_to_the_verdict(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    proc, outputs = run_step(AUDIT, ws, BIN)
    assert proc.returncode == 0, proc.stderr  # the verdict step fails the job, not this one
    assert outputs == {"exit-code": "1"}
    annotated = sorted(re.findall(r"^::error file=([^,]+),", proc.stdout, re.M))
    assert annotated == ["models/evil.pkl", "models/nested/bad.pt"]
    verdict = subprocess.run(["bash", "-c", VERDICT["run"]], env={"CKPTAUDIT_STATUS": "1"})
    assert verdict.returncode == 1
    assert subprocess.run(["bash", "-c", VERDICT["run"]], env={}).returncode == 2


def test_audit_step_writes_valid_sarif_and_expands_globs(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    proc, outputs = run_step(
        AUDIT, ws, BIN, sarif="true", format="text", paths="models/**/*.pt\n  models/evil.pkl"
    )
    assert proc.returncode == 0, proc.stderr
    assert outputs == {"sarif-file": "ckptaudit.sarif", "exit-code": "1"}
    assert "3 files audited: 1 compatible, 1 dangerous, 1 incompatible" in proc.stdout
    doc = json.loads((ws / "ckptaudit.sarif").read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in doc["runs"][0]["results"]
    }
    assert uris == {"models/nested/bad.pt", "models/evil.pkl"}
    schema = _schema()
    if schema is not None:
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.validate(doc, schema)


def test_audit_step_options_and_hostile_input(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _, outputs = run_step(AUDIT, ws, BIN, fail_on="dangerous", paths="models/nested")
    assert outputs["exit-code"] == "0"
    _, outputs = run_step(AUDIT, ws, BIN, fail_on="never")
    assert outputs["exit-code"] == "0"
    torch.save({"when": __import__("datetime").date(2024, 1, 1)}, ws / "date.pt")
    (ws / "allow.txt").write_text("datetime.date\n")
    _, outputs = run_step(AUDIT, ws, BIN, paths="date.pt")
    assert outputs["exit-code"] == "1"
    _, outputs = run_step(AUDIT, ws, BIN, paths="date.pt", allow_file="allow.txt")
    assert outputs["exit-code"] == "0"
    # An input is split into words and globbed, never evaluated.
    proc, outputs = run_step(AUDIT, ws, BIN, paths="models/good.pt $(touch pwned) `touch pwned2`")
    assert not (ws / "pwned").exists() and not (ws / "pwned2").exists()
    # The odd words are paths that do not exist: a usage error, as any missing path.
    assert outputs["exit-code"] == "2", proc.stdout
    _, outputs = run_step(AUDIT, ws, BIN, fail_on="sometimes")
    assert outputs["exit-code"] == "2"


@pytest.mark.integration
def test_install_step_from_the_checkout_without_a_c_compiler(
    snapshot: Path, tmp_path: Path
) -> None:
    """The action's install step in a fresh venv where the compiler fails: the package
    installs with the pure-Python core, and the CLI says so once per run."""
    checkout = tmp_path / "action"  # a clean copy: nothing built in it before
    shutil.copytree(snapshot, checkout)
    python = make_venv(tmp_path / "venv")
    ws = _workspace(tmp_path)
    for i in range(10):  # enough files for parallel workers: the note still comes once
        torch.save({"w": torch.ones(1)}, ws / "models" / f"more{i}.pt")
    env = clean_env(
        PATH=f"{python.parent}:/usr/bin:/bin",
        GITHUB_ACTION_PATH=str(checkout),
        CKPTAUDIT_EXTRAS="",
        CC="false",
        CXX="false",
    )
    install = run(["bash", "-e", "-c", INSTALL["run"]], cwd=ws, env=env)
    assert install.stdout.strip().endswith("(python core)"), install.stdout
    assert "torch" not in distributions(python)
    proc, outputs = run_step(AUDIT, ws, python.parent)
    assert outputs["exit-code"] == "1"
    assert proc.stderr.count("the compiled core is not built") == 1, proc.stderr
    assert proc.stdout.count("::error ") == 2
