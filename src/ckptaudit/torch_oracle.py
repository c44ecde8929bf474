"""Ask the installed torch what it does: the exact weights_only error, where torch exists.

``torch.load(f, weights_only=True)`` runs torch's restricted unpickler, which is safe to call
on untrusted files; nothing here ever passes ``weights_only=False``. The audit core never
imports this module.
"""

from __future__ import annotations

import os
import re
import warnings

__all__ = ["torch_available", "torch_version", "weights_only_error"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def torch_available() -> bool:
    """True when torch can be imported (and CKPTAUDIT_NO_TORCH is not set)."""
    if os.environ.get("CKPTAUDIT_NO_TORCH"):
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_version() -> str | None:
    """The installed torch's version, or None."""
    if not torch_available():
        return None
    import torch

    return str(torch.__version__).split("+")[0]


def weights_only_error(path: str) -> str | None:
    """Load with weights_only=True; return None on success, else ``Type: message``.

    Raises:
        RuntimeError: torch is not available.
    """
    if not torch_available():
        raise RuntimeError("torch is not available")
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types; all mean "does not load"
        # torch bolds part of its message with terminal escapes; documents want plain text.
        return f"{type(exc).__name__}: {_ANSI.sub('', str(exc))}"
    return None
