"""Conversion hints: what to store instead of an object torch's weights_only will not load.

Keyed by global first; where the name is unknown, by the kind the pickle's shape shows.
"""

from __future__ import annotations

from ckptaudit.findings import Kind

__all__ = ["KIND_HINTS", "NEEDS_CONVERSION", "hint_for"]

# ISO text round-trips naive and aware values alike; a timestamp suits aware ones only (a naive
# one's timestamp() assumes the machine's local zone).
_DATETIME = "store dt.isoformat() (or dt.timestamp() if it has a timezone)"
_PATH = "store str(path) and rebuild the Path when loading"
_NUMPY = (
    "store arrays as tensors (torch.from_numpy(a)) and numpy scalars as Python scalars (x.item())"
)

_BY_NAME: dict[str, tuple[Kind, str]] = {
    "datetime.datetime": (Kind.DATETIME, _DATETIME),
    "datetime.date": (Kind.DATETIME, "store d.isoformat() or d.toordinal()"),
    "datetime.time": (Kind.DATETIME, "store t.isoformat()"),
    "datetime.timedelta": (Kind.DATETIME, "store td.total_seconds()"),
    "datetime.timezone": (Kind.DATETIME, "store the UTC offset in seconds, or a tz name"),
    "zoneinfo.ZoneInfo": (Kind.DATETIME, "store the zone key (str(tz)) or a UTC timestamp"),
    "collections.deque": (
        Kind.CONTAINER,
        "store list(d) (and d.maxlen); rebuild with deque(items, maxlen)",
    ),
    "collections.defaultdict": (
        Kind.CONTAINER,
        "store dict(d); rebuild with defaultdict(factory, saved)",
    ),
    "collections.namedtuple": (Kind.CALLABLE, "store the fields as a dict (t._asdict())"),
    "argparse.Namespace": (Kind.NAMESPACE, "store vars(ns) (a dict)"),
    "types.SimpleNamespace": (Kind.NAMESPACE, "store vars(ns) (a dict)"),
    "pathlib.Path": (Kind.PATH, _PATH),
    "pathlib.PosixPath": (Kind.PATH, _PATH),
    "pathlib.WindowsPath": (Kind.PATH, _PATH),
    "pathlib.PurePath": (Kind.PATH, _PATH),
    "pathlib.PurePosixPath": (Kind.PATH, _PATH),
    "pathlib.PureWindowsPath": (Kind.PATH, _PATH),
    "functools.partial": (
        Kind.CALLABLE,
        "store the function's qualified name and its arguments as config; rebuild in code",
    ),
    "builtins.getattr": (
        Kind.CALLABLE,
        "store what getattr fetches as primitives: a timezone-aware datetime as a UTC "
        "timestamp, a function or method as its qualified name",
    ),
    "copyreg._reconstructor": (
        Kind.OBJECT,
        "save with protocol 2 and store the object's fields as a dict",
    ),
    "decimal.Decimal": (Kind.OBJECT, "store str(x)"),
    "fractions.Fraction": (Kind.OBJECT, "store (numerator, denominator)"),
    "uuid.UUID": (Kind.OBJECT, "store str(u)"),
    "re._compile": (Kind.OBJECT, "store the pattern string and flags"),
    "random.Random": (Kind.OBJECT, "store rng.getstate() converted to lists"),
    "builtins.frozenset": (Kind.CONTAINER, "store sorted(list(s))"),
    "builtins.slice": (Kind.OBJECT, "store (start, stop, step)"),
    "builtins.range": (Kind.OBJECT, "store (start, stop, step)"),
    "builtins.list": (Kind.REFERENCE, "store the factory's name as a string"),
    "builtins.dict": (Kind.REFERENCE, "store the factory's name as a string"),
    "builtins.int": (Kind.REFERENCE, "store the type's name as a string"),
    "builtins.float": (Kind.REFERENCE, "store the type's name as a string"),
    "builtins.object": (Kind.REFERENCE, "store the object's fields as a dict"),
    "torch.storage._load_from_bytes": (
        Kind.NESTED_PICKLE,
        "load it once in a trusted environment and re-save tensors with torch.save",
    ),
}

_BY_PREFIX: tuple[tuple[str, Kind, str], ...] = (
    ("numpy.", Kind.NUMPY, _NUMPY),
    ("omegaconf.", Kind.OBJECT, "store OmegaConf.to_container(cfg, resolve=True) (a dict)"),
    ("pathlib.", Kind.PATH, _PATH),
    ("datetime.", Kind.DATETIME, _DATETIME),
)

KIND_HINTS: dict[Kind, str] = {
    Kind.ENUM: "store member.name (or .value) and rebuild with Cls[name]",
    # vars(obj) works for a dataclass and a plain class alike (dataclasses.asdict raises on
    # the latter); the bytes cannot tell the two apart.
    Kind.OBJECT: "store its fields as a dict (vars(obj)); add to_dict()/from_dict() to the class",
    Kind.MODULE: (
        "save module.state_dict() and its constructor config separately; rebuild the module "
        "and load_state_dict on load"
    ),
    Kind.CONTAINER: "store a plain list or dict",
    Kind.REFERENCE: "store the qualified name as a string and resolve it in your code",
    Kind.CALLABLE: "store a name or config instead of a callable",
    Kind.NESTED_PICKLE: "do not load; re-create the checkpoint from trusted objects",
    Kind.UNKNOWN: "manual inspection needed: convert the object to primitives, lists, dicts "
    "and tensors",
}

NEEDS_CONVERSION: dict[str, str] = {
    "builtins.getattr": "allowlisting getattr would let any checkpoint reach any attribute",
    "copyreg._reconstructor": "it calls constructors of arbitrary bases",
}
"""Globals for which allowlisting cannot (or must not) work, with the reason."""


def hint_for(qualified: str | None, kind: Kind) -> tuple[Kind, str]:
    """Return (kind, hint) for a global, falling back to the kind read from the shape."""
    if qualified is not None:
        found = _BY_NAME.get(qualified)
        if found:
            return found
        for prefix, prefix_kind, text in _BY_PREFIX:
            if qualified.startswith(prefix):
                return prefix_kind, text
    return kind, KIND_HINTS.get(kind, KIND_HINTS[Kind.UNKNOWN])
