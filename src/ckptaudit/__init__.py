"""ckptaudit: checkpoint forensics for PyTorch.

Say, without executing a file, whether ``torch.load(f, weights_only=True)`` will load it,
and if not, every global in the way, where it sits in the object tree, what to convert it
to, and which globals are dangerous; then fix it (``migrate``, ``load``, ``allowlist_snippet``)
without executing it either.
"""

from ckptaudit._version import __version__
from ckptaudit.audit import (
    audit_bytes,
    audit_file,
    audit_object,
    audit_path,
    audit_source,
    audit_url,
)
from ckptaudit.discovery import expand_paths
from ckptaudit.errors import (
    CkptAuditError,
    ContainerError,
    InputError,
    LimitExceeded,
    MigrationError,
    MigrationRefused,
    PickleError,
    PolicyError,
    UnknownFormatError,
    UsageError,
    VerificationFailed,
)
from ckptaudit.findings import (
    AuditStats,
    FileReport,
    Finding,
    Kind,
    Remedy,
    Severity,
    Status,
    TopLevelEntry,
)
from ckptaudit.migrate import (
    ClassInfo,
    Conversion,
    Manifest,
    MigrateOptions,
    TensorEntry,
    allowlist_snippet,
    load,
    migrate,
)
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy import Policy, load_policy

__all__ = [
    "AuditStats",
    "CkptAuditError",
    "ClassInfo",
    "ContainerError",
    "Conversion",
    "FileReport",
    "Finding",
    "InputError",
    "Kind",
    "LimitExceeded",
    "Limits",
    "Manifest",
    "MigrateOptions",
    "MigrationError",
    "MigrationRefused",
    "PickleError",
    "Policy",
    "PolicyError",
    "Remedy",
    "Severity",
    "Status",
    "TensorEntry",
    "TopLevelEntry",
    "UnknownFormatError",
    "UsageError",
    "VerificationFailed",
    "__version__",
    "allowlist_snippet",
    "audit_bytes",
    "audit_file",
    "audit_object",
    "audit_path",
    "audit_source",
    "audit_url",
    "expand_paths",
    "load",
    "load_policy",
    "migrate",
]
