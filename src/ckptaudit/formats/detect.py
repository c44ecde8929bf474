"""Detect a file's format from its bytes, as torch.load dispatches on them."""

from __future__ import annotations

import io
import json
import struct
import tarfile

from ckptaudit.formats.source import Source

__all__ = ["FORMATS", "LEGACY_MAGIC", "detect_format"]

FORMATS = (
    "torch-zip",
    "torchscript",
    "torch-legacy",
    "torch-tar",
    "pickle",
    "safetensors",
    "zip",
    "unknown",
)
"""Every container format ckptaudit reads. ``zip`` is a zip torch would not accept;
``unknown`` is bytes of no known format with pickle streams carved out of them (a stored 7z,
a polyglot)."""

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The magic number torch's legacy format pickles first."""

_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")


def _is_tar(head: bytes) -> bool:
    """True when Python's tarfile accepts the start of the file (torch's own tar probe)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r:"):
            return True
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


def detect_format(source: Source, head: bytes) -> str | None:
    """Name the container format of a file from its first bytes; None if unknown.

    ``head`` is the first bytes of the file (at least 1 KiB where the file has them).
    Order follows torch.load: a zip only when the file starts with a local header; a tar when
    Python's tarfile accepts it; then the legacy magic; then plain pickles and safetensors.
    """
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head.startswith(_LEGACY_PREFIX):
        return "torch-legacy"
    if _is_safetensors(head, source.size):
        return "safetensors"
    if len(head) >= 512 and _is_tar(head):
        return "torch-tar"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if head[:1] in (b"(", b"]", b"}", b"c", b"N", b"I", b"S", b"V", b"X", b"K", b"J", b")"):
        return "pickle"
    return None
