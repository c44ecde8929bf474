#!/usr/bin/env python3
"""Research probe, run by hand; not part of the test suite.

Empirical probe of torch.load(weights_only=True) on edge-case containers.

Reproduces every observation in docs/notes/torch-loader-behaviour.md.

Run with the pinned torch:
    python3 -m venv /tmp/venv-probe && /tmp/venv-probe/bin/pip install torch==2.13.0 numpy
    /tmp/venv-probe/bin/python tools/probe_torch_loader.py            # all sections
    /tmp/venv-probe/bin/python tools/probe_torch_loader.py Q3 Q18     # some sections

Only ever calls torch.load with weights_only=True (restricted unpickler).
Every case is loaded twice: from a file path and from an io.BytesIO; when the
two outcomes differ both are printed ("path:" / "buf:").
"""

import io
import os
import pickle
import pickletools
import struct
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib

import torch
import torch.serialization as ts

OUT = tempfile.mkdtemp(prefix="probe_torch_")
SECTIONS = set(a.upper() for a in sys.argv[1:])


# --------------------------------------------------------------------------
# outcome formatting
# --------------------------------------------------------------------------
def _short(obj, n=70):
    r = repr(obj).replace("\n", " ")
    return r if len(r) <= n else r[: n - 3] + "..."


def _exc(e):
    msg = str(e)
    first = msg.split("\n", 1)[0]
    inner = None
    if "WeightsUnpickler error: " in msg:
        inner = msg.split("WeightsUnpickler error: ", 1)[1]
        inner = inner.split("\n\nCheck the documentation", 1)[0].strip()
    elif msg.startswith("Weights only load failed."):
        inner = msg.split("\n\n", 1)[1] if "\n\n" in msg else msg
        inner = inner.split("\n\nCheck the documentation", 1)[0].strip()
    if inner:
        inner = inner.split("\n")[0]
        return f"{type(e).__name__}: {first[:60]}... [inner: {inner[:200]}]"
    return f"{type(e).__name__}: {first[:220]}"


def _call(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            r = "OK " + _short(fn())
        except BaseException as e:
            r = _exc(e)
    ws = [str(x.message).split("\n")[0][:90] for x in w
          if "pickle_load_args" not in str(x.message)]
    if ws:
        r += "  {warn: " + " | ".join(sorted(set(ws))) + "}"
    return r


def load_path(path):
    return _call(lambda: torch.load(path, weights_only=True))


def load_buf(data):
    return _call(lambda: torch.load(io.BytesIO(data), weights_only=True))


def unsafe(data):
    return _call(lambda: ts.get_unsafe_globals_in_checkpoint(io.BytesIO(data)))


_n = [0]


def case(label, data, ext=".pt", globals_=False, path_only=False):
    """Write data to a file, load via path and via BytesIO, print outcome."""
    _n[0] += 1
    p = os.path.join(OUT, f"c{_n[0]:03d}{ext}")
    with open(p, "wb") as f:
        f.write(data)
    rp = load_path(p)
    rb = None if path_only else load_buf(data)
    if rb is None or rp == rb:
        print(f"  - {label}: {rp}")
    else:
        print(f"  - {label}:\n      path: {rp}\n      buf:  {rb}")
    if globals_:
        print(f"      get_unsafe_globals: {unsafe(data)}")


def section(tag, title):
    if SECTIONS and tag not in SECTIONS:
        return False
    print(f"\n## {tag}: {title}")
    return True


# --------------------------------------------------------------------------
# hand-made zip writer
# --------------------------------------------------------------------------
class E:
    """One zip member. lname = name in local header (default = name)."""

    def __init__(self, name, data, lname=None, method=0, crc_l=None, crc_c=None,
                 align=64, dd=False, usize_c=None, csize_c=None):
        self.name = name.encode() if isinstance(name, str) else name
        ln = lname if lname is not None else name
        self.lname = ln.encode() if isinstance(ln, str) else ln
        self.data = data
        self.method = method
        self.crc = zlib.crc32(data) & 0xFFFFFFFF
        self.crc_l = self.crc if crc_l is None else crc_l
        self.crc_c = self.crc if crc_c is None else crc_c
        self.align = align
        self.dd = dd
        if method == 8:
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.payload = co.compress(data) + co.flush()
        else:
            self.payload = data
        self.usize_c = len(data) if usize_c is None else usize_c
        self.csize_c = len(self.payload) if csize_c is None else csize_c


def build_zip(entries, cd_order=None, prefix=b"", suffix=b"", comment=b"",
              offsets_relative_to_prefix=False, zip64=False):
    out = bytearray(prefix)
    offs = []
    for e in entries:
        off = len(out) - (len(prefix) if offsets_relative_to_prefix else 0)
        offs.append(off)
        extra = b""
        if e.align:
            hdr_end = len(out) + 30 + len(e.lname) + 4
            pad = (-hdr_end) % e.align
            extra = b"FB" + struct.pack("<H", pad) + b"\0" * pad
        flag = 0x08 if e.dd else 0
        if e.dd:
            lh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flag, e.method, 0, 0x21,
                             0, 0, 0, len(e.lname), len(extra))
        else:
            lh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flag, e.method, 0, 0x21,
                             e.crc_l, len(e.payload), len(e.data), len(e.lname), len(extra))
        out += lh + e.lname + extra + e.payload
        if e.dd:
            out += struct.pack("<IIII", 0x08074B50, e.crc_l, len(e.payload), len(e.data))
    cd_start = len(out)
    order = cd_order if cd_order is not None else range(len(entries))
    for i in order:
        e = entries[i]
        flag = 0x08 if e.dd else 0
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flag, e.method, 0,
                           0x21, e.crc_c, e.csize_c, e.usize_c, len(e.name), 0, 0, 0, 0,
                           0, offs[i]) + e.name
    cd_size = len(out) - cd_start
    cd_off = cd_start - (len(prefix) if offsets_relative_to_prefix else 0)
    n = len(list(order))
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, len(comment)) + comment
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_off,
                           len(comment)) + comment
    return bytes(out + suffix)


# --------------------------------------------------------------------------
# payload helpers
# --------------------------------------------------------------------------
def torch_bytes(obj, **kw):
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


SD = {"w": torch.arange(4, dtype=torch.float32)}           # state dict with a tensor
PKL_TENSOR = zipfile.ZipFile(io.BytesIO(torch_bytes(SD))).read("archive/data.pkl")
STORAGE0 = zipfile.ZipFile(io.BytesIO(torch_bytes(SD))).read("archive/data/0")
PKL_A = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."     # {'a': 1}
PKL_B = b"\x80\x02}q\x00X\x01\x00\x00\x00bK\x02s."     # {'b': 2}
BAD_GLOBAL = b"\x80\x02cos\nsystem\nq\x00."             # GLOBAL os.system
EVIL_GLOBAL = b"\x80\x02cfoo.bar\nBaz\nq\x00."          # GLOBAL foo.bar.Baz (not allowed)


