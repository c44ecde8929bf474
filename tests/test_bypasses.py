"""Regression tests for the scanner bypasses a red-team campaign found (closed in d413eec).

Each hostile file is checked twice: ckptaudit must call it dangerous, and a real loader must
really reach its payload. The loaders never run a payload: the pickle module they are given
resolves a short list of harmless globals for real and turns every other one (``os.system``,
``logging.os``, ``uuid._ip_getnode``) into a recorder, so a builder that stops being a real
payload makes its test fail. Container formats go through ``torch.load(weights_only=False,
pickle_module=<that stub>)``, so torch's own zip/tar/legacy code picks the pickle it unpickles;
the safe ``torch.load(weights_only=True)`` checks ckptaudit's ``weights_only_compatible``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copyreg
import functools
import importlib
import io
import pickle
import struct
import tarfile
import types
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ckptaudit
from ckptaudit.findings import FileReport, Status
from ckptaudit.pickle.vm import run_pickle

# --------------------------------------------------------------------------- opcode builders


def G(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def U(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def pk(body: bytes, proto: int = 2) -> bytes:
    return b"\x80" + bytes([proto]) + body + b"."


def os_attr(attr: str) -> bytes:
    """getattr(logging.os, attr): os.<attr> without ever naming os."""
    return call(G("builtins", "getattr"), G("logging", "os"), U(attr))


def partial(func: bytes, *args: bytes) -> bytes:
    return call(G("functools", "partial"), func, *args)


def namespace(**attrs: bytes) -> bytes:
    """A SimpleNamespace whose instance attributes the file chooses (one BUILD)."""
    items = b"".join(U(k) + v + b"s" for k, v in attrs.items())
    return call(G("types", "SimpleNamespace")) + b"}" + items + b"b"


SYSTEM_TRUE = partial(os_attr("system"), U("true"))  # calling it runs os.system('true')
HOSTILE = pk(call(G("os", "system"), U("true")))
BENIGN = pk(b"}" + U("a") + b"K\x01s")
RAN = "system('true',)"  # what the recorder logs when a payload above is reached

MAGIC_PKL = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
PROTO_PKL, SYSINFO_PKL, KEYS_PKL = b"\x80\x02M\xe9\x03.", b"\x80\x02}.", b"\x80\x02]."


def legacy(obj_pkl: bytes, magic: bytes = MAGIC_PKL) -> bytes:
    return magic + PROTO_PKL + SYSINFO_PKL + obj_pkl + KEYS_PKL


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def torch_zip(data_pkl: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    members = {"archive/data.pkl": data_pkl, "archive/byteorder": b"little"}
    members["archive/version"] = b"3\n"
    return zip_of(members | {f"archive/{k}": v for k, v in (extra or {}).items()})


_NPY_HEAD = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
_NPY_HEAD += b" " * (-(10 + len(_NPY_HEAD) + 1) % 64) + b"\n"
NPY_OBJECT = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(_NPY_HEAD)) + _NPY_HEAD + HOSTILE


def zip64_two_directories() -> bytes:
    """The 32-bit end record names a benign directory, the zip64 record (miniz's) a hostile one."""
    out, offsets, entries = bytearray(), [], []
    members = [("archive/data.pkl", BENIGN), ("archive/version", b"3\n")]
    members += [("archive/byteorder", b"little"), ("archive/data.pkl", HOSTILE)]
    for name, data in members:
        offsets.append(len(out))
        crc, n = zlib.crc32(data), name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data),
                           len(data), len(n), 0) + n + data
        entries.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, 0, 0, 0, 0x21,
                                   crc, len(data), len(data), len(n), 0, 0, 0, 0, 0,
                                   offsets[-1]) + n)
    benign_cd, hostile_cd = b"".join(entries[:3]), entries[3] + entries[1] + entries[2]
    benign_at = len(out)
    out += benign_cd
    hostile_at = len(out)
    out += hostile_cd
    record_at = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 3, 3, len(hostile_cd),
                       hostile_at)
    out += struct.pack("<IIQI", 0x07064B50, 0, record_at, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(benign_cd), benign_at, 0)
    return bytes(out)


TAR_HOSTILE = [("x", b""), ("storages", HOSTILE), ("tensors", b"\x80\x02K\x00."),
               ("pickle", BENIGN)]


