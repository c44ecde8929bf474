"""Shared fixtures and settings of the whole suite.

Helper modules (``support``, ``hostile_cases``, ``oracle_types``) are imported by name: the
``pythonpath`` option in pyproject.toml puts tests/ on the path.
"""

from __future__ import annotations

import os

import pytest

# A bug inside ckptaudit becomes an "internal error" report for users; tests want it raised.
os.environ["CKPTAUDIT_DEBUG"] = "1"

# The helpers assert too (a payload reached, a verdict equal to torch's): rewrite their asserts
# as pytest does for test modules, so a failure shows the values.
pytest.register_assert_rewrite("support")
