"""``ckptaudit.load``: a drop-in for ``torch.load`` that never runs the file.

A dangerous file is refused. A compatible one is loaded by ``torch.load(f,
weights_only=True)``. Any other is migrated in memory, exactly as ``ckptaudit migrate`` would
write it, and that new file is loaded by ``torch.load(..., weights_only=True)``: torch's own
restricted unpickler builds every object, so what comes back is plain data and tensors.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any, Literal

from ckptaudit.errors import UsageError, missing_extra
from ckptaudit.findings import Status
from ckptaudit.formats import BytesSource, FileSource, Source
from ckptaudit.migrate.api import Prepared, _manifest, migrate_to_bytes, prepare
from ckptaudit.migrate.plan import MigrateOptions
from ckptaudit.policy.torch_policy import Policy

__all__ = ["load"]


def load(
    f: str | os.PathLike[str] | bytes | io.BufferedIOBase,
    map_location: Any = None,
    *,
    with_manifest: bool = False,
    datetime: Literal["iso", "timestamp"] = "iso",
    assume_timezone: str | None = None,
    policy: Policy | None = None,
) -> Any:
    """Load a checkpoint like ``torch.load``, without ever executing it.

    Args:
        f: a path, the file's bytes, or a binary file object.
        map_location: as for ``torch.load``.
        with_manifest: return ``(obj, manifest)`` instead of ``obj``.
        datetime: how datetimes are converted (see :class:`MigrateOptions`).
        assume_timezone: the zone of naive datetimes, for ``datetime="timestamp"``.
        policy: the torch policy to judge against (default: the newest shipped).

    Returns:
        The loaded object (plain data and tensors), or ``(obj, manifest)``.

    Raises:
        MigrationRefused: the file is dangerous, TorchScript, or not convertible.
        UsageError: torch is not installed (it builds the tensors).

    Example:
        >>> state, manifest = ckptaudit.load("legacy.pt", with_manifest=True)  # doctest: +SKIP
    """
    try:
        import torch
    except ImportError:
        raise missing_extra("ckptaudit.load", "torch") from None
    source: Source
    if isinstance(f, (bytes, bytearray, memoryview)):
        source = BytesSource(bytes(f), "<bytes>")
    elif isinstance(f, (str, os.PathLike)):
        try:
            source = FileSource(f)
        except OSError as exc:
            raise UsageError(f"cannot open {os.fspath(f)}: {exc.strerror or exc}") from None
    else:
        source = BytesSource(f.read(), getattr(f, "name", "<file>"))
    try:
        options = MigrateOptions(datetime=datetime, assume_timezone=assume_timezone)
        prepared = prepare(source, options=options, policy=policy)
        name = source.name
        manifest = _manifest(prepared, name, "<memory>", False, False)
        obj = _load(prepared, name, map_location, torch)
    finally:
        source.close()
    return (obj, manifest) if with_manifest else obj


def _load(prepared: Prepared, name: str, map_location: Any, torch: Any) -> Any:
    with warnings.catch_warnings():
        # torch warns about protocol-3 pickles it loads anyway; nothing for the caller to do.
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        compatible = prepared.report.status is Status.COMPATIBLE
        if (
            compatible
            and prepared.report.format == "torch-zip"
            and isinstance(prepared.source, FileSource)
        ):
            return torch.load(name, map_location=map_location, weights_only=True)
        data = migrate_to_bytes(prepared)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
