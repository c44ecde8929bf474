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


def payload_calls(
    path: Path, loader: str, stub_factory: Callable[[], types.ModuleType] | None = None
) -> list[str]:
    """What a real loader calls when it loads ``path`` (recorded, never run)."""
    stub = (stub_factory or recording_pickle_module)()
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
    tmp_path: Path,
    data: bytes,
    filename: str,
    loader: str,
    ran: str,
    stub_factory: Callable[[], types.ModuleType] | None = None,
) -> FileReport:
    path, report = audit(tmp_path, data, filename)
    assert report.status is Status.DANGEROUS, report.findings
    calls = payload_calls(path, loader, stub_factory)
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


# =========================================================================== Second round
# The bypasses of the second red-team campaign (closed in 55da442 and cde38f1). The same
# recording loaders; a few more harmless globals are resolved for real where the gadget needs
# the real object (uuid.UUID calls replace(), a torch rebuild function calls setattr).

import enum  # noqa: E402 - this section's own imports
import http  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import uuid  # noqa: E402

# The planted payload is an uncatalogued global (calling it runs a process): a file holding it
# is dangerous only if the planted route itself is seen, not because of a flagged name.
PAYLOAD = partial(G("uuid", "_get_command_stdout"), U("true"))
REACHED = "uuid._get_command_stdout('true'"  # PAYLOAD reached, whatever extra arguments it got
OD = G("collections", "OrderedDict")

_REAL_ROUND2 = {
    ("uuid", "UUID"): uuid.UUID,
    ("builtins", "str"): str,
    ("builtins", "int"): int,
    ("torch", "Tensor"): torch.Tensor,
    ("torch", "float32"): torch.float32,
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): torch._utils._rebuild_meta_tensor_no_storage,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type"): torch._tensor._rebuild_from_type,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
    ("torch.nn.modules.linear", "Identity"): nn.Identity,
}


def _data_pkl_loop(stub: types.ModuleType, path: Path) -> None:
    """A tool that pickle.loads a torch zip's data.pkl until EOF (storages stubbed out)."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("/data.pkl"):
                body = z.read(name)
                f = io.BytesIO(body)
                while f.tell() < len(body):
                    unpickler = stub.Unpickler(f)
                    unpickler.persistent_load = lambda pid: None
                    unpickler.load()


LOADERS["data-pkl-loop"] = lambda path, stub: _data_pkl_loop(stub, path)


def recording_pickle_module2() -> types.ModuleType:
    """The recording stub, with the globals of :data:`_REAL_ROUND2` resolved for real."""
    stub = recording_pickle_module()
    stub.resolved.update(_REAL_ROUND2)
    return stub


def payload_calls2(path: Path, loader: str) -> list[str]:
    return payload_calls(path, loader, recording_pickle_module2)


def assert_dangerous_and_reached2(
    tmp_path: Path, data: bytes, filename: str, loader: str, ran: str = REACHED
) -> FileReport:
    return assert_dangerous_and_reached(
        tmp_path, data, filename, loader, ran, recording_pickle_module2
    )


def _meta_args() -> bytes:
    """The arguments of _rebuild_meta_tensor_no_storage: (float32, (0,), (1,), False)."""
    return b"(" + G("torch", "float32") + b"(K\x00t(K\x01t\x89t"


_HOOK_DICTS = ["_backward_hooks", "_backward_pre_hooks", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs"]
# nn.Identity made by NEWOBJ + BUILD (no __init__): calling it runs its _forward_pre_hooks.
HOOKED_MODULE = (
    G("torch.nn.modules.linear", "Identity") + b")\x81}"
    + U("_forward_pre_hooks") + call(OD) + b"(K\x00" + PAYLOAD + b"us"
    + b"".join(U(k) + b"}s" for k in ("_parameters", "_buffers", "_modules"))
    + U("training") + b"\x88s"
    + b"".join(U(k) + call(OD) + b"s" for k in _HOOK_DICTS)
    + b"b"
)

PLANTED_ROUND2 = [
    # A. methods the name list lacked
    pytest.param(pk(call(OD, namespace(items=PAYLOAD))), id="ordereddict-falls-back-to-items"),
    pytest.param(pk(call(G("uuid", "UUID"), namespace(replace=PAYLOAD))),
                 id="uuid-calls-planted-replace"),
    # B. the attribute name is computed by a call: str('keys') is the str 'keys'
    pytest.param(pk(call(G("builtins", "dict"), call(G("types", "SimpleNamespace")) + b"}"
                         + call(G("builtins", "str"), U("keys")) + PAYLOAD + b"sb")),
                 id="computed-key-str-dict"),
    pytest.param(pk(call(OD, call(G("types", "SimpleNamespace")) + b"}"
                         + call(G("builtins", "str"), U("keys")) + PAYLOAD + b"sb")),
                 id="computed-key-str-ordereddict"),
    # C. other writers of an object's attributes
    pytest.param(pk(call(OD, partial(G("builtins", "int")) + b"(" + G("builtins", "int")
                         + b")N}" + U("keys") + PAYLOAD + b"stb")),
                 id="partial-4tuple-state-dict"),
    pytest.param(pk(call(OD, call(G("torch._tensor", "_rebuild_from_type_v2"),
                                  G("torch._utils", "_rebuild_meta_tensor_no_storage"),
                                  G("torch", "Tensor"), _meta_args(),
                                  b"}" + U("keys") + PAYLOAD + b"s"))),
                 id="rebuild-from-type-v2-state"),
    pytest.param(pk(call(OD, call(G("torch._tensor", "_rebuild_from_type"),
                                  G("torch._utils", "_rebuild_meta_tensor_no_storage"),
                                  G("torch.nn.parameter", "Parameter"), _meta_args(),
                                  b"}" + U("keys") + PAYLOAD + b"s"))),
                 id="rebuild-from-type-v1-dict"),
    pytest.param(pk(call(OD, call(G("torch._utils", "_rebuild_parameter_with_state"),
                                  G("torch._utils", "_rebuild_meta_tensor_no_storage")
                                  + _meta_args() + b"R",
                                  b"\x89", call(OD), b"}" + U("keys") + PAYLOAD + b"s"))),
                 id="rebuild-parameter-with-state"),
    # D. a callable instance (an nn.Module with a forward pre-hook) planted as keys
    pytest.param(pk(call(G("builtins", "dict"), namespace(keys=HOOKED_MODULE))),
                 id="module-instance-planted-as-keys"),
]


def test_round2_payload_is_not_flagged_by_its_name(tmp_path: Path) -> None:
    """Keeps the planted tests honest: only the route makes them dangerous. (If uuid's helper
    is ever catalogued, pick another uncatalogued callable for PAYLOAD.)"""
    _, report = audit(tmp_path, pk(b"}" + U("f") + PAYLOAD + b"s"), "model.pkl")
    assert report.status is Status.INCOMPATIBLE, report.findings


@pytest.mark.parametrize("data", PLANTED_ROUND2)
def test_round2_planted_method_is_dangerous_and_runs(tmp_path: Path, data: bytes) -> None:
    assert_dangerous_and_reached2(tmp_path, data, "model.pkl", "pickle")


def test_round2_rebuild_state_in_torch_zip_reaches_torch_load(tmp_path: Path) -> None:
    """The same gadget as data.pkl of a torch zip: torch.load's own unpickling reaches it."""
    tensor = call(G("torch._tensor", "_rebuild_from_type_v2"),
                  G("torch._utils", "_rebuild_meta_tensor_no_storage"), G("torch", "Tensor"),
                  _meta_args(), b"}" + U("keys") + PAYLOAD + b"s")
    data = torch_zip(pk(b"}" + U("w") + call(OD, tensor) + b"s"))
    assert_dangerous_and_reached2(tmp_path, data, "model.pt", "torch")


