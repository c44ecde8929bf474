"""The original plan's audit script, as a thin layer over the package.

    python scripts/checkpoint_audit.py CHECKPOINT
    python scripts/checkpoint_audit.py --generate-test            # PPO agent checkpoint
    python scripts/checkpoint_audit.py --generate-morphogenetic   # model with 3 seed slots

Exit status: 0 the checkpoint loads with weights_only=True; 1 it does not, or the file is
missing or unreadable; 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Literal

from ckptaudit.audit import audit_file
from ckptaudit.findings import Status
from ckptaudit.report.sections import render_sections
from ckptaudit.torch_oracle import torch_available, torch_version, weights_only_error

__all__ = ["main"]


def _audit_and_print(path: str) -> int:
    if not os.path.isfile(path):
        print(f"error: no such checkpoint file: {path}", file=sys.stderr)
        return 1
    report = audit_file(path)
    error = weights_only_error(path) if torch_available() else None
    sys.stdout.write(render_sections(report, error, torch_version()))
    return 0 if report.status is Status.COMPATIBLE else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="checkpoint_audit.py",
        description="Audit a PyTorch checkpoint for torch.load(weights_only=True) "
        "compatibility, without executing it.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("checkpoint", nargs="?", help="checkpoint file to audit")
    group.add_argument(
        "--generate-test",
        action="store_true",
        help="build a PPO agent checkpoint (agent.save), then audit it",
    )
    group.add_argument(
        "--generate-morphogenetic",
        action="store_true",
        help="build a model with seed slots early/mid/late, germinate a 'norm' "
        "seed 'test-seed-001' in 'mid' with the 'sigmoid' blend, save, audit",
    )
    parser.add_argument(
        "--fixed", action="store_true", help="with --generate-*: build the version after the fix"
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="with --generate-*: where to save (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    if args.checkpoint:
        return _audit_and_print(args.checkpoint)
    try:
        from ckptaudit_demo import build_checkpoint
    except ImportError as exc:
        print(f"error: generating examples needs torch: {exc}", file=sys.stderr)
        return 1
    which: Literal["ppo", "morphogenetic"] = "ppo" if args.generate_test else "morphogenetic"
    folder = args.output_dir or tempfile.mkdtemp(prefix="ckptaudit-")
    os.makedirs(folder, exist_ok=True)
    name = f"{which}-{'fixed' if args.fixed else 'legacy'}.pt"
    path = build_checkpoint(which, args.fixed, os.path.join(folder, name))
    print(f"generated {path}\n")
    return _audit_and_print(str(path))
