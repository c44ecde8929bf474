"""Callables that a pickle may invoke and that are shown to be inert data constructors.

A call in a pickle (REDUCE, INST/OBJ with arguments, NEWOBJ_EX) of anything not listed here,
not allowed by torch by default, and not recognised by shape (an Enum member lookup) is
reported as an unsafe call. Some callables are inert only with certain arguments; those are
judged by :func:`benign_pattern`, which reads the call's arguments and never evaluates them.
"""

from __future__ import annotations

import re
from typing import Any

from ckptaudit.pickle.nodes import Call, Global
from ckptaudit.policy.dangerous import danger_reason

__all__ = [
    "ABSORBING_CALLEES",
    "INERT_CLASSMETHODS",
    "INERT_CONSTRUCTORS",
    "INERT_MODULES",
    "STDLIB_ENUMS",
    "absorbed_references",
    "benign_pattern",
    "is_inert_constructor",
]

INERT_CONSTRUCTORS: dict[str, str] = {
    "builtins.set": "builds a set",
    "builtins.frozenset": "builds a frozenset",
    "builtins.bytearray": "builds a bytearray",
    "builtins.bytes": "builds bytes",
    "builtins.complex": "builds a complex number",
    "builtins.int": "builds an int",
    "builtins.float": "builds a float",
    "builtins.str": "builds a str",
    "builtins.bool": "builds a bool",
    "builtins.tuple": "builds a tuple",
    "builtins.list": "builds a list",
    "builtins.dict": "builds a dict",
    "builtins.slice": "builds a slice",
    "builtins.range": "builds a range",
    "builtins.object": "builds a bare object",
    "_codecs.encode": "encodes a str to bytes (how protocol 2 stores bytes)",
    "codecs.encode": "encodes a str to bytes",
    "collections.OrderedDict": "builds an OrderedDict",
    "collections.Counter": "builds a Counter",
    "collections.deque": "builds a deque",
    "collections.defaultdict": "builds a defaultdict (its factory is checked separately)",
    "datetime.datetime": "builds a datetime from packed bytes",
    "datetime.date": "builds a date from packed bytes",
    "datetime.time": "builds a time from packed bytes",
    "datetime.timedelta": "builds a timedelta",
    "datetime.timezone": "builds a fixed-offset timezone",
    "zoneinfo.ZoneInfo": "looks up a time zone by key",
    "decimal.Decimal": "builds a Decimal",
    "fractions.Fraction": "builds a Fraction",
    "uuid.UUID": "builds a UUID",
    "ipaddress.IPv4Address": "builds an address value",
    "ipaddress.IPv6Address": "builds an address value",
    "pathlib.Path": "builds a path value (touches no file)",
    "pathlib.PosixPath": "builds a path value (touches no file)",
    "pathlib.WindowsPath": "builds a path value (touches no file)",
    "pathlib.PurePath": "builds a path value",
    "pathlib.PurePosixPath": "builds a path value",
    "pathlib.PureWindowsPath": "builds a path value",
    # Python 3.13 moved the classes into pathlib._local, and pickles name them there.
    "pathlib._local.Path": "builds a path value (touches no file)",
    "pathlib._local.PosixPath": "builds a path value (touches no file)",
    "pathlib._local.WindowsPath": "builds a path value (touches no file)",
    "pathlib._local.PurePath": "builds a path value",
    "pathlib._local.PurePosixPath": "builds a path value",
    "pathlib._local.PureWindowsPath": "builds a path value",
    "argparse.Namespace": "builds an attribute container",
    "functools.partial": "binds arguments without calling (the bound callable is judged "
    "as a reference)",
    "types.SimpleNamespace": "builds an attribute container",
    "re._compile": "compiles a regular expression",
    "random.Random": "builds a random generator",
    "time.struct_time": "builds a time tuple (time.localtime())",
    "sklearn.tree._tree.Tree": "allocates an empty decision tree from its shape; BUILD fills "
    "its arrays",
    "pandas.core.internals.managers.BlockManager": "rebuilds a DataFrame's blocks",
    "pandas.core.internals.managers.SingleBlockManager": "rebuilds a Series' block",
    "pandas.StringDtype": "builds a string dtype",
    "pandas.CategoricalDtype": "builds a categorical dtype",
    "pandas.Period": "builds a period value",
    "pandas.Timestamp": "builds a timestamp value",
    "pandas.Timedelta": "builds a timedelta value",
    "pandas.Interval": "builds an interval value",
    "pandas._libs.sparse.IntIndex": "builds a sparse index from a length and an array",
    "pandas._libs.sparse.BlockIndex": "builds a sparse index from a length and arrays",
    "pyarrow.lib.type_for_alias": "looks up an Arrow type by name (pandas string columns)",
    "pyarrow.lib.py_buffer": "wraps bytes in an Arrow buffer",
    "pyarrow.lib._restore_array": "rebuilds an Arrow array from a type and buffers",
    "mmengine.config.config.ConfigDict": "an addict dict subclass called with a plain dict",
    "addict.addict.Dict": "a dict subclass called with a plain dict",
    "logging.getLogger": "returns the logger of that name (how a Logger pickles)",
    "array.array": "builds an array from a typecode and its items (how protocol 0-2 pickle "
    "array.array)",
    "array._array_reconstructor": "builds an array from a typecode and machine bytes (how "
    "protocol 3+ pickle array.array)",
    "numpy.core.multiarray._reconstruct": "builds an empty ndarray",
    "numpy._core.multiarray._reconstruct": "builds an empty ndarray",
    "numpy.core.multiarray.scalar": "builds a numpy scalar from bytes",
    "numpy._core.multiarray.scalar": "builds a numpy scalar from bytes",
    "numpy.core.numeric._frombuffer": "builds an ndarray from bytes",
    "numpy._core.numeric._frombuffer": "builds an ndarray from bytes",
    "numpy.dtype": "builds a dtype",
    "numpy.ndarray": "builds an ndarray",
    "numpy.ma.core._mareconstruct": "builds a masked array",
    "numpy.random._pickle.__randomstate_ctor": "builds a RandomState",
    "numpy.random._pickle.__bit_generator_ctor": "builds a bit generator",
    "numpy.random._pickle.__generator_ctor": "builds a Generator",
    "torch.Generator": "builds a random generator",
    "torch._C.Generator": "builds a random generator",
    "torch._utils._rebuild_parameter": "rebuilds a Parameter",
    "torch._utils._rebuild_parameter_with_state": "rebuilds a Parameter",
    "torch._utils._rebuild_tensor": "rebuilds a tensor",
    "torch._utils._rebuild_tensor_v2": "rebuilds a tensor",
    "torch._utils._rebuild_tensor_v3": "rebuilds a tensor",
    "torch._utils._rebuild_qtensor": "rebuilds a quantized tensor",
    "torch._utils._rebuild_sparse_tensor": "rebuilds a sparse tensor",
    "torch._utils._rebuild_meta_tensor_no_storage": "rebuilds a meta tensor",
    "torch._utils._rebuild_nested_tensor": "rebuilds a nested tensor",
    "torch._utils._rebuild_wrapper_subclass": "rebuilds a tensor subclass",
    "torch._utils._rebuild_device_tensor_from_numpy": "rebuilds a tensor from an array",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": "rebuilds a tensor",
    "torch._tensor._rebuild_from_type": "rebuilds a tensor subclass",
    "torch.nn.parameter.Parameter": "builds a Parameter",
    "torch.nn.parameter.UninitializedParameter": "builds a lazy Parameter",
    "torch.nn.parameter.Buffer": "builds a Buffer",
    "torch.nn.backends.thnn._get_thnn_function_backend": "returns the THNN backend object "
    "(whole modules pickled by PyTorch 0.x)",
}
"""``module.name`` -> why calling it only builds data."""

