"""Walk a checkpoint's inert tree and decide, object by object, what the new file holds.

The result is a new tree in the emulator's vocabulary that only uses what torch's
weights_only unpickler loads by default (primitives, lists, tuples, dicts, OrderedDicts,
sets, tensors and the torch globals the policy allows), plus the table of new storages and
the manifest entries. Nothing is imported or called: a datetime is rebuilt from the integers
in its bytes, an Enum member becomes the value the pickle holds, an nn.Module the tensors its
state_dict() would name.

Objects reached twice (tied weights, a config shared by two entries) are converted once and
stay shared; cycles stay cycles.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ckptaudit.checks.shapes import shape_kind
from ckptaudit.errors import MigrationRefused
from ckptaudit.findings import Kind
from ckptaudit.migrate.convert import (
    NUMPY_DTYPES,
    NotConvertible,
    callee,
    decode_date,
    decode_datetime,
    decode_numpy_array,
    decode_numpy_dtype,
    decode_numpy_scalar,
    decode_path,
    decode_time,
    decode_timedelta,
    decode_tzinfo,
    getattr_name,
    nest,
    numpy_elements,
    state_fields,
    zone,
)
from ckptaudit.migrate.manifest import ClassInfo, Conversion, TensorEntry
from ckptaudit.migrate.storages import ByteRange, NestedStorage, SourceStorage
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet
from ckptaudit.pickle.paths import render_key
from ckptaudit.policy.torch_policy import Policy
from ckptaudit.structure import storage_ref

__all__ = [
    "MigrateOptions",
    "OutStorage",
    "Plan",
    "Planner",
    "legacy_module_class",
    "removed_label",
]

_Chain = tuple[Any, str] | None


@dataclass(frozen=True, kw_only=True)
class MigrateOptions:
    """How values are converted."""

    datetime: Literal["iso", "timestamp"] = "iso"
    """``iso``: ISO 8601 strings; ``timestamp``: float seconds since the epoch for values that
    carry a timezone (and naive ones when ``assume_timezone`` names one)."""
    assume_timezone: str | None = None
    """The zone naive datetimes are in (``UTC``, ``Europe/Paris``), for ``timestamp``."""
    sanitize: bool = False
    """Replace dangerous constructs with ``"<removed: module.name>"`` instead of refusing."""


@dataclass
class OutStorage:
    """A storage of the new file: its key there, its type, and where its bytes come from."""

    key: str
    """``data/<key>`` in the new archive."""
    type_global: Global
    """``torch.FloatStorage``... or ``torch.storage.UntypedStorage``."""
    numel: int
    """Element count as the persistent id states it."""
    nbytes: int
    """Bytes."""
    location: str
    """Device the storage was saved from (``cpu``)."""
    data: ByteRange
    """Its bytes (a range of the source file, or memory)."""
    dtype: str
    """Element dtype name (``float32``; ``uint8`` for untyped storages)."""


@dataclass
class Plan:
    """What the new file holds."""

    root: Any
    """The new object tree."""
    storages: list[OutStorage] = field(default_factory=list)
    """Storages, in key order."""
    conversions: list[Conversion] = field(default_factory=list)
    """Manifest entries, in document order."""
    tensors: list[TensorEntry] = field(default_factory=list)
    """Every tensor written."""
    classes: list[ClassInfo] = field(default_factory=list)
    """Classes converted to plain data."""
    removed: list[str] = field(default_factory=list)
    """Dangerous constructs replaced (--sanitize)."""


def removed_label(name: str) -> str:
    """The string that stands where a dangerous construct was (--sanitize)."""
    return f"<removed: {name}>"


def _render(chain: _Chain) -> str:
    parts: list[str] = []
    while chain is not None:
        chain, segment = chain
        parts.append(segment)
    parts.append("root")
    return "".join(reversed(parts))


def _attr(name: Any) -> str:
    return f".{name}" if isinstance(name, str) and name.isidentifier() else render_key(name)


def _g(module: str, name: str) -> Global:
    return Global(module, name, -1, "GLOBAL", False)


def _call(func: Global, args: tuple[Any, ...], opcode: str = "REDUCE") -> Call:
    return Call(func, args, None, opcode, -1)


def _ordered_dict(pairs: list[tuple[Any, Any]] | None = None) -> Call:
    node = _call(_g("collections", "OrderedDict"), ())
    if pairs is not None:
        node.setitems = pairs
    return node


_TENSOR_V2 = "torch._utils._rebuild_tensor_v2"
_TENSOR_V3 = "torch._utils._rebuild_tensor_v3"
_PARAMETER = "torch._utils._rebuild_parameter"
_PARAMETER_STATE = "torch._utils._rebuild_parameter_with_state"

# torch dtype -> legacy typed storage class that torch.save writes (None: untyped + v3).
_STORAGE_CLASS: dict[str, str | None] = {
    "float64": "DoubleStorage",
    "float32": "FloatStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
    "complex128": "ComplexDoubleStorage",
    "complex64": "ComplexFloatStorage",
    "uint16": None,
    "uint32": None,
    "uint64": None,
}

_NAMESPACES = frozenset({"argparse.Namespace", "types.SimpleNamespace"})
_RECONSTRUCT = frozenset(
    {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
)
_SCALAR = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
# Module attributes that are bookkeeping of nn.Module itself, not the user's data.
_MODULE_INTERNALS = frozenset(
    {
        "_parameters",
        "_buffers",
        "_modules",
        "_non_persistent_buffers_set",
        "training",
        "_backward_pre_hooks",
        "_backward_hooks",
        "_is_full_backward_hook",
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    }
)


def _is_literal(value: Any) -> bool:
    if value is None or type(value) in (bool, int, float, str, bytes, complex):
        return True
    return type(value) is tuple and all(_is_literal(v) for v in value)


def _class_like(name: str) -> bool:
    last = name.rsplit(".", 1)[-1].lstrip("_")
    return last[:1].isupper()


def _enum_like(node: Call) -> bool:
    """``Cls(value)``: how an Enum member is pickled (a class, one literal, no state)."""
    args = node.args
    return (
        node.opcode == "REDUCE"
        and isinstance(node.func, Global)
        and type(args) is tuple
        and len(args) == 1
        and not node.builds
        and not node.items
        and not node.setitems
        and _is_literal(args[0])
        and _class_like(node.func.qualified)
    )


def _pairs(node: Any) -> list[tuple[Any, Any]] | None:
    """Key-value pairs of a dict-like node (dict, OrderedDict, any SETITEMS target)."""
    if type(node) is PDict:
        return node.pairs
    if isinstance(node, Call):
        pairs = list(node.setitems or [])
        args = node.args if type(node.args) is tuple else ()
        if args and type(args[0]) is list and not pairs:
            pairs = [tuple(p) for p in args[0] if type(p) in (list, tuple) and len(p) == 2]
        return pairs
    return None


def _set_items(node: Any) -> list[Any] | None:
    """Items of a set-like node: a PSet, or ``set([...])`` as protocol 2 writes it."""
    if type(node) is PSet:
        return node.items
    if callee(node) in ("builtins.set", "builtins.frozenset"):
        args = node.args if type(node.args) is tuple else ()
        if not args:
            return []
        if type(args[0]) in (list, tuple):
            return list(args[0])
    return None


def legacy_module_class(func: Any) -> Global | None:
    """The class of a legacy whole-module save, named by the persistent id
    ``('module', cls, source_file, source)``; None for anything else."""
    if not isinstance(func, PersId):
        return None
    pid = func.pid
    if not (type(pid) is tuple and len(pid) == 4 and pid[0] in ("module", b"module")):
        return None
    cls = pid[1]
    if not isinstance(cls, Global) or cls.dynamic:
        return None
    if not all(p is None or type(p) in (str, bytes) for p in pid[2:]):
        return None
    return cls


def field_kind(node: Any, depth: int = 0) -> str:
    """How a field's value is stored after migration, for generated code: ``plain``,
    ``enum:mod.Cls``, ``datetime``, ``date``, ``time``, ``timedelta``, ``deque``,
    ``defaultdict``, ``set``, ``path``, ``numpy``, ``tensor``, ``object:mod.Cls``,
    ``module:mod.Cls``, ``reference``. Deques of deques are described 8 levels deep at most
    (the file chooses how deep they go; code generation recurses on the description)."""
    if isinstance(node, Global):
        return "reference"
    name = callee(node)
    if name is None:
        return "plain"
    assert isinstance(node, Call)
    if name.startswith("torch._utils._rebuild_"):
        return "tensor"
    simple = {
        "datetime.datetime": "datetime",
        "datetime.date": "date",
        "datetime.time": "time",
        "datetime.timedelta": "timedelta",
        "collections.deque": "deque",
        "collections.defaultdict": "defaultdict",
        "builtins.frozenset": "set",
    }
    if name in simple:
        kind = simple[name]
        items = node.items or (
            node.args[0]
            if type(node.args) is tuple and node.args and type(node.args[0]) is list
            else []
        )
        if kind == "deque":
            args = node.args if type(node.args) is tuple else ()
            maxlen = args[1] if len(args) > 1 and type(args[1]) is int else None
            inner = field_kind(items[0], depth + 1) if items and depth < 8 else "plain"
            return f"deque@{maxlen}" + (f"[{inner}]" if inner != "plain" else "")
        return kind
    if name.startswith(("pathlib.", "pathlib._local.")):
        return "path"
    if name.startswith("numpy"):
        return "numpy"
    if _enum_like(node):
        return f"enum:{name}"
    kind = shape_kind(node)
    if kind is Kind.MODULE:
        return f"module:{name}"
    if kind is Kind.OBJECT:
        return f"object:{name}"
    return "plain"


class Planner:
    """Converts one tree; read the :class:`Plan` from :meth:`run`."""

    def __init__(
        self,
        *,
        policy: Policy,
        storages: dict[str, SourceStorage],
        options: MigrateOptions,
        dangerous: frozenset[int] = frozenset(),
        explained: dict[int, NestedStorage] | None = None,
        explained_modules: frozenset[int] = frozenset(),
    ) -> None:
        self.policy = policy
        self.source_storages = storages
        self.options = options
        self.dangerous = dangerous
        self.explained = explained or {}
        self.explained_modules = explained_modules
        """id of a ``torch.storage._load_from_bytes`` call -> the SourceStorage it holds."""
        self.memo: dict[int, Any] = {}
        self.alive: list[Any] = []
        self.out_storages: dict[Any, OutStorage] = {}
        self.plan = Plan(root=None)
        self.classes: dict[str, ClassInfo] = {}

    # -- entry points ----------------------------------------------------------------------

    def run(self, root: Any) -> Plan:
        """Convert the tree; raises :class:`MigrationRefused` for what cannot be converted."""
        self.plan.root = self.convert(root, None, 0)
        self.plan.storages = list(self.out_storages.values())
        self.plan.classes = list(self.classes.values())
        return self.plan

    def record(self, chain: _Chain, original: str, kind: str, became: str, **extra: Any) -> None:
        """Add a manifest entry."""
        self.plan.conversions.append(
            Conversion(path=_render(chain), original=original, kind=kind, became=became, **extra)
        )

    def convert(self, node: Any, chain: _Chain, depth: int) -> Any:
        """The new value of a node (memoized: a shared node converts once)."""
        t = type(node)
        if node is None or t in (bool, float, str, bytes, bytearray, complex):
            return node
        if t is int:
            if node.bit_length() > 2000:
                self.record(chain, "int", "number", "str", note="torch rejects LONG4 integers")
                return str(node)
            return node
        if depth > 200:
            raise MigrationRefused(f"{_render(chain)}: nested deeper than 200 levels")
        found = self.memo.get(id(node))
        if found is not None or id(node) in self.memo:
            return found
        if t is list:
            out: Any = []
            self.memo[id(node)] = out
            out.extend(self.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(node))
            return out
        if t is tuple:
            out = tuple(self.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(node))
            self.memo[id(node)] = out
            return out
        if t is PDict:
            out = PDict()
            self.memo[id(node)] = out
            self.fill_dict(out, node.pairs, chain, depth)
            return out
        if t is PSet:
            return self.convert_set(
                node,
                node.items,
                "builtins.frozenset" if node.frozen else "builtins.set",
                chain,
                depth,
            )
        if t is Global:
            out = self.convert_global(node, chain)
        elif t is PersId:
            out = self.convert_persid(node, chain, 0)[0]
        elif t is Opaque:
            raise MigrationRefused(f"{_render(chain)}: {node.what} whose bytes are not in the file")
        elif t is Call:
            return self.convert_call(node, chain, depth)
        else:  # pragma: no cover - the emulator makes no other node
            raise MigrationRefused(f"{_render(chain)}: unexpected {t.__name__}")
        self.memo[id(node)] = out
        return out

    # -- containers --------------------------------------------------------------------------

    def fill_dict(
        self, out: PDict, pairs: list[tuple[Any, Any]], chain: _Chain, depth: int
    ) -> None:
        """Convert keys and values into ``out``; keys that stop being hashable become text."""
        seen: set[Any] = set()
        for i, (key, value) in enumerate(pairs):
            key_chain = (chain, f".keys()[{i}]")
            new_key = self.convert(key, key_chain, depth + 1)
            if not _hashable(new_key):
                label = _summary(key)
                self.record(
                    key_chain,
                    _summary(key),
                    "key",
                    "str",
                    note="a dict key that is "
                    "not hashable once converted is stored as its description",
                )
                new_key = label
            try:
                marker = ("k", new_key) if _hashable_literal(new_key) else ("id", id(new_key))
                if marker in seen:
                    self.record(
                        key_chain,
                        _summary(key),
                        "key",
                        "duplicate key",
                        note="two keys convert to the same value: the last one wins",
                    )
                seen.add(marker)
            except TypeError:  # pragma: no cover - guarded by _hashable
                pass
            segment = render_key(key) if _is_literal(key) else f"[{_summary(key)}]"
            out.flat.append(new_key)
            out.flat.append(self.convert(value, (chain, segment), depth + 1))

    def convert_set(self, node: Any, items: list[Any], name: str, chain: _Chain, depth: int) -> Any:
        """A set stays a set (torch allows ``builtins.set``); a frozenset, or a set whose items
        stop being hashable, becomes a sorted list."""
        converted = [self.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(items)]
        if self.policy.is_allowed(name) and all(_hashable(v) for v in converted):
            out: Any = _call(_g(*name.rsplit(".", 1)), (converted,))
            self.memo[id(node)] = out
            return out
        note = None
        try:
            converted = sorted(converted)
            became = "sorted list"
        except TypeError:
            became = "list"
            note = "items of mixed types: kept in the pickle's order"
        self.record(chain, name, "container", became, note=note)
        self.memo[id(node)] = converted
        return converted

    def convert_global(self, node: Global, chain: _Chain) -> Any:
        """A class or function held as a value: kept if torch allows it, else its name."""
        if node.dynamic:
            return self.remove(node.qualified, chain)
        module, name = (node.module, node.name)
        qualified = f"{module}.{name}"
        if id(node) in self.dangerous:
            return self.remove(qualified, chain)
        if self.policy.is_allowed(qualified):
            return _g(module, name)
        self.record(chain, qualified, "reference", "str (qualified name)")
        return qualified

    def remove(self, name: str, chain: _Chain) -> str:
        """Stand-in for a dangerous construct (--sanitize), or refuse."""
        label = removed_label(name)
        if not self.options.sanitize:
            raise MigrationRefused(f"{_render(chain)}: dangerous construct {name}")
        self.plan.removed.append(f"{_render(chain)}: {name}")
        self.record(chain, name, "dangerous", repr(label))
        return label

    # -- storages and tensors --------------------------------------------------------------

    def new_storage(self, identity: Any, make: Callable[[str], OutStorage]) -> OutStorage:
        """The output storage for a source storage (keys numbered in order of first use)."""
        found = self.out_storages.get(identity)
        if found is None:
            found = self.out_storages[identity] = make(str(len(self.out_storages)))
        return found

    def storage_pid(self, out: OutStorage) -> PersId:
        """The persistent id torch.save writes for a storage."""
        pid = ("storage", out.type_global, out.key, out.location, out.numel)
        return PersId(pid, -1, "BINPERSID")

    def convert_persid(self, node: PersId, chain: _Chain, offset: int) -> tuple[PersId, int]:
        """A storage reference, re-keyed; returns it and the element offset of a legacy view
        (a view becomes its root storage plus an offset, which keeps the sharing)."""
        ref = storage_ref(node)
        pid = node.pid
        if ref is None:
            raise MigrationRefused(f"{_render(chain)}: persistent id {pid!r} is not a storage")
        source = self.source_storages.get(ref.key)
        if source is None:
            raise MigrationRefused(f"{_render(chain)}: storage {ref.key} is not in the file")
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            if not (type(view) is tuple and len(view) == 3 and type(view[1]) is int):
                raise MigrationRefused(f"{_render(chain)}: unreadable storage view {view!r}")
            offset += view[1]
        module, name = pid[1].module, pid[1].name

        def make(key: str) -> OutStorage:
            return OutStorage(
                key=key,
                type_global=_g(module, name),
                numel=source.ref.numel,
                nbytes=source.ref.nbytes,
                location=source.ref.location,
                data=source.data,
                dtype=source.ref.dtype,
            )

        out = self.new_storage(("source", ref.key), make)
        return self.storage_pid(out), offset

    def convert_tensor(
        self, node: Call, chain: _Chain, depth: int, parameter: tuple[bool, bool] | None = None
    ) -> Call:
        """``_rebuild_tensor_v2/v3``: the storage re-keyed, backward hooks left empty (torch.save
        never writes any), everything else as it was."""
        name = callee(node)
        args = node.args if type(node.args) is tuple else ()
        if len(args) < 6:
            return self.passthrough(node, chain, depth)
        if isinstance(args[0], PersId):
            pid, extra = self.convert_persid(args[0], (chain, "(storage)"), 0)
        elif id(args[0]) in self.explained:
            pid, extra = self.bytes_storage(args[0], (chain, "(storage)")), 0
        else:
            return self.passthrough(node, chain, depth)
        offset, size, stride, requires_grad, hooks = args[1:6]
        if type(offset) is not int or type(size) is not tuple or type(stride) is not tuple:
            raise MigrationRefused(f"{_render(chain)}: tensor with unreadable size or stride")
        if extra:
            offset += extra
        if _non_empty_hooks(hooks):
            if id(node) not in self.dangerous and not self.options.sanitize:
                raise MigrationRefused(f"{_render(chain)}: tensor with backward hooks")
            self.plan.removed.append(f"{_render(chain)}: backward hooks")
            self.record(chain, "backward hooks", "dangerous", "empty OrderedDict")
        rest = tuple(
            self.convert(a, (chain, f"(arg {i})"), depth + 1) for i, a in enumerate(args[6:], 6)
        )
        new_args = (pid, offset, size, stride, requires_grad, _ordered_dict(), *rest)
        out = _call(
            _g("torch._utils", name.rsplit(".", 1)[1] if name else "_rebuild_tensor_v2"), new_args
        )
        ref = storage_ref(pid)
        dtype = ref.dtype if ref is not None else "unknown"
        if name == _TENSOR_V3 and len(args) > 6 and isinstance(args[6], Global):
            dtype = args[6].name
        is_param, param_grad = parameter or (False, bool(requires_grad))
        self.plan.tensors.append(
            TensorEntry(
                path=_render(chain),
                storage=pid.pid[2],
                dtype=dtype,
                shape=tuple(size),
                stride=tuple(stride),
                offset=offset,
                requires_grad=param_grad if is_param else bool(requires_grad),
                parameter=is_param,
            )
        )
        return out

    def convert_parameter(self, node: Call, chain: _Chain, depth: int) -> Call:
        """``_rebuild_parameter(tensor, requires_grad, hooks[, state])``."""
        args = node.args if type(node.args) is tuple else ()
        if len(args) < 3 or callee(args[0]) not in (_TENSOR_V2, _TENSOR_V3):
            return self.passthrough(node, chain, depth)
        inner = self.convert_tensor(args[0], chain, depth + 1, parameter=(True, bool(args[1])))
        if _non_empty_hooks(args[2]):
            self.plan.removed.append(f"{_render(chain)}: backward hooks")
        rest = tuple(
            self.convert(a, (chain, f"(arg {i})"), depth + 1) for i, a in enumerate(args[3:], 3)
        )
        out = _call(node.func, (inner, args[1], _ordered_dict(), *rest))
        self.memo[id(node)] = out
        return out

    def numpy_tensor(self, node: Call, chain: _Chain, depth: int) -> Any:
        """A numpy array: a tensor of the same bytes, shape and dtype (strings and objects
        become nested lists)."""
        try:
            array = decode_numpy_array(node)
        except NotConvertible as exc:
            raise MigrationRefused(f"{_render(chain)}: numpy array: {exc}") from None
        found = NUMPY_DTYPES.get(array.dtype.code)
        if found is None or array.data is None:
            try:
                elements = numpy_elements(array)
            except NotConvertible as exc:
                raise MigrationRefused(f"{_render(chain)}: numpy array: {exc}") from None
            converted = [
                self.convert(e, (chain, f"[{i}]"), depth + 1) for i, e in enumerate(elements)
            ]
            out = nest(converted, array.shape, array.fortran)
            self.record(
                chain,
                array.cls,
                "numpy",
                "nested list",
                note=f"numpy {array.dtype.name} array of shape {list(array.shape)}",
            )
            self.memo[id(node)] = out
            return out
        dtype, size = found[2], found[3]
        data = ByteRange.of_bytes(array.data, f"numpy array at {_render(chain)}")
        storage_class = _STORAGE_CLASS[dtype]

        def make(key: str) -> OutStorage:
            if storage_class is None:
                return OutStorage(
                    key=key,
                    type_global=_g("torch.storage", "UntypedStorage"),
                    numel=len(array.data or b""),
                    nbytes=len(array.data or b""),
                    location="cpu",
                    data=data,
                    dtype="uint8",
                )
            return OutStorage(
                key=key,
                type_global=_g("torch", storage_class),
                numel=len(array.data or b"") // size,
                nbytes=len(array.data or b""),
                location="cpu",
                data=data,
                dtype=dtype,
            )

        out_storage = self.new_storage(("numpy", id(node)), make)
        shape = array.shape
        stride = _strides(shape, array.fortran)
        pid = self.storage_pid(out_storage)
        if storage_class is None:
            args: tuple[Any, ...] = (
                pid,
                0,
                shape,
                stride,
                False,
                _ordered_dict(),
                _g("torch", dtype),
            )
            out = _call(_g("torch._utils", "_rebuild_tensor_v3"), args)
        else:
            out = _call(
                _g("torch._utils", "_rebuild_tensor_v2"),
                (pid, 0, shape, stride, False, _ordered_dict()),
            )
        self.plan.tensors.append(
            TensorEntry(
                path=_render(chain),
                storage=out_storage.key,
                dtype=dtype,
                shape=shape,
                stride=stride,
                offset=0,
                requires_grad=False,
                parameter=False,
            )
        )
        note = "Fortran order kept as strides" if array.fortran and len(shape) > 1 else None
        if array.cls != "numpy.ndarray":
            note = f"array subclass {array.cls}: its extra attributes are not kept"
        self.record(
            chain, array.cls, "numpy", f"Tensor[{', '.join(map(str, shape))}] {dtype}", note=note
        )
        self.memo[id(node)] = out
        return out

    def bytes_storage(self, node: Call, chain: _Chain) -> PersId:
        """``torch.storage._load_from_bytes(b'...')``: a storage pickled whole (a plain pickle of
        a tensor); its bytes are read out of the nested file, which is never run."""
        source = self.explained[id(node)]

        def make(key: str) -> OutStorage:
            module, name = source.type_name
            return OutStorage(
                key=key,
                type_global=_g(module, name),
                numel=source.storage.ref.numel,
                nbytes=source.storage.ref.nbytes,
                location=source.storage.ref.location,
                data=source.storage.data,
                dtype=source.storage.ref.dtype,
            )

        out = self.new_storage(("bytes", id(node)), make)
        self.record(
            chain,
            "torch.storage._load_from_bytes",
            "storage",
            f"storage data/{out.key}",
            note="a storage pickled as a nested torch file, read without running it",
        )
        return self.storage_pid(out)

    # -- calls -------------------------------------------------------------------------------

    def convert_call(self, node: Call, chain: _Chain, depth: int) -> Any:
        """Dispatch on what the call builds."""
        cls = legacy_module_class(node.func)
        if cls is not None and id(node) in self.explained_modules:
            # A legacy whole-module save names the class through a persistent id
            # ('module', cls, source file, source): torch's legacy loader returns cls.
            twin = Call(cls, node.args, node.kwargs, node.opcode, node.offset)
            twin.state, twin.builds = node.state, node.builds
            twin.items, twin.setitems = node.items, node.setitems
            self.alive.append(twin)  # the memo is keyed by id: the twin must outlive the plan
            converted = self.convert_call(twin, chain, depth)
            self.memo[id(node)] = converted
            return converted
        name = callee(node)
        func = node.func
        if isinstance(func, Global) and not func.dynamic:
            module, short = (func.module, func.name)
            name = f"{module}.{short}"
        if (
            id(node) in self.dangerous
            and name not in (_TENSOR_V2, _TENSOR_V3, _PARAMETER)
            and id(node) not in self.explained
        ):
            out: Any = self.remove(name or _summary(node), chain)
            self.memo[id(node)] = out
            return out
        if name in (_TENSOR_V2, _TENSOR_V3):
            out = self.convert_tensor(node, chain, depth)
            self.memo[id(node)] = out
            return out
        if name == _PARAMETER:
            return self.convert_parameter(node, chain, depth)
        if name == "torch.storage._load_from_bytes" and id(node) in self.explained:
            out = self.bytes_storage(node, chain)
            self.memo[id(node)] = out
            return out
        handler = _BY_NAME.get(name or "")
        if handler is not None:
            try:
                return handler(self, node, chain, depth)
            except NotConvertible as exc:
                raise MigrationRefused(f"{_render(chain)}: {name}: {exc}") from None
        if name is not None and (name.startswith(("pathlib.", "pathlib._local."))):
            return self.value(node, chain, name, "path", lambda: decode_path(node), "str")
        if name is not None and name in _RECONSTRUCT:
            return self.numpy_tensor(node, chain, depth)
        if name is not None and name in _SCALAR:
            return self.numpy_scalar(node, chain, depth)
        if name is not None and name.startswith("numpy") and name.endswith(".dtype"):
            return self.value(
                node,
                chain,
                name,
                "numpy",
                lambda: decode_numpy_dtype(node).name,
                "str (dtype name)",
            )
        if name is not None and self.policy.is_allowed(name):
            return self.passthrough(node, chain, depth)
        attr = getattr_name(node)
        if attr is not None:
            return self.value(
                node, chain, "builtins.getattr", "reference", lambda: attr, "str (qualified name)"
            )
        if name is not None and shape_kind(node) is Kind.MODULE:
            return self.module(node, name, chain, depth)
        if name is not None and _enum_like(node):
            value = self.convert(node.args[0], (chain, ".value"), depth + 1)
            self.record(
                chain,
                name,
                "enum",
                f"value {value!r}"[:80],
                note="the pickle holds the member's value, not its name",
            )
            self.note_class(name, "enum", (), chain)
            self.memo[id(node)] = value
            return value
        return self.generic(node, name, chain, depth)

    def passthrough(self, node: Call, chain: _Chain, depth: int) -> Call:
        """A call torch allows: the same call, its arguments and contents converted."""
        func = node.func
        if isinstance(func, Global):
            func = _g(*(func.module, func.name))
        else:
            func = self.convert(func, (chain, ".__func__"), depth + 1)
        if node.kwargs is not None:
            raise MigrationRefused(
                f"{_render(chain)}: keyword arguments (NEWOBJ_EX) of {_summary(node)}"
            )
        args = node.args if type(node.args) is tuple else ()
        new_args = tuple(
            self.convert(a, (chain, f"(arg {i})"), depth + 1) for i, a in enumerate(args)
        )
        out = Call(func, new_args, None, "NEWOBJ" if node.opcode == "NEWOBJ" else "REDUCE", -1)
        self.memo[id(node)] = out
        if node.items is not None:
            out.items = [
                self.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(node.items)
            ]
        if node.setitems is not None:
            flat = PDict()
            self.fill_dict(flat, node.setitems, chain, depth)
            out.setitems = flat.pairs
        if node.builds:
            out.state = self.convert(node.state, chain, depth + 1)
            out.builds = 1
        return out

    def value(
        self,
        node: Call,
        chain: _Chain,
        name: str,
        kind: str,
        decode: Callable[[], Any],
        became: str,
        note: str | None = None,
    ) -> Any:
        """A leaf conversion: decode, record, memoize."""
        try:
            out = decode()
        except NotConvertible as exc:
            raise MigrationRefused(f"{_render(chain)}: {name}: {exc}") from None
        self.record(chain, name, kind, became, note=note)
        self.memo[id(node)] = out
        return out

    def numpy_scalar(self, node: Call, chain: _Chain, depth: int) -> Any:
        """A numpy scalar: the Python scalar of the same value."""
        try:
            value = decode_numpy_scalar(node)
        except NotConvertible as exc:
            raise MigrationRefused(f"{_render(chain)}: numpy scalar: {exc}") from None
        value = self.convert(value, chain, depth + 1)
        self.record(chain, "numpy.core.multiarray.scalar", "numpy", type(value).__name__)
        self.memo[id(node)] = value
        return value

    def datetime_value(self, value: dt.datetime | dt.time, chain: _Chain, name: str) -> Any:
        """ISO 8601 by default; a float timestamp only where a timezone is known."""
        if isinstance(value, dt.time):
            self.record(chain, name, "datetime", "str (ISO 8601)")
            return value.isoformat()
        tz_note = None
        if value.tzinfo is not None and not isinstance(value.tzinfo, dt.timezone):
            tz_note = f"zone {value.tzinfo}"
        if self.options.datetime == "timestamp":
            if value.tzinfo is not None:
                self.record(chain, name, "datetime", "float (POSIX timestamp)", note=tz_note)
                return value.timestamp()
            if self.options.assume_timezone:
                try:
                    assumed = value.replace(tzinfo=zone(self.options.assume_timezone))
                except NotConvertible as exc:
                    raise MigrationRefused(f"--assume-timezone: {exc}") from None
                self.record(
                    chain,
                    name,
                    "datetime",
                    "float (POSIX timestamp)",
                    note=f"naive: read as {self.options.assume_timezone}",
                )
                return assumed.timestamp()
            self.record(
                chain,
                name,
                "datetime",
                "str (ISO 8601)",
                note="naive: kept as ISO text (name its zone with --assume-timezone "
                "to get a timestamp)",
            )
            return value.isoformat()
        self.record(chain, name, "datetime", "str (ISO 8601)", note=tz_note)
        return value.isoformat()

    def module(self, node: Call, name: str, chain: _Chain, depth: int) -> Any:
        """A whole nn.Module: its state_dict (parameters and persistent buffers, keys as
        ``state_dict()`` names them); everything else it held is listed as dropped."""
        out = _ordered_dict([])
        self.memo[id(node)] = out
        dropped: list[str] = []
        count = self._module_into(node, "", out, chain, depth, dropped, set())
        attrs = tuple(
            (str(k), field_kind(v))
            for k, v in state_fields(node.state) or []
            if isinstance(k, str) and k not in _MODULE_INTERNALS
        )
        self.record(
            chain,
            name,
            "nn.Module",
            f"state_dict ({count} tensors)",
            dropped=tuple(dropped),
            note="rebuild the module in code and load_state_dict() this",
        )
        self.note_class(name, "nn.Module", attrs, chain)
        return out

    def _module_into(
        self,
        node: Call,
        prefix: str,
        out: Call,
        chain: _Chain,
        depth: int,
        dropped: list[str],
        seen: set[int],
    ) -> int:
        if id(node) in seen:
            return 0
        seen.add(id(node))
        fields = state_fields(node.state) or []
        state = {k: v for k, v in fields if isinstance(k, str)}
        assert out.setitems is not None
        count = 0
        non_persistent = {
            v
            for v in (_set_items(state.get("_non_persistent_buffers_set")) or [])
            if isinstance(v, str)
        }
        for group in ("_parameters", "_buffers"):
            for key, value in _pairs(state.get(group)) or []:
                if value is None:
                    continue
                if key in non_persistent:
                    dropped.append(f"non-persistent buffer {prefix}{key}")
                    continue
                full = f"{prefix}{key}"
                out.setitems.append((full, self.convert(value, (chain, f"[{full!r}]"), depth + 1)))
                count += 1
        for key, value in fields:
            if key in _MODULE_INTERNALS:
                if key.endswith("hooks") and _pairs(value):
                    dropped.append(f"{prefix}{key} ({len(_pairs(value) or [])} hooks)")
                continue
            dropped.append(f"attribute {prefix}{key}={_preview(value)}")
        for key, child in _pairs(state.get("_modules")) or []:
            if child is None:
                continue
            if isinstance(child, Call) and shape_kind(child) is Kind.MODULE:
                count += self._module_into(
                    child, f"{prefix}{key}.", out, chain, depth + 1, dropped, seen
                )
            else:
                dropped.append(f"submodule {prefix}{key} ({_summary(child)})")
        return count

    def generic(self, node: Call, name: str | None, chain: _Chain, depth: int) -> Any:
        """Any other object: a dict of its state (dataclass, plain object, namespace), a dict
        or list of its items (dict/list subclasses), or a tuple of its constructor arguments
        (NamedTuple and other tuple subclasses)."""
        label = name or _summary(node)
        args = node.args if type(node.args) is tuple else ()
        if name == "copyreg._reconstructor" and len(args) >= 2 and isinstance(args[0], Global):
            label = args[0].qualified
            args = (args[2],) if len(args) > 2 and args[2] is not None else ()
        fields = state_fields(node.state) if node.builds else None
        kind = "namespace" if label in _NAMESPACES else shape_kind(node).value
        dropped: list[str] = []
        out: Any
        if node.setitems is not None and not node.items:
            out = PDict()
            self.memo[id(node)] = out
            self.fill_dict(out, node.setitems, chain, depth)
            if fields:
                dropped += [f"attribute {k}={_preview(v)}" for k, v in fields]
            self.record(chain, label, "container", "dict", dropped=tuple(dropped))
            return out
        if node.items is not None:
            out = []
            self.memo[id(node)] = out
            out.extend(
                self.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(node.items)
            )
            if fields:
                dropped += [f"attribute {k}={_preview(v)}" for k, v in fields]
            self.record(chain, label, "container", "list", dropped=tuple(dropped))
            return out
        if fields is not None:
            out = PDict()
            self.memo[id(node)] = out
            self.fill_dict(out, fields, chain, depth)
            keep_args = [a for a in args if not (type(a) is tuple and not a)]
            if keep_args and node.opcode in ("REDUCE", "NEWOBJ"):
                dropped.append(f"constructor arguments {_preview(tuple(keep_args))}")
            self.record(chain, label, kind, "dict", dropped=tuple(dropped))
            self.note_class(label, kind, tuple((str(k), field_kind(v)) for k, v in fields), chain)
            return out
        if node.builds:
            out = self.convert(node.state, (chain, ".__setstate__()"), depth + 1)
            self.record(
                chain,
                label,
                "object",
                type(out).__name__ if not isinstance(out, PDict) else "dict",
                note="its __getstate__() value, kept as is",
            )
            self.memo[id(node)] = out
            return out
        if args:
            out = tuple(
                self.convert(a, (chain, f"(arg {i})"), depth + 1) for i, a in enumerate(args)
            )
            self.record(
                chain,
                label,
                "namedtuple" if node.opcode == "NEWOBJ" else "object",
                "tuple",
                note="its constructor arguments; field names are not in the pickle",
            )
            self.note_class(label, "namedtuple", (), chain)
            self.memo[id(node)] = out
            return out
        out = PDict()
        self.record(chain, label, "object", "dict", note="an object without state")
        self.memo[id(node)] = out
        return out

    def note_class(
        self, name: str, kind: str, fields: tuple[tuple[str, str], ...], chain: _Chain
    ) -> None:
        """Remember a converted class and its fields for --emit-code."""
        found = self.classes.get(name)
        if found is None:
            self.classes[name] = ClassInfo(
                name=name, kind=kind, fields=fields, count=1, example_path=_render(chain)
            )
            return
        merged = dict(found.fields)
        for key, how in fields:
            merged.setdefault(key, how)
        self.classes[name] = ClassInfo(
            name=name,
            kind=found.kind,
            fields=tuple(merged.items()),
            count=found.count + 1,
            example_path=found.example_path,
        )


# -- handlers by global name -------------------------------------------------------------------


def _datetime(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    try:
        value = decode_datetime(node)
    except NotConvertible:
        raise
    out = p.datetime_value(value, chain, "datetime.datetime")
    p.memo[id(node)] = out
    return out


def _time(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    out = p.datetime_value(decode_time(node), chain, "datetime.time")
    p.memo[id(node)] = out
    return out


def _date(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    return p.value(
        node,
        chain,
        "datetime.date",
        "datetime",
        lambda: decode_date(node).isoformat(),
        "str (ISO 8601)",
    )


def _timedelta(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    return p.value(
        node,
        chain,
        "datetime.timedelta",
        "datetime",
        lambda: decode_timedelta(node).total_seconds(),
        "float (seconds)",
    )


def _timezone(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    def text() -> str:
        tz = decode_tzinfo(node)
        return str(tz) if tz is not None else "None"

    return p.value(node, chain, "datetime.timezone", "datetime", text, "str")


def _deque(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    args = node.args if type(node.args) is tuple else ()
    items = list(node.items or [])
    if args and type(args[0]) is list:
        items = list(args[0]) + items
    maxlen = args[1] if len(args) > 1 else None
    out: list[Any] = []
    p.memo[id(node)] = out
    out.extend(p.convert(v, (chain, f"[{i}]"), depth + 1) for i, v in enumerate(items))
    dropped = (f"maxlen={maxlen}",) if maxlen is not None else ()
    p.record(chain, "collections.deque", "container", "list", dropped=dropped)
    return out


def _defaultdict(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    args = node.args if type(node.args) is tuple else ()
    factory = args[0] if args else None
    out = PDict()
    p.memo[id(node)] = out
    p.fill_dict(out, _pairs(node) or [], chain, depth)
    label = factory.qualified if isinstance(factory, Global) else _summary(factory)
    p.record(
        chain, "collections.defaultdict", "container", "dict", dropped=(f"default_factory={label}",)
    )
    return out


def _frozenset(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    return p.convert_set(node, _set_items(node) or [], "builtins.frozenset", chain, depth)


def _decimal(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    args = node.args if type(node.args) is tuple else ()

    def text() -> str:
        if len(args) != 1 or type(args[0]) is not str:
            raise NotConvertible("Decimal without its text")
        return str(args[0])

    return p.value(node, chain, "decimal.Decimal", "object", text, "str")


def _fraction(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    args = node.args if type(node.args) is tuple else ()

    def text() -> str:
        if len(args) == 1 and type(args[0]) is str:
            return args[0]
        if len(args) == 2 and all(type(a) is int for a in args):
            return f"{args[0]}/{args[1]}"
        raise NotConvertible("Fraction without numerator and denominator")

    return p.value(node, chain, "fractions.Fraction", "object", text, "str (n/d)")


def _uuid(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    def text() -> str:
        fields = dict(state_fields(node.state) or [])
        value = fields.get("int")
        if type(value) is not int:
            raise NotConvertible("UUID without its integer")
        return str(uuid.UUID(int=value))

    return p.value(node, chain, "uuid.UUID", "object", text, "str")


def _slice(p: Planner, node: Call, chain: _Chain, depth: int) -> Any:
    args = node.args if type(node.args) is tuple else ()
    out = [p.convert(a, (chain, f"(arg {i})"), depth + 1) for i, a in enumerate(args)]
    p.record(chain, callee(node) or "slice", "object", "list [start, stop, step]")
    p.memo[id(node)] = out
    return out


_BY_NAME: dict[str, Callable[[Planner, Call, _Chain, int], Any]] = {
    "datetime.datetime": _datetime,
    "datetime.date": _date,
    "datetime.time": _time,
    "datetime.timedelta": _timedelta,
    "datetime.timezone": _timezone,
    "collections.deque": _deque,
    "collections.defaultdict": _defaultdict,
    "builtins.frozenset": _frozenset,
    "decimal.Decimal": _decimal,
    "fractions.Fraction": _fraction,
    "uuid.UUID": _uuid,
    "builtins.slice": _slice,
    "builtins.range": _slice,
}


# -- small helpers -----------------------------------------------------------------------------


def _non_empty_hooks(hooks: Any) -> bool:
    if hooks is None:
        return False
    if type(hooks) is PDict:
        return bool(hooks.flat)
    if callee(hooks) == "collections.OrderedDict":
        return bool(hooks.setitems or hooks.items or hooks.state is not None or hooks.args)
    return True


def _strides(shape: tuple[int, ...], fortran: bool) -> tuple[int, ...]:
    strides = [1] * len(shape)
    if fortran:
        for i in range(1, len(shape)):
            strides[i] = strides[i - 1] * max(shape[i - 1], 1)
    else:
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * max(shape[i + 1], 1)
    return tuple(strides)


_UNHASHABLE_CALLS = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "builtins.set",
        "builtins.bytearray",
        "builtins.dict",
    }
)


def _hashable(value: Any) -> bool:
    t = type(value)
    if t in (list, PDict, PSet, bytearray):
        return False
    if t is tuple:
        return all(_hashable(v) for v in value)
    if t is float and math.isnan(value):
        return True
    if t is Call:
        return callee(value) not in _UNHASHABLE_CALLS
    return True


def _hashable_literal(value: Any) -> bool:
    return (
        value is None
        or type(value) in (bool, int, float, str, bytes, complex)
        or (type(value) is tuple and all(_hashable_literal(v) for v in value))
    )


def _summary(node: Any) -> str:
    from ckptaudit.structure import summarize

    return summarize(node)


def _preview(value: Any) -> str:
    """A short description of a dropped value (its literal when small)."""
    if _is_literal(value):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return _summary(value)
