"""torch.distributed.checkpoint shards (``.distcp``): torch archives laid end to end.

DCP's FileSystemWriter appends one ``torch.save`` archive per item to a shard, each written
as if alone (its offsets count from its own first byte), and records in ``.metadata`` where
each starts; its loader reads every archive there with torch.load (``weights_only=False`` for
non-tensor items). torch.load of the shard itself fails, except when the first and last
archives have the same layout: then it finds the last one's directory at the first one's
offset and loads the first archive. Every archive is audited either way.
"""

from __future__ import annotations

import collections
import datetime
import io
import itertools
import pickle
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from support.containers import torch_zip
from support.loaders import audit_against_torch, recording_pickle_module, torch_loads
from support.opcodes import unicode, wrap
from support.payloads import BENIGN, HOSTILE, RAN

import ckptaudit
from ckptaudit.discovery import expand_paths
from ckptaudit.errors import LimitExceeded
from ckptaudit.findings import Status
from ckptaudit.formats import BytesSource
from ckptaudit.formats.ziparchive import archive_spans

pytestmark = pytest.mark.torch


def dcp_save(state_dict: dict[str, object], directory: Path) -> Path:
    """``dcp.save`` in this process (no process group: DCP warns and saves alone); the shard."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.save(state_dict, checkpoint_id=directory)
    return directory / "__0_0.distcp"


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real shard: two tensors of different sizes and three objects torch refuses."""
    state = {
        "model": {"w": torch.ones(2, 3), "b": torch.zeros(3)},
        "step": 7,
        "history": collections.deque([1, 2]),
        "when": datetime.datetime(2024, 1, 1, 12, 0),
    }
    return dcp_save(state, tmp_path_factory.mktemp("dcp"))


def test_a_shard_is_audited_not_an_error(shard: Path) -> None:
    loads, error = torch_loads(shard)
    report = ckptaudit.audit_file(shard)
    assert report.status is Status.INCOMPATIBLE, report.findings
    assert report.weights_only_compatible is loads is False
    assert report.predicted_error and report.predicted_error in error
    (fmt,) = [f for f in report.findings if f.rule == "CKA103"]
    assert "torch.distributed.checkpoint shard (5 torch archives laid end to end)" in fmt.message
    by_global = {f.global_name: f for f in report.findings if f.rule == "CKA201"}
    assert set(by_global) == {"collections.deque", "datetime.datetime"}
    assert set(report.unsafe_globals) == {"collections.deque", "datetime.datetime"}
    assert all(f.member and f.member.startswith("archive ") for f in by_global.values())


