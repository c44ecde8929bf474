"""FRAME reading from a file and from bytes, checked against CPython itself.

CPython's C unpickler reads from bytes contiguously; from a file, a read that runs past the
end of a frame it holds in a read() buffer takes its bytes from the frame's end instead
(pickle/frames.py). The emulator's main reading must be what ``pickle.loads`` builds, and
what ``pickle.load`` builds from any file object (with or without peek(), any buffer size)
must be one of its readings. The pickles here hold only plain values, and they are loaded by
an unpickler that refuses every global, so no test ever imports or runs anything.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from ckptaudit.errors import LimitExceeded
from ckptaudit.pickle import loop, paths
from ckptaudit.pickle.budget import Budget
from ckptaudit.pickle.frames import crossing_read
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.result import PickleResult
from ckptaudit.pickle.vm import run_pickle


class NoGlobals(pickle.Unpickler):
    """CPython's C unpickler (file semantics kept), refusing anything but plain values."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent id refused")


_FAILED = object()


def cpython(data: bytes, file: io.RawIOBase | io.BufferedIOBase | None = None) -> Any:
    """What CPython builds from a file over ``data`` (from bytes when ``file`` is None)."""
    try:
        if file is None:
            return pickle.loads(data)
        return NoGlobals(file).load()
    except Exception:
        return _FAILED


def plain(value: Any) -> Any:
    """The value when it is made of primitives, lists and tuples only; else a marker."""
    todo = [value]
    while todo:
        item = todo.pop()
        if type(item) in (list, tuple):
            todo.extend(item)
        elif item is not None and type(item) not in (int, float, str, bytes, bool):
            return _FAILED
    return value


def outcomes(result: PickleResult) -> list[Any]:
    """The plain roots of the main reading and every other reading that completed."""
    found = [plain(r.root) for r in [result, *result.readings] if r.complete]
    return [v for v in found if v is not _FAILED]


# --------------------------------------------------------------------------- hand-made


def framed(body: bytes, size: int, after: bytes) -> bytes:
    """PROTO 4, a FRAME of ``size`` bytes over ``body``, then ``after``."""
    return b"\x80\x04\x95" + struct.pack("<Q", size) + body + after


CROSSINGS = {
    # A BINUNICODE's text crosses: from a file it is read from the frame's end.
    "binunicode-body": framed(b"X\x05\x00\x00\x00ab", 7, b"xyz.w."),
    # A text line (INT) crosses: from a file the line starts at the frame's end.
    "int-line": framed(b"(I12", 4, b"3\nI45\nl."),
    # BININT's four bytes cross.
    "binint-arg": framed(b"(J\x01\x02", 4, b"\x03\x04K\x07l."),
    # A FRAME whose frame runs past the frame it sits in: read from the outer one's end.
    "frame-in-frame": framed(b"(K\x01\x95" + struct.pack("<Q", 3) + b"K", 13, b"K\x07K\x09l."),
    # A FRAME that fits in what the frame it sits in still holds: nothing is read.
    "frame-inside-frame": framed(b"(K\x01\x95" + struct.pack("<Q", 2) + b"K\x02", 14, b"l."),
    # A SHORT_BINUNICODE length byte sits at the end, its text past it: no crossing (the
    # text read starts exactly at the frame's end).
    "read-at-the-end": framed(b"\x8c\x03", 2, b"abc."),
    # BINBYTES's body is read with readinto(): contiguous from a file too.
    "binbytes-body": framed(b"B\x04\x00\x00\x00ab", 7, b"cd."),
}


@pytest.mark.parametrize("name", list(CROSSINGS))
def test_readings_match_cpython_from_bytes_and_from_a_file(name: str) -> None:
    data = CROSSINGS[name]
    result = run_pickle(data)
    from_bytes = cpython(data)
    from_file = cpython(data, io.BytesIO(data))
    if from_bytes is not _FAILED:
        assert result.complete and plain(result.root) == from_bytes
    assert from_file is not _FAILED
    assert from_file in outcomes(result)
    differs = from_bytes is _FAILED or from_file != from_bytes
    assert bool(result.readings) is differs, (result.crossings, from_file, from_bytes)


def test_crossing_read_classifies_each_kind_of_read() -> None:
    data = b"X\x05\x00\x00\x00abcde"
    assert crossing_read(data, 0, 3, len(data)) == 1  # the length itself crosses
    assert crossing_read(data, 0, 7, len(data)) == 5  # the text crosses
    assert crossing_read(data, 0, 5, len(data)) is None  # the text starts at the end
    raw = b"B\x05\x00\x00\x00abcde"
    assert crossing_read(raw, 0, 7, len(raw)) is None  # readinto(): contiguous
    line = b"cmod\nname\n"
    assert crossing_read(line, 0, 7, len(line)) == 5  # the second line crosses


