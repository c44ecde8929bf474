"""A minimal zip reader that sees what torch's loader sees.

torch reads zips with miniz: names come from the central directory, CRCs are not checked,
and the archive must start at offset 0 (``torch.load`` only treats a file as a zip when it
starts with a local header). Python's ``zipfile`` differs on each point (it checks CRCs and
tolerates a prefix), so ckptaudit parses the directory itself. Only the end records, the
central directory and the members asked for are read: never the tensor storages.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from ckptaudit.errors import ContainerError, LimitExceeded
from ckptaudit.formats.source import SliceSource, Source
from ckptaudit.pickle.budget import current_budget
from ckptaudit.pickle.limits import Limits

__all__ = [
    "ArchiveSpan",
    "ZipArchive",
    "ZipEntry",
    "archive_spans",
    "find_end_of_central_directory",
]

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_TAIL = 22 + 0xFFFF + 20  # EOCD + longest comment + zip64 locator
_EOCD64_LEN = 56  # a zip64 end record without extensible data, as torch writes it
_END_RECORDS = 22 + 20 + _EOCD64_LEN  # an archive's last bytes when it has no comment


# A central-directory record's fixed part (46 bytes), without the fields miniz ignores:
# signature, flags, method, sizes, name/extra/comment lengths, disk, local offset. The CRC is
# not kept: torch does not check it.
_unpack_central = struct.Struct("<4s4xHH8xIIHHHH6xI").unpack_from


class ZipEntry(NamedTuple):
    """One central-directory record (a directory can hold a million: kept small)."""

    name: str
    flags: int
    method: int
    compressed_size: int
    size: int
    header_offset: int


def find_end_of_central_directory(tail: bytes) -> int:
    """Offset of the last end-of-central-directory signature with a whole record after it.

    miniz takes the last signature followed by at least 22 bytes, so a signature planted in
    a comment or in trailing junk takes over; ckptaudit does the same to see the same bytes.
    """
    at = len(tail)
    while True:
        at = tail.rfind(_EOCD, 0, at)
        if at < 0 or at + 22 <= len(tail):
            return at


class ZipArchive:
    """The central directory of a zip, and reads of its members."""

    def __init__(self, source: Source, limits: Limits, allow_prefix: bool = False) -> None:
        self.source = source
        self.limits = limits
        self.allow_prefix = allow_prefix
        self.base = 0
        self.anomalies: list[str] = []
        self.corrupt: list[str] = []
        """Damage that makes torch's zip reader (miniz) refuse the whole archive."""
        self.beyond_count: list[ZipEntry] = []
        """Central-directory records after the declared count (only other readers see them)."""
        self.declared_start = 0
        """Where the archive starts by its own end records (the end of its directory minus
        the directory's size and offset): above 0 when other bytes come before it."""
        self.directory_start = 0
        """Offset in the source of the central directory read."""
        self.records_end = 0
        """Offset just past the end record read and its comment: the archive's end."""
        self.entries = self._read_directory()

    def _read_directory(self) -> list[ZipEntry]:
        size = self.source.size
        # Most zips have no comment: try a small tail first, the longest possible one after.
        for window in (1024, _TAIL):
            tail_start = max(0, size - window)
            tail = self.source.read_at(tail_start, size - tail_start)
            at = find_end_of_central_directory(tail)
            if at >= 0 or tail_start == 0:
                break
        if at < 0 or at + 22 > len(tail):
            raise ContainerError("zip end-of-central-directory record not found (truncated?)")
        (_, disk, cd_disk, on_disk, count, cd_size, cd_offset, comment_len) = struct.unpack_from(
            "<4sHHHHIIH", tail, at
        )
        if ((disk | cd_disk) and not disk == cd_disk == 1) or on_disk != count:
            self.corrupt.append("unsupported multidisk archive")
        if at + 22 + comment_len != len(tail):
            self.anomalies.append("bytes after the end-of-central-directory record")
        eocd_pos = tail_start + at
        self.records_end = eocd_pos + 22 + comment_len
        problem = _miniz_search_problem(size, eocd_pos)
        if problem is not None:
            self.corrupt.append(problem)
        directory_end = eocd_pos
        saturated = count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF
        zip64 = self._zip64_record(tail, tail_start, eocd_pos)
        if zip64 is not None:
            # miniz (torch) and Python's zipfile take the zip64 record's values whenever a
            # locator points at one, saturated or not: a file with two directories must be
            # read through the one torch reads.
            values = zip64[:3]
            if not saturated and values != (count, cd_size, cd_offset):
                self.anomalies.append(
                    "the zip64 and 32-bit end records describe different central directories"
                    " (torch reads the zip64 one)"
                )
            count, cd_size, cd_offset = values
            # Where the directory ends when the zip64 record sits right before the locator,
            # as every writer puts it: another place means other bytes come before.
            directory_end = eocd_pos - 20 - zip64[4]
            eocd_pos = zip64[3]
        elif saturated:
            raise ContainerError("zip64 end-of-central-directory record missing or damaged")
        if count > self.limits.max_members:
            raise LimitExceeded(f"zip declares {count} members (limit {self.limits.max_members})")
        self.declared_start = directory_end - cd_size - cd_offset
        if self.allow_prefix and eocd_pos - cd_size - cd_offset > 0:
            # Bytes before the archive (self-extractors, polyglots): offsets count from its start.
            self.base = eocd_pos - cd_size - cd_offset
            self.anomalies.append(f"{self.base} bytes of other data before the zip archive")
        start = self.directory_start = self.base + cd_offset
        if start + cd_size > eocd_pos or cd_size > size:
            raise ContainerError("zip central directory lies outside the file (truncated?)")
        directory = self.source.read_at(start, cd_size)
        entries: list[ZipEntry] = []
        pos = 0
        for index in range(count):
            if pos + 46 > len(directory):
                raise ContainerError(f"zip central directory damaged at entry {index}")
            (sig, flags, method, csize, usize, nlen, xlen, clen, entry_disk, offset) = (
                _unpack_central(directory, pos)
            )
            if sig != _CENTRAL:
                raise ContainerError(f"zip central directory damaged at entry {index}")
            if entry_disk == 0xFFFF or entry_disk not in (disk, 1):
                self.corrupt.append("unsupported multidisk archive")
            if flags & 0x2000:  # a masked local directory: miniz calls it encryption
                self.corrupt.append("unsupported encryption")
            name_raw = directory[pos + 46 : pos + 46 + nlen]
            extra = directory[pos + 46 + nlen : pos + 46 + nlen + xlen]
            if len(name_raw) != nlen:
                raise ContainerError("zip central directory truncated")
            usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
            name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            if usize != 0xFFFFFFFF and csize != 0xFFFFFFFF:
                # miniz reads the method and time fields as one 32-bit value here, so a
                # stored member's sizes must agree only when its time is zero too.
                (method_time,) = struct.unpack_from("<I", directory, pos + 10)
                if (method_time == 0 and usize != csize) or (usize and not csize):
                    self.corrupt.append(
                        f"member {name!r} has compressed size {csize} but size {usize}"
                    )
            entries.append(ZipEntry(name, flags, method, csize, usize, offset))
            pos += 46 + nlen + xlen + clen
            if pos > len(directory):
                # miniz refuses an entry whose name, extra field and comment overrun the
                # directory; other zip readers may not, so the entries are still audited.
                self.corrupt.append(f"zip central directory entry {name!r} overruns the directory")
        self.beyond_count = self._records_beyond(directory, pos)
        if self.beyond_count:
            self.anomalies.append(
                f"{len(self.beyond_count)} central-directory record(s) beyond the declared "
                "count: torch ignores them, Python's zipfile reads them"
            )
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            self.anomalies.append(f"duplicate member names: {', '.join(dupes[:5])}")
        return entries

    def _records_beyond(self, directory: bytes, pos: int) -> list[ZipEntry]:
        """Well-formed records after the declared count, which Python's zipfile reads (it
        goes on until the directory's size runs out) and torch's reader never sees."""
        found: list[ZipEntry] = []
        while pos + 46 <= len(directory) and len(found) < self.limits.max_members:
            (sig, flags, method, csize, usize, nlen, xlen, clen, _disk, offset) = (
                _unpack_central(directory, pos)
            )
            if sig != _CENTRAL:
                break
            name_raw = directory[pos + 46 : pos + 46 + nlen]
            extra = directory[pos + 46 + nlen : pos + 46 + nlen + xlen]
            usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
            name = name_raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            found.append(ZipEntry(name, flags, method, csize, usize, offset))
            pos += 46 + nlen + xlen + clen
        return found

    def _zip64_record(
        self, tail: bytes, tail_start: int, eocd_pos: int
    ) -> tuple[int, int, int, int, int] | None:
        """(count, directory size, directory offset, record position, record length) of the
        zip64 end record, when a locator sits right before the end record and points at one."""
        if eocd_pos < 20:
            return None
        locator = self._read_near(tail, tail_start, eocd_pos - 20, 20)
        if locator[:4] != _EOCD64_LOCATOR:
            return None
        (eocd64_pos, total_disks) = struct.unpack_from("<QI", locator, 8)
        if total_disks != 1:
            self.corrupt.append("unsupported multidisk archive (zip64 locator)")
        if eocd64_pos > self.source.size - 56:
            # miniz gives up on the whole archive here rather than fall back.
            raise ContainerError("zip64 end-of-central-directory locator points past the end")
        rec = self._read_near(tail, tail_start, eocd64_pos, 56)
        if rec[:4] != _EOCD64:
            return None  # miniz then falls back to the 32-bit record, and so do we
        (record_size, _, _, disk, cd_disk, on_disk) = struct.unpack_from("<QHHIIQ", rec, 4)
        count, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
        # miniz's refusals, in its order: a record too short, then disks that do not match.
        if record_size < 44:
            self.corrupt.append("zip64 end-of-central-directory record too short")
        elif on_disk != count or ((disk | cd_disk) and not disk == cd_disk == 1):
            self.corrupt.append("unsupported multidisk archive (zip64 record)")
        return count, cd_size, cd_offset, eocd64_pos, 12 + record_size

    def _read_near(self, tail: bytes, tail_start: int, offset: int, n: int) -> bytes:
        """Bytes at ``offset``, from the tail already read when it holds them."""
        if offset >= tail_start:
            return tail[offset - tail_start : offset - tail_start + n]
        return self.source.read_at(offset, n)

    def data_start(self, entry: ZipEntry) -> int:
        """Check a member's local header as miniz does; return where its data starts."""
        header = self.source.read_at(self.base + entry.header_offset, 30)
        if len(header) < 30 or header[:4] != _LOCAL:
            raise ContainerError(f"zip local header of {entry.name!r} missing or damaged")
        nlen, xlen = struct.unpack_from("<HH", header, 26)
        start: int = self.base + entry.header_offset + 30 + nlen + xlen
        if start + entry.compressed_size > self.source.size:
            raise ContainerError(f"zip member {entry.name!r} is truncated")
        return start

    def local_header_problem(self, entry: ZipEntry) -> str | None:
        """Why miniz would refuse to extract a member, judged from its header; else None."""
        return self.check_local(entry, 0)[0]

    def check_local(self, entry: ZipEntry, n: int) -> tuple[str | None, bytes | None]:
        """:meth:`local_header_problem`, and for a stored member the first ``n`` bytes of
        its data too, from one read (None when they were not in it, or it is compressed)."""
        first = None
        try:
            if entry.method == 0:
                first = self._stored_head(entry, n)
            if first is None:
                self.data_start(entry)
        except ContainerError as exc:
            return str(exc), None
        return ("unsupported encryption" if entry.flags & 0x41 else None), first

    def head_span(self, entry: ZipEntry, n: int) -> tuple[int, int]:
        """The (offset, length) one read takes to get a stored member's local header and
        first ``n`` bytes, when its local extra field is no longer than torch's alignment
        padding: what a remote source prefetches for :meth:`head`."""
        return self.base + entry.header_offset, 30 + len(entry.name.encode()) + 96 + n

    def _stored_head(self, entry: ZipEntry, n: int) -> bytes | None:
        """A stored member's first ``n`` bytes read with its local header, checked as
        :meth:`data_start` checks it; None when the one read did not hold them."""
        at, span = self.head_span(entry, n)
        block = self.source.read_at(at, span)
        if len(block) < 30 or block[:4] != _LOCAL:
            return None  # data_start says what is wrong
        nlen, xlen = struct.unpack_from("<HH", block, 26)
        begin = 30 + nlen + xlen
        want = min(n, entry.compressed_size)
        if begin + want > len(block):
            return None
        if at + begin + entry.compressed_size > self.source.size:
            raise ContainerError(f"zip member {entry.name!r} is truncated")
        return block[begin : begin + want]

    def head(self, entry: ZipEntry, n: int) -> bytes:
        """The first ``n`` bytes of a member (fewer if it is shorter), inflating no more
        than needed: enough to tell what a loader would take it for, without reading it.

        Raises:
            ContainerError: the local header is damaged or the member does not inflate.
        """
        if entry.method == 0:
            first = self._stored_head(entry, n)
            if first is not None:
                return first
        start = self.data_start(entry)
        if entry.method == 0:
            return self.source.read_at(start, min(n, entry.compressed_size))
        if entry.method != 8:
            raise ContainerError(
                f"zip member {entry.name!r} uses compression method {entry.method}"
            )
        raw = self.source.read_at(start, min(entry.compressed_size, 4096))
        try:
            return zlib.decompressobj(-15).decompress(raw, n)
        except zlib.error as exc:
            raise ContainerError(f"zip member {entry.name!r} does not inflate: {exc}") from None

    def read(self, entry: ZipEntry, max_size: int | None = None) -> bytes:
        """Read and inflate one member, bounded against zip bombs; CRC is not checked (as torch)."""
        start = self.data_start(entry)
        limit = self.limits.max_pickle_bytes if max_size is None else max_size
        if entry.size > limit:
            raise LimitExceeded(f"zip member {entry.name!r} is {entry.size} bytes (limit {limit})")
        raw = self.source.read_at(start, entry.compressed_size)
        if entry.method == 0:
            return raw
        if entry.method != 8:
            raise ContainerError(
                f"zip member {entry.name!r} uses compression method {entry.method}"
            )
        bound = min(limit, max(entry.size, 1), max(len(raw), 1) * self.limits.max_inflate_ratio)
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, bound + 1)
        except zlib.error as exc:
            raise ContainerError(f"zip member {entry.name!r} does not inflate: {exc}") from None
        if len(data) > bound:
            raise LimitExceeded(
                f"zip member {entry.name!r} inflates beyond {bound} bytes "
                f"(declared {entry.size}, compressed {len(raw)}): zip bomb?"
            )
        budget = current_budget()
        if budget is not None:
            # What a member inflates to is input the file provides, once per member: a
            # directory pointing at it many times does not provide it many times.
            budget.grant_inflated(_where(self.source, start), len(data), len(raw))
        return data


