"""Audit many files: expand directories, fan out to processes, keep the input order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

from ckptaudit.audit import audit_file, expand_paths
from ckptaudit.findings import FileReport
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy.torch_policy import Policy, load_policy

__all__ = ["audit_paths"]

# Below this many files, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 8


def _audit_chunk(paths: Sequence[str], policy: Policy, limits: Limits | None) -> list[FileReport]:
    return [audit_file(p, policy=policy, limits=limits) for p in paths]


def audit_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    jobs: int | None = None,
    progress: bool = False,
) -> list[FileReport]:
    """Audit files and directories (searched recursively), in parallel processes.

    Args:
        paths: files and directories.
        policy: the torch policy (default: newest shipped).
        limits: resource limits.
        jobs: worker processes (default: the CPU count; 1 audits in this process).
        progress: draw a rich progress bar on stderr.

    Returns:
        One report per file, in the order the files were found.
    """
    policy = policy or load_policy()
    files = list(expand_paths(paths))
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(files) < _PARALLEL_THRESHOLD:
        return _sequential(files, policy, limits, progress)
    # Chunks amortise inter-process traffic; several per worker keep the load balanced.
    size = max(1, min(256, len(files) // (jobs * 8)))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    reports: list[FileReport] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_audit_chunk, c, policy, limits) for c in chunks]
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("auditing", total=len(files))
                for fut, chunk in zip(futures, chunks, strict=True):
                    reports.extend(fut.result())
                    bar.advance(task, len(chunk))
        else:
            for fut in futures:
                reports.extend(fut.result())
    return reports


def _sequential(
    files: list[str], policy: Policy, limits: Limits | None, progress: bool
) -> list[FileReport]:
    if not progress or len(files) < 2:
        return [audit_file(p, policy=policy, limits=limits) for p in files]
    from rich.progress import Progress

    reports = []
    with Progress(transient=True) as bar:
        task = bar.add_task("auditing", total=len(files))
        for p in files:
            reports.append(audit_file(p, policy=policy, limits=limits))
            bar.advance(task)
    return reports
