"""Static pickle analysis: an emulator that builds an inert tree and never imports or calls.

Modules depend on each other one way only (a test checks that the import graph has no cycle):
``nodes`` <- ``result`` <- ``machine`` <- ``frames`` <- ``handlers`` (with ``textnum``) <-
``loop`` <- ``vm``, which also uses ``budget`` (the per-file budget, over ``limits``);
``paths`` (the walker) uses ``nodes``; ``loop`` and ``paths`` register with ``native`` (the
optional compiled core), which imports neither.
"""

from ckptaudit.pickle import paths as paths  # the walker registers with native on import
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
