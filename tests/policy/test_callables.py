"""Every entry of the callables table is backed by a real example.

Each sample below is what real code pickles (or, for the few shapes nothing in this
environment writes, the bytes of the pickle as the library's own version writes it). For
each: CPython's unpickler really builds it (the entry is what a loader runs), ckptaudit judges
it not dangerous, and the test records which table entries were consulted and found inert.
Every entry must be reached by some sample, or be listed in ``UNSAMPLED`` with why.
"""

from __future__ import annotations

import argparse
import array
import collections
import datetime
import decimal
import fractions
import functools
import inspect
import io
import ipaddress
import logging
import pathlib
import pickle
import random
import re
import time
import types
import uuid
import warnings
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from support.opcodes import global_, lit, mark, reduce, tuple_, wrap

import ckptaudit
from ckptaudit.checks import callsites
from ckptaudit.findings import Status
from ckptaudit.formats import BytesSource, read_container
from ckptaudit.pickle.limits import DEFAULT_LIMITS
from ckptaudit.policy.callables import INERT

pytestmark = pytest.mark.torch


def _torch_saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _renamed(data: bytes, old: bytes, new: bytes) -> bytes:
    """A protocol-2 pickle whose GLOBAL module is renamed (the name another version uses)."""
    return data.replace(b"c" + old + b"\n", b"c" + new + b"\n")


class _IntSub(int):
    pass


