"""Container format rules (CKA101-CKA106): what torch.load decides before it reads a pickle.

torch.load dispatches on a file's first bytes and on its name: a zip that starts with a local
header is read as torch.save's zip format (or refused as TorchScript), anything else is tried
as a tar, then as the legacy format; a path ending in ``.safetensors`` goes to safetensors
whatever it holds. Each of these decisions can refuse the file before any pickle is read, and
each is a place where two tools can read the same bytes differently.

- **CKA101 tar-format**: torch's oldest format (a tar of pickles and storages). torch.load
  refuses it under ``weights_only=True`` whatever it holds.
- **CKA102 torchscript**: a TorchScript archive (``torch.jit.save``). torch.load refuses it;
  ``torch.jit.load`` runs the TorchScript code inside, so only what could harm that load is
  reported besides.
- **CKA103 not-a-torch-checkpoint**: bytes torch.load does not read as a checkpoint (a zip of
  another layout, a zip behind other bytes, bytes of unknown format with pickles inside).
- **CKA104 format-mismatch**: the name promises another format than the bytes hold; tools
  that dispatch on the extension read something else than torch.
- **CKA105 zip-anomaly**: duplicate names, bad CRCs, junk before the archive: structures
  where zip readers disagree, and scanners have been bypassed this way.
- **CKA106 polyglot**: the bytes are valid in two formats (a tar that is also a pickle); torch
  reads one, a tool that sniffs another way reads the other. Both are audited.
"""

from __future__ import annotations

import os

from ckptaudit.checks.context import CheckContext, FileFacts, TorchStep
from ckptaudit.checks.registry import FileCheck, Rule, Stage
from ckptaudit.findings import Category, ContainerFormat, Remedy, Severity

__all__ = [
    "FORMAT_MISMATCH",
    "NOT_A_TORCH_CHECKPOINT",
    "POLYGLOT",
    "TAR_FORMAT",
    "TORCHSCRIPT",
    "ZIP_ANOMALY",
    "ContainerRules",
]

TAR_FORMAT = Rule(
    code="CKA101",
    category=Category.TAR_FORMAT,
    severity=Severity.INCOMPATIBLE,
    summary="The checkpoint uses torch's legacy tar format.",
    why="torch.load refuses tar checkpoints under weights_only=True, whatever they hold.",
    fix="Load it once in a trusted environment and torch.save it again (zip format).",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)