# --------------------------------------------------------------------------- E. shape exemptions

SHAPES_ROUND2 = [
    pytest.param(pk(call(G("unittest", "TestProgram"), U("antigravity"))),
                 "unittest.TestProgram('antigravity',)", id="enum-shape-unittest-testprogram"),
    pytest.param(pk(G("unittest", "TestProgram") + b")R(" + U("a") + b"K\x01u"),
                 "unittest.TestProgram()", id="mapping-shape-unittest-testprogram"),
    pytest.param(pk(call(G("_sqlite3", "Connection"), U("/tmp/x.db"))),
                 "_sqlite3.Connection('/tmp/x.db',)", id="enum-shape-sqlite3-connection"),
]


@pytest.mark.parametrize(("data", "ran"), SHAPES_ROUND2)
def test_round2_stdlib_class_in_a_benign_shape_is_dangerous(
    tmp_path: Path, data: bytes, ran: str
) -> None:
    assert_dangerous_and_reached2(tmp_path, data, "model.pkl", "pickle", ran)


class UserColor(enum.Enum):
    RED = 1
    BLUE = 2


class _PrivateColor(enum.Enum):
    GREEN = 1


class UserOrderedDict(collections.OrderedDict):
    pass


ENUM_LOOKALIKES = [
    pytest.param(value, proto, id=f"{label}-protocol{proto}")
    for label, value in [("re.RegexFlag", re.RegexFlag(2)), ("http.HTTPStatus", http.HTTPStatus(200)),
                         ("socket.AddressFamily", socket.AddressFamily(2)),
                         ("user-enum", UserColor.BLUE),
                         ("user-private-enum", _PrivateColor.GREEN),
                         ("user-ordereddict-subclass", UserOrderedDict(a=1, b=[2]))]
    for proto in (2, 4)
]


@pytest.mark.parametrize(("value", "proto"), ENUM_LOOKALIKES)
def test_round2_enum_and_mapping_lookalikes_stay_not_dangerous(
    tmp_path: Path, value: object, proto: int
) -> None:
    data = pickle.dumps(value, protocol=proto)
    assert pickle.loads(data) == value
    _, report = audit(tmp_path, data, "model.pkl")
    assert report.status is Status.INCOMPATIBLE, report.findings


