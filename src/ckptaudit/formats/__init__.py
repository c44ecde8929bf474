"""Container formats: detect one from the bytes and read its pickles without executing them."""

from __future__ import annotations

import re

from ckptaudit._compat import assert_never
from ckptaudit.errors import InputError, LimitExceeded, UnknownFormatError
from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.detect import detect_format, other_reading
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.legacy import read_legacy
from ckptaudit.formats.nested import nested_units
from ckptaudit.formats.npy import NPY_MAGIC, read_npy
from ckptaudit.formats.plainpickle import read_plain_pickle
from ckptaudit.formats.safetensors import read_safetensors
from ckptaudit.formats.source import BytesSource, FileSource, Source
from ckptaudit.formats.streams import add_reading_units
from ckptaudit.formats.torchtar import read_torch_tar
from ckptaudit.formats.torchzip import read_torch_zip
from ckptaudit.formats.ziparchive import ZipArchive
from ckptaudit.pickle.budget import Budget, current_budget
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.vm import run_pickle

__all__ = [
    "BytesSource",
    "Container",
    "ContainerIssue",
    "FileSource",
    "PickleUnit",
    "Source",
    "read_container",
]

_HEAD = 4096
_CARVE_WINDOW = 64 << 20  # bytes searched for embedded pickles in a file of unknown format
_CARVE_STARTS = 64  # candidate offsets tried at most
_PROTO = re.compile(rb"\x80[\x02-\x05]")


def read_container(source: Source, limits: Limits) -> Container:
    """Detect the format of a source and read every pickle in it.

    Every pickle stream of the file, whoever runs it, draws on one budget made here (see
    :mod:`ckptaudit.pickle.budget`).

    Raises:
        InputError: the bytes are in no format ckptaudit knows, or the container is damaged
            beyond reading.
    """
    with Budget(limits, source.size).active() as budget:
        container = _read_all(source, limits)
        container.emulated_bytes = budget.bytes_emulated
        container.emulated_opcodes = budget.opcodes
        if budget.exhausted:
            # Streams the budget stopped are dropped when they named nothing: say so here,
            # so that a file whose rest went unaudited is never called compatible.
            container.issues.append(ContainerIssue(Category.LIMIT_EXCEEDED, budget.describe()))
            container.complete = False
        return container


def _read_all(source: Source, limits: Limits) -> Container:
    head = source.read_at(0, _HEAD)
    if not head:
        raise UnknownFormatError("empty file")
    fmt = detect_format(source, head) or ContainerFormat.UNKNOWN
    container = _read(fmt, source, limits)
    other = other_reading(source, head, fmt)
    if other is not None:
        _add_reading(container, other, source, limits)
    add_reading_units(container, list(container.units))
    # Literal payloads handed to a loader (pickle.loads(b'...')) are pickles too.
    nested = nested_units(container.units, limits, _nested_checkpoint)
    container.units.extend(nested)
    add_reading_units(container, nested)
    return container


def _nested_checkpoint(payload: bytes, limits: Limits) -> list[PickleUnit]:
    """The pickles of a checkpoint given as bytes inside another (``torch.load(BytesIO(b))``).

    Read like a file, but its own nested payloads are left to the caller's next level, so
    that nesting is walked level by level and never by recursion.
    """
    source = BytesSource(payload, "<nested checkpoint>")
    head = source.read_at(0, _HEAD)
    fmt = detect_format(source, head) if head else None
    if fmt in (ContainerFormat.ZIP, ContainerFormat.TORCH_LEGACY):
        try:
            return _read(fmt, source, limits).units
        except InputError:
            pass  # not readable as a checkpoint: audited as the one pickle it may be
    return [PickleUnit(None, run_pickle(payload))]


def _read(fmt: ContainerFormat, source: Source, limits: Limits) -> Container:
    """Read a container with the reader of its format (every format has one)."""
    match fmt:
        case ContainerFormat.ZIP | ContainerFormat.TORCH_ZIP | ContainerFormat.TORCHSCRIPT:
            return read_torch_zip(source, limits)
        case ContainerFormat.TORCH_LEGACY:
            return read_legacy(source, limits)
        case ContainerFormat.SAFETENSORS:
            return read_safetensors(source, source.name)
        case ContainerFormat.TORCH_TAR:
            return read_torch_tar(source, limits)
        case ContainerFormat.PICKLE:
            return read_plain_pickle(source, limits)
        case ContainerFormat.UNKNOWN:
            return _unknown(source, source.read_at(0, _HEAD), limits)
        case _:
            assert_never(fmt)


