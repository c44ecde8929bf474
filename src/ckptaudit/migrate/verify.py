"""Verify a written checkpoint before it replaces anything.

Three checks, each of which must pass: the audit of the new file says ``compatible``; every
storage in it holds exactly the bytes copied from the source (CRC-32 of what is on disk,
re-read after fsync, against the CRC of the source bytes taken while copying); and, where torch
is installed, ``torch.load(f, weights_only=True)`` loads it and every value and tensor (dtype,
shape, stride, storage offset, requires_grad, Parameter-ness, which tensors share a storage)
is what the plan says.
"""

from __future__ import annotations

import math
import os
import zlib
from typing import Any

from ckptaudit.audit import audit_source
from ckptaudit.errors import InputError, VerificationFailed
from ckptaudit.findings import Status
from ckptaudit.formats import FileSource, read_container
from ckptaudit.migrate.plan import OutStorage, Plan
from ckptaudit.migrate.storages import locate_storages
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Call, Global, PDict, PersId
from ckptaudit.policy.torch_policy import Policy

__all__ = ["compare_loaded", "torch_available", "verify_zip"]

_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}


def torch_available() -> bool:
    """True when ``import torch`` works here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def verify_zip(
    path: str,
    plan: Plan,
    crcs: dict[str, int],
    *,
    policy: Policy,
    limits: Limits,
    use_torch: bool,
) -> tuple[str, ...]:
    """Run every check on a written torch zip; return what passed.

    Raises:
        VerificationFailed: a check failed (the message says which and how).
    """
    passed: list[str] = []
    source = FileSource(path)
    try:
        report = audit_source(source, policy=policy, limits=limits)
        if report.status is not Status.COMPATIBLE:
            raise VerificationFailed(
                f"the audit of the new file says {report.status.value}: "
                f"{report.predicted_error or report.error}"
            )
        passed.append("audit: compatible")
        try:
            container = read_container(source, limits)
            written = locate_storages(source, container, limits)
        except InputError as exc:
            raise VerificationFailed(f"the new file's storages cannot be read: {exc}") from None
        expected = {s.key: s for s in plan.storages}
        if set(written) != set(expected):
            raise VerificationFailed(
                f"the new file has storages {sorted(written)}, the plan {sorted(expected)}"
            )
        for key, stored in written.items():
            crc = 0
            size = 0
            for chunk in stored.data.chunks():
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
            if size != expected[key].nbytes or crc != crcs.get(key):
                raise VerificationFailed(
                    f"storage data/{key}: {size} bytes with CRC {crc:08x} on disk, "
                    f"{expected[key].nbytes} bytes with CRC {crcs.get(key, 0):08x} in the source"
                )
        passed.append(f"{len(written)} storages byte-identical to the source (CRC-32)")
    finally:
        source.close()
    if use_torch:
        passed.append(_torch_load_check(path, plan))
    return tuple(passed)


def _torch_load_check(path: str, plan: Plan) -> str:
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception as exc:  # torch raises many types; any of them fails the migration
        raise VerificationFailed(
            f"torch.load(weights_only=True) fails on the new file: {type(exc).__name__}: {exc}"
        ) from None
    try:
        problems = compare_loaded(plan.root, loaded)
    finally:
        del loaded
    if problems:
        raise VerificationFailed(
            "torch loads values other than planned: " + "; ".join(problems[:5])
        )
    return (
        f"torch {torch.__version__} loads it with weights_only=True; every value and tensor matches"
    )


def compare_loaded(expected: Any, loaded: Any) -> list[str]:
    """Differences between a planned tree and what torch loaded (empty when they agree)."""
    import torch

    problems: list[str] = []
    seen: set[tuple[int, int]] = set()
    storages: dict[str, int] = {}
    pointers: dict[int, str] = {}
    stack: list[tuple[Any, Any, str]] = [(expected, loaded, "root")]
    while stack and len(problems) < 20:
        exp, got, path = stack.pop()
        key = (id(exp), id(got))
        if key in seen:
            continue
        seen.add(key)
        t = type(exp)
        if exp is None or t in (bool, int, str, bytes, bytearray, complex):
            if type(got) is not t or got != exp:
                problems.append(f"{path}: {got!r:.60} instead of {exp!r:.60}")
        elif t is float:
            if type(got) is not float or not (got == exp or (math.isnan(got) and math.isnan(exp))):
                problems.append(f"{path}: {got!r} instead of {exp!r}")
        elif t in (list, tuple):
            if type(got) is not t or len(got) != len(exp):
                problems.append(f"{path}: {type(got).__name__} instead of {t.__name__}[{len(exp)}]")
            else:
                stack.extend(
                    (e, g, f"{path}[{i}]") for i, (e, g) in enumerate(zip(exp, got, strict=True))
                )
        elif t is PDict:
            _compare_mapping(exp.pairs, got, dict, path, stack, problems)
        elif t is Global:
            continue  # dtypes, layouts and the like: torch resolved an allowed name
        elif t is PersId:
            continue
        elif t is Call:
            name = exp.func.qualified if isinstance(exp.func, Global) else ""
            if name in (
                "torch._utils._rebuild_tensor_v2",
                "torch._utils._rebuild_tensor_v3",
                "torch._utils._rebuild_parameter",
            ):
                _compare_tensor(exp, got, path, storages, pointers, problems, torch)
            elif name == "collections.OrderedDict":
                import collections

                _compare_mapping(
                    exp.setitems or [], got, collections.OrderedDict, path, stack, problems
                )
            elif name == "builtins.set" and (type(got) is not set or len(got) != len(exp.args[0])):
                problems.append(f"{path}: {type(got).__name__} instead of a set")
        else:
            problems.append(f"{path}: cannot compare {t.__name__}")
    return problems


def _compare_mapping(
    pairs: list[tuple[Any, Any]],
    got: Any,
    cls: type,
    path: str,
    stack: list[Any],
    problems: list[str],
) -> None:
    if type(got) is not cls:
        problems.append(f"{path}: {type(got).__name__} instead of {cls.__name__}")
        return
    mapping: Any = got
    if len(mapping) != len({_key(k) for k, _ in pairs}):
        problems.append(f"{path}: {len(mapping)} keys instead of {len(pairs)}")
        return
    literal = {_key(k): (k, v) for k, v in pairs}
    for key, value in mapping.items():
        found = literal.get(_key(key))
        if found is None:
            if not isinstance(key, (str, int, float, bytes, tuple, type(None))):
                continue  # tensors and other objects as keys: compared through their values
            problems.append(f"{path}: unexpected key {key!r:.40}")
            continue
        stack.append((found[1], value, f"{path}[{key!r:.40}]"))


def _key(key: Any) -> Any:
    if isinstance(key, (str, int, float, bytes, type(None))) or type(key) is tuple:
        try:
            hash(key)
            return key
        except TypeError:
            return id(key)
    return id(key)


def _compare_tensor(
    exp: Call,
    got: Any,
    path: str,
    storages: dict[str, int],
    pointers: dict[int, str],
    problems: list[str],
    torch: Any,
) -> None:
    parameter = exp.func.qualified == "torch._utils._rebuild_parameter"
    inner = exp.args[0] if parameter else exp
    args = inner.args
    if not isinstance(got, torch.Tensor):
        problems.append(f"{path}: {type(got).__name__} instead of a tensor")
        return
    if parameter != isinstance(got, torch.nn.Parameter):
        problems.append(f"{path}: Parameter-ness changed")
    pid = args[0].pid
    storage_type = pid[1].name
    dtype = _STORAGE_DTYPES.get(storage_type)
    if exp.func.qualified.endswith("_v3") or (
        not parameter and len(args) > 6 and isinstance(args[6], Global)
    ):
        dtype = args[6].name
    if parameter and inner.func.qualified.endswith("_v3"):
        dtype = inner.args[6].name
    requires_grad = exp.args[1] if parameter else args[4]
    checks = [
        ("dtype", str(got.dtype).replace("torch.", ""), dtype),
        ("shape", tuple(got.shape), tuple(args[2])),
        ("stride", tuple(got.stride()), tuple(args[3])),
        ("storage offset", got.storage_offset(), args[1]),
        ("requires_grad", got.requires_grad, bool(requires_grad)),
    ]
    for what, have, want in checks:
        if want is not None and have != want:
            problems.append(f"{path}: {what} {have} instead of {want}")
    pointer = got.untyped_storage().data_ptr()
    key = pid[2]
    shared_differently = (
        storages.setdefault(key, pointer) != pointer or pointers.setdefault(pointer, key) != key
    )
    if shared_differently and got.untyped_storage().nbytes():
        problems.append(f"{path}: storage sharing differs from the source")


def fsync_dir(path: str) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def storage_crcs(storages: list[OutStorage]) -> dict[str, int]:
    """CRC-32 per storage key, reading the source (used by dry runs of the verifier)."""
    out: dict[str, int] = {}
    for storage in storages:
        crc = 0
        for chunk in storage.data.chunks():
            crc = zlib.crc32(chunk, crc)
        out[storage.key] = crc
    return out
