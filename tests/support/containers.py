"""Containers around pickles: torch's zip, legacy and tar layouts, plain zips, npy, safetensors.

Two kinds of zip writers, on purpose: :func:`build_zip` / :func:`torch_zip` write every byte
by hand (torch.save's 64-byte alignment, malformations as knobs) and :func:`raw_zip` lets a
test choose each directory field, while :func:`zip_of` and :func:`small_torch_zip` go through
Python's ``zipfile`` (what most tools write). Nothing here unpickles anything or imports
ckptaudit.

``zipfile`` and ``tarfile`` are imported inside the functions that use them: both import
``shutil``, a module hostile payloads name, and ``hostile_cases`` (which uses this module) must
import none of those (its canary test checks it).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------- hand-written zips


@dataclass(frozen=True)
class ZipMember:
    """One stored (uncompressed) zip entry, with knobs for malformations."""

    name: str
    data: bytes
    local_name: str | None = None  # local-header name when it differs (CVE-2025-1944)
    flags: int = 0  # general purpose bit flags (CVE-2025-1945)
    crc: int | None = None  # CRC-32 override (CVE-2025-10156)
    corrupt_local_signature: bool = False


def build_zip(members: Sequence[ZipMember], *, prefix: bytes = b"", align: int = 64) -> bytes:
    """Write a stored zip by hand, like ``torch.save`` (64-byte aligned data).

    Offsets are absolute, i.e. they include ``prefix``.  Duplicate names are
    written verbatim (``zipfile`` would warn and ``torch.save`` never does it).
    """
    out = bytearray(prefix)
    central = bytearray()
    for m in members:
        offset = len(out)
        cname = m.name.encode("utf-8")
        lname = (m.local_name if m.local_name is not None else m.name).encode("utf-8")
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        flags = m.flags | (0x800 if not m.name.isascii() else 0)
        size = len(m.data)
        extra = b""
        if align:
            pad = (-(offset + 30 + len(lname) + 4)) % align
            extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding field
        local = (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                flags,
                0,
                0,
                0x21,
                crc,
                size,
                size,
                len(lname),
                len(extra),
            )
            + lname
            + extra
        )
        if m.corrupt_local_signature:
            local = b"PK\x00\x00" + local[4:]
        out += local + m.data
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                0x031E,
                20,
                flags,
                0,
                0,
                0x21,
                crc,
                size,
                size,
                len(cname),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + cname
        )
    cd_offset = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0
    )
    return bytes(out)


SERIALIZATION_ID = b"1035386125394718467500013216448423410837"
STORAGE_0 = struct.pack("<4f", 0.5, -1.0, 2.0, 0.25)


def torch_zip_members(
    data_pkl: bytes,
    *,
    top: str = "archive",
    storages: dict[str, bytes] | None = None,
    extra: Sequence[ZipMember] = (),
) -> list[ZipMember]:
    """Members of a ``torch.save`` zip (new format) around ``data_pkl``."""
    storages = {"0": STORAGE_0} if storages is None else storages
    members = [ZipMember(f"{top}/data.pkl", data_pkl), ZipMember(f"{top}/byteorder", b"little")]
    members += [ZipMember(f"{top}/data/{key}", blob) for key, blob in storages.items()]
    members += list(extra)
    members += [
        ZipMember(f"{top}/version", b"3\n"),
        ZipMember(f"{top}/.data/serialization_id", SERIALIZATION_ID),
    ]
    return members


def torch_zip(
    data_pkl: bytes,
    *,
    top: str = "archive",
    storages: dict[str, bytes] | None = None,
    extra: Sequence[ZipMember] = (),
    prefix: bytes = b"",
) -> bytes:
    """A torch-style zip: ``archive/data.pkl``, ``byteorder``, storages, ``version``, id."""
    return build_zip(
        torch_zip_members(data_pkl, top=top, storages=storages, extra=extra), prefix=prefix
    )


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
LEGACY_SYS_INFO = {
    "protocol_version": LEGACY_PROTOCOL,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


def legacy_file(
    obj_pkl: bytes,
    *,
    magic_pkl: bytes | None = None,
    protocol_pkl: bytes | None = None,
    sys_info_pkl: bytes | None = None,
    keys_pkl: bytes | None = None,
    storages: dict[str, bytes] | None = None,
) -> bytes:
    """Legacy (pre-1.6) ``torch.save`` layout: five protocol-2 pickles + raw storages."""
    storages = {"0": STORAGE_0} if storages is None else storages
    parts = [
        magic_pkl if magic_pkl is not None else pickle.dumps(LEGACY_MAGIC, protocol=2),
        protocol_pkl if protocol_pkl is not None else pickle.dumps(LEGACY_PROTOCOL, protocol=2),
        sys_info_pkl if sys_info_pkl is not None else pickle.dumps(LEGACY_SYS_INFO, protocol=2),
        obj_pkl,
        keys_pkl if keys_pkl is not None else pickle.dumps(list(storages), protocol=2),
    ]
    for blob in storages.values():
        parts.append(struct.pack("<q", len(blob) // 4) + blob)  # numel, then float32 data
    return b"".join(parts)


def seven_z_number(value: int) -> bytes:
    """7z variable-length UINT64 encoding."""
    for extra in range(8):
        if value < (1 << (7 * (extra + 1))):
            first = ((0xFF << (8 - extra)) & 0xFF) | (value >> (8 * extra))
            return bytes([first]) + (value & ((1 << (8 * extra)) - 1)).to_bytes(extra, "little")
    return b"\xff" + value.to_bytes(8, "little")


SEVEN_Z_SIGNATURE = b"7z\xbc\xaf\x27\x1c"


def build_7z(name: str, payload: bytes) -> bytes:
    """Single-file 7z archive using the *Copy* coder (stored, so bytes stay greppable)."""
    num = seven_z_number
    names = name.encode("utf-16-le") + b"\x00\x00"
    header = b"".join(
        [
            b"\x01",  # kHeader
            b"\x04",  # kMainStreamsInfo
            b"\x06" + num(0) + num(1) + b"\x09" + num(len(payload)) + b"\x00",  # kPackInfo
            b"\x07\x0b" + num(1) + b"\x00",  # kUnPackInfo, kFolder, 1 folder, not external
            num(1) + b"\x01\x00",  # 1 coder: simple, 1-byte id 0x00 (Copy)
            b"\x0c" + num(len(payload)) + b"\x00",  # kCodersUnPackSize, kEnd
            b"\x08\x0a\x01"
            + struct.pack("<I", zlib.crc32(payload))
            + b"\x00",  # kSubStreamsInfo CRC
            b"\x00",  # end of kMainStreamsInfo
            b"\x05"
            + num(1)
            + b"\x11"
            + num(len(names) + 1)
            + b"\x00"
            + names
            + b"\x00",  # kFilesInfo
            b"\x00",  # end of kHeader
        ]
    )
    start_header = struct.pack("<QQI", len(payload), len(header), zlib.crc32(header))
    return (
        SEVEN_Z_SIGNATURE
        + b"\x00\x04"
        + struct.pack("<I", zlib.crc32(start_header))
        + start_header
        + payload
        + header
    )


EMPTY_DICT_PKL = b"\x80\x02}."
"""``{}`` at protocol 2: the smallest sys_info a legacy file or a legacy tar can hold."""
EMPTY_LIST_PKL = b"\x80\x02]."
"""``[]`` at protocol 2: a legacy file's storage keys when it has no storage."""
LEGACY_MAGIC_PKL = pickle.dumps(LEGACY_MAGIC, protocol=2)
LEGACY_PROTOCOL_PKL = pickle.dumps(LEGACY_PROTOCOL, protocol=2)


