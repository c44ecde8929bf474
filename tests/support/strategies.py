"""Hypothesis strategies for pickle streams, shared by the fuzz and the differential tests."""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

__all__ = ["OPCODES", "opcode_soup"]

OPCODES = sorted(pickletools.opcodes, key=lambda op: op.code)


def arg_bytes(op: pickletools.OpcodeInfo, draw: Callable[[Any], Any]) -> bytes:
    """Argument bytes for one opcode: plausible, boundary or random, sometimes too short."""
    arg = op.arg
    if arg is None:
        return b""
    n = arg.n
    if n > 0:
        return draw(st.binary(min_size=n, max_size=n))
    if n == pickletools.UP_TO_NEWLINE:
        text = draw(
            st.one_of(
                st.sampled_from([b"0", b"1", b"00", b"-7", b"123L", b"1.5", b"'a'", b"os", b"x"]),
                st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
            )
        )
        return text + (b"\n" if draw(st.integers(0, 9)) else b"")
    width = {
        pickletools.TAKEN_FROM_ARGUMENT1: 1,
        pickletools.TAKEN_FROM_ARGUMENT4: 4,
        pickletools.TAKEN_FROM_ARGUMENT4U: 4,
        pickletools.TAKEN_FROM_ARGUMENT8U: 8,
    }[n]
    body = draw(st.binary(max_size=16))
    length = draw(
        st.one_of(
            st.just(len(body)),
            st.integers(0, 40),
            st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]),
        )
    )
    length %= 1 << (8 * width)
    return length.to_bytes(width, "little") + body


@st.composite
def opcode_soup(draw: Callable[[Any], Any]) -> bytes:
    """Valid opcode bytes with random arguments, optionally behind PROTO and before STOP."""
    out = bytearray()
    if draw(st.booleans()):
        out += bytes([0x80, draw(st.integers(0, 6))])
    for _ in range(draw(st.integers(0, 40))):
        op = draw(st.sampled_from(OPCODES))
        out += op.code.encode("latin-1") + arg_bytes(op, draw)
    if draw(st.booleans()):
        out += b"."
    return bytes(out)
