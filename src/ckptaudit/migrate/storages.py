"""Where each tensor storage of a source checkpoint lies, and its bytes as a stream.

Storages are never loaded whole: a :class:`ByteRange` yields them in chunks straight from the
source file (a stored or deflated zip member, or the raw bytes after a legacy file's pickles),
or from bytes already in memory (a numpy array's data, a storage pickled inside a pickle).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ckptaudit.errors import MigrationError
from ckptaudit.formats.interface import Container
from ckptaudit.formats.source import BytesSource, Source
from ckptaudit.formats.ziparchive import ZipArchive, ZipEntry
from ckptaudit.pickle.limits import Limits
from ckptaudit.structure import StorageRef

__all__ = ["CHUNK", "ByteRange", "NestedStorage", "SourceStorage", "locate_storages"]

CHUNK = 8 << 20
"""Bytes read per step when streaming a storage: peak memory stays far below 100 MB."""


@dataclass(frozen=True)
class ByteRange:
    """A run of bytes in a source, stored (method 0) or deflated (method 8)."""

    source: Source
    """The file (or in-memory bytes) holding the run."""
    offset: int
    """Where the run starts."""
    length: int
    """Bytes to read from the source (the compressed length when deflated)."""
    size: int
    """Bytes the run yields."""
    method: int = 0
    """0 stored, 8 deflated (zip members)."""

    @classmethod
    def of_bytes(cls, data: bytes, name: str = "<memory>") -> ByteRange:
        """A range over bytes held in memory."""
        return cls(BytesSource(data, name), 0, len(data), len(data))

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        """Yield the bytes in order, at most ``chunk`` at a time (inflating if needed).

        Raises:
            MigrationError: the source holds fewer bytes than declared, or does not inflate.
        """
        pos, end = self.offset, self.offset + self.length
        inflater = zlib.decompressobj(-15) if self.method == 8 else None
        produced = 0
        while pos < end:
            raw = self.source.read_at(pos, min(chunk, end - pos))
            if not raw:
                break
            pos += len(raw)
            if inflater is None:
                produced += len(raw)
                yield raw
                continue
            try:
                data = inflater.decompress(raw, max(self.size - produced, 0) + 1)
            except zlib.error as exc:
                raise MigrationError(
                    f"{self.source.name}: storage does not inflate: {exc}"
                ) from None
            while data:
                produced += len(data)
                if produced > self.size:
                    raise MigrationError(f"{self.source.name}: storage inflates past its size")
                yield data
                data = inflater.decompress(inflater.unconsumed_tail, self.size - produced + 1)
        if produced != self.size:
            raise MigrationError(
                f"{self.source.name}: storage at byte {self.offset} holds {produced} bytes, "
                f"{self.size} expected (truncated file?)"
            )

    def read_all(self) -> bytes:
        """The whole run in memory (only for small runs: numpy data, views to gather)."""
        return b"".join(self.chunks())


@dataclass(frozen=True)
class SourceStorage:
    """One storage of the source checkpoint."""

    ref: StorageRef
    """Its persistent id, parsed (key, dtype, numel, element size, location)."""
    data: ByteRange
    """Where its bytes are."""


def locate_storages(
    source: Source, container: Container, limits: Limits
) -> dict[str, SourceStorage]:
    """Find every storage the pickles torch reads refer to, by key (never reading their data).

    Raises:
        MigrationError: a storage is missing or has the wrong size.
    """
    refs = container.storages()
    if not refs:
        return {}
    if container.format == "torch-zip":
        return _zip_storages(source, refs, limits)
    if container.format == "torch-legacy":
        return _legacy_storages(source, container, refs)
    raise MigrationError(f"{container.format} file refers to tensor storages it does not hold")


def _zip_storages(
    source: Source, refs: dict[str, StorageRef], limits: Limits
) -> dict[str, SourceStorage]:
    archive = ZipArchive(source, limits)
    first = archive.entries[0].name
    prefix = first[: first.index("/") + 1] if "/" in first else ""
    by_name: dict[str, ZipEntry] = {}
    for entry in archive.entries:
        # miniz finds names ignoring ASCII case, and the last of duplicated names.
        by_name[entry.name.split("\x00", 1)[0].lower()] = entry
    out: dict[str, SourceStorage] = {}
    for key, ref in refs.items():
        found = by_name.get(f"{prefix}data/{key}".lower())
        if found is None:
            raise MigrationError(f"storage data/{key} is missing from the archive")
        entry = found
        if entry.size != ref.nbytes and ref.dtype != "unknown":
            raise MigrationError(
                f"storage data/{key} holds {entry.size} bytes, its tensor needs {ref.nbytes}"
            )
        if entry.method not in (0, 8) or entry.flags & 0x41:
            raise MigrationError(f"storage data/{key} is encrypted or uses method {entry.method}")
        start = archive.data_start(entry)
        data = ByteRange(source, start, entry.compressed_size, entry.size, entry.method)
        out[key] = SourceStorage(ref, data)
    return out


def _legacy_storages(
    source: Source, container: Container, refs: dict[str, StorageRef]
) -> dict[str, SourceStorage]:
    """After the five pickles: per key of the key list, an 8-byte count and the raw bytes."""
    keys_unit = next((u for u in container.units if u.member == "storage keys"), None)
    if (
        keys_unit is None
        or not keys_unit.result.complete
        or type(keys_unit.result.root) is not list
    ):
        raise MigrationError("legacy file without a readable storage key list")
    pos = keys_unit.result.end
    out: dict[str, SourceStorage] = {}
    for key in keys_unit.result.root:
        ref = refs.get(str(key))
        if ref is None:
            raise MigrationError(f"legacy storage key {key!r} is not referenced by the object")
        header = source.read_at(pos, 8)
        if len(header) < 8:
            raise MigrationError("legacy file truncated in its storages")
        numel = int.from_bytes(header, "little", signed=True)
        if numel != ref.numel:
            raise MigrationError(
                f"legacy storage {key} holds {numel} elements, {ref.numel} expected"
            )
        pos += 8
        if pos + ref.nbytes > source.size:
            raise MigrationError(f"legacy storage {key} is truncated")
        out[ref.key] = SourceStorage(ref, ByteRange(source, pos, ref.nbytes, ref.nbytes))
        pos += ref.nbytes
    missing = set(refs) - set(out)
    if missing:
        raise MigrationError(f"legacy storages {sorted(missing)} are not in the file")
    return out


@dataclass(frozen=True)
class NestedStorage:
    """A storage pickled whole inside the pickle (``torch.storage._load_from_bytes(b'...')``,
    how ``pickle.dumps(tensor)`` writes it): a small torch file of its own."""

    storage: SourceStorage
    """The storage, with its bytes inside the nested file."""
    type_name: tuple[str, str]
    """(module, name) of its storage class."""
