"""Pickles inside pickles: literal payloads handed to a loader are scanned too.

``pickle.loads(b'...')``, ``torch.load(io.BytesIO(b'...'))`` and their relatives run a second
pickle when the first is loaded. The outer call is dangerous by the catalog already; when the
payload is a literal, ckptaudit also runs it through the emulator so the report says what it
would do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ckptaudit.formats.interface import PickleUnit
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Call, Global
from ckptaudit.pickle.vm import run_pickle

__all__ = ["NESTED_LOADERS", "literal_bytes", "nested_units"]

NESTED_LOADERS = frozenset(
    {
        "pickle.loads",
        "pickle.load",
        "_pickle.loads",
        "_pickle.load",
        "cPickle.loads",
        "pickle._loads",
        "dill.loads",
        "dill.load",
        "cloudpickle.loads",
        "joblib.load",
        "torch.load",
        "torch.serialization.load",
        "torch.storage._load_from_bytes",
        "numpy.load",
        "pandas.read_pickle",
        "shelve.open",
    }
)
"""Callables that unpickle their first argument."""

_WRAPPERS = frozenset({"io.BytesIO", "_io.BytesIO", "builtins.bytes", "builtins.bytearray"})


def literal_bytes(value: Any, depth: int = 0) -> bytes | None:
    """The bytes a loader would read, when they are spelled out in the pickle."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if depth > 3 or not isinstance(value, Call) or not isinstance(value.func, Global):
        return None
    name = value.func.qualified
    args = value.args if type(value.args) is tuple else ()
    if name in ("_codecs.encode", "codecs.encode") and len(args) == 2:
        text, encoding = args
        if isinstance(text, str) and encoding in ("latin1", "latin-1"):
            return text.encode("latin-1", "replace")
    if name in _WRAPPERS and args:
        return literal_bytes(args[0], depth + 1)
    return None


_TORCH_LOADERS = frozenset(
    {"torch.load", "torch.serialization.load", "torch.storage._load_from_bytes"}
)
"""Loaders that read a whole torch checkpoint (a zip or the legacy format), not one pickle."""

ReadNested = Callable[[bytes, Limits], list[PickleUnit]]


def nested_units(
    units: list[PickleUnit], limits: Limits, read_checkpoint: ReadNested
) -> list[PickleUnit]:
    """Pickle units for the literal payloads of nested loaders, to the configured depth.

    A payload of torch's own loaders is read as the checkpoint it is (``read_checkpoint``:
    a skorch net pickles each tensor as ``torch.storage._load_from_bytes(<a torch file>)``);
    any other payload is one pickle. Levels are walked one after another, never recursively.
    """
    found: list[PickleUnit] = []
    frontier = list(units)
    for level in range(limits.max_nested_depth):
        next_frontier: list[PickleUnit] = []
        for unit in frontier:
            for call in unit.result.calls:
                func = call.func
                if not isinstance(func, Global) or func.qualified not in NESTED_LOADERS:
                    continue
                args = call.args if type(call.args) is tuple else ()
                payload = literal_bytes(args[0]) if args else None
                if payload is None or len(found) >= limits.max_pickles:
                    continue
                where = unit.member or "main pickle"
                member = (
                    f"nested pickle passed to {func.qualified} at byte {call.offset} of {where}"
                )
                if func.qualified in _TORCH_LOADERS:
                    inner = [
                        PickleUnit(f"{member}: {u.member}" if u.member else member, u.result)
                        for u in read_checkpoint(payload, limits)
                    ]
                else:
                    inner = [PickleUnit(member, run_pickle(payload))]
                for piece in inner[: limits.max_pickles - len(found)]:
                    nested = PickleUnit(
                        piece.member, piece.result, torch_reads=False, order=90 + level, nested=True
                    )
                    found.append(nested)
                    next_frontier.append(nested)
        frontier = next_frontier
    return found
