"""Example models whose checkpoints ckptaudit audits, before and after the ``weights_only`` fix.

A morphogenetic CNN (a host with seed slots "early", "mid" and "late") and the PPO agent that
controls it, each in two serializations: :mod:`.legacy` pickles live Python objects and fails
``torch.load(weights_only=True)``; :mod:`.fixed` stores only tensors and primitives and loads.
:mod:`.examples` builds them (:func:`build_checkpoint`); :mod:`.plan_script` is the plan's
audit script.

The models need torch (the ``torch`` extra), imported on first use and not with the package:
the plan's script audits checkpoints without torch and needs it only to build examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import fixed, legacy
    from .examples import (
        EXAMPLE_METADATA,
        SEED,
        build_agent,
        build_checkpoint,
        build_model,
        example_input,
    )

__all__ = [
    "EXAMPLE_METADATA",
    "SEED",
    "build_agent",
    "build_checkpoint",
    "build_model",
    "example_input",
    "fixed",
    "legacy",
]

_EXAMPLES = frozenset(__all__) - {"fixed", "legacy"}


def __getattr__(name: str) -> Any:
    """Import the examples (and torch) when one of them is first asked for."""
    if name in ("fixed", "legacy"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXAMPLES:
        return getattr(importlib.import_module(f"{__name__}.examples"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