def _p2(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _p0(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=0)


_ARR = np.arange(6, dtype=np.float32).reshape(2, 3)

SAMPLES: dict[str, Callable[[], bytes]] = {
    "sets and bytes": lambda: _p2(
        {"s": {1, 2}, "f": frozenset({3}), "b": b"x", "e": b"", "ba": bytearray(b"y")}
    ),
    "numbers": lambda: _p2({"c": 1 + 2j, "s": slice(1, 5, 2), "r": range(3)}),
    "protocol 0 objects": lambda: _p0([_IntSub(3), argparse.Namespace(a=1)]),
    "a sentinel object": lambda: _p2({"o": object()}),
    "copyreg.__newobj__": lambda: wrap(
        global_("copyreg", "__newobj__")
        + mark()
        + global_("argparse", "Namespace")
        + tuple_()
        + reduce()
    ),
    "builtins.len of data": lambda: wrap(
        global_("builtins", "len") + mark() + lit([1, 2]) + tuple_() + reduce()
    ),
    "builtins.int and friends": lambda: wrap(
        mark()
        + b"".join(
            global_("builtins", name) + lit(value) + reduce()
            for name, value in (
                ("int", ("7",)),
                ("float", ("1.5",)),
                ("str", (3,)),
                ("bool", (1,)),
                ("tuple", ([1],)),
                ("list", ((1,),)),
                ("dict", ([("a", 1)],)),
            )
        )
        + tuple_()
    ),
    "codecs.encode": lambda: _renamed(_p2(b"abc"), b"_codecs", b"codecs"),
    "collections": lambda: _p2(
        {
            "od": collections.OrderedDict(a=1),
            "c": collections.Counter("aab"),
            "dd": collections.defaultdict(list, {"k": [1]}),
            "dq": collections.deque([1, 2], maxlen=5),
            "cm": collections.ChainMap({"a": 1}, {"b": 2}),
        }
    ),
    "fromkeys": lambda: _p2(
        {
            "od": collections.OrderedDict.fromkeys,
            "d": dict.fromkeys,
        }
    ),
    "datetimes": lambda: _p2(
        [
            datetime.datetime(2024, 1, 2, 3, 4, 5),
            datetime.date(2024, 1, 2),
            datetime.time(1, 2),
            datetime.timedelta(seconds=5),
            datetime.timezone(datetime.timedelta(hours=2)),
            datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")),
        ]
    ),
    "datetime class methods": lambda: wrap(
        mark()
        + _getattr_call("datetime", "datetime", "fromtimestamp", (0,))
        + _getattr_call("datetime", "datetime", "fromisoformat", ("2024-01-02",))
        + _getattr_call("datetime", "date", "fromisoformat", ("2024-01-02",))
        + _getattr_call("collections", "OrderedDict", "fromkeys", (("a",),))
        + _getattr_call("builtins", "dict", "fromkeys", (("a",),))
        + tuple_()
    ),
    "zoneinfo": lambda: wrap(
        mark()
        + global_("zoneinfo", "ZoneInfo")
        + lit(("UTC",))
        + reduce()
        + _getattr_call("zoneinfo._zoneinfo", "ZoneInfo", "_unpickle", ("UTC", 1))
        + tuple_()
    ),
    "values": lambda: _p2(
        [
            decimal.Decimal("1.5"),
            fractions.Fraction(1, 3),
            uuid.UUID(int=5),
            ipaddress.IPv4Address("10.0.0.1"),
            ipaddress.IPv6Address("::1"),
        ]
    ),
    "paths": lambda: _p2(
        [
            pathlib.Path("/a"),
            pathlib.PurePath("b"),
            pathlib.PurePosixPath("c"),
            pathlib.PureWindowsPath("d"),
        ]
    ),
    "path classes by name": lambda: wrap(
        mark()
        + b"".join(
            global_("pathlib", name) + lit(("x",)) + reduce()
            for name in ("Path", "PosixPath", "PurePath")
        )
        + tuple_()
    ),
    "namespaces and partials": lambda: _p2(
        [
            argparse.Namespace(a=1),
            types.SimpleNamespace(b=2),
            functools.partial(max, 1),
        ]
    ),
    "small stdlib values": lambda: _p2(
        [
            re.compile("a+", re.I),
            random.Random(3),
            time.gmtime(0),
            logging.getLogger("ckptaudit-sample"),
            array.array("i", [1, 2]),
        ]
    ),
    "array, protocol 3+": lambda: pickle.dumps(array.array("d", [1.0]), protocol=4),
    "inspect signatures": lambda: _p2(inspect.signature(lambda a, *, b=1: None)),
    "inspect sentinels": lambda: _p2([inspect._empty, inspect._void, inspect.Parameter.empty]),
    "numpy arrays and scalars": lambda: _p2(
        {
            "a": _ARR,
            "s": np.float64(1.5),
            "m": np.ma.masked_array([1, 2], mask=[0, 1]),
            "r": np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
            "mx": _matrix(),
        }
    ),
    "numpy 1.x module names": lambda: _renamed(
        _renamed(
            _p2({"a": _ARR, "s": np.float64(1.5)}),
            b"numpy._core.multiarray",
            b"numpy.core.multiarray",
        ),
        b"numpy._core.numeric",
        b"numpy.core.numeric",
    ),
    "numpy frombuffer": lambda: pickle.dumps(_ARR, protocol=5),
    "numpy random": lambda: _p2(
        [
            np.random.RandomState(0),
            np.random.default_rng(0),
            np.random.Generator(np.random.MT19937(0)),
            np.random.Generator(np.random.PCG64DXSM(0)),
            np.random.Generator(np.random.Philox(0)),
            np.random.Generator(np.random.SFC64(0)),
        ]
    ),
    "torch tensors and parameters": lambda: _torch_saved(
        {
            "t": torch.ones(2),
            "p": torch.nn.Parameter(torch.zeros(2)),
            "g": torch.Generator(),
            "q": torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8),
            "s": torch.ones(2).to_sparse(),
            "m": torch.empty(2, device="meta"),
            "n": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
            "b": torch.nn.Buffer(torch.ones(1)),
            "u": torch.nn.parameter.UninitializedParameter(),
        }
    ),
    "torch through plain pickle": lambda: _p2(
        {"t": torch.ones(2), "p": torch.nn.Parameter(torch.ones(1))}
    ),
    "tensor subclass and state": lambda: _torch_saved(
        _with_state(torch.nn.Parameter(torch.ones(2)))
    ),
    "tensor from numpy": lambda: wrap(
        global_("torch._utils", "_rebuild_device_tensor_from_numpy")
        + mark()
        + global_("numpy", "ndarray")
        + tuple_()
        + tuple_()
    ),
}


def _getattr_call(module: str, owner: str, attr: str, args: tuple[Any, ...]) -> bytes:
    """``getattr(module.owner, attr)(*args)``: how pickle stores a class method call."""
    return (
        global_("builtins", "getattr")
        + mark()
        + global_(module, owner)
        + lit(attr)
        + tuple_()
        + reduce()
        + lit(args)
        + reduce()
    )


def _matrix() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is discouraged
        return np.matrix([[1, 2]])


def _with_state(param: torch.nn.Parameter) -> torch.nn.Parameter:
    param.note = "kept"  # type: ignore[attr-defined]
    return param


