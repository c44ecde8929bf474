"""The optional compiled core (``_native``): the emulator's dispatch loop and the path walker.

It is built by ``setup.py`` where a C compiler exists; elsewhere the pure-Python code runs and
gives identical results (the tests compare the two on every corpus). Setting
``CKPTAUDIT_PURE_PYTHON=1`` forces the pure-Python code.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import ModuleType

__all__ = ["backend", "configured", "load"]


def load() -> ModuleType | None:
    """The compiled module (not yet configured), or None when it is not built or is off."""
    if os.environ.get("CKPTAUDIT_PURE_PYTHON"):
        return None
    try:
        from ckptaudit.pickle import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _native
    return module


def configured(setup: Callable[[ModuleType], None]) -> ModuleType | None:
    """The compiled module after ``setup`` registered what it needs, or None.

    A module that refuses the setup (a stale build from another version of this package)
    is not used: the pure-Python code runs instead, with a warning that says why.
    """
    module = load()
    if module is None:
        return None
    try:
        setup(module)
    except (TypeError, AttributeError, ValueError, RuntimeError) as exc:
        warnings.warn(
            f"ckptaudit's compiled core is unusable ({exc}); using the pure-Python code. "
            "Reinstall ckptaudit to rebuild it.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return module


def backend() -> str:
    """Which core runs: ``"compiled"`` or ``"python"``."""
    from ckptaudit.pickle import paths, vm  # imported here: both import this module

    return "python" if vm._compiled is None or paths._compiled is None else "compiled"