def _add_reading(
    container: Container, fmt: ContainerFormat, source: Source, limits: Limits
) -> None:
    """Audit a polyglot's other interpretation too: its pickles are somebody's to run."""
    container.issues.append(
        ContainerIssue(
            Category.POLYGLOT,
            f"the bytes are also a valid {fmt} file: torch reads them as {container.format}, "
            "tools that sniff the start of the file as the other; both are audited",
        )
    )
    try:
        other = _read(fmt, source, limits)
    except InputError as exc:
        container.issues.append(ContainerIssue(Category.MALFORMED, f"as {fmt}: {exc}"))
        return
    for unit in other.units:
        member = f"{fmt}:{unit.member}" if unit.member else fmt
        container.units.append(PickleUnit(member, unit.result, torch_reads=False))


def _unknown(source: Source, head: bytes, limits: Limits) -> Container:
    """Not a format torch reads by its first bytes; but torch.load still unpickles whatever
    opcode the file starts with, and a zip hidden behind other bytes is still scanned."""
    if head.startswith(NPY_MAGIC):
        return read_npy(source, limits)
    first = run_pickle(source.read_at(0, min(source.size, _CARVE_WINDOW)))
    if first.complete or first.globals or first.calls:
        # A pickle that starts with a rarer opcode (FLOAT, NEWTRUE, FRAME...): torch.load
        # runs it as a legacy file's first pickle, and a loop of pickle.load runs it too.
        container = read_plain_pickle(source, limits)
        _add_zip_behind(container, source, limits)
        return container
    container = Container(format=ContainerFormat.ZIP)
    if not _add_zip_behind(container, source, limits):
        carved = _carve(source, limits)
        if carved is not None:
            return carved
        raise UnknownFormatError(
            f"not a checkpoint: unrecognised bytes {head[:8]!r} (not a torch zip, legacy, tar, "
            "pickle or safetensors file)"
        )
    return container


def _add_zip_behind(container: Container, source: Source, limits: Limits) -> bool:
    """Audit the members of a zip that ends the file behind other bytes; False if none."""
    try:
        archive = ZipArchive(source, limits, allow_prefix=True)
    except InputError:
        return False
    container.issues.append(
        ContainerIssue(
            Category.NOT_A_TORCH_CHECKPOINT,
            "a zip archive behind other bytes: torch.load does not read it as a checkpoint",
            torch_error="Invalid magic number; corrupt file?",
        )
    )
    for note in archive.anomalies:
        container.issues.append(ContainerIssue(Category.ZIP_ANOMALY, note))
    for entry in archive.entries[: limits.max_members]:
        if len(container.units) >= limits.max_pickles:
            break
        try:
            data = archive.read(entry)
        except InputError:
            continue
        if data[:1] == b"\x80" or entry.name.lower().endswith(".pkl"):
            container.units.append(PickleUnit(entry.name, run_pickle(data), torch_reads=False))
    return True


def _carve(source: Source, limits: Limits) -> Container | None:
    """Find pickle streams inside bytes of unknown format (stored archives, polyglots).

    torch cannot load such a file, but another loader may unpack and run what is inside; a
    stream that names globals or calls anything is audited as a pickle nobody should run.
    """
    data = source.read_at(0, min(source.size, _CARVE_WINDOW))
    container = Container(format=ContainerFormat.UNKNOWN)
    for tried, match in enumerate(_PROTO.finditer(data)):
        if tried >= _CARVE_STARTS or len(container.units) >= limits.max_pickles:
            break
        result = run_pickle(data, match.start())
        if result.globals or result.calls:
            container.units.append(
                PickleUnit(f"embedded pickle at byte {match.start()}", result, torch_reads=False)
            )
    if not container.units:
        budget = current_budget()
        if budget is not None and budget.exhausted:
            raise LimitExceeded(f"{budget.describe()} while searching bytes of unknown format")
        return None
    container.issues.append(
        ContainerIssue(
            Category.NOT_A_TORCH_CHECKPOINT,
            f"bytes of unknown format holding {len(container.units)} embedded pickle stream(s)",
            torch_error="Invalid magic number; corrupt file?",
        )
    )
    return container
