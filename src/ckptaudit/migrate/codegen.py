"""Code that keeps a checkpoint fixed: ``to_dict``/``from_dict`` per converted class.

Generated from the fields the checkpoint actually holds and how each was converted (an Enum
field stores ``.value`` and is rebuilt with ``Cls(value)``, a datetime stores ISO text, a
deque a list...), so the user's code saves plain data from now on and rebuilds the objects on
load. :func:`generate_code` writes a module (``--emit-code FILE``);
:func:`render_recommended_code` the findings document's section: for each place that saves
objects (a ``get_extra_state()``, a dict of the checkpoint), the current code as the
checkpoint shows it beside the required code, then the ``to_dict``/``from_dict`` methods the
classes need (for the CLI to hand to ``report/markdown.py``).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ckptaudit.migrate.manifest import ClassInfo, Conversion, Manifest

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
    # As pickle rebuilds it (the bytes cannot tell a dataclass from a plain class, and this
    # is right for both): a bare instance, then its fields.
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
    return sorted(merged.values(), key=lambda c: (c.kind != "enum", c.kind == "object", c.name))


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


_MAX_PLACES = 12  # sections of "where the objects are saved"; the rest is summarised


def _segments(path: str) -> list[str]:
    """Split ``root['a'][0].b`` into ``["root", "['a']", "[0]", ".b"]`` (quotes respected)."""
    out: list[str] = []
    i = 0
    while i < len(path):
        if path[i] == "[":
            j = i + 1
            quote = path[j] if j < len(path) and path[j] in "'\"" else None
            if quote:
                j += 1
                while j < len(path) and path[j] != quote:
                    j += 2 if path[j] == "\\" else 1
                j += 1
            while j < len(path) and path[j] != "]":
                j += 1
            out.append(path[i : j + 1])
            i = j + 1
        else:
            j = i + 1
            while j < len(path) and path[j] not in "[.":
                j += 1
            out.append(path[i:j])
            i = j
    return out


def _str_key(segment: str) -> str | None:
    """The key of a ``['name']`` segment, or None for any other segment."""
    if not (segment.startswith("[") and segment.endswith("]")):
        return None
    try:
        key = ast.literal_eval(segment[1:-1])
    except (ValueError, SyntaxError):
        return None
    return key if isinstance(key, str) else None


def _user_class(qualified: str) -> bool:
    """Code of the user's project, where methods can be added (not stdlib, torch, numpy)."""
    top = qualified.split(".", 1)[0]
    return top not in sys.stdlib_module_names and top not in ("torch", "numpy", "builtins")


@dataclass(frozen=True)
class _Field:
    """One object saved directly under a key of a dict, and how to save it instead."""

    key: str
    conversion: Conversion

    @property
    def short(self) -> str:
        return _short(self.conversion.original)


def _attribute_values(c: Conversion) -> list[tuple[str, str]]:
    """(name, value) of the ``attribute name=value`` entries a conversion dropped."""
    found = []
    for item in c.dropped:
        if item.startswith("attribute ") and "=" in item:
            name, _, value = item[len("attribute ") :].partition("=")
            found.append((name, value))
    return found


def _maxlen(c: Conversion) -> str:
    for item in c.dropped:
        if item.startswith("maxlen="):
            return item[len("maxlen=") :]
    return "None"


def _tensor_count(c: Conversion) -> int:
    match = re.search(r"\((\d+) tensors?\)", c.became)
    return int(match.group(1)) if match else 0


