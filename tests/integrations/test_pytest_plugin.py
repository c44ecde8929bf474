"""ckptaudit.testing.assert_loadable, and the ckptaudit_check fixture as a project's pytest
finds it: through the pytest11 entry point, in a pytest run of its own (pytester)."""

from __future__ import annotations

import collections
from pathlib import Path

import oracle_types as ot
import pytest

import ckptaudit
from ckptaudit.errors import PolicyError
from ckptaudit.testing import CheckpointNotLoadable, allowed_name, assert_loadable

torch = pytest.importorskip("torch")

pytest_plugins = ["pytester"]


def test_a_compatible_object_passes_and_returns_its_audit() -> None:
    report = assert_loadable({"w": torch.ones(2), "step": 3})
    assert report.weights_only_compatible and report.path == "<object>"


def test_the_failure_lists_every_finding_with_its_paths_and_hint() -> None:
    obj = {
        "stats": {"recent": collections.deque([1.0, 2.0])},
        "stage": ot.Stage.ACTIVE,
        "history": [ot.Stage.DORMANT, ot.Stage.ACTIVE],
    }
    with pytest.raises(CheckpointNotLoadable) as caught:
        assert_loadable(obj)
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    newest = ckptaudit.load_policy().torch_version
    assert message.startswith(
        f"<object> would not load with torch.load(weights_only=True) (policy of torch {newest})"
    )
    for finding in caught.value.report.findings:
        assert f"[{finding.rule}] {finding.message}" in message
        assert f"hint: {finding.hint}" in message
    # every path of every finding, not only the first
    for path in (
        "root['stats']['recent']",
        "root['stage']",
        "root['history'][0]",
        "root['history'][1]",
    ):
        assert f"at {path}" in message
    assert "globals to convert or allowlist" in message and "oracle_types.Stage" in message


def test_allow_takes_names_and_classes_like_add_safe_globals() -> None:
    assert_loadable({"stage": ot.Stage.ACTIVE}, allow=[ot.Stage])
    assert_loadable({"stage": ot.Stage.ACTIVE}, allow=["oracle_types.Stage"])
    assert allowed_name(ot.Stage) == "oracle_types.Stage"
    with pytest.raises(TypeError):
        assert_loadable({"w": 1}, allow=["nodot"])
    with pytest.raises(TypeError):
        assert_loadable({"w": 1}, allow=[3])
    # Allowlisting cannot fix a deque with items (APPENDS): the assertion still fails.
    with pytest.raises(CheckpointNotLoadable):
        assert_loadable({"d": collections.deque([1])}, allow=["collections.deque"])


def test_paths_files_and_bad_input(tmp_path: Path) -> None:
    good, evil = tmp_path / "good.pt", tmp_path / "evil.pkl"
    torch.save({"w": torch.ones(2)}, good)
    evil.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    assert assert_loadable(good).path == str(good)
    assert assert_loadable(str(good)).weights_only_compatible
    with pytest.raises(CheckpointNotLoadable, match="is DANGEROUS"):
        assert_loadable(evil)
    with pytest.raises(CheckpointNotLoadable, match="could not be fully analysed"):
        assert_loadable(tmp_path / "missing.pt")


def test_torch_version_selects_a_policy_table() -> None:
    assert_loadable({"w": torch.ones(1)}, torch_version="2.13.0")
    with pytest.raises(PolicyError, match=r"no policy table for torch 9\.9\.9; have .*2\.13\.0"):
        assert_loadable({"w": torch.ones(1)}, torch_version="9.9.9")


@pytest.mark.integration
def test_the_fixture_through_the_entry_point(pytester: pytest.Pytester) -> None:
    """A project's own test run: the fixture is found without any conftest or -p option."""
    pytester.makeini(
        "[pytest]\nckptaudit_allow =\n    test_project.Stage\nckptaudit_torch_version = 2.13.0\n"
    )
    pytester.makepyfile(
        test_project="""
        import collections, enum
        import torch

        class Stage(enum.Enum):
            IDLE = 1

        def test_state_dict(ckptaudit_check, tmp_path):
            path = tmp_path / "model.pt"
            torch.save({"w": torch.ones(2)}, path)
            report = ckptaudit_check(path)
            assert report.weights_only_compatible

        def test_allowlisted_in_ini(ckptaudit_check):
            ckptaudit_check({"stage": Stage.IDLE})

        def test_deque(ckptaudit_check):
            ckptaudit_check({"buffer": collections.deque([1, 2])})

        def test_unknown_torch(ckptaudit_check):
            ckptaudit_check({"w": 1}, torch_version="1.0.0")
    """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert (
        "CheckpointNotLoadable: <object> would not load with torch.load(weights_only=True)" in out
    )
    assert "at root['buffer']" in out and "hint: store list(d)" in out
    assert "PolicyError: no policy table for torch 1.0.0" in out
    # The helper's own frames are hidden: the failure points at the project's line.
    assert "test_project.py:20: " in out or "test_project.py:20:" in out
    assert "ckptaudit/testing.py" not in out
