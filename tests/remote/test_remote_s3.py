"""Audits over S3 against moto's S3 server on 127.0.0.1 (through a byte-counting proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

from remote_servers import MIB, S3, comparable

import ckptaudit
from ckptaudit.audit import audit_url
from ckptaudit.cli import EXIT_FAIL, main
from ckptaudit.discovery import expand_inputs
from ckptaudit.findings import Status
from ckptaudit.runner import audit_paths

pytestmark = [pytest.mark.torch, pytest.mark.slow]  # moto's server starts for the module


@pytest.mark.parametrize("name", ["config.pt", "legacy.pt", "big.pt"])
def test_same_report_as_local(s3: S3, checkpoints: Path, name: str) -> None:
    url = f"s3://{s3.bucket}/runs/{name}"
    remote = audit_url(url, storage_options=s3.storage_options)
    local = ckptaudit.audit_file(checkpoints / name)
    assert remote.path == url
    assert comparable(remote) == comparable(local)


def test_one_gib_checkpoint_transfers_under_one_mib(s3: S3) -> None:
    s3.proxy.reset()
    report = audit_url(f"s3://{s3.bucket}/runs/big.pt", storage_options=s3.storage_options)
    on_the_wire = s3.proxy.reset()  # bodies plus HTTP headers of every response
    print(f"\nS3 big.pt: body bytes {report.stats.bytes_read}, on the wire {on_the_wire}")
    assert report.status is Status.COMPATIBLE
    assert report.stats.tensor_bytes == 1 << 30
    assert report.stats.bytes_read < MIB
    assert on_the_wire < MIB


def test_glob_and_prefix_through_runner_and_cli(
    s3: S3, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # How a user points the CLI at another endpoint: botocore's standard variable.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    names = ["big.pt", "config.pt", "legacy.pt"]
    expected = [f"s3://{s3.bucket}/runs/{n}" for n in names]
    assert expand_inputs([f"s3://{s3.bucket}/runs/"]) == expected
    reports = audit_paths([f"s3://{s3.bucket}/runs/*.pt"], jobs=1)
    assert [r.path for r in reports] == expected
    assert [r.status for r in reports] == [
        Status.COMPATIBLE,
        Status.INCOMPATIBLE,
        Status.INCOMPATIBLE,
    ]
    assert main(["audit", "--no-progress", f"s3://{s3.bucket}/runs/*.pt"]) == EXIT_FAIL
    out = capsys.readouterr().out
    assert "3 files audited" in out
    assert "oracle_types.Config" in out


def test_missing_key_is_an_error_report(s3: S3) -> None:
    report = audit_url(f"s3://{s3.bucket}/runs/nope.pt", storage_options=s3.storage_options)
    assert report.status is Status.ERROR
    assert "cannot open" in (report.error or "")
