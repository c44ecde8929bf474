"""A plain pickle file (pickle.dump, protocols 0-5)."""

from __future__ import annotations

from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.detect import LEGACY_MAGIC
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.legacy import frames_left, read_legacy, read_pickle_sequence
from ckptaudit.formats.source import Source
from ckptaudit.formats.streams import trailing_units
from ckptaudit.pickle.limits import Limits

__all__ = ["read_plain_pickle"]


def read_plain_pickle(source: Source, limits: Limits) -> Container:
    """Read a plain pickle: torch.load takes it for a legacy file and fails after the first pickle.

    torch runs the first pickle through the weights_only unpickler (so its globals can fail
    first) and then compares it with the legacy magic number.
    """
    container = Container(format=ContainerFormat.PICKLE)
    (result,) = read_pickle_sequence(source, limits, 1)
    if result.complete and type(result.root) is int and result.root == LEGACY_MAGIC:
        # The legacy magic pickled some other way (protocol 0/1/3-5, LONG4...): torch reads the
        # other four pickles all the same, so they must be audited as a legacy file.
        return read_legacy(source, limits)
    container.units.append(PickleUnit(None, result, torch_reads=True))
    frames_left(container, source, [result], ["the pickle"], limits)
    if result.complete and result.root != LEGACY_MAGIC:
        container.issues.append(
            ContainerIssue(
                Category.NOT_A_TORCH_CHECKPOINT,
                "a plain pickle, not a torch.save checkpoint: torch.load reads it as a legacy "
                "file and rejects it",
                torch_error="Invalid magic number; corrupt file?",
            )
        )
    if result.complete and result.end < source.size:
        rest = source.read_at(result.end, min(source.size - result.end, limits.max_pickle_bytes))
        trailing_units(container, rest, 0, "pickle", base=result.end)
    return container
