"""The opcodes handled inline are written in three places, and this test ties them together.

They are: the Python loop's ``if op == N`` chain (loop._python_loop), the sets that say which
of them note their first use (loop.INLINE_UNNOTED, INLINE_NOTED, COMPILED_INLINE; the
compiled loop gets its noting mask from them), and the ``case N:`` labels of _loop.c's switch.
Adding an inline case to one without the others fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from ckptaudit.pickle import loop
from ckptaudit.pickle.vm import OPCODE_NAMES
from ckptaudit.policy import available_torch_versions, load_policy

LOOP_C = Path(__file__).resolve().parents[2] / "src" / "ckptaudit" / "pickle" / "_loop.c"


def python_cases() -> dict[int, tuple[str, bool]]:
    """Opcode -> (the name its comment gives, whether it notes its first use), per inline case."""
    source = textwrap.dedent(inspect.getsource(loop._python_loop))
    lines = source.splitlines()
    cases: dict[int, tuple[str, bool]] = {}
    for node in ast.walk(ast.parse(source)):
        test = node.test if isinstance(node, ast.If) else None
        if not (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "op"
            and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant)
        ):
            continue
        assert isinstance(node, ast.If)
        code = test.comparators[0].value
        comment = re.search(r"#\s*([A-Z0-9_]+)", lines[node.lineno - 1])
        notes = any(
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Name)
            and target.value.id == "first"
            for statement in node.body
            for sub in ast.walk(statement)
            if isinstance(sub, ast.Assign)
            for target in sub.targets
        )
        assert code not in cases, f"opcode {code} handled twice"
        cases[code] = (comment.group(1) if comment else "", notes)
    return cases


def c_cases(text: str) -> dict[int, str]:
    """Opcode -> the name its comment gives, per ``case`` label of the C switch."""
    labels = re.findall(r"^\s*case\s+(\w+)\s*:(.*)$", text, re.MULTILINE)
    cases: dict[int, str] = {}
    for label, rest in labels:
        assert label.isdigit(), f"case {label}: opcodes are written as numbers"
        comment = re.match(r"\s*/\*\s*([A-Z0-9_]+)", rest)
        assert int(label) not in cases, f"case {label} twice"
        cases[int(label)] = comment.group(1) if comment else ""
    return cases


@pytest.fixture(scope="module")
def c_source() -> str:
    if not LOOP_C.exists():
        pytest.skip("the C sources are not next to these tests")
    return LOOP_C.read_text()


def test_the_python_chain_is_what_the_sets_say() -> None:
    cases = python_cases()
    assert len(cases) > 20  # the chain was found
    assert {op: name for op, (name, _) in cases.items()} == {op: OPCODE_NAMES[op] for op in cases}
    assert set(cases) == loop.INLINE_UNNOTED | loop.INLINE_NOTED
    assert {op for op, (_, notes) in cases.items() if notes} == loop.INLINE_NOTED


def test_the_c_switch_is_what_the_sets_say(c_source: str) -> None:
    cases = c_cases(c_source)
    assert cases == {op: OPCODE_NAMES[op] for op in cases}
    assert set(cases) == loop.INLINE_UNNOTED | loop.INLINE_NOTED | loop.COMPILED_INLINE


def test_the_sets_do_not_overlap() -> None:
    sets = [loop.INLINE_UNNOTED, loop.INLINE_NOTED, loop.COMPILED_INLINE]
    assert sum(len(s) for s in sets) == len(frozenset().union(*sets))


@pytest.mark.parametrize("version", available_torch_versions())
def test_only_opcodes_torch_accepts_go_unnoted(version: str) -> None:
    """A finding on an opcode torch refuses cites its first offset: it must have been noted."""
    supported = load_policy(version).supported_opcodes
    assert loop.INLINE_UNNOTED.issubset(supported)
    assert not loop.INLINE_NOTED & supported


def test_the_parsers_see_a_change(c_source: str) -> None:
    """The checks above can fail: a case dropped from the C switch or renamed shows."""
    dropped = re.sub(r"^\s*case 81:.*$", "", c_source, flags=re.MULTILINE)
    assert 81 in c_cases(c_source) and 81 not in c_cases(dropped)
    renamed = c_source.replace("case 104: /* BINGET */", "case 104: /* BINPUT */")
    assert c_cases(renamed)[104] != OPCODE_NAMES[104]
