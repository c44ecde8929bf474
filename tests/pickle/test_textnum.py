"""Protocol 0's numbers written as text are read as CPython's C unpickler reads them.

CPython itself is the oracle: ``pickle.loads`` of a stream holding only the number and STOP
names no global, so it runs nothing.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import pytest

from ckptaudit.pickle.textnum import parse_float, parse_int, parse_long

FAILED = "fails"

INTS = [
    b"010",
    b"0x1f",
    b"0X1F",
    b"1_000",
    b"1__0",
    b"_1",
    b"08",
    b"0x",
    b"0b101",
    b"0o17",
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
    b"7 ",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"0x1950a86a20f9469cfc6c",
    b"0777777777777777777777777",
    b"",
    b"abc",
    b"1L",
]

FLOATS = [
    b"1.5",
    b"-0.0",
    b"1e999",
    b"-1e999",
    b"inf",
    b"-inf",
    b"nan",
    b"NaN",
    b"Infinity",
    b"infinit",
    b"1e-400",
    b" 1.0",
    b"1.0 ",
    b"1.0\t",
    b"1_0.0",
    b"0x1p3",
    b"1.5\x00zz",
    b"\x00",
    b".5",
    b"5.",
    b"1e",
    b"+.5e+3",
    b"abc",
]


def cpython(opcode: bytes, raw: bytes) -> object:
    try:
        return pickle.loads(opcode + raw + b"\n.")
    except Exception:
        return FAILED


def ours(parse: Callable[[bytes], object], raw: bytes) -> object:
    try:
        return parse(raw)
    except (ValueError, OverflowError):
        return FAILED


def same(a: object, b: object) -> bool:
    """Equal values of the same type (NaN equals NaN; -0.0 differs from 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("raw", INTS, ids=repr)
def test_int(raw: bytes) -> None:
    assert same(ours(parse_int, raw), cpython(b"I", raw))


@pytest.mark.parametrize("raw", INTS, ids=repr)
def test_long(raw: bytes) -> None:
    assert same(ours(parse_long, raw), cpython(b"L", raw))


@pytest.mark.parametrize("raw", FLOATS, ids=repr)
def test_float(raw: bytes) -> None:
    assert same(ours(parse_float, raw), cpython(b"F", raw))


def test_the_comparison_can_fail() -> None:
    """Parsing in base 10, or reading past the NUL, would show."""
    assert not same(int(b"010"), cpython(b"I", b"010"))
    assert not same(ours(float, b"1.5\x00zz"), cpython(b"F", b"1.5\x00zz"))
    assert not same(True, 1) and not same(0.0, -0.0)