_PANDAS_RECONSTRUCTOR = re.compile(r"_(new_\w*Index|unpickle\w*|\w+_unpickle)\Z")
# transformers' ModelOutput dataclasses (an OrderedDict subclass called with its field
# values); the module also imports names such as `dataclass`, which these do not match.
_TRANSFORMERS_OUTPUT = re.compile(r"[A-Z]\w*Output\w*\Z")

STDLIB_ENUMS = frozenset(
    {
        "ast._Precedence",
        "enum.EnumCheck",
        "enum.FlagBoundary",
        "http.HTTPMethod",
        "http.HTTPStatus",
        "inspect._ParameterKind",
        "plistlib.PlistFormat",
        "pstats.SortKey",
        "py_compile.PycInvalidationMode",
        "re.RegexFlag",
        "signal.Handlers",
        "signal.Sigmasks",
        "signal.Signals",
        "socket.AddressFamily",
        "socket.AddressInfo",
        "socket.MsgFlag",
        "socket.SocketKind",
        "ssl.AlertDescription",
        "ssl.Options",
        "ssl.Purpose",
        "ssl.SSLErrorNumber",
        "ssl.TLSVersion",
        "ssl.VerifyFlags",
        "ssl.VerifyMode",
        "tkinter.EventType",
        "uuid.SafeUUID",
    }
)
"""The standard library's Enums (Python 3.11): calling one looks a member up. The Enum
shape (a CamelCase class called with one literal) is not trusted in the standard library,
where classes with I/O in their constructor live; these are listed instead."""

