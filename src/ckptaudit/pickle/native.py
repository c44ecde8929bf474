"""The optional compiled core (``_native``): the emulator's dispatch loop and the path walker.

It is built by ``setup.py`` where a C compiler exists; elsewhere the pure-Python code runs and
gives identical results (the tests compare the two on every corpus). Setting
``CKPTAUDIT_PURE_PYTHON=1`` forces the pure-Python code.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["backend", "load"]


def load() -> ModuleType | None:
    """The compiled module, or None when it is not built or is switched off."""
    if os.environ.get("CKPTAUDIT_PURE_PYTHON"):
        return None
    try:
        from ckptaudit.pickle import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _native
    return module


def backend() -> str:
    """Which core runs: ``"compiled"`` or ``"python"``."""
    return "python" if load() is None else "compiled"
