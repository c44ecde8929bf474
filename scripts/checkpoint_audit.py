#!/usr/bin/env python3
"""The plan's audit script: ``python scripts/checkpoint_audit.py --help``.

A thin wrapper over ckptaudit (see ckptaudit_demo.plan_script); it never executes the checkpoint.
"""

import sys
from pathlib import Path

# Run from a checkout without installing: put src/ on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ckptaudit_demo.plan_script import main

if __name__ == "__main__":
    sys.exit(main())
