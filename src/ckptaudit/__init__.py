"""ckptaudit: checkpoint forensics for PyTorch.

Say, without executing a file, whether ``torch.load(f, weights_only=True)`` will load it,
and if not, every global in the way, where it sits in the object tree, what to convert it
to, and which globals are dangerous.
"""

from ckptaudit._version import __version__
from ckptaudit.audit import (
    audit_bytes,
    audit_file,
    audit_object,
    audit_source,
    audit_url,
    expand_paths,
)
from ckptaudit.errors import (
    CkptAuditError,
    ContainerError,
    InputError,
    LimitExceeded,
    PickleError,
    PolicyError,
    UnknownFormatError,
    UsageError,
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
from ckptaudit.pickle.limits import Limits
from ckptaudit.policy import Policy, load_policy

__all__ = [
    "AuditStats",
    "CkptAuditError",
    "ContainerError",
    "FileReport",
    "Finding",
    "InputError",
    "Kind",
    "LimitExceeded",
    "Limits",
    "PickleError",
    "Policy",
    "PolicyError",
    "Remedy",
    "Severity",
    "Status",
    "TopLevelEntry",
    "UnknownFormatError",
    "UsageError",
    "__version__",
    "audit_bytes",
    "audit_file",
    "audit_object",
    "audit_source",
    "audit_url",
    "expand_paths",
    "load_policy",
]
