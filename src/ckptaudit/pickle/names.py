"""How loaders resolve the Python 2 names old pickles carry (``__builtin__.long``).

torch's weights_only unpickler maps every GLOBAL through ``torch._utils.NAME_MAPPING`` and
``IMPORT_MAPPING`` before it looks the name up; CPython's unpickler applies the same entries
(they are a subset of its ``_compat_pickle`` tables) to protocol 0-2 pickles. The emulator
names each global as a loader resolves it, so every later judgement (torch's allowlist, the
danger catalog, runtime types) reads one name. The tables are facts of torch, checked
against the installed torch and every release's table by the tests.
"""

from __future__ import annotations

__all__ = ["IMPORT_MAPPING", "NAME_MAPPING", "resolve"]

NAME_MAPPING: dict[tuple[str, str], tuple[str, str]] = {
    ("UserDict", "IterableUserDict"): ("collections", "UserDict"),
    ("UserDict", "UserDict"): ("collections", "UserDict"),
    ("UserList", "UserList"): ("collections", "UserList"),
    ("UserString", "UserString"): ("collections", "UserString"),
    ("__builtin__", "basestring"): ("builtins", "str"),
    ("__builtin__", "intern"): ("sys", "intern"),
    ("__builtin__", "long"): ("builtins", "int"),
    ("__builtin__", "reduce"): ("functools", "reduce"),
    ("__builtin__", "unichr"): ("builtins", "chr"),
    ("__builtin__", "unicode"): ("builtins", "str"),
    ("__builtin__", "xrange"): ("builtins", "range"),
    ("exceptions", "StandardError"): ("builtins", "Exception"),
    ("itertools", "ifilter"): ("builtins", "filter"),
    ("itertools", "ifilterfalse"): ("itertools", "filterfalse"),
    ("itertools", "imap"): ("builtins", "map"),
    ("itertools", "izip"): ("builtins", "zip"),
    ("itertools", "izip_longest"): ("itertools", "zip_longest"),
}
"""(module, name) pairs renamed whole."""

IMPORT_MAPPING: dict[str, str] = {
    "Queue": "queue",
    "StringIO": "io",
    "UserDict": "collections",
    "UserList": "collections",
    "UserString": "collections",
    "__builtin__": "builtins",
    "_abcoll": "collections.abc",
    "cStringIO": "io",
    "copy_reg": "copyreg",
    "repr": "reprlib",
    "whichdb": "dbm",
}
"""Modules renamed, for every name in them not in :data:`NAME_MAPPING`."""


def resolve(module: str, name: str) -> tuple[str, str]:
    """The (module, name) a loader imports for a global written as (module, name)."""
    mapped = NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return IMPORT_MAPPING.get(module, module), name
