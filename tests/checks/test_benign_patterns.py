"""Benign patterns are recognised by their arguments; the same callables with other
arguments stay dangerous."""

from __future__ import annotations

import argparse
import collections
import collections.abc
import datetime
import enum
import http
import pickle
import re
import socket
import types
import typing
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from support.loaders import audit_against_torch, saved_bytes
from torch import nn

import ckptaudit
from ckptaudit.findings import Remedy, Severity, Status

TYPING_VALUES = {
    "Dict[str, Any]": typing.Dict[str, typing.Any],  # noqa: UP006 - the pickled form is the point
    "Optional[int]": typing.Optional[int],  # noqa: UP045
    "List[Tuple[int, str]]": typing.List[typing.Tuple[int, str]],  # noqa: UP006
    "list[int]": list[int],
    "dict[str, list[int]]": dict[str, list[int]],
    "int | str": int | str,
    "Callable[[int], str]": typing.Callable[[int], str],
    "Mapping[str, int]": collections.abc.Mapping[str, int],
    "Literal": typing.Literal["a", 1],
}


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", sorted(TYPING_VALUES))
def test_typing_constructs_are_not_dangerous(name: str, protocol: int) -> None:
    report = ckptaudit.audit_bytes(pickle.dumps({"t": TYPING_VALUES[name]}, protocol=protocol))
    assert report.status is Status.INCOMPATIBLE, report.findings
    catalogued = {"_operator.getitem", "_operator.or_", "types.GenericAlias", "builtins.type",
                  "functools.reduce", "_functools.reduce"}
    for f in report.findings:
        if f.global_name in catalogued:
            assert f.remedy is Remedy.CONVERT  # never advise allowlisting these


def test_timezone_aware_datetime_is_not_dangerous() -> None:
    value = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    report = ckptaudit.audit_bytes(pickle.dumps({"t": value}, protocol=2))
    assert report.status is Status.INCOMPATIBLE
    getattr_finding = [f for f in report.findings if f.global_name == "builtins.getattr"]
    assert getattr_finding and getattr_finding[0].remedy is Remedy.CONVERT


@pytest.mark.parametrize(
    ("stream", "culprit"),
    [
        # getitem on sys.modules, not on a typing construct
        (b"\x80\x02c_operator\ngetitem\ncsys\nmodules\nX\x02\x00\x00\x00os\x86R.", "sys.modules"),
        # reduce with os.system instead of operator.or_
        (b"\x80\x02cfunctools\nreduce\ncos\nsystem\nX\x02\x00\x00\x00id\x85\x86R.", "os.system"),
        # type() with three arguments builds a class
        (b"\x80\x02c__builtin__\ntype\nX\x01\x00\x00\x00X)}\x87R.", "builtins.type"),
        # GenericAlias whose origin is fine but whose argument is a dangerous callable
        (b"\x80\x02ctypes\nGenericAlias\nc__builtin__\nlist\ncos\nsystem\n\x85\x86R.",
         "os.system"),
    ],
)
def test_the_same_callables_with_other_arguments_stay_dangerous(stream: bytes,
                                                                  culprit: str) -> None:
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS
    assert culprit in {f.global_name for f in report.findings
                       if f.severity is Severity.DANGEROUS}


