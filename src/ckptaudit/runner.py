"""Audit many files: expand directories, fan out to processes, keep the input order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ckptaudit.audit import audit_path
from ckptaudit.discovery import expand_inputs
from ckptaudit.findings import FileReport
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy.torch_policy import Policy, load_policy

__all__ = ["audit_paths", "iter_audit_paths"]

# Below this many files, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 8


def _audit_chunk(paths: Sequence[str], policy: Policy, limits: Limits | None) -> list[FileReport]:
    return [audit_path(p, policy=policy, limits=limits) for p in paths]


def audit_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    jobs: int | None = None,
    progress: bool = False,
    dask: str | None = None,
) -> list[FileReport]:
    """Audit files and directories (searched recursively), in parallel processes.

    Args:
        paths: files, directories and URLs.
        policy: the torch policy (default: newest shipped).
        limits: resource limits.
        jobs: worker processes (default: the CPU count; 1 audits in this process).
        progress: draw a rich progress bar on stderr.
        dask: address of a Dask scheduler (``tcp://host:8786``): audit on its workers
            instead of local processes (``jobs`` is then ignored).

    Returns:
        One report per file, in the order the files were found.
    """
    return list(
        iter_audit_paths(
            paths, policy=policy, limits=limits, jobs=jobs, progress=progress, dask=dask
        )
    )


def iter_audit_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    jobs: int | None = None,
    progress: bool = False,
    dask: str | None = None,
) -> Iterator[FileReport]:
    """Like :func:`audit_paths`, but yield each report, in order, as soon as it is ready.

    Only a bounded window of work is in flight, so a run over a million files holds a few
    thousand reports at most, never all of them (``--format jsonl`` streams them out).
    """
    policy = policy or load_policy()
    files = expand_inputs(paths)
    bar = _ProgressBar(len(files)) if progress and len(files) > 1 else None
    try:
        if dask:
            from ckptaudit.cluster import iter_audit_on_dask

            reports: Iterator[FileReport] = iter_audit_on_dask(
                files, dask, policy=policy, limits=limits
            )
        else:
            reports = _local(files, policy, limits, jobs or os.cpu_count() or 1)
        for report in reports:
            if bar is not None:
                bar.advance()
            yield report
    finally:
        if bar is not None:
            bar.stop()


def _local(
    files: list[str], policy: Policy, limits: Limits | None, jobs: int
) -> Iterator[FileReport]:
    if jobs == 1 or len(files) < _PARALLEL_THRESHOLD:
        for path in files:
            yield audit_path(path, policy=policy, limits=limits)
        return
    # Chunks amortise inter-process traffic; several per worker keep the load balanced; a
    # window of them bounds what is queued and held.
    size = max(1, min(256, len(files) // (jobs * 8)))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    window = jobs * 4
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: deque[Future[list[FileReport]]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(_audit_chunk, chunk, policy, limits))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


class _ProgressBar:
    """A rich progress bar on stderr; rich is imported only when one is drawn."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        # stderr: stdout carries the report, often redirected to a file while the run is
        # watched on a terminal (`ckptaudit audit runs/ > report.txt`).
        self._bar: Any = Progress(transient=True, console=Console(stderr=True))
        self._task = self._bar.add_task("auditing", total=total)
        self._bar.start()

    def advance(self) -> None:
        """One more file done."""
        self._bar.advance(self._task)

    def stop(self) -> None:
        """Remove the bar."""
        self._bar.stop()
