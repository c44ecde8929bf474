"""Export a migration plan as safetensors: tensors in the file, everything else as JSON.

Format: an 8-byte little-endian header length, a JSON header (``{"name": {"dtype", "shape",
"data_offsets"}, "__metadata__": {str: str}}``, space-padded to a multiple of 8), then the
tensor bytes, each tensor contiguous and on its own. Written here without the ``safetensors``
package (it verifies the result when installed).

The rest of the checkpoint (the plan's tree with tensors replaced by ``{"__tensor__":
name}``) goes into the metadata as ``ckptaudit.structure``, or into ``DST.json`` beside the
file when it is larger than :data:`SIDECAR_THRESHOLD`. safetensors has no shared storage:
tensors that are the same view of a storage are written once (the others are recorded as
aliases), tensors that overlap in another way are copied, each one recorded, never silently.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ckptaudit.errors import MigrationRefused, VerificationFailed
from ckptaudit.migrate.manifest import Manifest
from ckptaudit.migrate.plan import OutStorage, Plan
from ckptaudit.migrate.storages import CHUNK, ByteRange
from ckptaudit.pickle.nodes import Call, Global, PDict, PersId

__all__ = ["SIDECAR_THRESHOLD", "write_safetensors"]

SIDECAR_THRESHOLD = 64 << 10
"""Bytes of structure JSON above which it goes to ``DST.json`` instead of the header."""

_DTYPES = {
    "float64": ("F64", 8),
    "float32": ("F32", 4),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
    "int64": ("I64", 8),
    "int32": ("I32", 4),
    "int16": ("I16", 2),
    "int8": ("I8", 1),
    "uint8": ("U8", 1),
    "uint16": ("U16", 2),
    "uint32": ("U32", 4),
    "uint64": ("U64", 8),
    "bool": ("BOOL", 1),
    "float8_e4m3fn": ("F8_E4M3", 1),
    "float8_e5m2": ("F8_E5M2", 1),
    "complex64": ("C64", 8),
}
_TENSORS = frozenset(
    {
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
    }
)


@dataclass
class _Tensor:
    name: str
    storage: OutStorage
    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    requires_grad: bool
    parameter: bool


def _tensor_of(call: Call, storages: dict[str, OutStorage], name: str) -> _Tensor:
    parameter = isinstance(call.func, Global) and call.func.name == "_rebuild_parameter"
    inner = call.args[0] if parameter else call
    args = inner.args
    pid: PersId = args[0]
    storage = storages[pid.pid[2]]
    dtype = storage.dtype
    if isinstance(inner.func, Global) and inner.func.name == "_rebuild_tensor_v3":
        dtype = args[6].name
    requires_grad = bool(call.args[1]) if parameter else bool(args[4])
    return _Tensor(
        name, storage, dtype, tuple(args[2]), tuple(args[3]), args[1], requires_grad, parameter
    )


class _Flattener:
    """Names tensors by their path (``model.fc.weight``) and turns the rest into JSON."""

    def __init__(self, plan: Plan) -> None:
        self.storages = {s.key: s for s in plan.storages}
        self.tensors: dict[int, _Tensor] = {}
        self.names: set[str] = set()
        self.active: set[int] = set()

    def name_for(self, path: list[str]) -> str:
        base = ".".join(path) or "tensor"
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}#{n}"
        self.names.add(name)
        return name

    def json(self, node: Any, path: list[str]) -> Any:
        t = type(node)
        if node is None or t in (bool, int, str):
            return node
        if t is float:
            return node if math.isfinite(node) else {"__float__": repr(node)}
        if t is bytes or t is bytearray:
            return {"__bytes__": base64.b64encode(bytes(node)).decode()}
        if t is complex:
            return {"__complex__": [node.real, node.imag]}
        if id(node) in self.active:
            raise MigrationRefused("a cycle in the object tree: JSON cannot hold it")
        self.active.add(id(node))
        try:
            return self._container(node, path)
        finally:
            self.active.discard(id(node))

    def _container(self, node: Any, path: list[str]) -> Any:
        t = type(node)
        if t in (list, tuple):
            items = [self.json(v, [*path, str(i)]) for i, v in enumerate(node)]
            return items if t is list else {"__tuple__": items}
        if t is PDict:
            return self._mapping(node.pairs, path, None)
        if t is Global:
            return {"__global__": node.qualified}
        if t is Call:
            name = node.func.qualified if isinstance(node.func, Global) else "?"
            if name in _TENSORS:
                found = self.tensors.get(id(node))
                if found is None:
                    found = _tensor_of(node, self.storages, self.name_for(path))
                    self.tensors[id(node)] = found
                return {"__tensor__": found.name}
            if name == "collections.OrderedDict":
                return self._mapping(node.setitems or [], path, "OrderedDict")
            if name == "builtins.set":
                return {"__set__": [self.json(v, path) for v in node.args[0]]}
            args = node.args if type(node.args) is tuple else ()
            return {"__call__": name, "args": [self.json(a, path) for a in args]}
        raise MigrationRefused(f"{'.'.join(path)}: {t.__name__} cannot be written as JSON")

    def _mapping(self, pairs: list[tuple[Any, Any]], path: list[str], kind: str | None) -> Any:
        if all(type(k) is str for k, _ in pairs):
            body = {k: self.json(v, [*path, k]) for k, v in pairs}
            return {"__ordered__": body} if kind else body
        return {
            "__pairs__": [[self.json(k, path), self.json(v, [*path, str(k)])] for k, v in pairs]
        }


def _contiguous(t: _Tensor) -> bool:
    expected = 1
    for size, stride in zip(reversed(t.shape), reversed(t.stride), strict=True):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _chunks(t: _Tensor, size: int) -> Iterator[bytes]:
    """The tensor's bytes in row-major order: a slice of its storage when contiguous (streamed
    from the source), else gathered element by element from the storage in memory."""
    n = _numel(t.shape)
    if n == 0:
        return
    data = t.storage.data
    if _contiguous(t):
        start, length = t.offset * size, n * size
        if data.method == 0:
            yield from ByteRange(data.source, data.offset + start, length, length).chunks(CHUNK)
            return
        blob = data.read_all()
        yield blob[start : start + length]
        return
    view = memoryview(data.read_all())
    out = bytearray()
    index = [0] * len(t.shape)
    for _ in range(n):
        pos = t.offset + sum(i * s for i, s in zip(index, t.stride, strict=True))
        out += view[pos * size : (pos + 1) * size]
        for axis in range(len(index) - 1, -1, -1):
            index[axis] += 1
            if index[axis] < t.shape[axis]:
                break
            index[axis] = 0
    yield bytes(out)


def write_safetensors(prepared: Any, manifest: Manifest, dst: str, use_torch: bool) -> Manifest:
    """Write the plan as safetensors (atomically), verify it, and return the manifest."""
    from ckptaudit.migrate.api import _temporary, _write_text_atomic
    from ckptaudit.migrate.verify import fsync_dir

    plan: Plan = prepared.plan
    flat = _Flattener(plan)
    structure = flat.json(plan.root, [])
    tensors = list(flat.tensors.values())
    layout: dict[str, Any] = {}
    written: list[tuple[_Tensor, int]] = []
    aliases: dict[str, str] = {}
    copied: list[str] = []
    seen_views: dict[tuple[Any, ...], str] = {}
    by_storage: dict[str, list[str]] = {}
    offset = 0
    for t in tensors:
        if t.dtype not in _DTYPES:
            raise MigrationRefused(f"{t.name}: dtype {t.dtype} has no safetensors equivalent")
        code, size = _DTYPES[t.dtype]
        view = (t.storage.key, t.offset, t.shape, t.stride, t.dtype)
        if view in seen_views:
            aliases[t.name] = seen_views[view]
            continue
        seen_views[view] = t.name
        by_storage.setdefault(t.storage.key, []).append(t.name)
        nbytes = _numel(t.shape) * size
        layout[t.name] = {
            "dtype": code,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        written.append((t, nbytes))
        offset += nbytes
    for names in by_storage.values():
        if len(names) > 1:
            copied.extend(names)
    info = {
        t.name: {"requires_grad": t.requires_grad, "parameter": t.parameter}
        for t in tensors
        if t.requires_grad or t.parameter
    }
    text = json.dumps(structure, ensure_ascii=False, separators=(",", ":"))
    metadata = {
        "format": "pt",
        "ckptaudit.aliases": json.dumps(aliases),
        "ckptaudit.tensor_info": json.dumps(info),
    }
    sidecar = None
    if len(text) > SIDECAR_THRESHOLD:
        sidecar = dst + ".json"
        metadata["ckptaudit.structure_file"] = os.path.basename(sidecar)
    else:
        metadata["ckptaudit.structure"] = text
    header = json.dumps({"__metadata__": metadata, **layout}, separators=(",", ":")).encode()
    header += b" " * ((-len(header)) % 8)
    crcs: dict[str, int] = {}
    with _temporary(dst) as (tmp, handle):
        handle.write(struct.pack("<Q", len(header)) + header)
        for t, nbytes in written:
            crc = 0
            got = 0
            for chunk in _chunks(t, _DTYPES[t.dtype][1]):
                crc = zlib.crc32(chunk, crc)
                got += len(chunk)
                handle.write(chunk)
            if got != nbytes:
                raise VerificationFailed(f"{t.name}: {got} bytes gathered, {nbytes} expected")
            crcs[t.name] = crc
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        passed = _verify(tmp, layout, crcs, use_torch)
        if sidecar:
            _write_text_atomic(sidecar, text)
        os.replace(tmp, dst)
        fsync_dir(dst)
    notes = []
    if aliases:
        notes.append(
            f"{len(aliases)} tensors are the same view as another: written once, "
            "recorded in ckptaudit.aliases"
        )
    if copied:
        notes.append(f"{len(copied)} tensors shared a storage: each copied on its own")
    if info:
        notes.append(
            "requires_grad and Parameter-ness are recorded in ckptaudit.tensor_info "
            "(safetensors holds neither)"
        )
    extra = {"aliases": aliases, "copied_shared_storage": copied, "notes": notes}
    return replace(manifest, verified=passed, sidecar=sidecar, extra=extra)


def _verify(
    path: str, layout: dict[str, Any], crcs: dict[str, int], use_torch: bool
) -> tuple[str, ...]:
    passed: list[str] = []
    from ckptaudit.audit import audit_file

    report = audit_file(path)
    if report.format != "safetensors":
        raise VerificationFailed(f"the new file reads as {report.format}, not safetensors")
    passed.append("audit: a safetensors file")
    try:
        import safetensors
    except ImportError:
        return tuple(passed)
    safe_open: Any = safetensors.safe_open
    framework = "pt" if use_torch else "numpy"
    try:
        if framework == "numpy":
            import numpy  # noqa: F401
    except ImportError:
        return tuple(passed)
    with safe_open(path, framework=framework) as f:
        keys = set(f.keys())
        if keys != set(layout):
            raise VerificationFailed(
                f"safetensors lists {sorted(keys)[:5]}..., not the plan's tensors"
            )
        for name in layout:
            tensor = f.get_tensor(name)
            if list(tensor.shape) != layout[name]["shape"]:
                raise VerificationFailed(f"{name}: shape {list(tensor.shape)} on reload")
            raw = _tensor_bytes(tensor) if framework == "pt" else tensor.tobytes()
            if zlib.crc32(raw) != crcs[name]:
                raise VerificationFailed(f"{name}: bytes differ on reload")
    passed.append(f"the safetensors package reloads {len(layout)} tensors, bytes identical")
    return tuple(passed)


def _tensor_bytes(tensor: Any) -> bytes:
    import torch

    flat = tensor.contiguous().view(-1)
    if flat.dtype is torch.bool:
        flat = flat.view(torch.uint8)
    return bytes(flat.view(torch.uint8).numpy().tobytes())
