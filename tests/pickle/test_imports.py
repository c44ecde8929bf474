"""The pickle package's modules depend on each other one way: no import cycle, even a lazy one.

Imports are read from the source with ``ast``, wherever they are written (module level, inside
functions, under ``if TYPE_CHECKING``) and in stubs too, because an import hidden in a function
is still a dependency a reader must follow. Each module is also imported alone, in a fresh
interpreter, where an import-order dependency would show.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ckptaudit.pickle
from ckptaudit.pickle import native

PACKAGE = "ckptaudit.pickle"
PACKAGE_DIR = Path(ckptaudit.pickle.__file__).parent


def package_modules(directory: Path, package: str) -> dict[str, Path]:
    """Module name -> source file, for a package's modules and stubs (one level)."""
    modules = {package: directory / "__init__.py"}
    for path in sorted(directory.glob("*.py")) + sorted(directory.glob("*.pyi")):
        if path.stem != "__init__":
            modules.setdefault(f"{package}.{path.stem}", path)
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that the file imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule; `from pkg import name`, the package.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph(directory: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = package_modules(directory, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path whose last node is its first, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        state[start] = 1
        todo = [iter(sorted(graph[start]))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_pickle_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE_DIR, PACKAGE)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_compiled_core_wrapper_depends_on_the_extension_only() -> None:
    """Data flows one way: the loop and the walker use native, native uses neither."""
    graph = import_graph(PACKAGE_DIR, PACKAGE)
    assert graph[f"{PACKAGE}.native"] == {f"{PACKAGE}._native"}
    # The graph sees the imports at all: both users of native are found, the walker's in
    # paths.py and the loop's in loop.py, with its function-level import of _native.
    assert f"{PACKAGE}.native" in graph[f"{PACKAGE}.paths"]
    assert {f"{PACKAGE}.native", f"{PACKAGE}._native"} <= graph[f"{PACKAGE}.loop"]


def test_the_cycle_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The check can fail: a cycle through a function-level import is found, and so is one
    through a relative import."""
    lazy = tmp_path / "lazy"
    lazy.mkdir()
    (lazy / "__init__.py").write_text("")
    (lazy / "native.py").write_text("def backend():\n    from lazy import vm\n    return vm\n")
    (lazy / "vm.py").write_text("from lazy import native\n")
    assert find_cycle(import_graph(lazy, "lazy")) == ["lazy.native", "lazy.vm", "lazy.native"]

    relative = tmp_path / "rel"
    relative.mkdir()
    (relative / "__init__.py").write_text("from .a import f\n")
    (relative / "a.py").write_text("from . import f\n")  # the package, which imports a
    assert find_cycle(import_graph(relative, "rel")) == ["rel", "rel.a", "rel"]
    (relative / "a.py").write_text("from .b import g\nf = g\n")
    (relative / "b.py").write_text("g = 1\n")
    assert find_cycle(import_graph(relative, "rel")) is None


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = sorted(
        name
        for name, path in package_modules(PACKAGE_DIR, PACKAGE).items()
        if path.suffix == ".py" or name == f"{PACKAGE}._native"
    )
    try:
        import ckptaudit.pickle._native  # noqa: F401
    except ImportError:
        names.remove(f"{PACKAGE}._native")  # not built here
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    }
    failures = {}
    for name, process in runs.items():
        _, err = process.communicate(timeout=120)
        if process.returncode:
            failures[name] = err.strip().splitlines()[-1:]
    assert failures == {}
    assert len(names) >= 10


def test_backend_is_known_as_soon_as_native_is_imported() -> None:
    """The README's check: the loop and the walker have registered by the time anyone asks."""
    code = "from ckptaudit.pickle import native; print(native.backend())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == native.backend()