def tz(pkl=PKL_A, top="archive", extra=(), drop=(), version=b"3\n", **kw):
    """A torch-like zip with data.pkl=pkl under folder `top`."""
    pre = f"{top}/" if top is not None else ""
    ents = [E(pre + "data.pkl", pkl)]
    if "byteorder" not in drop:
        ents.append(E(pre + "byteorder", b"little"))
    if pkl is PKL_TENSOR:
        ents.append(E(pre + "data/0", STORAGE0))
    if "version" not in drop:
        ents.append(E(pre + "version", version))
    ents += list(extra)
    if "data.pkl" in drop:
        ents = ents[1:]
    return build_zip(ents, **kw)


def local_names(data):
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, i.compress_type, i.file_size) for i in z.infolist()]


# ==========================================================================
if section("Q1", "zip layout written by torch.save"):
    p = os.path.join(OUT, "foo.pt")
    torch.save(SD, p)
    with open(p, "rb") as fh:
        d = fh.read()
    for label, data in (("path /…/foo.pt", d), ("BytesIO", torch_bytes(SD))):
        z = zipfile.ZipFile(io.BytesIO(data))
        print(f"  {label}: {len(data)} bytes")
        for i in z.infolist():
            off = i.header_offset
            nl, el = struct.unpack("<HH", data[off + 26: off + 30])
            lflag, lmeth = struct.unpack("<HH", data[off + 6: off + 10])
            lcrc, lcs, lus = struct.unpack("<III", data[off + 14: off + 26])
            ex = data[off + 30 + nl: off + 30 + nl + el]
            start = off + 30 + nl + el
            dd = data[start + i.file_size: start + i.file_size + 16]
            print(f"    {i.filename!r:40} size={i.file_size:<4} method={i.compress_type} "
                  f"flag=0x{lflag:x} local(crc={lcrc},csize={lcs},usize={lus}) "
                  f"extra={ex[:4]!r}+{el - 4}pad data@{start} (mod64={start % 64}) "
                  f"dd={dd[:4]!r} content={z.read(i)[:24]!r}")
        eocd = data.rfind(b"PK\x05\x06")
        z64 = data.rfind(b"PK\x06\x06")
        print(f"    central dir @ {z.start_dir}, zip64 EOCD record @ {z64}, EOCD @ {eocd}, "
              f"trailing after EOCD = {len(data) - eocd - 22}")
    for name in ("foo.bar.pt", "noext", "we ird.pt", "δοκ.pt", "x.", ".hidden"):
        p = os.path.join(OUT, name)
        try:
            torch.save(SD, p)
            print(f"  torch.save({name!r}) top folder -> "
                  f"{zipfile.ZipFile(p).namelist()[0].split('/')[0]!r}")
        except Exception as e:
            print(f"  torch.save({name!r}) -> {_exc(e)}")
    for kw in ({"_disable_byteorder_record": True},):
        print(f"  torch.save(BytesIO, {kw}) members: "
              f"{zipfile.ZipFile(io.BytesIO(torch_bytes(SD, **kw))).namelist()}")
    print("  data.pkl of the state dict:")
    pickletools.dis(PKL_TENSOR, out=sys.stdout, annotate=0)

# ==========================================================================
if section("Q2", "top-folder discovery and required members"):
    case("baseline hand-built zip archive/{data.pkl,byteorder,version}", tz(), globals_=True)
    case("tensor state dict, hand-built, top='archive'", tz(PKL_TENSOR))
    case("top folder 'xyz'", tz(top="xyz"))
    case("top folder 'a b' (space)", tz(top="a b"))
    case("top folder unicode 'δοκιμή'", tz(top="δοκιμή"))
    case("top folder '..'", tz(top=".."))
    case("top folder '' (names start with '/')", tz(top=""))
    case("top folder 'a/b' (nested: names a/b/data.pkl)", tz(top="a/b"))
    case("no folder at all (data.pkl at root)", tz(top=None))
    case("first entry 'README' (no '/') then archive/...",
         build_zip([E("README", b"hi"), E("archive/data.pkl", PKL_A),
                    E("archive/version", b"3\n")]))
    case("first CD entry 'other/x', rest archive/...",
         build_zip([E("other/x", b"hi"), E("archive/data.pkl", PKL_A),
                    E("archive/version", b"3\n")]))
    case("first CD entry 'other/version', data.pkl only under archive/",
         build_zip([E("other/version", b"3\n"), E("archive/data.pkl", PKL_A),
                    E("archive/version", b"3\n")]))
    case("local order archive/* first but CD lists 'other/x' first",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"),
                    E("other/x", b"hi")], cd_order=[2, 0, 1]))
    case("first CD entry is directory entry 'archive/'",
         build_zip([E("archive/", b""), E("archive/data.pkl", PKL_A),
                    E("archive/version", b"3\n")]))
    case("mixed case: first 'Archive/data.pkl', version 'archive/version'",
         build_zip([E("Archive/data.pkl", PKL_A), E("archive/version", b"3\n")]))
    case("missing data.pkl", tz(drop=("data.pkl",)), globals_=True)
    case("missing version", tz(drop=("version",)))
    case("missing byteorder", tz(drop=("byteorder",)))
    case("only data.pkl", tz(drop=("version", "byteorder")))
    case("version only in .data/version",
         tz(drop=("version",), extra=[E("archive/.data/version", b"3\n")]))
    case("both version='3' and .data/version='99'", tz(extra=[E("archive/.data/version", b"99\n")]))
    for v in (b"1\n", b"2\n", b"3", b"4\n", b"9\n", b"10\n", b"0\n", b"\n", b"x\n", b" 3\n",
              b"3 junk\n", b"-1\n", b"6\n", b"7\n"):
        case(f"version content {v!r}", tz(version=v))
    for v in (b"11\n", b"0x3\n", b"3.9\n", b"+3\n", b"\t\n 3\n", b"99999999999999999999\n",
              b"18446744073709551615\n", b"3\x00garbage"):
        case(f"version content {v!r}", tz(version=v))
    case("names differ only in case: 'archive/DATA.PKL' + 'archive/VERSION'",
         build_zip([E("archive/DATA.PKL", PKL_A), E("archive/VERSION", b"3\n")]))
    case("'ARCHIVE/data.pkl' first, all others 'ARCHIVE/'",
         build_zip([E("ARCHIVE/data.pkl", PKL_A), E("ARCHIVE/version", b"3\n")]))
    case("EOCD says 0 entries (both counts 0, cd size 0)",
         (lambda d: d[:-14] + b"\0" * 8 + d[-6:])(tz()))
    case("EOCD counts 1 but CD has 2 entries (data.pkl first)",
         (lambda d: d[:-14] + struct.pack("<HH", 1, 1) + d[-10:])(tz(drop=("byteorder",))))
    def _break_local_sig(d, member):
        """Corrupt the local-header signature of `member` (found via the CD)."""
        off = zipfile.ZipFile(io.BytesIO(d)).getinfo(member).header_offset
        return d[:off] + b"XX" + d[off + 2:]
    case("torch zip + extra unreferenced member 'archive/junk' with bad local header sig",
         _break_local_sig(build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"),
                                     E("archive/junk", b"zz")]), "archive/junk"))
    case("data.pkl (2nd local entry) with bad local header signature",
         _break_local_sig(build_zip([E("archive/version", b"3\n"), E("archive/data.pkl", PKL_A)]),
                          "archive/data.pkl"))
    e = E("archive/junk", b"zz")
    e.method = 12
    case("unreferenced member with unsupported method 12",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"), e]))
    e = E("archive/.data/serialization_id", b"123")
    e.method = 12
    case(".data/serialization_id with unsupported method 12 (read during init)",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"), e]))
    case("byteorder='big'",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/byteorder", b"big"),
                    E("archive/version", b"3\n")]))
    case("byteorder='middle'",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/byteorder", b"middle"),
                    E("archive/version", b"3\n")]))
    case(".storage_alignment='abc' (no tensors)",
         tz(extra=[E("archive/.storage_alignment", b"abc")]))
    case(".format_version='zz'", tz(extra=[E("archive/.format_version", b"zz")]))
    case("data.pkl references data/0 but data/0 missing",
         build_zip([E("archive/data.pkl", PKL_TENSOR), E("archive/version", b"3\n")]))
    case("data/0 too short (8 bytes for 16-byte tensor)",
         build_zip([E("archive/data.pkl", PKL_TENSOR), E("archive/data/0", STORAGE0[:8]),
                    E("archive/version", b"3\n")]))
    case("data/0 too long (extra 8 bytes)",
         build_zip([E("archive/data.pkl", PKL_TENSOR), E("archive/data/0", STORAGE0 + b"\0" * 8),
                    E("archive/version", b"3\n")]))
    case("data/0 stored unaligned (no FB padding)",
         build_zip([E("archive/data.pkl", PKL_TENSOR), E("archive/data/0", STORAGE0, align=0),
                    E("archive/version", b"3\n")]))

