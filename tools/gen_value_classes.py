"""Generate the value classes of the known pool: Enums, named tuples, struct sequences and
exceptions defined in the standard library, torch and numpy.

Usage: python tools/gen_value_classes.py [--check]

Calling such a class only builds a value: ``Color(1)`` looks a member up, ``Point(1, 2)`` and
``os.stat_result((...))`` build tuples, ``ValueError('x')`` an exception. A checkpoint carries
them (an Enum in a config, a ``torch.return_types.max``, a saved error), and a full unpickler
calls them by REDUCE, so the callables table must know them; listing them by hand leaked
(a torch.distributed.checkpoint Enum was called dangerous). This tool imports every module of
the standard library, torch and numpy it can (skipping those whose import has side effects:
``antigravity`` opens a browser, ``this`` prints, every ``__main__`` runs a program), keeps the
classes a module *defines* (``cls.__module__`` is the module) that are Enums (without a
``_missing_`` of their own), ``collections.namedtuple``/``typing.NamedTuple`` classes, struct
sequences, exceptions, or *plain* classes (see ``_plain``: ``object.__new__``, no finalizer
or attribute hooks, a ``__setstate__`` that is absent or in :data:`VETTED_SETSTATE`), which
NEWOBJ and BUILD only fill with attributes (a whole optimizer, a DCP metadata dataclass); and
writes ``src/ckptaudit/policy/data/value-classes.json`` with the
versions it was generated from. It runs in a subprocess of its own per package, so a module that
misbehaves on import cannot take the generator down. With --check, compare instead of writing.
"""

from __future__ import annotations

import argparse
import enum
import json
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src" / "ckptaudit" / "policy" / "data"
OUT_FILE = OUT / "value-classes.json"

_SKIP_TOP = frozenset(
    {
        "antigravity",  # opens a web browser
        "this",  # prints the Zen of Python
        "__hello__",
        "__phello__",
        "idlelib",  # IDLE
        "turtledemo",
        "test",  # CPython's own test suite
        "lib2to3",
        "ensurepip",
        "pydoc_data",
        "tkinter",  # needs a display for some submodules
        "turtle",
        "xxsubtype",
        "xxlimited",
        "xxlimited_35",
        "_xxtestfuzz",
    }
)
_SKIP_PARTS = frozenset({"__main__", "tests", "test", "testing", "_testing", "conftest"})


def _importable(name: str) -> Any:
    import importlib

    if any(part in _SKIP_PARTS for part in name.split(".")):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:  # any failure on import: the module is skipped
        return None


def _modules(root: str) -> list[str]:
    """The root module and every submodule pkgutil finds under it."""
    names = [root]
    module = _importable(root)
    path = getattr(module, "__path__", None)
    if path is None:
        return names
    for info in pkgutil.walk_packages(path, prefix=f"{root}.", onerror=lambda _name: None):
        if not any(part in _SKIP_PARTS for part in info.name.split(".")):
            names.append(info.name)
    return names


VETTED_SETSTATE: dict[str, str] = {
    "torch.nn.modules.module.Module.__setstate__": "updates __dict__, adds missing hook dicts",
    "dataclasses._dataclass_setstate": "sets each field (frozen dataclasses with slots)",
    "torch.nn.modules.conv._ConvNd.__setstate__": "Module's, plus a default padding_mode",
    "torch.ao.nn.quantized.modules.conv._ConvNd.__setstate__": "sets fields, packs the weight "
    "with a quantized torch op",
    "torch.optim.optimizer.Optimizer.__setstate__": "updates __dict__, adds missing hook dicts",
    **{
        f"torch.optim.{name}.__setstate__": "Optimizer's, plus per-group defaults and the step "
        "count made a tensor"
        for name in (
            "_adafactor.Adafactor",
            "adadelta.Adadelta",
            "adagrad.Adagrad",
            "adam.Adam",
            "adamax.Adamax",
            "adamw.AdamW",
            "asgd.ASGD",
            "nadam.NAdam",
            "radam.RAdam",
            "rmsprop.RMSprop",
            "rprop.Rprop",
            "sgd.SGD",
        )
    },
    "torch.nn.modules.rnn.RNNBase.__setstate__": "Module's, plus weight names for old saves",
    "torch.amp.grad_scaler.GradScaler.__setstate__": "updates __dict__",
    "torch.nn.modules.activation.MultiheadAttention.__setstate__": "Module's, plus a default",
    "torch.nn.modules.upsampling.Upsample.__setstate__": "Module's, plus a default",
    "torch.nn.modules.activation.Softmax.__setstate__": "Module's, plus a default dim",
    "torch.nn.modules.activation.Softmin.__setstate__": "Module's, plus a default dim",
    "torch.nn.modules.activation.LogSoftmax.__setstate__": "Module's, plus a default dim",
    "torch.nn.modules.pooling.AvgPool3d.__setstate__": "Module's, plus defaults",
    "torch.nn.modules.transformer.TransformerEncoderLayer.__setstate__": "Module's, plus a "
    "default activation",
    "torch.nn.modules.transformer.TransformerDecoderLayer.__setstate__": "Module's, plus a "
    "default activation",
    "torch.nn.modules.module._WrappedHook.__setstate__": "stores the hook and a weakref",
    "torch.utils.hooks.RemovableHandle.__setstate__": "stores weakrefs (no callback) and an id",
    "torch.utils._ordered_set.OrderedSet.__setstate__": "builds a dict of the items",
    "torch.ao.pruning.sparsifier.base_sparsifier.BaseSparsifier.__setstate__": "updates __dict__",
    "torch.ao.nn.sparse.quantized.linear.LinearPackedParams.__setstate__": "unpacks a tuple",
    "torch.distributed.checkpoint.metadata.TensorProperties.__setstate__": "unpacks a tuple",
    "torch.distributed._shard.checkpoint.metadata.TensorProperties.__setstate__": "unpacks",
    "torch.distributed._shard.sharded_tensor.metadata.TensorProperties.__setstate__": "unpacks",
    "numpy.polynomial._polybase.ABCPolyBase.__setstate__": "updates __dict__ and the window",
    "torch._numpy._dtypes.DType.__setstate__": "sets the scalar type",
}
"""``__setstate__`` implementations read and found to set attributes only (or to compute on
tensors): a class using one is plain. Any other makes its class unlisted (default-deny)."""


