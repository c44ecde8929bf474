"""The verdict matches torch: a corpus saved with real torch, judged by ckptaudit and by torch.

Only ``torch.load(weights_only=True)`` is ever called (safe: torch's restricted unpickler);
nothing is loaded with weights_only=False.
"""

from __future__ import annotations

import collections
import io
import pathlib
import pickle

import oracle_types as ot
import pytest
import torch
from support.loaders import resolve_name, save, torch_loads
from support.oracle_corpus import CASES, linear

import ckptaudit
from ckptaudit.findings import Remedy, Status

pytestmark = pytest.mark.torch


PROTOCOLS = (2, 3, 4, 5)
SHORT_LIST = ("clean_state_dict", "dataclass", "deque", "enum", "optimizer_state")


def _cases() -> list[tuple[str, int, bool]]:
    out = [(name, 2, False) for name in CASES]
    out += [(name, p, False) for name in SHORT_LIST for p in PROTOCOLS if p != 2]
    out += [(name, 2, True) for name in SHORT_LIST]
    return out


@pytest.mark.parametrize(("case", "protocol", "legacy"), _cases(), ids=lambda v: str(v))
def test_verdict_matches_torch(
    tmp_path: pathlib.Path, case: str, protocol: int, legacy: bool
) -> None:
    path = save(
        CASES[case](),
        tmp_path / f"{case}.pt",
        pickle_protocol=protocol,
        _use_new_zipfile_serialization=not legacy,
    )
    report = ckptaudit.audit_file(path)
    loads, error = torch_loads(path)
    assert report.status is not Status.ERROR, report.error
    assert report.weights_only_compatible == loads, (error, report.findings)
    assert report.status in (Status.COMPATIBLE if loads else Status.INCOMPATIBLE, Status.DANGEROUS)
    if not loads:
        assert report.findings, "an incompatible verdict must name what is wrong"
        assert report.predicted_error
    if protocol == 2 and not legacy:
        try:
            torch_set = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except pickle.UnpicklingError:
            return  # torch's scanner stops at opcodes it does not know (LONG4)
        ours = set(report.unsafe_globals)
        # ckptaudit also lists types BUILD needs that the pickle never names (numpy dtypes).
        build_only = {f.global_name for f in report.findings if f.opcode == "BUILD"}
        assert torch_set <= ours
        assert ours - torch_set <= build_only


@pytest.mark.parametrize("case", sorted(CASES))
def test_allowlisting_the_unsafe_globals_matches_torch(tmp_path: pathlib.Path, case: str) -> None:
    """Allowlist exactly what ckptaudit lists, in ckptaudit and in torch: same verdict, and
    the remedy says in advance whether allowlisting is enough."""
    path = save(CASES[case](), tmp_path / f"{case}.pt")
    report = ckptaudit.audit_file(path)
    if report.weights_only_compatible or not report.unsafe_globals:
        pytest.skip("nothing to allowlist")
    names = list(report.unsafe_globals)
    policy = ckptaudit.load_policy().with_allowed(names)
    allowed_report = ckptaudit.audit_file(path, policy=policy)
    loads, error = torch_loads(path, [resolve_name(n) for n in names])
    assert allowed_report.weights_only_compatible == loads, (error, allowed_report.findings)
    needs_convert = any(f.remedy is Remedy.CONVERT for f in report.findings)
    if "builtins.getattr" in names:
        # Allowlisting getattr would work, but ckptaudit never advises it: convert instead.
        assert needs_convert
    else:
        assert needs_convert == (not loads), (error, report.findings)


def test_audit_object_matches_audit_of_saved_file(tmp_path: pathlib.Path) -> None:
    obj = {"config": ot.Config(), "weights": linear()}
    from_object = ckptaudit.audit_object(obj)
    from_file = ckptaudit.audit_file(save(obj, tmp_path / "x.pt"))
    assert from_object.unsafe_globals == from_file.unsafe_globals == ("oracle_types.Config",)
    assert [f.paths for f in from_object.findings] == [f.paths for f in from_file.findings]


def test_protocol_4_is_resave(tmp_path: pathlib.Path) -> None:
    path = save(linear(), tmp_path / "p4.pt", pickle_protocol=4)
    report = ckptaudit.audit_file(path)
    opcode_findings = [f for f in report.findings if f.rule == "CKA204"]
    assert opcode_findings and all(f.remedy is Remedy.RESAVE for f in opcode_findings)
    assert report.predicted_error is not None
    assert report.predicted_error.startswith("Unsupported operand")
    _, error = torch_loads(path)
    assert report.predicted_error in error


def test_predicted_error_is_torchs_first_error(tmp_path: pathlib.Path) -> None:
    for case in ("dataclass", "deque", "datetime_naive", "whole_module"):
        path = save(CASES[case](), tmp_path / f"{case}.pt")
        report = ckptaudit.audit_file(path)
        _, error = torch_loads(path)
        assert report.predicted_error is not None
        assert report.predicted_error in error, (report.predicted_error, error)


def test_legacy_format_reads_all_five_pickles(tmp_path: pathlib.Path) -> None:
    path = save(
        {"config": ot.Config(), "w": linear()},
        tmp_path / "legacy.pt",
        _use_new_zipfile_serialization=False,
    )
    report = ckptaudit.audit_file(path)
    assert report.format == "torch-legacy"
    assert report.unsafe_globals == ("oracle_types.Config",)
    assert report.top_level[0].key == "config"
    assert report.stats.tensors == 2


def test_plain_pickle_is_not_loadable_by_torch(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    report = ckptaudit.audit_file(path)
    assert report.format == "pickle"
    assert report.weights_only_compatible is False
    assert torch_loads(path)[0] is False


def test_tensor_bytes_are_never_read(tmp_path: pathlib.Path) -> None:
    big = {"w": torch.zeros(4 * 1024 * 1024)}  # 16 MiB of storage
    path = save(big, tmp_path / "big.pt")
    report = ckptaudit.audit_file(path)
    assert report.weights_only_compatible
    assert report.stats.tensor_bytes == 16 * 1024 * 1024
    assert report.stats.bytes_read < 64 * 1024


def test_bytes_api_equals_file_api(tmp_path: pathlib.Path) -> None:
    path = save({"d": collections.deque([1])}, tmp_path / "d.pt")
    a = ckptaudit.audit_file(path)
    b = ckptaudit.audit_bytes(path.read_bytes())
    assert (a.status, a.unsafe_globals) == (b.status, b.unsafe_globals)
    assert io.BytesIO  # BytesIO-based torch.save is covered by audit_object
