"""Data flows one way: formats -> pickle VM -> checks -> report. A lower layer never imports a
higher one, at module level or inside a function.

Each top-level part of the package is a component with the components it may import; the
test reads every import of every module (with ``ast``, so nothing is executed) and fails on
any other. Cycles between components are impossible under this table, which is a DAG (also
checked).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ckptaudit"

FOUNDATION = frozenset({"_compat", "_version", "errors", "findings"})
"""The data model and the exception tree: every layer may use them."""

ALLOWED: dict[str, frozenset[str]] = {
    "pickle": frozenset(),
    "policy": frozenset(),
    "structure": frozenset({"pickle"}),
    "formats": frozenset({"pickle", "structure", "policy"}),
    "checks": frozenset({"formats", "pickle", "policy", "structure"}),
    "audit": frozenset({"checks", "formats", "pickle", "policy", "structure"}),
    "discovery": frozenset({"formats"}),
    # Reads a file's pickle with the container readers, to hand it to torch (--torch-check).
    "torch_oracle": frozenset({"formats", "pickle"}),
    "report": frozenset({"checks", "policy", "torch_oracle"}),
    "runner": frozenset({"audit", "cluster", "discovery", "formats", "pickle", "policy"}),
    "cluster": frozenset({"audit", "pickle", "policy"}),
    "migrate": frozenset(
        {"audit", "checks", "discovery", "formats", "pickle", "policy", "structure"}
    ),
    "testing": frozenset({"audit", "checks", "formats", "pickle", "policy", "report"}),
}
"""Component -> the components it may import (besides the foundation and itself). The entry
points (``__init__``, ``__main__``, ``cli``) may import anything and are imported by nothing
of the core. The demo (models and the plan's script) is a package of its own, ``ckptaudit_demo``,
which only the ``demo`` command imports."""

ENTRY_POINTS = frozenset({"__init__", "__main__", "cli", "pytest_plugin"})


def component(module: str) -> str:
    """``ckptaudit.checks.rules.allowlist`` -> ``checks``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        found[name] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    """Every ckptaudit module imported anywhere in a file (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ckptaudit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("ckptaudit"):
                found.add(target)
                # `from ckptaudit import audit` imports a component, not only the package.
                if target == "ckptaudit":
                    found.update(f"ckptaudit.{a.name}" for a in node.names)
    return found


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    mine = component(module)
    if mine in ENTRY_POINTS:
        return
    assert mine in ALLOWED or mine in FOUNDATION, f"{module}: component {mine!r} has no layer"
    allowed = ALLOWED.get(mine, frozenset()) | FOUNDATION | {mine}
    if mine in FOUNDATION:
        allowed = FOUNDATION  # the foundation depends on nothing above it
    bad = sorted(
        target
        for target in imports_of(MODULES[module], module)
        if target != "ckptaudit" and component(target) not in allowed
    )
    # `import ckptaudit` alone names the package: only __version__ may be read from it.
    assert not bad, f"{module} ({mine}) imports {bad}; allowed: {sorted(allowed)}"


def test_nothing_in_the_core_imports_an_entry_point() -> None:
    for module, path in MODULES.items():
        if component(module) in ENTRY_POINTS:
            continue
        bad = [t for t in imports_of(path, module) if component(t) in ENTRY_POINTS - {"__init__"}]
        assert not bad, f"{module} imports the entry points {bad}"


def test_only_the_cli_reaches_the_demo() -> None:
    for module, path in MODULES.items():
        if component(module) == "cli":
            continue
        text = path.read_text(encoding="utf-8")
        assert "ckptaudit_demo" not in text, f"{module} mentions the demo package"


def test_the_layer_table_is_a_dag() -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"cycle: {' -> '.join((*trail, node))}"
        state[node] = 1
        for nxt in ALLOWED.get(node, ()):
            visit(nxt, (*trail, node))
        state[node] = 2

    for node in ALLOWED:
        visit(node, ())


def test_the_layer_test_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The reader must catch a lazy import, the way a lower layer sneaks one in."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from ckptaudit.report import render\n    return render\n")
    assert imports_of(path, "ckptaudit.pickle.mod") == {"ckptaudit.report"}