INERT_MODULES: dict[str, str] = {
    "pandas._libs.tslibs.offsets": "date offsets (Day, MonthEnd, ...) built from (n, normalize)",
    "torch.jit._pickle": "TorchScript's pickle helpers build lists, tensors and type tags",
    "torch.return_types": "named-tuple results of torch functions (torch.max(t, 0))",
}
"""Modules whose every function only builds data."""


def is_inert_constructor(qualified: str, module: str) -> bool:
    """True when calling ``qualified`` is known to only build data.

    Cython generates ``__pyx_unpickle_<Class>(type, checksum, state)`` for its classes: it
    makes an instance without calling ``__init__`` and sets fields, like NEWOBJ + BUILD.
    """
    name = qualified[len(module) + 1 :]
    if qualified in INERT_CONSTRUCTORS or qualified in STDLIB_ENUMS:
        return True
    if module in INERT_MODULES and "." not in name:
        return True
    # pandas pickles its values through private reconstructors named like these
    # (_new_Index, _new_DatetimeIndex, _unpickle_block, _timedelta_unpickle, _nat_unpickle).
    if module.startswith("pandas.") and _PANDAS_RECONSTRUCTOR.match(name):
        return True
    if module == "transformers.modeling_outputs" and _TRANSFORMERS_OUTPUT.match(name):
        return True
    return name.startswith("__pyx_unpickle_") and "." not in name