def test_every_combination_is_a_reading_up_to_the_limit() -> None:
    """Five frames, each ending inside a text line: from a file each line is read from the
    frame's end and both readings meet again after it, so every one of the 31 combinations
    of skips is a reading; 16 are run, and the cut is said."""
    stream = b""
    for _ in range(5):
        stream += b"\x95" + struct.pack("<Q", 2) + b"I5" + b"5\n0"
    data = b"\x80\x04" + stream + b"N."
    result = run_pickle(data)
    assert result.complete and result.root is None and len(result.crossings) == 5
    assert len(result.readings) == Limits().max_frame_readings
    assert result.readings_cut
    assert all(r.complete for r in result.readings)
    # Depth first: the reading that skips at every crossing (BytesIO's) is the fifth run.
    assert [len(r.skips) for r in result.readings[:5]] == [1, 2, 3, 4, 5]


def test_readings_draw_on_the_file_budget() -> None:
    data = CROSSINGS["binunicode-body"]
    budget = Budget(Limits(emulated_bytes_floor=0, emulated_bytes_ratio=1), len(data) + 3)
    with budget.active():
        result = run_pickle(data)
    assert budget.bytes_emulated <= budget.max_bytes
    assert budget.exhausted
    assert isinstance(result.readings[0].error, LimitExceeded)


# --------------------------------------------------------------------------- generated


def _literal(rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return b"K" + bytes([rng.randrange(256)])
    if kind == 1:
        return b"J" + struct.pack("<i", rng.randrange(-(2**31), 2**31))
    if kind == 2:
        text = "".join(rng.choice("abXYZ.(") for _ in range(rng.randrange(12)))
        return b"\x8c" + bytes([len(text)]) + text.encode()
    if kind == 3:
        text = "".join(rng.choice("ab\n.") for _ in range(rng.randrange(12)))
        return b"X" + struct.pack("<I", len(text)) + text.encode()
    if kind == 4:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(10)))
        return b"C" + bytes([len(raw)]) + raw
    if kind == 5:
        return b"I" + str(rng.randrange(-999, 999)).encode() + b"\n"
    return b"G" + struct.pack(">d", rng.uniform(-1e6, 1e6))


def random_framed(rng: random.Random) -> bytes:
    """A list of literals, with FRAMEs of random lengths put between random opcodes."""
    ops = [b"]", b"(", *(_literal(rng) for _ in range(rng.randrange(1, 10))), b"e", b"."]
    out = b"\x80\x04"
    for i, op in enumerate(ops):
        if rng.random() < 0.4:
            rest = sum(len(o) for o in ops[i:])
            out += b"\x95" + struct.pack("<Q", rng.randrange(0, rest))
        out += op
    return out + bytes(rng.randrange(256) for _ in range(rng.randrange(20)))


def files(data: bytes) -> Iterator[io.RawIOBase | io.BufferedIOBase]:
    """File objects a loader meets: without peek(), and peeking with small and usual buffers."""
    yield io.BytesIO(data)
    for size in (1, 3, 16, 8192):
        yield io.BufferedReader(io.BytesIO(data), buffer_size=size)  # type: ignore[arg-type]


@pytest.mark.skipif(
    bool(os.environ.get("CKPTAUDIT_SANITIZED")),
    reason="CPython's unpickler allocates whatever length a garbage reading declares (up to "
    "gigabytes), which AddressSanitizer aborts on; the sanitized run checks ckptaudit's C "
    "(test_both_cores_find_the_same_readings runs these pickles through it)",
)
def test_generated_framed_pickles_agree_with_cpython() -> None:
    rng = random.Random(154848)
    seen_readings = 0
    for _ in range(400):
        data = random_framed(rng)
        result = run_pickle(data)
        expected = cpython(data)
        if expected is not _FAILED and plain(expected) is not _FAILED:
            assert result.complete and plain(result.root) == expected, data
        if result.readings_cut:
            continue
        found = outcomes(result)
        seen_readings += bool(result.readings)
        for file in files(data):
            got = cpython(data, file)
            if got is not _FAILED and plain(got) is not _FAILED:
                assert got in found, (data, got, found)
    assert seen_readings > 50  # the generator does make crossings


# --------------------------------------------------------------------------- both cores


@contextlib.contextmanager
def python_core() -> Iterator[None]:
    saved = loop._compiled, paths._compiled
    loop._compiled = paths._compiled = None
    try:
        yield
    finally:
        loop._compiled, paths._compiled = saved


def fingerprint(result: PickleResult) -> list[Any]:
    return [
        (r.skips, r.complete, r.end, r.frame_end, r.crossings, plain(r.root), str(r.error))
        for r in [result, *result.readings]
    ]


@pytest.mark.skipif(loop._compiled is None, reason="the compiled loop is not built")
def test_both_cores_find_the_same_readings() -> None:
    rng = random.Random(7)
    cases = [*CROSSINGS.values(), *(random_framed(rng) for _ in range(200))]
    for data in cases:
        fast = fingerprint(run_pickle(data))
        with python_core():
            slow = fingerprint(run_pickle(data))
        assert fast == slow, data