class ArchiveSpan(NamedTuple):
    """One zip archive among several laid end to end in a file."""

    start: int
    """Offset of its first byte (a local header) in the file."""
    end: int
    """Offset just past its end records."""
    directory_offset: int
    """Offset of its central directory from its own start."""
    members: int
    """Members its end record declares."""


def archive_spans(
    source: Source, max_archives: int, end: int | None = None
) -> list[ArchiveSpan] | None:
    """The zip archives the first ``end`` bytes of a file (all of them by default) are made
    of, laid end to end, first to last; None when they are not such a sequence (a single
    archive is a sequence of one).

    torch.save writes every archive as if it were alone in its file, offsets counted from
    its own first byte; torch.distributed.checkpoint's FileSystemWriter appends one such
    archive per item to a shard (``.distcp``) and records where each starts. The walk goes
    back from the end of the file: an archive's end records give its directory's size and
    offset, hence where the archive starts, and the archive before it must end right there.
    Each step reads the end records and the first bytes of one archive, never its members;
    there are at most ``max_archives`` steps.

    Raises:
        LimitExceeded: more than ``max_archives`` archives end to end.
    """
    spans: list[ArchiveSpan] = []
    end = source.size if end is None else end
    while end > 0:
        if len(spans) >= max_archives:
            raise LimitExceeded(
                f"more than {max_archives} zip archives laid end to end (limit max_members)"
            )
        span = _archive_ending_at(source, end)
        if span is None:
            return None
        spans.append(span)
        end = span.start
    spans.reverse()
    return spans or None


