"""``migrate``: read a checkpoint without running it, convert it, write, verify, rename.

The order is what makes it safe: the new file is written to a temporary name in the target's
directory, flushed to disk, verified (audit, bytes, torch), and only then renamed over the
destination. On any failure the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

from ckptaudit.audit import audit_source
from ckptaudit.checks import check_units
from ckptaudit.errors import InputError, MigrationError, MigrationRefused, UsageError
from ckptaudit.findings import FileReport, Severity, Status
from ckptaudit.formats import (
    BytesSource,
    Container,
    FileSource,
    PickleUnit,
    Source,
    read_container,
)
from ckptaudit.migrate.convert import as_bytes, callee
from ckptaudit.migrate.manifest import Conversion, Manifest, manifest_json
from ckptaudit.migrate.pickler import dumps
from ckptaudit.migrate.plan import MigrateOptions, Plan, Planner, legacy_module_class
from ckptaudit.migrate.storages import NestedStorage, locate_storages
from ckptaudit.migrate.zipwriter import TorchZipWriter, top_folder
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits
from ckptaudit.pickle.nodes import Call, Global, PersId
from ckptaudit.policy.dangerous import danger_reason
from ckptaudit.policy.torch_policy import Policy, load_policy
from ckptaudit.structure import storage_ref

__all__ = ["Prepared", "migrate", "prepare", "write_zip"]

_MAIN_MEMBER = {"torch-zip": None, "torch-legacy": "object", "pickle": None}


@dataclass
class Prepared:
    """A source read and planned: everything needed to write it."""

    source: Source
    report: FileReport
    container: Container
    plan: Plan
    not_copied: tuple[str, ...]
    file_notes: tuple[Conversion, ...]


def prepare(
    source: Source,
    *,
    options: MigrateOptions | None = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
) -> Prepared:
    """Audit a source, refuse what must not be migrated, and plan the new file.

    Raises:
        MigrationRefused: dangerous content (without ``sanitize``), TorchScript, a format
            with nothing torch could load, or a value with no faithful conversion.
        MigrationError: the file cannot be read as it claims to be.
    """
    options = options or MigrateOptions()
    policy = policy or load_policy()
    limits = limits or DEFAULT_LIMITS
    report = audit_source(source, policy=policy, limits=limits)
    if report.format == "torchscript":
        raise MigrationRefused(
            "TorchScript archive: it holds compiled code, not just data; torch.load refuses it "
            "under weights_only. Load it with torch.jit.load in a trusted environment and save "
            "model.state_dict() instead"
        )
    if report.format == "safetensors":
        raise MigrationRefused("already a safetensors file: nothing to migrate")
    if report.format == "torch-tar":
        raise MigrationRefused(
            "legacy tar checkpoint (torch < 0.4): not supported by this version of migrate"
        )
    if report.status is Status.ERROR:
        raise MigrationRefused(f"the file could not be fully analysed: {report.error}")
    if report.format not in _MAIN_MEMBER:
        raise MigrationRefused(
            f"a {report.format} file is not a torch checkpoint: {report.predicted_error}"
        )
    try:
        container = read_container(source, limits)
    except InputError as exc:
        raise MigrationError(f"cannot read {source.name}: {exc}") from None
    member = _MAIN_MEMBER[report.format]
    mains = [u for u in container.units if u.torch_reads and u.member == member]
    if report.format == "torch-zip" and len([u for u in container.units if u.torch_reads]) != 1:
        raise MigrationRefused(
            "the archive holds more than one data.pkl: which one torch reads is not defined"
        )
    if len(mains) != 1 or not mains[0].result.complete:
        raise MigrationRefused("the checkpoint's object pickle could not be read to its end")
    main = mains[0]
    checked = check_units([main], policy, limits)
    explained = _nested_storages(main, policy, limits)
    modules = frozenset(
        id(c)
        for c in main.result.calls
        if (cls := legacy_module_class(c.func)) is not None
        and danger_reason(cls.module, cls.name) is None
    )
    unexplained = checked.dangerous_nodes - set(explained) - modules
    hidden = sorted(
        {
            f"{f.member}: {f.global_name or f.category}"
            for f in report.findings
            if f.severity is Severity.DANGEROUS and f.member != member
        }
    )
    if (unexplained or hidden) and not options.sanitize:
        names = sorted(
            {
                f.global_name or f.category
                for f in report.findings
                if f.severity is Severity.DANGEROUS
                and f.global_name != "torch.storage._load_from_bytes"
            }
        )
        raise MigrationRefused(
            f"dangerous content ({', '.join(names) or 'see ckptaudit audit'}): refused. "
            '--sanitize replaces each dangerous construct with "<removed: module.name>" '
            "and keeps every tensor, without running anything"
        )
    # Operations the tree cannot hold (SETITEM on a list, BUILD on a dict...): a real
    # unpickler fails or does something no plain value expresses. Never dropped silently.
    strays = [e for e in main.result.events if not isinstance(e.target, Call)]
    if strays and not options.sanitize:
        first = strays[0]
        raise MigrationRefused(
            f"the pickle applies {first.op} to a {type(first.target).__name__} at byte "
            f"{first.offset} ({len(strays)} such operations): torch refuses it and no plain "
            "value can hold it; --sanitize drops them (recorded)"
        )
    try:
        storages = locate_storages(source, container, limits)
    except InputError as exc:
        raise MigrationError(f"cannot locate the storages: {exc}") from None
    planner = Planner(
        policy=policy,
        storages=storages,
        options=options,
        dangerous=frozenset(unexplained),
        explained=explained,
        explained_modules=modules,
    )
    plan = planner.run(main.result.root)
    for event in strays:
        plan.removed.append(f"{event.op} on a {type(event.target).__name__} at byte {event.offset}")
    nodes = {id(n): n for n in [*main.result.calls, *main.result.globals]}
    unreached = sorted(
        unexplained - planner.memo.keys(), key=lambda k: getattr(nodes.get(k), "offset", 0)
    )
    for key in unreached:
        node = nodes.get(key)
        what = callee(node) or (node.qualified if isinstance(node, Global) else "a computed call")
        offset = getattr(node, "offset", "?")
        plan.removed.append(f"{what} at byte {offset}: not reachable from the root, not copied")
    not_copied = tuple(
        [f"{h} (dangerous)" for h in hidden]
        + [f"pickle {u.member}" for u in container.units if not u.torch_reads and not u.nested]
    )
    notes = []
    if report.format != "torch-zip":
        notes.append(
            Conversion(path="(file)", original=report.format, kind="format", became="torch-zip")
        )
    protocol = main.result.protocol
    if protocol is not None and protocol > 2:
        notes.append(
            Conversion(
                path="(file)",
                original=f"pickle protocol {protocol}",
                kind="opcode",
                became="pickle protocol 2",
            )
        )
    return Prepared(source, report, container, plan, not_copied, tuple(notes))


def _nested_storages(main: PickleUnit, policy: Policy, limits: Limits) -> dict[int, NestedStorage]:
    """``torch.storage._load_from_bytes(b'...')`` calls whose payload is a benign torch file
    holding one storage (how ``pickle.dumps(tensor)`` writes tensors), by call id."""
    found: dict[int, NestedStorage] = {}
    for call in main.result.calls:
        if callee(call) != "torch.storage._load_from_bytes":
            continue
        args = call.args if type(call.args) is tuple else ()
        payload = as_bytes(args[0]) if len(args) == 1 else None
        if payload is None:
            continue
        nested = BytesSource(payload, "nested storage")
        try:
            container = read_container(nested, limits)
            if container.format not in ("torch-legacy", "torch-zip"):
                continue
            units = [u for u in container.units if u.torch_reads]
            if check_units(units, policy, limits).dangerous_nodes:
                continue
            obj = [u for u in units if u.member in ("object", None)]
            if len(obj) != 1 or not isinstance(obj[0].result.root, PersId):
                continue
            ref = storage_ref(obj[0].result.root)
            storages = locate_storages(nested, container, limits)
        except (InputError, MigrationError):
            continue
        if ref is None or ref.key not in storages:
            continue
        type_node = obj[0].result.root.pid[1]
        found[id(call)] = NestedStorage(storages[ref.key], (type_node.module, type_node.name))
    return found


def write_zip(plan: Plan, handle: IO[bytes], top: str) -> dict[str, int]:
    """Write a plan as a torch zip to an open file; return the CRC-32 of each storage."""
    data_pkl = dumps(plan.root)
    writer = TorchZipWriter(handle, top)
    writer.add_bytes("data.pkl", data_pkl)
    writer.add_bytes(".format_version", b"1")
    writer.add_bytes(".storage_alignment", b"64")
    writer.add_bytes("byteorder", b"little")
    crcs: dict[str, int] = {}
    digest = hashlib.sha1(data_pkl)
    for storage in plan.storages:
        crc, size = writer.add(f"data/{storage.key}", storage.data.chunks())
        if size != storage.nbytes:
            raise MigrationError(
                f"storage data/{storage.key}: {size} bytes, {storage.nbytes} expected"
            )
        crcs[storage.key] = crc
        digest.update(crc.to_bytes(4, "little") + size.to_bytes(8, "little"))
    writer.add_bytes("version", b"3\n")
    # torch.save writes a random 40-digit id; one derived from the content keeps a second
    # migration of the same file byte-identical.
    serial = str(int.from_bytes(digest.digest(), "big")).rjust(40, "0")[:40]
    writer.add_bytes(".data/serialization_id", serial.encode())
    writer.finish()
    return crcs


@contextlib.contextmanager
def _temporary(final: str) -> Iterator[tuple[str, IO[bytes]]]:
    """A new file beside ``final``, removed unless the caller renamed it."""
    folder = os.path.dirname(os.path.abspath(final))
    tmp = os.path.join(
        folder, f".{os.path.basename(final)}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    handle = os.fdopen(fd, "wb", buffering=1 << 20)
    try:
        yield tmp, handle
    finally:
        if not handle.closed:
            handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_text_atomic(path: str, text: str) -> None:
    with _temporary(path) as (tmp, handle):
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(tmp, path)


def migrate(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    in_place: bool = False,
    options: MigrateOptions | None = None,
    policy: Policy | None = None,
    limits: Limits | None = None,
    verify_with_torch: bool | None = None,
    write_manifest: bool = True,
) -> Manifest:
    """Convert a checkpoint into one that ``torch.load(f, weights_only=True)`` loads.

    Nothing in the source is imported or called. Values torch refuses are converted to plain
    data (see the README's "Fixing checkpoints"), tensors are copied byte for byte with their
    dtype, shape, strides, offsets, ``requires_grad``, Parameter-ness and storage sharing,
    and the result is verified before it is renamed into place.

    Args:
        src: the checkpoint to read.
        dst: where to write it; a name ending in ``.safetensors`` writes safetensors.
            Required unless ``in_place``.
        dry_run: plan and return the manifest; write nothing.
        in_place: replace ``src`` (keeping ``src.bak``).
        options: how values are converted (datetimes, ``sanitize``).
        policy: the torch policy the result must satisfy (default: the newest shipped).
        limits: resource limits for reading.
        verify_with_torch: also load the result with torch (default: when torch imports).
        write_manifest: write ``DST.migration.json`` beside the result.

    Returns:
        The manifest: every conversion, every tensor, the checks that passed.

    Raises:
        MigrationRefused: dangerous (without ``options.sanitize``), TorchScript, or not
            convertible faithfully; nothing was written.
        VerificationFailed: the new file failed a check; it was removed.
        UsageError: bad paths (``dst`` is ``src`` without ``in_place``...).

    Example:
        >>> manifest = migrate("legacy.pt", "fixed.pt")          # doctest: +SKIP
        >>> [c.became for c in manifest.conversions][:2]         # doctest: +SKIP
        ['str (ISO 8601)', 'list']
    """
    src_path = os.fspath(src)
    from ckptaudit.formats.remote import is_url

    remote = is_url(src_path)
    if remote and in_place:
        raise UsageError("--in-place needs a local file")
    if in_place:
        if dst is not None and os.path.abspath(os.fspath(dst)) != os.path.abspath(src_path):
            raise UsageError("--in-place takes no destination")
        dst_path = src_path
        if os.path.exists(src_path + ".bak") and not dry_run:
            raise UsageError(f"{src_path}.bak exists: move it away first (it would be replaced)")
    else:
        if dst is None:
            raise UsageError("a destination is needed (or --in-place)")
        dst_path = os.fspath(dst)
        if not remote and os.path.exists(dst_path) and os.path.samefile(src_path, dst_path):
            raise UsageError("the destination is the source: use --in-place to replace it")
        if os.path.isdir(dst_path):
            dst_path = os.path.join(dst_path, os.path.basename(src_path.rstrip("/")))
    policy = policy or load_policy()
    limits = limits or DEFAULT_LIMITS
    source = _open(src_path, remote)
    try:
        prepared = prepare(source, options=options, policy=policy, limits=limits)
        safetensors = dst_path.endswith(".safetensors")
        manifest = _manifest(prepared, src_path, dst_path, dry_run, safetensors)
        if dry_run:
            return manifest
        if verify_with_torch is None:
            from ckptaudit.migrate.verify import torch_available

            verify_with_torch = torch_available()
        if safetensors:
            from ckptaudit.migrate.safetensors import write_safetensors

            manifest = write_safetensors(prepared, manifest, dst_path, verify_with_torch)
        else:
            manifest = _write_verified(
                prepared, manifest, dst_path, policy, limits, verify_with_torch, in_place
            )
    finally:
        source.close()
    if write_manifest:
        _write_text_atomic(dst_path + ".migration.json", manifest_json(manifest))
    return manifest


def _open(path: str, remote: bool) -> Source:
    if remote:
        from ckptaudit.formats.remote import RemoteSource

        try:
            return RemoteSource(path)
        except InputError as exc:
            raise MigrationError(f"cannot read {path}: {exc}") from None
    try:
        return FileSource(path)
    except OSError as exc:
        raise UsageError(f"cannot open {path}: {exc.strerror or exc}") from None


def _manifest(prepared: Prepared, src: str, dst: str, dry_run: bool, safetensors: bool) -> Manifest:
    plan = prepared.plan
    return Manifest(
        source=src,
        destination=dst,
        source_format=prepared.report.format,
        target_format="safetensors" if safetensors else "torch-zip",
        status_before=prepared.report.status.value,
        conversions=prepared.file_notes + tuple(plan.conversions),
        tensors=tuple(plan.tensors),
        storages=len(plan.storages),
        storage_bytes=sum(s.nbytes for s in plan.storages),
        classes=tuple(plan.classes),
        removed=tuple(plan.removed),
        not_copied=prepared.not_copied,
        dry_run=dry_run,
    )


def _write_verified(
    prepared: Prepared,
    manifest: Manifest,
    dst: str,
    policy: Policy,
    limits: Limits,
    use_torch: bool,
    in_place: bool,
) -> Manifest:
    from ckptaudit.migrate.verify import fsync_dir, verify_zip

    with _temporary(dst) as (tmp, handle):
        crcs = write_zip(prepared.plan, handle, top_folder(dst))
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        passed = verify_zip(
            tmp, prepared.plan, crcs, policy=policy, limits=limits, use_torch=use_torch
        )
        if in_place:
            backup = dst + ".bak"
            try:
                os.link(dst, backup)
            except OSError:
                import shutil

                shutil.copy2(dst, backup)
        os.replace(tmp, dst)
        fsync_dir(dst)
    return replace(manifest, verified=passed)


def migrate_to_bytes(prepared: Prepared, top: str = "archive") -> bytes:
    """The new file in memory (for :func:`ckptaudit.load`)."""
    buffer = io.BytesIO()
    write_zip(prepared.plan, buffer, top)
    return buffer.getvalue()


def as_source(data: bytes, name: str) -> Any:
    """A byte source over bytes (for callers holding a checkpoint in memory)."""
    return BytesSource(data, name)
