"""The one list of benign look-alikes: files whose opcodes look risky and that must never be
called dangerous.

Every "stays not dangerous" test draws its files from :data:`LOOKALIKES` (by family, or one by
name) and adds what it checks beyond that: the exact verdict, torch's own verdict, the remedy.
The hostile catalogue's look-alikes (``hostile_cases.BENIGN_LOOKALIKES``, which the benchmarks
also write out) are the ``catalogue`` family. Files are made on demand: building the list
imports neither torch nor ckptaudit, and a file torch.save writes imports torch only when a
test asks for it.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import datetime
import enum
import http
import importlib
import io
import pickle
import re
import types
import typing
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import hostile_cases as hc
import pytest

from support.opcodes import (
    build,
    empty_dict,
    empty_tuple,
    global_,
    lit,
    mark,
    reduce,
    ref,
    setitems,
    wrap,
)

Family = Literal[
    "catalogue",
    "torch-saved",
    "enum-and-mapping",
    "typing",
    "library-reconstructor",
    "torch-operator-as-data",
    "library-data-rebuilder",
    "single",
]


@dataclass(frozen=True)
class Lookalike:
    """A benign file that looks risky."""

    name: str
    """Unique; the test id."""
    family: Family
    """Which tests draw it: files of one family share what is checked beyond "not dangerous"."""
    make: Callable[[], bytes]
    """Builds the file's bytes (only when a test asks)."""
    expect: Literal["compatible", "incompatible"] | None = None
    """The exact verdict where the family checks it."""
    filename: str = "model.pkl"
    """The name the file is audited under."""
    make_value: Callable[[], object] | None = None
    """Builds the object pickled, for families that check it round-trips."""


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _torch_saved(make_obj: Callable[[], object]) -> Callable[[], bytes]:
    def make() -> bytes:
        import torch  # only when a test asks for a file torch writes

        buffer = io.BytesIO()
        torch.save(make_obj(), buffer)
        return buffer.getvalue()

    return make


def as_data(value: bytes) -> bytes:
    """A protocol-4 pickle of ``{'fn': <value>}``: a global kept as data, never called."""
    return wrap(empty_dict() + lit("fn", 4) + value + b"s", 4)


# --------------------------------------------------------------------------- the catalogue's

_CATALOGUE = [
    Lookalike(case.name, "catalogue", _const(case.data), case.expect, case.filename)
    for case in hc.BENIGN_LOOKALIKES
]

# --------------------------------------------------------------------------- torch.save files
# Configs, sets and deques, a state dict, a module holding a function: the shapes of the
# red-team campaigns' bypasses, benign (first campaign, d413eec).


def _namespace_configs() -> object:
    return {"args": argparse.Namespace(lr=0.1, name="x"), "ns": types.SimpleNamespace(a=1)}


def _plain_state_dict() -> object:
    import torch
    from torch import nn

    return {"w": torch.arange(4.0), "sd": nn.Linear(2, 2).state_dict()}


def _whole_module_with_function_attribute() -> object:
    import oracle_types  # imports torch

    return oracle_types.ActivationModule()


_TORCH_SAVED = [
    Lookalike(
        "namespace-configs",
        "torch-saved",
        _torch_saved(_namespace_configs),
        "incompatible",
        "model.pt",
    ),
    Lookalike(
        "protocol4-set-deque-frozenset",
        "torch-saved",
        lambda: pickle.dumps(
            {"s": {1, 2}, "d": collections.deque([1, 2], maxlen=5), "f": frozenset({3})},
            protocol=4,
        ),
        "incompatible",
        "model.pt",
    ),
    Lookalike(
        "plain-state-dict", "torch-saved", _torch_saved(_plain_state_dict), "compatible", "model.pt"
    ),
    # relu is a plain function torch's allowlist lacks: not-allowlisted (CKA201), not dangerous.
    Lookalike(
        "whole-module-with-function-attribute",
        "torch-saved",
        _torch_saved(_whole_module_with_function_attribute),
        "incompatible",
        "model.pt",
    ),
]

# --------------------------------------------------------------------------- Enums and mappings
# Enum members and OrderedDict subclasses, the shapes a stdlib class with side effects was
# hidden in (second campaign, 55da442 and cde38f1): the user's own and the stdlib's benign ones.


class UserColor(enum.Enum):
    RED = 1
    BLUE = 2


class _PrivateColor(enum.Enum):
    GREEN = 1


class UserOrderedDict(collections.OrderedDict):  # type: ignore[type-arg]
    pass


def _address_family() -> object:
    # Imported when asked: socket is a module hostile payloads name, and the catalogue's test
    # checks that auditing imports none of them.
    return importlib.import_module("socket").AddressFamily(2)


_ENUM_VALUES: list[tuple[str, Callable[[], object]]] = [
    ("re.RegexFlag", lambda: re.RegexFlag(2)),
    ("http.HTTPStatus", lambda: http.HTTPStatus(200)),
    ("socket.AddressFamily", _address_family),
    ("user-enum", lambda: UserColor.BLUE),
    ("user-private-enum", lambda: _PrivateColor.GREEN),
    ("user-ordereddict-subclass", lambda: UserOrderedDict(a=1, b=[2])),
]

