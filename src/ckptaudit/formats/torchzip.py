"""torch.save's zip format (and TorchScript archives), read as torch's zip reader reads them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from ckptaudit.errors import ContainerError, InputError, LimitExceeded
from ckptaudit.findings import Category, ContainerFormat
from ckptaudit.formats.interface import Container, ContainerIssue, PickleUnit
from ckptaudit.formats.source import BytesSource, SliceSource, Source
from ckptaudit.formats.streams import (
    after_frame,
    looks_like_payload,
    npy_body_offset,
    trailing_units,
)
from ckptaudit.formats.ziparchive import ArchiveSpan, ZipArchive, ZipEntry, archive_spans
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.vm import run_pickle

__all__ = ["read_torch_zip"]

_NPY_MAGIC = b"\x93NUMPY"
_HEAD_BYTES = 8
"""First bytes of a storage record read to tell what a loader would take it for."""
_LEADING_INT = re.compile(rb"\s*([+-]?\d+)")


def _record_name(name: str) -> str:
    """miniz compares names up to a NUL byte."""
    return name.split("\x00", 1)[0] if "\x00" in name else name


def _parse_version(raw: bytes) -> int | None:
    """Parse a version record as strtoll does (leading integer, trailing junk ignored)."""
    m = _LEADING_INT.match(raw)
    return int(m.group(1)) if m else None


def read_torch_zip(source: Source, limits: Limits) -> Container:
    """Read a zip whose first bytes are a local header: torch-zip, torchscript or other zip,
    or torch archives laid end to end (a torch.distributed.checkpoint shard)."""
    try:
        archive = ZipArchive(source, limits)
    except ContainerError:
        # torch reads the last archive's directory as if the archive started at byte 0: in
        # a shard it does not, and the file is several archives, each read on its own.
        shard = _read_shard(source, limits)
        if shard is None:
            raise
        return shard
    container = _read_archive(archive, source, limits)
    if archive.declared_start > 0:
        _add_shard_archives(container, archive, limits)
    return container


_MINIZ_CORRUPT = (
    "PytorchStreamReader failed reading zip archive: invalid header or archive is corrupted"
)
"""What torch.load raises on a shard: the last archive's directory, looked for at its offset
from byte 0, is not there."""


def _read_shard(source: Source, limits: Limits) -> Container | None:
    """Torch archives laid end to end, or None when the bytes are not that."""
    spans = archive_spans(source, limits.max_members)
    if spans is None or len(spans) < 2:
        return None
    container = Container(format=ContainerFormat.ZIP)
    container.issues.append(
        ContainerIssue(
            Category.NOT_A_TORCH_CHECKPOINT,
            f"{_sequence(source, spans)}: torch.load does not read it as a checkpoint; DCP's "
            "loader reads each archive with torch.load, and every one is audited",
            torch_error=_MINIZ_CORRUPT,
        )
    )
    _add_archives(container, spans, source, limits)
    return container


def _sequence(source: Source, spans: list[ArchiveSpan]) -> str:
    what = f"{len(spans)} torch archives laid end to end"
    if source.name.lower().endswith(".distcp"):
        return f"a torch.distributed.checkpoint shard ({what})"
    return f"{what} (as in a torch.distributed.checkpoint shard)"


def _add_shard_archives(container: Container, archive: ZipArchive, limits: Limits) -> None:
    """A zip torch reads whose end records place it after other bytes: when the file is
    archives laid end to end, torch reads one directory and DCP's loader every archive."""
    source = archive.source
    try:
        # From the end record torch reads: bytes after it are reported as an anomaly, and
        # the archives before them are what a loader pointed at their offsets reads.
        spans = archive_spans(source, limits.max_members, archive.records_end)
    except InputError as exc:
        container.issues.append(ContainerIssue(Category.LIMIT_EXCEEDED, str(exc)))
        container.complete = False
        return
    if spans is None or len(spans) < 2:
        return
    # A shard whose first and last archives have the same layout: torch finds the last
    # one's directory at the first one's offset, and loads the first archive.
    first = spans[0]
    read = (
        first.directory_offset == archive.directory_start
        and first.members == len(archive.entries)
    )
    whom = "the first one" if read else f"the directory at byte {archive.directory_start}"
    container.issues.append(
        ContainerIssue(
            Category.ZIP_ANOMALY,
            f"the bytes are also {_sequence(source, spans)}: torch.load reads {whom}, DCP's "
            "loader each archive; every one is audited",
        )
    )
    if archive.records_end < source.size:
        # DCP's loader reads every archive up to where .metadata says it ends: a shard cut
        # inside an archive cannot load, even when torch.load finds a directory in it.
        container.issues.append(
            ContainerIssue(
                Category.MALFORMED,
                f"{source.size - archive.records_end} bytes after the last of {len(spans)} "
                "archives laid end to end are no whole archive (a truncated shard?)",
            )
        )
    _add_archives(container, spans, source, limits, skip_first=read)


