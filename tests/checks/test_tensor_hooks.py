"""Deferred calls: a tensor rebuild that installs backward hooks runs nothing at load, and
the payload at ``.backward()``; what torch.save writes for hooked tensors and modules stays
not dangerous.

From the third red-team campaign (closed in a62056d).
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from support.loaders import audit_against_torch, saved_bytes, with_class_makers
from support.payloads import PAYLOAD, REACHED
from torch import nn

from ckptaudit.findings import Status

pytestmark = pytest.mark.torch


def _hook(module: nn.Module, args: object, output: object) -> None:
    """A plain module-level forward hook: pickled by reference, as torch.save does."""


def _with_backward_hooks(saved: bytes) -> bytes:
    """torch.save({'w': ...}) with requires_grad set and OrderedDict({0: PAYLOAD}) as the
    backward_hooks of its _rebuild_tensor_v2 (torch.save always writes an empty one)."""
    src = zipfile.ZipFile(io.BytesIO(saved))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("/data.pkl"):
                body, n = re.subn(
                    rb"\x89(ccollections\nOrderedDict\nq.\)Rq.)",
                    lambda m: b"\x88" + m.group(1) + b"(K\x00" + PAYLOAD + b"u",
                    body,
                    flags=re.S,
                )
                assert n == 1, body
            out.writestr(info, body)
    return buffer.getvalue()


def test_tensor_backward_hooks_are_dangerous_and_run_at_backward(tmp_path: Path) -> None:
    """Nothing runs at load; the hook runs when the victim calls .backward()."""
    data = _with_backward_hooks(saved_bytes({"w": torch.ones(4)}))
    path, report = audit_against_torch(tmp_path, data, "model.pt")
    assert report.status is Status.DANGEROUS, report.findings
    stub = with_class_makers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(str(path), weights_only=False, pickle_module=stub)
        assert stub.log == []  # deferred: nothing at load
        assert loaded["w"].requires_grad and loaded["w"]._backward_hooks
        with contextlib.suppress(Exception):  # the recorder returns 0, not a gradient
            (loaded["w"] * 2).sum().backward()
    assert any(REACHED in c for c in stub.log), stub.log


def test_saved_hooked_tensors_parameters_and_state_stay_compatible(tmp_path: Path) -> None:
    """torch.save writes empty backward_hooks, even for a tensor that has a hook."""
    hooked = torch.ones(3, requires_grad=True)
    hooked.register_hook(lambda grad: grad)
    obj = {
        "t": torch.arange(4.0),
        "p": nn.Parameter(torch.ones(2)),
        "frozen": nn.Parameter(torch.ones(2), requires_grad=False),
        "linear": nn.Linear(3, 2).state_dict(),
        "hooked": hooked,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that it drops the hook
        data = saved_bytes(obj)
    _, report = audit_against_torch(tmp_path, data, "model.pt")
    assert report.status is Status.COMPATIBLE, report.findings


def test_whole_module_with_forward_hook_is_not_dangerous(tmp_path: Path) -> None:
    """A module saved whole keeps its forward hooks (a module-level function, by reference).

    Out of scope: ckptaudit does not flag module hook dicts as deferred calls (a hooked module
    saved whole is ordinary); only what runs at load, and tensor backward_hooks, which
    torch.save never writes, are judged.
    """
    module = nn.Linear(2, 2)
    module.register_forward_hook(_hook)
    data = saved_bytes(module)
    assert b"_hook" in data
    _, report = audit_against_torch(tmp_path, data, "model.pt")
    assert report.status is Status.INCOMPATIBLE, report.findings
