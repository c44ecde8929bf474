"""torch's legacy (non-zip) format: five pickles, then raw storages.

torch runs all five through the weights_only unpickler: magic number, protocol version,
sys_info, the object, the storage keys. Only the bytes up to the end of the fifth pickle
are read, growing the read window until the pickles parse: never the storages.
"""

from __future__ import annotations

from ckptaudit.checks import PickleUnit, brief
from ckptaudit.formats.container import Container, ContainerIssue
from ckptaudit.formats.detect import LEGACY_MAGIC
from ckptaudit.formats.source import Source
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.vm import PickleResult, run_pickle

__all__ = ["read_legacy", "read_pickle_sequence"]

_PARTS = ("magic number", "protocol version", "sys_info", "object", "storage keys")
_PROTOCOL_VERSION = 1001


def read_pickle_sequence(source: Source, limits: Limits, count: int) -> list[PickleResult]:
    """Run up to ``count`` consecutive pickles from the start of the file.

    The window read from the file doubles until the pickles parse or the file ends, so a
    small object pickle in front of gigabytes of storages costs a small read.
    """
    window = min(source.size, 1 << 20)
    limit = min(source.size, limits.max_pickle_bytes)
    while True:
        data = source.read_at(0, window)
        results: list[PickleResult] = []
        pos = 0
        truncated = False
        for _ in range(count):
            result = run_pickle(data, pos)
            results.append(result)
            if not result.complete:
                truncated = result.error is not None and "truncated" in str(result.error)
                break
            pos = result.end
        if not truncated or window >= limit:
            return results
        window = min(limit, window * 4)


def read_legacy(source: Source, limits: Limits) -> Container:
    """Read a legacy-format checkpoint's five pickles."""
    container = Container(format="torch-legacy")
    results = read_pickle_sequence(source, limits, len(_PARTS))
    for n, result in enumerate(results):
        container.units.append(PickleUnit(_PARTS[n], result, torch_reads=True, order=n))
    if results and results[0].complete and results[0].root != LEGACY_MAGIC:
        container.issues.append(
            ContainerIssue(
                "malformed",
                "bad legacy magic number",
                torch_error="Invalid magic number; corrupt file?",
            )
        )
    if len(results) > 1 and results[1].complete and results[1].root != _PROTOCOL_VERSION:
        container.issues.append(
            ContainerIssue(
                "malformed",
                f"unsupported legacy protocol version {brief(results[1].root)}",
                torch_error=f"Invalid protocol version: {brief(results[1].root)}",
            )
        )
    return container