def _add_archives(
    container: Container,
    spans: list[ArchiveSpan],
    source: Source,
    limits: Limits,
    skip_first: bool = False,
) -> None:
    """Audit each archive in place, as the torch.load of DCP's loader reads it; torch.load
    of the file does not read them (``torch_reads=False``). ``skip_first``: the first one is
    what torch reads, already audited."""
    for n, span in enumerate(spans[1:] if skip_first else spans, 2 if skip_first else 1):
        label = f"archive {n} of {len(spans)} at byte {span.start}"
        window = SliceSource(
            source, span.start, span.end - span.start, f"{source.name}@{span.start}"
        )
        try:
            inner = _read_archive(ZipArchive(window, limits), window, limits)
        except InputError as exc:
            category = (
                Category.LIMIT_EXCEEDED if isinstance(exc, LimitExceeded) else Category.MALFORMED
            )
            container.issues.append(ContainerIssue(category, f"{label}: {exc}", member=label))
            container.complete = False
            continue
        for issue in inner.issues:
            # Not what torch.load of the file meets: it reads the file as one archive.
            container.issues.append(
                ContainerIssue(issue.category, f"{label}: {issue.message}", member=label)
            )
        for unit in inner.units:
            container.units.append(
                replace(unit, member=f"{label}: {unit.member or 'data.pkl'}", torch_reads=False)
            )
        container.complete = container.complete and inner.complete


