"""Builders and real loaders for the tests of what other loaders read (issue 10, items 4-5).

Every hostile file here is assembled from opcodes and bytes. Its payload is a call of
``builtins.open(<marker>, 'w')``: a loader that reaches it creates the marker file, which the
tests look for after running the loader in a subprocess. Nothing in the payload does more.
The resource builders make files of a chosen size whose analysis used to cost far more than
their size (they feed tests/formats/test_file_budget.py and benchmarks/resource_cases.py).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

# --------------------------------------------------------------------------- opcodes


def global_(module: str, name: str) -> bytes:
    """GLOBAL module.name (protocol 0 text opcode)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def unicode_(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def binbytes(raw: bytes) -> bytes:
    """BINBYTES."""
    return b"B" + struct.pack("<I", len(raw)) + raw


def marker_call(marker: Path | str, protocol: int = 2) -> bytes:
    """A whole pickle whose load calls builtins.open(marker, 'w')."""
    body = global_("builtins", "open") + b"(" + unicode_(str(marker)) + unicode_("w") + b"tR"
    return (b"\x80" + bytes([protocol]) if protocol >= 2 else b"") + body + b"."


def marker_call_text(marker: Path | str) -> bytes:
    """The same call in protocol 0 only (text opcodes), as pickle.dumps(protocol=0) writes."""
    text = str(marker).replace("\\", "\\\\").replace("'", "\\'")
    return global_("builtins", "open") + b"(S'" + text.encode() + b"'\nS'w'\ntR."


BENIGN = b"\x80\x02}" + unicode_("a") + b"K\x01s."
"""A plain dict: {'a': 1}."""


# --------------------------------------------------------------------------- numpy


def npy(body: bytes, descr: str = "|O", version: int = 1) -> bytes:
    """A .npy file of one element whose header says ``descr`` and whose body is ``body``."""
    head = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}".encode()
    fixed = 10 if version == 1 else 12
    head += b" " * (-(fixed + len(head) + 1) % 64) + b"\n"
    size = struct.pack("<H", len(head)) if version == 1 else struct.pack("<I", len(head))
    return b"\x93NUMPY" + bytes([version, 0]) + size + head + body


# --------------------------------------------------------------------------- zips


