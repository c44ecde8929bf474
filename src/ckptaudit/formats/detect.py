"""Detect a file's format from its bytes, as torch.load dispatches on them."""

from __future__ import annotations

import json
import struct
import tarfile

from ckptaudit.errors import LimitExceeded
from ckptaudit.findings import ContainerFormat
from ckptaudit.formats.source import Source, SourceFile

__all__ = ["LEGACY_MAGIC", "TAR_HEADER_MAX", "detect_format", "is_tar", "other_reading"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The magic number torch's legacy format pickles first."""

TAR_HEADER_MAX = 8 << 10
"""The longest tar header record (GNU long name, PAX) handed to Python's tarfile. Real ones
are a path long; CPython before 3.11.10/3.12.6 parses PAX records in quadratic time
(CVE-2024-6232): 80 KB of digits costs 11 s, 8 KB a tenth of a second."""

_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")


def is_tar(source: Source) -> bool:
    """True when Python's tarfile opens the whole file, as torch.load's first probe does.

    The whole file, not its first bytes: a GNU long-name record can push the first real
    header past any fixed window.
    """
    try:
        with tarfile.open(fileobj=SourceFile(source, TAR_HEADER_MAX), mode="r:"):
            return True
    except LimitExceeded:
        return True  # a valid header announced a huge record: the tar reader reports it
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return False


def _is_safetensors(head: bytes, size: int) -> bool:
    if size < 10 or len(head) < 10:
        return False
    (n,) = struct.unpack_from("<Q", head)
    if n < 2 or n > size - 8 or head[8:9] != b"{":
        return False
    if n + 8 <= len(head):
        try:
            return isinstance(json.loads(head[8 : 8 + n]), dict)
        except ValueError:
            return False
    return True


def detect_format(source: Source, head: bytes) -> ContainerFormat | None:
    """Name the container format of a file from its bytes, in torch.load's order; None if unknown.

    ``head`` is the first bytes of the file (at least 1 KiB where the file has them).
    torch.load takes a zip only when the file starts with a local header, then tries
    tarfile on the whole file before anything else; the legacy magic, plain pickles and
    safetensors come after. :func:`other_reading` names what else the bytes could be. Any
    zip is named ``ZIP`` here: its reader tells a torch zip from TorchScript and other zips.
    """
    if head[:4] == b"PK\x03\x04":
        return ContainerFormat.ZIP
    if len(head) >= 512 and is_tar(source):
        return ContainerFormat.TORCH_TAR
    return _not_tar(source, head)


def _not_tar(source: Source, head: bytes) -> ContainerFormat | None:
    if head.startswith(_LEGACY_PREFIX):
        return ContainerFormat.TORCH_LEGACY
    if _is_safetensors(head, source.size):
        return ContainerFormat.SAFETENSORS
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return ContainerFormat.PICKLE
    if head[:1] in (b"(", b"]", b"}", b"c", b"N", b"I", b"S", b"V", b"X", b"K", b"J", b")"):
        return ContainerFormat.PICKLE
    return None


def other_reading(
    source: Source, head: bytes, fmt: ContainerFormat | None
) -> ContainerFormat | None:
    """The format another reader would see in a file torch reads as ``fmt``, if any.

    A tar whose first header is also a legacy checkpoint, a safetensors header or a
    pickle is read as a tar by torch and as the other format by tools that sniff the
    start of the file.
    """
    if fmt is not ContainerFormat.TORCH_TAR:
        return None
    return _not_tar(source, head)
