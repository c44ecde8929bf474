"""Self-checks for ``tests/hostile_cases.py`` that need no ``ckptaudit``.

Nothing here unpickles anything: pickle streams are only *disassembled* with
:func:`pickletools.dis`, archives are only parsed for their headers, and the
import canary runs in a fresh interpreter with every unpickling entry point
booby-trapped.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

# Snapshot taken before the catalogue is imported (pytest's own imports included).
_PRELOADED: frozenset[str] = frozenset(sys.modules)

import hostile_cases as hc  # noqa: E402
from support.containers import SEVEN_Z_SIGNATURE, seven_z_number  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parents[1]
SLUG = re.compile(r"^[a-z0-9_]+$")
REFERENCE = re.compile(
    r"CVE-\d{4}-\d+|GHSA-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}|technique:|PR #\d+|issue #\d+"
    r"|arXiv|nullifAI|Malicious\d+|tests/data"
)
ALL_RECORDS = [*hc.CASES, *hc.BENIGN_LOOKALIKES, *hc.AMBIGUOUS]


def _dis_ok(stream: bytes) -> bool:
    try:
        pickletools.dis(stream, out=io.StringIO())
    except Exception:
        return False
    return True


def _ids(records: list) -> list[str]:
    return [r.name for r in records]


# --- catalogue shape -------------------------------------------------------


def test_catalogue_is_not_trivially_small() -> None:
    assert len(hc.CASES) >= 60
    assert len(hc.BENIGN_LOOKALIKES) >= 12
    assert hc.AMBIGUOUS


def test_names_are_unique_slugs() -> None:
    names = hc.all_names()
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert all(SLUG.match(n) for n in names), [n for n in names if not SLUG.match(n)]


@pytest.mark.parametrize("case", hc.CASES, ids=_ids(hc.CASES))
def test_hostile_case_fields(case: hc.HostileCase) -> None:
    assert case.expect in {"dangerous", "error"}
    assert case.description.strip()
    assert case.reference.strip(), "every case must cite an advisory or a technique"
    assert case.filename and "/" not in case.filename
    assert case.data
    if case.expect == "error":
        assert case.dangerous_global is None
    if case.dangerous_global is not None:
        module, _, name = case.dangerous_global.rpartition(".")
        assert module and name


@pytest.mark.parametrize("case", hc.CASES, ids=_ids(hc.CASES))
def test_hostile_reference_names_an_advisory_or_technique(case: hc.HostileCase) -> None:
    ref = case.reference
    assert REFERENCE.search(ref), ref


def test_dangerous_cases_dominate() -> None:
    assert sum(c.expect == "dangerous" for c in hc.CASES) > 0.9 * len(hc.CASES)


def test_filename_and_data_pairs_unique() -> None:
    pairs = [(c.filename, c.data) for c in hc.CASES]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("case", hc.BENIGN_LOOKALIKES, ids=_ids(hc.BENIGN_LOOKALIKES))
def test_benign_never_dangerous(case: hc.BenignCase) -> None:
    assert case.expect in {"compatible", "incompatible"}
    assert case.description.strip() and case.reference.strip()
    assert case.streams


@pytest.mark.parametrize("case", hc.AMBIGUOUS, ids=_ids(hc.AMBIGUOUS))
def test_ambiguous_cases_explain_themselves(case: hc.AmbiguousCase) -> None:
    assert case.recommended in {"dangerous", "incompatible", "compatible"}
    assert len(case.reasoning) > 80


# --- embedded pickle streams ----------------------------------------------


@pytest.mark.parametrize("case", hc.CASES, ids=_ids(hc.CASES))
def test_hostile_streams_embedded_and_well_formed(case: hc.HostileCase) -> None:
    assert case.streams or case.broken_streams
    for stream in case.streams:
        assert stream in case.data, "stream must be stored verbatim (uncompressed)"
        assert _dis_ok(stream), "declared well-formed but pickletools.dis rejects it"
    for stream in case.broken_streams:
        assert stream in case.data
        assert not _dis_ok(stream), "declared broken but pickletools.dis accepts it"


@pytest.mark.parametrize(
    "case", [*hc.BENIGN_LOOKALIKES, *hc.AMBIGUOUS], ids=_ids([*hc.BENIGN_LOOKALIKES, *hc.AMBIGUOUS])
)
def test_benign_streams_well_formed(case: hc.BenignCase | hc.AmbiguousCase) -> None:
    for stream in case.streams:
        assert stream in case.data
        assert _dis_ok(stream)


@pytest.mark.parametrize(
    "case",
    [c for c in hc.CASES if c.dangerous_global],
    ids=_ids([c for c in hc.CASES if c.dangerous_global]),
)
def test_dangerous_global_leaf_is_visible_in_a_stream(case: hc.HostileCase) -> None:
    assert case.dangerous_global is not None
    leaf = case.dangerous_global.rsplit(".", 1)[-1].encode()
    blob = b"".join(case.streams + case.broken_streams)
    assert leaf in blob


def test_raw_pickle_cases_are_the_stream_itself() -> None:
    for case in hc.CASES:
        if case.container in {"pickle", "raw"}:
            assert (
                case.data in case.streams
                or case.data in case.broken_streams
                or len(case.streams) > 1
            ), case.name


def test_nullifai_payload_precedes_corruption() -> None:
    broken = hc.broken_after_payload(2)
    ops = []
    with pytest.raises(Exception):  # noqa: B017 - genops must fail on the tail
        for opcode, _arg, _pos in pickletools.genops(broken):
            ops.append(opcode.name)
    assert "REDUCE" in ops and "STOP" not in ops


# --- containers -------------------------------------------------------------


def _central_directory_names(data: bytes) -> list[str]:
    """Names from the central directory, parsed by hand (no zipfile)."""
    eocd = data.rindex(b"PK\x05\x06")
    _sig, _d, _cd, _n, total, size, offset, _clen = struct.unpack_from("<IHHHHIIH", data, eocd)
    names, pos = [], offset
    for _ in range(total):
        fields = struct.unpack_from("<IHHHHHHIIIHHHHHII", data, pos)
        assert fields[0] == 0x02014B50
        nlen, xlen, clen = fields[10], fields[11], fields[12]
        names.append(data[pos + 46 : pos + 46 + nlen].decode("utf-8"))
        pos += 46 + nlen + xlen + clen
    assert pos == offset + size
    return names


@pytest.mark.parametrize(
    "case",
    [c for c in hc.CASES if c.container in {"torch-zip", "torchscript-zip", "polyglot"}],
    ids=_ids([c for c in hc.CASES if c.container in {"torch-zip", "torchscript-zip", "polyglot"}]),
)
def test_zip_cases_have_a_data_pkl_record(case: hc.HostileCase) -> None:
    names = _central_directory_names(case.data)
    assert any(n.endswith("/data.pkl") for n in names), names


def test_torchscript_case_has_constants_pkl() -> None:
    case = next(c for c in hc.CASES if c.container == "torchscript-zip")
    assert "archive/constants.pkl" in _central_directory_names(case.data)


def test_benign_torch_zip_layout() -> None:
    case = next(c for c in hc.BENIGN_LOOKALIKES if c.name == "benign_torch_zip_state_dict")
    names = _central_directory_names(case.data)
    assert names[0] == "archive/data.pkl"
    assert {
        "archive/version",
        "archive/byteorder",
        "archive/.data/serialization_id",
        "archive/data/0",
    } <= set(names)


@pytest.mark.parametrize(
    "case",
    [c for c in hc.CASES if c.container == "legacy"],
    ids=_ids([c for c in hc.CASES if c.container == "legacy"]),
)
def test_legacy_cases_follow_the_five_pickle_layout(case: hc.HostileCase) -> None:
    data = io.BytesIO(case.data)
    count = 0
    for _ in range(5):
        for opcode, _arg, _pos in pickletools.genops(data):
            if opcode.name == "STOP":
                break
        count += 1
    assert count == 5
    numel = struct.unpack("<q", data.read(8))[0]
    assert len(data.read()) == numel * 4


def test_legacy_header_pickles_are_protocol_2() -> None:
    case = next(c for c in hc.BENIGN_LOOKALIKES if c.name == "benign_legacy_state_dict")
    assert case.data.startswith(b"\x80\x02\x8a\x0a")  # PROTO 2, LONG1 of 10 bytes (magic)


@pytest.mark.parametrize(
    "case",
    [c for c in hc.CASES if c.container == "7z"],
    ids=_ids([c for c in hc.CASES if c.container == "7z"]),
)
def test_7z_headers_and_crcs(case: hc.HostileCase) -> None:
    data = case.data
    assert data[:6] == SEVEN_Z_SIGNATURE
    (start_crc,) = struct.unpack_from("<I", data, 8)
    assert zlib.crc32(data[12:32]) == start_crc
    next_off, next_size, next_crc = struct.unpack_from("<QQI", data, 12)
    header = data[32 + next_off : 32 + next_off + next_size]
    assert len(header) == next_size and zlib.crc32(header) == next_crc
    assert header[:2] == b"\x01\x04"
    packed = data[32 : 32 + next_off]
    assert packed in (case.streams + case.broken_streams)


def test_7z_number_encoding() -> None:
    assert seven_z_number(0x7F) == b"\x7f"
    assert seven_z_number(0x80) == b"\x80\x80"
    assert seven_z_number(0x3FFF) == b"\xbf\xff"
    assert seven_z_number(0x4000) == b"\xc0\x00\x40"


# --- safety canary ----------------------------------------------------------

_CANARY = r"""
import json, sys
import os, pickle, _pickle, posix

