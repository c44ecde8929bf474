"""Checkpoints behind a URL (https://, s3://, hf://, gs://, ...), read with ranged requests.

A :class:`RemoteSource` implements the :class:`~ckptaudit.formats.source.Source` protocol
over any fsspec filesystem. It never downloads the object: every ``read_at`` becomes one
ranged read (an HTTP ``Range`` request, an S3 ``GetObject`` with ``Range``), widened to a
small read-ahead block so that the handful of reads a zip audit makes (first 4 KiB, last
1 KiB, central directory, ``data.pkl``) cost two or three requests. ``bytes_read`` counts the
body bytes actually transferred, read-ahead included.

fsspec is an optional dependency (the ``remote`` extra, plus ``s3fs`` for
``s3://``); importing this module does not need it, only opening a URL does.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ckptaudit.errors import InputError, UsageError, missing_extra

__all__ = [
    "DEFAULT_READAHEAD",
    "RemoteReadError",
    "RemoteSource",
    "expand_url",
    "is_url",
]

DEFAULT_READAHEAD = 64 << 10
"""Smallest ranged read: a zip's central directory and a small data.pkl fit in one."""

_CACHE_BYTES = 8 << 20  # read-ahead blocks kept per source
_WIDE_READS = 4  # reads widened to a whole read-ahead block
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")
_RETRY_DELAYS = (0.2, 1.0, 3.0)


class RemoteReadError(InputError):
    """A remote object could not be opened or read (after retries)."""


def is_url(path: object) -> bool:
    """True for ``scheme://...`` strings (``s3://b/k``, ``https://h/p``), False for local paths."""
    return isinstance(path, str) and bool(_URL.match(path))


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise missing_extra("auditing a URL (s3:// URLs: the 's3' extra)", "remote") from None
    return fsspec


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    fsspec = _fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        return fs, str(path)
    except ImportError as exc:  # e.g. s3fs or aiohttp missing for this protocol
        raise UsageError(f"cannot open {url}: {exc}") from None
    except ValueError as exc:  # unknown protocol
        raise UsageError(f"cannot open {url}: {exc}") from None


