"""Audits over HTTP against a real Range-honouring server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

from remote_servers import MIB, HttpServer, comparable

import ckptaudit
from ckptaudit.audit import audit_url
from ckptaudit.cli import EXIT_FAIL, EXIT_OK, EXIT_UNREADABLE, main
from ckptaudit.findings import Status
from ckptaudit.runner import audit_paths

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("name", ["config.pt", "legacy.pt", "big.pt"])
def test_same_report_as_local(http_server: HttpServer, checkpoints: Path, name: str) -> None:
    http_server.reset()
    url = f"{http_server.url}/{name}"
    remote = audit_url(url)
    local = ckptaudit.audit_file(checkpoints / name)
    assert remote.path == url
    assert comparable(remote) == comparable(local)
    # The client counts what it received; the server may have sent more when a slow read was
    # abandoned and retried (seen on a loaded machine). Every GET asked for a range.
    assert 0 < remote.stats.bytes_read <= http_server.sent[f"/{name}"] < MIB
    assert all(r.startswith("bytes=") for r in http_server.ranges[f"/{name}"])


def test_dataclass_checkpoint_is_incompatible(http_server: HttpServer) -> None:
    report = audit_url(f"{http_server.url}/config.pt")
    assert report.status is Status.INCOMPATIBLE
    assert report.unsafe_globals == ("oracle_types.Config",)
    assert any("config" in path for f in report.findings for path in f.paths)


def test_one_gib_checkpoint_transfers_under_one_mib(
    http_server: HttpServer, checkpoints: Path
) -> None:
    http_server.reset()
    report = audit_url(f"{http_server.url}/big.pt")
    sent = http_server.sent["/big.pt"]
    requests = len(http_server.ranges["/big.pt"])
    print(f"\nHTTP big.pt: {sent} bytes sent by the server in {requests} ranged GETs")
    assert report.status is Status.COMPATIBLE
    assert report.stats.tensor_bytes == 1 << 30
    assert (checkpoints / "big.pt").stat().st_size > 1 << 30
    assert sent < MIB
    assert report.stats.bytes_read < MIB
    assert requests <= 4


def test_runner_and_cli_take_urls(
    http_server: HttpServer, checkpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [
        f"{http_server.url}/big.pt",
        str(checkpoints / "config.pt"),
        f"{http_server.url}/config.pt",
    ]
    reports = audit_paths(urls, jobs=1)
    assert [r.path for r in reports] == urls
    assert [r.status for r in reports] == [
        Status.COMPATIBLE,
        Status.INCOMPATIBLE,
        Status.INCOMPATIBLE,
    ]
    # Enough URLs for the process pool: each worker opens its own connections.
    pooled = audit_paths([f"{http_server.url}/config.pt"] * 8 + urls, jobs=2)
    assert [r.status for r in pooled[:8]] == [Status.INCOMPATIBLE] * 8
    assert [comparable(r) for r in pooled[8:]] == [comparable(r) for r in reports]

    assert main(["audit", "--no-progress", f"{http_server.url}/big.pt"]) == EXIT_OK
    assert "read " in capsys.readouterr().out
    assert main(["audit", "--format", "json", f"{http_server.url}/config.pt"]) == EXIT_FAIL
    data = json.loads(capsys.readouterr().out)
    (only,) = data["files"]
    assert only["unsafe_globals"] == ["oracle_types.Config"]
    assert 0 < only["stats"]["bytes_read"] < MIB


def test_missing_object_is_an_error_report(http_server: HttpServer) -> None:
    report = audit_url(f"{http_server.url}/missing.pt")
    assert report.status is Status.ERROR
    assert "cannot open" in (report.error or "")
    assert main(["audit", "--no-progress", f"{http_server.url}/missing.pt"]) == EXIT_UNREADABLE


@pytest.mark.parametrize("advertised", [True, False], ids=["accept-ranges-none", "silent"])
def test_server_without_ranges_is_refused_not_downloaded(
    http_server: HttpServer, advertised: bool
) -> None:
    """A server that answers every GET with the whole 1 GiB: an error, not a download."""
    http_server.reset()
    http_server.honour_ranges = False
    http_server.advertise_no_ranges = advertised
    try:
        report = audit_url(f"{http_server.url}/big.pt")
    finally:
        http_server.honour_ranges = True
    print(
        f"\nno ranges ({advertised=}): {report.error}; read {report.stats.bytes_read}, "
        f"server sent {sum(http_server.sent.values())}"
    )
    assert report.status is Status.ERROR
    assert "range" in (report.error or ""), report.error
    # The client stops reading after what it asked for; socket buffers bound the rest.
    assert report.stats.bytes_read < 2 * MIB
    assert sum(http_server.sent.values()) < 64 * MIB


@pytest.mark.slow
def test_prefetch_batches_small_reads(http_server: HttpServer, checkpoints: Path) -> None:
    """Scattered small reads (zip local headers) can be fetched as one concurrent batch."""
    from ckptaudit.formats.remote import RemoteSource

    http_server.reset()
    source = RemoteSource(f"{http_server.url}/big.pt", readahead=4096)
    try:
        tail = source.read_at(source.size - 1024, 1024)
        assert tail == (checkpoints / "big.pt").read_bytes()[-1024:]
        ranges = [(offset, 30) for offset in range(0, 1 << 30, 1 << 27)]  # 8 ranges
        before = len(http_server.ranges["/big.pt"])
        source.prefetch(ranges)
        assert len(http_server.ranges["/big.pt"]) == before + len(ranges)
        with open(checkpoints / "big.pt", "rb") as handle:
            for offset, n in ranges:
                handle.seek(offset)
                assert source.read_at(offset, n) == handle.read(n)
        assert len(http_server.ranges["/big.pt"]) == before + len(ranges)  # all from cache
        # The server's tally can also hold the tail of an earlier test's responses (one
        # server serves the module); the client's own count is exact.
        assert source.bytes_read == 4096 + 8 * 30 <= sum(http_server.sent.values()) < 1 << 20
    finally:
        source.close()
