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

__all__ = [
    "INERT_CLASSMETHODS",
    "INERT_CONSTRUCTORS",
    "INERT_MODULES",
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
    "argparse.Namespace": "builds an attribute container",
    "functools.partial": "binds arguments without calling (the bound callable is judged "
    "as a reference)",
    "types.SimpleNamespace": "builds an attribute container",
    "re._compile": "compiles a regular expression",
    "random.Random": "builds a random generator",
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

INERT_MODULES: dict[str, str] = {
    "torch.jit._pickle": "TorchScript's pickle helpers build lists, tensors and type tags",
}
"""Modules whose every function only builds data."""


def is_inert_constructor(qualified: str, module: str) -> bool:
    """True when calling ``qualified`` is known to only build data.

    Cython generates ``__pyx_unpickle_<Class>(type, checksum, state)`` for its classes: it
    makes an instance without calling ``__init__`` and sets fields, like NEWOBJ + BUILD.
    """
    if qualified in INERT_CONSTRUCTORS or module in INERT_MODULES:
        return True
    name = qualified[len(module) + 1 :]
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
        target = getattr_target(call)
        if target is not None:
            return f"attribute lookup {target[0]}.{target[1]}"
    return None


def is_literal_args(args: Any) -> bool:
    """True when args is a tuple of literals (what an Enum member lookup passes)."""
    return isinstance(args, tuple) and all(_is_literal(a) for a in args)