INERT_CLASSMETHODS: dict[tuple[str, str], str] = {
    ("zoneinfo.ZoneInfo", "_unpickle"): "how a ZoneInfo pickles (timezone-aware datetimes)",
    ("zoneinfo._zoneinfo.ZoneInfo", "_unpickle"): "how a ZoneInfo pickles",
    ("datetime.datetime", "fromtimestamp"): "builds a datetime",
    ("datetime.datetime", "fromisoformat"): "builds a datetime",
    ("datetime.date", "fromisoformat"): "builds a date",
    ("collections.OrderedDict", "fromkeys"): "builds an OrderedDict",
    ("builtins.dict", "fromkeys"): "builds a dict",
}
"""(class, attribute) pairs reached by ``getattr`` whose call only builds data."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_BASES = frozenset(
    {
        "builtins.object",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "builtins.set",
        "builtins.frozenset",
    }
)


def _is_literal(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, bytes))


def getattr_target(call: Call) -> tuple[str, str] | None:
    """For ``getattr(<global class>, '<identifier>')``, return (class, attribute)."""
    args = call.args
    if not (isinstance(args, tuple) and len(args) == 2):
        return None
    owner, attr = args
    if not isinstance(owner, Global) or owner.dynamic or not isinstance(attr, str):
        return None
    if not _IDENTIFIER.match(attr) or attr.startswith("__"):
        return None
    return owner.qualified, attr


def _bound_method(call: Call) -> bool:
    """``getattr(<object made by a call>, '<identifier>')``: how Python pickles
    ``obj.method``. Fetching it runs nothing the file chose; calling the result, or planting
    it as a method of something else, is judged where that happens."""
    args = call.args
    if not (isinstance(args, tuple) and len(args) == 2):
        return False
    owner, attr = args
    return (
        isinstance(owner, Call)
        and isinstance(attr, str)
        and _IDENTIFIER.match(attr) is not None
        and not attr.startswith("__")
    )


_TYPING_OWNERS = frozenset({"typing", "typing_extensions", "collections.abc", "collections"})
_GETITEM = frozenset({"operator.getitem", "_operator.getitem"})
_OR = frozenset({"operator.or_", "_operator.or_"})
_REDUCE = frozenset({"functools.reduce", "_functools.reduce"})


def _type_like(value: Any, depth: int = 0) -> bool:
    """A type, a typing construct, or a literal, as typing subscriptions hold them."""
    if depth > 16:
        return False
    if _is_literal(value):
        return True
    if isinstance(value, Global):
        if value.dynamic:
            return False
        return value.qualified == "builtins.type" or danger_reason(value.module, value.name) is None
    if isinstance(value, (tuple, list)):
        return all(_type_like(v, depth + 1) for v in value)
    if isinstance(value, Call) and isinstance(value.func, Global):
        return typing_construct(value.func.qualified, value, depth + 1) is not None
    return False


_TYPING_CALLABLES = _GETITEM | _REDUCE | {"types.GenericAlias", "builtins.type"}


def typing_construct(qualified: str, call: Call, depth: int = 0) -> str | None:
    """Say which typing construct a call builds, judged by its arguments, or return None.

    ``Dict[str, Any]`` pickles as ``operator.getitem(typing.Dict, (str, typing.Any))``,
    ``list[int]`` as ``types.GenericAlias(list, (int,))``, ``int | str`` as
    ``functools.reduce(operator.or_, (int, str))`` and ``type(None)`` as itself. Configs with
    type metadata (OmegaConf structured configs) carry them. The arguments must themselves
    be types, typing constructs or literals; whatever they name is judged on its own.
    """
    if qualified not in _TYPING_CALLABLES:
        return None
    args = call.args
    if not isinstance(args, tuple) or call.builds or call.items or call.setitems:
        return None
    if qualified in _GETITEM and len(args) == 2:
        owner, index = args
        owner_ok = (
            isinstance(owner, Global)
            and not owner.dynamic
            and (owner.module in _TYPING_OWNERS or owner.module == "builtins")
        ) or (isinstance(owner, Call) and _type_like(owner, depth + 1))
        if owner_ok and _type_like(index, depth + 1):
            return "a typing subscription (Dict[str, Any], Optional[int], ...)"
    if (
        qualified == "types.GenericAlias"
        and len(args) == 2
        and isinstance(args[0], Global)
        and _type_like(args[1], depth + 1)
    ):
        return "a generic alias (list[int], dict[str, float], ...)"
    if qualified in _REDUCE and len(args) == 2:
        op, items = args
        if (
            isinstance(op, Global)
            and op.qualified in _OR
            and isinstance(items, tuple)
            and _type_like(items, depth + 1)
        ):
            return "a union of types (int | str)"
    if qualified == "builtins.type" and len(args) == 1 and _is_literal(args[0]):
        return "the type of a literal (type(None))"
    return None


ABSORBING_CALLEES = _REDUCE
"""Callees for which :func:`absorbed_references` can return anything."""


def absorbed_references(qualified: str, call: Call) -> list[Global]:
    """Globals a benign pattern passes as data (the ``operator.or_`` of a type union)."""
    if qualified in _REDUCE and isinstance(call.args, tuple) and call.args:
        op = call.args[0]
        if isinstance(op, Global) and op.qualified in _OR:
            return [op]
    return []


def benign_pattern(qualified: str, call: Call) -> str | None:
    """Say why a call of a normally dangerous callable is benign here, or return None.

    Recognised by arguments only:
    - ``copyreg._reconstructor(cls, <plain builtin base>, state)``: protocol 0/1 objects;
    - ``builtins.getattr(<class>, '<identifier>')``: an attribute lookup on a class (the
      call of its result is judged separately, against :data:`INERT_CLASSMETHODS`).
    """
    args = call.args
    if qualified == "copyreg._reconstructor":
        if isinstance(args, tuple) and len(args) == 3:
            cls, base, _state = args
            if (
                isinstance(cls, Global)
                and not cls.dynamic
                and isinstance(base, Global)
                and base.qualified in _PLAIN_BASES
            ):
                return "protocol 0/1 object reconstruction with a plain builtin base"
        return None
    if qualified == "builtins.getattr":
        if _bound_method(call):
            return "a bound method of an object the file builds (obj.method pickles so)"
        target = getattr_target(call)
        owner = call.args[0] if target is not None else None
        # Only on an owner that is harmless itself: getattr(logging.os, 'system') is os.system,
        # and the result may be called without REDUCE (planted as a method, see checks).
        if (
            target is not None
            and isinstance(owner, Global)
            and danger_reason(owner.module, f"{owner.name}.{target[1]}") is None
        ):
            return f"attribute lookup {target[0]}.{target[1]}"
    return typing_construct(qualified, call)


def is_literal_args(args: Any) -> bool:
    """True when args is a tuple of literals (what an Enum member lookup passes)."""
    return isinstance(args, tuple) and all(_is_literal(a) for a in args)
