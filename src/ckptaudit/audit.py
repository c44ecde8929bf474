"""Orchestrate one audit: container -> pickle VM -> checks -> report. Never executes the file."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ckptaudit.checks import PickleUnit, check_units
from ckptaudit.errors import InputError, LimitExceeded, UsageError
from ckptaudit.findings import (
    AuditStats,
    FileReport,
    Finding,
    Kind,
    Remedy,
    Severity,
    Status,
)
from ckptaudit.formats import BytesSource, Container, FileSource, Source, read_container
from ckptaudit.nested import nested_units
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits
from ckptaudit.pickle.nodes import Call, Global, PersId
from ckptaudit.policy.torch_policy import Policy, load_policy
from ckptaudit.rules import rule
from ckptaudit.structure import tensor_problem, top_level

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "audit_bytes",
    "audit_file",
    "audit_object",
    "audit_source",
    "audit_url",
    "expand_paths",
]

CHECKPOINT_SUFFIXES = frozenset(
    {
        ".pt",
        ".pth",
        ".bin",
        ".ckpt",
        ".pkl",
        ".pickle",
        ".safetensors",
        ".tar",
        ".th",
        ".torch",
        ".model",
        ".chkpt",
        ".pt2",
    }
)
"""File name endings a directory search treats as checkpoints."""

_TENSOR_CALLS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_qtensor",
    }
)

# Container issues that torch meets only after it has unpickled the first pickle.
_AFTER_UNPICKLING = frozenset({"not-a-torch-checkpoint"})


def _finding(
    category: str,
    message: str,
    *,
    member: str | None = None,
    remedy: Remedy = Remedy.INSPECT,
    hint: str | None = None,
    kind: Kind = Kind.FORMAT,
    offset: int | None = None,
    severity: Severity | None = None,
) -> Finding:
    r = rule(category)
    return Finding(
        rule=r.code,
        category=r.category,
        severity=severity or r.severity,
        global_name=None,
        kind=kind,
        remedy=remedy,
        message=message,
        hint=hint or r.fix,
        count=1,
        paths=(),
        offset=offset,
        member=member,
    )


def _error_report(name: str, message: str, category: str, started: float, read: int) -> FileReport:
    return FileReport(
        path=name,
        format="unknown",
        status=Status.ERROR,
        weights_only_compatible=False,
        error=message,
        findings=(_finding(category, message),),
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
            category, message = "limit-exceeded", str(exc)
        except InputError as exc:
            category, message = "malformed", str(exc)
        except Exception as exc:  # a bug in ckptaudit, not in the input: report, don't crash
            if os.environ.get("CKPTAUDIT_DEBUG"):
                raise
            category, message = "malformed", _internal(exc)
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
    container.units.extend(nested_units(container.units, limits))
    checked = check_units(container.units, policy, limits)
    findings = list(checked.findings)
    if container.format == "torchscript":
        # Refused before any pickle is read; only what could harm a torch.jit.load matters.
        findings = [f for f in findings if f.severity is not Severity.INCOMPATIBLE]
    errors: list[str] = []
    torch_before: list[str] = []
    torch_after: list[str] = []
    for issue in container.issues:
        severity = None
        if issue.category == "zip-anomaly" and issue.torch_error is None:
            severity = Severity.INFO
        findings.append(
            _finding(issue.category, issue.message, member=issue.member, severity=severity)
        )
        if issue.torch_error:
            (torch_after if issue.category in _AFTER_UNPICKLING else torch_before).append(
                issue.torch_error
            )
        if issue.category == "malformed":
            errors.append(issue.message)
    mismatch = _name_mismatch(source.name, container.format)
    if mismatch:
        message, fails = mismatch
        findings.append(
            _finding(
                "format-mismatch",
                message,
                severity=Severity.INCOMPATIBLE if fails else None,
                remedy=Remedy.NONE,
            )
        )
        if fails:
            torch_before.append(message)
    unit_errors: list[str] = []
    for unit in container.units:
        err = unit.result.error
        if err is None:
            continue
        where = f"{unit.member}: " if unit.member else ""
        category = "limit-exceeded" if isinstance(err, LimitExceeded) else "malformed"
        findings.append(_finding(category, f"{where}{err}", member=unit.member, offset=err.offset))
        errors.append(f"{where}{err}")
        if unit.torch_reads:
            unit_errors.append(f"{where}{err}")
    rebuilds = _tensor_rebuilds(container)
    for problem in _storage_problems(container, rebuilds)[:1]:
        unit_errors.append(problem)
        findings.append(_finding("rebuild-error", problem, remedy=Remedy.INSPECT))
    dangerous_members = {f.member for f in findings if f.severity is Severity.DANGEROUS}
    for unit in container.units:
        if unit.torch_reads or unit.nested or container.format == "torchscript":
            continue
        if unit.member in dangerous_members:
            findings.append(
                _finding(
                    "hidden-payload",
                    f"dangerous pickle in {unit.member}, which torch.load never reads but other "
                    "tools may",
                    member=unit.member,
                    remedy=Remedy.NEVER,
                    kind=Kind.NESTED_PICKLE,
                )
            )
    findings.sort(key=lambda f: (-f.severity, f.rule, f.offset or 0))

    predicted = torch_before + [v.message for v in checked.violations] + unit_errors + torch_after
    compatible = not predicted and container.complete
    worst = max((f.severity for f in findings), default=None)
    if worst is Severity.DANGEROUS:
        status = Status.DANGEROUS
    elif worst is Severity.ERROR or not container.complete:
        status = Status.ERROR
    elif compatible:
        status = Status.COMPATIBLE
    else:
        status = Status.INCOMPATIBLE
    main = _main_unit(container)
    return FileReport(
        path=source.name,
        format=container.format,
        status=status,
        weights_only_compatible=compatible,
        error="; ".join(errors) if errors else None,
        predicted_error=predicted[0] if predicted else None,
        unsafe_globals=tuple(sorted(checked.unsafe_globals)),
        findings=tuple(findings),
        top_level=tuple(top_level(main.result.root, limits.max_top_level))
        if main is not None and main.result.complete
        else (),
        stats=_stats(source, container, rebuilds, started),
    )


_EXPECTED_BY_SUFFIX = {
    ".safetensors": ("safetensors",),
    ".pkl": ("pickle",),
    ".pickle": ("pickle",),
    ".pt": ("torch-zip", "torch-legacy", "torchscript"),
    ".pth": ("torch-zip", "torch-legacy", "torchscript"),
    ".ckpt": ("torch-zip", "torch-legacy"),
    ".tar": ("torch-tar",),
}


def _name_mismatch(name: str, fmt: str) -> tuple[str, bool] | None:
    """(message, torch fails because of it) when the file name suggests another format."""
    suffix = os.path.splitext(name)[1].lower()
    expected = _EXPECTED_BY_SUFFIX.get(suffix)
    if expected is None or fmt in expected:
        return None
    # torch.load sends every path ending in .safetensors to safetensors, whatever its bytes.
    fails = name.endswith(".safetensors")
    message = f"named {suffix} but the bytes are {fmt}"
    if fails:
        message += "; torch.load hands .safetensors paths to safetensors, which cannot read it"
    return message, fails


def _main_unit(container: Container) -> PickleUnit | None:
    for unit in container.units:
        if unit.member == "object":
            return unit
    reads = [u for u in container.units if u.torch_reads]
    return reads[0] if reads else (container.units[0] if container.units else None)


def _tensor_rebuilds(container: Container) -> list[Call]:
    """The tensor-rebuilding calls of the pickles torch reads."""
    return [
        call
        for unit in container.units
        if unit.torch_reads
        for call in unit.result.calls
        if isinstance(call.func, Global) and call.func.qualified in _TENSOR_CALLS
    ]


def _storage_problems(container: Container, rebuilds: list[Call]) -> list[str]:
    """Tensors torch could not rebuild: a missing record, one of the wrong size, a view past
    the end of its storage."""
    problems: list[str] = []
    if container.format in ("torch-zip", "torch-legacy"):
        for call in rebuilds:
            if call.func.qualified != "torch._utils._rebuild_tensor_v2":
                continue
            storage = call.args[0] if type(call.args) is tuple and call.args else None
            pid = storage.pid if isinstance(storage, PersId) else None
            if type(pid) is tuple and len(pid) > 5 and pid[5] is not None:
                continue  # a legacy storage view: its own size applies
            problem = tensor_problem(call)
            if problem:
                problems.append(problem)
                break
    records = container.storage_records
    if records is None:
        return problems
    for ref in container.storages().values():
        size = records.get(ref.key.lower())
        if size is None:
            problems.append(
                f"PytorchStreamReader failed locating file data/{ref.key}: file not found"
            )
        elif ref.dtype != "unknown" and size != ref.nbytes:
            problems.append(
                f"record size ({size} bytes) of data/{ref.key} does not match expected size "
                f"({ref.nbytes} bytes = {ref.numel} elements * {ref.element_size} "
                "bytes/element)"
            )
    return problems


def _stats(
    source: Source, container: Container, rebuilds: list[Call], started: float
) -> AuditStats:
    return AuditStats(
        pickle_bytes=sum(max(u.result.end - u.result.start, 0) for u in container.units),
        opcodes=sum(u.result.opcodes for u in container.units),
        tensors=(container.tensor_count or 0) + len(rebuilds),
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
        return _error_report(name, f"cannot open: {exc.strerror or exc}", "malformed", started, 0)
    try:
        if os.path.isdir(name):
            return _error_report(name, "is a directory", "malformed", started, 0)
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
    network. Needs fsspec (``pip install 'ckptaudit[remote]'``).

    Raises:
        UsageError: fsspec, or the package for the URL's protocol, is not installed.
    """
    from ckptaudit.formats.remote import RemoteReadError, RemoteSource

    started = time.perf_counter()
    try:
        source = RemoteSource(url, storage_options=storage_options)
    except RemoteReadError as exc:
        return _error_report(url, str(exc), "malformed", started, 0)
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
        raise UsageError("audit_object needs torch: pip install 'ckptaudit[torch]'") from None
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return audit_bytes(buffer.getvalue(), name="<object>", policy=policy, limits=limits)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield files to audit: files as given, directories searched for checkpoint names."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for file in sorted(files):
                    candidate = Path(root) / file
                    if _looks_like_checkpoint(candidate.name):
                        yield str(candidate)
        else:
            yield os.fspath(raw)


def _looks_like_checkpoint(name: str) -> bool:
    lower = name.lower()
    return any(lower.endswith(suffix) for suffix in CHECKPOINT_SUFFIXES)
