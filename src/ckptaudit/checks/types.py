"""Runtime types a real unpickler would give objects, and bounded descriptions of values."""

from __future__ import annotations

from typing import Any

from ckptaudit.pickle.describe import brief
from ckptaudit.pickle.nodes import Call, Global, PDict, PersId, PSet
from ckptaudit.policy.callables import INERT, Site

__all__ = [
    "BUILD_ALWAYS",
    "IMPLICIT_METHODS",
    "SETITEM_TYPES",
    "argument_at",
    "is_callable_value",
    "is_tensor_rebuild",
    "planted_hooks",
    "planted_methods",
    "runtime_type",
    "torch_global_name",
    "type_repr",
]

# Types whose instances torch's BUILD accepts without any allowlist.
BUILD_ALWAYS = frozenset(
    {"torch.Tensor", "torch.nn.parameter.Parameter", "collections.OrderedDict"}
)
SETITEM_TYPES = frozenset({"builtins.dict", "collections.OrderedDict", "collections.Counter"})

_TENSOR = "torch.Tensor"
_PARAMETER = "torch.nn.parameter.Parameter"


def _first_arg_class(call: Call) -> str | None:
    args = call.args
    if type(args) is tuple and args and isinstance(args[0], Global):
        return args[0].qualified
    return None


def _second_arg_class(call: Call) -> str | None:
    args = call.args
    if type(args) is tuple and len(args) > 1 and isinstance(args[1], Global):
        return args[1].qualified
    return None


# numpy >= 1.25: np.dtype(code) is an instance of a per-dtype class that BUILD then touches.
_NUMPY_DTYPE_CLASSES = {
    "b1": "BoolDType",
    "i1": "Int8DType",
    "u1": "UInt8DType",
    "i2": "Int16DType",
    "u2": "UInt16DType",
    "i4": "Int32DType",
    "u4": "UInt32DType",
    "i8": "Int64DType",
    "u8": "UInt64DType",
    "f2": "Float16DType",
    "f4": "Float32DType",
    "f8": "Float64DType",
    "f16": "LongDoubleDType",
    "c8": "Complex64DType",
    "c16": "Complex128DType",
    "c32": "CLongDoubleDType",
    "O8": "ObjectDType",
    "O4": "ObjectDType",
    "M8": "DateTime64DType",
    "m8": "TimeDelta64DType",
    "U": "StrDType",
    "S": "BytesDType",
    "V": "VoidDType",
}


def _numpy_dtype_class(call: Call) -> str | None:
    args = call.args
    if not (type(args) is tuple and args and isinstance(args[0], str)):
        return None
    code = args[0]
    name = _NUMPY_DTYPE_CLASSES.get(code) or _NUMPY_DTYPE_CLASSES.get(code[:1])
    return f"numpy.dtypes.{name}" if name else None


# numpy.random._pickle.BitGenerators: the names its factories accept for a bit generator.
_NUMPY_BIT_GENERATORS = {
    "MT19937": "numpy.random._mt19937.MT19937",
    "PCG64": "numpy.random._pcg64.PCG64",
    "PCG64DXSM": "numpy.random._pcg64.PCG64DXSM",
    "Philox": "numpy.random._philox.Philox",
    "SFC64": "numpy.random._sfc64.SFC64",
}


def _numpy_bit_generator_class(call: Call) -> str | None:
    """``__bit_generator_ctor(cls_or_name='MT19937')`` returns an instance of that class."""
    args = call.args
    if type(args) is tuple and not args:
        return _NUMPY_BIT_GENERATORS["MT19937"]
    if type(args) is tuple and len(args) == 1:
        arg = args[0]
        if isinstance(arg, Global) and not arg.dynamic:
            return arg.qualified
        if isinstance(arg, str) and arg in _NUMPY_BIT_GENERATORS:
            return _NUMPY_BIT_GENERATORS[arg]
    # Not known statically: keep the callee's name, so the object still gets a type whose
    # allowlisting the report can advise (numpy raises on anything else anyway).
    return call.func.qualified if isinstance(call.func, Global) else None