# --------------------------------------------------------------------------- F. stream count

EMPTY_STREAMS = b"N." * 70


def _torch_saved_with_tail(tail: bytes) -> bytes:
    """A real torch.save zip whose data.pkl has ``tail`` appended (still torch-loadable)."""
    saved = zipfile.ZipFile(io.BytesIO(_saved({"w": torch.zeros(2), "epoch": 3})))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        for info in saved.infolist():
            body = saved.read(info)
            out.writestr(info, body + tail if info.filename.endswith("/data.pkl") else body)
    return buffer.getvalue()


def test_round2_payload_after_70_empty_streams(tmp_path: Path) -> None:
    data = BENIGN + EMPTY_STREAMS + HOSTILE
    assert_dangerous_and_reached2(tmp_path, data, "model.pkl", "pickle-loop", RAN)


def test_round2_payload_after_70_empty_streams_in_torch_data_pkl(tmp_path: Path) -> None:
    data = _torch_saved_with_tail(EMPTY_STREAMS + HOSTILE)
    report = assert_dangerous_and_reached2(tmp_path, data, "model.pt", "data-pkl-loop", RAN)
    assert report.weights_only_compatible  # torch reads the first pickle only (checked in audit)


@pytest.mark.parametrize("count", [10_001, 30_000])
@pytest.mark.parametrize("where", ["plain", "torch-data-pkl"])
def test_round2_payload_past_the_stream_cap(tmp_path: Path, count: int, where: str) -> None:
    tail = b"N." * count + HOSTILE
    data = BENIGN + tail if where == "plain" else _torch_saved_with_tail(tail)
    report = ckptaudit.audit_bytes(data, name="model.pt")
    assert report.status in (Status.ERROR, Status.DANGEROUS), report.findings
    assert report.status is not Status.COMPATIBLE
    assert not report.weights_only_compatible  # a limit finding: never called compatible
    assert any(f.rule == "CKA402" for f in report.findings), report.findings
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    loader = "pickle-loop" if where == "plain" else "data-pkl-loop"
    assert any(RAN in c for c in payload_calls2(path, loader))


# --------------------------------------------------------------------------- G. first opcode

_SYSTEM_BODY = G("os", "system") + U("true") + b"\x85R."
FIRST_OPCODE = {
    "float": b"F0\n0" + _SYSTEM_BODY,
    "newtrue": b"\x880" + _SYSTEM_BODY,
    "frame": b"\x95" + struct.pack("<Q", len(_SYSTEM_BODY)) + _SYSTEM_BODY,
}


@pytest.mark.parametrize("zip_tail", [False, True], ids=["alone", "benign-torch-zip-appended"])
@pytest.mark.parametrize("first", list(FIRST_OPCODE))
def test_round2_pickle_starting_with_a_rare_opcode(
    tmp_path: Path, first: str, zip_tail: bool
) -> None:
    data = FIRST_OPCODE[first] + (_saved({"w": torch.zeros(2)}) if zip_tail else b"")
    report = assert_dangerous_and_reached2(tmp_path, data, "model.pt", "torch", RAN)
    assert report.format == "pickle"
    assert any(RAN in c for c in payload_calls2(tmp_path / "model.pt", "pickle"))


# --------------------------------------------------------------------------- H. C-string arguments

TEXT_PAYLOAD = b"cos\nsystem\n(S'true'\ntR."
NUL_ARGUMENTS = [
    pytest.param(b"F1.5\x00junk\n0" + TEXT_PAYLOAD, id="float-nul-junk"),
    pytest.param(b"Np1\x00junk\n0" + TEXT_PAYLOAD, id="put-nul-junk"),
    pytest.param(b"Np1\n0g1\x00junk\n0" + TEXT_PAYLOAD, id="get-nul-junk"),
]


@pytest.mark.parametrize("data", NUL_ARGUMENTS)
def test_round2_text_argument_ending_at_nul(tmp_path: Path, data: bytes) -> None:
    assert_dangerous_and_reached2(tmp_path, data, "model.pkl", "pickle", RAN)


FLOAT_LITERALS = [b"1.5", b"1.5\x00junk", b"inf", b"-Infinity", b"nan", b"1e308", b"1e309",
                  b"1e-400", b" 1.0", b"1.0 ", b"1_0.5", b"0x1p3", b".5", b"5.", b"1e", b"+.5e-3",
                  b"-nan", b"INF", b"infinit", b"", b"1.5\x00", b"\x001.5", b"0", b"-0.0"]


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (a, type(a)) == (b, type(b)) and (not isinstance(a, float) or
                                              math.copysign(1, a) == math.copysign(1, b))


def _cpython_and_ours(stream: bytes) -> tuple[object, object]:
    try:
        expected: object = pickle.loads(stream)
    except Exception:
        expected = ValueError
    result = run_pickle(stream)
    return expected, (result.root if result.complete else ValueError)