def test_each_archive_is_where_the_walk_finds_it(shard: Path) -> None:
    """The spans are the archives DCP wrote: torch.load reads each alone at its offset."""
    data = shard.read_bytes()
    spans = archive_spans(BytesSource(data), 100)
    assert spans is not None and len(spans) == 5
    assert spans[0].start == 0 and spans[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    loaded = []
    for span in spans:
        try:
            loaded.append(torch.load(io.BytesIO(data[span.start : span.end]), weights_only=True))
        except pickle.UnpicklingError as exc:  # the deque and the datetime, as predicted
            assert "deque" in str(exc) or "datetime" in str(exc)
    assert len(loaded) == 3 and 7 in loaded
    assert any(isinstance(v, torch.Tensor) and v.shape == (2, 3) for v in loaded)


def test_a_directory_search_finds_the_shards_and_the_metadata(shard: Path) -> None:
    found = {Path(p).name for p in expand_paths([shard.parent])}
    assert found == {"__0_0.distcp", ".metadata"}
    metadata = ckptaudit.audit_file(shard.parent / ".metadata")
    assert "torch.distributed.checkpoint.metadata.Metadata" in metadata.unsafe_globals


def test_a_hostile_archive_appended_to_a_shard_is_dangerous(shard: Path, tmp_path: Path) -> None:
    """DCP reads an archive wherever .metadata says one starts: one appended to a real shard
    is loaded (weights_only=False for a bytes item) by a loader pointed at its offset."""
    real = shard.read_bytes()
    data = real + torch_zip(HOSTILE, storages={})
    _, report = audit_against_torch(tmp_path, data, "__0_0.distcp")
    assert report.status is Status.DANGEROUS, report.findings
    dangerous = [f for f in report.findings if f.severity.name == "DANGEROUS"]
    assert dangerous and all(
        f.member == f"archive 6 of 6 at byte {len(real)}: data.pkl" for f in dangerous
    )
    stub = recording_pickle_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(io.BytesIO(data[len(real) :]), weights_only=False, pickle_module=stub)
    assert any(RAN in call for call in stub.log), stub.log


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_shard_truncated_inside_an_archive_is_an_error(
    shard: Path, tmp_path: Path, where: str
) -> None:
    data = shard.read_bytes()
    spans = archive_spans(BytesSource(data), 100)
    assert spans is not None
    span = spans[-1] if where == "last" else spans[2]
    cut = data[: (span.start + span.end) // 2]
    _, report = audit_against_torch(tmp_path, cut, "__0_0.distcp")
    assert report.status is Status.ERROR
    assert any(f.rule == "CKA401" for f in report.findings)


def test_a_shard_torch_reads_as_its_first_archive(tmp_path: Path) -> None:
    """Same-sized tensors give archives of the same layout: torch.load of the shard finds the
    last one's directory at the first one's offset and loads the first tensor."""
    path = dcp_save({"a": torch.ones(4), "b": torch.zeros(4)}, tmp_path / "same")
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded, torch.ones(4)) or torch.equal(loaded, torch.zeros(4))
    report = ckptaudit.audit_file(path)
    assert report.status is Status.COMPATIBLE and report.weights_only_compatible
    (anomaly,) = [f for f in report.findings if f.rule == "CKA105"]
    assert "2 torch archives laid end to end" in anomaly.message
    assert "torch.load reads the first one" in anomaly.message


def test_an_archive_torch_does_not_read_is_still_audited(tmp_path: Path) -> None:
    """A benign archive, then a hostile one of the same layout: torch.load loads the benign
    one, a DCP loader pointed at the second runs the payload."""
    benign = next(p for k in range(200) if len(p := wrap(unicode("x" * k))) == len(HOSTILE))
    first, second = torch_zip(benign, storages={}), torch_zip(HOSTILE, storages={})
    assert len(first) == len(second)
    _, report = audit_against_torch(tmp_path, first + second, "shard.distcp")
    assert report.weights_only_compatible  # torch loads the first archive
    assert report.status is Status.DANGEROUS, report.findings
    assert any(
        f.member == f"archive 2 of 2 at byte {len(first)}: data.pkl"
        for f in report.findings
        if f.severity.name == "DANGEROUS"
    )


def test_the_walk_is_bounded_and_strict() -> None:
    archive = torch_zip(BENIGN, storages={})
    assert archive_spans(BytesSource(archive), 10) == archive_spans(BytesSource(archive), 1)
    single = archive_spans(BytesSource(archive), 1)
    assert single is not None and len(single) == 1
    with pytest.raises(LimitExceeded):
        archive_spans(BytesSource(archive * 3), 2)
    three = archive_spans(BytesSource(archive * 3), 3)
    assert three is not None and [s.start for s in three] == [0, len(archive), 2 * len(archive)]
    # Bytes between two archives, or before the first: not archives laid end to end.
    assert archive_spans(BytesSource(archive + b"\0" + archive), 10) is None
    assert archive_spans(BytesSource(b"junk" + archive), 10) is None


def test_a_hostile_archive_after_a_gap_is_an_error(tmp_path: Path) -> None:
    """Not archives end to end, and no directory torch reads: an error, never a pass."""
    data = torch_zip(BENIGN, storages={}) + b"\0" + torch_zip(HOSTILE, storages={})
    _, report = audit_against_torch(tmp_path, data, "shard.distcp")
    assert report.status is Status.ERROR
