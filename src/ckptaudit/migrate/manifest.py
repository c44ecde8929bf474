"""The migration manifest: what was converted, what it became, what was dropped.

Frozen values, rendered by separate functions (:func:`render_table`, :func:`manifest_dict`,
:func:`manifest_json`); ``ckptaudit migrate`` prints the table and writes the JSON beside the
new file as ``DST.migration.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MANIFEST_SCHEMA",
    "ClassInfo",
    "Conversion",
    "Manifest",
    "TensorEntry",
    "manifest_dict",
    "manifest_json",
    "render_table",
]

MANIFEST_SCHEMA = "ckptaudit-migration/1"


@dataclass(frozen=True, kw_only=True)
class Conversion:
    """One converted (or removed) object of the checkpoint."""

    path: str
    """Where it sits in the source's object tree (``root['config'].stage``)."""
    original: str
    """What it was: the global ``module.name`` of its class or function, or a label."""
    kind: str
    """What kind of object it was (``datetime``, ``enum``, ``object``, ``nn.Module``...)."""
    became: str
    """What it became in the new file (``str (ISO 8601)``, ``dict``, ``state_dict``...)."""
    dropped: tuple[str, ...] = ()
    """What the new file does not hold (``maxlen=16``, ``attribute training=True``...)."""
    note: str | None = None
    """Anything else a person must know (``the pickle holds the value, not the name``)."""


@dataclass(frozen=True, kw_only=True)
class TensorEntry:
    """One tensor of the new file, as verification compares it."""

    path: str
    """Where it sits in the source's object tree."""
    storage: str
    """The key of its storage in the new file (shared storages share a key)."""
    dtype: str
    """torch dtype name without ``torch.`` (``float32``)."""
    shape: tuple[int, ...]
    """Size."""
    stride: tuple[int, ...]
    """Stride, in elements."""
    offset: int
    """Storage offset, in elements."""
    requires_grad: bool
    """As saved."""
    parameter: bool
    """True for an ``nn.Parameter``."""


@dataclass(frozen=True, kw_only=True)
class ClassInfo:
    """A class whose instances were converted to plain data, with the fields the checkpoint
    holds: the input of ``--emit-code``."""

    name: str
    """``module.qualname`` of the class."""
    kind: str
    """``object``, ``enum``, ``nn.Module``, ``namedtuple``, ``namespace``..."""
    fields: tuple[tuple[str, str], ...] = ()
    """(field name, how its value is stored: ``enum SeedStage -> value``, ``datetime -> str``,
    ``deque -> list``, ``plain``)."""
    count: int = 1
    """Instances converted."""
    example_path: str = ""
    """Where the first instance sits."""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What a migration did (or, with ``dry_run``, would do)."""

    source: str
    """The checkpoint read."""
    destination: str
    """The file written (or that would be written)."""
    source_format: str
    """Container format of the source (``torch-zip``, ``torch-legacy``, ``pickle``...)."""
    target_format: str
    """``torch-zip`` or ``safetensors``."""
    status_before: str
    """The audit's verdict on the source."""
    conversions: tuple[Conversion, ...] = ()
    """Every converted or removed object, in document order."""
    tensors: tuple[TensorEntry, ...] = ()
    """Every tensor written."""
    storages: int = 0
    """Storages written."""
    storage_bytes: int = 0
    """Bytes of storage copied from the source."""
    classes: tuple[ClassInfo, ...] = ()
    """Classes converted, with their fields (for ``--emit-code``)."""
    removed: tuple[str, ...] = ()
    """Dangerous constructs replaced by ``"<removed: module.name>"`` (``--sanitize``)."""
    not_copied: tuple[str, ...] = ()
    """Parts of the source that are not carried over (extra pickles, hidden payloads)."""
    verified: tuple[str, ...] = ()
    """Checks the written file passed."""
    sidecar: str | None = None
    """safetensors: the JSON file beside it that holds the non-tensor data, if any."""
    dry_run: bool = False
    """True when nothing was written."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts (safetensors: deduplicated and copied tensors)."""


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as JSON-ready data (schema ``ckptaudit-migration/1``)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "source": manifest.source,
        "destination": manifest.destination,
        "source_format": manifest.source_format,
        "target_format": manifest.target_format,
        "status_before": manifest.status_before,
        "dry_run": manifest.dry_run,
        "conversions": [
            {
                "path": c.path,
                "original": c.original,
                "kind": c.kind,
                "became": c.became,
                "dropped": list(c.dropped),
                "note": c.note,
            }
            for c in manifest.conversions
        ],
        "removed": list(manifest.removed),
        "not_copied": list(manifest.not_copied),
        "tensors": [
            {
                "path": t.path,
                "storage": t.storage,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "stride": list(t.stride),
                "offset": t.offset,
                "requires_grad": t.requires_grad,
                "parameter": t.parameter,
            }
            for t in manifest.tensors
        ],
        "storages": manifest.storages,
        "storage_bytes": manifest.storage_bytes,
        "classes": [
            {
                "name": c.name,
                "kind": c.kind,
                "fields": [list(f) for f in c.fields],
                "count": c.count,
                "example_path": c.example_path,
            }
            for c in manifest.classes
        ],
        "verified": list(manifest.verified),
        "sidecar": manifest.sidecar,
        "extra": manifest.extra,
    }


def manifest_json(manifest: Manifest) -> str:
    """The manifest as indented JSON text."""
    return json.dumps(manifest_dict(manifest), indent=2, ensure_ascii=False) + "\n"


def _clip(text: str, width: int, tail: bool = False) -> str:
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3) :] if tail else text[: width - 3] + "..."


def render_table(manifest: Manifest) -> str:
    """The manifest as a text table for a terminal: one line per conversion."""
    verb = "would write" if manifest.dry_run else "wrote"
    lines = [
        f"{manifest.source} [{manifest.source_format}, {manifest.status_before}] -> "
        f"{manifest.destination} [{manifest.target_format}]"
    ]
    if manifest.conversions:
        rows = [(c.path, c.original, c.became) for c in manifest.conversions]
        w1 = min(max(len(r[0]) for r in rows), 60)
        w2 = min(max(len(r[1]) for r in rows), 40)
        lines.append(f"  {'path':<{w1}}  {'was':<{w2}}  became")
        for c in manifest.conversions:
            lines.append(
                f"  {_clip(c.path, w1, tail=True):<{w1}}  {_clip(c.original, w2):<{w2}}  {c.became}"
            )
            for item in c.dropped:
                lines.append(f"  {'':<{w1}}  {'':<{w2}}    dropped: {item}")
            if c.note:
                lines.append(f"  {'':<{w1}}  {'':<{w2}}    note: {c.note}")
    else:
        lines.append("  nothing to convert")
    for item in manifest.removed:
        lines.append(f"  removed (--sanitize): {item}")
    for item in manifest.not_copied:
        lines.append(f"  not copied: {item}")
    mib = manifest.storage_bytes / (1 << 20)
    lines.append(
        f"  {verb} {len(manifest.tensors)} tensors in {manifest.storages} storages "
        f"({mib:.1f} MiB copied byte for byte)"
    )
    for note in manifest.extra.get("notes", ()):
        lines.append(f"  note: {note}")
    if manifest.sidecar:
        lines.append(f"  non-tensor data in {manifest.sidecar}")
    if manifest.verified:
        lines.append(f"  verified: {'; '.join(manifest.verified)}")
    return "\n".join(lines) + "\n"