# What calling a known function returns, where that is not an instance of the callee.
_RETURNS: dict[str, Any] = {
    "torch._utils._rebuild_tensor": _TENSOR,
    "torch._utils._rebuild_tensor_v2": _TENSOR,
    "torch._utils._rebuild_tensor_v3": _TENSOR,
    "torch._utils._rebuild_qtensor": _TENSOR,
    "torch._utils._rebuild_sparse_tensor": _TENSOR,
    "torch._utils._rebuild_meta_tensor_no_storage": _TENSOR,
    "torch._utils._rebuild_nested_tensor": _TENSOR,
    "torch._utils._rebuild_device_tensor_from_numpy": _TENSOR,
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": _TENSOR,
    "torch._utils._rebuild_wrapper_subclass": _TENSOR,
    "torch._utils._rebuild_parameter": _PARAMETER,
    "torch._utils._rebuild_parameter_with_state": _PARAMETER,
    "torch._tensor._rebuild_from_type_v2": _second_arg_class,
    "_codecs.encode": "builtins.bytes",
    "codecs.encode": "builtins.bytes",
    "copyreg._reconstructor": _first_arg_class,
    "copyreg.__newobj__": _first_arg_class,
    "numpy.core.multiarray._reconstruct": _first_arg_class,
    "numpy._core.multiarray._reconstruct": _first_arg_class,
    "builtins.getattr": None,
    "numpy.dtype": _numpy_dtype_class,
    # numpy's pickle factories: BUILD then sets the state of the object they return.
    "numpy.random._pickle.__randomstate_ctor": "numpy.random.mtrand.RandomState",
    "numpy.random._pickle.__generator_ctor": "numpy.random._generator.Generator",
    "numpy.random._pickle.__bit_generator_ctor": _numpy_bit_generator_class,
}


def is_tensor_rebuild(func: Global) -> bool:
    """True for torch's own tensor rebuild functions (``torch._utils._rebuild_*``)."""
    return func.module == "torch._utils" and func.name.startswith("_rebuild_")


def runtime_type(node: Any) -> str | None:
    """The ``module.qualname`` of the type a real unpickler would give ``node``; None if unknown."""
    t = type(node)
    if t is Call:
        func = node.func
        if not isinstance(func, Global) or func.dynamic:
            return None
        name = func.qualified
        if node.opcode in ("NEWOBJ", "NEWOBJ_EX"):
            return name
        if name in _RETURNS:
            found = _RETURNS[name]
            result = found(node) if callable(found) else found
            return str(result) if result is not None else None
        if func.name.startswith("__pyx_unpickle_"):
            return _first_arg_class(node)  # Cython's unpickler returns an instance of cls
        return name  # most reducers are classes: the object is an instance of the callee
    if t is PDict:
        return "builtins.dict"
    if t is PSet:
        return "builtins.frozenset" if node.frozen else "builtins.set"
    if t is Global:
        return "builtins.type"
    if t is PersId:
        return "torch.storage.TypedStorage"
    if node is None:
        return "builtins.NoneType"
    return f"builtins.{t.__name__}"


def type_repr(name: str | None) -> str:
    """Render a type as torch's messages do: ``<class 'collections.deque'>``."""
    if name is None:
        return "<unknown type>"
    if name.startswith("builtins."):
        name = name[len("builtins.") :]
    return f"<class '{name}'>"


def torch_global_name(qualified: str) -> str:
    """torch's messages write builtins without their module."""
    return qualified[len("builtins.") :] if qualified.startswith("builtins.") else qualified


IMPLICIT_METHODS = frozenset(
    {
        "append",  # APPEND on anything but a list
        "extend",  # APPENDS
        "add",  # ADDITEMS on anything but a set
        "__setstate__",  # BUILD looks it up on the instance
        "keys",  # dict(x), OrderedDict(x), copyreg._reconstructor(cls, dict, x)
        "items",  # OrderedDict(x) without keys()
        "update",
        "replace",  # uuid.UUID(x)
        "read",  # constructors that take a file-like object
        "readline",
        "detach",  # nn.Parameter(x), torch's _rebuild_parameter
        "requires_grad_",
        "__reduce__",  # looked up on the instance when the object is saved again
        "__reduce_ex__",
        "__getstate__",
        "__deepcopy__",  # copy.deepcopy looks these up on the instance
        "__copy__",
        "__call__",
        "__iter__",
        "__getitem__",
        "__getattr__",
        "close",  # many classes' __del__ calls self.close() when the object dies
        "flush",
    }
)
"""Methods that unpickling, the data constructors it calls, or saving the object again call
on an object without a REDUCE, looked up on the instance: state that sets one of them
to a callable makes the file call it."""

