"""Real loaders that prove a payload is reached, without running it; torch as the judge.

The loaders never run a payload: the pickle module they are given resolves a short list of
harmless globals for real and turns every other one (``os.system``, ``logging.os``,
``uuid._ip_getnode``) into a :class:`Recorder`, so a builder that stops being a real payload
makes its test fail. Container formats go through ``torch.load(weights_only=False,
pickle_module=<that stub>)``, so torch's own zip/tar/legacy code picks the pickle it unpickles;
the safe ``torch.load(weights_only=True)`` is what ckptaudit's ``weights_only_compatible`` is
checked against.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import pickle
import types
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ckptaudit
from ckptaudit.findings import FileReport, Status

# --------------------------------------------------------------------------- torch as the judge


def torch_weights_only_loads(path: Path) -> bool:
    """Whether ``torch.load(path, weights_only=True)`` succeeds (its warnings ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(str(path), weights_only=True)
        except Exception:
            return False
    return True


def torch_loads(path: Path, safe: list[Any] | None = None) -> tuple[bool, str]:
    """``torch.load(path, weights_only=True)`` with ``safe`` allowlisted: (loads, its error).

    A warning inside torch.load (deprecations) is not a failure to load: warnings are ignored
    here although the suite turns them into errors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if safe:
                with torch.serialization.safe_globals(safe):
                    torch.load(path, weights_only=True)
            else:
                torch.load(path, weights_only=True)
        except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError...)
            return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def save(obj: Any, path: Path, **kwargs: Any) -> Path:
    """``torch.save(obj, path, **kwargs)``; returns the path."""
    torch.save(obj, path, **kwargs)
    return path


def saved_bytes(obj: object) -> bytes:
    """What ``torch.save(obj)`` writes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def resolve_name(name: str) -> Any:
    """Import a global named in one of OUR fixtures (never in an untrusted file)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(name)


def audit_against_torch(tmp_path: Path, data: bytes, filename: str) -> tuple[Path, FileReport]:
    """Write ``data``, audit it, and require the verdict torch's own loader gives."""
    path = tmp_path / filename
    path.write_bytes(data)
    report = ckptaudit.audit_file(path)
    assert report.weights_only_compatible is torch_weights_only_loads(path), report
    return path, report


# --------------------------------------------------------------------------- recording loaders

HARMLESS = {("builtins", n) for n in ("getattr", "dict", "list", "set", "tuple", "frozenset")} | {
    ("functools", "partial"),
    ("types", "SimpleNamespace"),
    ("copyreg", "_reconstructor"),
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_parameter"),
}
"""Globals every recording stub resolves for real: the gadgets are built from them."""

GADGET_TARGETS: dict[tuple[str, str], object] = {
    ("uuid", "UUID"): uuid.UUID,
    ("builtins", "str"): str,
    ("builtins", "int"): int,
    ("torch", "Tensor"): torch.Tensor,
    ("torch", "float32"): torch.float32,
    (
        "torch._utils",
        "_rebuild_meta_tensor_no_storage",
    ): torch._utils._rebuild_meta_tensor_no_storage,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type"): torch._tensor._rebuild_from_type,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
    ("torch.nn.modules.linear", "Identity"): nn.Identity,
}
"""Objects a planted-method gadget needs for real (uuid.UUID calls replace(), a torch rebuild
function calls setattr) so that the loader reaches the planted method."""

CLASS_MAKERS = [
    ("builtins", "object"),
    ("numbers", "ABCMeta"),
    ("typing", "_ProtocolMeta"),
    ("_py_abc", "ABCMeta"),
    ("torch.nn.parameter", "_ParameterMeta"),
    ("weakref", "ref"),
    ("_weakref", "ref"),
    ("wave", "Wave_read"),
    ("_pyio", "BytesIO"),
    ("sunau", "Au_write"),
    ("aifc", "Aifc_write"),
    ("torch", "FloatStorage"),
    ("torch._utils", "_rebuild_tensor_v2"),
]
"""Metaclasses, weakref.ref and classes whose destructor calls close(): what NEWOBJ gadgets
instantiate, resolved for real by name where this Python has them."""


class Recorder:
    """Stands for any global the stub does not trust: calling it only logs the call."""

    def __init__(self, name: str, log: list[str]) -> None:
        self._name, self._log = name, log

    def __call__(self, *args: object) -> int:
        self._log.append(f"{self._name}{args!r}")
        return 0

    def __getattr__(self, attr: str) -> Recorder:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Recorder(f"{self._name}.{attr}", self._log)


def recording_pickle_module(*real: Mapping[tuple[str, str], object]) -> types.ModuleType:
    """A module usable as ``pickle_module``: harmless globals (and ``real``) are real, the
    rest record."""
    log: list[str] = []
    resolved: dict[tuple[str, str], object] = {
        # A private subclass: a BUILD on the class must not patch the real argparse.Namespace.
        ("argparse", "Namespace"): type("Namespace", (argparse.Namespace,), {}),
    }
    for table in real:
        resolved.update(table)

    class RecordingUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            key = (module, name)
            if key not in resolved:
                harmless = key in HARMLESS
                resolved[key] = (
                    super().find_class(*key) if harmless else Recorder(".".join(key), log)
                )
            return resolved[key]

    stub = types.ModuleType("recording_pickle")
    stub.Unpickler = RecordingUnpickler  # type: ignore[attr-defined]
    stub.load = lambda f, **kw: RecordingUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    stub.loads = lambda b, **kw: RecordingUnpickler(io.BytesIO(b), **kw).load()  # type: ignore[attr-defined]
    stub.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    stub.log = log  # type: ignore[attr-defined]
    stub.resolved = resolved  # type: ignore[attr-defined]
    return stub


def with_gadget_targets() -> types.ModuleType:
    """The recording stub, with :data:`GADGET_TARGETS` resolved for real."""
    return recording_pickle_module(GADGET_TARGETS)


def with_class_makers() -> types.ModuleType:
    """The recording stub, with :data:`GADGET_TARGETS` and :data:`CLASS_MAKERS` real."""
    makers: dict[tuple[str, str], object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aifc and sunau warn on import (removed in 3.13)
        for module, name in CLASS_MAKERS:
            if importlib.util.find_spec(module) is not None:
                makers[(module, name)] = getattr(importlib.import_module(module), name)
    return recording_pickle_module(GADGET_TARGETS, makers)


# --------------------------------------------------------------------------- the loaders


def _load_all(stub: types.ModuleType, data: bytes) -> None:
    """pickle.load until the bytes run out, as loaders that read several objects do."""
    f = io.BytesIO(data)
    while f.tell() < len(data):
        stub.load(f)


def _np_load(stub: types.ModuleType, f: object, member: str | None = None) -> None:
    try:  # where read_array lives: numpy >= 2, then 1.x
        fmt = importlib.import_module("numpy.lib._format_impl")
    except ImportError:
        fmt = importlib.import_module("numpy.lib.format")
    saved = fmt.pickle
    fmt.pickle = stub  # np.load(allow_pickle=True) unpickles object arrays through it
    try:
        loaded = np.load(f, allow_pickle=True)
        if member is not None:
            loaded[member]
    finally:
        fmt.pickle = saved


def _zip_walk(stub: types.ModuleType, data: bytes) -> None:
    """A tool that opens every member: pickles, .npy arrays and nested zips."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            body = z.read(name)
            try:
                if name.endswith(".zip"):
                    _zip_walk(stub, body)
                elif name.endswith(".npy"):
                    _np_load(stub, io.BytesIO(body))
                elif name.endswith((".pkl", ".pth")):
                    _load_all(stub, body)
            except Exception:  # a broken member ends only that member
                continue


def _data_pkl_loop(stub: types.ModuleType, path: Path) -> None:
    """A tool that pickle.loads a torch zip's data.pkl until EOF (storages stubbed out)."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("/data.pkl"):
                body = z.read(name)
                f = io.BytesIO(body)
                while f.tell() < len(body):
                    unpickler = stub.Unpickler(f)
                    unpickler.persistent_load = lambda pid: None
                    unpickler.load()


def _torch(path: Path, stub: types.ModuleType) -> None:
    torch.load(str(path), weights_only=False, pickle_module=stub)


def _torch_fileobj(path: Path, stub: types.ModuleType) -> None:
    with path.open("rb") as f:  # a file object: torch's .safetensors name check is skipped
        torch.load(f, weights_only=False, pickle_module=stub)


def _torch_bytesio(path: Path, stub: types.ModuleType) -> None:
    """torch.load of an in-memory copy: BytesIO has no peek(), so frames are read whole."""
    torch.load(io.BytesIO(path.read_bytes()), weights_only=False, pickle_module=stub)


LOADERS: dict[str, Callable[[Path, types.ModuleType], None]] = {
    "pickle": lambda path, stub: stub.loads(path.read_bytes()),
    "pickle-loop": lambda path, stub: _load_all(stub, path.read_bytes()),
    "torch": _torch,
    "torch-fileobj": _torch_fileobj,
    "torch-bytesio": _torch_bytesio,
    "zip-walk": lambda path, stub: _zip_walk(stub, path.read_bytes()),
    "npz": lambda path, stub: _np_load(stub, path, "arr"),
    "data-pkl-loop": lambda path, stub: _data_pkl_loop(stub, path),
}
"""Real loaders by name: each opens the file its own way and unpickles through the stub."""


def payload_calls(
    path: Path, loader: str, stub_factory: Callable[[], types.ModuleType] | None = None
) -> list[str]:
    """What a real loader calls when it loads ``path`` (recorded, never run)."""
    stub = (stub_factory or recording_pickle_module)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The recorder's return value (0) breaks most gadgets right after the call.
        with contextlib.suppress(Exception):
            LOADERS[loader](path, stub)
    return list(stub.log)


def assert_dangerous_and_reached(
    tmp_path: Path,
    data: bytes,
    filename: str,
    loader: str,
    ran: str,
    stub_factory: Callable[[], types.ModuleType] | None = None,
) -> FileReport:
    """ckptaudit calls the file dangerous (and agrees with torch), and the loader reaches
    the payload: its recorder logs a call containing ``ran``."""
    path, report = audit_against_torch(tmp_path, data, filename)
    assert report.status is Status.DANGEROUS, report.findings
    calls = payload_calls(path, loader, stub_factory)
    assert any(ran in c for c in calls), calls
    return report
