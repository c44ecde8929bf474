"""torch's oldest format: a tar of sys_info, pickle, storages and tensors.

torch refuses it under weights_only before reading anything, but other loaders run every
pickle in it, so each one is audited: sys_info, pickle, and the pickles interleaved with raw
data in storages and tensors.
"""

from __future__ import annotations

import struct
import tarfile

from ckptaudit.errors import ContainerError, LimitExceeded
from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.detect import TAR_HEADER_MAX
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.source import Source, SourceFile
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Global
from ckptaudit.pickle.vm import run_pickle
from ckptaudit.structure import STORAGE_TYPES

__all__ = ["read_torch_tar"]

_REFUSAL = "Cannot use ``weights_only=True`` with files saved in the legacy .tar format."


def read_torch_tar(source: Source, limits: Limits) -> Container:
    """Read a tar checkpoint's pickles."""
    container = Container(format=ContainerFormat.TORCH_TAR)
    container.issues.append(
        ContainerIssue(
            Category.TAR_FORMAT,
            "legacy tar checkpoint: torch.load refuses it under weights_only",
            torch_error=_REFUSAL,
        )
    )
    try:
        tar = tarfile.open(  # noqa: SIM115 - closed below
            fileobj=SourceFile(source, TAR_HEADER_MAX), mode="r:"
        )
    except (tarfile.TarError, OSError) as exc:
        raise ContainerError(f"damaged tar archive: {exc}") from None
    with tar:
        members: dict[str, tarfile.TarInfo] = {}
        try:
            for count, entry in enumerate(tar):
                if count >= limits.max_members:
                    raise LimitExceeded(f"tar has more than {limits.max_members} members")
                members[entry.name] = entry
        except tarfile.TarError as exc:
            container.issues.append(
                ContainerIssue(Category.MALFORMED, f"damaged tar archive: {exc}")
            )
            container.complete = False
        for name in ("sys_info", "pickle"):
            info = members.get(name)
            if info is None:
                continue
            data = _member(source, info, limits, container)
            if data is not None:
                container.units.append(PickleUnit(name, run_pickle(data), torch_reads=False))
        for name in ("storages", "tensors"):
            info = members.get(name)
            if info is not None:
                data = _member(source, info, limits, container)
                if data is not None:
                    _interleaved(container, name, data)
        other = [n for n in members if n not in ("sys_info", "pickle", "storages", "tensors")]
        for name in other[: limits.max_pickles]:
            data = _member(source, members[name], limits, container)
            if data is not None and data[:1] == b"\x80":
                container.units.append(PickleUnit(name, run_pickle(data), torch_reads=False))
    return container


def _member(
    source: Source, info: tarfile.TarInfo, limits: Limits, container: Container
) -> bytes | None:
    """A member's bytes; None (and a malformed issue) when it is damaged or lies past the end."""
    if info.size > limits.max_pickle_bytes:
        raise LimitExceeded(f"tar member {info.name} is {info.size} bytes")
    if info.offset_data + info.size > source.size:
        # Checked before reading: tarfile would allocate the declared size, then fail.
        problem = f"tar member {info.name} declares {info.size} bytes, past the end of the file"
    elif info.issparse():
        problem = f"tar member {info.name} is a sparse file: its holes are not audited"
    elif not info.isreg():
        problem = f"tar member {info.name} is not a file"
    else:
        # Read directly: tarfile's own reads are kept to headers (see TAR_HEADER_MAX).
        return source.read_at(info.offset_data, info.size)
    container.issues.append(ContainerIssue(Category.MALFORMED, problem, member=info.name))
    container.complete = False
    return None


def _interleaved(container: Container, name: str, data: bytes) -> None:
    """storages: count, then per storage (key, location, type) + 8-byte numel + raw bytes,
    then the storage views; tensors: count, then per tensor (key, storage_id, type) +
    fixed-size shape records."""
    first = run_pickle(data)
    container.units.append(PickleUnit(f"{name}[count]", first, torch_reads=False))
    if not first.complete or not isinstance(first.root, int):
        return
    pos = first.end
    for i in range(min(first.root, 1 << 20)):
        result = run_pickle(data, pos)
        container.units.append(PickleUnit(f"{name}[{i}]", result, torch_reads=False))
        if not result.complete:
            return
        pos = result.end
        header = result.root
        try:
            if name == "storages":
                size = 1
                if type(header) is tuple and len(header) == 3 and isinstance(header[2], Global):
                    size = STORAGE_TYPES.get(header[2].name, ("", 1))[1]
                (numel,) = struct.unpack_from("<q", data, pos)
                pos += 8 + numel * size
            else:
                (ndim,) = struct.unpack_from("<i", data, pos)
                pos += 8 + 16 * ndim + 8
        except struct.error:
            container.issues.append(
                ContainerIssue(Category.MALFORMED, f"tar member {name} is truncated")
            )
            container.complete = False
            return
        if pos > len(data) or pos < 0:
            container.issues.append(
                ContainerIssue(Category.MALFORMED, f"tar member {name} is truncated")
            )
            container.complete = False
            return
    if name == "storages":
        # torch's tar loader unpickles one more stream after the records: the storage views.
        views = run_pickle(data, pos)
        container.units.append(PickleUnit(f"{name}[views]", views, torch_reads=False))
