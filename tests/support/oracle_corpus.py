"""The oracle corpus: objects a real training script saves, each a case whose verdict the
tests compare with torch's own loader (tests/audit/test_oracle.py) and which migration must
round-trip (tests/migrate/)."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import pathlib
import types
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

import numpy as np
import oracle_types as ot
import torch
from torch import nn


def linear() -> dict[str, Any]:
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
    "clean_state_dict": linear,
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
