"""Hugging Face Hub paths (``hf://org/repo/file.pt``) read at a chosen revision.

``hf://`` URLs are read like any other URL (see :mod:`ckptaudit.formats.remote`), through
``huggingface_hub``'s fsspec filesystem, which takes ``HF_TOKEN`` and ``HF_ENDPOINT`` from the
environment. A revision (branch, tag, commit, ``refs/pr/1``) goes into the URL itself, as
``hf://org/repo@refs%2Fpr%2F1/file.pt``: the filesystem resolves the path, so that a
repository id and the path inside it are split exactly as the filesystem reads them, and the
report names what was read.
"""

from __future__ import annotations

from collections.abc import Iterable

from ckptaudit.errors import UsageError, missing_extra

__all__ = ["HF_SCHEME", "at_revision", "paths_at_revision"]

HF_SCHEME = "hf://"


def at_revision(url: str, revision: str) -> str:
    """Return the ``hf://`` URL that reads ``url`` at ``revision``.

    Raises:
        UsageError: ``url`` is not an ``hf://`` URL, names another revision after ``@``, or
            the repository or revision does not exist (or the token may not read it).
    """
    if not url.startswith(HF_SCHEME):
        raise UsageError(f"--revision applies to hf:// URLs, not {url}")
    try:
        import fsspec

        fs = fsspec.filesystem("hf")
    except ImportError as exc:
        raise missing_extra(f"auditing hf:// URLs ({exc})", "remote") from None
    try:
        resolved = fs.resolve_path(url[len(HF_SCHEME) :], revision=revision)
    except (OSError, ValueError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot read {url} at revision {revision!r}: {first}") from None
    pinned = HF_SCHEME + str(resolved.unresolve())
    # A trailing slash asks for a listing of the prefix (see remote.expand_url): keep it.
    if url.endswith("/") and not pinned.endswith("/"):
        pinned += "/"
    return pinned


def paths_at_revision(paths: Iterable[str], revision: str) -> list[str]:
    """``paths`` with every ``hf://`` URL read at ``revision``; other paths unchanged.

    Raises:
        UsageError: no path is an ``hf://`` URL, or one cannot be read at ``revision``.
    """
    items = list(paths)
    if not any(p.startswith(HF_SCHEME) for p in items):
        raise UsageError("--revision applies to hf:// URLs, and none was given")
    return [at_revision(p, revision) if p.startswith(HF_SCHEME) else p for p in items]
