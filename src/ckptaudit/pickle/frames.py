"""CPython's FRAME reading, from a file and from bytes, and the readings where they differ.

Protocol 4's FRAME tells the unpickler how many bytes the next opcodes take. CPython's C
unpickler (Modules/_pickle.c) does not check that opcodes stay inside their frame; what it
does depends on where it reads from:

- from bytes (``pickle.loads``) every read is contiguous: a FRAME only checks that its bytes
  are there;
- from a file, ``load_frame`` reads the frame with one ``read()`` into its buffer (a file
  without ``peek()``, such as ``io.BytesIO`` or torch's zip records, always; a peeking file
  such as one opened by path, for frames of 8 KiB or more or when the peeked window is
  short). A later ``_Unpickler_Read`` or ``_Unpickler_Readline`` that wants more than the
  buffer still holds drops what is left of it and reads from the file, which is past the
  frame's end: the bytes in between are skipped. Only ``_Unpickler_ReadInto`` (the body of
  BINBYTES, SHORT_BINBYTES, BINBYTES8 and BYTEARRAY8) takes the rest of the buffer first
  and stays contiguous. When the frame came from ``peek()`` instead, reading stays
  contiguous;
- the pure-Python ``_Unframer`` (``pickle._loads``) raises when a read crosses a frame's end,
  after running everything before it: a prefix of the contiguous reading.

So a read that starts inside a frame and runs past its end (a *crossing*) is where loaders
part ways, and which way depends, frame by frame, on the file object's buffering. The
emulator follows the contiguous reading and notes every crossing (:func:`enter_frame`,
:func:`passed_buffer`); :func:`ckptaudit.pickle.vm.run_pickle` then runs every combination
of skips a file reader can make, each as the byte sequence that reader consumes: the input
spliced at the crossing read to the frame's end (``Machine.resets`` marks the splices). The
number of readings is capped by the file's limits, and each one draws on the file's budget.
"""

from __future__ import annotations

import pickletools

from ckptaudit.pickle.machine import Machine

__all__ = ["crossing_read", "enter_frame", "passed_buffer"]

_CODE = {op.name: ord(op.code) for op in pickletools.opcodes}

_FIXED = {
    _CODE[name]: size
    for name, size in (
        ("PROTO", 1),
        ("BININT", 4),
        ("BININT1", 1),
        ("BININT2", 2),
        ("BINFLOAT", 8),
        ("BINGET", 1),
        ("LONG_BINGET", 4),
        ("BINPUT", 1),
        ("LONG_BINPUT", 4),
        ("EXT1", 1),
        ("EXT2", 2),
        ("EXT4", 4),
        ("FRAME", 8),
    )
}
"""Opcodes that read one argument of a fixed size (FRAME's frame read is its handler's)."""

# Opcodes whose argument is a length and then that many bytes: (width of the length, signed
# length, the body read with _Unpickler_ReadInto).
_COUNTED: dict[int, tuple[int, bool, bool]] = {
    _CODE["LONG1"]: (1, False, False),
    _CODE["LONG4"]: (4, True, False),
    _CODE["BINSTRING"]: (4, False, False),
    _CODE["SHORT_BINSTRING"]: (1, False, False),
    _CODE["BINUNICODE"]: (4, False, False),
    _CODE["SHORT_BINUNICODE"]: (1, False, False),
    _CODE["BINUNICODE8"]: (8, False, False),
    _CODE["BINBYTES"]: (4, False, True),
    _CODE["SHORT_BINBYTES"]: (1, False, True),
    _CODE["BINBYTES8"]: (8, False, True),
    _CODE["BYTEARRAY8"]: (8, False, True),
}

_LINES = {
    _CODE[name]: count
    for name, count in (
        ("INT", 1),
        ("LONG", 1),
        ("FLOAT", 1),
        ("STRING", 1),
        ("UNICODE", 1),
        ("PERSID", 1),
        ("GET", 1),
        ("PUT", 1),
        ("GLOBAL", 2),
        ("INST", 2),
    )
}
"""Opcodes that read newline-terminated arguments, and how many."""


def _reads(data: bytes | memoryview, op_pos: int, end: int) -> list[tuple[int, int, bool]]:
    """The reads CPython's C unpickler makes for the opcode at ``op_pos``, after its opcode
    byte, as (start, end, contiguous) in order; ``contiguous`` for _Unpickler_ReadInto."""
    op = data[op_pos]
    pos = op_pos + 1
    if op in _FIXED:
        return [(pos, pos + _FIXED[op], False)]
    if op in _COUNTED:
        width, signed, into = _COUNTED[op]
        if pos + width > end:
            return [(pos, pos + width, False)]
        n = int.from_bytes(data[pos : pos + width], "little", signed=signed)
        reads = [(pos, pos + width, False)]
        if n > 0:
            reads.append((pos + width, pos + width + n, into))
        return reads
    reads = []
    for _ in range(_LINES.get(op, 0)):
        nl = (
            bytes(data[pos:end]).find(b"\n")
            if isinstance(data, memoryview)
            else data.find(b"\n", pos, end)
        )
        stop = end if nl < 0 else nl + 1
        reads.append((pos, stop, False))
        pos = stop
    return reads


def crossing_read(data: bytes | memoryview, op_pos: int, buf_end: int, end: int) -> int | None:
    """Where the read of the opcode at ``op_pos`` that runs past ``buf_end`` starts, when a
    file reader would drop the rest of its buffer there; None when no read of it crosses
    (one starts exactly at the buffer's end) or the one that does stays contiguous."""
    for start, stop, contiguous in _reads(data, op_pos, end):
        if start >= buf_end:
            return None  # reads from the file from here on, exactly as from bytes
        if stop > buf_end:
            return None if contiguous else start
    return None


def passed_buffer(m: Machine, op_pos: int, pos: int) -> None:
    """The opcode at ``op_pos`` read up to ``pos``, at or past the end of the frame buffer:
    note a crossing if one of its reads ran past it, and let the buffer go (the contiguous
    reading goes on; the other readings follow the file reader that skips)."""
    buf_end = m.buf_end
    m.buf_end = -1
    if pos > buf_end >= 0:
        start = crossing_read(m.data, op_pos, buf_end, m.end)
        if start is not None:
            m.crossings.append((start, buf_end))


def enter_frame(m: Machine, pos: int, new: int, frame_end: int) -> None:
    """Track the buffer a file reader holds after the FRAME whose length was read from
    ``pos`` to ``new`` and whose frame runs from ``new`` to ``frame_end``.

    As ``load_frame`` does: a frame that fits in what the buffer still holds is read from
    it (no new buffer); otherwise the rest of the buffer is dropped (a crossing, if any of
    it was left) and the frame is read into a new one.
    """
    buf_end = m.buf_end
    if buf_end >= 0:
        if pos < buf_end < new:  # the length itself runs past the buffer
            m.crossings.append((pos, buf_end))
        elif new < buf_end:
            if frame_end <= buf_end:
                return  # inside the buffer already: nothing is read
            m.crossings.append((new, buf_end))
    if frame_end == new:
        m.buf_end = -1
        return
    for reset in m.resets:
        if new < reset < frame_end:
            frame_end = reset  # the skip this reading models happens here
            break
    m.buf_end = frame_end
