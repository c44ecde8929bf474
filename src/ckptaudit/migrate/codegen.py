"""Code that keeps a checkpoint fixed: ``to_dict``/``from_dict`` per converted class.

Generated from the fields the checkpoint actually holds and how each was converted (an Enum
field stores ``.value`` and is rebuilt with ``Cls(value)``, a datetime stores ISO text, a
deque a list...), so the user's code saves plain data from now on and rebuilds the objects on
load. :func:`generate_code` writes a module (``--emit-code FILE``);
:func:`render_recommended_code` the findings document's section, current code beside required
code (for ``report/markdown.py`` to include).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ckptaudit.migrate.manifest import ClassInfo, Manifest

__all__ = ["class_functions", "generate_code", "render_recommended_code"]


def _short(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def _func_name(qualified: str) -> str:
    short = _short(qualified)
    out = []
    for i, ch in enumerate(short):
        if ch.isupper() and i and (short[i - 1].islower() or short[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out).lstrip("_") or "obj"


_DEQUE = re.compile(r"deque(?:@(\w+))?(?:\[(.*)\])?$")


def _save_expr(how: str, ref: str) -> str:
    """The expression that turns a field into plain data."""
    if how.startswith("enum:"):
        return f"{ref}.value"
    deque = _DEQUE.match(how)
    if deque:
        inner = deque.group(2)
        return f"[{_save_expr(inner, 'item')} for item in {ref}]" if inner else f"list({ref})"
    if how.startswith("object:"):
        return f"{_func_name(how[len('object:') :])}_to_dict({ref})"
    if how.startswith("module:"):
        return f"{ref}.state_dict()"
    return {
        "datetime": f"{ref}.isoformat()",
        "date": f"{ref}.isoformat()",
        "time": f"{ref}.isoformat()",
        "timedelta": f"{ref}.total_seconds()",
        "defaultdict": f"dict({ref})",
        "set": f"sorted({ref})",
        "path": f"str({ref})",
        "numpy": f"torch.from_numpy({ref})",
        "reference": f'f"{{{ref}.__module__}}.{{{ref}.__qualname__}}"',
    }.get(how, ref)


def _load_expr(how: str, ref: str) -> tuple[str, str | None]:
    """The expression that rebuilds a field from plain data, and a comment for the reader."""
    if how.startswith("enum:"):
        return f"{_short(how[len('enum:') :])}({ref})", None
    deque = _DEQUE.match(how)
    if deque:
        maxlen = deque.group(1) or "None"
        inner = deque.group(2)
        items = f"({_load_expr(inner, 'item')[0]} for item in {ref})" if inner else ref
        return f"deque({items}, maxlen={maxlen})", None
    if how.startswith("object:"):
        return f"{_func_name(how[len('object:') :])}_from_dict({ref})", None
    if how.startswith("module:"):
        cls = _short(how[len("module:") :])
        return ref, f"a state_dict: build {cls}(...) and call load_state_dict() with it"
    simple = {
        "datetime": f"datetime.fromisoformat({ref})",
        "date": f"date.fromisoformat({ref})",
        "time": f"time.fromisoformat({ref})",
        "timedelta": f"timedelta(seconds={ref})",
        "set": f"set({ref})",
        "path": f"Path({ref})",
        "numpy": f"{ref}.numpy()",
    }
    if how in simple:
        return simple[how], None
    if how == "defaultdict":
        return f"defaultdict(list, {ref})", "use the original default factory"
    if how == "reference":
        return ref, "a qualified name: resolve it in your code"
    return ref, None


def _kwarg_lines(fields: tuple[tuple[str, str], ...], indent: str) -> str:
    lines = []
    for name, how in fields:
        expr, comment = _load_expr(how, f"data[{name!r}]")
        lines.append(f"{indent}{name}={expr}," + (f"  # {comment}" if comment else ""))
    return "".join(line + "\n" for line in lines)


def class_functions(info: ClassInfo) -> str:
    """The to_dict/from_dict pair (or the note) for one converted class."""
    name = _short(info.name)
    fn = _func_name(info.name)
    where = f"# {info.name}: {info.count} converted, first at {info.example_path}\n"
    if info.kind == "enum":
        return (
            where + f"# The checkpoint holds each {name} member's value: save member.value, "
            f"rebuild with {name}(value).\n"
            f"def {fn}_to_value(member: {name}) -> Any:\n    return member.value\n\n\n"
            f"def {fn}_from_value(value: Any) -> {name}:\n    return {name}(value)\n"
        )
    if info.kind == "nn.Module":
        config = ", ".join(f'"{f}": module.{f}' for f, how in info.fields if how == "plain")
        return (
            where + f"# Save the module's weights and its constructor arguments, not the module.\n"
            f"def {fn}_to_dict(module: {name}) -> dict[str, Any]:\n"
            f'    return {{"config": {{{config}}}, "state_dict": module.state_dict()}}\n\n\n'
            f"def {fn}_from_dict(data: dict[str, Any]) -> {name}:\n"
            f'    module = {name}(**data["config"])\n'
            f'    module.load_state_dict(data["state_dict"])\n'
            f"    return module\n"
        )
    if info.kind == "namedtuple":
        return (
            where + f"# Stored as a tuple of its fields: rebuild with {name}(*values).\n"
            f"def {fn}_from_tuple(values: tuple[Any, ...]) -> {name}:\n    return {name}(*values)\n"
        )
    saves = "".join(f'        "{f}": {_save_expr(how, "obj." + f)},\n' for f, how in info.fields)
    if info.kind == "dataclass":
        build = f"    return {name}(\n{_kwarg_lines(info.fields, '        ')}    )\n"
    else:
        build = (
            f"    obj = {name}.__new__({name})\n"
            "    obj.__dict__.update(\n        dict(\n"
            + _kwarg_lines(info.fields, "            ")
            + "        )\n    )\n    return obj\n"
        )
    return (
        where
        + f"def {fn}_to_dict(obj: {name}) -> dict[str, Any]:\n    return {{\n{saves}    }}\n\n\n"
        + f"def {fn}_from_dict(data: dict[str, Any]) -> {name}:\n{build}"
    )


def _imports(classes: Sequence[ClassInfo]) -> list[str]:
    names: dict[str, set[str]] = {}
    for info in classes:
        module, _, short = info.name.rpartition(".")
        names.setdefault(module, set()).add(short)
        for _, how in info.fields:
            for part in re.sub(r"deque(@\w+)?\[?", "", how).rstrip("]").split(":")[1:]:
                mod, _, cls = part.rpartition(".")
                names.setdefault(mod, set()).add(cls)
    lines = [
        "from collections import defaultdict, deque",
        "from datetime import date, datetime, time, timedelta",
        "from pathlib import Path",
        "from typing import Any",
        "",
        "import torch",
        "",
    ]
    for module, found in sorted(names.items()):
        if module and module != "__main__":
            lines.append(f"from {module} import {', '.join(sorted(found))}")
    return lines


def _classes(manifests: Sequence[Manifest]) -> list[ClassInfo]:
    merged: dict[str, ClassInfo] = {}
    for manifest in manifests:
        for info in manifest.classes:
            merged.setdefault(info.name, info)
    # Dependencies first: a class's from_dict calls those of the classes its fields hold.
    return sorted(merged.values(), key=lambda c: (c.kind != "enum", c.kind == "dataclass", c.name))


def generate_code(manifests: Sequence[Manifest]) -> str:
    """A Python module with a to_dict/from_dict pair for each class the migrations converted.

    Save ``x_to_dict(obj)`` instead of ``obj`` (in ``get_extra_state()``, ``agent.save``...)
    and rebuild with ``x_from_dict(data)`` on load (in ``set_extra_state()``): the checkpoint
    then holds plain data and loads with ``weights_only=True``.
    """
    classes = _classes(manifests)
    head = [
        '"""Generated by `ckptaudit migrate --emit-code`: save plain data, rebuild on load.',
        "",
        "Call the *_to_dict functions where the objects were saved (get_extra_state(), the",
        "checkpoint dict) and the *_from_dict ones where they are loaded (set_extra_state()).",
        '"""',
        "",
        "# ruff: noqa: F401, E501",
        "from __future__ import annotations",
        "",
    ]
    body = "\n\n".join(class_functions(c) for c in classes)
    if not classes:
        body = "# No class was converted: nothing to change.\n"
    return "\n".join(head + _imports(classes)) + "\n\n\n" + body


def render_recommended_code(manifests: Sequence[Manifest]) -> str:
    """Markdown: for each converted class, what the checkpoint saves today and the code that
    saves plain data instead (for the findings document's recommended changes)."""
    out = ["## Recommended code changes (generated from the checkpoint)", ""]
    for info in _classes(manifests):
        fields = ", ".join(f"{f}: {how}" for f, how in info.fields) or "no fields recorded"
        out.append(f"### `{info.name}` ({info.kind}, {info.count} in the checkpoint)")
        out.append("")
        out.append("Current code saves the object itself:")
        out.append("")
        out.append("```python")
        key = info.example_path.rsplit("[", 1)[-1].strip("]")
        out.append(f"state = {{..., {key}: obj}}  # obj: {_short(info.name)}({fields})")
        out.append("```")
        out.append("")
        out.append("Required code saves plain data and rebuilds the object on load:")
        out.append("")
        out.append("```python")
        out.append(class_functions(info).rstrip())
        out.append("```")
        out.append("")
    return "\n".join(out)