# ==========================================================================
if section("Q3", "duplicate member names"):
    ents = [E("archive/data.pkl", PKL_A), E("archive/data.pkl", PKL_B),
            E("archive/version", b"3\n")]
    case("dup data.pkl, CD order A,B (A first)", build_zip(ents), globals_=True)
    case("dup data.pkl, CD order B,A", build_zip(ents, cd_order=[1, 0, 2]), globals_=True)
    case("dup data.pkl, CD order version,A,B", build_zip(ents, cd_order=[2, 0, 1]))
    case("dup data.pkl, CD order version,B,A", build_zip(ents, cd_order=[2, 1, 0]))
    ents3 = [E("archive/data.pkl", PKL_A), E("archive/data.pkl", PKL_B),
             E("archive/data.pkl", BAD_GLOBAL), E("archive/version", b"3\n")]
    case("triple data.pkl A,B,os.system", build_zip(ents3), globals_=True)
    case("triple data.pkl os.system,A,B", build_zip(ents3, cd_order=[2, 0, 1, 3]), globals_=True)
    case("triple data.pkl A,os.system,B", build_zip(ents3, cd_order=[0, 2, 1, 3]), globals_=True)
    # many entries so that binary search has something to chew on
    many = [E(f"archive/m{i:02d}", b"x") for i in range(20)]
    entsm = [E("archive/data.pkl", PKL_A), *many, E("archive/data.pkl", PKL_B),
             E("archive/version", b"3\n")]
    case("dup data.pkl A ... 20 others ... B", build_zip(entsm), globals_=True)
    case("dup data.pkl B ... 20 others ... A",
         build_zip(entsm, cd_order=[21, *range(1, 21), 0, 22]), globals_=True)
    entsv = [E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"),
             E("archive/version", b"99\n")]
    case("dup version '3' then '99'", build_zip(entsv))
    case("dup version '99' then '3'", build_zip(entsv, cd_order=[0, 2, 1]))
    entsc = [E("archive/data.pkl", PKL_A), E("archive/DATA.PKL", PKL_B),
             E("archive/version", b"3\n")]
    case("case variants: 'data.pkl'(A), 'DATA.PKL'(B)", build_zip(entsc), globals_=True)
    case("case variants: 'DATA.PKL'(B), 'data.pkl'(A)", build_zip(entsc, cd_order=[1, 0, 2]),
         globals_=True)
    # duplicates with different top folders
    case("archive/data.pkl(A) + other/data.pkl(B), archive first",
         build_zip([E("archive/data.pkl", PKL_A), E("other/data.pkl", PKL_B),
                    E("archive/version", b"3\n"), E("other/version", b"3\n")]))
    case("same, other first",
         build_zip([E("other/data.pkl", PKL_B), E("archive/data.pkl", PKL_A),
                    E("archive/version", b"3\n"), E("other/version", b"3\n")]))

