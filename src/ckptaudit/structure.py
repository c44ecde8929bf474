"""Read what an inert tree holds: type summaries, tensors and their storages."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any, NamedTuple

from ckptaudit.findings import TopLevelEntry
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet
from ckptaudit.pickle.paths import render_key
from ckptaudit.pickle.vm import PickleResult

__all__ = [
    "STORAGE_TYPES",
    "StorageRef",
    "ndarray_info",
    "storage_ref",
    "storage_refs",
    "summarize",
    "tensor_info",
    "tensor_problem",
    "tensor_rebuild_calls",
    "top_level",
]

# Element sizes and dtype names of torch's legacy storage classes (what torch.save pickles).
STORAGE_TYPES: dict[str, tuple[str, int]] = {
    "DoubleStorage": ("float64", 8),
    "FloatStorage": ("float32", 4),
    "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2),
    "LongStorage": ("int64", 8),
    "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2),
    "CharStorage": ("int8", 1),
    "ByteStorage": ("uint8", 1),
    "BoolStorage": ("bool", 1),
    "ComplexDoubleStorage": ("complex128", 16),
    "ComplexFloatStorage": ("complex64", 8),
    "QUInt8Storage": ("quint8", 1),
    "QInt8Storage": ("qint8", 1),
    "QInt32Storage": ("qint32", 4),
    "QUInt4x2Storage": ("quint4x2", 1),
    "QUInt2x4Storage": ("quint2x4", 1),
    "UntypedStorage": ("uint8", 1),
}

_TENSOR_REBUILDS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_qtensor",
    }
)
_PARAMETER_REBUILDS = frozenset(
    {
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
    }
)
_SUBCLASS_REBUILD = "torch._tensor._rebuild_from_type_v2"
_NDARRAY_RECONSTRUCT = frozenset(
    {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
)
# numpy's dtype strings ('f4', 'i8', 'c16'): kind letter -> name, to which the bits are added.
_NUMPY_KINDS = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
_NUMPY_NAMED = {"b1": "bool", "O8": "object", "O4": "object", "O": "object"}


class StorageRef(NamedTuple):
    """A tensor storage named by a persistent id ('storage', type, key, location, numel)."""

    key: str
    dtype: str
    numel: int
    element_size: int
    location: str

    @property
    def nbytes(self) -> int:
        """Bytes of the storage."""
        return self.numel * self.element_size


def storage_ref(pid: PersId) -> StorageRef | None:
    """Parse a storage persistent id; None if it is not one."""
    value = pid.pid
    if not (type(value) is tuple and len(value) >= 5):
        return None
    typename = value[0]
    if type(typename) is bytes:
        typename = typename.decode("ascii", "replace")
    storage_type = value[1]
    if typename != "storage" or type(storage_type) is not Global:
        return None
    numel = value[4]
    if type(numel) is not int or numel < 0:
        return None
    dtype, size = STORAGE_TYPES.get(storage_type.name, ("unknown", 1))
    return StorageRef(str(value[2]), dtype, numel, size, str(value[3]))


def storage_refs(results: Iterable[PickleResult]) -> dict[str, StorageRef]:
    """The storages the given pickles reference, first reference per key, in order."""
    refs: dict[str, StorageRef] = {}
    for result in results:
        for pid in result.persids:
            ref = storage_ref(pid)
            if ref is not None and ref.key not in refs:
                refs[ref.key] = ref
    return refs


def tensor_rebuild_calls(results: Iterable[PickleResult]) -> list[Call]:
    """The calls of torch's tensor rebuild functions in the given pickles."""
    return [
        call
        for result in results
        for call in result.calls
        if isinstance(call.func, Global) and call.func.qualified in _TENSOR_REBUILDS
    ]


def _global_name(node: Any) -> str | None:
    if isinstance(node, Call) and isinstance(node.func, Global):
        return node.func.qualified
    return None


def tensor_info(node: Any, _depth: int = 0) -> tuple[str, tuple[int, ...] | None, str] | None:
    """For a tensor-rebuilding call, return (class label, shape, dtype); else None."""
    name = _global_name(node)
    if _depth > 4:  # real checkpoints nest at most Parameter -> subclass -> tensor
        return None
    if name is None:
        return None
    assert isinstance(node, Call)
    args = node.args if type(node.args) is tuple else ()
    if name in _PARAMETER_REBUILDS and args:
        inner = tensor_info(args[0], _depth + 1)
        if inner is not None:
            return ("Parameter", inner[1], inner[2])
    if name == _SUBCLASS_REBUILD and len(args) >= 3:
        cls = args[1]
        label = cls.name if isinstance(cls, Global) else "Tensor"
        inner_args = args[2] if type(args[2]) is tuple else ()
        inner = tensor_info(Call(args[0], inner_args, None, "REDUCE", node.offset), _depth + 1)
        return (label, inner[1] if inner else None, inner[2] if inner else "unknown")
    if name in _TENSOR_REBUILDS and args:
        storage = args[0]
        dtype = "unknown"
        if isinstance(storage, PersId):
            ref = storage_ref(storage)
            if ref is not None:
                dtype = ref.dtype
        shape = args[2] if len(args) > 2 and type(args[2]) is tuple else None
        if shape is not None and (
            len(shape) > 64 or not all(type(d) is int and 0 <= d < 1 << 62 for d in shape)
        ):
            shape = None
        return ("Tensor", shape, dtype)
    return None


