"""The emulator: every opcode, every protocol, malformed and hostile streams."""

from __future__ import annotations

import collections
import pickle
import pickletools
from typing import Any

import pytest

from ckptaudit.pickle import Call, Global, PDict, PSet, run_pickle
from ckptaudit.pickle.handlers import TABLE

SAMPLE = {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -(2**31), 2**31, 2**70, -(2**70)],
    "floats": [0.0, 1.5, -2.25],
    "text": ["", "ascii", "ünïcödé", "x" * 300],
    "bytes": [b"", b"\x00\xff", b"y" * 300],
    "nested": {"t": (1, (2, (3,))), "l": [[], [[]]], "none": None, "bools": [True, False]},
    "sets": [{1, 2}, frozenset({3})],
    "ba": bytearray(b"ab"),
}


def to_python(node: Any) -> Any:
    """Rebuild plain data from an inert tree (test helper; knows the encoders of protocols 0-2)."""
    if type(node) is list:
        return [to_python(x) for x in node]
    if type(node) is tuple:
        return tuple(to_python(x) for x in node)
    if type(node) is PDict:
        return {to_python(k): to_python(v) for k, v in node.pairs}
    if type(node) is PSet:
        items = {to_python(x) for x in node.items}
        return frozenset(items) if node.frozen else items
    if type(node) is Call:
        name = node.func.qualified if isinstance(node.func, Global) else None
        args = to_python(node.args)
        if name in ("_codecs.encode",):
            return args[0].encode(args[1])
        if name in ("__builtin__.set", "builtins.set"):
            return set(args[0]) if args else set()
        if name in ("__builtin__.frozenset", "builtins.frozenset"):
            return frozenset(args[0]) if args else frozenset()
        if name in ("__builtin__.bytearray", "builtins.bytearray"):
            return bytearray(*args)
        if name in ("__builtin__.bytes", "builtins.bytes"):
            return bytes(*args)
        raise AssertionError(f"unexpected call {name}")
    return node


def test_every_opcode_has_a_handler() -> None:
    missing = [op.name for op in pickletools.opcodes if TABLE[ord(op.code)] is None]
    assert missing == []


@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_rebuilds_plain_data(protocol: int) -> None:
    data = pickle.dumps(SAMPLE, protocol=protocol)
    result = run_pickle(data)
    assert result.complete, result.error
    assert result.end == len(data)
    rebuilt = to_python(result.root)
    # Protocols 0-2 spell bytearray/bytes through builtins; compare by value.
    assert rebuilt == SAMPLE


@pytest.mark.parametrize("protocol", range(6))
def test_every_prefix_of_a_stream_is_an_error_not_an_exception(protocol: int) -> None:
    data = pickle.dumps(
        {"a": [1, "two", (3.0, b"4")], "d": collections.OrderedDict(x=1)}, protocol=protocol
    )
    for cut in range(len(data)):
        result = run_pickle(data[:cut])
        assert not result.complete
        assert result.error is not None


@pytest.mark.parametrize(
    "stream",
    [
        b"\x80\x02X\xff\xff\xff\x7f",  # BINUNICODE claiming 2 GiB
        b"\x80\x04\x8d" + b"\xff" * 8,  # BINUNICODE8 claiming 2**64-1
        b"\x80\x04\x95" + b"\xff" * 8 + b".",  # FRAME longer than the file
        b"\x80\x02\x8b\xff\xff\xff\x7f",  # LONG4 claiming 2 GiB
        b"\x80\x03B\xff\xff\xff\xff",  # BINBYTES claiming 4 GiB
    ],
)
def test_huge_declared_lengths_fail_without_allocating(stream: bytes) -> None:
    result = run_pickle(stream)
    assert result.error is not None
    assert "truncated" in str(result.error)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "truncated"),
        (b"\x80\x02.", "stack underflow"),
        (b"\x80\x02h\x05.", "memo key 5 not found"),
        (b"\x80\x02e.", "MARK expected"),
        (b"\x80\x09N.", "unsupported pickle protocol"),
        (b"\xffN.", "invalid opcode"),
        (b"I12x\n.", "bad argument"),
    ],
)
def test_malformed_streams_say_what_is_wrong(stream: bytes, message: str) -> None:
    result = run_pickle(stream)
    assert result.error is not None and message in str(result.error)


def test_a_million_marks_do_not_recurse() -> None:
    result = run_pickle(b"(" * 1_000_000 + b"N.")
    assert result.complete  # STOP pops the None; the open marks are left behind


def test_deeply_nested_lists_are_built_iteratively() -> None:
    depth = 200_000
    result = run_pickle(b"(" * depth + b"]" + b"l" * depth + b".")
    assert result.complete
    node, levels = result.root, 0
    while node:
        node, levels = node[0], levels + 1
    assert levels == depth


