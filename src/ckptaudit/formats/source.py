"""Random-access byte sources: a local file or an in-memory buffer, with bytes-read accounting.

Every reader reads through a source, so ``stats.bytes_read`` is exact and a remote source
(HTTP range requests) can be dropped in without touching the readers.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from typing import Any, Protocol

from ckptaudit.errors import LimitExceeded

__all__ = ["BytesSource", "FileSource", "SliceSource", "Source", "SourceFile"]


class Source(Protocol):
    """Random access to the bytes of one file."""

    name: str
    size: int
    bytes_read: int

    def read_at(self, offset: int, n: int) -> bytes:
        """Read up to n bytes at offset (fewer only at the end of the file)."""
        ...

    def close(self) -> None:
        """Release the underlying file."""
        ...


class BytesSource:
    """A source over bytes already in memory."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self.name = name
        self._data = data
        self.size = len(data)
        self.bytes_read = 0

    def read_at(self, offset: int, n: int) -> bytes:
        """Read up to n bytes at offset."""
        chunk = self._data[offset : offset + max(n, 0)]
        self.bytes_read += len(chunk)
        return chunk

    def close(self) -> None:
        """Nothing to release."""


class FileSource:
    """A source over a local file, read with positional reads (no shared file offset)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        # Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        self._fd = os.open(self.name, flags)
        try:
            info = os.fstat(self._fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", self.name)
            if not stat.S_ISREG(info.st_mode):
                # A FIFO, socket or device: no size to trust, and reads may block or never end.
                raise OSError(errno.EINVAL, "not a regular file", self.name)
            self.size = info.st_size
        except OSError:
            os.close(self._fd)
            raise
        self.bytes_read = 0

    def read_at(self, offset: int, n: int) -> bytes:
        """Read up to n bytes at offset."""
        if n <= 0 or offset >= self.size:
            return b""
        if n <= self.size - offset and n < 1 << 20:
            data = os.pread(self._fd, n, offset)  # the common case: one small read
            if len(data) == n:
                self.bytes_read += n
                return data
        parts = []
        want = min(n, self.size - offset)
        while want > 0:
            chunk = os.pread(self._fd, min(want, 1 << 30), offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            want -= len(chunk)
        data = b"".join(parts) if len(parts) != 1 else parts[0]
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)


class SliceSource:
    """A window of another source (a zip member stored without compression): reads go to
    the parent, which counts them."""

    def __init__(self, parent: Source, start: int, size: int, name: str) -> None:
        self.name = name
        self.parent = parent
        """The source the window is in."""
        self.start = start
        """Where the window starts in it."""
        self.size = max(0, min(size, parent.size - start))
        self.bytes_read = 0
        """Unused: the parent counts every byte read through the window."""

    def read_at(self, offset: int, n: int) -> bytes:
        """Read up to n bytes at offset within the window."""
        if n <= 0 or offset >= self.size:
            return b""
        return self.parent.read_at(self.start + offset, min(n, self.size - offset))

    def close(self) -> None:
        """Nothing to release: the parent owns the file."""


class SourceFile(io.RawIOBase):
    """A read-only, seekable file object over a source (for stdlib readers such as tarfile)."""

    def __init__(self, source: Source, max_read: int | None = None) -> None:
        super().__init__()
        self._source = source
        self._pos = 0
        self._max_read = max_read

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def tell(self) -> int:
        """Current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative).

        A size declared by the file (a tar header's) is capped to what the file holds
        before anything is allocated, and one read beyond ``max_read`` is refused.
        """
        left = max(self._source.size - self._pos, 0)
        n = left if size is None or size < 0 else min(size, left)
        if self._max_read is not None and n > self._max_read:
            raise LimitExceeded(f"a read of {n} bytes at byte {self._pos} (limit {self._max_read})")
        data = self._source.read_at(self._pos, n)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Read into a buffer at the current position."""
        data = self._source.read_at(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
