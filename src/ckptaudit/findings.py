"""The data model: severities, findings and reports.

Defined once here and rendered by :mod:`ckptaudit.report`. Everything is frozen: a report is a
value that renderers read and never change.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "ISSUE_SEVERITIES",
    "AuditStats",
    "Category",
    "ContainerFormat",
    "FileReport",
    "Finding",
    "Issue",
    "Kind",
    "Remedy",
    "Severity",
    "Status",
    "TextEnum",
    "TopLevelEntry",
]


class TextEnum(str, enum.Enum):
    """A closed set of names that print as their value on every Python (3.10's and 3.11's
    ``format()`` of a ``str`` mixin differ)."""

    def __str__(self) -> str:
        return str(self.value)


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that ``max()`` gives the worst."""

    INFO = 10
    """Worth knowing; changes no verdict."""
    INCOMPATIBLE = 20
    """torch.load(weights_only=True) would refuse the file because of it."""
    UNTRUSTED = 25
    """Loading the file imports and runs code outside the standard library and torch's
    install closure (a user's module, a library): not known to be harmful, not known to be
    safe. Changes no verdict; ``--fail-on untrusted`` selects it."""
    ERROR = 30
    """The file (or part of it) could not be analysed; no verdict can rest on it."""
    DANGEROUS = 40
    """Loading without weights_only could execute code or reach the system."""

    @property
    def label(self) -> str:
        """Lower-case name used in every output format."""
        return self.name.lower()


class Status(TextEnum):
    """The verdict for one file."""

    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    DANGEROUS = "dangerous"
    ERROR = "error"


class ContainerFormat(TextEnum):
    """Every container format ckptaudit reads (a closed set: readers dispatch on it)."""

    TORCH_ZIP = "torch-zip"
    """torch.save's zip format (PyTorch 1.6+)."""
    TORCHSCRIPT = "torchscript"
    """A TorchScript archive (torch.jit.save): a zip with code and constants."""
    TORCH_LEGACY = "torch-legacy"
    """torch.save's pre-1.6 format: a sequence of pickles, then raw storages."""
    TORCH_TAR = "torch-tar"
    """torch.save's oldest format: a tar of pickles and storages."""
    PICKLE = "pickle"
    """A plain pickle file."""
    SAFETENSORS = "safetensors"
    """A safetensors file (a JSON header and raw tensors; no pickle)."""
    ZIP = "zip"
    """A zip archive torch would not accept as a checkpoint."""
    UNKNOWN = "unknown"
    """Bytes of no known format, with pickle streams carved out of them."""


class Category(TextEnum):
    """Every rule category (a closed set; each has exactly one rule, see ``checks.rules``)."""

    TAR_FORMAT = "tar-format"
    TORCHSCRIPT = "torchscript"
    NOT_A_TORCH_CHECKPOINT = "not-a-torch-checkpoint"
    FORMAT_MISMATCH = "format-mismatch"
    ZIP_ANOMALY = "zip-anomaly"
    POLYGLOT = "polyglot"
    NOT_ALLOWLISTED = "not-allowlisted"
    BLOCKED_MODULE = "blocked-module"
    FORBIDDEN_OPERATION = "forbidden-operation"
    UNSUPPORTED_OPCODE = "unsupported-opcode"
    REBUILD_ERROR = "rebuild-error"
    DANGEROUS_GLOBAL = "dangerous-global"
    UNSAFE_CALL = "unsafe-call"
    HIDDEN_PAYLOAD = "hidden-payload"
    UNTRUSTED_CODE = "untrusted-code"
    MALFORMED = "malformed"
    LIMIT_EXCEEDED = "limit-exceeded"