def _archive_ending_at(source: Source, end: int) -> ArchiveSpan | None:
    """The archive whose end record (and comment) ends exactly at ``end``, if its end
    records add up to an archive that starts with a local header; else None."""
    n = min(end, _END_RECORDS)
    tail = source.read_at(end - n, n)
    at = _end_record_ending(tail)
    if at < 0 and n < end:
        n = min(end, _TAIL + _EOCD64_LEN)  # a comment after the end record
        tail = source.read_at(end - n, n)
        at = _end_record_ending(tail)
    if at < 0:
        return None
    eocd_pos = end - n + at
    (count, cd_size, cd_offset) = struct.unpack_from("<HII", tail, at + 10)
    directory_end = eocd_pos
    if at >= 20 and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        # The zip64 record's offset in the locator counts from the archive's start, which
        # is what is being looked for: take the record where torch writes it, right
        # before the locator, and require the two ways of placing the archive to agree.
        (relative,) = struct.unpack_from("<Q", tail, at - 12)
        directory_end = eocd_pos - 20 - _EOCD64_LEN
        if directory_end < 0:
            return None
        record = source.read_at(directory_end, _EOCD64_LEN)
        if len(record) < _EOCD64_LEN or record[:4] != _EOCD64:
            return None
        (record_size,) = struct.unpack_from("<Q", record, 4)
        count, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
        if record_size != _EOCD64_LEN - 12 or relative != cd_offset + cd_size:
            return None
    start = directory_end - cd_size - cd_offset
    if start < 0 or source.read_at(start, 4) != _LOCAL:
        return None
    return ArchiveSpan(start, end, cd_offset, count)