def _read_archive(archive: ZipArchive, source: Source, limits: Limits) -> Container:
    """Read one zip archive: torch-zip, torchscript or other zip."""
    container = Container(format=ContainerFormat.TORCH_ZIP)
    for note in archive.anomalies:
        container.issues.append(ContainerIssue(Category.ZIP_ANOMALY, note))
    if not archive.entries:
        raise ContainerError("empty zip archive")
    for note in archive.corrupt[:1]:
        _torch_fails(container, f"{note}: invalid header or archive is corrupted")
    for entry in archive.entries:
        if entry.header_offset + 30 + entry.compressed_size > source.size:
            _torch_fails(container, f"member {entry.name!r} lies past the end of the file")
            break
    first = _record_name(archive.entries[0].name)
    if "/" not in first:
        container.format = ContainerFormat.ZIP
        _not_torch(container, f"file in archive is not in a subdirectory: {first}")
        _scan_extra_pickles(archive, container, set(), limits)
        return container
    top = first[: first.index("/")]
    prefix = top + "/"
    # miniz looks names up ignoring ASCII case; keep every candidate of a duplicated name. A
    # name is stored once: as its entry when unique, in a list only when duplicated.
    by_name: dict[str, ZipEntry | list[ZipEntry]] = {}
    for entry in archive.entries:
        name = _record_name(entry.name)
        key = name if name.islower() else name.lower()
        found = by_name.setdefault(key, entry)
        if found is not entry:
            if isinstance(found, list):
                found.append(entry)
            else:
                by_name[key] = [found, entry]

    def lookup(record: str) -> list[ZipEntry]:
        found = by_name.get((prefix + record).lower())
        if found is None:
            return []
        return found if isinstance(found, list) else [found]

    script = prefix + "constants.pkl"
    if any(_record_name(e.name) == script for e in lookup("constants.pkl")):
        container.format = ContainerFormat.TORCHSCRIPT
        container.issues.append(
            ContainerIssue(
                Category.TORCHSCRIPT,
                "TorchScript archive (has constants.pkl): torch.load refuses it under weights_only",
                torch_error="Cannot use ``weights_only=True`` with TorchScript archives passed "
                "to ``torch.load``.",
            )
        )
        _scan_extra_pickles(archive, container, set(), limits)
        return container
    version_entries = lookup(".data/version") or lookup("version")
    data_entries = lookup("data.pkl")
    if not version_entries:
        _torch_fails(container, 'Expected hasRecord("version") to be true, but got false.')
    else:
        version = _parse_version(_read_small(archive, version_entries[-1]))
        if version is None or not 1 <= version <= 10:
            _torch_fails(container, f"unsupported or unreadable zip format version {version}")
    strays = [e.name for e in archive.entries if not e.name.startswith(prefix)]
    if strays:
        _torch_fails(container, f"file in archive is not in a subdirectory {prefix}: {strays[0]}")
    for entry in data_entries + version_entries[-1:]:
        if entry.flags & 0x41:
            # miniz refuses to extract an encrypted member; older readers did not: still audited.
            _torch_fails(container, f"zip member {entry.name!r}: unsupported encryption")
            break
    for record in (".data/serialization_id", ".format_version", ".storage_alignment"):
        # torch reads these records whole: a damaged header or an encrypted entry fails it.
        for entry in lookup(record)[-1:]:
            try:
                if entry.flags & 0x41:
                    raise ContainerError("unsupported encryption")
                raw = _read_small(archive, entry)
            except InputError as exc:
                _torch_fails(container, f"PytorchStreamReader failed reading file {record}: {exc}")
                continue
            try:
                if record == ".storage_alignment":
                    int(raw)
                elif record == ".data/serialization_id":
                    raw.decode("utf-8")  # torch.load returns it as a str at the very end
            except ValueError as exc:
                _torch_fails(container, str(exc))
    for entry in lookup("byteorder")[-1:]:  # miniz finds the last of duplicated names
        if _read_small(archive, entry) not in (b"little", b"big"):
            _torch_fails(container, "Unknown endianness type in the byteorder record")
    if not data_entries:
        container.format = ContainerFormat.ZIP if not version_entries else ContainerFormat.TORCH_ZIP
        _not_torch(container, "PytorchStreamReader failed locating file data.pkl: file not found")
    elif len(data_entries) > 1:
        container.issues.append(
            ContainerIssue(
                Category.ZIP_ANOMALY,
                f"{len(data_entries)} members named {prefix}data.pkl: tools disagree on which one "
                "is read; every copy is audited and all must pass",
            )
        )
    copies: set[tuple[int, int, int, int]] = set()
    for n, entry in enumerate(data_entries):
        if _identity(entry) in copies:
            continue  # another directory entry for the very same bytes: audited once
        copies.add(_identity(entry))
        member = None if len(data_entries) == 1 else f"{entry.name} (copy {n + 1})"
        data = archive.read(entry)
        result = run_pickle(data)
        container.units.append(PickleUnit(member, result, torch_reads=True, order=n))
        end = result.end if result.complete else len(data)
        _trailing(container, data, end, member or entry.name)
        after_frame(container, data, result, member or entry.name)
    sniffed = _storage_headers(archive, container, lookup)
    container.storage_records = {}
    for e in archive.entries:
        record = _record_name(e.name)[len(prefix) :].lower()
        if e.name.startswith(prefix) and record.startswith("data/"):
            container.storage_records.setdefault(record[len("data/") :], e.size)
    # The metadata records are read like any other member: numpy.load of the checkpoint
    # as an archive unpickles whatever member holds an object .npy, whatever its name.
    _scan_extra_pickles(
        archive,
        container,
        {prefix + "data.pkl"},
        limits,
        data_prefix=prefix + "data/",
        sniffed=sniffed,
    )
    return container


