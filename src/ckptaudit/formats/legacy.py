"""torch's legacy (non-zip) format: five pickles, then raw storages.

torch runs all five through the weights_only unpickler: magic number, protocol version,
sys_info, the object, the storage keys. Only the bytes up to the end of the fifth pickle
are read, growing the read window until the pickles parse: never the storages.
"""

from __future__ import annotations

from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.detect import LEGACY_MAGIC
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.source import Source
from ckptaudit.formats.streams import trailing_units
from ckptaudit.pickle.budget import current_budget
from ckptaudit.pickle.describe import brief
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.result import describe_skips
from ckptaudit.pickle.vm import PickleResult, run_pickle
from ckptaudit.structure import StorageRef

__all__ = ["read_legacy", "read_pickle_sequence"]

_PARTS = ("magic number", "protocol version", "sys_info", "object", "storage keys")
_PROTOCOL_VERSION = 1001


def read_pickle_sequence(source: Source, limits: Limits, count: int) -> list[PickleResult]:
    """Run up to ``count`` consecutive pickles from the start of the file.

    The window read from the file doubles until the pickles parse or the file ends, so a
    small object pickle in front of gigabytes of storages costs a small read.
    """
    window = min(source.size, 1 << 20)
    limit = min(source.size, limits.max_pickle_bytes)
    budget = current_budget()
    while True:
        data = source.read_at(0, window)
        spent = budget.mark() if budget is not None else None
        results: list[PickleResult] = []
        pos = 0
        truncated = False
        for _ in range(count):
            result = run_pickle(data, pos)
            results.append(result)
            if not result.complete:
                truncated = result.error is not None and "truncated" in str(result.error)
                break
            pos = result.end
        if not truncated or window >= limit:
            return results
        if budget is not None and spent is not None:
            budget.refund(spent)  # these results are dropped: the window grows fourfold
        window = min(limit, window * 4)


def frames_left(
    container: Container,
    source: Source,
    results: list[PickleResult],
    labels: list[str],
    limits: Limits,
) -> None:
    """For each pickle whose STOP sits inside a FRAME, audit what follows the frame: a loader
    that reads frames whole starts its next pickle there (see streams.after_frame). Where a
    reader from a file reads a pickle another way (see ckptaudit.pickle.frames), its next
    pickle starts where that reading ends: audited from there too."""
    for label, result in zip(labels, results, strict=False):
        starts = {result.frame_end: f"{label} past its frame"}
        for reading in result.readings:
            if reading.complete:
                read = f"{label} {describe_skips(reading.skips)},"
                starts.setdefault(reading.end, read)
                starts.setdefault(reading.frame_end, read)
        starts.pop(result.end, None)
        for start, where in starts.items():
            if start is not None and start < source.size:
                rest = source.read_at(start, min(source.size - start, limits.max_pickle_bytes))
                trailing_units(container, rest, 0, where, base=start)


def read_legacy(source: Source, limits: Limits) -> Container:
    """Read a legacy-format checkpoint's five pickles."""
    container = Container(format=ContainerFormat.TORCH_LEGACY)
    results = read_pickle_sequence(source, limits, len(_PARTS))
    for n, result in enumerate(results):
        container.units.append(PickleUnit(_PARTS[n], result, torch_reads=True, order=n))
    frames_left(container, source, results, [f"the {part} pickle" for part in _PARTS], limits)
    if results and results[0].complete and results[0].root != LEGACY_MAGIC:
        container.issues.append(
            ContainerIssue(
                Category.MALFORMED,
                "bad legacy magic number",
                torch_error="Invalid magic number; corrupt file?",
            )
        )
    if len(results) > 1 and results[1].complete and results[1].root != _PROTOCOL_VERSION:
        container.issues.append(
            ContainerIssue(
                Category.MALFORMED,
                f"unsupported legacy protocol version {brief(results[1].root)}",
                torch_error=f"Invalid protocol version: {brief(results[1].root)}",
            )
        )
    if len(results) == len(_PARTS) and all(r.complete for r in results):
        problem, end = _storage_problem(source, container.storages(), results[4])
        if problem is not None:
            container.issues.append(
                ContainerIssue(Category.MALFORMED, problem, torch_error=problem)
            )
        elif end is not None and end < source.size:
            # torch stops after the storages; a loop of pickle.load goes on reading.
            rest = source.read_at(end, min(source.size - end, limits.max_pickle_bytes))
            trailing_units(container, rest, 0, "legacy file", base=end)
    return container


def _storage_problem(
    source: Source, storages: dict[str, StorageRef], keys: PickleResult
) -> tuple[str | None, int | None]:
    """Check the raw storages after the fifth pickle as torch reads them, by 8-byte headers.

    For each key of the storage-key list, in order, torch takes the storage the object pickle
    made for it (failing if there is none), reads an 8-byte element count that must match it,
    then that many elements. Only the headers are read here, never the data.

    Returns the problem torch meets, if any, and where the storages end (None when that
    cannot be told).
    """
    if type(keys.root) is not list:
        return None, None
    pos = keys.end
    for key in keys.root:
        if type(key) is not str:
            return None, None  # not what torch.save writes; torch's own errors vary here
        ref = storages.get(key)
        if ref is None:
            return f"storage key '{key}' not found in deserialized_objects", None
        nbytes, element_size = ref.nbytes, ref.element_size
        header = source.read_at(pos, 8)
        if len(header) < 8:
            return (
                f"unexpected EOF, expected {8 - len(header)} more bytes. The file might be "
                "corrupted."
            ), None
        numel = int.from_bytes(header, "little", signed=True)
        if numel * element_size != nbytes:
            return (
                f"storage has wrong byte size: expected {numel * element_size} got {nbytes}",
                None,
            )
        pos += 8
        if pos + nbytes > source.size:
            return (
                f"unexpected EOF, expected {pos + nbytes - source.size} more bytes. The file might "
                "be corrupted."
            ), None
        pos += nbytes
    return None, pos
