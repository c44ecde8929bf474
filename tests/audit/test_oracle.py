"""The verdict matches torch: a corpus saved with real torch, judged by ckptaudit and by torch.

Only ``torch.load(weights_only=True)`` is ever called (safe: torch's restricted unpickler);
nothing is loaded with weights_only=False.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import io
import pathlib
import pickle
import types
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

import numpy as np
import oracle_types as ot
import pytest
import torch
from support.loaders import resolve_name, save, torch_loads
from torch import nn

import ckptaudit
from ckptaudit.findings import Remedy, Status

pytestmark = pytest.mark.torch


def _linear() -> dict[str, Any]:
    torch.manual_seed(0)
    return nn.Linear(3, 2).state_dict()


def _optimizer() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}


def _extra_state_module() -> dict[str, Any]:
    class WithExtra(nn.Module):
        def get_extra_state(self) -> Any:
            return {"seed": ot.WithEnum(), "when": datetime.datetime(2024, 1, 2)}

        def set_extra_state(self, state: Any) -> None:  # pragma: no cover - not loaded
            pass

    return {"state": WithExtra().state_dict()}


CASES: dict[str, Callable[[], Any]] = {
    "clean_state_dict": _linear,
    "optimizer_state": _optimizer,
    "primitives": lambda: {"a": 1, "b": 2.5, "c": "x", "d": None, "e": True, "f": [1, (2, 3)]},
    "bytes_and_friends": lambda: {"b": b"\x00\xff", "ba": bytearray(b"ab"), "c": 1 + 2j},
    "set": lambda: {"s": {1, 2}},
    "frozenset": lambda: {"s": frozenset({1, 2})},
    "counter": lambda: {"c": collections.Counter("abca")},
    "ordered_dict": lambda: collections.OrderedDict(a=1),
    "int_and_tuple_keys": lambda: {1: "a", (1, 2): "b"},
    "big_int_long1": lambda: {"x": 2**200},
    "big_int_long4": lambda: {"x": 2**3000},
    "dtype_device_size": lambda: {
        "dt": torch.float16,
        "dev": torch.device("cpu"),
        "size": torch.Size([2, 3]),
    },
    "parameter": lambda: {"p": nn.Parameter(torch.ones(2))},
    "bfloat16_and_views": lambda: (lambda t: {"t": t, "view": t[1:]})(
        torch.arange(4, dtype=torch.bfloat16)
    ),
    "dataclass": lambda: {"config": ot.Config()},
    "slots_dataclass": lambda: {"s": ot.Slotted()},
    "enum": lambda: {"stage": ot.Stage.ACTIVE},
    "int_enum": lambda: {"level": ot.Level.HIGH},
    "str_enum": lambda: {"color": ot.Color.RED},
    "enum_key": lambda: {ot.Stage.DORMANT: 1},
    "dataclass_with_enum": lambda: {"x": ot.WithEnum()},
    "namedtuple": lambda: {"p": ot.Point(1, 2)},
    "plain_object": lambda: {"o": ot.Plain()},
    "datetime_naive": lambda: {"t": datetime.datetime(2024, 5, 1, 12, 30)},
    "datetime_utc": lambda: {"t": datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)},
    "datetime_zoneinfo": lambda: {
        "t": datetime.datetime(2024, 5, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    },
    "date_and_timedelta": lambda: {
        "d": datetime.date(2024, 1, 1),
        "td": datetime.timedelta(seconds=5),
    },
    "deque": lambda: {"d": collections.deque([1, 2, 3], maxlen=5)},
    "empty_deque": lambda: {"d": collections.deque()},
    "defaultdict": lambda: {"d": collections.defaultdict(list, {"a": [1]})},
    "namespace": lambda: {"args": argparse.Namespace(lr=0.1, name="x")},
    "simple_namespace": lambda: {"ns": types.SimpleNamespace(a=1)},
    "path": lambda: {"p": pathlib.PosixPath("/data/run")},
    "uuid_decimal": lambda: {"u": uuid.UUID(int=5), "d": decimal.Decimal("1.5")},
    "numpy_array": lambda: {"a": np.arange(4, dtype=np.float32)},
    "numpy_scalar": lambda: {"x": np.float64(1.5)},
    "numpy_int_scalar": lambda: {"x": np.int64(3)},
    "whole_module": lambda: {"model": ot.Tiny()},
    "dict_subclass": lambda: {"h": ot.AttrDict(a=1)},
    "class_reference": lambda: {"factory": ot.Plain},
    "function_reference": lambda: {"fn": pathlib.Path.cwd},
    "extra_state_mix": _extra_state_module,
    "sparse_coo": lambda: {"s": torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))},
    "sparse_csr": lambda: {"s": torch.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse_csr()},
    "quantized": lambda: {"q": torch.quantize_per_tensor(torch.ones(4), 0.1, 10, torch.quint8)},
    "nested_tensor": lambda: {"n": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])},
    "new_dtypes": lambda: {
        "f8": torch.zeros(2, dtype=torch.float8_e4m3fn),
        "u16": torch.zeros(2, dtype=torch.uint16),
        "c64": torch.zeros(2, dtype=torch.complex64),
    },
    "views_and_layouts": lambda: (
        lambda t: {
            "t": t.t(),
            "base": t,
            "layout": torch.sparse_coo,
            "cl": torch.ones(1, 3, 2, 2).to(memory_format=torch.channels_last),
        }
    )(torch.arange(12.0).reshape(3, 4)),
    "generator_object": lambda: {"g": torch.Generator()},
    "whole_optimizer": lambda: {"opt": torch.optim.Adam([nn.Parameter(torch.ones(1))])},
    "whole_sequential": lambda: {"m": nn.Sequential(nn.Linear(2, 2), nn.ReLU())},
    "training_states": lambda: {
        "scaler": torch.amp.GradScaler("cpu").state_dict(),
        "rng": torch.get_rng_state(),
        "sched": torch.optim.lr_scheduler.StepLR(
            torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), 3
        ).state_dict(),
    },
    "nested_mix": lambda: {
        "runs": [
            {"cfg": ot.Config(), "hist": collections.deque([ot.Stage.ACTIVE])},
            {"when": datetime.date(2020, 1, 1)},
        ]
    },
}

PROTOCOLS = (2, 3, 4, 5)
SHORT_LIST = ("clean_state_dict", "dataclass", "deque", "enum", "optimizer_state")


def _cases() -> list[tuple[str, int, bool]]:
    out = [(name, 2, False) for name in CASES]
    out += [(name, p, False) for name in SHORT_LIST for p in PROTOCOLS if p != 2]
    out += [(name, 2, True) for name in SHORT_LIST]
    return out


@pytest.mark.parametrize(("case", "protocol", "legacy"), _cases(), ids=lambda v: str(v))
def test_verdict_matches_torch(
    tmp_path: pathlib.Path, case: str, protocol: int, legacy: bool
) -> None:
    path = save(
        CASES[case](),
        tmp_path / f"{case}.pt",
        pickle_protocol=protocol,
        _use_new_zipfile_serialization=not legacy,
    )
    report = ckptaudit.audit_file(path)
    loads, error = torch_loads(path)
    assert report.status is not Status.ERROR, report.error
    assert report.weights_only_compatible == loads, (error, report.findings)
    assert report.status in (Status.COMPATIBLE if loads else Status.INCOMPATIBLE, Status.DANGEROUS)
    if not loads:
        assert report.findings, "an incompatible verdict must name what is wrong"
        assert report.predicted_error
    if protocol == 2 and not legacy:
        try:
            torch_set = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except pickle.UnpicklingError:
            return  # torch's scanner stops at opcodes it does not know (LONG4)
        ours = set(report.unsafe_globals)
        # ckptaudit also lists types BUILD needs that the pickle never names (numpy dtypes).
        build_only = {f.global_name for f in report.findings if f.opcode == "BUILD"}
        assert torch_set <= ours
        assert ours - torch_set <= build_only


@pytest.mark.parametrize("case", sorted(CASES))
def test_allowlisting_the_unsafe_globals_matches_torch(tmp_path: pathlib.Path, case: str) -> None:
    """Allowlist exactly what ckptaudit lists, in ckptaudit and in torch: same verdict, and
    the remedy says in advance whether allowlisting is enough."""
    path = save(CASES[case](), tmp_path / f"{case}.pt")
    report = ckptaudit.audit_file(path)
    if report.weights_only_compatible or not report.unsafe_globals:
        pytest.skip("nothing to allowlist")
    names = list(report.unsafe_globals)
    policy = ckptaudit.load_policy().with_allowed(names)
    allowed_report = ckptaudit.audit_file(path, policy=policy)
    loads, error = torch_loads(path, [resolve_name(n) for n in names])
    assert allowed_report.weights_only_compatible == loads, (error, allowed_report.findings)
    needs_convert = any(f.remedy is Remedy.CONVERT for f in report.findings)
    if "builtins.getattr" in names:
        # Allowlisting getattr would work, but ckptaudit never advises it: convert instead.
        assert needs_convert
    else:
        assert needs_convert == (not loads), (error, report.findings)


def test_audit_object_matches_audit_of_saved_file(tmp_path: pathlib.Path) -> None:
    obj = {"config": ot.Config(), "weights": _linear()}
    from_object = ckptaudit.audit_object(obj)
    from_file = ckptaudit.audit_file(save(obj, tmp_path / "x.pt"))
    assert from_object.unsafe_globals == from_file.unsafe_globals == ("oracle_types.Config",)
    assert [f.paths for f in from_object.findings] == [f.paths for f in from_file.findings]


def test_protocol_4_is_resave(tmp_path: pathlib.Path) -> None:
    path = save(_linear(), tmp_path / "p4.pt", pickle_protocol=4)
    report = ckptaudit.audit_file(path)
    opcode_findings = [f for f in report.findings if f.rule == "CKA204"]
    assert opcode_findings and all(f.remedy is Remedy.RESAVE for f in opcode_findings)
    assert report.predicted_error is not None
    assert report.predicted_error.startswith("Unsupported operand")
    _, error = torch_loads(path)
    assert report.predicted_error in error


def test_predicted_error_is_torchs_first_error(tmp_path: pathlib.Path) -> None:
    for case in ("dataclass", "deque", "datetime_naive", "whole_module"):
        path = save(CASES[case](), tmp_path / f"{case}.pt")
        report = ckptaudit.audit_file(path)
        _, error = torch_loads(path)
        assert report.predicted_error is not None
        assert report.predicted_error in error, (report.predicted_error, error)


def test_legacy_format_reads_all_five_pickles(tmp_path: pathlib.Path) -> None:
    path = save(
        {"config": ot.Config(), "w": _linear()},
        tmp_path / "legacy.pt",
        _use_new_zipfile_serialization=False,
    )
    report = ckptaudit.audit_file(path)
    assert report.format == "torch-legacy"
    assert report.unsafe_globals == ("oracle_types.Config",)
    assert report.top_level[0].key == "config"
    assert report.stats.tensors == 2


def test_plain_pickle_is_not_loadable_by_torch(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    report = ckptaudit.audit_file(path)
    assert report.format == "pickle"
    assert report.weights_only_compatible is False
    assert torch_loads(path)[0] is False


def test_tensor_bytes_are_never_read(tmp_path: pathlib.Path) -> None:
    big = {"w": torch.zeros(4 * 1024 * 1024)}  # 16 MiB of storage
    path = save(big, tmp_path / "big.pt")
    report = ckptaudit.audit_file(path)
    assert report.weights_only_compatible
    assert report.stats.tensor_bytes == 16 * 1024 * 1024
    assert report.stats.bytes_read < 64 * 1024


def test_bytes_api_equals_file_api(tmp_path: pathlib.Path) -> None:
    path = save({"d": collections.deque([1])}, tmp_path / "d.pt")
    a = ckptaudit.audit_file(path)
    b = ckptaudit.audit_bytes(path.read_bytes())
    assert (a.status, a.unsafe_globals) == (b.status, b.unsafe_globals)
    assert io.BytesIO  # BytesIO-based torch.save is covered by audit_object
