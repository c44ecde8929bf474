"""Patterns found in checkpoints written by real libraries, judged by ckptaudit and by torch.

numpy's RandomState (legacy seeding, RL libraries), torch operators kept as values (an
activation in a config), and OrderedDict subclasses (transformers' ModelOutput, diffusers'
FrozenDict). Only ``torch.load(weights_only=True)`` is ever called on these files.
"""

from __future__ import annotations

import collections
import functools
import pathlib
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from support.containers import torch_zip, zip_of
from support.loaders import resolve_name, save, torch_loads
from support.lookalikes import Lookalike, as_data, family, named
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

import ckptaudit
from ckptaudit.findings import Remedy, Severity, Status
from ckptaudit.policy.dangerous import danger_reason

pytestmark = pytest.mark.torch


class ModelOutput(collections.OrderedDict):  # type: ignore[type-arg]
    """What transformers' outputs and many configs subclass."""


class FrozenConfig(collections.OrderedDict):  # type: ignore[type-arg]
    """diffusers' FrozenDict: an OrderedDict subclass with an instance attribute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frozen = True


def _dangerous(report: ckptaudit.FileReport) -> list[tuple[str, str | None]]:
    return [(f.rule, f.global_name) for f in report.findings if f.severity is Severity.DANGEROUS]


def _agree_with_torch_when_allowlisting(path: pathlib.Path, names: list[str]) -> bool:
    """Allowlist ``names`` in ckptaudit and in torch; assert the verdicts agree."""
    policy = ckptaudit.load_policy().with_allowed(names)
    report = ckptaudit.audit_file(path, policy=policy)
    loads, error = torch_loads(path, [(resolve_name(n), n) for n in names])
    assert report.weights_only_compatible == loads, (names, error, report.findings)
    if not loads:
        assert report.predicted_error is not None and report.predicted_error in error
    return loads


# -- P1: numpy's pickle factories return another type than their own -------------------------

NUMPY_RANDOM: dict[str, Callable[[], Any]] = {
    "RandomState": lambda: np.random.RandomState(0),
    "Generator": lambda: np.random.default_rng(0),
    "Generator_SFC64": lambda: np.random.Generator(np.random.SFC64(1)),
    "MT19937": lambda: np.random.MT19937(2),
    "PCG64DXSM": lambda: np.random.PCG64DXSM(3),
}


@pytest.mark.parametrize("case", sorted(NUMPY_RANDOM))
def test_numpy_random_objects_allowlist_matches_torch(tmp_path: pathlib.Path, case: str) -> None:
    path = save({"rs": NUMPY_RANDOM[case]()}, tmp_path / f"{case}.pt")
    report = ckptaudit.audit_file(path)
    loads, error = torch_loads(path)
    assert report.weights_only_compatible == loads is False, error
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)
    names = list(report.unsafe_globals)
    # Exactly the listed globals are enough, and each of them is needed.
    assert _agree_with_torch_when_allowlisting(path, names)
    for missing in names:
        assert not _agree_with_torch_when_allowlisting(path, [n for n in names if n != missing])


def test_random_state_lists_the_type_build_needs(tmp_path: pathlib.Path) -> None:
    path = save({"rs": np.random.RandomState(0)}, tmp_path / "rs.pt")
    report = ckptaudit.audit_file(path)
    assert "numpy.random.mtrand.RandomState" in report.unsafe_globals
    build_types = {f.global_name for f in report.findings if f.opcode == "BUILD"}
    assert "numpy.random.mtrand.RandomState" in build_types
    assert (
        "numpy.random.mtrand.RandomState"
        not in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    )


_CTOR = "numpy.random._pickle"


@pytest.mark.parametrize(
    ("factory", "args", "returns"),
    [
        ("__randomstate_ctor", ("MT19937",), "numpy.random.mtrand.RandomState"),
        ("__generator_ctor", ("SFC64",), "numpy.random._generator.Generator"),
        ("__bit_generator_ctor", ("PCG64",), "numpy.random._pcg64.PCG64"),
        ("__bit_generator_ctor", ("Philox",), "numpy.random._philox.Philox"),
        ("__bit_generator_ctor", (), "numpy.random._mt19937.MT19937"),
    ],
)
def test_numpy_factories_by_name_build_the_type_torch_reports(
    tmp_path: pathlib.Path, factory: str, args: tuple[str, ...], returns: str
) -> None:
    # Older numpy pickled the bit generator by name: the type is known from the argument.
    body = global_(_CTOR, factory) + (lit(args) if args else empty_tuple()) + reduce()
    path = tmp_path / "factory.pt"
    path.write_bytes(torch_zip(wrap(body + empty_dict() + build())))
    report = ckptaudit.audit_file(path)
    assert returns in report.unsafe_globals
    assert not _agree_with_torch_when_allowlisting(path, [f"{_CTOR}.{factory}"])
    allowed = ckptaudit.audit_file(
        path, policy=ckptaudit.load_policy().with_allowed([f"{_CTOR}.{factory}"])
    )
    assert allowed.predicted_error is not None and f"<class '{returns}'>" in allowed.predicted_error


# -- P2: torch's operators kept as values ----------------------------------------------------

TORCH_OPS: dict[str, Callable[[], Any]] = {
    "tanh": lambda: {"act": torch.tanh},
    "partial_add": lambda: {"fn": functools.partial(torch.add, alpha=2)},
    "tensor_method": lambda: {"fn": torch.Tensor.add},
    "fft": lambda: {"fn": torch.fft.fft},
    "linalg": lambda: {"fn": torch.linalg.inv},
    "special": lambda: {"fn": torch.special.erf},
}


@pytest.mark.parametrize("case", sorted(TORCH_OPS))
def test_torch_operators_kept_as_values_are_not_dangerous(
    tmp_path: pathlib.Path, case: str
) -> None:
    path = save(TORCH_OPS[case](), tmp_path / f"{case}.pt")
    report = ckptaudit.audit_file(path)
    loads, error = torch_loads(path)
    assert report.weights_only_compatible == loads is False, error
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)
    assert _agree_with_torch_when_allowlisting(path, list(report.unsafe_globals))


def _p4(body: bytes) -> bytes:
    return wrap(body, 4)


def _dotted(name: str) -> bytes:
    """``torch._C`` + a dotted name, as protocol 4's STACK_GLOBAL can spell it."""
    return ref("torch._C", name, 4)


