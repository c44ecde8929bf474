"""Numbers written as text (protocol 0's INT, LONG, FLOAT, PUT and GET), read as CPython reads them.

The C unpickler reads each argument line as a C string (it ends at a NUL byte) and converts it
with C's ``strtol``/``strtod`` before Python's own parsers. Reading INT, LONG or FLOAT any
other way would let a file show one number here and another to every real unpickler, so those
follow CPython's ``_pickle.c``, down to which inputs they refuse. Errors are ``ValueError`` or
``OverflowError``, which the emulator reports as a bad argument.
"""

from __future__ import annotations

import re

__all__ = ["c_text_int", "parse_float", "parse_int", "parse_long", "parse_memo_key"]

# C's strtol(s, &end, 0), which CPython's INT tries first: octal after a leading 0, hex after 0x.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")

# What PyOS_string_to_double accepts: no whitespace, no underscores, no hex.
_STRTOD = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\Z",
    re.IGNORECASE,
)

_INF = float("inf")


def _c_string(raw: bytes) -> bytes:
    """The line as the C unpickler sees it: up to the first NUL byte."""
    return raw.split(b"\0", 1)[0]


def c_text_int(raw: bytes, strtol: bool = True) -> int:
    """An INT or LONG argument, parsed as CPython's C unpickler parses it.

    The line is a C string (it ends at a NUL byte). INT tries ``strtol`` with base 0
    (``010`` is 8) and, when that fails or overflows, ``PyLong_FromString`` with base 0
    (``0x1f``, ``1_000``), as LONG does directly. Parsing in base 10 instead would let a
    file read one number here and another in every real unpickler.
    """
    raw = _c_string(raw)
    if strtol and not raw:
        return 0  # strtol finds no digits and stops at the NUL: the whole string is read
    match = _STRTOL.match(raw) if strtol else None
    if match is not None:
        sign, digits = match.groups()
        if digits[1:2] in (b"x", b"X"):
            value = int(digits[2:], 16)
        elif digits[:1] == b"0":
            value = int(digits, 8)
        else:
            value = int(digits)
        value = -value if sign == b"-" else value
        if -(1 << 63) <= value < 1 << 63:  # a C long on the 64-bit platforms torch runs on
            return value
    try:
        return int(raw, 0)
    except ValueError:
        raise ValueError("could not convert string to int") from None


def parse_int(raw: bytes) -> int | bool:
    """INT's argument (the line without its newline): an int, or protocol 0's False/True."""
    if not raw:
        raise ValueError("pickle data was truncated")  # CPython: "bad readline"
    value: int | bool = c_text_int(raw)
    c_string = _c_string(raw)
    if len(raw) == 2 and value in (0, 1) and (not c_string or _STRTOL.match(c_string)):
        value = bool(value)  # "00"/"01" (and "+1", " 0"): protocol 0's False and True
    return value


def parse_long(raw: bytes) -> int:
    """LONG's argument: base 0 without ``strtol``, after dropping Python 2's ``L`` suffix."""
    if raw.endswith(b"L"):
        raw = raw[:-1]
    return c_text_int(raw, strtol=False)


def parse_float(raw: bytes) -> float:
    """FLOAT's argument, as ``PyOS_string_to_double`` reads it (overflow is an error)."""
    raw = _c_string(raw)
    if not _STRTOD.match(raw):
        raise ValueError("could not convert string to float")
    value = float(raw)
    if value in (_INF, -_INF) and b"n" not in raw.lower():
        raise OverflowError("float too large to unpickle")  # what the C unpickler raises
    return value


def parse_memo_key(raw: bytes) -> int:
    """The memo index of a text PUT or GET: ``int()`` of the C string (both loops read it so)."""
    return int(_c_string(raw))