def _end_record_ending(tail: bytes) -> int:
    """Offset of an end-of-central-directory record whose comment ends ``tail`` exactly;
    -1 if none."""
    at = len(tail)
    while True:
        at = tail.rfind(_EOCD, 0, at)
        if at < 0:
            return -1
        if at + 22 <= len(tail) and at + 22 + tail[at + 20] + (tail[at + 21] << 8) == len(tail):
            return at


def _where(source: Source, offset: int) -> tuple[int, int]:
    """(the outermost source, the offset in it) for an offset in a source, through the
    windows of stored members."""
    while isinstance(source, SliceSource):
        offset += source.start
        source = source.parent
    return id(source), offset


def _miniz_search_problem(size: int, eocd_pos: int) -> str | None:
    """Whether miniz's backward search for the end record (4 KiB reads, 3 bytes of overlap)
    reaches ``eocd_pos``; if not, why torch fails.

    Its next read offset is computed unsigned: from a file shorter than about 8 KiB whose end
    record is not in the last 4 KiB it wraps around, and torch fails with "Invalid argument".
    """
    chunk = 4096
    cur = max(size - chunk, 0)
    while True:
        if cur <= eocd_pos <= min(size, cur + chunk) - 4:
            return None
        if cur == 0 or size - cur >= 0xFFFF + 22:
            return "end-of-central-directory record out of the zip reader's reach"
        cur -= chunk - 3
        if cur < 0:
            return "bytes after the end record push it out of the zip reader's first read"


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply a zip64 extended-information extra field to the 32-bit sizes."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4 : pos + 4 + size]
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        pos += 4 + size
    return usize, csize, offset
