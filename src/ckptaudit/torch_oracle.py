"""Ask the installed torch what it says about a checkpoint, without reading its tensors.

``--torch-check`` quotes torch's exact error. torch gets the checkpoint's pickle and nothing
else: ckptaudit's own container readers take ``data.pkl`` (or a legacy file's pickles) out
of the file, never a storage, and hand torch a stand-in container that holds that pickle, the
version record and an empty record for each storage. ``torch.load(..., weights_only=True,
map_location="meta")`` then runs torch's weights_only unpickler over the real pickle; each
persistent id is answered with a ``meta`` storage of the declared size, which allocates and
reads nothing. So a 400 MB checkpoint costs its pickle, and the message is torch's own,
from its own code (``torch.load`` wraps the unpickler's error the same way for every file).

Globals the user allowlists (``--allow``) are allowlisted in torch for the check only
(``torch.serialization.safe_globals``), as stand-in classes under their names: nothing named
in the file, or on the command line, is imported.

The audit core never imports this module; nothing here passes ``weights_only=False``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ckptaudit.errors import InputError
from ckptaudit.findings import ContainerFormat
from ckptaudit.formats import Container, FileSource, Source, read_container
from ckptaudit.formats.remote import is_url
from ckptaudit.formats.ziparchive import ZipArchive, ZipEntry
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits

__all__ = ["TorchCheck", "torch_available", "torch_check", "torch_version"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The legacy format's fifth pickle lists the storages to read after the object pickle; an
# empty list makes torch read none.
_NO_STORAGE_KEYS = pickle.dumps([], protocol=2)


@dataclass(frozen=True, kw_only=True)
class TorchCheck:
    """What the installed torch's weights_only loader says about one file's pickle."""

    torch_version: str
    """The torch that was asked."""
    ran: bool
    """False when torch was not asked (see :attr:`note`): the prediction stands."""
    error: str | None = None
    """torch's error, ``Type: message``, exactly as ``torch.load`` raises it; None when the
    pickle loads (or the check did not run)."""
    note: str | None = None
    """Why the check did not run, for a person."""


def torch_available() -> bool:
    """True when torch can be imported (and CKPTAUDIT_NO_TORCH is not set)."""
    if os.environ.get("CKPTAUDIT_NO_TORCH"):
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_version() -> str | None:
    """The installed torch's version, or None."""
    if not torch_available():
        return None
    import torch

    return str(torch.__version__).split("+")[0]


def torch_check(
    path: str, *, allow: Iterable[str] = (), limits: Limits | None = None
) -> TorchCheck:
    """Run torch's weights_only unpickler over a file's pickle, storages answered by stand-ins.

    Args:
        path: a local file or a URL (read by ranged requests, like the audit).
        allow: globals (``module.name``) to allowlist for this check, like
            ``torch.serialization.safe_globals``; stand-ins, never imported.
        limits: resource limits for reading the container.

    Returns:
        torch's verdict: its exact error, or None when the pickle loads. ``ran`` is False
        when the format has no pickle torch would read, or the container fails before any
        pickle is read (the audit's predicted error then stands).

    Raises:
        RuntimeError: torch is not available.
    """
    version = torch_version()
    if version is None:
        raise RuntimeError("torch is not available")
    limits = limits or DEFAULT_LIMITS
    try:
        source = _open(path)
    except (OSError, InputError) as exc:
        return TorchCheck(torch_version=version, ran=False, note=f"unreadable: {exc}")
    try:
        try:
            container = read_container(source, limits)
            stand_in = _stand_in_file(source, container, limits)
        except InputError as exc:
            return TorchCheck(torch_version=version, ran=False, note=f"unreadable: {exc}")
    finally:
        source.close()
    if isinstance(stand_in, str):
        return TorchCheck(torch_version=version, ran=False, note=stand_in)
    try:
        error = _load(stand_in, allow)
    except NotImplementedError as exc:
        # A quantized or nested tensor: torch has no meta kernel to rebuild it on a stand-in
        # storage, and reading its real storage is what the check must not do.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TorchCheck(
            torch_version=version,
            ran=False,
            note="torch cannot rebuild one of its tensors without the tensor's data "
            f"({first[:120]})",
        )
    return TorchCheck(torch_version=version, ran=True, error=error)


