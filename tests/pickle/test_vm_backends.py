"""The compiled dispatch loop (_loop.c) and the Python loop give identical results.

Every field of the result is compared, including object identity (memo sharing), error
messages and offsets, on valid pickles of every protocol, the hostile catalogue, and
thousands of deterministic mutants of both.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import io
import pickle
import pickletools
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hostile_cases import CASES
from hypothesis import given, settings
from support.strategies import opcode_soup

from ckptaudit.pickle import Call, Global, Opaque, PDict, PersId, PSet, loop, paths
from ckptaudit.pickle.vm import Event, PickleResult, run_pickle

compiled = loop._compiled
pytestmark = pytest.mark.skipif(compiled is None, reason="the compiled loop is not built")


def snapshot(result: PickleResult) -> list[Any]:
    """Flatten a result into comparable tokens; a shared object is a back-reference."""
    seen: dict[int, int] = {}
    keep: list[Any] = []  # holds the objects so that their ids stay unique during the walk
    tokens: list[Any] = [
        result.start,
        result.complete,
        result.end,
        result.protocol,
        None if result.error is None else (type(result.error).__name__, str(result.error)),
        sorted(result.opcode_counts.items()),
        sorted(result.opcode_first.items()),
        list(result.undecodable),
        result.opcodes,
    ]
    todo: list[Any] = [
        ("root", result.root),
        ("globals", result.globals),
        ("calls", result.calls),
        ("persids", result.persids),
        ("events", result.events),
    ]
    while todo:
        label, node = todo.pop()
        tokens.append(label)
        if node is None or type(node) in (bool, int, str, bytes, bytearray):
            tokens.append((type(node).__name__, node))
            continue
        if type(node) is float:
            tokens.append(("float", repr(node)))
            continue
        if id(node) in seen:
            tokens.append(("ref", seen[id(node)]))
            continue
        seen[id(node)] = len(seen)
        keep.append(node)
        fields: list[tuple[str, Any]]
        if type(node) in (list, tuple):
            fields = [(str(i), v) for i, v in enumerate(node)]
        elif type(node) is PDict:
            fields = [("flat", node.flat)]
        elif type(node) is PSet:
            fields = [("frozen", node.frozen), ("items", node.items)]
        elif type(node) in (Global, Call, PersId, Opaque):
            fields = [(name, getattr(node, name)) for name in type(node).__slots__]
        elif type(node) is Event:
            fields = [("op", node.op), ("target", node.target), ("offset", node.offset)]
        else:
            raise AssertionError(f"unexpected node type {type(node).__name__}")
        tokens.append((type(node).__name__, len(fields)))
        todo.extend(reversed(fields))
    return tokens


@contextlib.contextmanager
def python_core() -> Iterator[None]:
    """Run the block on the pure-Python loop and walker."""
    saved = loop._compiled, paths._compiled
    loop._compiled = paths._compiled = None
    try:
        yield
    finally:
        loop._compiled, paths._compiled = saved


def both(data: bytes, start: int = 0) -> tuple[list[Any], list[Any]]:
    """Snapshots of the compiled and the Python loop on the same input."""
    fast = snapshot(run_pickle(data, start))
    with python_core():
        slow = snapshot(run_pickle(data, start))
    return fast, slow


class Point:
    """A class pickled by reference (NEWOBJ + BUILD)."""

    def __init__(self) -> None:
        self.x = 1.5
        self.tags = ["a", "b"]


class Slotted:
    """Pickled as (None, slots) state."""

    __slots__ = ("a", "b")

    def __init__(self) -> None:
        self.a = Point()
        self.b = [Point()]


class WithState:
    """Pickled with a non-dict state (a __setstate__ step)."""

    def __getstate__(self) -> Any:
        return [Point()]

    def __setstate__(self, state: Any) -> None:
        pass


class KwOnly:
    """Pickled with NEWOBJ_EX keyword arguments."""

    def __new__(cls, *, p: Any = None) -> KwOnly:
        return super().__new__(cls)

    def __getnewargs_ex__(self) -> Any:
        return (), {"p": Point()}


def valid_pickles() -> list[bytes]:
    """Varied real pickles in every protocol, with sharing and the common reducers."""
    shared = [1, 2]
    values: list[Any] = [
        {"a": [1, 2.5, -7, 2**40, "x", b"y", None, True, False], "b": {"c": (1, 2, 3)}},
        {"set": {1, 2, 3}, "fs": frozenset({4}), "ba": bytearray(b"ab"), "c": 1 + 2j},
        [shared, shared, (shared,), {"s": shared}],
        collections.OrderedDict(a=1, b=[2]),
        collections.deque([1, 2, 3], maxlen=5),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        [Point(), Point()],
        ["ünïcödé" * 3, "x" * 300, b"z" * 300, 255, 256, 65535, 65536, -1, 2**31, -(2**31)],
        tuple(range(10)),
        [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    ]
    out = []
    for proto in range(6):
        for value in values:
            out.append(pickle.dumps(value, protocol=proto))
    return out


def mutants(seedlings: list[bytes], count: int, rng: random.Random) -> list[bytes]:
    """Deterministic damage: flipped bytes, inserted opcodes, truncation, splices."""
    opcodes = [op.code.encode("latin-1") for op in pickletools.opcodes]
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seedlings))
        for _ in range(rng.randint(1, 4)):
            how = rng.randrange(5)
            if not data:
                break
            at = rng.randrange(len(data))
            if how == 0:
                data[at] = rng.randrange(256)
            elif how == 1:
                data[at:at] = rng.choice(opcodes)
            elif how == 2:
                del data[at:]
            elif how == 3:
                del data[at : at + rng.randint(1, 8)]
            else:
                other = rng.choice(seedlings)
                cut = rng.randrange(len(other) + 1)
                data[at:] = other[cut:]
        out.append(bytes(data))
    return out


def test_snapshot_sees_differences() -> None:
    """The comparison itself can fail: two different pickles give different snapshots."""
    a = snapshot(run_pickle(pickle.dumps([1, 2], protocol=2)))
    b = snapshot(run_pickle(pickle.dumps([1, 3], protocol=2)))
    shared = [1]
    c = snapshot(run_pickle(pickle.dumps([shared, shared], protocol=2)))
    d = snapshot(run_pickle(pickle.dumps([[1], [1]], protocol=2)))
    assert a != b
    assert c != d


@pytest.mark.parametrize("index", range(60))
def test_valid_pickles_agree(index: int) -> None:
    data = valid_pickles()[index]
    fast, slow = both(data)
    assert fast == slow
    assert fast[1] is True  # complete


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_cases_agree(case: Any) -> None:
    for stream in (case.data, *case.streams, *case.broken_streams):
        fast, slow = both(stream)
        assert fast == slow


def test_mutants_agree() -> None:
    rng = random.Random(20261126)
    seedlings = valid_pickles() + [c.data for c in CASES if c.container == "pickle"]
    for data in mutants(seedlings, 4000, rng):
        fast, slow = both(data)
        assert fast == slow, data


def test_torch_checkpoints_agree() -> None:
    torch = pytest.importorskip("torch")
    import zipfile

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": 3}, buf)
    with zipfile.ZipFile(buf) as zf:
        name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        data = zf.read(name)
    fast, slow = both(data)
    assert fast == slow
    assert fast[1] is True
    rng = random.Random(7)
    for mutant in mutants([data], 1000, rng):
        fast, slow = both(mutant)
        assert fast == slow, mutant


def test_start_offset_and_memoryview_agree() -> None:
    data = b"junk" + pickle.dumps({"a": [1, 2]}, protocol=2) + b"tail"
    fast, slow = both(data, 4)
    assert fast == slow
    assert snapshot(run_pickle(memoryview(data), 4)) == fast


# -- the path walker


def all_nodes(result: PickleResult) -> list[Any]:
    """Every non-primitive object the run made, in a deterministic order."""
    tokens_seen: set[int] = set()
    out: list[Any] = []
    todo: list[Any] = [result.root, *result.calls, *result.persids, *result.globals]
    while todo:
        node = todo.pop()
        if node is None or type(node) in (bool, int, float, str, bytes, bytearray, complex):
            continue
        if id(node) in tokens_seen:
            continue
        tokens_seen.add(id(node))
        out.append(node)
        if type(node) in (list, tuple):
            todo.extend(node)
        elif type(node) is PDict:
            todo.extend(node.flat)
        elif type(node) is PSet:
            todo.extend(node.items)
        elif type(node) is Call:
            todo.extend([node.func, node.args, node.kwargs, node.state, node.items, node.setitems])
    return out


def walkers_agree(data: bytes, rng: random.Random) -> None:
    result = run_pickle(data)
    nodes = all_nodes(result)
    wanted: dict[int, list[str]] = {}
    for node in nodes:
        if rng.random() < 0.3:
            wanted[id(node)] = rng.sample(["a", "b", "c", "d"], rng.randint(1, 2))
    everything = {id(node): ["all"] for node in nodes}
    for max_paths in (0, 2, 50):
        for chosen in (wanted, everything):
            fast = paths._compiled(result.root, chosen, max_paths)
            slow = paths._locate_python(result.root, chosen, max_paths)
            assert fast == slow, (data, max_paths)


def test_walker_sees_differences() -> None:
    """A wrong path or count would show: the compared outputs are not empty."""
    result = run_pickle(pickle.dumps({"k": [Point(), Point()]}, protocol=2))
    calls = {id(call): ["g"] for call in result.calls}
    found, counts, reached = paths._compiled(result.root, calls, 20)
    assert found == {"g": ["root['k'][0]", "root['k'][1]"]}
    assert counts == {"g": 2}
    assert reached == set(calls)


def test_walkers_agree_on_valid_and_hostile_pickles() -> None:
    rng = random.Random(11)
    streams = valid_pickles() + [c.data for c in CASES] + [s for c in CASES for s in c.streams]
    for data in streams:
        walkers_agree(data, rng)


def test_walkers_agree_on_mutants() -> None:
    rng = random.Random(12)
    seedlings = valid_pickles() + [c.data for c in CASES if c.container == "pickle"]
    for data in mutants(seedlings, 3000, rng):
        walkers_agree(data, rng)


def test_walkers_agree_on_every_step_kind() -> None:
    """Keys that are objects, kwargs, (dict, slots) state, __setstate__ state, items, calls
    of calls: each kind of step the compiled walker records."""
    import copyreg

    value = {
        (Point(), 1): "tuple key",
        "slots": Slotted(),
        "state": WithState(),
        "kw": KwOnly(),
        "od": collections.OrderedDict(x=Point()),
        "dd": collections.defaultdict(list, {"y": [Point()]}),
        "reduce": copyreg._reconstructor,
    }
    rng = random.Random(13)
    for proto in range(2, 6):
        walkers_agree(pickle.dumps(value, protocol=proto), rng)
    del value["slots"]  # protocols 0 and 1 cannot pickle __slots__
    for proto in range(2):
        walkers_agree(pickle.dumps(value, protocol=proto), rng)
    # The result of a call, called: a step through .__call__, then a BUILD with a dict.
    walkers_agree(b"\x80\x02c__main__\nf\nq\x00)\x81q\x01)R}(X\x01\x00\x00\x00k]ub.", rng)
    # Arguments that are not a tuple: an (args) step.
    walkers_agree(b"\x80\x02c__main__\nf\n](c__main__\ng\n)\x81eR.", rng)


# -- the memo: the compiled loop keeps small keys in an array and others in a dict


def _long_binput(key: int) -> bytes:
    return b"r" + key.to_bytes(4, "little")


def _long_binget(key: int) -> bytes:
    return b"j" + key.to_bytes(4, "little")


def memo_cases() -> list[bytes]:
    """Sparse, huge, overwritten, migrated and textual memo keys, and MEMOIZE after them."""
    grow = bytearray(b"\x80\x04]K\x07" + _long_binput(1500) + b"0")  # 1500: beyond the array
    for i in range(1200):
        grow += b"N" + _long_binput(i) + b"0"  # the array grows past 1500: the key moves
    grow += b"(" + _long_binget(1500) + _long_binget(3) + b"K\x09\x94" + _long_binget(1201)
    grow += b"e."  # MEMOIZE after 1201 distinct keys stores under 1201
    return [
        b"\x80\x02]K\x01" + _long_binput(2**32 - 1) + _long_binget(2**32 - 1) + b"a.",
        b"\x80\x02]K\x01" + _long_binput(7) + b"K\x02" + _long_binput(7) + _long_binget(7) + b"a.",
        b"\x80\x04]K\x01" + _long_binput(9) + b"\x94K\x02\x94h\x00h\x01" + b"ee.",
        bytes(grow),
        b"(lp0\nI1\np-1\na.",
        b"(lp0\nI1\np99999999999999999999999\ng99999999999999999999999\na.",
        b"(lp00\nI1\ng-1\na.",
        b"(lp1\nI1\np0\ng0\ng1\naa.",
        b"(lp1\nI1\npx\na.",
        b"(lp1\ng2\na.",
        b"p1\n.",
        b"(lp1\nI1\np1",
        b"\x80\x02]" + _long_binget(5) + b".",
    ]


@pytest.mark.parametrize("index", range(13))
def test_memo_edge_cases_agree(index: int) -> None:
    fast, slow = both(memo_cases()[index])
    assert fast == slow


def test_memo_cases_reach_what_they_test() -> None:
    """The migrated key and MEMOIZE's key are read back: the root holds them."""
    result = run_pickle(memo_cases()[3])
    assert result.complete
    assert result.root == [7, None, 9, 9]


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(opcode_soup())
def test_opcode_soups_agree(data: bytes) -> None:
    """Random opcode sequences with boundary arguments: odd stacks, marks and memo keys."""
    fast, slow = both(data)
    assert fast == slow


