"""Orchestrate one audit: container -> pickle VM -> checks -> report. Never executes the file."""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import os
import time
from collections.abc import Iterator
from typing import Any

from ckptaudit.checks import FileFacts, check_file, rule_for
from ckptaudit.errors import InputError, LimitExceeded, missing_extra
from ckptaudit.findings import AuditStats, Category, ContainerFormat, FileReport, Status
from ckptaudit.formats import BytesSource, Container, FileSource, PickleUnit, Source, read_container
from ckptaudit.formats.remote import is_url
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits
from ckptaudit.policy.torch_policy import Policy, load_policy
from ckptaudit.structure import top_level

__all__ = [
    "audit_bytes",
    "audit_file",
    "audit_object",
    "audit_path",
    "audit_source",
    "audit_url",
    "unreadable_report",
]

_OPEN_ERRORS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "no such file (a parent is not a directory)",
}


def unreadable_report(name: str, exc: OSError, seconds: float = 0.0) -> FileReport:
    """The report of a file that could not be opened: status ``error``, the reason in a few
    words, and no finding (nothing was read, so nothing is claimed about the contents)."""
    reason = _OPEN_ERRORS.get(exc.errno or 0) or str(exc.strerror or exc).lower()
    return FileReport(
        path=name,
        format=ContainerFormat.UNKNOWN,
        status=Status.ERROR,
        weights_only_compatible=False,
        error=f"cannot read: {reason}",
        stats=AuditStats(seconds=seconds),
    )


def _error_report(
    name: str, message: str, category: Category, started: float, read: int
) -> FileReport:
    return FileReport(
        path=name,
        format=ContainerFormat.UNKNOWN,
        status=Status.ERROR,
        weights_only_compatible=False,
        error=message,
        findings=(rule_for(category).finding(message),),
        stats=AuditStats(bytes_read=read, seconds=time.perf_counter() - started),
    )


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while an audit builds its tree.

    An object-heavy pickle becomes millions of small nodes; every full collection would walk
    all of them again (measured: a third of the time on a 9 M-opcode pickle). Reference
    counting still frees everything, and any cycle a pickle built is collected once the
    collector is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def audit_source(
    source: Source, *, policy: Policy | None = None, limits: Limits | None = None
) -> FileReport:
    """Audit one file given as a byte source; never raises for bad input."""
    policy = policy or load_policy()
    limits = limits or DEFAULT_LIMITS
    started = time.perf_counter()
    with _without_cyclic_gc():
        try:
            return _report(source, read_container(source, limits), policy, limits, started)
        except LimitExceeded as exc:
            category, message = Category.LIMIT_EXCEEDED, str(exc)
        except InputError as exc:
            category, message = Category.MALFORMED, str(exc)
        except Exception as exc:  # a bug in ckptaudit, not in the input: report, don't crash
            if os.environ.get("CKPTAUDIT_DEBUG"):
                raise
            category, message = Category.MALFORMED, _internal(exc)
        return _error_report(source.name, message, category, started, source.bytes_read)


def _internal(exc: Exception) -> str:
    """The message of an error report for a bug: the file gets an error, the run goes on."""
    return (
        f"internal error while auditing ({type(exc).__name__}: {exc}); the file was not "
        "fully analysed; please report this with the file"
    )


def _report(
    source: Source, container: Container, policy: Policy, limits: Limits, started: float
) -> FileReport:
    outcome = check_file(FileFacts(source.name, container), policy, limits)
    main = _main_unit(container)
    return FileReport(
        path=source.name,
        format=container.format,
        status=outcome.status,
        weights_only_compatible=outcome.weights_only_compatible,
        error=outcome.error,
        predicted_error=outcome.predicted_error,
        unsafe_globals=outcome.unsafe_globals,
        findings=outcome.findings,
        top_level=tuple(top_level(main.result.root, limits.max_top_level))
        if main is not None and main.result.complete
        else (),
        stats=_stats(source, container, started),
    )