def test_common_stdlib_and_torch_values_are_not_dangerous(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import logging
    import time

    import torch

    values = {
        "localtime": time.localtime(0),
        "logger": logging.getLogger("train"),
        "max": torch.max(torch.ones(2, 2), 0),
    }
    path = tmp_path / "values.pt"
    torch.save(values, path)
    report = ckptaudit.audit_file(path)
    assert report.status is Status.INCOMPATIBLE, [
        (f.rule, f.global_name) for f in report.findings if f.severity is Severity.DANGEROUS
    ]


@pytest.mark.parametrize(
    "name",
    [
        b"pandas._libs.internals\n_unpickle_block",
        b"pandas.core.indexes.base\n_new_Index",
        b"pandas._libs.tslibs.timestamps\n_unpickle_timestamp",
        b"pandas._libs.tslibs.timedeltas\n_timedelta_unpickle",
        b"pandas._libs.tslibs.offsets\nDay",
        b"sklearn.tree._tree\nTree",
    ],
)
def test_library_reconstructors_are_not_dangerous(name: bytes) -> None:
    # The shape pandas and sklearn write: a reconstructor called with plain arguments.
    stream = b"\x80\x02c" + name + b"\nK\x01K\x02\x86R."
    report = ckptaudit.audit_bytes(stream)
    assert report.status is not Status.DANGEROUS, report.findings


@pytest.mark.parametrize("name", [b"pandas\nread_pickle", b"pandas\neval",
                                  b"pandas.io.pickle\n_unpickle_anything"])
def test_dangerous_pandas_functions_stay_dangerous(name: bytes) -> None:
    stream = b"\x80\x02c" + name + b"\nX\x01\x00\x00\x00x\x85R."
    assert ckptaudit.audit_bytes(stream).status is Status.DANGEROUS


def test_native_nn_ops_held_by_modules_are_not_dangerous() -> None:
    # A whole Hugging Face model keeps torch._C._nn.gelu as an attribute (not called).
    stream = b"\x80\x02}X\x03\x00\x00\x00actctorch._C._nn\ngelu\ns."
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.INCOMPATIBLE
    # ... while torch._C itself stays catalogued (JIT import, file loading).
    jit = ckptaudit.audit_bytes(b"\x80\x02ctorch._C\nimport_ir_module\nX\x01\x00\x00\x00x\x85R.")
    assert jit.status is Status.DANGEROUS


# --------------------------------------------------------------------------- 8. look-alikes
# Files of the red-team campaigns' kind that are benign (closed in d413eec, 55da442, cde38f1).


class _ActivationModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.act = torch.nn.functional.relu


BENIGN_LOOKALIKES = [
    pytest.param(lambda: saved_bytes({"args": argparse.Namespace(lr=0.1, name="x"),
                                      "ns": types.SimpleNamespace(a=1)}),
                 Status.INCOMPATIBLE, id="namespace-configs"),
    pytest.param(lambda: pickle.dumps({"s": {1, 2}, "d": collections.deque([1, 2], maxlen=5),
                                       "f": frozenset({3})}, protocol=4),
                 Status.INCOMPATIBLE, id="protocol4-set-deque-frozenset"),
    pytest.param(lambda: saved_bytes({"w": torch.arange(4.0), "sd": nn.Linear(2, 2).state_dict()}),
                 Status.COMPATIBLE, id="plain-state-dict"),
    # relu is a plain function torch's allowlist lacks: not-allowlisted (CKA201), not dangerous.
    pytest.param(lambda: saved_bytes(_ActivationModule()), Status.INCOMPATIBLE,
                 id="whole-module-with-function-attribute"),
]


@pytest.mark.parametrize(("make", "status"), BENIGN_LOOKALIKES)
def test_benign_lookalike_is_not_dangerous(
    tmp_path: Path, make: Callable[[], bytes], status: Status
) -> None:
    path, report = audit_against_torch(tmp_path, make(), "model.pt")
    assert report.status is status, report.findings
    if path.read_bytes().startswith(b"PK"):  # torch's own list of what an allowlist needs
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        assert sorted(report.unsafe_globals) == sorted(unsafe)


class UserColor(enum.Enum):
    RED = 1
    BLUE = 2


class _PrivateColor(enum.Enum):
    GREEN = 1


class UserOrderedDict(collections.OrderedDict):
    pass


ENUM_LOOKALIKES = [
    pytest.param(value, proto, id=f"{label}-protocol{proto}")
    for label, value in [("re.RegexFlag", re.RegexFlag(2)), ("http.HTTPStatus", http.HTTPStatus(200)),
                         ("socket.AddressFamily", socket.AddressFamily(2)),
                         ("user-enum", UserColor.BLUE),
                         ("user-private-enum", _PrivateColor.GREEN),
                         ("user-ordereddict-subclass", UserOrderedDict(a=1, b=[2]))]
    for proto in (2, 4)
]


@pytest.mark.parametrize(("value", "proto"), ENUM_LOOKALIKES)
def test_round2_enum_and_mapping_lookalikes_stay_not_dangerous(
    tmp_path: Path, value: object, proto: int
) -> None:
    data = pickle.dumps(value, protocol=proto)
    assert pickle.loads(data) == value
    _, report = audit_against_torch(tmp_path, data, "model.pkl")
    assert report.status is Status.INCOMPATIBLE, report.findings


def test_round5_user_enum_lookup_stays_not_dangerous() -> None:
    """The trade-off kept: a CamelCase class of the user's code called with one literal is
    an Enum lookup (checkpoints are full of them), so it is only not allowlisted."""
    report = ckptaudit.audit_bytes(b"cmymod\nStage\nK\x02\x85R.")
    assert report.status is Status.INCOMPATIBLE, report.findings
