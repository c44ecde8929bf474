"""Audits on a real Dask cluster (LocalCluster on 127.0.0.1) equal the local audit."""

from __future__ import annotations

import collections
import dataclasses
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

import oracle_types as ot

from ckptaudit.cli import EXIT_FAIL, main
from ckptaudit.cluster import audit_on_dask, iter_audit_on_dask
from ckptaudit.errors import UsageError
from ckptaudit.findings import AuditStats, FileReport, Status
from ckptaudit.runner import audit_paths

pytestmark = [pytest.mark.torch, pytest.mark.slow]  # a Dask cluster starts for the module


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        protocol="tcp",
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=20)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A mixed directory: compatible, incompatible, dangerous and unreadable files."""
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("many")
    objects: list[Any] = [
        {"step": 1, "weight": torch.zeros(2)},
        {"config": ot.Config()},
        collections.OrderedDict(a=1),
        collections.deque([1, 2]),
    ]
    paths: list[str] = []
    for i in range(23):
        path = root / f"ckpt{i:02d}.pt"
        if i % 7 == 6:
            path.write_bytes(pickle.dumps(_Payload(), protocol=2))  # dangerous
        elif i % 11 == 10:
            path.write_bytes(b"\x00\x01 not a checkpoint")  # error
        else:
            torch.save(objects[i % len(objects)], path)
        paths.append(str(path))
    return paths


class _Payload:
    """Pickles as a call of os.system (never unpickled here)."""

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("true",))


def _comparable(reports: list[FileReport]) -> list[FileReport]:
    return [dataclasses.replace(r, stats=AuditStats()) for r in reports]


def test_same_reports_in_the_same_order(scheduler: str, files: list[str]) -> None:
    local = audit_paths(files, jobs=1)
    # Small batches and a small window: many tasks, submitted as earlier ones are consumed.
    remote = list(iter_audit_on_dask(files, scheduler, batch_size=3, in_flight=2))
    assert [r.path for r in remote] == files
    assert _comparable(remote) == _comparable(local)
    assert {r.status for r in remote} == {
        Status.COMPATIBLE,
        Status.INCOMPATIBLE,
        Status.DANGEROUS,
        Status.ERROR,
    }
    assert audit_on_dask([], scheduler) == []


def test_runner_and_cli(
    scheduler: str, files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(Path(files[0]).parent)
    local = audit_paths([directory], jobs=1)
    remote = audit_paths([directory], dask=scheduler)
    assert _comparable(remote) == _comparable(local)
    code = main(["audit", "--no-progress", "--format", "json", "--dask", scheduler, directory])
    assert code == EXIT_FAIL
    assert capsys.readouterr().out.count('"path"') == len(files)


def test_unreachable_scheduler_is_a_usage_error(files: list[str]) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match="cannot reach"):
        audit_on_dask(files[:1], f"tcp://127.0.0.1:{port}", connect_timeout=2)
