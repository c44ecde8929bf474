"""Audit many files on an existing Dask cluster (``ckptaudit audit --dask ADDRESS``).

Files (local paths that every worker sees, or URLs each worker reads by ranged requests)
are cut into batches; a bounded number of batches is in flight at once, so a list of a
million checkpoints neither floods the scheduler with futures nor waits on one straggler
to submit more. Reports come back in input order. Needs ``distributed``
(the ``dask`` extra); the workers need ckptaudit installed too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from ckptaudit.audit import audit_path
from ckptaudit.errors import UsageError, missing_extra
from ckptaudit.findings import FileReport
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy.torch_policy import Policy, load_policy

__all__ = ["audit_on_dask", "iter_audit_on_dask"]

DEFAULT_BATCH = 64
"""Files per Dask task: large enough to amortise scheduling (~1 ms a task), small enough
to balance a cluster."""


def _audit_batch(paths: Sequence[str], policy: Policy, limits: Limits | None) -> list[FileReport]:
    """One Dask task: audit a batch of files on a worker."""
    return [audit_path(p, policy=policy, limits=limits) for p in paths]


def _client(address: str, timeout: float) -> Any:
    try:
        from distributed import Client as _Client
    except ImportError:
        raise missing_extra("--dask", "dask") from None
    try:
        client: Any = _Client  # distributed is untyped
        return client(address, set_as_default=False, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def iter_audit_on_dask(
    files: Sequence[str],
    address: str,
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    batch_size: int = DEFAULT_BATCH,
    in_flight: int | None = None,
    connect_timeout: float = 30.0,
) -> Iterator[FileReport]:
    """Yield one report per file, in input order, audited on the cluster at ``address``.

    Args:
        files: local paths (visible to every worker) or URLs.
        address: the scheduler, e.g. ``tcp://10.0.0.5:8786``.
        policy: the torch policy (default: newest shipped); sent to the workers once.
        limits: resource limits.
        batch_size: files per task.
        in_flight: batches submitted ahead of the one being yielded (default: four per
            worker thread).
        connect_timeout: seconds to wait for the scheduler.

    Raises:
        UsageError: distributed is not installed, or the scheduler cannot be reached.
    """
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    policy = policy or load_policy()
    batches = [list(files[i : i + batch_size]) for i in range(0, len(files), batch_size)]
    if not batches:
        return
    with _client(address, connect_timeout) as client:
        threads = sum(client.nthreads().values()) or 1
        window = max(1, in_flight or 4 * threads)
        [shared_policy] = client.scatter([policy], broadcast=True)
        futures: dict[int, Any] = {}
        submitted = 0
        run = uuid.uuid4().hex
        try:
            for index in range(len(batches)):
                while submitted < len(batches) and submitted < index + window:
                    futures[submitted] = client.submit(
                        _audit_batch,
                        batches[submitted],
                        shared_policy,
                        limits,
                        pure=False,
                        retries=2,
                        key=f"ckptaudit-{run}-{submitted}",
                    )
                    submitted += 1
                future = futures.pop(index)
                reports: list[FileReport] = future.result()
                yield from reports
        finally:
            for future in futures.values():
                future.cancel()


def audit_on_dask(
    files: Sequence[str],
    address: str,
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
    connect_timeout: float = 30.0,
) -> list[FileReport]:
    """Audit files on a Dask cluster; one report per file, in input order."""
    reports = iter_audit_on_dask(
        files,
        address,
        policy=policy,
        limits=limits,
        batch_size=batch_size,
        connect_timeout=connect_timeout,
    )
    if not progress or len(files) < 2:
        return list(reports)
    from rich.progress import Progress

    out: list[FileReport] = []
    with Progress(transient=True) as bar:
        task = bar.add_task("auditing on dask", total=len(files))
        for report in reports:
            out.append(report)
            bar.advance(task)
    return out