def _field_code(f: _Field, ref: str, state: str) -> tuple[list[str], list[str]]:
    """(lines of the required dict entries, lines that rebuild the object from ``state``)."""
    c, key, cls = f.conversion, f.key, f.short
    got = f"{state}[{key!r}]"
    original = c.original
    if c.kind == "enum":
        return [f"{key!r}: {ref}.value,"], [f"{ref} = {cls}({got})"]
    if c.kind == "nn.Module":
        config_key = f"{key}_config"
        config = {n: v for n, v in _attribute_values(c)}
        if _user_class(original):
            save = [f"{config_key!r}: {ref}.to_config(),"]
            load = [f"{ref} = {cls}.from_config({state}[{config_key!r}])"]
        else:
            args = ", ".join(f"{n}={v}" for n, v in config.items())
            save = []
            load = [f"{ref} = {cls}({args})  # the values this checkpoint holds"]
        if _tensor_count(c) or not _user_class(original):
            save.append(f"{key!r}: {ref}.state_dict(),")
            load.append(f"{ref}.load_state_dict({got})")
        return save, load
    if c.kind == "object" and _user_class(original):
        return [f"{key!r}: {ref}.to_dict(),"], [f"{ref} = {cls}.from_dict({got})"]
    if c.kind == "namespace":
        return [f"{key!r}: vars({ref}),"], [f"{ref} = {cls}(**{got})"]
    if original in ("datetime.datetime", "datetime.date", "datetime.time"):
        # ISO text keeps a naive value naive and an aware one aware, to the microsecond.
        return [f"{key!r}: {ref}.isoformat(),"], [f"{ref} = {cls}.fromisoformat({got})"]
    if original == "datetime.timedelta":
        return [f"{key!r}: {ref}.total_seconds(),"], [f"{ref} = timedelta(seconds={got})"]
    if original == "collections.deque":
        return [f"{key!r}: list({ref}),"], [f"{ref} = deque({got}, maxlen={_maxlen(c)})"]
    if original == "collections.defaultdict":
        return (
            [f"{key!r}: dict({ref}),"],
            [f"{ref} = defaultdict(list, {got})  # use the original default factory"],
        )
    if original.startswith(("pathlib.", "pathlib._local.")):
        return [f"{key!r}: str({ref}),"], [f"{ref} = Path({got})"]
    return [f"{key!r}: {ref},  # store it as: {c.became}"], [f"{ref} = {got}  # rebuild it"]


def _place_code(parent: str, fields: list[_Field], files: list[str]) -> str:
    """Markdown: the code that saves one dict today, and the code that should save it."""
    last = _segments(parent)[-1]
    key = _str_key(last)
    extra = key is not None and key.endswith("._extra_state")
    where = ", ".join(f"`{name}`" for name in files)
    if extra and key is not None:
        module = key[: -len("._extra_state")]
        title = f"`get_extra_state()` of `{module}` (`{parent}` in {where})"
        ref = "self.{}"
        current = ["def get_extra_state(self):", "    return {"]
        current += [
            f"        {f.key!r}: self.{f.key},  # {f.short} ({f.conversion.kind})"
            for f in fields
        ]
        current += ["        ...  # the other keys hold plain data already", "    }"]
    else:
        title = f"the dict saved at `{parent}` (in {where})"
        ref = "{}"
        current = ["{"]
        current += [f"    {f.key!r}: {f.key},  # {f.short} ({f.conversion.kind})" for f in fields]
        current += ["    ...  # the other keys hold plain data already", "}"]
    saves: list[str] = []
    loads: list[str] = []
    for f in fields:
        name = f.key if f.key.isidentifier() else "value"
        save, load = _field_code(f, ref.format(name), "state")
        saves += save
        loads += load
    if extra:
        required = ["def get_extra_state(self):", "    return {"]
        required += [f"        {line}" for line in saves]
        required += ["        ...  # the other keys as before", "    }", ""]
        required += ["def set_extra_state(self, state):"]
        required += [f"    {line}" for line in loads]
        required += ["    ...  # the other keys as before"]
    else:
        required = ["{"] + [f"    {line}" for line in saves] + ["    ...", "}", ""]
        required += ["# on load, with state the dict above:", *loads]
    return "\n".join(
        [
            f"#### {title}",
            "",
            "Current code (as the checkpoint shows it):",
            "",
            "```python",
            *current,
            "```",
            "",
            "Required code (names of attributes and variables are taken from the keys):",
            "",
            "```python",
            *required,
            "```",
            "",
        ]
    )


def _method_save(how: str, ref: str) -> str:
    if how.startswith("object:") and _user_class(how[len("object:") :]):
        return f"{ref}.to_dict()"
    if how.startswith("module:") and _user_class(how[len("module:") :]):
        return f"{ref}.to_config()"
    return _save_expr(how, ref)


def _method_load(how: str, ref: str) -> str:
    if how.startswith("object:") and _user_class(how[len("object:") :]):
        return f"{_short(how[len('object:') :])}.from_dict({ref})"
    deque = _DEQUE.match(how)
    if deque and deque.group(2):
        inner = _method_load(deque.group(2), "item")
        return f"deque(({inner} for item in {ref}), maxlen={deque.group(1) or 'None'})"
    return _load_expr(how, ref)[0]


