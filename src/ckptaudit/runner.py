"""Audit many files: expand directories, fan out to processes, keep the input order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

from ckptaudit.audit import CHECKPOINT_SUFFIXES, audit_file, audit_url, expand_paths
from ckptaudit.findings import FileReport
from ckptaudit.formats.remote import expand_url, is_url
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy.torch_policy import Policy, load_policy

__all__ = ["audit_paths"]

# Below this many files, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 8


def _audit_chunk(paths: Sequence[str], policy: Policy, limits: Limits | None) -> list[FileReport]:
    return [_audit_one(p, policy, limits) for p in paths]


# --- remote URLs and Dask (issue "Speed and scale") ---
def _audit_one(path: str, policy: Policy, limits: Limits | None) -> FileReport:
    """Audit a local file, or a URL (s3://, https://, hf://...) by ranged reads."""
    if is_url(path):
        return audit_url(path, policy=policy, limits=limits)
    return audit_file(path, policy=policy, limits=limits)


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Local files and directories as :func:`expand_paths`; URLs as themselves, globs
    (``s3://b/runs/*.pt``) expanded, prefixes ending in ``/`` listed for checkpoint names."""
    files: list[str] = []
    for raw in paths:
        if is_url(raw):
            files.extend(expand_url(str(raw), suffixes=CHECKPOINT_SUFFIXES))
        else:
            files.extend(expand_paths([raw]))
    return files


# --- end remote URLs and Dask ---


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
        paths: files and directories.
        policy: the torch policy (default: newest shipped).
        limits: resource limits.
        jobs: worker processes (default: the CPU count; 1 audits in this process).
        progress: draw a rich progress bar on stderr.
        dask: address of a Dask scheduler (``tcp://host:8786``): audit on its workers
            instead of local processes (``jobs`` is then ignored).

    Returns:
        One report per file, in the order the files were found.
    """
    policy = policy or load_policy()
    files = expand_inputs(paths)
    if dask:
        from ckptaudit.cluster import audit_on_dask

        return audit_on_dask(files, dask, policy=policy, limits=limits, progress=progress)
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
        return [_audit_one(p, policy, limits) for p in files]
    from rich.progress import Progress

    reports = []
    with Progress(transient=True) as bar:
        task = bar.add_task("auditing", total=len(files))
        for p in files:
            reports.append(_audit_one(p, policy, limits))
            bar.advance(task)
    return reports
