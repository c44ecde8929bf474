"""Round trips over the oracle corpus: migrate, load with weights_only=True, compare every
tensor and every converted value with the object the test saved.

Only ``torch.load(weights_only=True)`` is ever called; nothing is loaded with
weights_only=False.
"""

from __future__ import annotations

import json
import pathlib
import warnings
from typing import Any

import pytest
import torch
from migrate_helpers import SLOW, assert_same, plain, sharing
from support import oracle_corpus as oracle

import ckptaudit
from ckptaudit.findings import Status

FORMATS = {
    "zip-p2": {"pickle_protocol": 2},
    "zip-p4": {"pickle_protocol": 4},
    "legacy": {"_use_new_zipfile_serialization": False},
}


def _load(path: pathlib.Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=True)


def _roundtrip(tmp_path: pathlib.Path, case: str, fmt: str) -> tuple[Any, Any, ckptaudit.Manifest]:
    obj = oracle.CASES[case]()
    src = tmp_path / f"{case}.pt"
    torch.save(obj, src, **FORMATS[fmt])
    manifest = ckptaudit.migrate(src, tmp_path / "out.pt")
    return obj, _load(tmp_path / "out.pt"), manifest


@pytest.mark.parametrize("case", sorted(oracle.CASES))
def test_every_oracle_case_migrates_and_loads(tmp_path: pathlib.Path, case: str) -> None:
    obj, loaded, manifest = _roundtrip(tmp_path, case, "zip-p2")
    assert_same(plain(obj), loaded)
    assert sharing(plain(obj)) == sharing(loaded)
    assert ckptaudit.audit_file(tmp_path / "out.pt").status is Status.COMPATIBLE
    assert any("torch" in v for v in manifest.verified)
    written = json.loads((tmp_path / "out.pt.migration.json").read_text())
    assert written["schema"] == "ckptaudit-migration/1"
    assert len(written["tensors"]) == len(manifest.tensors)


@SLOW
@pytest.mark.parametrize("fmt", ["zip-p4", "legacy"])
@pytest.mark.parametrize("case", sorted(oracle.CASES))
def test_other_protocols_and_the_legacy_format(tmp_path: pathlib.Path, case: str, fmt: str) -> None:
    obj, loaded, manifest = _roundtrip(tmp_path, case, fmt)
    assert_same(plain(obj), loaded)
    assert sharing(plain(obj)) == sharing(loaded)
    assert manifest.conversions[0].path == "(file)"


def test_manifest_says_what_each_conversion_became(tmp_path: pathlib.Path) -> None:
    import collections
    import datetime

    import oracle_types as ot

    src = tmp_path / "x.pt"
    torch.save(
        {
            "stage": ot.Stage.ACTIVE,
            "d": collections.deque([1], maxlen=3),
            "t": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "m": ot.Tiny(),
        },
        src,
    )
    manifest = ckptaudit.migrate(src, tmp_path / "y.pt", dry_run=True)
    by_path = {c.path: c for c in manifest.conversions}
    assert by_path["root['stage']"].note == "the pickle holds the member's value, not its name"
    assert by_path["root['d']"].dropped == ("maxlen=3",)
    assert by_path["root['t']"].became == "str (ISO 8601)"
    module = by_path["root['m']"]
    assert module.became == "state_dict (3 tensors)"
    assert "attribute fc.in_features=2" in module.dropped  # never silently dropped
    assert not (tmp_path / "y.pt").exists() and not (tmp_path / "y.pt.migration.json").exists()


def test_datetime_timestamps_only_where_a_zone_is_known(tmp_path: pathlib.Path) -> None:
    import datetime

    aware = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    naive = datetime.datetime(2024, 5, 1, 12, 0, 0, 250001)
    src = tmp_path / "t.pt"
    torch.save({"aware": aware, "naive": naive}, src)
    options = ckptaudit.MigrateOptions(datetime="timestamp")
    ckptaudit.migrate(src, tmp_path / "a.pt", options=options)
    got = _load(tmp_path / "a.pt")
    assert got == {"aware": aware.timestamp(), "naive": naive.isoformat()}
    options = ckptaudit.MigrateOptions(datetime="timestamp", assume_timezone="UTC")
    ckptaudit.migrate(src, tmp_path / "b.pt", options=options)
    assert (
        _load(tmp_path / "b.pt")["naive"] == naive.replace(tzinfo=datetime.timezone.utc).timestamp()
    )


def test_a_migrated_file_migrates_to_the_same_bytes(tmp_path: pathlib.Path) -> None:
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    torch.save(oracle.CASES["nested_mix"]() | {"w": oracle.linear()}, tmp_path / "a" / "m.pt")
    ckptaudit.migrate(tmp_path / "a" / "m.pt", tmp_path / "b" / "m.pt")
    again = ckptaudit.migrate(tmp_path / "b" / "m.pt", tmp_path / "c" / "m.pt")
    assert (tmp_path / "b" / "m.pt").read_bytes() == (tmp_path / "c" / "m.pt").read_bytes()
    assert again.conversions == () and again.status_before == "compatible"


def test_tied_weights_views_and_parameters_keep_their_sharing(tmp_path: pathlib.Path) -> None:
    base = torch.nn.Parameter(torch.arange(12.0).reshape(3, 4))
    obj = {"w": base, "tied": base, "row": base[1], "t": base.t(), "cfg": {"a": 1}}
    torch.save(obj, tmp_path / "s.pt", _use_new_zipfile_serialization=False)
    ckptaudit.migrate(tmp_path / "s.pt", tmp_path / "o.pt")
    got = _load(tmp_path / "o.pt")
    assert got["w"] is got["tied"]
    assert got["row"].untyped_storage().data_ptr() == got["w"].untyped_storage().data_ptr()
    assert got["t"].stride() == (1, 4) and got["row"].storage_offset() == 4
    assert_same(plain(obj), got)
