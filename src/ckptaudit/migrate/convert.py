"""Decode the values an inert tree holds in pickled form, without importing anything named
in the file: a datetime from its 10-byte state, a timezone from its offset, a numpy array's
bytes and dtype, a path from its parts.

Every function takes tree nodes and returns plain Python values built by this code (a
``datetime`` made from integers read out of the bytes, never by calling the pickled class),
or raises :class:`NotConvertible` with the reason.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import struct
from dataclasses import dataclass
from typing import Any

from ckptaudit.pickle.nodes import Call, Global, PDict

__all__ = [
    "NUMPY_DTYPES",
    "NotConvertible",
    "NumpyArray",
    "NumpyDtype",
    "as_bytes",
    "callee",
    "decode_date",
    "decode_datetime",
    "decode_numpy_array",
    "decode_numpy_dtype",
    "decode_numpy_scalar",
    "decode_path",
    "decode_time",
    "decode_timedelta",
    "decode_tzinfo",
    "getattr_name",
]


class NotConvertible(Exception):
    """A value whose pickled form is not the one this code knows how to decode."""


def callee(node: Any) -> str | None:
    """``module.name`` of the global a call calls, or None (computed callee)."""
    if isinstance(node, Call) and isinstance(node.func, Global) and not node.func.dynamic:
        return node.func.qualified
    return None


def _args(node: Call) -> tuple[Any, ...]:
    return node.args if type(node.args) is tuple else ()


_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


def as_bytes(node: Any) -> bytes | None:
    """The bytes a node stands for: native bytes, ``_codecs.encode(text, 'latin1')`` (how
    protocol 2 writes bytes), ``bytes()``, or a Python 2 string; None for anything else."""
    t = type(node)
    if t is bytes:
        return bytes(node)
    if t is bytearray:
        return bytes(node)
    if t is str:
        try:
            return node.encode("latin1")  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            return node.encode("utf-8", "surrogatepass")  # type: ignore[no-any-return]
    name = callee(node)
    if name in ("_codecs.encode", "codecs.encode"):
        args = _args(node)
        if len(args) == 2 and type(args[0]) is str and str(args[1]).lower() in _LATIN1:
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                return None
        return None
    if name in ("builtins.bytes", "__builtin__.bytes") and not _args(node):
        return b""
    if name == "copyreg.__newobj__":  # protocol 2's empty bytes: __newobj__(bytes, b'')
        # A chain of them as deep as the file likes: unwrapped in a loop, not by recursion.
        for _ in range(_MAX_WRAPPERS):
            args = _args(node)
            if not (len(args) == 2 and isinstance(args[0], Global) and args[0].name == "bytes"):
                return None
            node = args[1]
            if callee(node) != "copyreg.__newobj__":
                return as_bytes(node)
    return None


_MAX_WRAPPERS = 16
"""copyreg.__newobj__(bytes, ...) wrappers unwrapped before giving up (pickle writes one)."""


def getattr_name(node: Any) -> str | None:
    """``owner.attr`` for ``getattr(<global>, 'attr')`` (how pickle writes a method or a
    nested function); None otherwise."""
    if callee(node) != "builtins.getattr":
        return None
    args = _args(node)
    if len(args) == 2 and isinstance(args[0], Global) and type(args[1]) is str:
        return f"{args[0].qualified}.{args[1]}"
    return None


def _int_args(node: Call, n: int) -> tuple[int, ...]:
    args = _args(node)
    if len(args) > n or not all(type(a) is int for a in args):
        raise NotConvertible(f"unexpected arguments {args!r}")
    return args


def decode_timedelta(node: Any) -> dt.timedelta:
    """``timedelta(days, seconds, microseconds)``."""
    if callee(node) != "datetime.timedelta":
        raise NotConvertible("not a timedelta")
    try:
        return dt.timedelta(*_int_args(node, 3))
    except (OverflowError, TypeError) as exc:
        raise NotConvertible(str(exc)) from None


_ZONE_KEY = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


def decode_tzinfo(node: Any) -> dt.tzinfo | None:
    """A tzinfo from its pickled form: ``timezone(offset[, name])``, a ZoneInfo (by its key),
    pytz's UTC and fixed-offset zones; None for None."""
    if node is None:
        return None
    name = callee(node)
    args = _args(node) if isinstance(node, Call) else ()
    try:
        if name == "datetime.timezone" and args:
            offset = decode_timedelta(args[0])
            if len(args) > 1 and type(args[1]) is str:
                return dt.timezone(offset, args[1])
            return dt.timezone(offset)
        if name in ("pytz._UTC", "pytz.utc"):
            return dt.timezone.utc
        if name == "pytz._p" and len(args) >= 2 and type(args[1]) is int:
            label = args[3] if len(args) > 3 and type(args[3]) is str else None
            offset = dt.timedelta(seconds=args[1])
            return dt.timezone(offset, label) if label else dt.timezone(offset)
        if name == "pytz._p" and len(args) == 1 and args[0] == "UTC":
            return dt.timezone.utc
    except (ValueError, TypeError) as exc:
        raise NotConvertible(f"bad timezone: {exc}") from None
    zoneinfo_call = (
        isinstance(node, Call) and getattr_name(node.func) == "zoneinfo.ZoneInfo._unpickle"
    )
    if zoneinfo_call and args and type(args[0]) is str:
        return zone(args[0])
    raise NotConvertible(f"unknown tzinfo {name or 'computed'}")


