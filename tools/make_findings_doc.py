"""Regenerate docs/checkpoint-audit-results.md from the example checkpoints.

Usage (from the repository root): python tools/make_findings_doc.py [--out FILE]

Builds the legacy and fixed PPO and morphogenetic checkpoints into build/examples/ and writes
the findings document with `ckptaudit report --torch-check`. Needs torch (for the examples and
for torch's own error messages). The document's verification command is the plan's script
building the fixed examples and auditing them: it works in a fresh clone and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLES = (
    ("ppo", False),
    ("morphogenetic", False),
    ("ppo", True),
    ("morphogenetic", True),
)

VERIFICATION = "python scripts/checkpoint_audit.py --generate-test --generate-morphogenetic --fixed"
"""Builds the fixed agent and model in a temporary folder and audits them: exit status 0."""


def build(folder: str) -> list[str]:
    """Build the four example checkpoints; return their paths (relative, as given)."""
    from ckptaudit_demo import build_checkpoint

    os.makedirs(folder, exist_ok=True)
    paths = []
    for which, fixed in EXAMPLES:
        path = f"{folder}/{which}-{'fixed' if fixed else 'legacy'}.pt"
        build_checkpoint(which, fixed, path)  # type: ignore[arg-type]
        paths.append(path)
    return paths


def main() -> int:
    """Build the examples and write the document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/checkpoint-audit-results.md")
    args = parser.parse_args()
    from ckptaudit.cli import main as cli

    paths = build("build/examples")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return cli(
        ["report", *paths, "-o", args.out, "--torch-check", "--verification", VERIFICATION]
    )


if __name__ == "__main__":
    sys.exit(main())