def _plain(cls: type) -> bool:
    """``cls.__new__(cls)`` then BUILD only sets attributes: object's ``__new__``, no
    finalizer, no attribute hooks, and a ``__setstate__`` that is absent or vetted."""
    mro = [base for base in cls.__mro__ if base is not object]
    if cls.__new__ is not object.__new__ or any("__del__" in vars(b) for b in mro):
        return False
    if cls.__getattribute__ is not object.__getattribute__:
        return False
    custom_eq = any(("__eq__" in vars(b) or "__hash__" in vars(b)) for b in mro)
    if custom_eq and not hasattr(cls, "__dataclass_fields__"):
        return False  # a key or set item would run it (dataclasses compare their fields)
    setstate = getattr(cls, "__setstate__", None)
    if setstate is None:
        # BUILD looks __setstate__ up, which reaches __getattr__; slot state goes through
        # __setattr__.
        hooks = any("__getattr__" in vars(b) for b in mro)
        params = getattr(cls, "__dataclass_params__", None)
        # A frozen dataclass's __setattr__ only raises (on slot state): harmless.
        frozen = params is not None and getattr(params, "frozen", False)
        return not hooks and (cls.__setattr__ is object.__setattr__ or frozen)
    owner = f"{getattr(setstate, '__module__', '?')}.{getattr(setstate, '__qualname__', '?')}"
    return owner in VETTED_SETSTATE


def _kind(cls: type) -> str | None:
    if isinstance(cls, enum.EnumMeta):
        # A _missing_ of its own can run any code on a lookup that misses.
        own = any("_missing_" in vars(base) for base in cls.__mro__ if base not in _ENUM_BASES)
        return None if own else "enum"
    if issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make"):
        return "namedtuple"
    if issubclass(cls, tuple) and hasattr(cls, "n_sequence_fields"):
        return "structseq"
    if issubclass(cls, BaseException) and "__del__" not in dir(cls):
        return "exception"
    try:
        return "plain" if _plain(cls) else None
    except Exception:  # a class that breaks introspection is not listed
        return None


_ENUM_BASES = frozenset({enum.Enum, enum.IntEnum, enum.Flag, enum.IntFlag, object, int, str})
_ENUM_BASES |= {getattr(enum, "StrEnum", object), getattr(enum, "ReprEnum", object)}


def collect(roots: list[str]) -> dict[str, str]:
    """``module.qualname`` -> kind, for the value classes the roots' modules define."""
    found: dict[str, str] = {}
    for root in roots:
        for name in _modules(root):
            module = _importable(name)
            if module is None:
                continue
            for attr, value in list(vars(module).items()):
                if not isinstance(value, type) or getattr(value, "__module__", None) != name:
                    continue
                kind = _kind(value)
                if kind is not None and value.__qualname__ == attr:
                    found[f"{name}.{attr}"] = kind
    return found


def _in_subprocess(roots: list[str]) -> dict[str, str]:
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import gen_value_classes as g; "
        f"print(json.dumps(g.collect({roots!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True
    )
    found: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def build_table() -> dict[str, Any]:
    """Collect the value classes of the standard library, torch and numpy."""
    import numpy
    import torch

    stdlib = sorted(n for n in sys.stdlib_module_names if n not in _SKIP_TOP)
    classes: dict[str, str] = {}
    classes.update(_in_subprocess(stdlib))
    classes.update(_in_subprocess(["numpy"]))
    classes.update(_in_subprocess(["torch"]))
    return {
        "source": (
            f"generated by tools/gen_value_classes.py on CPython {sys.version.split()[0]}, "
            f"torch {torch.__version__.split('+')[0]}, numpy {numpy.__version__}; do not edit"
        ),
        "classes": dict(sorted(classes.items())),
    }


def main() -> int:
    """Write (or with --check, verify) the value-class table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    table = build_table()
    text = json.dumps(table, indent=1, sort_keys=True) + "\n"
    if args.check:
        if not OUT_FILE.exists() or OUT_FILE.read_text() != text:
            print(f"{OUT_FILE} differs; run python tools/gen_value_classes.py")
            return 1
        return 0
    OUT_FILE.write_text(text)
    print(f"wrote {OUT_FILE} ({len(table['classes'])} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
