"""Shared fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# A bug inside ckptaudit becomes an "internal error" report for users; tests want it raised.
os.environ["CKPTAUDIT_DEBUG"] = "1"

# tests/ holds helper modules (oracle_types, hostile_cases) imported by name.
sys.path.insert(0, str(Path(__file__).parent))