@pytest.mark.parametrize("literal", FLOAT_LITERALS, ids=repr)
def test_round2_text_float_parsed_as_cpython_parses_it(literal: bytes) -> None:
    expected, got = _cpython_and_ours(b"F" + literal + b"\n.")
    assert _same_value(got, expected), (got, expected)


MEMO_LITERALS = [b"1\x00junk", b" 1", b"+1", b"1_0", b"-1", b"1 ", b"01", b"1\x00", b"0x1"]


@pytest.mark.parametrize("literal", MEMO_LITERALS, ids=repr)
@pytest.mark.parametrize("opcode", ["PUT", "GET", "both"])
def test_round2_text_memo_index_parsed_as_cpython_parses_it(literal: bytes, opcode: str) -> None:
    put = literal if opcode in ("PUT", "both") else b"1"
    get = literal if opcode in ("GET", "both") else b"1"
    expected, got = _cpython_and_ours(b"K\x07p" + put + b"\n0g" + get + b"\n.")
    assert (got, type(got)) == (expected, type(expected))


# --------------------------------------------------------------------------- I. PAX headers


def _pax_digits_tar(n: int) -> bytes:
    """A tar whose first header is an n-byte PAX record of digits (CVE-2024-6232's quadratic
    regex in CPython < 3.11.10), then a legacy-tar member."""
    header = bytearray(512)
    header[0:14] = b"././@PaxHeader"
    header[100:108], header[108:116], header[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    header[124:136], header[136:148] = b"%011o\0" % n, b"00000000000\0"
    header[148:156], header[156:157] = b" " * 8, b"x"
    header[257:263], header[263:265] = b"ustar\0", b"00"
    header[148:156] = b"%06o\0 " % sum(header)
    body = b"1" * n + b"\0" * (-n % 512)
    return bytes(header) + body + tar_of([("sys_info", SYSINFO_PKL)])


def test_round2_huge_pax_record_is_a_limit_error() -> None:
    # torch.load is not asked: CPython 3.11.7's tarfile spends ~11 s on this header.
    report = ckptaudit.audit_bytes(_pax_digits_tar(80_000), name="model.tar")
    assert report.status is Status.ERROR, report.findings
    assert any(f.rule == "CKA402" for f in report.findings), report.findings
    assert not report.weights_only_compatible


def test_round2_legit_pax_header_is_still_a_torch_tar(tmp_path: Path) -> None:
    members = [("données-é.txt", b"x"), ("sys_info", pickle.dumps({"protocol_version": 1001}, 2)),
               ("pickle", pickle.dumps({"a": 1}, 2)),
               ("storages", pickle.dumps(0, 2) + pickle.dumps([], 2)),
               ("tensors", pickle.dumps(0, 2))]
    data = tar_of(members, fmt=tarfile.PAX_FORMAT)
    assert data[156:157] == b"x"  # the first header is a PAX record
    _, report = audit(tmp_path, data, "model.tar")
    assert report.format == "torch-tar"
    assert report.status is Status.INCOMPATIBLE, report.findings
    hostile = tar_of([*members[:2], ("pickle", HOSTILE), *members[3:]], fmt=tarfile.PAX_FORMAT)
    assert_dangerous_and_reached2(tmp_path, hostile, "evil.tar", "torch", RAN)


# =========================================================================== Third round
# The bypasses of the third red-team campaign (closed in a62056d): NEWOBJ that runs code of the
# file's choosing (a class built from the file's namespace, a weakref callback), destructors
# that call a planted close(), and a tensor rebuild that installs backward hooks. The same
# recording loaders and the round-two PAYLOAD (an uncatalogued runner); the classes these
# gadgets need are resolved for real, by name, when the loader asks for them.

import importlib.util  # noqa: E402 - this section's own imports
import re as _re  # noqa: E402

_REAL_ROUND3 = [
    ("builtins", "object"),
    ("numbers", "ABCMeta"),
    ("typing", "_ProtocolMeta"),
    ("_py_abc", "ABCMeta"),
    ("torch.nn.parameter", "_ParameterMeta"),
    ("weakref", "ref"),
    ("_weakref", "ref"),
    ("wave", "Wave_read"),
    ("_pyio", "BytesIO"),
    ("sunau", "Au_write"),
    ("aifc", "Aifc_write"),
    ("torch", "FloatStorage"),
    ("torch._utils", "_rebuild_tensor_v2"),
]


def recording_pickle_module3() -> types.ModuleType:
    """The recording stub, with the classes of :data:`_REAL_ROUND3` real (when they exist)."""
    stub = recording_pickle_module2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aifc and sunau warn on import (removed in 3.13)
        for module, name in _REAL_ROUND3:
            if importlib.util.find_spec(module) is not None:
                stub.resolved[(module, name)] = getattr(importlib.import_module(module), name)
    return stub


def payload_calls3(path: Path, loader: str) -> list[str]:
    return payload_calls(path, loader, recording_pickle_module3)


def assert_dangerous_and_reached3(
    tmp_path: Path, data: bytes, filename: str = "model.pkl", loader: str = "pickle"
) -> FileReport:
    return assert_dangerous_and_reached(
        tmp_path, data, filename, loader, REACHED, recording_pickle_module3
    )


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _class_of(meta: tuple[str, str], **namespace: bytes) -> bytes:
    """NEWOBJ meta('X', (object,), namespace): a class whose methods the file wrote."""
    ns = b"}(" + b"".join(U(k) + v for k, v in namespace.items()) + b"u"
    return G(*meta) + _tuple(U("X"), _tuple(G("builtins", "object")), ns) + b"\x81"


def _needs(module: str) -> list[pytest.MarkDecorator]:
    return [] if importlib.util.find_spec(module) else [pytest.mark.skip(f"no {module}")]


_METACLASSES = [("numbers", "ABCMeta"), ("typing", "_ProtocolMeta"), ("_py_abc", "ABCMeta"),
                ("torch.nn.parameter", "_ParameterMeta")]

NEWOBJ_ROUND3 = [
    # A. NEWOBJ of a metaclass alias: the instance's death (POP) runs the planted __del__ ...
    *[pytest.param(pk(_class_of(meta, __del__=PAYLOAD) + b")\x81" + b"0}"),
                   id=f"newobj-metaclass-{'.'.join(meta)}-del") for meta in _METACLASSES],
    # ... and BUILD on an instance runs the planted __setstate__ (a class attribute, not state).
    pytest.param(pk(_class_of(("numbers", "ABCMeta"), __setstate__=PAYLOAD) + b")\x81"
                    + U("x") + b"b0}"), id="newobj-metaclass-numbers.ABCMeta-setstate"),
    # B. NEWOBJ weakref.ref(set(), callback): the set dies with the argument tuple -> callback.
    pytest.param(pk(G("weakref", "ref") + _tuple(call(G("builtins", "set")), PAYLOAD)
                    + b"\x810}"), id="newobj-weakref-ref-callback"),
    pytest.param(pk(b"}(" + U("w") + G("_weakref", "ref")
                    + _tuple(call(G("builtins", "set")), PAYLOAD) + b"\x81u"),
                 id="newobj-_weakref-ref-callback-kept"),
]

# C. NEWOBJ (no __init__) + BUILD {'close': payload} + POP: the class's __del__ calls self.close().
DEL_CLOSE_ROUND3 = [
    pytest.param(module, cls, extra, id=f"del-calls-close-{module}.{cls}", marks=_needs(module))
    for module, cls, extra in [
        ("wave", "Wave_read", b""),
        ("_pyio", "BytesIO", b""),
        ("sunau", "Au_write", U("_file") + b"K\x01"),  # __del__ closes only an open _file
        ("aifc", "Aifc_write", U("_file") + b"K\x01"),
    ]
]


@pytest.mark.parametrize("data", NEWOBJ_ROUND3)
def test_round3_newobj_runs_the_files_code(tmp_path: Path, data: bytes) -> None:
    assert_dangerous_and_reached3(tmp_path, data)


@pytest.mark.parametrize(("module", "cls", "extra"), DEL_CLOSE_ROUND3)
def test_round3_destructor_calls_planted_close(
    tmp_path: Path, module: str, cls: str, extra: bytes
) -> None:
    state = b"}(" + U("close") + PAYLOAD + extra + b"u"
    assert_dangerous_and_reached3(tmp_path, pk(G(module, cls) + b")\x81" + state + b"b0}"))


# --------------------------------------------------------------------------- D. tensor hooks


def _hook(module: nn.Module, args: object, output: object) -> None:
    """A plain module-level forward hook: pickled by reference, as torch.save does."""


def _with_backward_hooks(saved: bytes) -> bytes:
    """torch.save({'w': ...}) with requires_grad set and OrderedDict({0: PAYLOAD}) as the
    backward_hooks of its _rebuild_tensor_v2 (torch.save always writes an empty one)."""
    src = zipfile.ZipFile(io.BytesIO(saved))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("/data.pkl"):
                body, n = _re.subn(rb"\x89(ccollections\nOrderedDict\nq.\)Rq.)",
                                   lambda m: b"\x88" + m.group(1) + b"(K\x00" + PAYLOAD + b"u",
                                   body, flags=_re.S)
                assert n == 1, body
            out.writestr(info, body)
    return buffer.getvalue()


def test_round3_tensor_backward_hooks_run_at_backward(tmp_path: Path) -> None:
    """Nothing runs at load; the hook runs when the victim calls .backward()."""
    data = _with_backward_hooks(_saved({"w": torch.ones(4)}))
    path, report = audit(tmp_path, data, "model.pt")
    assert report.status is Status.DANGEROUS, report.findings
    stub = recording_pickle_module3()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.load(str(path), weights_only=False, pickle_module=stub)
        assert stub.log == []  # deferred: nothing at load
        assert loaded["w"].requires_grad and loaded["w"]._backward_hooks
        with contextlib.suppress(Exception):  # the recorder returns 0, not a gradient
            (loaded["w"] * 2).sum().backward()
    assert any(REACHED in c for c in stub.log), stub.log


def test_round3_saved_tensors_parameters_and_state_stay_compatible(tmp_path: Path) -> None:
    """torch.save writes empty backward_hooks, even for a tensor that has a hook."""
    hooked = torch.ones(3, requires_grad=True)
    hooked.register_hook(lambda grad: grad)
    obj = {"t": torch.arange(4.0), "p": nn.Parameter(torch.ones(2)),
           "frozen": nn.Parameter(torch.ones(2), requires_grad=False),
           "linear": nn.Linear(3, 2).state_dict(), "hooked": hooked}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that it drops the hook
        data = _saved(obj)
    _, report = audit(tmp_path, data, "model.pt")
    assert report.status is Status.COMPATIBLE, report.findings


def test_round3_whole_module_with_forward_hook_is_not_dangerous(tmp_path: Path) -> None:
    """A module saved whole keeps its forward hooks (a module-level function, by reference).

    Out of scope: ckptaudit does not flag module hook dicts as deferred calls (a hooked module
    saved whole is ordinary); only what runs at load, and tensor backward_hooks, which
    torch.save never writes, are judged.
    """
    module = nn.Linear(2, 2)
    module.register_forward_hook(_hook)
    data = _saved(module)
    assert b"_hook" in data
    _, report = audit(tmp_path, data, "model.pt")
    assert report.status is Status.INCOMPATIBLE, report.findings


# =========================================================================== Fourth round
# The container differentials of the fourth red-team campaign (closed in fc9d47c): a STOP
# inside a FRAME (CPython reads a frame whole, so the next pickle starts after the frame, not
# after STOP), central-directory records beyond the end record's count (Python's zipfile
# reads them, miniz does not), miniz's refusals (torch fails, so a file is never compatible),
# the end record's reach, the stored-size check that reads the time field too, and duplicate
# byteorder records. Payloads are reached with the first round's recording stub.


def _torch_bytesio(path: Path, stub: types.ModuleType) -> None:
    """torch.load of an in-memory copy: BytesIO has no peek(), so frames are read whole."""
    torch.load(io.BytesIO(path.read_bytes()), weights_only=False, pickle_module=stub)


LOADERS["torch-bytesio"] = _torch_bytesio


def _frame(body: bytes, size: int) -> bytes:
    """A protocol-4 FRAME of ``size`` bytes: ``body`` then NULs that nothing reads."""
    return b"\x80\x04\x95" + struct.pack("<Q", size) + body.ljust(size, b"\x00")


# --------------------------------------------------------------------------- A. frame tails

# 9000 bytes is over CPython's 8 KiB prefetch, so even a peeking file reads the frame whole.
FRAME_TAILS = [
    # sys_info {} then STOP; the frame's tail 'N.N.' is what a reader resuming after STOP sees
    # (object None, storage keys None), and the real object pickle follows the frame.
    pytest.param(MAGIC_PKL + PROTO_PKL + _frame(b"}.N.N.", 9000) + HOSTILE + KEYS_PKL,
                 ["torch", "torch-fileobj", "torch-bytesio"], id="legacy-sysinfo-frame-tail-9000"),
    # A 64-byte frame: a path is peeked (resumes after STOP), BytesIO resumes after the frame.
    pytest.param(MAGIC_PKL + PROTO_PKL + _frame(b"}.N.].", 64) + HOSTILE + KEYS_PKL,
                 ["torch-bytesio"], id="legacy-sysinfo-frame-tail-64"),
    # The object pickle framed, so the storage-keys pickle torch really reads follows the frame.
    pytest.param(MAGIC_PKL + PROTO_PKL + SYSINFO_PKL + _frame(BENIGN[2:] + b"N.", 9000)
                 + HOSTILE[:-1] + b"0].", ["torch", "torch-bytesio"],
                 id="legacy-object-frame-tail-9000"),
]


@pytest.mark.parametrize(("data", "loaders"), FRAME_TAILS)
def test_round4_legacy_stop_inside_frame(tmp_path: Path, data: bytes, loaders: list[str]) -> None:
    path, report = audit(tmp_path, data, "model.pt")
    assert report.status is Status.DANGEROUS, report.findings
    for loader in loaders:
        assert any(RAN in c for c in payload_calls(path, loader)), loader


@pytest.mark.parametrize("size", [9000, 64])
def test_round4_plain_pickle_stop_inside_frame(tmp_path: Path, size: int) -> None:
    """A pickle.load loop over BytesIO goes on after the frame; 0xff after STOP is never read."""
    data = _frame(b"}.\xff", size) + HOSTILE
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle-loop", RAN)


# --------------------------------------------------------------------------- B. raw zips


def _member(name: str, data: bytes, **fields: int) -> dict[str, object]:
    """A stored member; ``fields`` override method, time, csize, size or payload bytes."""
    return {"name": name, "data": data, **fields}


def _raw_zip(members: list[dict[str, object]], *, on_disk: int | None = None,
             zip64: dict[str, int] | None = None, junk: bytes = b"") -> bytes:
    """A zip whose every field is chosen: central sizes/method/time per member, the end
    record's entries-on-this-disk, and an optional zip64 record + locator."""
    out, central = bytearray(), bytearray()
    for m in members:
        name, data = str(m["name"]).encode(), bytes(m["data"])  # type: ignore[arg-type]
        payload = bytes(m.get("payload", data))  # type: ignore[arg-type]
        method, time = int(m.get("method", 0)), int(m.get("time", 0))  # type: ignore[arg-type]
        csize = int(m.get("csize", len(payload)))  # type: ignore[arg-type]
        usize = int(m.get("size", len(data)))  # type: ignore[arg-type]
        crc, offset = zlib.crc32(data), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, time, 0, crc, csize,
                           usize, len(name), 0) + name + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, time, 0,
                               crc, csize, usize, len(name), 0, 0, 0, 0, 0, offset) + name
    n, cd_at = len(members), len(out)
    out += central
    if zip64 is not None:
        z = {"size_rec": 44, "this_disk": 0, "cd_disk": 0, "on_disk": n, "disks": 1} | zip64
        record_at = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, z["size_rec"], 45, 45, z["this_disk"],
                           z["cd_disk"], z["on_disk"], n, len(central), cd_at)
        out += struct.pack("<IIQI", 0x07064B50, 0, record_at, z["disks"])
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n if on_disk is None else on_disk, n,
                       len(central), cd_at, 0)
    return bytes(out + junk)


