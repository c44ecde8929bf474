"""Assertions for a project's own tests: its checkpoints keep loading with weights_only=True.

Two lines in a test module keep a project's checkpoints loadable as its code changes::

    from ckptaudit.testing import assert_loadable

    def test_checkpoint_loads_with_weights_only(model):
        assert_loadable({"model": model.state_dict(), "config": model.config})

With ckptaudit installed, pytest also offers the same function as the ``ckptaudit_check``
fixture (see :mod:`ckptaudit.pytest_plugin`), which adds the allowlist and torch version a
project sets once in its pytest configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ckptaudit.findings import FileReport, Finding, Status
from ckptaudit.report.escape import printable

__all__ = ["CheckpointNotLoadable", "allowed_name", "assert_loadable", "failure_message"]

_PATHS_SHOWN = 20  # every path a finding keeps (findings cap their paths at 20)


class CheckpointNotLoadable(AssertionError):
    """A checkpoint would not load with ``torch.load(weights_only=True)``, or is dangerous.

    An ``AssertionError``, so that test runners report it as a failed assertion; the audit
    that failed is in :attr:`report`.
    """

    def __init__(self, message: str, report: FileReport) -> None:
        super().__init__(message)
        self.report = report
        """The audit of the checkpoint."""


def allowed_name(item: object) -> str:
    """The ``module.name`` of an allowlist entry: a string as it is, or a class or function.

    Raises:
        TypeError: ``item`` is neither a ``module.name`` string nor a named class or function.
    """
    if isinstance(item, str):
        if "." not in item or item.startswith(".") or item.endswith("."):
            raise TypeError(f"an allowlist entry is 'module.name', got {item!r}")
        return item
    module = getattr(item, "__module__", None)
    qualname = getattr(item, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    raise TypeError(f"an allowlist entry is 'module.name', a class or a function, got {item!r}")


def _finding_text(f: Finding) -> list[str]:
    where = f" in {f.member}" if f.member else ""
    lines = [f"  [{f.rule}] {f.message}{where} (remedy: {f.remedy.value})"]
    lines.extend(f"      at {p}" for p in f.paths[:_PATHS_SHOWN])
    shown = min(len(f.paths), _PATHS_SHOWN)
    if f.count > shown and shown:
        lines.append(f"      ... and {f.count - shown} more")
    if f.hint:
        lines.append(f"    hint: {f.hint}")
    return lines


def failure_message(report: FileReport, torch_version: str) -> str:
    """The assertion message for a checkpoint that is not plainly loadable: every finding
    with its paths and hint."""
    if report.status is Status.DANGEROUS:
        verdict = "is DANGEROUS: do not load it without weights_only"
    elif report.status is Status.ERROR:
        verdict = "could not be fully analysed"
    else:
        verdict = "would not load with torch.load(weights_only=True)"
    lines = [f"{report.path} {verdict} (policy of torch {torch_version})"]
    if report.error:
        lines.append(f"error: {report.error}")
    if report.predicted_error and not report.weights_only_compatible:
        lines.append(f"torch would raise: {report.predicted_error}")
    for f in report.findings:
        lines.extend(_finding_text(f))
    if report.unsafe_globals:
        lines.append(
            "globals to convert or allowlist (allow=... here, add_safe_globals in torch): "
            + ", ".join(report.unsafe_globals)
        )
    return "\n".join(printable(line) for line in lines)


def assert_loadable(
    obj_or_path: Any,
    *,
    torch_version: str | None = None,
    allow: Iterable[object] = (),
) -> FileReport:
    """Assert that a checkpoint loads with ``torch.load(f, weights_only=True)``.

    Args:
        obj_or_path: a path (``str`` or ``os.PathLike``; a URL such as ``s3://...`` or
            ``hf://...`` with the ``remote`` extra) to audit that file, or any other object
            to audit what ``torch.save(obj)`` would write (in memory; needs torch). To check
            a string *object*, save it yourself and pass the path.
        torch_version: the torch release whose policy table judges it (default: the newest
            shipped); an unknown version raises :class:`~ckptaudit.errors.PolicyError`.
        allow: globals to treat as allowlisted, as ``torch.serialization.add_safe_globals``
            would: ``"module.name"`` strings, classes or functions.

    Returns:
        The audit, when the checkpoint is compatible.

    Raises:
        CheckpointNotLoadable: (an ``AssertionError``) torch would refuse it, it is
            dangerous, or it could not be fully analysed; the message lists every finding
            with its paths and hint.

    Example:
        >>> assert_loadable("runs/agent.pt", allow=["mylib.Config"])  # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    from ckptaudit.audit import audit_file, audit_object, audit_url
    from ckptaudit.formats.remote import is_url
    from ckptaudit.policy.torch_policy import load_policy

    policy = load_policy(torch_version)
    names = [allowed_name(item) for item in allow]
    if names:
        policy = policy.with_allowed(names)
    if isinstance(obj_or_path, str) and is_url(obj_or_path):
        report = audit_url(obj_or_path, policy=policy)
    elif isinstance(obj_or_path, (str, os.PathLike)):
        report = audit_file(obj_or_path, policy=policy)
    else:
        report = audit_object(obj_or_path, policy=policy)
    if report.status is not Status.COMPATIBLE:
        raise CheckpointNotLoadable(failure_message(report, policy.torch_version), report)
    return report