def _storage_headers(
    archive: ZipArchive, container: Container, lookup: Callable[[str], list[ZipEntry]]
) -> dict[int, bool]:
    """torch extracts every storage data.pkl names: a damaged local header fails the load.

    Only the local headers and each storage's first bytes are read (one read each), never
    the storages. Returns, for each stored storage checked (by the offset of its local
    header), whether its first bytes start like a payload (see _starts_like_payload), for
    the scan of the members.
    """
    entries = {key: found[-1] for key in container.storages() if (found := lookup(f"data/{key}"))}
    # A remote source fetches all the headers in one concurrent batch, not a request each.
    prefetch = getattr(archive.source, "prefetch", None)
    if prefetch is not None and entries:
        prefetch([archive.head_span(e, _HEAD_BYTES) for e in entries.values()])
    sniffed: dict[int, bool] = {}
    failed = False
    for key, entry in entries.items():
        problem, first = archive.check_local(entry, _HEAD_BYTES)
        if problem is not None:
            if not failed:  # torch stops at the first
                _torch_fails(
                    container, f"PytorchStreamReader failed reading file data/{key}: {problem}"
                )
            failed = True
            continue
        if first is not None:
            sniffed[entry.header_offset] = _payload_head(first)
    return sniffed


def _read_small(archive: ZipArchive, entry: ZipEntry) -> bytes:
    return archive.read(entry, max_size=1 << 16)


def _torch_fails(container: Container, message: str) -> None:
    container.issues.append(ContainerIssue(Category.MALFORMED, message, torch_error=message))


def _not_torch(container: Container, message: str) -> None:
    """A sound zip of another layout (a Stable-Baselines3 model, a torch.export archive):
    torch refuses it, but every pickle in it (nested torch files too) is still audited, so
    it is not an analysis error."""
    container.issues.append(
        ContainerIssue(
            Category.NOT_A_TORCH_CHECKPOINT,
            f"a zip archive, not a torch.save checkpoint: {message}",
            torch_error=message,
        )
    )


def _trailing(container: Container, data: bytes, end: int, member: str) -> None:
    """Bytes after STOP: torch ignores them; other tools may not."""
    if end >= len(data) or data.count(0, end) == len(data) - end:
        return
    if not trailing_units(container, data, end, member):
        container.issues.append(
            ContainerIssue(
                Category.ZIP_ANOMALY,
                f"{len(data) - end} bytes after STOP in {member}",
                member=member,
            )
        )


