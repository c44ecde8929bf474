"""Container formats: detect one from the bytes and read its pickles without executing them."""

from __future__ import annotations

import re

from ckptaudit.checks import PickleUnit
from ckptaudit.errors import InputError, UnknownFormatError
from ckptaudit.formats.container import Container, ContainerIssue
from ckptaudit.formats.detect import FORMATS, detect_format
from ckptaudit.formats.legacy import read_legacy
from ckptaudit.formats.plainpickle import read_plain_pickle
from ckptaudit.formats.safetensors import read_safetensors
from ckptaudit.formats.source import BytesSource, FileSource, Source
from ckptaudit.formats.torchtar import read_torch_tar
from ckptaudit.formats.torchzip import read_torch_zip
from ckptaudit.formats.ziparchive import ZipArchive
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.vm import run_pickle

__all__ = [
    "FORMATS",
    "BytesSource",
    "Container",
    "ContainerIssue",
    "FileSource",
    "Source",
    "read_container",
]

_HEAD = 4096
_CARVE_WINDOW = 64 << 20  # bytes searched for embedded pickles in a file of unknown format
_CARVE_STARTS = 64  # candidate offsets tried at most
_PROTO = re.compile(rb"\x80[\x02-\x05]")


def read_container(source: Source, limits: Limits) -> Container:
    """Detect the format of a source and read every pickle in it.

    Raises:
        InputError: the bytes are in no format ckptaudit knows, or the container is damaged
            beyond reading.
    """
    head = source.read_at(0, _HEAD)
    if not head:
        raise UnknownFormatError("empty file")
    fmt = detect_format(source, head)
    if fmt == "zip":
        return read_torch_zip(source, limits)
    if fmt == "torch-legacy":
        return read_legacy(source, limits)
    if fmt == "safetensors":
        return read_safetensors(source, source.name)
    if fmt == "torch-tar":
        return read_torch_tar(source, limits)
    if fmt == "pickle":
        return read_plain_pickle(source, limits)
    if fmt is None:
        return _unknown(source, head, limits)
    raise AssertionError(f"unhandled format {fmt}")  # pragma: no cover - exhaustive above


def _unknown(source: Source, head: bytes, limits: Limits) -> Container:
    """Not a format torch reads; but a zip hidden behind other bytes is still scanned."""
    try:
        archive = ZipArchive(source, limits, allow_prefix=True)
    except InputError:
        carved = _carve(source, limits)
        if carved is not None:
            return carved
        raise UnknownFormatError(
            f"not a checkpoint: unrecognised bytes {head[:8]!r} (not a torch zip, legacy, tar, "
            "pickle or safetensors file)"
        ) from None
    container = Container(format="zip")
    container.issues.append(
        ContainerIssue(
            "not-a-torch-checkpoint",
            "a zip archive behind other bytes: torch.load does not read it as a checkpoint",
            torch_error="Invalid magic number; corrupt file?",
        )
    )
    for note in archive.anomalies:
        container.issues.append(ContainerIssue("zip-anomaly", note))
    for entry in archive.entries[: limits.max_members]:
        if len(container.units) >= limits.max_pickles:
            break
        try:
            data = archive.read(entry)
        except InputError:
            continue
        if data[:1] == b"\x80" or entry.name.lower().endswith(".pkl"):
            container.units.append(PickleUnit(entry.name, run_pickle(data), torch_reads=False))
    return container


def _carve(source: Source, limits: Limits) -> Container | None:
    """Find pickle streams inside bytes of unknown format (stored archives, polyglots).

    torch cannot load such a file, but another loader may unpack and run what is inside; a
    stream that names globals or calls anything is audited as a pickle nobody should run.
    """
    data = source.read_at(0, min(source.size, _CARVE_WINDOW))
    container = Container(format="unknown")
    for tried, match in enumerate(_PROTO.finditer(data)):
        if tried >= _CARVE_STARTS or len(container.units) >= limits.max_pickles:
            break
        result = run_pickle(data, match.start())
        if result.globals or result.calls:
            container.units.append(
                PickleUnit(f"embedded pickle at byte {match.start()}", result, torch_reads=False)
            )
    if not container.units:
        return None
    container.issues.append(
        ContainerIssue(
            "not-a-torch-checkpoint",
            f"bytes of unknown format holding {len(container.units)} embedded pickle stream(s)",
            torch_error="Invalid magic number; corrupt file?",
        )
    )
    return container