def _tz(data_pkl: bytes = BENIGN, *extra: dict[str, object], **fields: int) -> list:
    return [_member("archive/data.pkl", data_pkl, **fields), *extra,
            _member("archive/version", b"3\n")]


def test_round4_central_record_beyond_the_count(tmp_path: Path) -> None:
    """The end record counts 2 records; a third, hostile archive/data.pkl sits within the
    directory's size. miniz (torch) reads two, Python's zipfile all three (the last wins)."""
    data = bytearray(_raw_zip([_member("archive/data.pkl", HOSTILE), *_tz()]))
    end = data.rindex(b"PK\x05\x06")
    cd_size, cd_at = struct.unpack_from("<II", data, end + 12)
    first = 46 + len("archive/data.pkl")
    data[cd_at : cd_at + cd_size] = data[cd_at + first : cd_at + cd_size] + data[cd_at : cd_at + first]
    struct.pack_into("<HH", data, end + 8, 2, 2)
    path, report = audit(tmp_path, bytes(data), "model.pt")
    assert report.weights_only_compatible is True  # torch loads the benign pickle (and audit
    assert report.status is Status.DANGEROUS, report.findings  # checked it against torch)
    assert any(f.rule == "CKA105" for f in report.findings), report.findings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate name
        assert zipfile.ZipFile(path).read("archive/data.pkl") == HOSTILE
    assert any(RAN in c for c in payload_calls(path, "zip-walk"))
    assert not any(RAN in c for c in payload_calls(path, "torch"))


