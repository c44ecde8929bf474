"""Object paths: exact expected paths for a hand-built nested example, and DAG safety."""

from __future__ import annotations

import collections
import pickle

import oracle_types as ot
import pytest

import ckptaudit

pytestmark = pytest.mark.torch


def _paths(report: ckptaudit.FileReport, name: str) -> list[str]:
    for f in report.findings:
        if f.global_name == name and f.rule == "CKA201":
            return list(f.paths)
    raise AssertionError(f"no finding for {name}")


def test_paths_of_a_nested_example() -> None:
    obj = {
        "model_state_dict": collections.OrderedDict(
            {"slots.mid._extra_state": {"seed_state": ot.WithEnum(stage=ot.Stage.ACTIVE)}}
        ),
        "runs": [1, ot.Config()],
        "pair": (0, ot.Stage.DORMANT),
        "history": collections.deque([ot.Stage.DORMANT]),
        7: ot.Plain(),
    }
    report = ckptaudit.audit_bytes(pickle.dumps(obj, protocol=2))
    base = "root['model_state_dict']['slots.mid._extra_state']['seed_state']"
    assert _paths(report, "oracle_types.WithEnum") == [base]
    # Stage.DORMANT is memoised once and referenced twice: both places are occurrences.
    assert _paths(report, "oracle_types.Stage") == [
        f"{base}.stage",
        "root['pair'][1]",
        "root['history'][0]",
    ]
    assert _paths(report, "oracle_types.Config") == ["root['runs'][1]"]
    assert _paths(report, "oracle_types.Plain") == ["root[7]"]
    assert _paths(report, "collections.deque") == ["root['history']"]


def test_a_shared_object_occurs_at_every_place_it_is_referenced() -> None:
    shared = ot.Config()
    obj = {"a": [shared, shared], "b": {"again": shared}}
    report = ckptaudit.audit_bytes(pickle.dumps(obj, protocol=2))
    (finding,) = [
        f for f in report.findings if f.global_name == "oracle_types.Config" and f.rule == "CKA201"
    ]
    assert finding.count == 3
    assert finding.paths == ("root['a'][0]", "root['a'][1]", "root['b']['again']")


def test_memo_dag_that_explodes_as_a_tree_is_walked_once() -> None:
    # Each level is a list holding the previous level twice: 2**60 paths as a tree. The
    # walk expands each list once, so the object is found at its 2 direct references only.
    stream = bytearray(b"\x80\x02cmod\nThing\n)\x81q\x00")
    for level in range(1, 61):
        stream += b"(h%ch%cl" % (level - 1, level - 1) + b"q%c" % level
    stream += b"."
    report = ckptaudit.audit_bytes(bytes(stream))
    (finding,) = [f for f in report.findings if f.global_name == "mod.Thing"]
    assert finding.count == 2
    assert finding.paths == ("root" + "[0]" * 60, "root" + "[0]" * 59 + "[1]")


def test_many_occurrences_are_counted_exactly_and_listed_with_a_cap() -> None:
    obj = {"items": [ot.Config() for _ in range(500)]}
    report = ckptaudit.audit_bytes(pickle.dumps(obj, protocol=2))
    (finding,) = [f for f in report.findings if f.global_name == "oracle_types.Config"]
    assert finding.count == 500
    assert len(finding.paths) == 20
    assert finding.paths[:2] == ("root['items'][0]", "root['items'][1]")


def test_objects_not_reachable_from_root_are_still_reported() -> None:
    # A call built and popped before STOP: a real unpickler still runs it.
    stream = b"\x80\x02cmod\nThing\n)R0N."
    report = ckptaudit.audit_bytes(stream)
    (finding,) = [f for f in report.findings if f.global_name == "mod.Thing" and f.rule == "CKA201"]
    assert finding.paths[0].startswith("<not reachable from root")