_ENUMS_AND_MAPPINGS = [
    Lookalike(
        f"{label}-protocol{protocol}",
        "enum-and-mapping",
        (lambda v=make_value, p=protocol: pickle.dumps(v(), protocol=p)),
        "incompatible",
        make_value=make_value,
    )
    for label, make_value in _ENUM_VALUES
    for protocol in (2, 4)
]

# --------------------------------------------------------------------------- typing constructs

TYPING_VALUES: dict[str, object] = {
    "Dict[str, Any]": typing.Dict[str, typing.Any],  # noqa: UP006 - the pickled form is the point
    "Optional[int]": typing.Optional[int],  # noqa: UP045
    "List[Tuple[int, str]]": typing.List[typing.Tuple[int, str]],  # noqa: UP006
    "list[int]": list[int],
    "dict[str, list[int]]": dict[str, list[int]],
    "int | str": int | str,
    "Callable[[int], str]": typing.Callable[[int], str],
    "Mapping[str, int]": collections.abc.Mapping[str, int],
    "Literal": typing.Literal["a", 1],
}

_TYPING = [
    Lookalike(
        f"{name}-{protocol}",
        "typing",
        (lambda v=value, p=protocol: pickle.dumps({"t": v}, protocol=p)),
        "incompatible",
    )
    for name, value in sorted(TYPING_VALUES.items())
    for protocol in (2, 4)
]

# --------------------------------------------------------------------------- library rebuilders
# The shape pandas and sklearn write: a reconstructor called with plain arguments.

_RECONSTRUCTORS = [
    Lookalike(
        f"{module}.{name}",
        "library-reconstructor",
        _const(wrap(global_(module, name) + lit((1, 2)) + reduce())),
    )
    for module, name in [
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
        ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
        ("pandas._libs.tslibs.offsets", "Day"),
        ("sklearn.tree._tree", "Tree"),
    ]
]

# What pandas (with pyarrow), sparse Series and mmengine configs pickle through.
_DATA_REBUILDERS = [
    Lookalike(
        f"{module}.{name}",
        "library-data-rebuilder",
        _const(as_data(ref(module, name, 4) + lit(args, 4) + reduce())),
        "incompatible",
    )
    for module, name, args in [
        ("pyarrow.lib", "type_for_alias", ("large_string",)),
        ("pyarrow.lib", "py_buffer", (b"ab",)),
        ("pandas._libs.sparse", "IntIndex", (3, 1)),
        ("mmengine.config.config", "ConfigDict", ()),
    ]
]

# torch's operators kept as values, spelled as protocol 4's dotted STACK_GLOBAL names.
_TORCH_OPERATORS = [
    Lookalike(
        name, "torch-operator-as-data", _const(as_data(ref("torch._C", name, 4))), "incompatible"
    )
    for name in [
        "_VariableFunctionsClass.tanh",
        "_VariableFunctions.add",
        "TensorBase.sum",
        "_TensorBase.mul",
        "_nn.gelu",
        "_VariableFunctionsClass",
    ]
]

# --------------------------------------------------------------------------- single files


def _aware_datetime() -> bytes:
    value = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    return pickle.dumps({"t": value}, protocol=2)


_SINGLE = [
    # getattr(ZoneInfo, '_unpickle') with literal operands, then a call of what it fetched.
    Lookalike("timezone-aware-datetime", "single", _aware_datetime, "incompatible"),
    # A whole Hugging Face model keeps torch._C._nn.gelu as an attribute (not called).
    Lookalike(
        "native-nn-op-as-attribute",
        "single",
        _const(b"\x80\x02}X\x03\x00\x00\x00actctorch._C._nn\ngelu\ns."),
        "incompatible",
    ),
    # A CamelCase class of the user's code called with one literal: an Enum lookup.
    Lookalike("user-enum-lookup", "single", _const(b"cmymod\nStage\nK\x02\x85R."), "incompatible"),
    Lookalike(
        "enum-shaped-call",
        "single",
        _const(b"\x80\x02cmylib.states\nStage\nK\x02\x85R."),
        "incompatible",
    ),
    # An OrderedDict subclass: REDUCE(cls, ()), SETITEMS, then BUILD with attributes.
    Lookalike(
        "mapping-subclass-with-attribute-state",
        "single",
        _const(
            wrap(
                global_("mylib.outputs", "FrozenDict")
                + empty_tuple()
                + reduce()
                + mark()
                + lit("a")
                + lit(1)
                + setitems()
                + lit({"_frozen": True})
                + build()
            )
        ),
        "incompatible",
    ),
]

LOOKALIKES: list[Lookalike] = [
    *_CATALOGUE,
    *_TORCH_SAVED,
    *_ENUMS_AND_MAPPINGS,
    *_TYPING,
    *_RECONSTRUCTORS,
    *_DATA_REBUILDERS,
    *_TORCH_OPERATORS,
    *_SINGLE,
]
"""Every benign look-alike of the suite."""


def family(name: Family) -> list[Any]:
    """The look-alikes of one family, as pytest params with their names as ids."""
    return [pytest.param(item, id=item.name) for item in LOOKALIKES if item.family == name]


def named(name: str) -> Lookalike:
    """The look-alike called ``name``."""
    (item,) = [item for item in LOOKALIKES if item.name == name]
    return item
