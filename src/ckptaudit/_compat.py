"""What differs between the Python versions ckptaudit supports (3.10 and newer)."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["assert_never"]

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - exercised on 3.10 only

    def assert_never(value: NoReturn, /) -> NoReturn:
        """Fail on a member of a closed set that a dispatch does not handle."""
        raise AssertionError(f"unhandled value: {value!r}")
