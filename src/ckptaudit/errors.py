"""The exception tree of ckptaudit.

Every exception the library raises on purpose derives from :class:`CkptAuditError`::

    CkptAuditError
    ├── UsageError            bad arguments or options (CLI exit status 2)
    ├── PolicyError           an unreadable allowlist file or policy table
    ├── InputError            a file that cannot be audited (per-file status "error")
    │   ├── UnknownFormatError    bytes that are no checkpoint format we know
    │   ├── ContainerError        a damaged zip, tar or legacy container
    │   └── PickleError           a pickle stream that cannot be parsed
    │       └── LimitExceeded     a resource limit stopped the analysis
    └── MigrationError        a checkpoint that ``ckptaudit migrate`` could not convert
        ├── MigrationRefused      dangerous, TorchScript, or a value with no faithful conversion
        └── VerificationFailed    the written file did not pass verification (it was removed)

The audit functions never let an ``InputError`` escape for a single file: they turn it into a
report with ``status="error"``. Anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "EXTRAS",
    "CkptAuditError",
    "ContainerError",
    "InputError",
    "LimitExceeded",
    "MigrationError",
    "MigrationRefused",
    "PickleError",
    "PolicyError",
    "UnknownFormatError",
    "UsageError",
    "VerificationFailed",
    "missing_extra",
]

EXTRAS: dict[str, str] = {
    "torch": "torch==2.13.0",
    "remote": "fsspec aiohttp huggingface_hub",
    "s3": "fsspec aiohttp s3fs",
    "dask": "distributed",
}
"""Every extra of the package, with what it installs (a test keeps this equal to
pyproject.toml's extras). torch is pinned: unpinned, it resolves to a multi-GB CUDA build."""


class CkptAuditError(Exception):
    """Base class of every error ckptaudit raises on purpose."""


class UsageError(CkptAuditError):
    """The caller asked for something that cannot be done (bad option, missing path)."""


class PolicyError(CkptAuditError):
    """A policy table or allowlist file could not be read."""


class InputError(CkptAuditError):
    """A file could not be audited; the message says why, for a person."""


class UnknownFormatError(InputError):
    """The bytes are not in any checkpoint format ckptaudit reads."""


class ContainerError(InputError):
    """A zip, tar or legacy container is damaged or inconsistent."""


class PickleError(InputError):
    """A pickle stream is malformed: truncated, bad opcode, stack or memo misuse."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


class LimitExceeded(PickleError):
    """A resource limit (size, nodes, nesting, memo) stopped the analysis."""


class MigrationError(CkptAuditError):
    """A checkpoint could not be migrated; nothing was written."""


class MigrationRefused(MigrationError):
    """Migration was refused: dangerous content, TorchScript, or a value with no faithful
    conversion. The message says which and why."""


class VerificationFailed(MigrationError):
    """The migrated file failed verification and was removed."""


def missing_extra(what: str, extra: str) -> UsageError:
    """The error for a feature whose extra is not installed, with an install line that works:
    ckptaudit is on no registry, so installing ``ckptaudit[x]`` by name would not."""
    return UsageError(
        f"{what} needs the {extra!r} extra: pip install {EXTRAS[extra]} "
        f"(or pip install '.[{extra}]' in a clone of ckptaudit)"
    )