def bare_legacy(obj_pkl: bytes, *, magic_pkl: bytes | None = None) -> bytes:
    """The legacy layout at its smallest: magic, protocol, ``{}``, the object, ``[]``."""
    return legacy_file(
        obj_pkl,
        magic_pkl=magic_pkl,
        sys_info_pkl=EMPTY_DICT_PKL,
        keys_pkl=EMPTY_LIST_PKL,
        storages={},
    )


# --------------------------------------------------------------------------- raw zips


def raw_member(name: str, data: bytes, **fields: int | bytes) -> dict[str, object]:
    """A stored member for :func:`raw_zip`; ``fields`` override method, time, csize, size or
    the payload bytes."""
    return {"name": name, "data": data, **fields}


def raw_zip(
    members: list[dict[str, object]],
    *,
    on_disk: int | None = None,
    zip64: dict[str, int] | None = None,
    junk: bytes = b"",
) -> bytes:
    """A zip whose every field is chosen: central sizes/method/time per member, the end
    record's entries-on-this-disk, and an optional zip64 record + locator."""
    out, central = bytearray(), bytearray()
    for m in members:
        name, data = str(m["name"]).encode(), bytes(m["data"])  # type: ignore[arg-type]
        payload = bytes(m.get("payload", data))  # type: ignore[arg-type]
        method, time = int(m.get("method", 0)), int(m.get("time", 0))  # type: ignore[call-overload]
        csize = int(m.get("csize", len(payload)))  # type: ignore[call-overload]
        usize = int(m.get("size", len(data)))  # type: ignore[call-overload]
        crc, offset = zlib.crc32(data), len(out)
        out += (
            struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, time, 0, crc, csize, usize, len(name), 0
            )
            + name
            + payload
        )
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                time,
                0,
                crc,
                csize,
                usize,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    n, cd_at = len(members), len(out)
    out += central
    if zip64 is not None:
        z = {"size_rec": 44, "this_disk": 0, "cd_disk": 0, "on_disk": n, "disks": 1} | zip64
        record_at = len(out)
        out += struct.pack(
            "<IQHHIIQQQQ",
            0x06064B50,
            z["size_rec"],
            45,
            45,
            z["this_disk"],
            z["cd_disk"],
            z["on_disk"],
            n,
            len(central),
            cd_at,
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, record_at, z["disks"])
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        n if on_disk is None else on_disk,
        n,
        len(central),
        cd_at,
        0,
    )
    return bytes(out + junk)