def _open(path: str) -> Source:
    if is_url(path):
        from ckptaudit.formats.remote import RemoteSource

        return RemoteSource(path)
    return FileSource(path)


def _stand_in_file(source: Source, container: Container, limits: Limits) -> bytes | str:
    """The bytes torch is given (the pickle in a container without storages), or why none."""
    failing = [i for i in container.issues if i.torch_error]
    if failing:
        return f"torch fails on the container before the pickle: {failing[0].message}"
    read = [u for u in container.units if u.torch_reads]
    if any(not u.result.complete for u in read):
        return "a pickle torch reads is damaged"
    match container.format:
        case ContainerFormat.TORCH_ZIP | ContainerFormat.TORCHSCRIPT:
            return _mini_zip(source, container, limits)
        case ContainerFormat.TORCH_LEGACY:
            # The magic number, protocol, sys_info and object pickles as they are, then no
            # storage keys: torch reads no storage.
            return source.read_at(0, read[3].result.end) + _NO_STORAGE_KEYS
        case ContainerFormat.PICKLE:
            # torch reads the first pickle as a legacy file's magic number, then stops.
            return source.read_at(0, read[0].result.end)
        case (
            ContainerFormat.TORCH_TAR
            | ContainerFormat.SAFETENSORS
            | ContainerFormat.ZIP
            | ContainerFormat.UNKNOWN
        ):
            return f"a {container.format} file: torch decides it by its format, not a pickle"


def _mini_zip(source: Source, container: Container, limits: Limits) -> bytes | str:
    """A torch zip with the file's data.pkl and version, and an empty record per storage."""
    archive = ZipArchive(source, limits)
    top = archive.entries[0].name.split("\x00", 1)[0].split("/", 1)[0]

    def last(record: str) -> ZipEntry | None:
        # torch's zip reader looks names up ignoring case and finds the last duplicate.
        wanted = f"{top}/{record}".lower()
        found = [e for e in archive.entries if e.name.split("\x00", 1)[0].lower() == wanted]
        return found[-1] if found else None

    data = last("data.pkl")
    if data is None:
        return "the archive has no data.pkl"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as mini:
        mini.writestr(f"{top}/data.pkl", archive.read(data))
        for record in ("version", ".data/version"):
            entry = last(record)
            if entry is not None:
                mini.writestr(f"{top}/{record}", archive.read(entry, max_size=1 << 16))
        if container.format is ContainerFormat.TORCHSCRIPT:
            mini.writestr(f"{top}/constants.pkl", b"")
        for key in sorted(container.storage_records or {}):
            mini.writestr(f"{top}/data/{key}", b"")
    return out.getvalue()


def _stand_in_class(name: str) -> type:
    """A class that torch's unpickler can construct, call and build, named ``name``."""
    module, _, qualname = name.rpartition(".")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Accepts what the real class would be given; keeps nothing (nothing is inspected).
        pass

    return type(
        qualname.rsplit(".", 1)[-1],
        (),
        {"__module__": module, "__qualname__": qualname, "__init__": __init__},
    )


def _load(data: bytes, allow: Iterable[str]) -> str | None:
    import torch

    stand_ins: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (_stand_in_class(name), name) for name in sorted(set(allow))
    ]
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(stand_ins):
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(data), weights_only=True, map_location="meta")
    except NotImplementedError:
        raise  # the stand-in's limit, not torch's verdict (see torch_check)
    except Exception as exc:  # torch raises many types; all mean "does not load"
        # torch bolds part of its message with terminal escapes; reports want plain text.
        return f"{type(exc).__name__}: {_ANSI.sub('', str(exc))}"
    return None
