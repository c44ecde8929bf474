"""safetensors: a JSON header and raw tensors; no pickle, nothing to execute."""

from __future__ import annotations

import json
import struct

from ckptaudit.errors import ContainerError
from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.interface import Container, ContainerIssue
from ckptaudit.formats.source import Source

__all__ = ["read_safetensors"]

_MAX_HEADER = 100 << 20  # the format's own readers refuse larger headers


def read_safetensors(source: Source, name: str) -> Container:
    """Read a safetensors header and count its tensors."""
    head = source.read_at(0, 8)
    if len(head) < 8:
        raise ContainerError("safetensors file shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > min(_MAX_HEADER, source.size - 8):
        raise ContainerError(f"safetensors header of {n} bytes does not fit the file")
    try:
        header = json.loads(source.read_at(8, n))
    except ValueError as exc:
        raise ContainerError(f"safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ContainerError("safetensors header is not a JSON object")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = 8 + n
    for key, info in tensors.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
            or end + offsets[1] > source.size
        ):
            raise ContainerError(f"safetensors entry {key!r} has bad data_offsets")
    container = Container(format=ContainerFormat.SAFETENSORS, tensor_count=len(tensors))
    if not name.endswith(".safetensors"):
        container.issues.append(
            ContainerIssue(
                Category.NOT_A_TORCH_CHECKPOINT,
                "a safetensors file: torch.load reads it only under a .safetensors name; load it "
                "with safetensors.torch.load_file",
                torch_error="Invalid magic number; corrupt file?",
            )
        )
    return container