class Remedy(TextEnum):
    """What a user has to do about a finding."""

    ALLOWLIST = "allowlist"
    """torch.serialization.add_safe_globals([...]) with this name would make torch accept it."""
    CONVERT = "convert"
    """Allowlisting cannot work: change what is saved (see the hint)."""
    RESAVE = "resave"
    """Save again with pickle protocol 2 (torch.save's default)."""
    NEVER = "never"
    """Dangerous: do not allowlist and do not load this file without weights_only."""
    NONE = "none"
    """Informational; nothing to do."""
    INSPECT = "inspect"
    """The file could not be fully analysed; look at it by hand."""
    REVIEW = "review"
    """Loading runs this code: trust (review) it, or store plain data instead."""


class Kind(TextEnum):
    """What an offending object looks like, read from the pickle's shape."""

    ENUM = "enum"
    OBJECT = "object"
    """An instance of a class: NEWOBJ (or a REDUCE of the class), usually with a state dict
    set by BUILD. A dataclass and a plain class pickle to the same bytes."""
    DATACLASS = "object"
    """Alias of :attr:`OBJECT` (the bytes cannot tell a dataclass from a plain class)."""
    MODULE = "nn.Module"
    CONTAINER = "container"
    DATETIME = "datetime"
    NUMPY = "numpy"
    PATH = "path"
    NAMESPACE = "namespace"
    CALLABLE = "callable"
    REFERENCE = "reference"
    NESTED_PICKLE = "nested-pickle"
    OPCODE = "opcode"
    FORMAT = "format"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem, for one global (or opcode), with every place it occurs."""

    rule: str
    """Stable rule code, e.g. ``CKA201`` (see :mod:`ckptaudit.checks.rules`)."""
    category: Category
    """Short category name of the rule, e.g. ``not-allowlisted``."""
    severity: Severity
    """How bad it is."""
    global_name: str | None
    """The global as ``module.qualname`` (normalised as torch normalises it), if any."""
    kind: Kind
    """What the object looks like (enum, dataclass, nn.Module, ...)."""
    remedy: Remedy
    """What the user has to do."""
    message: str
    """One sentence saying what is wrong."""
    hint: str
    """How to fix it: the conversion to make, or what to check."""
    count: int
    """Exact number of occurrences (distinct objects or opcode uses)."""
    paths: tuple[str, ...]
    """Object paths of the first occurrences (capped; ``count`` stays exact)."""
    offset: int | None
    """Byte offset of the first occurrence in its pickle, if known."""
    member: str | None = None
    """Which pickle inside the container (zip member, legacy part), if not the main one."""
    opcode: str | None = None
    """Opcode name for opcode-level findings."""


ISSUE_SEVERITIES = frozenset({Severity.INCOMPATIBLE, Severity.ERROR, Severity.DANGEROUS})
"""What makes a finding an issue: torch would refuse the file, it could not be analysed, or
loading it could run code. ``info`` changes nothing, and ``untrusted`` code (CKA304) is a
note for whoever would load without weights_only or allowlist: weights_only=True never runs
it, so it stands in no file's way and is listed apart, never counted."""