UNSAMPLED: dict[str, str] = {
    "pathlib._local.Path": "Python 3.13's module for the path classes: not on this Python",
    "pathlib._local.PosixPath": "Python 3.13 only",
    "pathlib._local.WindowsPath": "Python 3.13 only",
    "pathlib._local.PurePath": "Python 3.13 only",
    "pathlib._local.PurePosixPath": "Python 3.13 only",
    "pathlib._local.PureWindowsPath": "Python 3.13 only",
    "pathlib.WindowsPath": "cannot be built on POSIX",
    "zoneinfo.ZoneInfo._unpickle": "pickles name the class in zoneinfo._zoneinfo (sampled)",
    "torch.nn.backends.thnn._get_thnn_function_backend": "PyTorch 0.x whole-model saves",
    "torch._utils._rebuild_tensor": "PyTorch 0.x tensors; v2 replaced it in 2018",
    "torch._utils._rebuild_tensor_v3": "tensors of dtypes without a storage type",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": "XLA/MTIA device tensors",
    "torch._utils._rebuild_wrapper_subclass": "wrapper tensor subclasses (DTensor on devices)",
    "torch._tensor._rebuild_from_type": "tensor subclasses saved before PyTorch 1.7",
    "torch._dynamo.decorators._DimRange": "jagged nested tensors: tests/checks/test_call_sites",
    "torch.nested._internal.nested_tensor._rebuild_njt": "jagged nested tensors, likewise",
    "torch.storage._load_from_bytes": "sampled by 'torch through plain pickle' (nested)",
    "torch.ScriptObject": "quantized whole-model saves: the benign corpus",
    "torch.Tensor": "BUILD on a plain Tensor: tensor subclasses with attributes",
    "torch.Generator": "torch.save names the class torch._C.Generator (sampled)",
    "torch.nn.parameter.Parameter": "torch.save rebuilds parameters with _rebuild_parameter; "
    "NEWOBJ of Parameter is a subclass's pickling (tests/audit/test_oracle)",
    "torch.nn.parameter.Buffer": "a Buffer pickles as a plain Tensor (_rebuild_from_type_v2)",
    "numpy.ma.core.MaskedArray": "numpy 1.x pickles masked arrays under this module",
    "numpy.random._generator.Generator": "numpy 1.x rebuilt a Generator with a BUILD",
    "numpy.random.bit_generator.SeedSequence": "default_rng's seed sequence (Cython)",
    "numpy.recarray": "the public alias of numpy.rec.recarray",
    "numpy.core.records.recarray": "numpy 1.x's module for records",
    "numpy._core.records.recarray": "numpy 2 pickles records as numpy.rec.recarray",
    "numpy.rec.recarray": "BUILD on a recarray: sampled by numpy.recarray's alias",
    "numpy.core.records.record": "numpy 1.x's module for records",
    "numpy._core.records.record": "numpy 2's record scalar",
    "numpy.core.numeric._frombuffer": "numpy 1.x and protocol 5",
    "numpy.matrixlib.defmatrix.matrix": "numpy 1.x pickles matrices under this module",
}
"""Entries no sample here reaches, with why (each is reached by a real file elsewhere, or
only on another Python or library version)."""


@pytest.fixture(scope="module")
def reached() -> Iterator[set[str]]:
    """The table entries found inert while the samples are audited."""
    found: set[str] = set()
    original = callsites.judge_name

    def recording(qualified: str, module: str, site: Any, policy: Any) -> Any:
        judgement = original(qualified, module, site, policy)
        if judgement.entry is not None and judgement.tier is callsites.Tier.INERT:
            found.add(qualified)
        return judgement

    callsites.judge_name = recording  # type: ignore[assignment]
    import ckptaudit.checks.context as context

    context.judge_name = recording  # type: ignore[assignment]
    try:
        yield found
    finally:
        callsites.judge_name = original  # type: ignore[assignment]
        context.judge_name = original  # type: ignore[assignment]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_is_real_and_not_dangerous(name: str, reached: set[str]) -> None:
    data = SAMPLES[name]()
    report = ckptaudit.audit_bytes(data, name="sample.pt")
    assert report.status is not Status.DANGEROUS, [
        (f.rule, f.global_name, f.message) for f in report.findings
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's and numpy's deprecation notices
        if data[:2] == b"PK":
            torch.load(io.BytesIO(data), weights_only=False)  # our own sample, benign
        elif name != "tensor from numpy":
            pickle.loads(data)


def test_every_entry_is_reached_by_a_sample(reached: set[str]) -> None:
    for name in sorted(SAMPLES):
        data = SAMPLES[name]()
        ckptaudit.audit_bytes(data, name="sample.pt")
        # Entries a sample only refers to (a sentinel held as a value) are reached too.
        container = read_container(BytesSource(data, "sample.pt"), DEFAULT_LIMITS)
        reached.update(g.qualified for u in container.units for g in u.result.globals)
    missing = sorted(set(INERT) - reached - set(UNSAMPLED))
    assert not missing, f"entries no sample reaches (add a sample, or say why): {missing}"
    stale = sorted(set(UNSAMPLED) - set(INERT))
    assert not stale, f"UNSAMPLED names entries that no longer exist: {stale}"


def test_every_entry_says_why() -> None:
    for name, entry in INERT.items():
        assert entry.reason and entry.sites, name