def test_globals_are_recorded_never_resolved() -> None:
    stream = b"cno_such_module_xyz\nboom\n(S'x'\ntR."
    result = run_pickle(stream)
    assert result.complete
    (g,) = result.globals
    assert (g.module, g.name, g.opcode) == ("no_such_module_xyz", "boom", "GLOBAL")
    assert isinstance(result.root, Call) and result.root.func is g


def test_stack_global_names_come_from_the_memo() -> None:
    # protocol 4: names memoised, fetched back with BINGET, then STACK_GLOBAL.
    stream = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x94\x8c\x02id\x94\x85R."
    result = run_pickle(stream)
    assert result.complete
    assert [g.qualified for g in result.globals] == ["os.system"]
    assert not result.globals[0].dynamic


def test_computed_global_names_are_marked_dynamic() -> None:
    # STACK_GLOBAL whose module is the result of a call: unknowable statically.
    stream = b"\x80\x04c_operator\nadd\n\x8c\x01o\x8c\x01s\x86R\x8c\x06system\x93)R."
    result = run_pickle(stream)
    dynamic = [g for g in result.globals if g.dynamic]
    assert len(dynamic) == 1 and dynamic[0].opcode == "STACK_GLOBAL"


def test_extension_codes_are_dynamic_globals() -> None:
    result = run_pickle(b"\x80\x02\x82\x07)R.")
    (g,) = result.globals
    assert g.dynamic and g.opcode == "EXT1"


def test_operations_on_non_lists_are_events() -> None:
    data = pickle.dumps({"d": collections.deque([1, 2])}, protocol=2)
    result = run_pickle(data)
    ops = [e.op for e in result.events]
    assert ops == ["APPENDS"]
    assert isinstance(result.events[0].target, Call)
    assert result.events[0].target.items == [1, 2]


def test_everything_before_a_corrupt_tail_is_kept() -> None:
    # A payload followed by junk instead of STOP: a real unpickler runs the call first.
    stream = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idK\x01R\xff\xff"
    result = run_pickle(stream)
    assert result.error is not None
    assert [g.qualified for g in result.globals] == ["os.system"]
    assert len(result.calls) == 1


@pytest.mark.parametrize(
    ("stream", "complete"),
    [
        (b"\x80\x02N(\x85.", False),  # TUPLE1 with nothing above the mark: underflow
        (b"\x80\x02NN(\x86.", False),  # TUPLE2 reaching below the mark
        (b"\x80\x02N(q\x00.", False),  # BINPUT peeking below the mark
        (b"\x80\x02N(0.", True),  # POP on an empty frame pops the mark itself
        (b"\x80\x02N(N1.", True),  # POP_MARK drops the frame
        (b"\x80\x02](K\x01K\x02e.", True),  # APPENDS takes exactly the frame
    ],
)
def test_nothing_pops_below_a_mark_as_in_real_unpicklers(stream: bytes, complete: bool) -> None:
    result = run_pickle(stream)
    assert result.complete is complete, result.error

    class NoGlobals(pickle.Unpickler):
        """CPython's unpickler with globals refused: these streams name none anyway."""

        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError("no globals in this test")

    import io

    try:
        NoGlobals(io.BytesIO(stream)).load()
        real = True
    except pickle.UnpicklingError:
        real = False
    assert real is complete


def test_compiled_loop_is_used_where_required() -> None:
    """`make test` requires the compiled loop, so a broken build cannot pass unnoticed."""
    import os

    from ckptaudit.pickle import native

    if os.environ.get("CKPTAUDIT_PURE_PYTHON"):
        assert native.backend() == "python"
    elif os.environ.get("CKPTAUDIT_REQUIRE_COMPILED"):
        assert native.backend() == "compiled"
    else:
        pytest.skip("neither backend is required in this run")


def test_a_compiled_core_that_refuses_setup_is_not_used() -> None:
    """A stale build (another version's C module) falls back to Python, with a warning."""
    from ckptaudit.pickle import native

    if native.load() is None:
        pytest.skip("the compiled core is not built or is switched off")

    def refuse() -> str:
        raise TypeError("configure_loop() got an unexpected keyword argument 'noted'")

    before = native.backend()
    try:
        with pytest.warns(RuntimeWarning, match="compiled core is unusable"):
            assert native.configured("loop", refuse) is None
        assert native.backend() == "python"
        assert native.configured("loop", lambda: "the loop") == "the loop"
    finally:
        native.configured("loop", lambda: "the loop" if before == "compiled" else None)
    assert native.backend() == before


def test_sanitized_run_uses_the_sanitized_build() -> None:
    """tools/sanitize.sh builds in a scratch copy; its tests must load that build."""
    import os
    from pathlib import Path

    if not os.environ.get("CKPTAUDIT_SANITIZED"):
        pytest.skip("not a sanitizer run")
    from ckptaudit.pickle import _native  # type: ignore[attr-defined]

    repo_src = Path(__file__).resolve().parents[2] / "src"
    assert not Path(_native.__file__).resolve().is_relative_to(repo_src)
