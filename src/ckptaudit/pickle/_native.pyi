"""The optional compiled core (``_native.c``, ``_loop.c``, ``_walker.c``), as Python sees it.

Only :mod:`ckptaudit.pickle.loop` and :mod:`ckptaudit.pickle.paths` use it: each registers
what its part needs once, by keyword, then calls it once per pickle or per walk.
"""

import struct
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

from ckptaudit.errors import PickleError
from ckptaudit.pickle.machine import Machine
from ckptaudit.pickle.nodes import Call, Global, PDict, PersId, PSet
from ckptaudit.pickle.result import Event, PickleResult

class LoopState(Protocol):
    """What :func:`run` reads from the machine, once per run (a ``loop.Machine`` has it)."""

    data: bytes | memoryview
    start: int
    end: int
    stack: list[Any]
    metastack: list[int]
    counts: list[int]
    """256 counters, one per opcode byte; run() adds the opcodes it executed."""
    buf_end: int
    """Read after each FRAME: where the frame buffer ends (-1 for none)."""
    result: PickleResult
    """run() appends to its calls, events and persids and fills its opcode_first."""

def configure_loop(
    *,
    call_type: type[Call],
    pdict_type: type[PDict],
    persid_type: type[PersId],
    event_type: type[Event],
    pickle_error: type[PickleError],
    struct_error: type[struct.error],
    append_to: Callable[[Machine, Any, list[Any], str, int], None],
    setitems_on: Callable[[Machine, Any, list[Any], str, int], None],
    handlers: tuple[Callable[[Machine, int], int] | None, ...],
    noted: bytes,
    nest_tuple: Callable[[Machine, tuple[Any, ...], int], None],
    passed_buffer: Callable[[Machine, int, int], None],
) -> None:
    """Register the node classes, errors, helpers and the 256 handlers the loop calls.

    ``noted`` has one byte per opcode: nonzero where the first use's offset is recorded.
    ``nest_tuple`` is called for each new tuple that holds a tuple, ``passed_buffer`` when
    an opcode reaches the end of the frame buffer ``buf_end``.
    Raises TypeError if anything has another shape than this version's loop expects.
    """

def run(machine: LoopState, /) -> tuple[int, int, Exception]:
    """Run the dispatch loop until an exception ends it (STOP's handler raises one too).

    Returns the position reached, the position of the opcode that ended the run, and the
    exception, for the caller to classify. Exceptions that are not ``Exception`` propagate.
    """

def configure_walker(
    *,
    call_type: type[Call],
    pdict_type: type[PDict],
    global_type: type[Global],
    pset_type: type[PSet],
    render_steps: Callable[[Sequence[tuple[int, Any, int]]], str],
    leaf_calls: frozenset[str] | set[str],
) -> None:
    """Register the node classes the walker reads, the path renderer and the leaf calls."""

def locate(
    root: object, wanted: dict[int, Sequence[Hashable]], max_paths: int, /
) -> tuple[dict[Hashable, list[str]], dict[Hashable, int], set[int]]:
    """Walk the tree from ``root`` as ``paths.locate`` does, with the same result."""
