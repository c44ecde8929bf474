"""Object paths in an inert tree: ``root['model']['slots.mid._extra_state'].stage``.

The walk is iterative (no recursion limit) and visits every object once (memo sharing stays
shared: a DAG that would explode as a tree is walked in linear time). An object's path is the
first one reached in document order.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from ckptaudit.pickle import native
from ckptaudit.pickle.nodes import Call, Global, PDict, PSet

__all__ = ["ROOT", "Located", "locate", "render_key", "render_steps"]

ROOT = "root"

# A path is kept as a chain (parent, segment) and rendered only when it is wanted.
_Chain = tuple[Any, str] | None

Located = tuple[dict[Hashable, list[str]], dict[Hashable, int], set[int]]
"""What a walk finds: paths per group, occurrence counts per group, ids of wanted nodes reached."""

_LEAF_CALLS = frozenset({"_codecs.encode"})


def render_key(key: Any) -> str:
    """Render a dict key as a path segment: ``['name']``, ``[3]``, ``[<SeedStage>]``."""
    if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 256:
        return f"[<int of {key.bit_length()} bits>]"
    if key is None or isinstance(key, (str, bytes, int, float, bool)):
        text = repr(key[:80] if isinstance(key, (str, bytes)) else key)
        if len(text) > 80:
            text = text[:77] + "..."
        return f"[{text}]"
    if isinstance(key, Call) and isinstance(key.func, Global):
        return f"[<{key.func.name}>]"
    if isinstance(key, tuple):
        return f"[<tuple of {len(key)}>]"
    return f"[<{type(key).__name__}>]"


def _attribute_segment(key: Any) -> str:
    """The step to a field of BUILD state: ``.name``, or ``['not an identifier']``."""
    return f".{key}" if isinstance(key, str) and key.isidentifier() else render_key(key)


def _render(chain: _Chain) -> str:
    parts: list[str] = []
    while chain is not None:
        chain, segment = chain
        parts.append(segment)
    parts.append(ROOT)
    return "".join(reversed(parts))


def _state_children(state: Any) -> list[tuple[Any, str]]:
    """Children of BUILD state: attributes for dict state, slots too for (dict, slots)."""
    if type(state) is PDict:
        return [(v, _attribute_segment(k)) for k, v in state.pairs]
    if (
        type(state) is tuple
        and len(state) == 2
        and (state[0] is None or type(state[0]) is PDict)
        and type(state[1]) is PDict
    ):
        first = _state_children(state[0]) if state[0] is not None else []
        return first + _state_children(state[1])
    return [(state, ".__setstate__()")]


def _children(node: Any) -> list[tuple[Any, str]]:
    t = type(node)
    if t is list or t is tuple:
        return [(v, f"[{i}]") for i, v in enumerate(node)]
    if t is PDict:
        out: list[tuple[Any, str]] = []
        for i, (k, v) in enumerate(node.pairs):
            if not _is_primitive(k):
                out.append((k, f".keys()[{i}]"))
            out.append((v, render_key(k)))
        return out
    if t is PSet:
        return [(v, f"[{i}]") for i, v in enumerate(node.items)]
    if t is Call:
        func = node.func
        if isinstance(func, Global) and func.qualified in _LEAF_CALLS:
            return []
        out = []
        if not isinstance(func, Global):
            out.append((func, ".__call__"))
        args = node.args
        if type(args) is tuple:
            out.extend((v, f"(arg {i})") for i, v in enumerate(args))
        elif args is not None:
            out.append((args, "(args)"))
        if type(node.kwargs) is PDict:
            out.extend((v, f"(arg {k})") for k, v in node.kwargs.pairs)
        if node.builds:
            out.extend(_state_children(node.state))
        if node.items:
            out.extend((v, f"[{i}]") for i, v in enumerate(node.items))
        if node.setitems:
            for i, (k, v) in enumerate(node.setitems):
                if not _is_primitive(k):
                    out.append((k, f".keys()[{i}]"))
                out.append((v, render_key(k)))
        return out
    return []


def _is_primitive(value: Any) -> bool:
    return value is None or type(value) in (str, int, float, bool, bytes, bytearray, complex)


_PRIMITIVE_TYPES = frozenset({str, int, float, bool, bytes, bytearray, complex, type(None)})


# Kinds of path step the compiled walker records, rendered by render_steps.
(
    _ITEM,
    _DICT_KEY,
    _DICT_VALUE,
    _FIELD,
    _ARG,
    _ARGS,
    _KWARG,
    _CALL,
    _SETSTATE,
    _SETITEM_VALUE,
) = range(10)


def _segment(kind: int, where: Any, index: int) -> str:
    """The text of one step, exactly as the Python walker writes it."""
    if kind == _ITEM:
        return f"[{index}]"
    if kind == _DICT_KEY:
        return f".keys()[{index}]"
    # A dict's keys and values alternate in its flat list (PDict.flat); a Call's setitems
    # are (key, value) tuples.
    if kind == _DICT_VALUE:
        return render_key(where[2 * index])
    if kind == _SETITEM_VALUE:
        return render_key(where[index][0])
    if kind == _FIELD:
        return _attribute_segment(where[2 * index])
    if kind == _ARG:
        return f"(arg {index})"
    if kind == _ARGS:
        return "(args)"
    if kind == _KWARG:
        return f"(arg {where[2 * index]})"
    if kind == _CALL:
        return ".__call__"
    if kind == _SETSTATE:
        return ".__setstate__()"
    raise ValueError(f"unknown path step kind {kind}")


def render_steps(steps: Sequence[tuple[int, Any, int]]) -> str:
    """Render a path given as (kind, container, index) steps from the root."""
    return ROOT + "".join(_segment(kind, where, index) for kind, where, index in steps)


def _configure_compiled() -> Callable[[Any, dict[int, Sequence[Hashable]], int], Located]:
    """Register the node classes and the renderer with the compiled walker; return it."""
    from ckptaudit.pickle import _native  # typed by _native.pyi

    _native.configure_walker(
        call_type=Call,
        pdict_type=PDict,
        global_type=Global,
        pset_type=PSet,
        render_steps=render_steps,
        leaf_calls=_LEAF_CALLS,
    )
    return _native.locate


_compiled = native.configured("walker", _configure_compiled)


def locate(root: Any, wanted: Mapping[int, Sequence[Hashable]], max_paths: int) -> Located:
    """Find every place where wanted objects sit in the tree.

    A shared object (memo reference) is an occurrence at each place it is referenced, but
    its contents are walked once: the work is linear in the references, never in the paths
    of the tree the references would unfold into.

    Args:
        root: the tree's root (what STOP returned).
        wanted: ``id(node)`` -> the groups (findings) it belongs to.
        max_paths: paths rendered per group; further occurrences are only counted.

    Returns:
        (paths per group in document order, occurrence counts per group, ids of wanted
        objects reachable from root).
    """
    if _compiled is not None:
        return _compiled(root, wanted if type(wanted) is dict else dict(wanted), max_paths)
    return _locate_python(root, wanted, max_paths)


def _locate_python(
    root: Any, wanted: Mapping[int, Sequence[Hashable]], max_paths: int
) -> Located:
    """The reference walker, transcribed by ``_walker.c``; keep the two in step."""
    paths: dict[Hashable, list[str]] = {}
    counts: dict[Hashable, int] = {}
    reached: set[int] = set()
    prims = _PRIMITIVE_TYPES
    if type(root) in prims:
        return paths, counts, reached
    seen: set[int] = set()
    stack: list[tuple[Any, _Chain]] = [(root, None)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, chain = pop()
        key = id(node)
        if key in wanted:
            reached.add(key)
            rendered = None
            for group in wanted[key]:
                counts[group] = counts.get(group, 0) + 1
                bucket = paths.setdefault(group, [])
                if len(bucket) < max_paths:
                    rendered = rendered or _render(chain)
                    bucket.append(rendered)
        if key in seen:
            continue
        t = type(node)
        if ((t is list or t is tuple) and not node) or (t is PDict and not node.flat):
            continue  # nothing below: not worth a seen entry (the compiled walker never pushes it)
        seen.add(key)
        # Children are pushed in reverse so that they pop in document order.
        if t is list or t is tuple:
            for i in range(len(node) - 1, -1, -1):
                child = node[i]
                if type(child) not in prims and (id(child) not in seen or id(child) in wanted):
                    push((child, (chain, f"[{i}]")))
        elif t is PDict:
            flat = node.flat
            for i in range(len(flat) // 2 - 1, -1, -1):
                k = flat[2 * i]
                v = flat[2 * i + 1]
                if type(v) not in prims and (id(v) not in seen or id(v) in wanted):
                    push((v, (chain, render_key(k))))
                if type(k) not in prims:
                    push((k, (chain, f".keys()[{i}]")))
        elif (
            t is Call
            and type(node.func) is Global
            and type(node.state) is PDict
            and type(node.args) is tuple
            and node.kwargs is None
            and not node.items
            and not node.setitems
        ):
            # The commonest object: a class, arguments and a dict of fields. Build segments
            # only for fields that can hold something (most fields are numbers and strings).
            flat = node.state.flat
            for i in range(len(flat) // 2 - 1, -1, -1):
                k = flat[2 * i]
                v = flat[2 * i + 1]
                if type(v) not in prims and (id(v) not in seen or id(v) in wanted):
                    push((v, (chain, _attribute_segment(k))))
            args = node.args
            for i in range(len(args) - 1, -1, -1):
                child = args[i]
                if type(child) not in prims and (id(child) not in seen or id(child) in wanted):
                    push((child, (chain, f"(arg {i})")))
        elif t is Call or t is PSet:
            for child, segment in reversed(_children(node)):
                if type(child) not in prims and (id(child) not in seen or id(child) in wanted):
                    push((child, (chain, segment)))
    return paths, counts, reached
