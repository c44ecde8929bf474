"""Which files to audit: directories searched for checkpoint names, URLs and globs expanded."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ckptaudit.formats.remote import expand_url, is_url

__all__ = ["CHECKPOINT_NAMES", "CHECKPOINT_SUFFIXES", "expand_inputs", "expand_paths"]

CHECKPOINT_SUFFIXES = frozenset(
    {
        ".pt",
        ".pth",
        ".bin",
        ".ckpt",
        ".pkl",
        ".pickle",
        ".safetensors",
        ".tar",
        ".th",
        ".torch",
        ".model",
        ".chkpt",
        ".pt2",
        ".distcp",
    }
)
"""File name endings a directory search treats as checkpoints."""

CHECKPOINT_NAMES = frozenset({".metadata"})
"""Whole file names a directory search treats as checkpoints: a torch.distributed.checkpoint
directory's ``.metadata``, a pickle its loader unpickles beside the ``.distcp`` shards."""


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield files to audit: files as given, directories searched for checkpoint names."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for file in sorted(files):
                    candidate = Path(root) / file
                    if _looks_like_checkpoint(candidate.name):
                        yield str(candidate)
        else:
            yield os.fspath(raw)


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Local files and directories as :func:`expand_paths`; URLs as themselves, globs
    (``s3://b/runs/*.pt``) expanded, prefixes ending in ``/`` listed for checkpoint names."""
    files: list[str] = []
    for raw in paths:
        if is_url(raw):
            files.extend(expand_url(str(raw), suffixes=CHECKPOINT_SUFFIXES))
        else:
            files.extend(expand_paths([raw]))
    return files


def _looks_like_checkpoint(name: str) -> bool:
    lower = name.lower()
    return lower in CHECKPOINT_NAMES or any(lower.endswith(s) for s in CHECKPOINT_SUFFIXES)
