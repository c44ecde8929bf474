"""Static pickle analysis: an emulator that builds an inert tree and never imports or calls."""

from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Call, Global, Opaque, PDict, PersId, PSet
from ckptaudit.pickle.vm import Event, PickleResult, run_pickle

__all__ = [
    "Call",
    "Event",
    "Global",
    "Limits",
    "Opaque",
    "PDict",
    "PSet",
    "PersId",
    "PickleResult",
    "run_pickle",
]