def test_compiled_core_leaks_nothing() -> None:
    """Repeated runs and walks (complete, failing and hostile) leave no memory behind.

    tracemalloc sees every Python object and every PyMem allocation the C code makes, so a
    reference leaked on an error path or an array not freed shows up as growth.
    """
    import gc
    import tracemalloc

    streams = valid_pickles() + [c.data for c in CASES] + memo_cases()
    streams += mutants(streams, 600, random.Random(3))

    def once() -> None:
        for data in streams:
            result = run_pickle(data)
            nodes = all_nodes(result)
            paths.locate(result.root, {id(n): ["g"] for n in nodes[::3]}, 3)

    once()
    gc.collect()
    tracemalloc.start()
    try:
        once()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            once()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 4096


# -- whole audits


def reports_on_both_cores(data: bytes, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON report of one file with the compiled core and with the Python one."""
    import ckptaudit
    from ckptaudit.report.json import report_dict

    def audit() -> dict[str, Any]:
        doc = report_dict(ckptaudit.audit_bytes(data, name=name))
        doc["stats"].pop("seconds")
        return doc

    fast = audit()
    with python_core():
        slow = audit()
    return fast, slow


def test_whole_audits_agree_on_the_hostile_catalogue() -> None:
    for case in CASES:
        fast, slow = reports_on_both_cores(case.data, case.filename)
        assert fast == slow, case.name


def test_whole_audits_agree_on_torch_checkpoints() -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    objects = [
        model.state_dict(),
        {"model": model, "meta": Point(), "when": datetime.datetime(2024, 1, 2)},
        {"queue": collections.deque([Point(), 2]), "ns": {"a": [torch.ones(2)] * 3}},
    ]
    for index, value in enumerate(objects):
        for zipped in (True, False):
            buf = io.BytesIO()
            torch.save(value, buf, _use_new_zipfile_serialization=zipped)
            fast, slow = reports_on_both_cores(buf.getvalue(), f"m{index}.pt")
            assert fast == slow
            assert fast["findings"] or index == 0
