"""The callables table: every call site a loader may be made to run, and which are inert.

A full unpickler (``pickle.load``, ``torch.load(weights_only=False)``, ``numpy.load`` with
``allow_pickle``) runs code at these *call sites* (SECURITY.md lists them, each with a test that
a real loader reaches it):

- **call**: REDUCE, INST and OBJ call ``f(*args)``;
- **new**: NEWOBJ and NEWOBJ_EX call ``cls.__new__(cls, *args, **kwargs)``;
- **build**: BUILD calls ``obj.__setstate__(state)``, or updates ``obj.__dict__`` and calls
  ``setattr`` for slot state;
- **setitem** and **append**: SETITEM(S), APPEND(S) and ADDITEMS call ``__setitem__``,
  ``append``, ``extend`` and ``add`` of anything but a plain dict, list or set;
- and the implicit ones, judged through the entries below: arguments a callable calls or keeps
  to call later (a ``defaultdict``'s factory, run by ``__missing__``), mappings read through
  ``keys()``, hooks a tensor runs at ``.backward()``, methods looked up by name on an object
  whose state the file chose, ``__hash__``/``__eq__`` of keys and ``__del__`` of what the file
  builds (only types that are inert there are listed at all).

Default-deny: a call site in the known pool (:mod:`ckptaudit.policy.closure`) is inert only
when an entry here says so for that site; anything else is a finding. Each entry says why, and
``tests/policy/test_callables.py`` loads a real example of each with a real unpickler. Names are
``module.qualname``; a dotted qualname (``datetime.datetime.fromtimestamp``) is an attribute
reached with ``getattr``, as pickle stores class methods.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["INERT", "INERT_MODULES", "Inert", "Site", "inert_entry", "value_class"]


class Site(enum.Enum):
    """A kind of call site."""

    CALL = "call"
    """REDUCE, INST, OBJ: ``f(*args)``."""
    NEW = "new"
    """NEWOBJ, NEWOBJ_EX: ``cls.__new__(cls, *args, **kwargs)``."""
    BUILD = "build"
    """BUILD on an instance: its ``__setstate__``, or attributes set from the state."""
    SETITEM = "setitem"
    """SETITEM(S) on an instance: its ``__setitem__``."""
    APPEND = "append"
    """APPEND(S) and ADDITEMS on an instance: its ``append``/``extend``/``add``."""


_C = frozenset({Site.CALL})
_CN = frozenset({Site.CALL, Site.NEW})
_CB = frozenset({Site.CALL, Site.BUILD})
_CNB = frozenset({Site.CALL, Site.NEW, Site.BUILD})
_NB = frozenset({Site.NEW, Site.BUILD})
_MAPPING = frozenset({Site.CALL, Site.NEW, Site.BUILD, Site.SETITEM})
_SEQUENCE = frozenset({Site.CALL, Site.NEW, Site.BUILD, Site.APPEND})


@dataclass(frozen=True, kw_only=True)
class Inert:
    """A callable (or class) shown to be inert at the call sites it names."""

    reason: str
    """Why these call sites only build data."""
    sites: frozenset[Site] = _C
    """Where it is inert: called, created with ``__new__``, its instances built or filled."""
    invokes: int | None = None
    """The index of an argument it calls (with the arguments two places after it): judged as
    a call site of its own."""
    deferred: int | None = None
    """The index of an argument it keeps to call later with no arguments (a factory): judged
    as a call site of its own."""
    mapping: int | None = None
    """The index of an argument it reads through ``keys()``: never a class or function."""
    hooks: int | None = None
    """The index of the backward hooks a tensor rebuild installs: must be empty."""
    state: int | None = None
    """The index of a dict it sets as the result's attributes (checked for planted methods)."""
    nested: int | None = None
    """The index of bytes it deserializes as a torch checkpoint: audited as a nested file,
    and the call is inert only when those bytes are given literally."""
    pattern: str | None = None
    """The name of an argument pattern (``ckptaudit.checks.patterns``) that must match."""
    creates: int | None = None
    """The index of a class it instantiates with ``__new__`` (``copyreg.__newobj__``, numpy's
    ``_reconstruct``): judged as a NEWOBJ of that class."""