def _boom(*args, **kwargs):
    raise AssertionError("the catalogue tried to unpickle or run something")

for mod in (pickle, _pickle):
    for attr in ("load", "loads", "Unpickler"):
        setattr(mod, attr, _boom)
os.system = posix.system = _boom
sys.path.insert(0, sys.argv[1])
import hostile_cases
print(json.dumps(sorted(sys.modules)))
"""

# Payload modules that the catalogue may legitimately have in sys.modules: the
# interpreter loads them at start-up, the benign generators need them for
# pickle.dumps, numpy imports them, or they are aliases that cannot be imported.
ALLOWED_PAYLOAD_MODULES = frozenset(
    {
        "__builtin__",  # Python 2 alias only
        "__main__",
        "_codecs",
        "_io",
        "_operator",
        "_pickle",  # pickle.dumps
        "builtins",
        "collections",
        "copyreg",
        "ctypes",  # imported by numpy
        "functools",
        "importlib",
        "marshal",  # built in, always loaded
        "nt",  # Windows-only, not importable here
        "numpy",  # benign numpy dumps
        "operator",
        "os",
        "pickle",
        "posix",
        "posixpath",
        "sys",
        "types",
        "urllib",  # urllib.parse via pathlib; urllib.request is on the never list
        "uuid",  # benign uuid.UUID dump
    }
)


def test_import_canary_in_fresh_interpreter() -> None:
    """Building the catalogue imports none of the payload modules and unpickles nothing."""
    proc = subprocess.run(
        [sys.executable, "-c", _CANARY, str(TESTS_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    leaked = sorted(m for m in hc.NEVER_IMPORT_MODULES if m in loaded)
    assert not leaked, f"catalogue imported payload modules: {leaked}"


def test_every_payload_module_is_accounted_for() -> None:
    """Each module a payload references is either never imported or explicitly allowed."""
    referenced = {
        target.split(".")[0]
        for case in hc.CASES
        for target in (case.dangerous_global, case.resolved_target)
        if target
    }
    unaccounted = sorted(
        referenced - ALLOWED_PAYLOAD_MODULES - {m.split(".")[0] for m in hc.NEVER_IMPORT_MODULES}
    )
    assert not unaccounted, unaccounted
