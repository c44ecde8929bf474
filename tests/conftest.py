"""Shared fixtures and settings of the whole suite.

Helper modules (``support``, ``hostile_cases``, ``oracle_types``) are imported by name: the
``pythonpath`` option in pyproject.toml puts tests/ on the path.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

import pytest

# A bug inside ckptaudit becomes an "internal error" report for users; tests want it raised.
os.environ["CKPTAUDIT_DEBUG"] = "1"

# The helpers assert too (a payload reached, a verdict equal to torch's): rewrite their asserts
# as pytest does for test modules, so a failure shows the values.
pytest.register_assert_rewrite("support")


@functools.cache
def _skips_without_torch(function: Callable[..., Any]) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return 'importorskip("torch")' in source


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as ``torch`` every test that skips itself when torch is missing.

    Modules that import torch say so with ``pytestmark``; a test that asks for torch in its
    own body (``pytest.importorskip("torch")``) is marked here, so that ``-m "not torch"``
    never runs it, wherever it lives.
    """
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and _skips_without_torch(function):
            item.add_marker(pytest.mark.torch)