_CALLABLE_MAKERS = frozenset(
    {"builtins.getattr", "functools.partial", "_functools.partial", "functools.partialmethod"}
)
_STR_ONLY = {str}


def is_callable_value(value: Any) -> bool:
    """True for what may be callable: a global reference, or any object made by a call
    other than an inert data constructor (an instance may define ``__call__``)."""
    if isinstance(value, Global):
        return True
    if isinstance(value, Call):
        func = value.func
        if not isinstance(func, Global) or func.qualified in _CALLABLE_MAKERS:
            return True
        entry = INERT.get(func.qualified)
        return not ((entry is not None and Site.CALL in entry.sites) or is_tensor_rebuild(func))
    return False


def planted_methods(call: Call) -> list[tuple[str, Any]]:
    """(name, value) pairs where the file sets one of the :data:`IMPLICIT_METHODS` of an
    object, or an attribute whose name is computed at load time, to something that may be
    callable.

    Attributes are set by a BUILD state (a dict, a (dict, slot dict) pair, the dict of a
    partial's 4-tuple), NEWOBJ_EX keyword arguments, and the state argument of the torch
    rebuild functions (the callables table's ``state`` index).
    """
    state = call.state
    rebuild_state = argument_at(call, "state")
    if call.kwargs is None and rebuild_state is None:
        # The common cases, on the path of every object: keep them cheap (C-level passes).
        if state is None:
            return []
        if type(state) is PDict:
            keys = state.flat[::2]
            # Types first: hashing a key the file built (a 400,000-deep tuple) recurses on the
            # C stack; only strings are hashed here.
            if set(map(type, keys)) <= _STR_ONLY and IMPLICIT_METHODS.isdisjoint(keys):
                return []
    parts = list(state) if type(state) is tuple else [state]
    parts.append(call.kwargs)
    if rebuild_state is not None:
        parts.append(rebuild_state)
    found: list[tuple[str, Any]] = []
    for part in parts:
        if type(part) is not PDict:
            continue
        flat = part.flat
        for i in range(0, len(flat) - 1, 2):
            name, value = flat[i], flat[i + 1]
            if type(name) is str:
                if name in IMPLICIT_METHODS and is_callable_value(value):
                    found.append((name, value))
            elif is_callable_value(value):
                # pickle writes attribute names as strings; a name computed by a call
                # (str('keys')) hides which method it sets.
                found.append((f"<computed name {brief(name)}>", value))
    return found


def argument_at(call: Call, field: str) -> Any:
    """The argument at the index the callee's table entry gives for ``field`` (``hooks``,
    ``state``, ``mapping``...); None when the entry names none or the call has fewer."""
    func = call.func
    entry = INERT.get(func.qualified) if isinstance(func, Global) else None
    index = getattr(entry, field) if entry is not None else None
    args = call.args
    if index is None or type(args) is not tuple or len(args) <= index:
        return None
    return args[index]


def planted_hooks(call: Call) -> Any:
    """The backward hooks a tensor rebuild installs, when it installs any; else None."""
    hooks = argument_at(call, "hooks")
    if type(hooks) is PDict:
        return hooks if hooks.flat else None
    if isinstance(hooks, Call):
        # OrderedDict() with items set on it, or anything else built to stand there.
        empty = (
            isinstance(hooks.func, Global)
            and hooks.func.qualified == "collections.OrderedDict"
            and hooks.args in ((), None)
            and not hooks.setitems
            and not hooks.items
            and hooks.state is None
        )
        return None if empty else hooks
    return None if hooks is None else hooks