def _getattr(owner: str, attr: str) -> bytes:
    return (
        ref("builtins", "getattr", 4)
        + ref("torch._C", owner, 4)
        + lit(attr, 4)
        + b"\x86"
        + reduce()
    )


def _called(func: bytes, *args: Any) -> bytes:
    return _p4(func + lit(tuple(args), 4) + reduce())


@pytest.mark.parametrize(
    ("stream", "culprit"),
    [
        (_called(_dotted("_VariableFunctionsClass.from_file"), "/tmp/x"), "CKA301"),
        (_called(_getattr("_VariableFunctionsClass", "from_file"), "/tmp/x"), "CKA302"),
        (_called(_dotted("_VariableFunctionsClass.tanh"), 1.0), "CKA302"),
        (_called(_getattr("_VariableFunctionsClass", "tanh"), 1.0), "CKA302"),
        (_called(_getattr("TensorBase", "add"), 1.0, 2.0), "CKA302"),
        (_called(ref("torch._C._nn", "gelu", 4), 1.0), "CKA302"),
        (as_data(_dotted("_VariableFunctionsClass.from_file")), "CKA301"),
        (as_data(_dotted("_VariableFunctions._from_blob")), "CKA301"),
        (as_data(_dotted("TensorBase.apply_")), "CKA301"),
        (as_data(_dotted("_VariableFunctionsClass.tanh.__self__")), "CKA301"),
        (as_data(ref("torch._C", "import_ir_module", 4)), "CKA301"),
    ],
)
def test_calls_of_torch_operators_and_file_operators_stay_dangerous(
    stream: bytes, culprit: str
) -> None:
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS, report.findings
    assert culprit in {f.rule for f in report.findings if f.severity is Severity.DANGEROUS}