_TENSOR_REBUILD = "rebuilds a tensor from a storage and a view (torch.save's own pickling)"
_PATH = "builds a path value (touches no file)"

INERT: dict[str, Inert] = {
    # -- builtins: values and containers ---------------------------------------------------
    "builtins.set": Inert(reason="builds a set", sites=_CN),
    "builtins.frozenset": Inert(reason="builds a frozenset", sites=_CN),
    "builtins.bytearray": Inert(reason="builds a bytearray", sites=_CN),
    "builtins.bytes": Inert(reason="builds bytes", sites=_CN),
    "builtins.complex": Inert(reason="builds a complex number", sites=_CN),
    "builtins.int": Inert(reason="builds an int", sites=_CN),
    "builtins.float": Inert(reason="builds a float", sites=_CN),
    "builtins.str": Inert(reason="builds a str", sites=_CN),
    "builtins.bool": Inert(reason="builds a bool", sites=_C),
    "builtins.tuple": Inert(reason="builds a tuple", sites=_CN),
    "builtins.list": Inert(reason="builds a list", sites=_CN),
    "builtins.dict": Inert(reason="builds a dict", sites=_CN, mapping=0),
    "builtins.slice": Inert(reason="builds a slice", sites=_C),
    "builtins.range": Inert(reason="builds a range", sites=_C),
    "builtins.object": Inert(reason="builds a bare object (a sentinel)", sites=_CN),
    "builtins.len": Inert(reason="returns the length of data the file built", sites=_C),
    "_codecs.encode": Inert(reason="encodes a str to bytes (how protocol 2 stores bytes)"),
    "codecs.encode": Inert(reason="encodes a str to bytes"),
    # -- collections --------------------------------------------------------------------------
    "collections.OrderedDict": Inert(reason="builds an OrderedDict", sites=_MAPPING, mapping=0),
    "collections.Counter": Inert(
        reason="builds a Counter (its __missing__ returns 0)", sites=_MAPPING, mapping=0
    ),
    "collections.defaultdict": Inert(
        reason="builds a defaultdict; its factory runs on a missing key, so it is judged as a "
        "call of its own",
        sites=_MAPPING,
        deferred=0,
        mapping=1,
    ),
    "collections.deque": Inert(reason="builds a deque", sites=_SEQUENCE),
    "collections.ChainMap": Inert(
        reason="a view over a list of mappings (its maps attribute, set by BUILD)", sites=_NB
    ),
    "collections.OrderedDict.fromkeys": Inert(reason="builds an OrderedDict"),
    "builtins.dict.fromkeys": Inert(reason="builds a dict"),
    # -- dates, numbers, identifiers, paths ----------------------------------------------------
    "datetime.datetime": Inert(reason="builds a datetime from packed bytes"),
    "datetime.date": Inert(reason="builds a date from packed bytes"),
    "datetime.time": Inert(reason="builds a time from packed bytes"),
    "datetime.timedelta": Inert(reason="builds a timedelta"),
    "datetime.timezone": Inert(reason="builds a fixed-offset timezone"),
    "datetime.datetime.fromtimestamp": Inert(reason="builds a datetime"),
    "datetime.datetime.fromisoformat": Inert(reason="builds a datetime"),
    "datetime.date.fromisoformat": Inert(reason="builds a date"),
    "zoneinfo.ZoneInfo": Inert(reason="looks up a time zone by key"),
    "zoneinfo.ZoneInfo._unpickle": Inert(reason="how a ZoneInfo pickles (aware datetimes)"),
    "zoneinfo._zoneinfo.ZoneInfo._unpickle": Inert(reason="how a ZoneInfo pickles"),
    "decimal.Decimal": Inert(reason="builds a Decimal"),
    "fractions.Fraction": Inert(reason="builds a Fraction", sites=_CN),
    "uuid.UUID": Inert(reason="builds a UUID (its __setstate__ sets the int)", sites=_CNB),
    "ipaddress.IPv4Address": Inert(reason="builds an address value"),
    "ipaddress.IPv6Address": Inert(reason="builds an address value"),
    "pathlib.Path": Inert(reason=_PATH),
    "pathlib.PosixPath": Inert(reason=_PATH),
    "pathlib.WindowsPath": Inert(reason=_PATH),
    "pathlib.PurePath": Inert(reason=_PATH),
    "pathlib.PurePosixPath": Inert(reason=_PATH),
    "pathlib.PureWindowsPath": Inert(reason=_PATH),
    # Python 3.13 moved the classes into pathlib._local, and pickles name them there.
    "pathlib._local.Path": Inert(reason=_PATH),
    "pathlib._local.PosixPath": Inert(reason=_PATH),
    "pathlib._local.WindowsPath": Inert(reason=_PATH),
    "pathlib._local.PurePath": Inert(reason=_PATH),
    "pathlib._local.PurePosixPath": Inert(reason=_PATH),
    "pathlib._local.PureWindowsPath": Inert(reason=_PATH),
    # -- attribute containers and small stdlib values -----------------------------------------
    "argparse.Namespace": Inert(reason="an attribute container", sites=_CNB),
    "types.SimpleNamespace": Inert(reason="an attribute container", sites=_CNB),
    "functools.partial": Inert(
        reason="binds arguments without calling; the bound callable is judged where it is "
        "called, and as a reference",
        sites=_CNB,
    ),
    "re._compile": Inert(reason="compiles a regular expression"),
    "inspect._empty": Inert(reason="the sentinel class of a missing annotation or default",
                            sites=_CN),
    "inspect._void": Inert(reason="the sentinel class of an unset value", sites=_CN),
    "inspect.Parameter": Inert(
        reason="a parameter's description: __init__ checks it, __setstate__ sets default and "
        "annotation",
        sites=_CB,
    ),
    "inspect.Signature": Inert(
        reason="a signature's description: __setstate__ sets parameters and annotation",
        sites=_CB,
    ),
    "random.Random": Inert(reason="builds a random generator (setstate restores it)", sites=_CNB),
    "time.struct_time": Inert(reason="builds a time tuple (time.localtime())"),
    "logging.getLogger": Inert(reason="returns the logger of that name (how a Logger pickles)"),
    "array.array": Inert(reason="builds an array from a typecode and its items"),
    "array._array_reconstructor": Inert(reason="builds an array from a typecode and bytes"),
    "copyreg._reconstructor": Inert(
        reason="protocol 0/1 object reconstruction: object.__new__ of a plain builtin base",
        pattern="reconstructor",
        mapping=2,
    ),
    "copyreg.__newobj__": Inert(
        reason="cls.__new__(cls, *args), judged as a NEWOBJ of cls", creates=0
    ),
    # -- numpy --------------------------------------------------------------------------------
    "numpy.core.multiarray._reconstruct": Inert(
        reason="builds an empty ndarray of its first argument's class", creates=0
    ),
    "numpy._core.multiarray._reconstruct": Inert(
        reason="builds an empty ndarray of its first argument's class", creates=0
    ),
    "numpy.core.multiarray.scalar": Inert(reason="builds a numpy scalar from bytes"),
    "numpy._core.multiarray.scalar": Inert(reason="builds a numpy scalar from bytes"),
    "numpy.core.numeric._frombuffer": Inert(reason="builds an ndarray from bytes"),
    "numpy._core.numeric._frombuffer": Inert(reason="builds an ndarray from bytes"),
    "numpy.dtype": Inert(reason="builds a dtype (its __setstate__ fills it)", sites=_CNB),
    "numpy.ndarray": Inert(reason="builds an ndarray (its __setstate__ fills it)", sites=_CNB),
    "numpy.ma.core._mareconstruct": Inert(reason="builds a masked array", sites=_CB, creates=0),
    "numpy.ma.core.MaskedArray": Inert(reason="its __setstate__ fills it", sites=_NB),
    "numpy.recarray": Inert(reason="an ndarray of records (ndarray's __setstate__)", sites=_NB),
    "numpy.rec.recarray": Inert(reason="an ndarray of records", sites=_NB),
    "numpy.core.records.recarray": Inert(reason="an ndarray of records", sites=_NB),
    "numpy._core.records.recarray": Inert(reason="an ndarray of records", sites=_NB),
    "numpy.record": Inert(reason="a record scalar type", sites=_CN),
    "numpy.core.records.record": Inert(reason="a record scalar type", sites=_CN),
    "numpy._core.records.record": Inert(reason="a record scalar type", sites=_CN),
    "numpy.matrix": Inert(reason="a 2-d ndarray (ndarray's __setstate__)", sites=_NB),
    "numpy.matrixlib.defmatrix.matrix": Inert(reason="a 2-d ndarray", sites=_NB),
    "numpy.random._pickle.__randomstate_ctor": Inert(reason="builds a RandomState"),
    "numpy.random._pickle.__bit_generator_ctor": Inert(reason="builds a bit generator"),
    "numpy.random._pickle.__generator_ctor": Inert(reason="builds a Generator"),
    "numpy.random.bit_generator.SeedSequence": Inert(
        reason="a Cython class: its __setstate_cython__ sets the seed's fields",
        sites=frozenset({Site.BUILD}),
    ),
    "numpy.random.mtrand.RandomState": Inert(reason="its __setstate__ restores the state",
                                             sites=frozenset({Site.BUILD})),
    "numpy.random._generator.Generator": Inert(reason="its __setstate__ restores the state",
                                               sites=frozenset({Site.BUILD})),
    "numpy.random._mt19937.MT19937": Inert(reason="its __setstate__ restores the state",
                                           sites=frozenset({Site.BUILD})),
    "numpy.random._pcg64.PCG64": Inert(reason="its __setstate__ restores the state",
                                       sites=frozenset({Site.BUILD})),
    "numpy.random._pcg64.PCG64DXSM": Inert(reason="its __setstate__ restores the state",
                                           sites=frozenset({Site.BUILD})),
    "numpy.random._philox.Philox": Inert(reason="its __setstate__ restores the state",
                                         sites=frozenset({Site.BUILD})),
    "numpy.random._sfc64.SFC64": Inert(reason="its __setstate__ restores the state",
                                       sites=frozenset({Site.BUILD})),
    # -- torch --------------------------------------------------------------------------------
    "torch.Generator": Inert(reason="builds a random generator", sites=_CB),
    "torch._C.Generator": Inert(reason="builds a random generator", sites=_CB),
    "torch._utils._rebuild_tensor": Inert(reason=_TENSOR_REBUILD),
    "torch._utils._rebuild_tensor_v2": Inert(reason=_TENSOR_REBUILD, hooks=5),
    "torch._utils._rebuild_tensor_v3": Inert(reason=_TENSOR_REBUILD, hooks=5),
    "torch._utils._rebuild_qtensor": Inert(reason="rebuilds a quantized tensor", hooks=6),
    "torch._utils._rebuild_parameter": Inert(reason="rebuilds a Parameter", hooks=2),
    "torch._utils._rebuild_parameter_with_state": Inert(
        reason="rebuilds a Parameter and sets its attributes", hooks=2, state=3
    ),
    "torch._utils._rebuild_sparse_tensor": Inert(reason="rebuilds a sparse tensor"),
    "torch._utils._rebuild_meta_tensor_no_storage": Inert(reason="rebuilds a meta tensor"),
    "torch._utils._rebuild_nested_tensor": Inert(reason="rebuilds a nested tensor"),
    "torch._utils._rebuild_wrapper_subclass": Inert(reason="rebuilds a tensor subclass"),
    "torch._utils._rebuild_device_tensor_from_numpy": Inert(reason="rebuilds a tensor"),
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": Inert(reason="rebuilds a tensor"),
    "torch._tensor._rebuild_from_type": Inert(
        reason="rebuilds a tensor subclass by calling its first argument", invokes=0, state=3
    ),
    "torch._tensor._rebuild_from_type_v2": Inert(
        reason="rebuilds a tensor subclass by calling its first argument", invokes=0, state=3
    ),
    "torch.storage._load_from_bytes": Inert(
        reason="how storages pickle without torch.save: torch.load of the literal bytes, "
        "which are audited as a checkpoint of their own",
        nested=0,
    ),
    "torch.nn.parameter.Parameter": Inert(reason="builds a Parameter", sites=_CNB),
    "torch.nn.parameter.UninitializedParameter": Inert(reason="builds a lazy Parameter",
                                                       sites=_CNB),
    "torch.nn.parameter.Buffer": Inert(reason="builds a Buffer", sites=_CNB),
    "torch.Tensor": Inert(reason="tensors whose attributes the file sets (planted methods and "
                          "hooks are judged on the state)", sites=frozenset({Site.BUILD})),
    "torch.nn.backends.thnn._get_thnn_function_backend": Inert(
        reason="returns the THNN backend object (whole modules pickled by PyTorch 0.x)"
    ),
    "torch.nested._internal.nested_tensor._rebuild_njt": Inert(
        reason="torch's own rebuild of a jagged nested tensor (registered safe at import)"
    ),
    "torch.ScriptObject": Inert(
        reason="a TorchScript custom class (quantized packed parameters): its state goes to "
        "the class torch registered in C++",
        sites=_NB,
    ),
    "numpy.ma.MaskedArray": Inert(reason="its __setstate__ fills it", sites=_NB),
    "torch._dynamo.decorators._DimRange": Inert(
        reason="a dataclass of a dimension's bounds that jagged nested tensors carry",
        sites=_NB,
    ),
}
"""``module.qualname`` -> the call sites where it is inert, and why."""