def _transient(exc: BaseException) -> bool:
    """Worth retrying: network trouble, not a missing object or a refusal."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError)):
        return False
    # huggingface_hub's errors are OSErrors carrying the HTTP response: a 4xx other than a
    # timeout or rate limit (missing repo, revision, file; refused token) will not change.
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False
    return isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith(
        ("aiohttp", "botocore", "aiobotocore")
    )


class RemoteSource:
    """A :class:`~ckptaudit.formats.source.Source` over a remote object, by ranged reads.

    Args:
        url: any URL fsspec understands (``https://``, ``s3://``, ``hf://``, ``memory://``).
        storage_options: passed to the filesystem (``endpoint_url``, ``anon``, ``key``, ...).
        readahead: smallest ranged read of the first few, in bytes (later ones, typically
            scattered headers, are read exactly); a read near the end of the object is
            widened backwards instead, so the zip's end records and directory come together.
        retries: extra attempts of a read that failed with a network error.

    Raises:
        RemoteReadError: the object cannot be opened, has no known size, or its server does
            not serve byte ranges.
        UsageError: fsspec, or the package for this protocol, is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        readahead: int = DEFAULT_READAHEAD,
        retries: int = len(_RETRY_DELAYS),
    ) -> None:
        self.name = url
        self.bytes_read = 0
        self.requests = 0
        self._readahead = max(1, readahead)
        self._retries = max(0, min(retries, len(_RETRY_DELAYS)))
        self._blocks: list[tuple[int, bytes]] = []
        self._exact: dict[int, bytes] = {}  # prefetched small ranges, by offset
        self._ranges_ok = False  # a guarded ranged read past offset 0 has succeeded
        self._fs, self._path = _filesystem(url, storage_options)
        try:
            # cache_type="none": every read is exactly one ranged request (this class caches).
            self._file = self._retry(
                lambda: self._fs.open(
                    self._path, "rb", block_size=self._readahead, cache_type="none"
                )
            )
        except RemoteReadError:
            raise
        except Exception as exc:
            raise RemoteReadError(f"cannot open {url}: {_describe(exc)}") from None
        size = getattr(self._file, "size", None)
        seekable = getattr(self._file, "seekable", lambda: False)()
        if size is None or not seekable:
            self._file.close()
            raise RemoteReadError(
                f"cannot audit {url} without downloading it: the server reports no size or "
                "does not serve byte ranges"
            )
        self.size = int(size)

    def read_at(self, offset: int, n: int) -> bytes:
        """Read up to n bytes at offset (fewer only at the end of the object)."""
        if n <= 0 or offset >= self.size or offset < 0:
            return b""
        end = min(self.size, offset + n)
        exact = self._exact.get(offset)
        if exact is not None and len(exact) >= end - offset:
            return exact[: end - offset]
        for start, block in self._blocks:
            if start <= offset and end <= start + len(block):
                return block[offset - start : end - start]
        lo, hi = offset, end
        # Whole blocks for the first few reads (head, tail, directory, data.pkl); past those,
        # small reads are scattered headers (legacy storages) and widening them only costs.
        widen = self._readahead if self.requests < _WIDE_READS else 0
        if hi - lo < widen:
            hi = min(self.size, lo + widen)
            lo = max(0, hi - widen)
        data = self._fetch(lo, hi)
        if hi - lo <= _CACHE_BYTES:
            self._blocks.append((lo, data))
            while sum(len(b) for _, b in self._blocks) > _CACHE_BYTES:
                self._blocks.pop(0)
        return data[offset - lo : end - lo]

    def _fetch(self, start: int, end: int) -> bytes:
        def once() -> bytes:
            self._file.seek(start)
            return bytes(self._file.read(end - start))

        try:
            data: bytes = self._retry(once)
        except RemoteReadError:
            raise
        except Exception as exc:
            raise RemoteReadError(
                f"reading bytes {start}-{end - 1} of {self.name}: {_describe(exc)}"
            ) from None
        self.requests += 1
        self.bytes_read += len(data)
        self._ranges_ok = self._ranges_ok or start > 0
        if len(data) != end - start:
            raise RemoteReadError(
                f"short read from {self.name}: {len(data)} of {end - start} bytes at {start} "
                "(object changed while being audited?)"
            )
        return data

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch many small ``(offset, n)`` ranges concurrently, for reads about to follow.

        For readers that know their next reads (one 30-byte zip local header per tensor
        storage): one concurrent batch instead of a round trip each. Only once a ranged read
        past the start has succeeded (so the server is known to honour ranges), and capped
        at the cache size; anything not prefetched is simply read when asked for.
        """
        wanted: list[tuple[int, int]] = []
        total = 0
        for offset, n in sorted(set(ranges)):
            n = min(n, self.size - offset)
            if offset < 0 or n <= 0 or offset in self._exact:
                continue
            if total + n > _CACHE_BYTES:
                break
            wanted.append((offset, n))
            total += n
        if not wanted or not self._ranges_ok:
            return
        try:
            out = self._fs.cat_ranges(
                [self._path] * len(wanted),
                [o for o, _ in wanted],
                [o + n for o, n in wanted],
                on_error="return",
            )
        except Exception:
            return  # read one by one instead
        self.requests += len(wanted)
        for (offset, n), data in zip(wanted, out, strict=False):
            if isinstance(data, bytes):
                self.bytes_read += len(data)
                if len(data) == n:
                    self._exact[offset] = data

    def _retry(self, call: Any) -> Any:
        for attempt in range(self._retries + 1):
            try:
                return call()
            except Exception as exc:
                if attempt >= self._retries or not _transient(exc):
                    raise
                time.sleep(_RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Release the remote file handle and the read-ahead blocks."""
        self._blocks.clear()
        self._exact.clear()
        self._file.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def expand_url(
    url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    suffixes: frozenset[str] | None = None,
) -> Iterator[str]:
    """Yield object URLs for one URL: itself, the matches of a glob, or a prefix's checkpoints.

    ``s3://bucket/runs/*.pt`` is globbed; ``s3://bucket/runs/`` (a trailing slash) is listed
    recursively, keeping names that end in ``suffixes``; anything else is one object.
    """
    if not _GLOB.search(url.split("://", 1)[1]) and not url.endswith("/"):
        yield url
        return
    fs, path = _filesystem(url, storage_options)
    try:
        if url.endswith("/"):
            found = sorted(fs.find(path))
            if suffixes is not None:
                found = [p for p in found if posixpath.splitext(p)[1].lower() in suffixes]
        else:
            found = sorted(fs.glob(path))
    except Exception as exc:
        raise UsageError(f"cannot list {url}: {_describe(exc)}") from None
    for p in found:
        yield fs.unstrip_protocol(p)
