"""The pre-commit hook (.pre-commit-hooks.yaml), driven by the real pre-commit.

``pre-commit try-repo`` installs the hook from a snapshot of this repository into its own
environment (pip, as for any user) and runs it in a throwaway git repository; a project
config then passes the documented ``args``. The install must not pull torch.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_helpers import REPO, clean_env, run

from ckptaudit.discovery import CHECKPOINT_SUFFIXES

yaml = pytest.importorskip("yaml")
(HOOK,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())


def test_the_hook_takes_exactly_the_checkpoint_suffixes() -> None:
    assert HOOK["id"] == "ckptaudit" and HOOK["language"] == "python"
    files = re.compile(HOOK["files"])
    for suffix in CHECKPOINT_SUFFIXES:
        assert files.search(f"runs/a{suffix}") and files.search(f"RUNS/A{suffix.upper()}")
        assert not files.search(f"runs/a{suffix}.txt")
    for other in ("a.py", "a.ptx", "a.pt.json", "pt", "a_pt", "model.onnx"):
        assert not files.search(other), other
    alternatives = re.search(r"\\\.\((.*)\)\$", HOOK["files"])
    assert alternatives and {f".{s}" for s in alternatives.group(1).split("|")} == set(
        CHECKPOINT_SUFFIXES
    )


GIT = [
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.invalid",
    "-c",
    "commit.gpgsign=false",
]


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A throwaway git repository with checkpoints, and pre-commit's environment."""
    root = tmp_path_factory.mktemp("project")
    home = tmp_path_factory.mktemp("pre-commit-home")
    run(["git", "init", "-q", "-b", "main", root])
    for name, path in checkpoints.items():
        shutil.copy(path, root / name)
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "allow.txt").write_text("# trusted by this project\ncollections.deque\n")
    run([*GIT, "add", "-A"], cwd=root)
    env = clean_env(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never")
    yield root, env


def pre_commit(*args: str | Path, cwd: Path, env: dict[str, str]):  # type: ignore[no-untyped-def]
    return run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, check=False)


@pytest.mark.integration
def test_try_repo_fails_an_incompatible_checkpoint(
    snapshot: Path, project: tuple[Path, dict[str, str]]
) -> None:
    """try-repo installs into a store of its own each time (a full pip install): once."""
    root, env = project
    bad = pre_commit(
        "try-repo",
        snapshot,
        "ckptaudit",
        "--files",
        "good.pt",
        "bad.pt",
        "notes.txt",
        cwd=root,
        env=env,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"^ckptaudit\.+Failed$", bad.stdout, re.M), bad.stdout
    assert "bad.pt  [torch-zip]  INCOMPATIBLE" in bad.stdout
    assert "good.pt  [torch-zip]  COMPATIBLE" in bad.stdout
    assert "at root['buffer']" in bad.stdout
    assert "notes.txt" not in bad.stdout.split("Failed", 1)[1]  # not a checkpoint name


@pytest.mark.integration
def test_the_hook_passes_loadable_checkpoints_and_takes_its_args(
    snapshot: Path, project: tuple[Path, dict[str, str]]
) -> None:
    root, env = project
    rev = run(["git", "rev-parse", "HEAD"], cwd=snapshot).stdout.strip()

    def configure(args: list[str] | None) -> None:
        hook: dict[str, object] = {"id": "ckptaudit"}
        if args is not None:
            hook["args"] = args
        (root / ".pre-commit-config.yaml").write_text(
            yaml.safe_dump(
                {
                    "repos": [
                        {"repo": str(snapshot), "rev": rev, "hooks": [hook]},
                    ]
                }
            )
        )

    configure(None)
    ok = pre_commit("run", "--files", "good.pt", "notes.txt", cwd=root, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^ckptaudit\.+Passed$", ok.stdout, re.M), ok.stdout
    assert pre_commit("run", "--files", "bad.pt", cwd=root, env=env).returncode == 1

    # The hook's environment: ckptaudit, and neither torch nor numpy.
    sites = list(Path(env["PRE_COMMIT_HOME"]).glob("repo*/py_env-*/lib/python*/site-packages"))
    assert sites, "pre-commit built no python environment"
    for site in sites:
        assert (site / "ckptaudit").is_dir()
        assert not (site / "torch").exists() and not (site / "numpy").exists()

    configure(["--fail-on", "dangerous"])
    assert pre_commit("run", "--files", "bad.pt", cwd=root, env=env).returncode == 0
    evil = pre_commit("run", "--files", "bad.pt", "evil.pkl", cwd=root, env=env)
    assert evil.returncode == 1 and "evil.pkl  [pickle]  DANGEROUS" in evil.stdout

    # Allowlisting cannot fix a deque filled by APPENDS: still failing, and the hint says so.
    configure(["--allow-file", "allow.txt"])
    still = pre_commit("run", "--files", "bad.pt", cwd=root, env=env)
    assert still.returncode == 1 and "store list(d)" in still.stdout
    torch = pytest.importorskip("torch")
    torch.save({"when": __import__("datetime").date(2024, 1, 1)}, root / "dated.pt")
    (root / "allow.txt").write_text("datetime.date\n")
    assert pre_commit("run", "--files", "dated.pt", cwd=root, env=env).returncode == 0
    configure([])
    assert pre_commit("run", "--files", "dated.pt", cwd=root, env=env).returncode == 1