def zip_of(members: dict[str, bytes], compress: bool = False) -> bytes:
    """A zip written by Python's zipfile (stored unless ``compress``)."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def torch_zip_with(members: dict[str, bytes], data_pkl: bytes | None = None) -> bytes:
    """A torch zip (top folder ``archive``) with ``members`` added or replaced."""
    base = {
        "archive/data.pkl": data_pkl if data_pkl is not None else BENIGN,
        "archive/byteorder": b"little",
        "archive/version": b"3\n",
        "archive/.data/serialization_id": b"1234567890",
    }
    return zip_of(base | {f"archive/{k}": v for k, v in members.items()})


def tensor_pickle(key: str = "0", numel: int = 1) -> bytes:
    """data.pkl of {'w': FloatTensor of ``numel`` elements in storage ``key``} (protocol 2)."""
    storage = (
        b"("
        + unicode_("storage")
        + global_("torch", "FloatStorage")
        + unicode_(key)
        + unicode_("cpu")
        + b"J"
        + struct.pack("<i", numel)
        + b"tQ"
    )
    size = b"J" + struct.pack("<i", numel)
    args = (
        b"("
        + storage
        + b"K\x00"
        + size
        + b"\x85K\x01\x85\x89"
        + global_("collections", "OrderedDict")
        + b")Rt"
    )
    tensor = global_("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    return b"\x80\x02}" + unicode_("w") + tensor + b"s."


def same_member_directory(name: str, data: bytes, copies: int) -> bytes:
    """A zip whose central directory lists ``copies`` entries that all point at one stored
    member (the local header at offset 0)."""
    crc = zlib.crc32(data)
    raw = name.encode()
    out = bytearray(
        struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0
        )
        + raw
        + data
    )
    central = bytearray()
    for i in range(copies):
        entry_name = f"{name}.{i}.pkl".encode()
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            0,
            0,
            0,
            crc,
            len(data),
            len(data),
            len(entry_name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        central += entry_name
    at = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(central), at, 0)
    return bytes(out)


# --------------------------------------------------------------------------- resources


def deep_tuple_key(depth: int) -> bytes:
    """An OrderedDict built with a BUILD state whose key is a tuple nested ``depth`` deep."""
    deep = b")" + b"\x85" * depth  # EMPTY_TUPLE, then TUPLE1 around it depth times
    body = global_("collections", "OrderedDict") + b")R}" + deep + b"K\x01sb"
    return b"\x80\x02" + body + b"."


def many_nested_loads(payload_items: int, calls: int) -> bytes:
    """One memoized payload (a list of ``payload_items`` empty dicts) handed to
    pickle.loads ``calls`` times."""
    payload = b"\x80\x02(" + b"}" * payload_items + b"l."
    body = b"(" + binbytes(payload) + b"q\x000"
    body += (global_("pickle", "loads") + b"h\x00\x85R") * calls
    return b"\x80\x02" + body + b"l."


def streams_after_stop(count: int, stream_size: int) -> bytes:
    """``count`` pickle streams of about ``stream_size`` bytes each, one after another."""
    items = max(1, (stream_size - 6) // 2)
    stream = b"\x80\x02](" + b"K\x01" * items + b"e."
    return stream * count


def repeated_proto(size: int) -> bytes:
    """Bytes of no known format (two invalid opcode bytes) and then PROTO 2 over and over."""
    return b"\xff\xff" + b"\x80\x02" * (size // 2)


# --------------------------------------------------------------------------- real loaders

_LOADERS = {
    # pickle.load from a file opened by path (a BufferedReader: it peeks)
    "pickle-file": "import pickle\nwith open(PATH, 'rb') as f:\n    pickle.load(f)",
    # pickle.load over an in-memory file (BytesIO: no peek, frames are read whole)
    "pickle-bytesio": "import io, pickle\npickle.load(io.BytesIO(open(PATH, 'rb').read()))",
    # pickle.loads from bytes
    "pickle-bytes": "import pickle\npickle.loads(open(PATH, 'rb').read())",
    # a loop of pickle.load over a file, until the bytes run out
    "pickle-loop": (
        "import pickle\nwith open(PATH, 'rb') as f:\n    while f.peek(1):\n        pickle.load(f)"
    ),
    # numpy.load of a .npy file
    "numpy": "import numpy\nnumpy.load(PATH, allow_pickle=True)",
    # numpy.load of an archive (a .npz, or any zip): every member it can read
    "numpy-archive": (
        "import numpy\nz = numpy.load(PATH, allow_pickle=True)\n"
        "for name in z.files:\n    try:\n        z[name]\n"
        "    except Exception:\n        pass"
    ),
    # torch.load without the weights_only guard
    "torch": "import torch\ntorch.load(PATH, weights_only=False)",
}


def loader_reaches(loader: str, path: Path, marker: Path) -> bool:
    """Run a real loader on ``path`` in a fresh interpreter; True if it created ``marker``.

    The loader's own errors (the payload's return value breaks what follows it) are
    ignored: what counts is whether the call ran.
    """
    if marker.exists():
        marker.unlink()
    script = f"PATH = {str(path)!r}\ntry:\n" + textwrap.indent(_LOADERS[loader], "    ")
    script += "\nexcept Exception:\n    pass\n"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    subprocess.run(
        [sys.executable, "-c", script], env=env, timeout=300, check=False, capture_output=True
    )
    return marker.exists()


# --------------------------------------------------------------------------- frames


def frame_skip(payload: bytes, frame_pad: int = 0) -> bytes:
    """A protocol-4 pickle that a reader from bytes loads as one string and a reader from a
    file (holding the frame in a buffer) loads as ``payload`` (opcodes ending in STOP).

    The frame ends inside a BINUNICODE: from bytes, its text runs on past the frame and a
    STOP follows; from a file, the rest of the frame is dropped, the text is read from the
    frame's end, and the payload follows it. ``frame_pad`` bytes of filler in the frame make
    it big enough (8 KiB or more) that even a peeking file reads it whole.
    """
    inside = 3  # bytes of the text inside the frame
    size = 16  # the text's declared length
    filler = unicode_("f" * frame_pad) + b"0" if frame_pad else b""
    body = filler + b"X" + struct.pack("<I", size) + b"abc"[:inside]
    # From bytes the text takes size - inside bytes more, then this STOP; from a file it
    # takes all of `after`, then the payload. 'z' is no opcode: what follows STOP ends there.
    after = b"s" * (size - inside) + b"." + b"z" * (inside - 1)
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body + after + payload


def overlapping_members(payload: bytes, copies: int) -> bytes:
    """A zip of ``copies`` members whose local headers differ but whose data is the same
    bytes: each header's extra field runs over the headers after it, so that every member's
    data starts at ``payload``. Each entry is distinct; the bytes they cover overlap."""
    names = [f"m{i:04d}.pkl".encode() for i in range(copies)]
    header = 30 + len(names[0])
    crc = zlib.crc32(payload)
    out = bytearray()
    for i, name in enumerate(names):
        extra = (copies - 1 - i) * header
        out += (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                0,
                0,
                0,
                crc,
                len(payload),
                len(payload),
                len(name),
                extra,
            )
            + name
        )
    out += payload
    central = bytearray()
    for i, name in enumerate(names):
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                len(payload),
                len(payload),
                len(name),
                0,
                0,
                0,
                0,
                0,
                i * header,
            )
            + name
        )
    at = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies, len(central), at, 0)
    return bytes(out)