# ==========================================================================
if section("Q4", "CRC checking and compression"):
    case("data.pkl: bad CRC in local header only",
         build_zip([E("archive/data.pkl", PKL_A, crc_l=0xDEADBEEF), E("archive/version", b"3\n")]))
    case("data.pkl: bad CRC in central dir only",
         build_zip([E("archive/data.pkl", PKL_A, crc_c=0xDEADBEEF), E("archive/version", b"3\n")]),
         globals_=True)
    case("data.pkl: bad CRC in both",
         build_zip([E("archive/data.pkl", PKL_A, crc_l=1, crc_c=1), E("archive/version", b"3\n")]))
    case("data/0 (tensor storage): bad CRC in both",
         build_zip([E("archive/data.pkl", PKL_TENSOR),
                    E("archive/data/0", STORAGE0, crc_l=1, crc_c=1),
                    E("archive/version", b"3\n")]))
    case("version: bad CRC in both",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n", crc_l=1, crc_c=1)]))
    case("data.pkl deflated (method 8)",
         build_zip([E("archive/data.pkl", PKL_A, method=8), E("archive/version", b"3\n")]),
         globals_=True)
    case("data.pkl deflated with bad CRC",
         build_zip([E("archive/data.pkl", PKL_A, method=8, crc_l=1, crc_c=1),
                    E("archive/version", b"3\n")]))
    case("data/0 deflated",
         build_zip([E("archive/data.pkl", PKL_TENSOR), E("archive/data/0", STORAGE0, method=8),
                    E("archive/version", b"3\n")]))
    case("version deflated",
         build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n", method=8)]))
    e = E("archive/data.pkl", PKL_A)
    e.method = 12  # claim bzip2 but store raw
    case("data.pkl method=12 (bzip2) claimed",
         build_zip([e, E("archive/version", b"3\n")]))
    case("data.pkl with data descriptor (flag bit 3, local sizes 0)",
         build_zip([E("archive/data.pkl", PKL_A, dd=True), E("archive/version", b"3\n")]))
    e = E("archive/data.pkl", PKL_A)
    case("data.pkl deflated, CD uncompressed size too small",
         build_zip([E("archive/data.pkl", PKL_A, method=8, usize_c=5),
                    E("archive/version", b"3\n")]))
    case("data.pkl deflated, CD uncompressed size too large",
         build_zip([E("archive/data.pkl", PKL_A, method=8, usize_c=len(PKL_A) + 5),
                    E("archive/version", b"3\n")]))
    case("data.pkl stored, CD csize != usize (csize+1)",
         build_zip([E("archive/data.pkl", PKL_A, csize_c=len(PKL_A) + 1),
                    E("archive/version", b"3\n")]))
    e = E("archive/data.pkl", PKL_A)
    ez = build_zip([e, E("archive/version", b"3\n")])
    cdp = ez.find(b"PK\x01\x02")
    case("data.pkl: CD general-purpose flag bit 0 (encrypted) set",
         ez[:cdp + 8] + b"\x01\x00" + ez[cdp + 10:])
    cdp2 = ez.find(b"PK\x01\x02", cdp + 4)
    case("version: CD flag bit 0 (encrypted) set",
         ez[:cdp2 + 8] + b"\x01\x00" + ez[cdp2 + 10:])
    case("unreferenced member: CD flag bit 0 (encrypted) set",
         (lambda z: (lambda c3: z[:c3 + 8] + b"\x01\x00" + z[c3 + 10:])(z.rfind(b"PK\x01\x02")))(
             build_zip([E("archive/data.pkl", PKL_A), E("archive/version", b"3\n"),
                        E("archive/junk", b"zz")])))
    case("data.pkl CD uncompressed size too small (5)",
         build_zip([E("archive/data.pkl", PKL_A, usize_c=5, csize_c=5),
                    E("archive/version", b"3\n")]))
    case("data.pkl CD size too large (+10) (reads into next header)",
         build_zip([E("archive/data.pkl", PKL_A, usize_c=len(PKL_A) + 10, csize_c=len(PKL_A) + 10),
                    E("archive/version", b"3\n")]))

# ==========================================================================
if section("Q5", "prefix / suffix / zip64"):
    good = torch_bytes(SD)
    case("100 junk bytes + torch zip", b"J" * 100 + good)
    case("100 zero bytes + torch zip", b"\0" * 100 + good)
    case("'PK\\x03\\x04' + 96 junk + torch zip (offsets not adjusted)",
         b"PK\x03\x04" + b"J" * 96 + good)
    pre = b"PK\x03\x04" + b"J" * 96
    case("'PK\\x03\\x04'+junk prefix, hand-built, CD offsets absolute",
         tz(prefix=pre))
    case("'PK\\x03\\x04'+junk prefix, hand-built, CD offsets relative to zip start",
         tz(prefix=pre, offsets_relative_to_prefix=True))
    case("junk appended after EOCD (100 bytes)", good + b"J" * 100)
    case("junk appended after EOCD (70000 bytes)", good + b"J" * 70000)
    case("EOCD comment of 100 bytes", tz(comment=b"c" * 100))
    def _outcome(k):
        try:
            torch.load(io.BytesIO(good + b"J" * k), weights_only=True)
            return "OK"
        except Exception as e:
            import re
            return re.sub(r"-?\d+", "N", f"{type(e).__name__}: {str(e).split(chr(10))[0][:70]}")
    # coarse scan then bisection of every outcome change
    ks = list(range(0, 72001, 250))
    outs = [_outcome(k) for k in ks]
    print(f"  - junk suffix sweep 0..72000 bytes after EOCD (torch zip of {len(good)} bytes):")
    start, start_k = 0, 0
    for i in range(1, len(ks) + 1):
        if i == len(ks) or outs[i] != outs[start]:
            hi_k = ks[i - 1]
            if i < len(ks):
                lo_, hi_ = ks[i - 1], ks[i]
                while hi_ - lo_ > 1:
                    mid = (lo_ + hi_) // 2
                    if _outcome(mid) == outs[start]:
                        lo_ = mid
                    else:
                        hi_ = mid
                hi_k = lo_
            print(f"      junk {start_k}..{hi_k}: {outs[start]}")
            if i < len(ks):
                start, start_k = i, hi_k + 1
    eo = good.rfind(b"PK\x05\x06")
    case("torch.save output with 32-bit EOCD cd-offset/size/count zeroed (zip64 record intact)",
         good[:eo + 8] + b"\0" * 12 + good[eo + 20:])
    z64 = good.rfind(b"PK\x06\x06")
    case("torch.save output with zip64 EOCD record cd-offset set to 7 (32-bit EOCD intact)",
         good[:z64 + 48] + struct.pack("<Q", 7) + good[z64 + 56:])
    loc = good.rfind(b"PK\x06\x07")
    case("torch.save output with zip64 locator signature broken (falls back to 32-bit EOCD)",
         good[:loc] + b"XX" + good[loc + 2:])
    _jp = os.path.join(OUT, "junk5000.pt")
    with open(_jp, "wb") as fh:
        fh.write(good + b"J" * 5000)
    print(f"  - junk 5000 via path: {load_path(_jp)}")
    fake = tz(comment=b"PK\x05\x06" + b"\0" * 18)
    case("EOCD comment contains a fake empty EOCD 'PK\\x05\\x06'+18 zero bytes", fake)
    case("fake EOCD in trailing junk (not comment), pointing nowhere",
         good + b"PK\x05\x06" + b"\0" * 4 + struct.pack("<HHII", 1, 1, 46, 0) + b"\0\0")
    case("junk suffix containing 'PK\\x05\\x06' but fewer than 22 bytes after it",
         good + b"PK\x05\x06" + b"\0" * 10)
    case("second full torch zip appended", good + torch_bytes({"x": 2}))
    case("hand-built zip64 EOCD", tz(zip64=True))
    case("torch.save output (already has zip64 EOCD + locator)", good)

# ==========================================================================
if section("Q6", "local header name vs central directory name"):
    case("CD 'archive/data.pkl', local 'archive/XXXX.pkl'",
         build_zip([E("archive/data.pkl", PKL_A, lname="archive/XXXX.pkl"),
                    E("archive/version", b"3\n")]),
         globals_=True)
    case("CD 'archive/data.pkl', local name longer 'archive/data.pkl.evil'",
         build_zip([E("archive/data.pkl", PKL_A, lname="archive/data.pkl.evil"),
                    E("archive/version", b"3\n")]))
    case("CD 'archive/zzz', local 'archive/data.pkl' (no CD data.pkl)",
         build_zip([E("archive/zzz", PKL_A, lname="archive/data.pkl"),
                    E("archive/version", b"3\n")]))
    case("CD first name 'other/data.pkl', local 'archive/data.pkl'",
         build_zip([E("other/data.pkl", PKL_A, lname="archive/data.pkl"),
                    E("other/version", b"3\n")]))
    # Local header sizes (non-dd) differ from CD sizes
    e = E("archive/data.pkl", PKL_A)
    case("local header sizes lie: CD says 5 bytes, local says full",
         build_zip([E("archive/data.pkl", PKL_A, usize_c=5, csize_c=5),
                    E("archive/version", b"3\n")]))

# ==========================================================================
if section("Q7", "trailing bytes after STOP in data.pkl"):
    case("data.pkl = {'a':1} . + second pickle {'b':2}", tz(PKL_A + PKL_B), globals_=True)
    case("data.pkl = {'a':1} . + 'cos\\nsystem\\n' (unsafe global after STOP)",
         tz(PKL_A + BAD_GLOBAL), globals_=True)
    case("data.pkl = {'a':1} . + garbage 0xff*10", tz(PKL_A + b"\xff" * 10), globals_=True)
    case("data.pkl without STOP", tz(PKL_A[:-1]), globals_=True)
    case("data.pkl truncated inside BINUNICODE", tz(PKL_A[:8]), globals_=True)
    case("data.pkl empty", tz(b""), globals_=True)
    case("data.pkl = just STOP ('.')", tz(b"."), globals_=True)
    case("data.pkl = PROTO 2 + NONE + STOP", tz(b"\x80\x02N."), globals_=True)

# ==========================================================================
if section("Q8", "TorchScript archives"):
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1

    try:
        b = io.BytesIO()
        torch.jit.save(torch.jit.script(M()), b)
        js = b.getvalue()
        print(f"  torch.jit.save members: {[n for n, _, _ in local_names(js)]}")
        case("torch.jit.save of a scripted module", js, globals_=True)
    except Exception as e:
        print(f"  torch.jit.script/save failed here: {_exc(e)}")
    case("plain torch zip + archive/constants.pkl (empty)",
         tz(extra=[E("archive/constants.pkl", b"")]), globals_=True)
    case("plain torch zip + other/constants.pkl",
         tz(extra=[E("other/constants.pkl", b"")]))
    case("plain torch zip + archive/sub/constants.pkl",
         tz(extra=[E("archive/sub/constants.pkl", b"")]))
    case("plain torch zip + archive/constants.pkl.bak",
         tz(extra=[E("archive/constants.pkl.bak", b"")]))
    case("plain torch zip + archive/Constants.pkl",
         tz(extra=[E("archive/Constants.pkl", b"")]))
    case("member 'archive/constants.pkl\\0xyz' (embedded NUL)",
         tz(extra=[E(b"archive/constants.pkl\0xyz", b"")]))
    case("member 'archive/x.debug_pkl' (debug_pkl entries are filtered from get_all_records)",
         tz(extra=[E("archive/x.debug_pkl", b"")]))
    case("constants.pkl but data.pkl has os.system",
         tz(BAD_GLOBAL, extra=[E("archive/constants.pkl", b"")]))
    case("constants.pkl, no data.pkl",
         build_zip([E("archive/constants.pkl", b""), E("archive/version", b"3\n")]))

# ==========================================================================
if section("Q9", "legacy (non-zip) format"):
    leg = torch_bytes({"w": torch.arange(3, dtype=torch.int16),
                       "v": torch.ones(2, dtype=torch.float64)},
                      _use_new_zipfile_serialization=False)
    f = io.BytesIO(leg)
    names = ["magic", "protocol_version", "sys_info", "object", "storage_keys"]
    offs = []
    for nm in names:
        start = f.tell()
        ops = list(pickletools.genops(f))
        proto = [a for op, a, _ in ops if op.name == "PROTO"]
        f.seek(start)
        for _ in pickletools.genops(f):
            pass
        end = f.tell()
        offs.append((nm, start, end))
        print(f"  pickle {nm:17} bytes [{start},{end}) proto={proto} "
              f"ops={[op.name for op, _, _ in ops][:12]}{'...' if len(ops) > 12 else ''}")
        if nm != "object":
            print(f"      value: {_short(pickle.loads(leg[start:end]), 200)}")
        else:
            print("      persistent ids:", [a for op, a, _ in ops if op.name == "BINUNICODE"][:12])
    rest = leg[offs[-1][2]:]
    print(f"  raw storage region: {len(rest)} bytes: {rest.hex()}")
    print("  => per storage (in storage_keys order): "
          "<q numel (element count, 8 bytes LE)> + numel*elsize bytes")
    print("  object pickle disassembly:")
    pickletools.dis(leg[offs[3][1]:offs[3][2]], out=sys.stdout, annotate=0)
    case("legacy torch.save(_use_new_zipfile_serialization=False)", leg, globals_=True)
    obj_s, obj_e = offs[3][1], offs[3][2]
    case("legacy, object pickle replaced by os.system global",
         leg[:obj_s] + BAD_GLOBAL + leg[obj_e:])
    case("legacy, object pickle replaced by foo.bar.Baz global",
         leg[:obj_s] + EVIL_GLOBAL + leg[obj_e:])
    si_s, si_e = offs[2][1], offs[2][2]
    case("legacy, sys_info pickle replaced by os.system global",
         leg[:si_s] + BAD_GLOBAL + leg[si_e:])
    case("legacy, sys_info pickle replaced by foo.bar.Baz global",
         leg[:si_s] + EVIL_GLOBAL + leg[si_e:])
    case("legacy, sys_info pickle replaced by {'a':1} (arbitrary allowed value)",
         leg[:si_s] + PKL_A + leg[si_e:])
    case("legacy, storage_keys pickle has os.system",
         leg[:offs[4][1]] + BAD_GLOBAL + leg[offs[4][2]:])
    case("legacy, storage region truncated by 4 bytes", leg[:-4])
    case("legacy, storage region + 100 junk bytes appended", leg + b"J" * 100)
    case("legacy, storage numel prefix says 1e9", leg[:offs[4][2]] + struct.pack("<q", 10**9)
         + leg[offs[4][2] + 8:])
    mg_s, mg_e = offs[0][1], offs[0][2]
    case("legacy, magic number wrong (0x1950A86A20F9469CFC6D)",
         leg[:mg_s] + pickle.dumps(0x1950A86A20F9469CFC6D, protocol=2) + leg[mg_e:])
    case("legacy, magic as protocol-0 text LONG",
         pickle.dumps(0x1950A86A20F9469CFC6C, protocol=0) + leg[mg_e:])
    case("legacy, protocol_version 1000",
         leg[:offs[1][1]] + pickle.dumps(1000, protocol=2) + leg[offs[1][2]:])
    case("legacy, storage_keys names a key never created",
         leg[:offs[4][1]] + pickle.dumps(["nope"], protocol=2) + leg[offs[4][2]:])
    case("legacy, only the 3 header pickles + {'a':1} + [] (no tensors)",
         leg[:si_e] + PKL_A + pickle.dumps([], protocol=2))
    case("legacy, {'a':1} but storage_keys pickle missing (EOF)", leg[:si_e] + PKL_A)
    leg4 = torch_bytes({"w": torch.arange(3)}, _use_new_zipfile_serialization=False,
                       pickle_protocol=4)
    case("legacy with pickle_protocol=4", leg4)

# ==========================================================================
if section("Q10", "legacy tar format"):
    def mk_tar(members):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
            for n, d in members:
                ti = tarfile.TarInfo(n)
                ti.size = len(d)
                t.addfile(ti, io.BytesIO(d))
        return b.getvalue()

    p2 = lambda o: pickle.dumps(o, protocol=2)  # noqa: E731
    tar_ok = mk_tar([("sys_info", p2({"protocol_version": 1001, "little_endian": True,
                                       "type_sizes": {"short": 2, "int": 4, "long": 4}})),
                     ("pickle", PKL_A), ("storages", p2(0) + p2([])), ("tensors", p2(0))])
    case("hand-built legacy tar (sys_info, pickle, storages, tensors)", tar_ok, globals_=True)
    case("tar whose only member is 'hello.txt'", mk_tar([("hello.txt", b"hi")]))
    case("empty tar (just the two zero end blocks)", mk_tar([]))
    case("512 zero bytes", b"\0" * 512)
    case("1024 zero bytes + legacy torch file",
         b"\0" * 1024 + torch_bytes(SD, _use_new_zipfile_serialization=False))
    case("10 zero bytes", b"\0" * 10)
    case("tar with member named 'pickle' only", mk_tar([("pickle", PKL_A)]))
    _tp = os.path.join(OUT, "tar_fileobj.pt")
    with open(_tp, "wb") as fh:
        fh.write(tar_ok)
    with open(_tp, "rb") as _fh:
        print(f"  - hand-built tar passed as open(path,'rb') file object: "
              f"{_call(lambda: torch.load(_fh, weights_only=True))}")
    with open(_tp, "rb") as _fh:
        _fh.read(1)
        _fh.seek(0)
        print(f"  - same, via io.BufferedReader after seek(0): "
              f"{_call(lambda: torch.load(_fh, weights_only=True))}")
    _lp = os.path.join(OUT, "leg_at_offset.pt")
    with open(_lp, "wb") as fh:
        fh.write(b"\0" * 512 + torch_bytes(SD, _use_new_zipfile_serialization=False))
    with open(_lp, "rb") as _fh:
        _fh.seek(512)
        print(f"  - legacy file at offset 512 of an open file (tell()!=0 skips tar probe): "
              f"{_call(lambda: torch.load(_fh, weights_only=True))}")
    # Polyglot: a valid legacy torch file whose first 512 bytes are also a valid tar header.
    head = pickle.dumps(ts.MAGIC_NUMBER, 2) + pickle.dumps(1001, 2)      # 21 bytes
    L = 600
    body = bytearray(head + b"\x80\x02X" + struct.pack("<I", L) + b"0" * L + b".")
    body[148:156] = b" " * 8
    chk = 256 + sum(body[:148]) + sum(body[156:512])
    body[148:156] = b"%06o\0 " % chk
    poly = bytes(body) + PKL_A + pickle.dumps([], 2)
    case("POLYGLOT legacy torch file whose first 512 bytes are a valid tar header", poly)
    case("gzip'd tar (tar.gz)", __import__("gzip").compress(tar_ok))
    case("tar + torch zip appended", tar_ok + torch_bytes(SD))

# ==========================================================================
if section("Q11", "plain pickle files"):
    for proto in (0, 1, 2, 3, 4, 5):
        case(f"pickle.dump({{'a': 1}}, protocol={proto})", pickle.dumps({"a": 1}, protocol=proto))
    case("pickle.dumps(MAGIC_NUMBER, 2) only", pickle.dumps(ts.MAGIC_NUMBER, protocol=2))
    try:
        case("pickle.dumps(torch tensor, protocol=2)", pickle.dumps(torch.arange(3), protocol=2))
    except Exception as e:
        print("  pickle of tensor failed:", _exc(e))
    case("text file 'hello world\\n'", b"hello world\n")
    import numpy as np
    _npy = io.BytesIO()
    np.save(_npy, np.arange(3))
    case("numpy .npy file", _npy.getvalue())

# ==========================================================================
if section("Q12", "torch.save pickle_protocol"):
    for proto in (0, 1, 2, 3, 4, 5):
        try:
            d = torch_bytes(SD, pickle_protocol=proto)
        except Exception as e:
            print(f"  - pickle_protocol={proto}: torch.save failed: {_exc(e)}")
            continue
        first = [op.name for op, _, _ in pickletools.genops(
            zipfile.ZipFile(io.BytesIO(d)).read("archive/data.pkl"))][:3]
        case(f"torch.save(state_dict, pickle_protocol={proto}) first ops {first}", d, globals_=True)
    d = torch_bytes({"a": 1, "b": "s", "c": 1.5, "d": [1, 2], "e": (1,), "f": None, "g": True,
                     "h": b"xy", "i": 2**70, "j": {1, 2}, "k": bytearray(b"z"), "l": 1 + 2j,
                     "m": -5, "n": 300, "o": 70000, "p": torch.float16, "q": torch.device("cpu"),
                     "r": torch.Size([2, 3])})
    case("protocol 2 dict of many python types (bytes,set,bytearray,complex,dtype,device,Size)",
         d, globals_=True)
    from torch import _weights_only_unpickler as _wu
    _pkl = zipfile.ZipFile(io.BytesIO(d)).read("archive/data.pkl")
    print("    globals used:", sorted(_wu.get_globals_in_pkl(io.BytesIO(_pkl))))

# ==========================================================================
if section("Q13", ".safetensors dispatch"):
    try:
        import safetensors  # noqa: F401
        print("  safetensors IS installed")
    except ImportError:
        print("  safetensors is NOT installed")
    case("torch zip saved under name x.safetensors", torch_bytes(SD), ext=".safetensors",
         path_only=True)
    case("torch zip as .SAFETENSORS (upper case)", torch_bytes(SD), ext=".SAFETENSORS",
         path_only=True)
    case("torch zip as .safetensors.pt", torch_bytes(SD), ext=".safetensors.pt", path_only=True)
    case("garbage as .safetensors", b"garbage", ext=".safetensors", path_only=True)
    case("torch zip bytes passed as BytesIO (no name)", torch_bytes(SD))

# ==========================================================================
if section("Q14", "empty / tiny / truncated files"):
    good = torch_bytes(SD)
    z = zipfile.ZipFile(io.BytesIO(good))
    pk = z.getinfo("archive/data.pkl")
    mid_pkl = 64 + pk.file_size // 2
    case("empty file", b"")
    case("1 byte 'P'", b"P")
    case("1 byte 0x80", b"\x80")
    case("2 bytes 0x80 0x02", b"\x80\x02")
    case("'PK\\x03\\x04' only", b"PK\x03\x04")
    case("'PK\\x05\\x06' + 18 zero (empty zip, EOCD only)", b"PK\x05\x06" + b"\0" * 18)
    case("valid empty zip from zipfile (no members) prefixed? (starts with PK\\x05\\x06)",
         (lambda b: (zipfile.ZipFile(b, "w").close(), b.getvalue())[1])(io.BytesIO()))
    case("zip with one member that isn't in a folder, with PK\\x03\\x04 start",
         build_zip([E("hello.txt", b"hi")]))
    case(f"torch zip cut in middle of data.pkl (at {mid_pkl})", good[:mid_pkl])
    case(f"torch zip cut in middle of central directory (at {z.start_dir + 30})",
         good[:z.start_dir + 30])
    case("torch zip cut right before EOCD (drop last 22)", good[:-22])
    case("torch zip cut 1 byte short", good[:-1])
    case("torch zip with last 22 bytes zeroed", good[:-22] + b"\0" * 22)
    leg = torch_bytes(SD, _use_new_zipfile_serialization=False)
    case("legacy cut in half", leg[: len(leg) // 2])
    case("legacy cut after magic pickle", leg[:13])

# ==========================================================================
if section("Q15", "encoding='utf-8' and string opcodes"):
    case("SHORT_BINSTRING 'abc' as dict value", tz(b"\x80\x02}U\x01aU\x03abcs."))
    case("SHORT_BINSTRING invalid utf-8 b'\\xff\\xfe'", tz(b"\x80\x02}U\x01aU\x02\xff\xfes."),
         globals_=True)
    case("BINUNICODE invalid utf-8 b'\\xff'", tz(b"\x80\x02}X\x01\x00\x00\x00\xffK\x01s."))
    case("BINUNICODE lone surrogate (surrogatepass) b'\\xed\\xa0\\x80'",
         tz(b"\x80\x02}X\x03\x00\x00\x00\xed\xa0\x80K\x01s."))
    case("GLOBAL with non-utf8 module name", tz(b"\x80\x02c\xff\nx\n."), globals_=True)
    case("GLOBAL name without trailing newline before EOF", tz(b"\x80\x02ctorch\nSize"),
         globals_=True)
    leg_py2 = (pickle.dumps(ts.MAGIC_NUMBER, 2) + pickle.dumps(1001, 2) +
               b"\x80\x02}U\x10protocol_versionM\xe9\x03s." + b"\x80\x02}U\x01aK\x01s." +
               b"\x80\x02]q\x00.")
    case("legacy py2-style (SHORT_BINSTRING keys) no tensors", leg_py2)

# ==========================================================================
if section("Q16", "get_unsafe_globals_in_checkpoint edge cases"):
    for proto in (2, 4):
        d = torch_bytes(SD, pickle_protocol=proto)
        print(f"  - torch.save proto {proto}: {unsafe(d)}")
    print(f"  - legacy file: {unsafe(torch_bytes(SD, _use_new_zipfile_serialization=False))}")
    print(f"  - data.pkl with foo.bar.Baz: {unsafe(tz(EVIL_GLOBAL))}")
    print(f"  - data.pkl with os.system: {unsafe(tz(BAD_GLOBAL))}")
    for lbl, pk in (("GLOBAL copy_reg _reconstructor", b"ccopy_reg\n_reconstructor\n."),
                    ("protocol-2 SHORT_BINBYTES", b"\x80\x02C\x01a."),
                    ("unknown opcode after a global", b"cfoo\nbar\n\x95"),
                    ("FRAME then GLOBAL",
                     b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00cos\nsystem\n.")):
        print(f"  - data.pkl {lbl}: {unsafe(tz(pk))}")
    print(f"  - empty file: {unsafe(b'')}")
    from torch import _weights_only_unpickler as _w
    _d = sorted(_w._get_allowed_globals().keys())
    _u = sorted(_w._get_user_allowed_globals().keys())
    print(f"  - default allowlist ({len(_d)} names): {_d}")
    print(f"  - registered at 'import torch' via add_safe_globals ({len(_u)}): {_u}")
    print(f"  - torch zip without data.pkl: {unsafe(tz(drop=('data.pkl',)))}")

# ==========================================================================
if section("Q17", "global name normalisation"):
    def g(mod, name, tail=b"."):
        return b"\x80\x02c" + mod + b"\n" + name + b"\n" + tail

    lst = b"]q\x00(K\x01K\x02e\x85R."  # EMPTY_LIST MARK 1 2 APPENDS TUPLE1 REDUCE STOP
    case("__builtin__.set REDUCE([1,2])", tz(g(b"__builtin__", b"set", lst)), globals_=True)
    case("builtins.set REDUCE([1,2])", tz(g(b"builtins", b"set", lst)))
    case("__builtin__.bytearray", tz(g(b"__builtin__", b"bytearray")), globals_=True)
    case("copy_reg._reconstructor", tz(g(b"copy_reg", b"_reconstructor")), globals_=True)
    case("copyreg._reconstructor", tz(g(b"copyreg", b"_reconstructor")), globals_=True)
    case("__builtin__.unicode (NAME_MAPPING -> builtins.str)", tz(g(b"__builtin__", b"unicode")),
         globals_=True)
    case("__builtin__.eval", tz(g(b"__builtin__", b"eval")), globals_=True)
    case("builtins.eval", tz(g(b"builtins", b"eval")), globals_=True)
    case("builtinsx.foo", tz(g(b"builtinsx", b"foo")))
    case("__builtin__.intern (-> sys.intern, blocked module)", tz(g(b"__builtin__", b"intern")),
         globals_=True)
    case("posix.system", tz(g(b"posix", b"system")))
    case("nt.system", tz(g(b"nt", b"system")))
    case("sys.modules (dotted module 'sys')", tz(g(b"sys", b"modules")))
    case("os.path.join (module 'os.path' not in blocklist)", tz(g(b"os.path", b"join")))
    case("subprocess.Popen", tz(g(b"subprocess", b"Popen")))
    case("torch.tensor._rebuild_from_type_v2 (load_module_mapping torch.tensor->torch._tensor?)",
         tz(g(b"torch.tensor", b"_rebuild_from_type_v2")))
    case("torch.FloatStorage", tz(g(b"torch", b"FloatStorage")), globals_=True)
    case("torch.storage.UntypedStorage", tz(g(b"torch.storage", b"UntypedStorage")))
    case("torch.BogusStorage", tz(g(b"torch", b"BogusStorage")))
    case("torch.float32", tz(g(b"torch", b"float32")))
    case("torch.Size", tz(g(b"torch", b"Size")))
    case("collections.OrderedDict", tz(g(b"collections", b"OrderedDict")))
    case("UserDict.UserDict (IMPORT_MAPPING? -> collections.UserDict)",
         tz(g(b"UserDict", b"UserDict")))
    case("torch._utils._rebuild_tensor_v2 via GLOBAL 'torch._utils\\n_rebuild_tensor_v2\\r'",
         tz(b"\x80\x02ctorch._utils\r\n_rebuild_tensor_v2\n."))
    case("numpy.core.multiarray._reconstruct", tz(g(b"numpy.core.multiarray", b"_reconstruct")))
    case("torch.nested._internal.nested_tensor.NestedTensor",
         tz(g(b"torch.nested._internal.nested_tensor", b"NestedTensor")))
    case("torch.distributed.tensor.DTensor", tz(g(b"torch.distributed.tensor", b"DTensor")))

# ==========================================================================
if section("Q18", "opcode support"):
    def P(body):
        return b"\x80\x02" + body

    ops = [
        ("STACK_GLOBAL (after 2 BINUNICODE)",
         P(b"X\x05\x00\x00\x00torchX\x04\x00\x00\x00Size\x93.")),
        ("SHORT_BINUNICODE", P(b"\x8c\x01a.")),
        ("BINUNICODE8", P(b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00a.")),
        ("BINBYTES", P(b"B\x01\x00\x00\x00a.")),
        ("SHORT_BINBYTES", P(b"C\x01a.")),
        ("BINBYTES8", P(b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.")),
        ("BYTEARRAY8", P(b"\x96\x01\x00\x00\x00\x00\x00\x00\x00a.")),
        ("FRAME", P(b"\x95\x02\x00\x00\x00\x00\x00\x00\x00N.")),
        ("MEMOIZE", P(b"N\x94.")),
        ("EMPTY_SET", P(b"\x8f.")),
        ("ADDITEMS", P(b"\x8f(K\x01\x90.")),
        ("FROZENSET", P(b"(K\x01\x91.")),
        ("NEWOBJ_EX", P(b"ctorch\nSize\n)}\x92.")),
        ("NEWOBJ on torch.Size", P(b"ctorch\nSize\n)\x81.")),
        ("NEWOBJ on collections.OrderedDict", P(b"ccollections\nOrderedDict\n)\x81.")),
        ("BINSTRING (T)", P(b"T\x01\x00\x00\x00a.")),
        ("STRING (S, text)", P(b"S'a'\n.")),
        ("UNICODE (V, text)", P(b"Va\n.")),
        ("LONG4", P(b"\x8b\x01\x00\x00\x00\x05.")),
        ("LONG1", P(b"\x8a\x01\x05.")),
        ("INT (text I)", P(b"I5\n.")),
        ("INT I01 (True in proto0)", P(b"I01\n.")),
        ("LONG (text L)", P(b"L5L\n.")),
        ("FLOAT (text F)", P(b"F1.5\n.")),
        ("BINFLOAT", P(b"G?\xf8\x00\x00\x00\x00\x00\x00.")),
        ("BININT", P(b"J\xff\xff\xff\xff.")),
        ("BININT1", P(b"K\x05.")),
        ("BININT2", P(b"M\x05\x01.")),
        ("NONE/NEWTRUE/NEWFALSE tuple", P(b"N\x88\x89\x87.")),
        ("DICT (d, mark-based)", P(b"(X\x01\x00\x00\x00aK\x01d.")),
        ("LIST (l, mark-based)", P(b"(K\x01l.")),
        ("EMPTY_LIST + APPEND", P(b"]K\x01a.")),
        ("EMPTY_LIST + APPENDS", P(b"](K\x01K\x02e.")),
        ("EMPTY_TUPLE / TUPLE / TUPLE1-3",
         P(b")(K\x01tK\x01\x85K\x01K\x02\x86K\x01K\x02K\x03\x87\x87.")),
        ("OBJ (o)", P(b"(ctorch\nSize\no.")),
        ("INST (i)", P(b"(itorch\nSize\n.")),
        ("GET/PUT (text)", P(b"Np0\ng0\n.")),
        ("BINPUT/BINGET", P(b"Nq\x00h\x00.")),
        ("LONG_BINPUT/LONG_BINGET", P(b"Nr\x00\x00\x00\x00j\x00\x00\x00\x00.")),
        ("BINGET of unset memo", P(b"h\x05.")),
        ("POP", P(b"NN0.")),
        ("POP_MARK", P(b"N(K\x011.")),
        ("DUP", P(b"N2.")),
        ("PERSID (text P)", P(b"P0\n.")),
        ("BINPERSID with int pid", P(b"K\x00Q.")),
        ("BINPERSID with str pid", P(b"X\x01\x00\x00\x00aQ.")),
        ("BINPERSID with tuple ('module',)", P(b"X\x06\x00\x00\x00module\x85Q.")),
        ("EXT1", P(b"\x82\x01.")),
        ("NEXT_BUFFER", P(b"\x97.")),
        ("READONLY_BUFFER", P(b"N\x98.")),
        ("PROTO 0", b"\x80\x00N."),
        ("PROTO 5", b"\x80\x05N."),
        ("PROTO 255", b"\x80\xffN."),
        ("no PROTO at all", b"N."),
        ("two PROTO opcodes", b"\x80\x02\x80\x02N."),
        ("SETITEM on a list", P(b"]K\x01K\x02s.")),
        ("SETITEMS on OrderedDict via REDUCE", P(b"ccollections\nOrderedDict\n)R(K\x01K\x02u.")),
        ("SETITEM on Counter", P(b"ccollections\nCounter\n)RK\x01K\x02s.")),
        ("BUILD on a dict", P(b"}}b.")),
        ("BUILD on OrderedDict", P(b"ccollections\nOrderedDict\n)R}b.")),
        ("REDUCE torch.Size((2,3))", P(b"ctorch\nSize\nK\x02K\x03\x86\x85R.")),
        ("REDUCE _codecs.encode('a','latin1')",
         P(b"c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00latin1\x86R.")),
        ("REDUCE on a non-callable (int)", P(b"K\x01)R.")),
        ("STOP on empty stack", P(b".")),
        ("STOP with extra items left on stack", P(b"K\x01K\x02.")),
        ("MARK never closed then STOP", P(b"(K\x01.")),
        ("TUPLE with no MARK", P(b"K\x01t.")),
        ("APPEND to a dict", P(b"}K\x01a.")),
        ("dict with unhashable key (list)", P(b"}]K\x01s.")),
        ("unknown opcode 0xff", P(b"\xff.")),
        ("BINUNICODE length 2**31 (beyond EOF)", P(b"X\x00\x00\x00\x80a.")),
        ("GLOBAL missing trailing newline", P(b"ctorch\nSize")),
    ]
    for label, pkl in ops:
        case(label, tz(pkl), globals_=True)
    print("\n  -- the same pickles in the LEGACY container (magic+1001+{}+obj+[]) for comparison:")
    hdr = pickle.dumps(ts.MAGIC_NUMBER, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
    for label, pkl in ops[:12]:
        case("legacy: " + label, hdr + pkl + pickle.dumps([], 2))

print(f"\n(files written to {OUT})")
