"""What migration should turn each in-memory object into, and comparisons of loaded trees.

Only objects built by the tests themselves are converted here (trusted values in memory);
migrated files are only ever loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import decimal
import enum
import math
import os
import pathlib
import types
import uuid
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

SLOW = pytest.mark.skipif(
    bool(os.environ.get("CKPTAUDIT_PURE_PYTHON")),
    reason="heavy: run once, in the compiled-core pass of the suite",
)
"""Tests that spawn processes or migrate many files run in one of the suite's two passes."""

UNCOMPARED = object()
"""Stands for values whose converted form the test does not predict (library internals)."""


def plain(obj: Any) -> Any:
    """What ``ckptaudit migrate`` should make of an object (default options)."""
    if isinstance(obj, (torch.Tensor, torch.Size, torch.dtype, torch.device, torch.layout)):
        return obj
    if isinstance(obj, enum.Enum):
        return plain(obj.value)
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, collections.deque):
        return [plain(x) for x in obj]
    if type(obj) in (collections.OrderedDict, collections.Counter):
        return type(obj)({plain(k): plain(v) for k, v in obj.items()})
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, nn.Module):
        return collections.OrderedDict((k, v) for k, v in obj.state_dict(keep_vars=True).items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return tuple(plain(x) for x in obj)
    if isinstance(obj, list):
        return [plain(x) for x in obj]
    if isinstance(obj, frozenset):
        return sorted(plain(x) for x in obj)
    if isinstance(obj, set):
        return {plain(x) for x in obj}
    if isinstance(obj, (argparse.Namespace, types.SimpleNamespace)):
        return {k: plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    if isinstance(obj, (uuid.UUID, decimal.Decimal)):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")):
        return f"{obj.__module__}.{obj.__qualname__}"
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, bytearray, complex)):
        if isinstance(obj, int) and not isinstance(obj, bool) and obj.bit_length() > 2000:
            return str(obj)
        return obj
    if type(obj).__module__.startswith(("torch", "numpy")):
        return UNCOMPARED
    return {k: plain(v) for k, v in vars(obj).items()}


def assert_same(expected: Any, got: Any, path: str = "root") -> None:
    """Deep equality for migrated trees, tensors compared bit for bit with their metadata."""
    if expected is UNCOMPARED:
        return
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{path}: {type(got)}"
        assert isinstance(got, nn.Parameter) == isinstance(expected, nn.Parameter), path
        if expected.is_nested:
            assert got.is_nested and len(got.unbind()) == len(expected.unbind()), path
            for e, g in zip(expected.unbind(), got.unbind(), strict=True):
                assert torch.equal(e, g), path
            return
        assert got.dtype == expected.dtype and got.shape == expected.shape, path
        assert got.requires_grad == expected.requires_grad, path
        assert got.layout == expected.layout, path
        if (
            expected.layout == torch.strided
            and not expected.is_nested
            and not expected.is_quantized
        ):
            assert got.stride() == expected.stride(), path
            assert got.storage_offset() == expected.storage_offset(), path
            a, b = expected.detach(), got.detach()
            assert bytes(a.contiguous().view(-1).view(torch.uint8).numpy()) == bytes(
                b.contiguous().view(-1).view(torch.uint8).numpy()
            ), f"{path}: bytes differ"
        return
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(got, float) and math.isnan(got), path
        return
    assert type(got) is type(expected), f"{path}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert set(got) == set(expected), (
            f"{path}: keys {sorted(map(repr, got))} != {sorted(map(repr, expected))}"
        )
        for key in expected:
            assert_same(expected[key], got[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), path
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{path}[{i}]")
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def sharing(tree: Any) -> list[list[str]]:
    """Groups of tensor paths that share a storage (canonical, for comparing two trees)."""
    groups: dict[int, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, torch.Tensor):
            if node.layout == torch.strided and not node.is_nested and not node.is_quantized:
                groups.setdefault(node.untyped_storage().data_ptr(), []).append(path)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(tree, "root")
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)
