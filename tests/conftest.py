"""Shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ holds helper modules (oracle_types, hostile_cases) imported by name.
sys.path.insert(0, str(Path(__file__).parent))