def _looks_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def _scan_extra_pickles(
    archive: ZipArchive,
    container: Container,
    known: set[str],
    limits: Limits,
    data_prefix: str | None = None,
    depth: int = 0,
    sniffed: dict[int, bool] | None = None,
) -> None:
    """Audit every other pickle in the zip: torch does not read them, other tools might.

    That is members named as pickles, members that parse as one, the bodies of ``.npy``
    arrays (``numpy.load(allow_pickle=True)``, which takes any member that starts like one
    for an array, whatever its name) and, one level down, zips inside the zip. Members are
    judged by their bytes, metadata records included. Under ``data_prefix``, the storage
    records data.pkl references are raw tensor bytes that are never read whole: only their
    first bytes, and the record is audited when they start like a ``.npy`` or a pickle.
    Directory entries for the same bytes are audited once. ``sniffed`` holds what
    _storage_headers already learnt of the storages' first bytes.
    """
    storages = (
        {(data_prefix + key).lower() for key in container.storages()}
        if data_prefix is not None
        else set()
    )
    slots = limits.max_pickles
    beyond = set(map(id, archive.beyond_count))
    seen: set[tuple[int, int, int, int]] = set()
    for entry in [*archive.entries, *archive.beyond_count]:
        if slots <= 0:
            break
        name = entry.name
        hidden = id(entry) in beyond  # no name is "known" in a record torch never reads
        if not hidden and name in known:
            continue
        if storages and _storage_member(name, storages):
            suspect = sniffed.get(entry.header_offset) if sniffed else None
            if suspect is None:
                suspect = _starts_like_payload(archive, entry)
            if not suspect:
                continue  # tensor bytes, never read
        identity = _identity(entry)
        if identity in seen:
            continue
        seen.add(identity)
        is_pkl = name.lower().endswith((".pkl", ".pickle"))
        label = name if depth == 0 else f"{archive.source.name}!{name}"
        if hidden:
            label = f"{label} (central record beyond the declared count)"
        if entry.method == 0 and depth < _MAX_NESTED_ZIPS and _stored_zip(archive, entry):
            # A checkpoint stored inside (a Stable-Baselines3 model holds torch files): read
            # its directory and pickles in place, never the whole member.
            window = SliceSource(archive.source, archive.data_start(entry), entry.size, label)
            _scan_nested_zip(container, window, limits, depth)
            continue
        if not is_pkl and (entry.compressed_size < 2 or entry.size > limits.max_pickle_bytes):
            continue
        try:
            data = archive.read(entry)
        except InputError as exc:
            if is_pkl:
                container.issues.append(ContainerIssue(Category.MALFORMED, str(exc), member=name))
                container.complete = False
            continue
        if data[:4] == b"PK\x03\x04" and depth < _MAX_NESTED_ZIPS:
            _scan_nested_zip(container, BytesSource(data, label), limits, depth)
            continue
        start = npy_body_offset(data) or 0
        result = run_pickle(data, start)
        if not is_pkl and not start:
            # Under another name, accept what parses to STOP and runs something, what
            # starts like a pickle, or a call of real dotted names before garbage: text
            # (source code, tokenizers) parses a little by accident.
            runs_something = bool(result.globals or result.calls)
            plausible = result.complete or _looks_like_pickle(data) or looks_like_payload(result)
            if not runs_something or not plausible:
                continue
        elif start and not (result.globals or result.calls):
            continue
        slots -= 1
        # The weights_only loader reads none of these (TorchScript is refused before reading).
        container.units.append(PickleUnit(label, result, torch_reads=False, order=50))
        if result.complete:
            trailing_units(container, data, result.end, label)


_MAX_NESTED_ZIPS = 2


def _storage_member(name: str, storages: set[str]) -> bool:
    """A tensor storage record data.pkl references: raw bytes torch maps, never unpickled."""
    return name.lower() in storages


def _identity(entry: ZipEntry) -> tuple[int, int, int, int]:
    """What makes two directory entries read the same bytes."""
    return (entry.header_offset, entry.method, entry.compressed_size, entry.size)


def _starts_like_payload(archive: ZipArchive, entry: ZipEntry) -> bool:
    """Whether a member's first bytes are a ``.npy`` header (numpy.load of the checkpoint
    as an archive reads it as an array, and an object array's body is a pickle) or a
    pickle's PROTO opcode. A damaged header is torch's problem, reported elsewhere."""
    try:
        head = archive.head(entry, _HEAD_BYTES)
    except InputError:
        return False
    return _payload_head(head)


def _payload_head(head: bytes) -> bool:
    return head.startswith(_NPY_MAGIC) or _looks_like_pickle(head)


def _stored_zip(archive: ZipArchive, entry: ZipEntry) -> bool:
    """A member stored without compression whose bytes start like a zip."""
    try:
        return archive.source.read_at(archive.data_start(entry), 4) == b"PK\x03\x04"
    except InputError:
        return False


def _scan_nested_zip(container: Container, source: Source, limits: Limits, depth: int) -> None:
    """A zip inside the zip: unpacking tools open it; its pickles are audited too."""
    try:
        inner = ZipArchive(source, limits)
    except InputError as exc:
        container.issues.append(
            ContainerIssue(Category.MALFORMED, f"nested zip: {exc}", member=source.name)
        )
        return
    _scan_extra_pickles(inner, container, set(), limits, depth=depth + 1)