def zone(key: str) -> dt.tzinfo:
    """The IANA zone of that key, from the system's zone data (a key is data, not code)."""
    if key.upper() == "UTC":
        return dt.timezone.utc
    if not _ZONE_KEY.match(key) or ".." in key:
        raise NotConvertible(f"not a zone key: {key!r}")
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise NotConvertible(f"unknown zone {key!r}: {exc}") from None


def _state_bytes(node: Call, size: int) -> tuple[bytes, tuple[Any, ...]]:
    args = _args(node)
    if not args:
        raise NotConvertible("no state")
    raw = as_bytes(args[0])
    if raw is None and type(args[0]) is str:
        raw = args[0].encode("utf-8", "surrogatepass")
    if raw is None or len(raw) != size:
        raise NotConvertible(f"state is not {size} bytes")
    return raw, args[1:]


def decode_datetime(node: Call) -> dt.datetime:
    """``datetime(state10[, tzinfo])`` or ``datetime(year, month, day, ...)``."""
    args = _args(node)
    try:
        if args and all(type(a) is int for a in args):
            return dt.datetime(*args)
        b, rest = _state_bytes(node, 10)
        tz = decode_tzinfo(rest[0]) if rest else None
        return dt.datetime(
            b[0] * 256 + b[1],
            b[2] & 0x7F,
            b[3],
            b[4],
            b[5],
            b[6],
            (b[7] << 16) | (b[8] << 8) | b[9],
            tzinfo=tz,
            fold=b[2] >> 7,
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise NotConvertible(f"bad datetime state: {exc}") from None


def decode_date(node: Call) -> dt.date:
    """``date(state4)`` or ``date(year, month, day)``."""
    args = _args(node)
    try:
        if args and all(type(a) is int for a in args):
            return dt.date(*args)
        b, _ = _state_bytes(node, 4)
        return dt.date(b[0] * 256 + b[1], b[2], b[3])
    except (ValueError, TypeError, OverflowError) as exc:
        raise NotConvertible(f"bad date state: {exc}") from None


def decode_time(node: Call) -> dt.time:
    """``time(state6[, tzinfo])``."""
    try:
        b, rest = _state_bytes(node, 6)
        tz = decode_tzinfo(rest[0]) if rest else None
        return dt.time(
            b[0] & 0x7F, b[1], b[2], (b[3] << 16) | (b[4] << 8) | b[5], tzinfo=tz, fold=b[0] >> 7
        )
    except (ValueError, TypeError) as exc:
        raise NotConvertible(f"bad time state: {exc}") from None


_WINDOWS = ("WindowsPath", "PureWindowsPath")


def decode_path(node: Call) -> str:
    """A pathlib path from its parts (``PosixPath('/', 'data', 'run')``)."""
    args = _args(node)
    if not all(type(a) is str for a in args):
        raise NotConvertible("path parts are not strings")
    name = callee(node) or ""
    cls = pathlib.PureWindowsPath if name.endswith(_WINDOWS) else pathlib.PurePosixPath
    return str(cls(*args))


# -- numpy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumpyDtype:
    """A numpy dtype read from ``numpy.dtype(code, align, copy)`` and its BUILD state."""

    code: str
    """The type code without byte order, e.g. ``f4``, ``i8``, ``b1``, ``U8``, ``O8``."""
    byteorder: str
    """``<``, ``>``, ``|`` or ``=``."""

    @property
    def name(self) -> str:
        """numpy's name for it (``float32``), or the code when unknown."""
        found = NUMPY_DTYPES.get(self.code)
        return found[0] if found else self.code


NUMPY_DTYPES: dict[str, tuple[str, str, str, int]] = {
    # code: (numpy name, struct format, torch dtype, element size)
    "b1": ("bool", "?", "bool", 1),
    "i1": ("int8", "b", "int8", 1),
    "u1": ("uint8", "B", "uint8", 1),
    "i2": ("int16", "h", "int16", 2),
    "u2": ("uint16", "H", "uint16", 2),
    "i4": ("int32", "i", "int32", 4),
    "u4": ("uint32", "I", "uint32", 4),
    "i8": ("int64", "q", "int64", 8),
    "u8": ("uint64", "Q", "uint64", 8),
    "f2": ("float16", "e", "float16", 2),
    "f4": ("float32", "f", "float32", 4),
    "f8": ("float64", "d", "float64", 8),
    "c8": ("complex64", "ff", "complex64", 8),
    "c16": ("complex128", "dd", "complex128", 16),
}
"""numpy dtypes with a torch dtype of the same bytes."""


def decode_numpy_dtype(node: Any) -> NumpyDtype:
    """``numpy.dtype('f4', False, True)`` + BUILD ``(3, '<', ...)``."""
    name = callee(node)
    if name is None or not name.startswith("numpy") or not name.endswith(".dtype"):
        raise NotConvertible("not a numpy dtype")
    assert isinstance(node, Call)
    args = _args(node)
    if not args or type(args[0]) is not str:
        raise NotConvertible("numpy dtype without a type code")
    order = "|"
    state = node.state
    if type(state) is tuple and len(state) > 1 and type(state[1]) is str:
        order = state[1]
    if type(state) is tuple and len(state) > 3 and state[3] is not None:
        raise NotConvertible("structured numpy dtype (named fields)")
    return NumpyDtype(args[0], order)


@dataclass(frozen=True)
class NumpyArray:
    """A numpy array read from ``_reconstruct(ndarray, (0,), b'b')`` and its BUILD state."""

    dtype: NumpyDtype
    shape: tuple[int, ...]
    fortran: bool
    data: bytes | None
    """Raw bytes (little-endian after :func:`decode_numpy_array`); None for object arrays."""
    objects: list[Any] | None
    """The elements of an object array (tree nodes), in memory order."""
    cls: str
    """The array class (``numpy.ndarray`` or a subclass)."""


def decode_numpy_array(node: Call) -> NumpyArray:
    """Read an ndarray's shape, dtype, order and bytes from its pickled state."""
    args = _args(node)
    cls = args[0].qualified if args and isinstance(args[0], Global) else "numpy.ndarray"
    state = node.state
    if not node.builds or type(state) is not tuple or len(state) != 5:
        raise NotConvertible("numpy array without the 5-part state")
    _version, shape, dtype_node, fortran, raw = state
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise NotConvertible("bad numpy shape")
    if len(shape) > 64:  # numpy's own limit; nest() recurses once per dimension
        raise NotConvertible(f"numpy shape of {len(shape)} dimensions (numpy allows 64)")
    dtype = decode_numpy_dtype(dtype_node)
    numel = 1
    for d in shape:
        numel *= d
    if dtype.code.startswith("O"):
        if type(raw) is not list or len(raw) != numel:
            raise NotConvertible("object array without its elements")
        return NumpyArray(dtype, shape, bool(fortran), None, raw, cls)
    data = as_bytes(raw)
    if data is None:
        raise NotConvertible("numpy array data is not bytes")
    size = _itemsize(dtype.code)
    if len(data) != numel * size:
        raise NotConvertible(f"numpy array holds {len(data)} bytes, {numel * size} expected")
    if dtype.byteorder == ">" and size > 1:
        data = _swap(data, dtype.code, size)
    return NumpyArray(dtype, shape, bool(fortran), data, None, cls)


def _itemsize(code: str) -> int:
    found = NUMPY_DTYPES.get(code)
    if found:
        return found[3]
    match = re.fullmatch(r"([USV])(\d+)", code)
    if match:
        n = int(match.group(2))
        return 4 * n if match.group(1) == "U" else n
    raise NotConvertible(f"numpy dtype {code!r} has no plain equivalent")


def _swap(data: bytes, code: str, size: int) -> bytes:
    """Big-endian to little-endian, element by element (complex: each half)."""
    part = size // 2 if code.startswith("c") else size
    if code.startswith("U"):
        part = 4
    view = memoryview(data)
    out = bytearray(len(data))
    for i in range(0, len(data), part):
        out[i : i + part] = view[i : i + part][::-1]
    return bytes(out)


def decode_numpy_scalar(node: Call) -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)`` -> the Python scalar of the same value."""
    args = _args(node)
    if len(args) != 2:
        raise NotConvertible("numpy scalar without (dtype, data)")
    dtype = decode_numpy_dtype(args[0])
    if dtype.code.startswith("O"):
        return args[1]  # the object itself: converted by the caller
    data = as_bytes(args[1])
    if data is None:
        raise NotConvertible("numpy scalar data is not bytes")
    order = ">" if dtype.byteorder == ">" else "<"
    found = NUMPY_DTYPES.get(dtype.code)
    try:
        if found:
            values = struct.unpack(order + found[1], data)
            if dtype.code.startswith("c"):
                return complex(values[0], values[1])
            return values[0]
        if dtype.code.startswith("U"):
            return data.decode("utf-32-be" if order == ">" else "utf-32-le").rstrip("\x00")
        if dtype.code.startswith("S"):
            return data.rstrip(b"\x00")
    except (struct.error, UnicodeDecodeError) as exc:
        raise NotConvertible(f"bad numpy scalar: {exc}") from None
    raise NotConvertible(f"numpy scalar of dtype {dtype.code!r}")


def numpy_elements(array: NumpyArray) -> list[Any]:
    """The elements of a string, bytes or object array, in memory order."""
    if array.objects is not None:
        return list(array.objects)
    assert array.data is not None
    code = array.dtype.code
    size = _itemsize(code)
    chunks = [array.data[i : i + size] for i in range(0, len(array.data), size)]
    if code.startswith("U"):
        return [c.decode("utf-32-le").rstrip("\x00") for c in chunks]
    if code.startswith("S"):
        return [c.rstrip(b"\x00") for c in chunks]
    raise NotConvertible(f"numpy dtype {code!r} has no plain equivalent")


def nest(items: list[Any], shape: tuple[int, ...], fortran: bool) -> Any:
    """Lay elements out as nested lists of ``shape`` (row-major), from memory order."""
    if not shape:
        return items[0] if items else None
    if fortran and len(shape) > 1:
        # Memory order is column-major: element (i, j, ...) sits at i + n0 * (j + n1 * ...).
        strides = [1]
        for d in shape[:-1]:
            strides.append(strides[-1] * d)
        return _nest_strided(items, shape, strides, 0)
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return _nest_strided(items, shape, strides, 0)


def _nest_strided(items: list[Any], shape: tuple[int, ...], strides: list[int], base: int) -> Any:
    if len(shape) == 1:
        return [items[base + i * strides[0]] for i in range(shape[0])]
    return [
        _nest_strided(items, shape[1:], strides[1:], base + i * strides[0]) for i in range(shape[0])
    ]


def state_fields(state: Any) -> list[tuple[Any, Any]] | None:
    """(name, value) pairs of a BUILD state made by ``object.__getstate__``: a dict, or a
    (dict or None, slots dict) pair; None when the state is something else."""
    if type(state) is PDict:
        return state.pairs
    if type(state) is tuple and len(state) == 2 and type(state[1]) is PDict:
        first = state[0]
        if first is None:
            return state[1].pairs
        if type(first) is PDict:
            return first.pairs + state[1].pairs
    return None