# --------------------------------------------------------------------------- C. miniz refusals

MINIZ_REFUSALS = [
    pytest.param(_raw_zip(_tz(), on_disk=3), id="end-record-entries-on-disk-differ"),
    pytest.param(_raw_zip(_tz(), zip64={"disks": 2}), id="zip64-locator-two-disks"),
    pytest.param(_raw_zip(_tz(), zip64={"size_rec": 0}), id="zip64-record-too-short"),
    pytest.param(_raw_zip(_tz(), zip64={"this_disk": 3, "cd_disk": 3}), id="zip64-this-disk-3"),
    pytest.param(_raw_zip(_tz(), zip64={"on_disk": 5}), id="zip64-entries-on-disk-differ"),
    pytest.param(_raw_zip(_tz(BENIGN, _member("archive/extra", b"hello", method=8,
                                               payload=b"", csize=0))),
                 id="deflated-member-csize-0-size-5"),
    pytest.param(_raw_zip(_tz(), junk=b"J" * 5000), id="junk-5000-after-end-record"),
]


def test_round4_zip64_control_loads(tmp_path: Path) -> None:
    """Keeps the refusals honest: the consistent zip64 layout loads and is compatible."""
    _, report = audit(tmp_path, _raw_zip(_tz(), zip64={}), "model.pt")
    assert report.status is Status.COMPATIBLE, report.findings