INERT_MODULES: dict[str, Inert] = {
    "numpy.dtypes": Inert(
        reason="numpy's per-dtype classes: dtype.__setstate__ (C code) fills them",
        sites=frozenset({Site.BUILD}),
    ),
    "torch.return_types": Inert(reason="named-tuple results of torch functions (torch.max)"),
    "torch.jit._pickle": Inert(reason="TorchScript's pickle helpers build lists and tensors"),
    "torch.nn.modules": Inert(
        reason="nn.Module classes: object.__new__, and Module.__setstate__ updates __dict__ "
        "(whole-model saves)",
        sites=_NB,
    ),
}
"""Modules (and their submodules) whose every member is inert at the sites named."""


_CYTHON_UNPICKLE = Inert(
    reason="Cython's generated __pyx_unpickle_<Class>(cls, checksum, state): allocates the "
    "instance without __init__ and sets its fields, like NEWOBJ + BUILD",
)


def inert_entry(qualified: str, module: str) -> Inert | None:
    """The entry for ``module.qualname``: its own, else its module's; None if neither.

    A module entry covers the module's direct members and their submodules, never a dotted
    attribute reached through a member (``torch.nn.modules.Linear.__init__``).
    """
    entry = INERT.get(qualified)
    if entry is not None:
        return entry
    name = qualified[len(module) + 1 :]
    if "." in name:
        return None
    if name.startswith("__pyx_unpickle_"):
        return _CYTHON_UNPICKLE
    pieces = module.split(".")
    for i in range(len(pieces), 0, -1):
        found = INERT_MODULES.get(".".join(pieces[:i]))
        if found is not None:
            return found
    return None


@lru_cache(maxsize=1)
def _value_classes() -> dict[str, str]:
    text = (resources.files("ckptaudit.policy") / "data" / "value-classes.json").read_text()
    classes: dict[str, str] = json.loads(text)["classes"]
    return classes


def value_class(qualified: str) -> str | None:
    """What kind of value class of the known pool ``module.qualname`` is (``enum``,
    ``namedtuple``, ``structseq``, ``exception``, ``plain``), or None.

    Calling one only builds a value (an Enum member lookup, a tuple, an exception); the table
    is generated from the standard library, torch and numpy by tools/gen_value_classes.py.
    ``plain`` classes are inert only where NEWOBJ creates them and BUILD fills them.
    """
    return _value_classes().get(qualified)
