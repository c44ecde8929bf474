"""Write torch's zip checkpoint format exactly as ``torch.save`` lays it out, without torch.

Layout (docs/notes/torch-loader-behaviour.md §1): members ``data.pkl``, ``.format_version``,
``.storage_alignment``, ``byteorder``, ``data/<key>``..., ``version``,
``.data/serialization_id``, all stored, flag 0x0808 (data descriptor, UTF-8), time 0; each
member's data starts at a multiple of 64 (an ``FB`` extra field of ``Z`` padding); a 16-byte
data descriptor after each member; a zip64 end record and locator, then the classic end record.
Sizes and offsets past 4 GiB get zip64 fields in the central directory and a 24-byte descriptor.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ALIGNMENT", "TorchZipWriter", "top_folder"]

ALIGNMENT = 64
"""Every member's data starts at a multiple of this (torch mmaps storages)."""

_ZIP64_LIMIT = 0xFFFFFFFF
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_FLAGS = 0x0808


def _prefetched(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield chunks while a thread reads the next one: reading, CRC-32 and writing all
    release the GIL, so a copy overlaps its reads with its writes (two cores, not one)."""
    items = iter(chunks)
    if isinstance(chunks, (list, tuple)):
        yield from items
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(next, items, None)
        while True:
            chunk = future.result()
            if chunk is None:
                return
            future = pool.submit(next, items, None)
            yield chunk


def top_folder(path: str | os.PathLike[str]) -> str:
    """The archive's top folder as torch.save names it: the file name without its last
    extension; ``archive`` when that is not plain ASCII or would be empty."""
    base = os.path.basename(os.fspath(path))
    stem = base.rsplit(".", 1)[0] if "." in base[1:] else base
    if not stem or stem.startswith(".") or not stem.isascii() or "/" in stem:
        return "archive"
    return stem


class TorchZipWriter:
    """Append members to an open binary file in torch's layout; :meth:`finish` ends it."""

    def __init__(self, handle: object, top: str, zip64_limit: int = _ZIP64_LIMIT) -> None:
        self._out = handle
        self._top = top
        self._pos = 0
        self._central: list[tuple[bytes, int, int, int]] = []  # name, crc, size, offset
        self._zip64_limit = zip64_limit

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)  # type: ignore[attr-defined]
        self._pos += len(data)

    def _local_header(self, name: bytes) -> None:
        fixed = self._pos + _LOCAL.size + len(name) + 4
        pad = (-fixed) % ALIGNMENT
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        self._write(_LOCAL.pack(0x04034B50, 0, _FLAGS, 0, 0, 0, 0, 0, 0, len(name), len(extra)))
        self._write(name + extra)

    def add(self, record: str, chunks: Iterable[bytes]) -> tuple[int, int]:
        """Write one member from a stream of chunks; return (crc32, size)."""
        name = f"{self._top}/{record}".encode()
        offset = self._pos
        self._local_header(name)
        crc = 0
        size = 0
        for chunk in _prefetched(chunks):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            self._write(chunk)
        if size >= self._zip64_limit:
            self._write(struct.pack("<IIQQ", 0x08074B50, crc, size, size))
        else:
            self._write(struct.pack("<IIII", 0x08074B50, crc, size, size))
        self._central.append((name, crc, size, offset))
        return crc, size

    def add_bytes(self, record: str, data: bytes) -> tuple[int, int]:
        """Write one small member."""
        return self.add(record, [data])

    def finish(self) -> int:
        """Write the central directory and the end records; return the file's size."""
        start = self._pos
        limit = self._zip64_limit
        for name, crc, size, offset in self._central:
            values = [v for v in (size, size, offset) if v >= limit]
            extra = b""
            if values:
                extra = struct.pack("<HH", 1, 8 * len(values)) + b"".join(
                    struct.pack("<Q", v) for v in values
                )
            self._write(
                _CENTRAL.pack(
                    0x02014B50,
                    0,
                    45 if values else 0,
                    _FLAGS,
                    0,
                    0,
                    0,
                    crc,
                    min(size, 0xFFFFFFFF) if size < limit else 0xFFFFFFFF,
                    min(size, 0xFFFFFFFF) if size < limit else 0xFFFFFFFF,
                    len(name),
                    len(extra),
                    0,
                    0,
                    0,
                    0,
                    offset if offset < limit else 0xFFFFFFFF,
                )
            )
            self._write(name + extra)
        count = len(self._central)
        cd_size = self._pos - start
        end64 = self._pos
        self._write(
            struct.pack(
                "<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, count, count, cd_size, start
            )
        )
        self._write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
        small = count < 0xFFFF and cd_size < limit and start < limit
        self._write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                count if small else 0xFFFF,
                count if small else 0xFFFF,
                cd_size if small else 0xFFFFFFFF,
                start if small else 0xFFFFFFFF,
                0,
            )
        )
        return self._pos
