"""Hidden payloads (CKA303): dangerous pickles where torch does not look but others do.

torch.load reads ``data.pkl`` of a zip, the pickles of the legacy format in their order, and
nothing else. Other tools read more: a scanner or a loader that opens every ``.pkl`` member,
a loop of ``pickle.load`` that goes on after the first STOP, ``numpy.load`` of a member, the
other interpretation of a polyglot. A dangerous pickle in such a place is a payload kept out
of torch's sight on purpose: torch.save never writes one.

- **CKA303 hidden-payload**: a pickle torch never reads (an extra member, bytes after STOP,
  the other reading of a polyglot) holds dangerous content. The dangerous findings inside it
  are listed beside this one.
"""

from __future__ import annotations

from ckptaudit.checks.context import CheckContext, FileFacts
from ckptaudit.checks.registry import FileCheck, Rule, Stage, rule_for
from ckptaudit.findings import Category, ContainerFormat, Kind, Remedy, Severity

__all__ = ["HIDDEN_PAYLOAD", "HiddenPayloads"]

HIDDEN_PAYLOAD = Rule(
    code="CKA303",
    category=Category.HIDDEN_PAYLOAD,
    severity=Severity.DANGEROUS,
    summary="The file carries pickle data that torch does not read but other tools may.",
    why="An extra pickle member or bytes after STOP are a classic way to hide a payload.",
    fix="Do not load the file with other tools; re-save it from trusted objects.",
    doc=__doc__ or "",
    module=__name__,
    cwe=502,
    tags=("security", "evasion"),
)


class HiddenPayloads(FileCheck):
    """Flag each pickle torch never reads that holds a dangerous finding."""

    rules = (HIDDEN_PAYLOAD,)
    stage = Stage.FILE

    def check_file(self, ctx: CheckContext, file: FileFacts) -> None:
        """Report the members, outside torch's reading, whose pickles are dangerous."""
        if file.container.format is ContainerFormat.TORCHSCRIPT:
            return  # torch.jit.load reads every member: nothing there is hidden from it
        dangerous = {
            g.member
            for g in ctx.groups.values()
            if (g.severity or rule_for(g.category).severity) is Severity.DANGEROUS
        }
        dangerous |= {f.member for f in ctx.findings if f.severity is Severity.DANGEROUS}
        for unit in file.container.units:
            if unit.torch_reads or unit.nested or unit.member not in dangerous:
                continue
            ctx.add_finding(
                HIDDEN_PAYLOAD.finding(
                    f"dangerous pickle in {unit.member}, which torch.load never reads but "
                    "other tools may",
                    member=unit.member,
                    remedy=Remedy.NEVER,
                    kind=Kind.NESTED_PICKLE,
                )
            )
