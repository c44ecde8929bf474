"""The original plan's audit script, as a thin layer over the package.

    python scripts/checkpoint_audit.py CHECKPOINT [CHECKPOINT|DIR ...] [--torch-check]
    python scripts/checkpoint_audit.py --generate-test            # PPO agent checkpoint
    python scripts/checkpoint_audit.py --generate-morphogenetic   # model with 3 seed slots
    python scripts/checkpoint_audit.py --generate-test --generate-morphogenetic --fixed

Exit status: 0 every checkpoint loads with weights_only=True; 1 one does not, a path is
missing or unreadable, or no argument was given (the usage is printed); 2 a bad option.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from ckptaudit.audit import audit_file
from ckptaudit.discovery import expand_paths
from ckptaudit.findings import Status
from ckptaudit.report.sections import render_sections

if TYPE_CHECKING:
    from ckptaudit.torch_oracle import TorchCheck

__all__ = ["main"]


def _audit_and_print(paths: Sequence[str], torch_check: bool) -> int:
    files: list[str] = []
    for path in paths:
        if not os.path.lexists(path):
            print(f"error: no such file or directory: {path}", file=sys.stderr)
            return 1
        found = list(expand_paths([path]))
        if os.path.isdir(path) and not found:
            print(f"error: no checkpoint files in directory: {path}", file=sys.stderr)
            return 1
        files += found
    checker: Callable[[str], TorchCheck] | None = None
    if torch_check:
        from ckptaudit.torch_oracle import torch_available
        from ckptaudit.torch_oracle import torch_check as checker

        if not torch_available():
            print("error: --torch-check needs torch (pip install torch)", file=sys.stderr)
            return 1
    failed = False
    for n, path in enumerate(files):
        report = audit_file(path)
        check = checker(path) if checker is not None and os.path.isfile(path) else None
        if n:
            sys.stdout.write("\n")
        sys.stdout.write(render_sections(report, check))
        loads = report.status is Status.COMPATIBLE
        failed = failed or not loads
    return 1 if failed else 0


def _generate(which: Literal["ppo", "morphogenetic"], fixed: bool, folder: str) -> str:
    """Build the plan's checkpoint: the agent as the plan makes it, or the example model."""
    name = os.path.join(folder, f"{which}-{'fixed' if fixed else 'legacy'}.pt")
    if which == "morphogenetic":
        from ckptaudit_demo.examples import build_checkpoint

        return str(build_checkpoint("morphogenetic", fixed, name))
    from ckptaudit_demo import fixed as fixed_models
    from ckptaudit_demo import legacy as legacy_models

    cls = fixed_models.PPOAgent if fixed else legacy_models.PPOAgent
    agent = cls(state_dim=50, device="cpu")
    # A float timestamp: the metadata is plain data, so what the audit finds is the agent's.
    agent.save(name, metadata={"test": True, "timestamp": time.time()})
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="checkpoint_audit.py",
        description="Audit PyTorch checkpoints for torch.load(weights_only=True) "
        "compatibility, without executing them.",
    )
    parser.add_argument(
        "checkpoints", nargs="*", metavar="CHECKPOINT", help="checkpoint files or directories"
    )
    parser.add_argument(
        "--generate-test",
        action="store_true",
        help='build a PPO agent checkpoint (PPOAgent(state_dim=50, device="cpu"), saved with '
        'metadata {"test": True, "timestamp": ...}), then audit it',
    )
    parser.add_argument(
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
        help="with --generate-*: where to save (default: a temporary folder, removed after "
        "the audit)",
    )
    parser.add_argument(
        "--torch-check",
        action="store_true",
        help="section 1 quotes torch's own error: torch's weights_only unpickler over the "
        "file's pickle (tensor storages are never read); without it, ckptaudit's prediction",
    )
    args = parser.parse_args(argv)
    wanted = (("ppo", args.generate_test), ("morphogenetic", args.generate_morphogenetic))
    generate = [which for which, asked in wanted if asked]
    if not args.checkpoints and not generate:
        parser.print_help(sys.stderr)
        return 1
    if args.checkpoints and generate:
        parser.print_usage(sys.stderr)
        print("error: give checkpoints or --generate-*, not both", file=sys.stderr)
        return 1
    if args.checkpoints:
        return _audit_and_print(args.checkpoints, args.torch_check)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"error: generating examples needs torch: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ckptaudit-") as scratch:
        folder = args.output_dir or scratch
        os.makedirs(folder, exist_ok=True)
        paths = [
            _generate(which, args.fixed, folder)  # type: ignore[arg-type]
            for which in generate
        ]
        for path in paths:
            kept = "" if args.output_dir else " (removed after the audit; --output-dir keeps it)"
            print(f"generated {path}{kept}")
        print()
        return _audit_and_print(paths, args.torch_check)