@dataclass(frozen=True, kw_only=True)
class Issue:
    """One offending thing in a file (a global, an opcode, or a file-level problem), with every
    rule it breaks and every place it sits.

    The one definition of an issue: every output (text, JSON, Markdown, the plan's script)
    lists these and counts :attr:`count` places, so that a deque that breaks two rules at one
    path is one line and one issue everywhere.
    """

    subject: str
    """The global (``module.name``), ``opcode NAME``, or the category of a file-level problem."""
    kind: Kind
    """What the object looks like (from the first finding)."""
    severity: Severity
    """The worst severity among its findings."""
    remedy: Remedy
    """The remedy of its worst finding."""
    hint: str
    """How to fix it (the hint of its worst finding)."""
    count: int
    """Places it sits (objects or opcode uses): the most any one of its rules counted, since
    each rule counts the same objects of this subject."""
    paths: tuple[str, ...]
    """Object paths of the first places (every rule's, deduplicated, capped)."""
    member: str | None
    """Which pickle inside the container, if not the main one."""
    findings: tuple[Finding, ...]
    """Its findings, worst first: one per rule."""

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule codes it breaks."""
        return tuple(f.rule for f in self.findings)


def _subject(f: Finding) -> str:
    if f.global_name:
        return f.global_name
    return f"opcode {f.opcode}" if f.opcode else str(f.category)


def group_findings(findings: Iterable[Finding]) -> tuple[Issue, ...]:
    """Group findings by what they are about (subject and pickle member), worst first."""
    groups: dict[tuple[str, str | None], list[Finding]] = {}
    for f in findings:
        groups.setdefault((_subject(f), f.member), []).append(f)
    out = []
    for (subject, member), group in groups.items():
        group.sort(key=lambda f: -f.severity)
        head = group[0]
        paths = tuple(dict.fromkeys(p for f in group for p in f.paths))
        out.append(
            Issue(
                subject=subject,
                kind=head.kind,
                severity=head.severity,
                remedy=head.remedy,
                hint=head.hint,
                count=max(max(f.count for f in group), len(paths)),
                paths=paths,
                member=member,
                findings=tuple(group),
            )
        )
    out.sort(key=lambda i: -i.severity)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class TopLevelEntry:
    """One entry of the checkpoint's top-level structure."""

    key: str
    """The key (``repr`` for non-string keys) or index."""
    summary: str
    """Short type summary: ``dict[3 keys]``, ``Tensor[64, 3, 3, 3] float32``."""


@dataclass(frozen=True, kw_only=True)
class AuditStats:
    """What the audit read and how long it took."""

    pickle_bytes: int = 0
    """Bytes of pickle data analysed."""
    opcodes: int = 0
    """Pickle opcodes executed by the emulator."""
    tensors: int = 0
    """Tensors the checkpoint rebuilds."""
    tensor_bytes: int = 0
    """Bytes of tensor storage the checkpoint declares (never read)."""
    bytes_read: int = 0
    """Bytes actually read from the file (or transferred, for remote files)."""
    seconds: float = 0.0
    """Wall-clock time of the audit of this file."""


@dataclass(frozen=True, kw_only=True)
class FileReport:
    """The audit of one file."""

    path: str
    """The path (or URL) as given."""
    format: ContainerFormat
    """Container format: torch-zip, torch-legacy, torch-tar, torchscript, pickle, safetensors..."""
    status: Status
    """The verdict."""
    weights_only_compatible: bool
    """Whether torch.load(f, weights_only=True) would succeed with the policy used."""
    error: str | None = None
    """Why the file could not be (fully) analysed, for a person; None if it was."""
    predicted_error: str | None = None
    """The first error torch's loader would raise, as ckptaudit predicts it."""
    unsafe_globals: tuple[str, ...] = ()
    """Sorted globals a user would have to allowlist (as get_unsafe_globals_in_checkpoint)."""
    findings: tuple[Finding, ...] = ()
    """Every problem found, worst first."""
    top_level: tuple[TopLevelEntry, ...] = ()
    """The top-level structure of the loaded object."""
    stats: AuditStats = field(default_factory=AuditStats)
    """What was read and how long it took."""

    @property
    def worst(self) -> Severity | None:
        """The worst severity among the findings, or None when there are none."""
        return max((f.severity for f in self.findings), default=None)

    @property
    def issues(self) -> tuple[Issue, ...]:
        """What stands between the file and weights_only=True, or makes it unsafe: the
        findings of :data:`ISSUE_SEVERITIES`, one :class:`Issue` per subject."""
        return tuple(
            i for i in group_findings(self.findings) if i.severity in ISSUE_SEVERITIES
        )

    @property
    def issue_count(self) -> int:
        """The number of issues: the places of every :attr:`issues` entry, summed."""
        return sum(i.count for i in self.issues)

    @property
    def notes(self) -> tuple[Issue, ...]:
        """The findings that are not issues (info, untrusted code), grouped the same way."""
        return tuple(
            i for i in group_findings(self.findings) if i.severity not in ISSUE_SEVERITIES
        )
