"""Benign patterns are recognised by their arguments; the same callables with other
arguments stay dangerous."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from support.loaders import audit_against_torch
from support.lookalikes import LOOKALIKES, Lookalike, family, named

import ckptaudit
from ckptaudit.findings import Remedy, Severity, Status

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("lookalike", family("typing"))
def test_typing_constructs_are_not_dangerous(lookalike: Lookalike) -> None:
    report = ckptaudit.audit_bytes(lookalike.make())
    assert report.status is Status.INCOMPATIBLE, report.findings
    catalogued = {
        "_operator.getitem",
        "_operator.or_",
        "types.GenericAlias",
        "builtins.type",
        "functools.reduce",
        "_functools.reduce",
    }
    for f in report.findings:
        if f.global_name in catalogued:
            assert f.remedy is Remedy.CONVERT  # never advise allowlisting these


def test_timezone_aware_datetime_is_not_dangerous() -> None:
    report = ckptaudit.audit_bytes(named("timezone-aware-datetime").make())
    assert report.status is Status.INCOMPATIBLE
    getattr_finding = [f for f in report.findings if f.global_name == "builtins.getattr"]
    assert getattr_finding and getattr_finding[0].remedy is Remedy.CONVERT


@pytest.mark.parametrize(
    ("stream", "culprit"),
    [
        # getitem on sys.modules, not on a typing construct
        (b"\x80\x02c_operator\ngetitem\ncsys\nmodules\nX\x02\x00\x00\x00os\x86R.", "sys.modules"),
        # reduce with os.system instead of operator.or_
        (b"\x80\x02cfunctools\nreduce\ncos\nsystem\nX\x02\x00\x00\x00id\x85\x86R.", "os.system"),
        # type() with three arguments builds a class
        (b"\x80\x02c__builtin__\ntype\nX\x01\x00\x00\x00X)}\x87R.", "builtins.type"),
        # GenericAlias whose origin is fine but whose argument is a dangerous callable
        (b"\x80\x02ctypes\nGenericAlias\nc__builtin__\nlist\ncos\nsystem\n\x85\x86R.", "os.system"),
    ],
)
def test_the_same_callables_with_other_arguments_stay_dangerous(
    stream: bytes, culprit: str
) -> None:
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS
    assert culprit in {f.global_name for f in report.findings if f.severity is Severity.DANGEROUS}


def test_common_stdlib_and_torch_values_are_not_dangerous(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import logging
    import time

    import torch

    values = {
        "localtime": time.localtime(0),
        "logger": logging.getLogger("train"),
        "max": torch.max(torch.ones(2, 2), 0),
    }
    path = tmp_path / "values.pt"
    torch.save(values, path)
    report = ckptaudit.audit_file(path)
    assert report.status is Status.INCOMPATIBLE, [
        (f.rule, f.global_name) for f in report.findings if f.severity is Severity.DANGEROUS
    ]


@pytest.mark.parametrize("lookalike", family("library-reconstructor"))
def test_library_reconstructors_are_not_dangerous(lookalike: Lookalike) -> None:
    report = ckptaudit.audit_bytes(lookalike.make())
    assert report.status is not Status.DANGEROUS, report.findings


@pytest.mark.parametrize(
    "name", [b"pandas\nread_pickle", b"pandas\neval", b"pandas.io.pickle\n_unpickle_anything"]
)
def test_dangerous_pandas_functions_stay_dangerous(name: bytes) -> None:
    stream = b"\x80\x02c" + name + b"\nX\x01\x00\x00\x00x\x85R."
    assert ckptaudit.audit_bytes(stream).status is Status.DANGEROUS


def test_native_nn_ops_held_by_modules_are_not_dangerous() -> None:
    report = ckptaudit.audit_bytes(named("native-nn-op-as-attribute").make())
    assert report.status is Status.INCOMPATIBLE
    # ... while torch._C itself stays catalogued (JIT import, file loading).
    jit = ckptaudit.audit_bytes(b"\x80\x02ctorch._C\nimport_ir_module\nX\x01\x00\x00\x00x\x85R.")
    assert jit.status is Status.DANGEROUS


# --------------------------------------------------------------------------- look-alikes
# Files of the red-team campaigns' kind that are benign (closed in d413eec, 55da442, cde38f1).


@pytest.mark.parametrize("lookalike", family("torch-saved"))
def test_benign_lookalike_is_not_dangerous(tmp_path: Path, lookalike: Lookalike) -> None:
    path, report = audit_against_torch(tmp_path, lookalike.make(), lookalike.filename)
    assert report.status is Status(lookalike.expect), report.findings
    if path.read_bytes().startswith(b"PK"):  # torch's own list of what an allowlist needs
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        assert sorted(report.unsafe_globals) == sorted(unsafe)


@pytest.mark.parametrize("lookalike", family("enum-and-mapping"))
def test_enum_and_mapping_lookalikes_stay_not_dangerous(
    tmp_path: Path, lookalike: Lookalike
) -> None:
    data = lookalike.make()
    assert lookalike.make_value is not None
    assert pickle.loads(data) == lookalike.make_value()
    _, report = audit_against_torch(tmp_path, data, lookalike.filename)
    assert report.status is Status.INCOMPATIBLE, report.findings


def test_user_enum_lookup_stays_not_dangerous() -> None:
    """The trade-off kept: a CamelCase class of the user's code called with one literal is
    an Enum lookup (checkpoints are full of them), so it is only not allowlisted."""
    report = ckptaudit.audit_bytes(named("user-enum-lookup").make())
    assert report.status is Status.INCOMPATIBLE, report.findings


def test_lookalike_names_are_unique() -> None:
    """The names are the test ids: one list, no two files under one name."""
    names = [item.name for item in LOOKALIKES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