def _main_unit(container: Container) -> PickleUnit | None:
    for unit in container.units:
        if unit.member == "object":
            return unit
    reads = [u for u in container.units if u.torch_reads]
    return reads[0] if reads else (container.units[0] if container.units else None)


def _stats(source: Source, container: Container, started: float) -> AuditStats:
    return AuditStats(
        pickle_bytes=sum(max(u.result.end - u.result.start, 0) for u in container.units),
        opcodes=sum(u.result.opcodes for u in container.units),
        tensors=(container.tensor_count or 0) + len(container.tensor_rebuilds()),
        tensor_bytes=sum(ref.nbytes for ref in container.storages().values()),
        bytes_read=source.bytes_read,
        seconds=time.perf_counter() - started,
    )


def audit_file(
    path: str | os.PathLike[str], *, policy: Policy | None = None, limits: Limits | None = None
) -> FileReport:
    """Audit a checkpoint file without executing it.

    Args:
        path: the file to audit.
        policy: torch's weights_only policy to judge against (default: the newest shipped
            table); extend it with ``policy.with_allowed([...])``.
        limits: resource limits (default: :data:`ckptaudit.pickle.limits.DEFAULT_LIMITS`).

    Returns:
        The file's report. Unreadable, corrupt or hostile input gives ``status="error"`` (or
        ``"dangerous"``), never an exception.

    Example:
        >>> report = audit_file("model.pt")                     # doctest: +SKIP
        >>> report.weights_only_compatible, report.unsafe_globals  # doctest: +SKIP
        (False, ('collections.deque', 'datetime.datetime'))
    """
    started = time.perf_counter()
    name = os.fspath(path)
    try:
        source = FileSource(name)
    except OSError as exc:
        return unreadable_report(name, exc, time.perf_counter() - started)
    try:
        if os.path.isdir(name):
            error = IsADirectoryError(errno.EISDIR, "is a directory", name)
            return unreadable_report(name, error, time.perf_counter() - started)
        return audit_source(source, policy=policy, limits=limits)
    finally:
        source.close()


def audit_url(
    url: str,
    *,
    policy: Policy | None = None,
    limits: Limits | None = None,
    storage_options: dict[str, Any] | None = None,
) -> FileReport:
    """Audit a checkpoint behind a URL (https://, s3://, hf://...) by ranged reads.

    Only what the audit needs is transferred (for a torch zip: the first and last 64 KiB and
    data.pkl), never the tensor storages; ``report.stats.bytes_read`` is what came over the
    network. Needs fsspec (the ``remote`` extra).

    Raises:
        UsageError: fsspec, or the package for the URL's protocol, is not installed.
    """
    from ckptaudit.formats.remote import RemoteReadError, RemoteSource

    started = time.perf_counter()
    try:
        source = RemoteSource(url, storage_options=storage_options)
    except RemoteReadError as exc:
        return _error_report(url, str(exc), Category.MALFORMED, started, 0)
    try:
        return audit_source(source, policy=policy, limits=limits)
    finally:
        source.close()


def audit_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    policy: Policy | None = None,
    limits: Limits | None = None,
) -> FileReport:
    """Audit checkpoint bytes held in memory (``name`` is used for the report's path)."""
    return audit_source(BytesSource(bytes(data), name), policy=policy, limits=limits)


def audit_object(
    obj: Any, *, policy: Policy | None = None, limits: Limits | None = None
) -> FileReport:
    """Serialize ``obj`` exactly as ``torch.save`` would (in memory) and audit those bytes.

    Lets a project assert, in its own tests, that what it is about to save will load under
    ``weights_only=True``. Needs torch (the ``torch`` extra); nothing is written to disk.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise missing_extra("audit_object", "torch") from None
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return audit_bytes(buffer.getvalue(), name="<object>", policy=policy, limits=limits)


def audit_path(
    path: str, *, policy: Policy | None = None, limits: Limits | None = None
) -> FileReport:
    """Audit a local file, or a URL (s3://, https://, hf://...) by ranged reads."""
    if is_url(path):
        return audit_url(path, policy=policy, limits=limits)
    return audit_file(path, policy=policy, limits=limits)