def tar_of(members: list[tuple[str, bytes]], first_header: Callable[[bytearray], None] | None = None,
           fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """A tar; ``first_header`` rewrites the first 512-byte header (the checksum is redone)."""
    buffer = io.BytesIO()
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
    return bytes(raw)


def _legacy_in_name(header: bytearray) -> None:
    header[0:100] = legacy(BENIGN).ljust(100, b"\0")  # a whole legacy checkpoint in 100 bytes


def _safetensors_in_header(header: bytearray) -> None:
    """u64 length + a JSON __metadata__ string that swallows every tar field."""
    n = 504
    header[0:8] = struct.pack("<Q", n)
    js = bytearray(b" " * n)
    prefix = b'{"__metadata__":{"k":"'
    js[: len(prefix)] = prefix
    for i in range(len(prefix), n - 4):
        c = header[8 + i]
        keep = 100 <= 8 + i < 500 and c >= 0x20 and c not in (0x22, 0x5C)
        js[i] = c if keep else 0x41 if 8 + i < 100 else 0x20
    js[n - 8 :] = b'"}}     '
    header[8 : 8 + n] = js


def _pickle_in_longname(header: bytearray) -> None:
    assert header[156:157] == b"L"  # a GNU long-name record: tarfile never uses its own name
    header[0:100] = b"}.".ljust(100, b"\0")


# --------------------------------------------------------------------------- recording loaders

_REAL = {("builtins", n) for n in ("getattr", "dict", "list", "set", "tuple", "frozenset")} | {
    ("functools", "partial"),
    ("types", "SimpleNamespace"),
    ("copyreg", "_reconstructor"),
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_parameter"),
}


class Recorder:
    """Stands for any global the stub does not trust: calling it only logs the call."""

    def __init__(self, name: str, log: list[str]) -> None:
        self._name, self._log = name, log

    def __call__(self, *args: object) -> int:
        self._log.append(f"{self._name}{args!r}")
        return 0

    def __getattr__(self, attr: str) -> Recorder:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Recorder(f"{self._name}.{attr}", self._log)


def recording_pickle_module() -> types.ModuleType:
    """A module usable as ``pickle_module``: harmless globals are real, the rest record."""
    log: list[str] = []
    resolved: dict[tuple[str, str], object] = {
        # A private subclass: a BUILD on the class must not patch the real argparse.Namespace.
        ("argparse", "Namespace"): type("Namespace", (argparse.Namespace,), {}),
    }

    class RecordingUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            key = (module, name)
            if key not in resolved:
                real = key in _REAL
                resolved[key] = super().find_class(*key) if real else Recorder(".".join(key), log)
            return resolved[key]

    stub = types.ModuleType("recording_pickle")
    stub.Unpickler = RecordingUnpickler  # type: ignore[attr-defined]
    stub.load = lambda f, **kw: RecordingUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    stub.loads = lambda b, **kw: RecordingUnpickler(io.BytesIO(b), **kw).load()  # type: ignore[attr-defined]
    stub.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    stub.log = log  # type: ignore[attr-defined]
    stub.resolved = resolved  # type: ignore[attr-defined]
    return stub


def _load_all(stub: types.ModuleType, data: bytes) -> None:
    """pickle.load until the bytes run out, as loaders that read several objects do."""
    f = io.BytesIO(data)
    while f.tell() < len(data):
        stub.load(f)


def _np_load(stub: types.ModuleType, f: object, member: str | None = None) -> None:
    try:  # where read_array lives: numpy >= 2, then 1.x
        fmt = importlib.import_module("numpy.lib._format_impl")
    except ImportError:
        fmt = importlib.import_module("numpy.lib.format")
    saved = fmt.pickle
    fmt.pickle = stub  # np.load(allow_pickle=True) unpickles object arrays through it
    try:
        loaded = np.load(f, allow_pickle=True)
        if member is not None:
            loaded[member]
    finally:
        fmt.pickle = saved


def _zip_walk(stub: types.ModuleType, data: bytes) -> None:
    """A tool that opens every member: pickles, .npy arrays and nested zips."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            body = z.read(name)
            try:
                if name.endswith(".zip"):
                    _zip_walk(stub, body)
                elif name.endswith(".npy"):
                    _np_load(stub, io.BytesIO(body))
                elif name.endswith((".pkl", ".pth")):
                    _load_all(stub, body)
            except Exception:  # a broken member ends only that member
                continue


def _torch(path: Path, stub: types.ModuleType) -> None:
    torch.load(str(path), weights_only=False, pickle_module=stub)


def _torch_fileobj(path: Path, stub: types.ModuleType) -> None:
    with path.open("rb") as f:  # a file object: torch's .safetensors name check is skipped
        torch.load(f, weights_only=False, pickle_module=stub)


LOADERS: dict[str, Callable[[Path, types.ModuleType], None]] = {
    "pickle": lambda path, stub: stub.loads(path.read_bytes()),
    "pickle-loop": lambda path, stub: _load_all(stub, path.read_bytes()),
    "torch": _torch,
    "torch-fileobj": _torch_fileobj,
    "zip-walk": lambda path, stub: _zip_walk(stub, path.read_bytes()),
    "npz": lambda path, stub: _np_load(stub, path, "arr"),
}


def payload_calls(path: Path, loader: str) -> list[str]:
    """What a real loader calls when it loads ``path`` (recorded, never run)."""
    stub = recording_pickle_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The recorder's return value (0) breaks most gadgets right after the call.
        with contextlib.suppress(Exception):
            LOADERS[loader](path, stub)
    return list(stub.log)


def torch_weights_only_loads(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(str(path), weights_only=True)
        except Exception:
            return False
    return True


def audit(tmp_path: Path, data: bytes, filename: str) -> tuple[Path, FileReport]:
    path = tmp_path / filename
    path.write_bytes(data)
    report = ckptaudit.audit_file(path)
    assert report.weights_only_compatible is torch_weights_only_loads(path), report
    return path, report


def assert_dangerous_and_reached(
    tmp_path: Path, data: bytes, filename: str, loader: str, ran: str
) -> FileReport:
    path, report = audit(tmp_path, data, filename)
    assert report.status is Status.DANGEROUS, report.findings
    calls = payload_calls(path, loader)
    assert any(ran in c for c in calls), calls
    return report


# --------------------------------------------------------------------------- 1. implicit calls

IMPLICIT_CALLS = [
    pytest.param(pk(namespace(append=os_attr("system")) + U("true") + b"a"),
                 "logging.os.system('true',)", id="append-on-namespace"),
    pytest.param(pk(namespace(extend=partial(os_attr("spawnvp"), b"K\x00", U("true")))
                    + b"(" + U("true") + b"e"),
                 "logging.os.spawnvp(0, 'true', ['true'])", id="appends-extend"),
    pytest.param(pk(namespace(add=os_attr("system")) + b"(" + U("true") + b"\x90", proto=4),
                 "logging.os.system('true',)", id="additems-add"),
    pytest.param(pk(namespace(__setstate__=os_attr("system")) + U("true") + b"b"),
                 "logging.os.system('true',)", id="second-build-calls-planted-setstate"),
    pytest.param(pk(call(G("builtins", "dict"), namespace(keys=SYSTEM_TRUE))),
                 "logging.os.system('true',)", id="dict-calls-planted-keys"),
    pytest.param(pk(call(G("collections", "OrderedDict"), namespace(keys=SYSTEM_TRUE))),
                 "logging.os.system('true',)", id="ordereddict-calls-planted-keys"),
    pytest.param(pk(call(G("copyreg", "_reconstructor"), G("collections", "OrderedDict"),
                         G("builtins", "dict"), namespace(keys=SYSTEM_TRUE))),
                 "logging.os.system('true',)", id="reconstructor-dict-base-calls-planted-keys"),
    pytest.param(b"\x80\x02(" + SYSTEM_TRUE + b"o.",
                 "logging.os.system('true',)", id="obj-without-args-calls-partial"),
    pytest.param(b"\x80\x02(iuuid\n_ip_getnode\n.", "uuid._ip_getnode()",
                 id="inst-without-args-calls-function"),
    pytest.param(pk(G("argparse", "Namespace") + b"N}" + U("__iter__") + SYSTEM_TRUE + b"s\x86b0"
                    + call(G("builtins", "list"), call(G("argparse", "Namespace")))),
                 "logging.os.system('true',)", id="build-on-class-patches-iter-slot"),
]


@pytest.mark.parametrize(("data", "ran"), IMPLICIT_CALLS)
def test_implicit_call_is_dangerous_and_runs(tmp_path: Path, data: bytes, ran: str) -> None:
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle", ran)


def test_implicit_call_parameter_detach_in_torch_zip(tmp_path: Path) -> None:
    parameter = call(G("torch._utils", "_rebuild_parameter"), namespace(detach=SYSTEM_TRUE),
                     b"\x89", call(G("collections", "OrderedDict")))
    data = torch_zip(pk(b"}" + U("w") + parameter + b"s"))
    assert_dangerous_and_reached(tmp_path, data, "model.pt", "torch", "logging.os.system('true',)")


def test_build_on_module_monkeypatches_it(tmp_path: Path) -> None:
    """Sleepy pickle: BUILD on the module os (as logging.os) replaces os.getcwd for later."""
    data = pk(G("logging", "os") + b"}" + U("getcwd") + SYSTEM_TRUE + b"sb0}")
    _, report = audit(tmp_path, data, "model.pkl")
    assert report.status is Status.DANGEROUS, report.findings
    stub = recording_pickle_module()
    assert stub.loads(data) == {}
    patched_os = stub.resolved[("logging", "os")]
    assert isinstance(patched_os.getcwd, functools.partial)  # the module now holds the payload
    patched_os.getcwd()  # what the application's next os.getcwd() would do
    assert stub.log == ["logging.os.system('true',)"]


# --------------------------------------------------------------------------- 2. module aliases


@pytest.mark.parametrize(("module", "name"), [("logging", "os"), ("random", "_os")],
                         ids=["logging.os", "random._os"])
def test_module_alias_reference_is_dangerous(tmp_path: Path, module: str, name: str) -> None:
    data = pk(b"}" + U("m") + G(module, name) + b"s")
    _, report = audit(tmp_path, data, "model.pkl")
    assert report.status is Status.DANGEROUS, report.findings
    stub = recording_pickle_module()
    assert isinstance(stub.loads(data)["m"], Recorder)  # the file does hand out the module


# --------------------------------------------------------------------------- 3. zip64 record


def test_zip64_record_overrides_32bit_end_record(tmp_path: Path) -> None:
    report = assert_dangerous_and_reached(tmp_path, zip64_two_directories(), "model.pt", "torch",
                                          "os.system('true',)")
    assert not report.weights_only_compatible
    assert not torch_weights_only_loads(tmp_path / "model.pt")


# --------------------------------------------------------------------------- 4./5. tar readings

TARS = [
    pytest.param(tar_of(TAR_HOSTILE, _legacy_in_name), "model.pt", "torch", True,
                 id="polyglot-legacy-tar"),
    pytest.param(tar_of(TAR_HOSTILE, _safetensors_in_header), "model.pt", "torch", True,
                 id="polyglot-safetensors-tar"),
    pytest.param(tar_of(TAR_HOSTILE, _safetensors_in_header), "model.safetensors",
                 "torch-fileobj", True, id="polyglot-safetensors-tar-named-safetensors"),
    # Its first header's name field is the pickle `}.`: a tar and a plain pickle at once.
    pytest.param(tar_of([("d" * 6000, b""), *TAR_HOSTILE[1:]], _pickle_in_longname,
                        tarfile.GNU_FORMAT),
                 "model.pt", "torch", True, id="tar-gnu-longname-past-4k"),
    pytest.param(tar_of([("sys_info", SYSINFO_PKL), ("storages", b"\x80\x02K\x00." + HOSTILE),
                         ("tensors", b"\x80\x02K\x00."), ("pickle", BENIGN)]),
                 "model.tar", "torch", False, id="tar-storage-views-pickle"),
]


@pytest.mark.parametrize(("data", "filename", "loader", "polyglot"), TARS)
def test_tar_read_as_torch_reads_it(
    tmp_path: Path, data: bytes, filename: str, loader: str, polyglot: bool
) -> None:
    report = assert_dangerous_and_reached(tmp_path, data, filename, loader, "os.system('true',)")
    assert report.format == "torch-tar"
    assert any(f.rule == "CKA106" for f in report.findings) is polyglot, report.findings


# --------------------------------------------------------------------------- 6. hidden streams

HIDDEN = [
    pytest.param(BENIGN + BENIGN + HOSTILE, "model.pkl", "pickle-loop",
                 id="plain-third-pickle"),
    pytest.param(torch_zip(BENIGN + BENIGN + HOSTILE), "model.pt", "zip-walk",
                 id="data-pkl-third-pickle"),
    pytest.param(legacy(BENIGN) + HOSTILE, "model.pt", "pickle-loop", id="legacy-sixth-pickle"),
    pytest.param(torch_zip(BENIGN, {"data/extra.pkl": HOSTILE}), "model.pt", "zip-walk",
                 id="unreferenced-pkl-under-data"),
    pytest.param(torch_zip(BENIGN, {"extra/inner.zip": zip_of({"evil.pkl": HOSTILE})}), "model.pt",
                 "zip-walk", id="nested-zip-member"),
    pytest.param(torch_zip(BENIGN, {"extra.npy": NPY_OBJECT}), "model.pt", "zip-walk",
                 id="object-npy-member"),
    pytest.param(zip_of({"arr.npy": NPY_OBJECT}), "arrays.npz", "npz", id="npz-object-member"),
    pytest.param(torch_zip(BENIGN, {"sub/model.pth": b"cos\nsystem\n(S'true'\ntR\xff\xff"}),
                 "model.pt", "zip-walk", id="protocol0-payload-ending-in-garbage"),
]


@pytest.mark.parametrize(("data", "filename", "loader"), HIDDEN)
def test_hidden_stream_is_audited(tmp_path: Path, data: bytes, filename: str, loader: str) -> None:
    assert_dangerous_and_reached(tmp_path, data, filename, loader, RAN)


# --------------------------------------------------------------------------- 7. INT parsing


def test_legacy_magic_as_hex_text_int(tmp_path: Path) -> None:
    data = legacy(HOSTILE, magic=b"I0x1950a86a20f9469cfc6c\n.")
    report = assert_dangerous_and_reached(tmp_path, data, "model.pt", "torch", "os.system('true',)")
    assert report.error is None


TEXT_INTS = [b"010", b"0x1f", b"1_000", b"08", b"0x", b"12\x00zz", b"\x00", b"+1", b" 0", b"-0",
             b"00", b"01", b"1", b"0", b"-1", b"9223372036854775807", b"9223372036854775808",
             b"-9223372036854775809", b"0x1950a86a20f9469cfc6c", b"0777777777777777777777777",
             b"0b101", b"0o17", b"7 ", b"", b"abc", b"0X1F", b"1__0", b"_1"]


@pytest.mark.parametrize("opcode", [b"I", b"L"], ids=["INT", "LONG"])
@pytest.mark.parametrize("literal", TEXT_INTS, ids=repr)
def test_text_int_parsed_as_cpython_parses_it(opcode: bytes, literal: bytes) -> None:
    stream = opcode + literal + b"\n."
    try:
        expected: object = pickle.loads(stream)
    except Exception:
        expected = ValueError
    result = run_pickle(stream)
    got: object = result.root if result.complete else ValueError
    assert (got, type(got)) == (expected, type(expected))


# --------------------------------------------------------------------------- 8. look-alikes


class _ActivationModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.act = torch.nn.functional.relu


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


BENIGN_LOOKALIKES = [
    pytest.param(lambda: _saved({"args": argparse.Namespace(lr=0.1, name="x"),
                                 "ns": types.SimpleNamespace(a=1)}),
                 Status.INCOMPATIBLE, id="namespace-configs"),
    pytest.param(lambda: pickle.dumps({"s": {1, 2}, "d": collections.deque([1, 2], maxlen=5),
                                       "f": frozenset({3})}, protocol=4),
                 Status.INCOMPATIBLE, id="protocol4-set-deque-frozenset"),
    pytest.param(lambda: _saved({"w": torch.arange(4.0), "sd": nn.Linear(2, 2).state_dict()}),
                 Status.COMPATIBLE, id="plain-state-dict"),
    # relu is a plain function torch's allowlist lacks: not-allowlisted (CKA201), not dangerous.
    pytest.param(lambda: _saved(_ActivationModule()), Status.INCOMPATIBLE,
                 id="whole-module-with-function-attribute"),
]


@pytest.mark.parametrize(("make", "status"), BENIGN_LOOKALIKES)
def test_benign_lookalike_is_not_dangerous(
    tmp_path: Path, make: Callable[[], bytes], status: Status
) -> None:
    path, report = audit(tmp_path, make(), "model.pt")
    assert report.status is status, report.findings
    if path.read_bytes().startswith(b"PK"):  # torch's own list of what an allowlist needs
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        assert sorted(report.unsafe_globals) == sorted(unsafe)


def test_stub_resolves_only_harmless_globals() -> None:
    """The recorder is what keeps the loaders above from running anything."""
    stub = recording_pickle_module()
    assert stub.loads(G("copyreg", "_reconstructor") + b".") is copyreg._reconstructor
    for module, name in [("os", "system"), ("logging", "os"), ("builtins", "eval")]:
        assert isinstance(stub.loads(G(module, name) + b"."), Recorder)