def class_methods(info: ClassInfo) -> str | None:
    """The methods to add to a class of the user's code (None when it needs none)."""
    name = _short(info.name)
    if not _user_class(info.name) or info.kind in ("enum", "namedtuple"):
        return None
    where = f"# {info.name}: {info.count} in the checkpoint, first at {info.example_path}"
    if info.kind == "nn.Module":
        config = ", ".join(f'"{f}": self.{f}' for f, how in info.fields if how == "plain")
        return "\n".join(
            [
                where,
                f"class {name}(nn.Module):",
                "    def to_config(self) -> dict[str, Any]:",
                f"        return {{{config}}}",
                "",
                "    @classmethod",
                f"    def from_config(cls, config: dict[str, Any]) -> {name}:",
                "        # The attributes the checkpoint holds, as the constructor's arguments.",
                "        return cls(**config)",
            ]
        )
    saves = [f'            "{f}": {_method_save(how, "self." + f)},' for f, how in info.fields]
    loads = [f"            {f}={_method_load(how, f'data[{f!r}]')}," for f, how in info.fields]
    return "\n".join(
        [
            where,
            f"class {name}:",
            "    def to_dict(self) -> dict[str, Any]:",
            "        return {",
            *saves,
            "        }",
            "",
            "    @classmethod",
            f"    def from_dict(cls, data: dict[str, Any]) -> {name}:",
            "        # As pickle rebuilds it: right for a dataclass and a plain class alike.",
            "        obj = cls.__new__(cls)",
            "        obj.__dict__.update(",
            *loads,
            "        )",
            "        return obj",
        ]
    )


_Place = tuple[str, tuple[tuple[str, str], ...]]


def _places(manifests: Sequence[Manifest]) -> dict[_Place, tuple[list[_Field], list[str]]]:
    """Dicts that directly hold converted objects, with those objects and the files they are
    in (the objects inside converted objects are the business of their class's methods).
    The same dict with the same objects in several files is one place."""
    places: dict[_Place, tuple[list[_Field], list[str]]] = {}
    for manifest in manifests:
        converted = {c.path for c in manifest.conversions}
        mine: dict[str, list[_Field]] = {}
        for c in manifest.conversions:
            segments = _segments(c.path)
            key = _str_key(segments[-1]) if len(segments) > 1 else None
            if key is None:
                continue
            prefixes = ("".join(segments[:n]) for n in range(1, len(segments)))
            if any(p in converted for p in prefixes):
                continue
            fields = mine.setdefault("".join(segments[:-1]), [])
            if all(f.key != key for f in fields):
                fields.append(_Field(key, c))
        name = manifest.source.replace("\\", "/").rsplit("/", 1)[-1]
        for parent, fields in mine.items():
            place = (parent, tuple((f.key, f.conversion.original) for f in fields))
            places.setdefault(place, (fields, []))[1].append(name)
    return places


def render_recommended_code(manifests: Sequence[Manifest]) -> str:
    """Markdown: where each checkpoint saves objects, the current code beside the required
    code, and the ``to_dict``/``from_dict`` methods its classes need, all generated from the
    objects and fields the checkpoints hold (for the findings document)."""
    out = [
        "## Recommended code changes",
        "",
        "Generated from what the checkpoints hold: save plain data, rebuild the objects on load "
        "(`ckptaudit migrate --emit-code FILE` writes the same conversions as functions).",
        "",
    ]
    places = _places(manifests)
    if places:
        out += ["### Where the objects are saved", ""]
        for (parent, _), (fields, files) in list(places.items())[:_MAX_PLACES]:
            out.append(_place_code(parent, fields, files))
        if len(places) > _MAX_PLACES:
            out += [f"... and {len(places) - _MAX_PLACES} more places (see the manifests).", ""]
    methods = [m for info in _classes(manifests) if (m := class_methods(info)) is not None]
    if methods:
        out += ["### Methods the classes need", "", "```python"]
        out.append("\n\n\n".join(methods))
        out += ["```", ""]
    if not places and not methods:
        return ""
    return "\n".join(out)