def _numpy_dtype(node: Any) -> str:
    """The dtype name of a ``numpy.dtype('f4', False, True)`` call: ``float32``."""
    args = node.args if isinstance(node, Call) and type(node.args) is tuple else ()
    code = args[0] if args and type(args[0]) is str else None
    if code is None:
        return "?"
    if code in _NUMPY_NAMED:
        return _NUMPY_NAMED[code]
    kind, size = code[:1], code[1:]
    if kind in _NUMPY_KINDS and size.isdigit():
        return f"{_NUMPY_KINDS[kind]}{int(size) * 8}"
    return code  # strings ('U2'), bytes ('S3'), records: numpy's own spelling


def ndarray_info(node: Call) -> tuple[tuple[int, ...] | None, str] | None:
    """(shape, dtype) of a pickled numpy array (``_reconstruct`` then BUILD), else None."""
    if _global_name(node) not in _NDARRAY_RECONSTRUCT:
        return None
    state = node.state
    if type(state) is not tuple or len(state) < 5:
        return (None, "?")
    shape = state[1] if type(state[1]) is tuple else None
    if shape is not None and not all(type(d) is int and d >= 0 for d in shape):
        shape = None
    return (shape, _numpy_dtype(state[2]))


def summarize(value: Any) -> str:
    """Short type summary: ``dict[3 keys]``, ``Tensor[64, 3, 3, 3] float32``, ``SeedState``."""
    t = type(value)
    if value is None:
        return "None"
    if t in (bool, int, float, str, complex):
        return t.__name__
    if t is bytes or t is bytearray:
        return f"{t.__name__}[{len(value)}]"
    if t is list:
        return f"list[{len(value)} items]"
    if t is tuple:
        return f"tuple[{len(value)} items]"
    if t is PDict:
        return f"dict[{len(value)} keys]"
    if t is PSet:
        return f"{'frozenset' if value.frozen else 'set'}[{len(value.items)} items]"
    if t is Global:
        return f"reference to {value.qualified}"
    if t is PersId:
        return "storage"
    if t is Opaque:
        return str(value.what)
    if t is Call:
        info = tensor_info(value)
        if info is not None:
            label, shape, dtype = info
            dims = "?" if shape is None else ", ".join(str(d) for d in shape)
            return f"{label}[{dims}] {dtype}"
        array = ndarray_info(value)
        if array is not None:
            shape, dtype = array
            dims = "?" if shape is None else ", ".join(str(d) for d in shape)
            return f"ndarray[{dims}] {dtype}"
        name = _global_name(value)
        if name in ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"):
            args = value.args if type(value.args) is tuple else ()
            return f"numpy {_numpy_dtype(args[0]) if args else '?'} scalar"
        if name == "_codecs.encode":
            return "bytes"
        if name is None:
            return "object (computed callable)"
        short = name.rsplit(".", 1)[-1]
        if value.setitems is not None:
            return f"{short}[{len(value.setitems)} keys]"
        if value.items is not None:
            return f"{short}[{len(value.items)} items]"
        return short
    return t.__name__


def top_level(root: Any, limit: int) -> list[TopLevelEntry]:
    """The root's entries with summaries (one entry ``root`` when it is not a container)."""
    # Only the first `limit` entries are ever materialised: a root list of millions of items
    # must not cost a tuple each.
    entries: Iterable[tuple[Any, Any]]
    if type(root) is PDict:
        flat = root.flat
        count = len(flat) // 2
        entries = zip(flat[0 : 2 * limit : 2], flat[1 : 2 * limit : 2], strict=False)
    elif type(root) is Call and root.setitems is not None and not root.items:
        count, entries = len(root.setitems), root.setitems[:limit]
    elif type(root) in (list, tuple):
        count, entries = len(root), enumerate(root[:limit])
    else:
        return [TopLevelEntry(key="root", summary=summarize(root))]
    out = []
    for key, value in entries:
        label = key if isinstance(key, str) else render_key(key)[1:-1]
        out.append(TopLevelEntry(key=str(label), summary=summarize(value)))
    if count > limit:
        out.append(TopLevelEntry(key="...", summary=f"{count - limit} more entries"))
    return out


_INT_ONLY = frozenset({int})


def tensor_problem(call: Call) -> str | None:
    """Why torch could not rebuild a ``_rebuild_tensor_v2`` tensor, judged from its arguments.

    torch calls ``tensor.set_(storage, offset, size, stride)``, which refuses a view that
    reaches past its storage, and sets ``requires_grad``, which must be a bool.
    """
    args = call.args if type(call.args) is tuple else None
    if args is None or not 6 <= len(args) <= 7:
        return "_rebuild_tensor_v2() takes 6 or 7 arguments"
    storage, offset, size, stride, requires_grad = args[:5]
    if type(requires_grad) is not bool:
        return "requires_grad must be a bool"
    if not isinstance(storage, PersId):
        return None  # not a storage reference: torch's own rules report it
    ref = storage_ref(storage)
    if ref is None:
        return None
    if (
        type(offset) is not int
        or type(size) is not tuple
        or type(stride) is not tuple
        or len(size) != len(stride)
        or not set(map(type, size + stride)) <= _INT_ONLY
    ):
        return "tensor offset, size and stride must be integers of matching rank"
    if offset < 0 or min(size, default=0) < 0:
        return "negative tensor size or storage offset"
    if 0 in size:
        return None
    # The last element a view reaches: offset + sum((d - 1) * s), one past it is the extent.
    extent = offset + 1 + sum(map(operator.mul, size, stride)) - sum(stride)
    if min(stride, default=0) < 0 or extent > ref.numel:
        return (
            f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset} "
            f"need {extent} elements but storage {ref.key} has {ref.numel}"
        )
    return None