@pytest.mark.parametrize("data", MINIZ_REFUSALS)
def test_round4_miniz_refusal_is_not_compatible(tmp_path: Path, data: bytes) -> None:
    path, report = audit(tmp_path, data, "model.pt")  # weights_only_compatible == torch's
    assert not torch_weights_only_loads(path)
    assert report.status is not Status.COMPATIBLE, report.findings


# --------------------------------------------------------------------------- D. end record reach


@functools.cache
def _saved_small_and_large() -> dict[str, bytes]:
    return {"dict": _saved({"a": 1, "w": torch.ones(3)}),
            "tensor-1mb": _saved({"w": torch.ones(256 * 1024)})}


@pytest.mark.parametrize("n", [4074, 4075, 8200, 65514, 70000])
@pytest.mark.parametrize("kind", ["dict", "tensor-1mb"])
def test_round4_end_record_reach_after_junk(tmp_path: Path, kind: str, n: int) -> None:
    """Junk after the end record: miniz searches back in 4 KiB steps with a signed offset,
    so whether torch finds it depends on the file's size; ckptaudit's verdict follows."""
    path, report = audit(tmp_path, _saved_small_and_large()[kind] + b"J" * n, "model.pt")
    assert report.weights_only_compatible is torch_weights_only_loads(path)  # live, as in audit
    if not report.weights_only_compatible:
        assert report.status is not Status.COMPATIBLE, report.findings