# --------------------------------------------------------------------------- zipfile zips

_DOS_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_of(members: dict[str, bytes]) -> bytes:
    """A stored zip written by Python's ``zipfile``, members in the given order."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def small_torch_zip(
    data_pkl: bytes,
    extra: dict[str, bytes] | None = None,
    *,
    deflate: bool = False,
    declared: int | None = None,
) -> bytes:
    """The three records torch needs (``archive/data.pkl``, ``byteorder``, ``version``) and
    ``extra`` members under ``archive/``, written by ``zipfile`` with fixed dates.

    ``deflate`` compresses data.pkl; ``declared`` rewrites its uncompressed size in the local
    header and the directory (a size that lies).
    """
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("archive/data.pkl", _DOS_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
        zf.writestr(info, data_pkl)
        others = {"byteorder": b"little", "version": b"3\n", **(extra or {})}
        for name, body in others.items():
            zf.writestr(zipfile.ZipInfo(f"archive/{name}", _DOS_EPOCH), body)
    out = bytearray(buf.getvalue())
    if declared is not None:
        struct.pack_into("<I", out, 22, declared)
        cd = out.find(b"PK\x01\x02")
        struct.pack_into("<I", out, cd + 24, declared)
    return bytes(out)


def rezip(
    data: bytes,
    *,
    extra: dict[str, bytes] | None = None,
    replace: dict[str, bytes] | None = None,
    prefix: bytes = b"",
) -> bytes:
    """Copy a torch zip member by member, adding (under its top folder) or replacing members
    by their name below the top folder, and putting ``prefix`` before the copy."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(buffer, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            short = info.filename.split("/", 1)[1]
            zout.writestr(info.filename, (replace or {}).get(short, body))
        top = zin.infolist()[0].filename.split("/", 1)[0]
        for short, body in (extra or {}).items():
            zout.writestr(f"{top}/{short}", body)
    return prefix + buffer.getvalue()


# --------------------------------------------------------------------------- tars


def tar_of(
    members: Sequence[tuple[str, bytes]],
    *,
    first_header: Callable[[bytearray], None] | None = None,
    fmt: int | None = None,
    declared_sizes: Sequence[int | None] | None = None,
) -> bytes:
    """A tar of ``members`` (mtime 0) in ``fmt`` (default ``tarfile.USTAR_FORMAT``).

    ``first_header`` rewrites the first 512-byte header; ``declared_sizes`` rewrites member
    sizes (GNU base-256, one header per member) to lie. Checksums are redone.
    """
    import tarfile

    buffer = io.BytesIO()
    fmt = tarfile.USTAR_FORMAT if fmt is None else fmt
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray(buffer.getvalue())
    if first_header is not None:
        header = raw[:512]
        first_header(header)
        header[148:156] = b" " * 8
        header[148:156] = b"%07o " % sum(header)
        raw[:512] = header
    pos = 0
    for (_name, body), declared in zip(
        members, declared_sizes or [None] * len(members), strict=True
    ):
        if declared is not None:
            raw[pos + 124 : pos + 136] = b"\x80" + declared.to_bytes(11, "big")
            raw[pos + 148 : pos + 156] = b" " * 8
            raw[pos + 148 : pos + 156] = (f"{sum(raw[pos : pos + 512]):06o}\0 ").encode()
        pos += 512 + (len(body) + 511) // 512 * 512
    return bytes(raw)


def legacy_tar(pickle_payload: bytes) -> bytes:
    """torch's oldest format: a tar of sys_info, pickle (the object), storages and tensors."""
    import tarfile

    members = [
        ("sys_info", pickle.dumps({"protocol_version": 1001}, protocol=2)),
        ("pickle", pickle_payload),
        ("storages", pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2)),
        ("tensors", pickle.dumps(0, protocol=2)),
    ]
    return tar_of(members, fmt=tarfile.PAX_FORMAT)


# --------------------------------------------------------------------------- other formats


def npy_object(pickle_bytes: bytes) -> bytes:
    """A version-1 ``.npy`` of dtype object: its data is ``pickle_bytes``."""
    head = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    head += b" " * (-(10 + len(head) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + pickle_bytes


def safetensors_file(n: int = 2) -> bytes:
    """A safetensors file of ``n`` float32 tensors of shape [2]."""
    header = {
        f"t{i}": {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]}
        for i in range(n)
    }
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * 8 * n