TORCHSCRIPT = Rule(
    code="CKA102",
    category=Category.TORCHSCRIPT,
    severity=Severity.INCOMPATIBLE,
    summary="The file is a TorchScript archive.",
    why="torch.load refuses TorchScript archives under weights_only=True; they are loaded "
    "with torch.jit.load, which runs TorchScript code from the file.",
    fix="Load it with torch.jit.load only if you trust it, or ask for a state_dict checkpoint.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)
NOT_A_TORCH_CHECKPOINT = Rule(
    code="CKA103",
    category=Category.NOT_A_TORCH_CHECKPOINT,
    severity=Severity.INCOMPATIBLE,
    summary="The file is not in a format torch.load reads.",
    why="torch.load(weights_only=True) expects a torch.save zip or legacy file.",
    fix="Load it with the library that wrote it, or re-save the object with torch.save.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)
FORMAT_MISMATCH = Rule(
    code="CKA104",
    category=Category.FORMAT_MISMATCH,
    severity=Severity.INFO,
    summary="The file name suggests another format than its bytes.",
    why="Tools that dispatch on the extension may read a different format than torch does.",
    fix="Rename the file to match its content.",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)
ZIP_ANOMALY = Rule(
    code="CKA105",
    category=Category.ZIP_ANOMALY,
    severity=Severity.INFO,
    summary="The zip container has an anomaly that tools may read differently.",
    why="Duplicate names, bad CRCs or junk before the archive let one tool see other bytes "
    "than another; scanners have been bypassed this way.",
    fix="Re-save the checkpoint with torch.save.",
    doc=__doc__ or "",
    module=__name__,
    tags=("security", "evasion"),
)
POLYGLOT = Rule(
    code="CKA106",
    category=Category.POLYGLOT,
    severity=Severity.INFO,
    summary="The bytes are valid in more than one format.",
    why="torch reads one interpretation (a tar before anything else), a tool that sniffs "
    "another way reads the other; scanners have been bypassed this way. Every "
    "interpretation is audited.",
    fix="Do not load the file; re-save the checkpoint with torch.save.",
    doc=__doc__ or "",
    module=__name__,
    tags=("security", "evasion"),
)

_EXPECTED_BY_SUFFIX: dict[str, tuple[ContainerFormat, ...]] = {
    ".safetensors": (ContainerFormat.SAFETENSORS,),
    ".pkl": (ContainerFormat.PICKLE,),
    ".pickle": (ContainerFormat.PICKLE,),
    ".pt": (ContainerFormat.TORCH_ZIP, ContainerFormat.TORCH_LEGACY, ContainerFormat.TORCHSCRIPT),
    ".pth": (ContainerFormat.TORCH_ZIP, ContainerFormat.TORCH_LEGACY, ContainerFormat.TORCHSCRIPT),
    ".ckpt": (ContainerFormat.TORCH_ZIP, ContainerFormat.TORCH_LEGACY),
    ".tar": (ContainerFormat.TORCH_TAR,),
}


def name_mismatch(name: str, fmt: ContainerFormat) -> tuple[str, bool] | None:
    """(message, torch fails because of it) when the file name suggests another format."""
    suffix = os.path.splitext(name)[1].lower()
    expected = _EXPECTED_BY_SUFFIX.get(suffix)
    if expected is None or fmt in expected:
        return None
    # torch.load sends every path ending in .safetensors to safetensors, whatever its bytes.
    fails = name.endswith(".safetensors")
    message = f"named {suffix} but the bytes are {fmt}"
    if fails:
        message += "; torch.load hands .safetensors paths to safetensors, which cannot read it"
    return message, fails


class ContainerRules(FileCheck):
    """Turn the container reader's issues of the 1xx family into findings and torch errors."""

    rules = (
        TAR_FORMAT,
        TORCHSCRIPT,
        NOT_A_TORCH_CHECKPOINT,
        FORMAT_MISMATCH,
        ZIP_ANOMALY,
        POLYGLOT,
    )
    stage = Stage.CONTAINER

    def check_file(self, ctx: CheckContext, file: FileFacts) -> None:
        """Report container issues, and a name that promises another format."""
        container = file.container
        mine = {r.category: r for r in self.rules}
        for index, issue in enumerate(container.issues):
            r = mine.get(issue.category)
            if r is None:
                continue  # another family's issue (malformed, limits)
            ctx.add_finding(r.finding(issue.message, member=issue.member))
            if issue.torch_error:
                # torch reads the first pickle before it notices a zip is not a checkpoint.
                step = (
                    TorchStep.AFTER_UNPICKLING
                    if issue.category is Category.NOT_A_TORCH_CHECKPOINT
                    else TorchStep.BEFORE_UNPICKLING
                )
                ctx.torch_fails(step, index, issue.torch_error, issue.member)
        if container.format is ContainerFormat.TORCHSCRIPT:
            # Refused before any pickle is read: only what could harm a torch.jit.load matters.
            ctx.pickles_moot = True
        mismatch = name_mismatch(file.name, container.format)
        if mismatch:
            message, fails = mismatch
            ctx.add_finding(
                FORMAT_MISMATCH.finding(
                    message,
                    severity=Severity.INCOMPATIBLE if fails else None,
                    remedy=Remedy.NONE,
                )
            )
            if fails:
                ctx.torch_fails(TorchStep.BEFORE_UNPICKLING, len(container.issues), message)
