"""Unsupported opcodes (CKA204): opcodes torch's weights_only unpickler does not implement.

torch's weights_only unpickler is a reimplementation of pickle's loader that handles the
opcodes ``torch.save`` writes with its default ``pickle_protocol=2``, and refuses every other
with ``Unsupported operand <byte>``. Files written with protocol 3 or later (``BINBYTES``,
``SHORT_BINUNICODE``, ``STACK_GLOBAL``, ``MEMOIZE``, ``FRAME``...) fail on the first such
opcode, whatever they hold.

- **CKA204 unsupported-opcode**: one finding per opcode, with the number of uses and the
  offset of the first. Save again with ``torch.save(obj, f)`` and the default protocol.
"""

from __future__ import annotations

from ckptaudit.checks.context import CheckContext, UnitFacts
from ckptaudit.checks.registry import Rule, UnitCheck
from ckptaudit.findings import Category, Kind, Remedy, Severity
from ckptaudit.pickle.vm import OPCODE_NAMES

__all__ = ["UNSUPPORTED_OPCODE", "UnsupportedOpcodes"]

UNSUPPORTED_OPCODE = Rule(
    code="CKA204",
    category=Category.UNSUPPORTED_OPCODE,
    severity=Severity.INCOMPATIBLE,
    summary="The pickle uses an opcode torch's weights_only unpickler does not implement.",
    why="torch's unpickler supports a protocol-2 subset; protocol 3+ opcodes fail with "
    "'Unsupported operand'.",
    fix="Save again with pickle protocol 2 (torch.save's default pickle_protocol).",
    doc=__doc__ or "",
    module=__name__,
    tags=("compatibility",),
)


class UnsupportedOpcodes(UnitCheck):
    """Report each opcode torch's unpickler does not implement."""

    rules = (UNSUPPORTED_OPCODE,)

    def check_unit(self, ctx: CheckContext, unit: UnitFacts) -> None:
        """Compare the unit's opcode counts with torch's opcode set."""
        result = unit.result
        for op, count in result.opcode_counts.items():
            if ctx.policy.supports(op):
                continue
            name = OPCODE_NAMES.get(op, f"0x{op:02x}")
            first = result.opcode_first.get(op, result.start)
            ctx.violate(unit, first, f"Unsupported operand {op}")
            g = ctx.group(
                unit,
                Category.UNSUPPORTED_OPCODE,
                name,
                message=f"opcode {name} is not implemented by torch's weights_only unpickler",
                kind=Kind.OPCODE,
                remedy=Remedy.RESAVE,
                hint="save with torch.save(obj, f) and the default pickle_protocol=2",
                opcode=name,
            )
            g.count += count - 1
            g.add(None, first)
