"""A standalone numpy ``.npy`` file: ``numpy.load(allow_pickle=True)`` unpickles an object
array's body, with whatever protocol it was written in.

torch.load does not read such a file (its first byte is no pickle torch can run), so it is
never a checkpoint; but a pickle body is somebody's to run, and it is audited as one.
"""

from __future__ import annotations

from ckptaudit.errors import UnknownFormatError
from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.source import Source
from ckptaudit.formats.streams import after_frame, npy_body_offset
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.vm import run_pickle

__all__ = ["NPY_MAGIC", "read_npy"]

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every .npy file."""


def read_npy(source: Source, limits: Limits) -> Container:
    """Read a .npy file: its body as a pickle, and the arrays saved after it in turn.

    numpy writes an object array as its header and then a pickle; a file that ``np.save``
    wrote several arrays to holds them one after the other, and a loop of ``np.load`` reads
    them in order. A body that is no pickle (numbers) names nothing and is not kept.

    Raises:
        UnknownFormatError: the first header is cut short.
    """
    container = Container(format=ContainerFormat.UNKNOWN)
    container.issues.append(
        ContainerIssue(
            Category.NOT_A_TORCH_CHECKPOINT,
            "a numpy .npy array, not a torch checkpoint: numpy.load(allow_pickle=True) "
            "unpickles the body of an object array, torch.load refuses the file",
            torch_error="Unsupported operand 147",
        )
    )
    data = source.read_at(0, min(source.size, limits.max_pickle_bytes))
    pos = 0
    for index in range(limits.max_pickles):
        body = npy_body_offset(data[pos : pos + 16])
        if body is None or pos + body > len(data):
            if index == 0:
                raise UnknownFormatError(
                    "not a checkpoint: a numpy .npy file whose header is cut short"
                )
            break
        label = "the .npy array's body" if index == 0 else f"the .npy array at byte {pos}"
        result = run_pickle(data, pos + body)
        if result.globals or result.calls:
            container.units.append(PickleUnit(label, result, torch_reads=False))
        after_frame(container, data, result, label)
        if not result.complete or not data.startswith(NPY_MAGIC, result.end):
            break
        pos = result.end
    return container