@pytest.mark.parametrize("lookalike", family("torch-operator-as-data"))
def test_torch_operators_by_dotted_name_as_data_are_not_dangerous(lookalike: Lookalike) -> None:
    report = ckptaudit.audit_bytes(lookalike.make())
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)


def test_file_operator_kept_as_value_is_dangerous(tmp_path: pathlib.Path) -> None:
    path = save({"fn": torch.from_file}, tmp_path / "from_file.pt")
    assert ckptaudit.audit_file(path).status is Status.DANGEROUS


def test_operators_named_for_files_or_code_stay_catalogued() -> None:
    words = ("file", "save", "load", "jit", "script", "blob", "pickle")
    names = [
        "_VariableFunctionsClass",
        "_VariableFunctions",
        "TensorBase",
        "_nn",
        "_fft",
        "_linalg",
        "_special",
        "_nested",
        "_sparse",
    ]
    found = []
    for owner in names:
        namespace = getattr(torch._C, owner)
        for member in dir(namespace):
            # Every member is exempt by name: none may be a module (torch._C._nn.os).
            assert not isinstance(getattr(namespace, member, None), types.ModuleType), member
            if any(word in member.lower() for word in words):
                found.append(member)
                assert danger_reason("torch._C", f"{owner}.{member}") is not None, member
    assert "from_file" in found
    assert danger_reason("torch._C", "_VariableFunctionsClass.tanh") is None


# -- P3: OrderedDict subclasses: REDUCE(cls, ()) then SETITEMS -------------------------------

MAPPINGS: dict[str, Callable[[], Any]] = {
    "model_output": lambda: {"outputs": ModelOutput(loss=torch.tensor(0.5))},
    "frozen_config": lambda: {"cfg": FrozenConfig(num_steps=10, schedule="linear")},
}


@pytest.mark.parametrize("case", sorted(MAPPINGS))
def test_ordered_dict_subclasses_are_incompatible_not_dangerous(
    tmp_path: pathlib.Path, case: str
) -> None:
    path = save(MAPPINGS[case](), tmp_path / f"{case}.pt")
    report = ckptaudit.audit_file(path)
    loads, error = torch_loads(path)
    assert report.weights_only_compatible == loads is False, error
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)
    # torch sets items only on dict, OrderedDict and Counter: allowlisting cannot work.
    assert any(f.remedy is Remedy.CONVERT for f in report.findings)
    assert not _agree_with_torch_when_allowlisting(path, list(report.unsafe_globals))


def _then_setitems(call: bytes, *, state: bytes = b"") -> bytes:
    return wrap(
        call + mark() + lit("a") + lit(1) + setitems() + (state + build() if state else b"")
    )


_SHAPES = [
    # A function called with no arguments, then filled like a mapping.
    ("uuid", "_ip_getnode", lambda g: _then_setitems(g + empty_tuple() + reduce())),
    # A class-like name called with arguments, or with a state that is not attributes.
    ("{}", "Runner", lambda g: _then_setitems(g + lit(("id",)) + reduce())),
    ("{}", "Runner", lambda g: _then_setitems(g + empty_tuple() + reduce(), state=lit("id"))),
    # No SETITEMS: a bare call of a class with no arguments.
    ("{}", "Runner", lambda g: wrap(g + empty_tuple() + reduce())),
    # All capitals: a constant or a function, not a class.
    ("{}", "RUN", lambda g: _then_setitems(g + empty_tuple() + reduce())),
    # One literal argument to a CamelCase class: what used to pass as an Enum lookup.
    ("{}", "Stage", lambda g: wrap(g + lit((2,)) + reduce())),
]


