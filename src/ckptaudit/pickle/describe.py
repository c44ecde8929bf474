"""Bounded, one-line descriptions of inert values, for messages at every layer."""

from __future__ import annotations

from typing import Any

from ckptaudit.pickle.nodes import Call, Global

__all__ = ["brief"]


def brief(value: Any) -> str:
    """A short, bounded description of a value (never recursive, never huge)."""
    if isinstance(value, Global):
        return value.qualified
    if isinstance(value, Call):
        inner = value.func.qualified if isinstance(value.func, Global) else "a computed callable"
        return f"<result of {inner}(...)>"
    if isinstance(value, (str, bytes)):
        text = repr(value[:60])
        return text + ("..." if len(value) > 60 else "")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() < 200 else f"<int of {value.bit_length()} bits>"
    return f"<{type(value).__name__}>"
