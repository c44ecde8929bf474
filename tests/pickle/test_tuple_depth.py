"""Tuples nested in tuples are refused past ``max_tuple_depth``, by both cores alike.

Hashing a tuple recurses through the tuples in it on the C stack: a loader does it for a
dict key or a set item, and ckptaudit's own checks hash BUILD state keys. A 400,000-deep key
crashed the process; the emulator now knows each tuple's depth when it makes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from ckptaudit.errors import LimitExceeded
from ckptaudit.pickle import loop, paths
from ckptaudit.pickle.limits import DEFAULT_LIMITS
from ckptaudit.pickle.result import PickleResult
from ckptaudit.pickle.vm import run_pickle

LIMIT = DEFAULT_LIMITS.max_tuple_depth


@contextlib.contextmanager
def python_core() -> Iterator[None]:
    saved = loop._compiled, paths._compiled
    loop._compiled = paths._compiled = None
    try:
        yield
    finally:
        loop._compiled, paths._compiled = saved


def both(data: bytes) -> list[PickleResult]:
    results = [run_pickle(data)]
    if loop._compiled is not None:
        with python_core():
            results.append(run_pickle(data))
    return results


# Ways to wrap the tuple on the stack in one more level of tuple (TUPLE: see nested()).
WRAPS = {"TUPLE1": b"\x85", "TUPLE2": b"N\x86", "TUPLE3": b"NN\x87"}


def nested(depth: int, how: str) -> bytes:
    """A pickle whose root is a tuple ``depth`` deep, each level made by ``how``."""
    if how == "TUPLE":
        return b"\x80\x02" + b"(" * (depth - 1) + b")" + b"t" * (depth - 1) + b"."
    return b"\x80\x02)" + WRAPS[how] * (depth - 1) + b"."


@pytest.mark.parametrize("how", ["TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"])
def test_depth_at_the_limit_is_kept_and_one_more_is_refused(how: str) -> None:
    for result in both(nested(LIMIT, how)):
        assert result.complete, result.error
    for result in both(nested(LIMIT + 1, how)):
        assert isinstance(result.error, LimitExceeded)
        assert "nested more than" in str(result.error)
    fast, *slow = both(nested(LIMIT + 1, how))
    for other in slow:
        assert str(other.error) == str(fast.error) and other.end == fast.end


def test_shared_tuples_count_their_depth_once_each() -> None:
    """(t, t) with t memoized: a DAG, not a tree; its depth is what hashing walks."""
    level = b"q\x00h\x00h\x00\x86"  # memo t, then push (t, t)
    data = b"\x80\x02)" + level * (LIMIT + 1) + b"."
    for result in both(data):
        assert isinstance(result.error, LimitExceeded)
    ok = b"\x80\x02)" + level * (LIMIT - 1) + b"."
    for result in both(ok):
        assert result.complete


def test_deep_arguments_of_inst_still_name_its_global() -> None:
    """The limit must not hide what a call names: INST's global is recorded first."""
    deep = b")" + b"\x85" * (LIMIT - 1)  # LIMIT deep: the arguments tuple is one more
    data = b"\x80\x02(" + deep + b"ios\nsystem\n."
    for result in both(data):
        assert isinstance(result.error, LimitExceeded)
        assert [g.qualified for g in result.globals] == ["os.system"]


def test_obj_arguments_are_checked() -> None:
    deep = b")" + b"\x85" * (LIMIT - 1)  # LIMIT deep: the arguments tuple is one more
    data = b"\x80\x02(cbuiltins\nlist\n" + deep + b"o."
    for result in both(data):
        assert isinstance(result.error, LimitExceeded)


def test_tuples_that_hold_no_tuples_leave_no_trace() -> None:
    data = b"\x80\x02(" + b"K\x01K\x02\x86" * 1000 + b"l."
    for result in both(data):
        assert result.complete and len(result.root) == 1000
