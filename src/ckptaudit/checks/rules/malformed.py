"""Malformed input and resource limits (CKA401-CKA402): what could not be analysed.

A truncated download, a corrupt archive and a hostile file built to exhaust the reader all
end here. Nothing that was not analysed can be called compatible: a file with one of these
findings gets the verdict ``error`` (unless something in it is already dangerous), and the
error says which part of the file could not be read.

- **CKA401 malformed**: a pickle or a container structure could not be parsed (a length
  that runs past the end, an unknown opcode, a zip record that does not add up). torch fails
  on such a file too.
- **CKA402 limit-exceeded**: a resource limit stopped the analysis: nesting deeper than
  the limit, a declared length larger than the limit, a zip bomb, too many pickles. Limits
  are stopped by design (see ``ckptaudit.Limits``); raise one only for files you trust.
"""

from __future__ import annotations

from ckptaudit.checks.context import CheckContext, FileFacts, TorchStep
from ckptaudit.checks.registry import FileCheck, Rule, Stage
from ckptaudit.errors import LimitExceeded
from ckptaudit.findings import Category, Severity

__all__ = ["LIMIT_EXCEEDED", "MALFORMED", "MalformedInput"]

MALFORMED = Rule(
    code="CKA401",
    category=Category.MALFORMED,
    severity=Severity.ERROR,
    summary="A pickle or container could not be parsed.",
    why="A truncated or corrupt file cannot be judged compatible; torch fails on it too.",
    fix="Obtain the file again; check that the download was complete.",
    doc=__doc__ or "",
    module=__name__,
    tags=("reliability",),
)
LIMIT_EXCEEDED = Rule(
    code="CKA402",
    category=Category.LIMIT_EXCEEDED,
    severity=Severity.ERROR,
    summary="A resource limit stopped the analysis.",
    why="Bombs (deep nesting, huge declared lengths, zip bombs) are stopped by design; "
    "what was not analysed cannot be called compatible.",
    fix="Raise the limit if you trust the file's size, or treat it as hostile.",
    doc=__doc__ or "",
    module=__name__,
    cwe=400,
    tags=("security", "reliability"),
)


class MalformedInput(FileCheck):
    """Report container parts and pickle units that could not be read to the end."""

    rules = (MALFORMED, LIMIT_EXCEEDED)
    stage = Stage.CONTAINER

    def check_file(self, ctx: CheckContext, file: FileFacts) -> None:
        """Report what the reader could not parse, and the error torch meets because of it."""
        container = file.container
        for index, issue in enumerate(container.issues):
            if issue.category is Category.MALFORMED:
                ctx.add_finding(MALFORMED.finding(issue.message, member=issue.member))
                ctx.errors.append(issue.message)
            elif issue.category is Category.LIMIT_EXCEEDED:
                ctx.add_finding(LIMIT_EXCEEDED.finding(issue.message, member=issue.member))
            else:
                continue
            if issue.torch_error:
                ctx.torch_fails(TorchStep.BEFORE_UNPICKLING, index, issue.torch_error, issue.member)
        for index, unit in enumerate(container.units):
            err = unit.result.error
            if err is None:
                continue
            where = f"{unit.member}: " if unit.member else ""
            r = LIMIT_EXCEEDED if isinstance(err, LimitExceeded) else MALFORMED
            ctx.add_finding(r.finding(f"{where}{err}", member=unit.member, offset=err.offset))
            ctx.errors.append(f"{where}{err}")
            if unit.torch_reads:
                ctx.torch_fails(TorchStep.READING, index, f"{where}{err}", unit.member)