@pytest.mark.parametrize(("module", "name", "build"), _SHAPES)
@pytest.mark.parametrize("pool", [True, False], ids=["known-pool", "user-module"])
def test_no_shape_of_a_call_exempts_it(module: str, name: str, build: Any, pool: bool) -> None:
    """The verdict depends on where the code lives, never on how the call looks: in the
    standard library a call not tabled inert is dangerous (default-deny); in a user's module
    it is untrusted code, whatever its shape (Enum lookup, mapping, no arguments)."""
    where = module.format("mailcap" if pool else "mylib.tools") if "{}" in module else module
    report = ckptaudit.audit_bytes(build(global_(where, name)))
    rules = {f.rule for f in report.findings}
    if where.startswith("mylib"):
        assert report.status is Status.INCOMPATIBLE, report.findings
        assert "CKA304" in rules and "CKA302" not in rules
    else:
        assert report.status is Status.DANGEROUS, report.findings
        assert "CKA302" in rules


def test_mapping_subclass_with_attribute_state_is_not_dangerous() -> None:
    report = ckptaudit.audit_bytes(named("mapping-subclass-with-attribute-state").make())
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)


# --- Second library campaign: bound methods, Arrow/pandas rebuilders, zips of other layouts


def test_bound_method_of_a_saved_object_is_not_dangerous(tmp_path: pathlib.Path) -> None:
    """LazyLinear keeps a bound method; Python pickles it as getattr(<the module>, 'name')."""
    path = save(torch.nn.LazyLinear(3), tmp_path / "lazy.pt")
    report = ckptaudit.audit_file(path)
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)
    assert "builtins.getattr" in report.unsafe_globals
    assert not torch_loads(path, [])[0]


def test_bound_method_called_by_the_file_stays_dangerous() -> None:
    """getattr(<object>, 'name')(...): fetching is benign, calling what it fetched is not."""
    obj = ref("types", "SimpleNamespace", 4) + empty_tuple() + reduce()
    fetched = ref("builtins", "getattr", 4) + obj + lit("run", 4) + b"\x86" + reduce()
    report = ckptaudit.audit_bytes(_p4(fetched + lit(("x",), 4) + reduce()))
    assert report.status is Status.DANGEROUS
    assert "CKA302" in {f.rule for f in report.findings if f.severity is Severity.DANGEROUS}


@pytest.mark.parametrize("lookalike", family("library-data-rebuilder"))
def test_library_data_rebuilders_are_not_dangerous(lookalike: Lookalike) -> None:
    """What pandas (with pyarrow), sparse Series and mmengine configs pickle through."""
    report = ckptaudit.audit_bytes(lookalike.make())
    assert report.status is Status.INCOMPATIBLE, _dangerous(report)
    assert lookalike.name in report.unsafe_globals


def test_stable_baselines_layout_is_incompatible_and_its_torch_files_are_audited(
    tmp_path: pathlib.Path,
) -> None:
    """A Stable-Baselines3 model: a zip of a JSON `data` and torch.save files, no top folder."""
    policy_path = save({"w": torch.zeros(2)}, tmp_path / "policy.pth")
    good = zip_of({"data": b"{}", "policy.pth": policy_path.read_bytes()})
    path = tmp_path / "model.zip"
    path.write_bytes(good)
    report = ckptaudit.audit_file(path)
    assert report.status is Status.INCOMPATIBLE, report.findings
    assert "CKA103" in {f.rule for f in report.findings}
    assert not torch_loads(path, [])[0]
    # The same layout with a payload in the inner torch file's data.pkl.
    hostile = torch_zip(_p4(ref("os", "system", 4) + lit(("true",), 4) + reduce()))
    path.write_bytes(zip_of({"data": b"{}", "policy.pth": hostile}))
    report = ckptaudit.audit_file(path)
    assert report.status is Status.DANGEROUS, report.findings
