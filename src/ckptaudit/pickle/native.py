"""The optional compiled core (``_native``): the emulator's dispatch loop and the path walker.

It is built by ``setup.py`` where a C compiler exists; elsewhere the pure-Python code runs and
gives identical results (the tests compare the two on every corpus). Setting
``CKPTAUDIT_PURE_PYTHON=1`` forces the pure-Python code.

This module imports nothing else from the package: the parts that use the compiled core (the
loop in :mod:`ckptaudit.pickle.loop`, the walker in :mod:`ckptaudit.pickle.paths`) register
with it through :func:`configured` when they are imported, and :func:`backend` reads what they
registered.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

__all__ = ["PARTS", "backend", "configured", "load"]

PARTS = ("loop", "walker")
"""The parts of the core that have a compiled version."""

_T = TypeVar("_T")

_compiled_parts: dict[str, bool] = {}
"""Part -> whether it runs compiled, as registered by :func:`configured`."""


def load() -> ModuleType | None:
    """The compiled module (not yet configured), or None when it is not built or is off."""
    if os.environ.get("CKPTAUDIT_PURE_PYTHON"):
        return None
    try:
        from ckptaudit.pickle import _native
    except ImportError:
        return None
    return _native


def configured(part: str, setup: Callable[[], _T]) -> _T | None:
    """What ``setup`` returns once it registered ``part`` with the compiled module, or None.

    None means that ``part`` runs its pure-Python code: the module is not built or is off,
    or it refused the setup (a stale build from another version of this package), which
    also warns and says why. Either way the outcome is recorded for :func:`backend`.
    """
    if part not in PARTS:
        raise ValueError(f"unknown part of the compiled core: {part!r}")
    compiled: _T | None = None
    if load() is not None:
        try:
            compiled = setup()
        except (TypeError, AttributeError, ValueError, RuntimeError) as exc:
            warnings.warn(
                f"ckptaudit's compiled core is unusable ({exc}); using the pure-Python code. "
                "Reinstall ckptaudit to rebuild it.",
                RuntimeWarning,
                stacklevel=2,
            )
    _compiled_parts[part] = compiled is not None
    return compiled


def backend() -> str:
    """Which core runs: ``"compiled"`` when every part does, else ``"python"``.

    Importing :mod:`ckptaudit.pickle` (which any import of this module does first) imports
    both parts, so both have registered by the time this can be called.
    """
    return "compiled" if all(_compiled_parts.get(part) for part in PARTS) else "python"
