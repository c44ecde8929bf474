"""Text arguments (INT, LONG, FLOAT, PUT, GET) parsed exactly as CPython's unpickler parses
them: a value CPython reads differently is a place to hide a payload or change a verdict.

From the first (d413eec) and second (55da442, cde38f1) red-team campaigns. Only the emulator
and ``pickle.loads`` of plain literals run here: no torch, nothing hostile.
"""

from __future__ import annotations

import math
import pickle

import pytest

from ckptaudit.pickle.vm import run_pickle

# --------------------------------------------------------------------------- integers

TEXT_INTS = [
    b"010",
    b"0x1f",
    b"1_000",
    b"08",
    b"0x",
    b"12\x00zz",
    b"\x00",
    b"+1",
    b" 0",
    b"-0",
    b"00",
    b"01",
    b"1",
    b"0",
    b"-1",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"0x1950a86a20f9469cfc6c",
    b"0777777777777777777777777",
    b"0b101",
    b"0o17",
    b"7 ",
    b"",
    b"abc",
    b"0X1F",
    b"1__0",
    b"_1",
]


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


# --------------------------------------------------------------------------- floats and memo indices

FLOAT_LITERALS = [
    b"1.5",
    b"1.5\x00junk",
    b"inf",
    b"-Infinity",
    b"nan",
    b"1e308",
    b"1e309",
    b"1e-400",
    b" 1.0",
    b"1.0 ",
    b"1_0.5",
    b"0x1p3",
    b".5",
    b"5.",
    b"1e",
    b"+.5e-3",
    b"-nan",
    b"INF",
    b"infinit",
    b"",
    b"1.5\x00",
    b"\x001.5",
    b"0",
    b"-0.0",
]


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (a, type(a)) == (b, type(b)) and (
        not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b)
    )


def _cpython_and_ours(stream: bytes) -> tuple[object, object]:
    try:
        expected: object = pickle.loads(stream)
    except Exception:
        expected = ValueError
    result = run_pickle(stream)
    return expected, (result.root if result.complete else ValueError)


@pytest.mark.parametrize("literal", FLOAT_LITERALS, ids=repr)
def test_text_float_parsed_as_cpython_parses_it(literal: bytes) -> None:
    expected, got = _cpython_and_ours(b"F" + literal + b"\n.")
    assert _same_value(got, expected), (got, expected)


MEMO_LITERALS = [b"1\x00junk", b" 1", b"+1", b"1_0", b"-1", b"1 ", b"01", b"1\x00", b"0x1"]


@pytest.mark.parametrize("literal", MEMO_LITERALS, ids=repr)
@pytest.mark.parametrize("opcode", ["PUT", "GET", "both"])
def test_text_memo_index_parsed_as_cpython_parses_it(literal: bytes, opcode: str) -> None:
    put = literal if opcode in ("PUT", "both") else b"1"
    get = literal if opcode in ("GET", "both") else b"1"
    expected, got = _cpython_and_ours(b"K\x07p" + put + b"\n0g" + get + b"\n.")
    assert (got, type(got)) == (expected, type(expected))