# --------------------------------------------------------------------------- E. stored sizes

def _extra_stored_mismatch(time: int) -> bytes:
    return _raw_zip(_tz(BENIGN, _member("archive/extra", b"hellohello", csize=4, time=time)))


def _data_pkl_stored_mismatch(time: int) -> bytes:
    return _raw_zip(_tz(BENIGN + b"\x00" * 8, size=len(BENIGN), time=time))


@pytest.mark.parametrize("time", [1, 0], ids=["time-1", "time-0"])
@pytest.mark.parametrize("build", [_extra_stored_mismatch, _data_pkl_stored_mismatch],
                         ids=["extra", "data-pkl"])
def test_round4_stored_size_mismatch_read_with_the_time_field(
    tmp_path: Path, build: Callable[[int], bytes], time: int
) -> None:
    """miniz tests the method and DOS time as one 32-bit value: with a nonzero time a stored
    member's compressed size may differ from its size (torch loads: no false error), with a
    zero time it may not (torch fails: never compatible)."""
    path, report = audit(tmp_path, build(time), "model.pt")  # weights_only_compatible == torch's
    assert torch_weights_only_loads(path) is bool(time)
    assert (report.status is Status.COMPATIBLE) is bool(time), report.findings


# --------------------------------------------------------------------------- F. byteorder twice


@pytest.mark.parametrize("order", [("little", "middle"), ("middle", "little")],
                         ids=["little-then-middle", "middle-then-little"])
def test_round4_duplicate_byteorder_records(tmp_path: Path, order: tuple[str, str]) -> None:
    extra = [_member("archive/byteorder", o.encode()) for o in order]
    path, report = audit(tmp_path, _raw_zip(_tz(BENIGN, *extra)), "model.pt")
    loads = torch_weights_only_loads(path)
    assert report.weights_only_compatible is loads
    assert (report.status is Status.COMPATIBLE) is loads, report.findings


# --------------------------------------------------------------------------- fifth round
# A differential fuzz (70,300 generated pickles, CPython's calls recorded against
# ckptaudit's verdicts) found two root causes; these are their minimal forms.

KEYS_OF_A_GLOBAL = [
    pytest.param(b"cbuiltins\ndict\ncpkg\nCls\n\x85R.", id="dict-of-a-global"),
    pytest.param(b"ccollections\nOrderedDict\ncpkg.sub\nhelper\n\x85R.", id="ordereddict-of-a-global"),
    pytest.param(b"(cbuiltins\ndict\ncuuid\n_get_command_stdout\no.", id="dict-of-a-global-by-obj"),
    pytest.param(
        b"ccollections\ndefaultdict\ncmymod\nModel\ncmymod\nrun\n\x86R.",
        id="defaultdict-of-a-global",
    ),
]


@pytest.mark.parametrize("data", KEYS_OF_A_GLOBAL)
def test_round5_constructor_reading_keys_of_a_global_is_dangerous(data: bytes) -> None:
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS, report.findings
    # CPython really asks the global for keys(): a recording stand-in sees the call.
    called: list[str] = []

    class Stand:
        @staticmethod
        def keys() -> list[str]:
            called.append("keys")
            return []

    class Loader(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) == ("builtins", "dict"):
                return dict
            if module == "collections":
                return getattr(collections, name)
            return Stand

    with contextlib.suppress(Exception):
        Loader(io.BytesIO(data)).load()
    assert called == ["keys"]


def test_round5_side_effect_library_classes_get_no_enum_exemption() -> None:
    """torch.distributed.FileStore(path) creates the file it names: never an Enum lookup."""
    data = b"ctorch.distributed\nFileStore\nX\x04\x00\x00\x00/tmp\x85R."
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS, report.findings


def test_round5_user_enum_lookup_stays_not_dangerous() -> None:
    """The trade-off kept: a CamelCase class of the user's code called with one literal is
    an Enum lookup (checkpoints are full of them), so it is only not allowlisted."""
    report = ckptaudit.audit_bytes(b"cmymod\nStage\nK\x02\x85R.")
    assert report.status is Status.INCOMPATIBLE, report.findings
