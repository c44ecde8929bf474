"""Callables that a pickle may invoke and that are shown to be inert data constructors.

A call in a pickle (REDUCE, INST/OBJ with arguments, NEWOBJ_EX) of anything not listed here,
not allowed by torch by default, and not recognised by shape (an Enum member lookup) is
reported as an unsafe call. Some callables are inert only with certain arguments; those are
judged by the patterns of :mod:`ckptaudit.checks.patterns`, which read the call's arguments and
never evaluate them. This module is data: names and reasons, no pickle nodes.
"""

from __future__ import annotations

import re

__all__ = [
    "INERT_CLASSMETHODS",
    "INERT_CONSTRUCTORS",
    "INERT_MODULES",
    "STDLIB_ENUMS",
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
