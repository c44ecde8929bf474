"""The rule catalog: stable codes, what each rule means, why it matters, how to fix it.

Codes are grouped by hundreds: CKA1xx container format, CKA2xx torch's weights_only policy,
CKA3xx dangerous content, CKA4xx malformed input or resource limits. The same objects feed
the text output, SARIF ``rules[]``, ``ckptaudit explain`` and the documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ckptaudit.findings import Severity

__all__ = ["RULES", "Rule", "rule"]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One rule of the catalog."""

    code: str
    """Stable code, never reused: ``CKA201``."""
    category: str
    """Short machine name: ``not-allowlisted``."""
    severity: Severity
    """Default severity of its findings."""
    summary: str
    """One line: what the rule detects."""
    why: str
    """Why it matters."""
    fix: str
    """How to fix it, in general."""


_ALL = (
    Rule(
        code="CKA101",
        category="tar-format",
        severity=Severity.INCOMPATIBLE,
        summary="The checkpoint uses torch's legacy tar format.",
        why="torch.load refuses tar checkpoints under weights_only=True, whatever they hold.",
        fix="Load it once in a trusted environment and torch.save it again (zip format).",
    ),
    Rule(
        code="CKA102",
        category="torchscript",
        severity=Severity.INCOMPATIBLE,
        summary="The file is a TorchScript archive.",
        why="torch.load refuses TorchScript archives under weights_only=True; they are loaded "
        "with torch.jit.load, which runs TorchScript code from the file.",
        fix="Load it with torch.jit.load only if you trust it, or ask for a state_dict checkpoint.",
    ),
    Rule(
        code="CKA103",
        category="not-a-torch-checkpoint",
        severity=Severity.INCOMPATIBLE,
        summary="The file is not in a format torch.load reads.",
        why="torch.load(weights_only=True) expects a torch.save zip or legacy file.",
        fix="Load it with the library that wrote it, or re-save the object with torch.save.",
    ),
    Rule(
        code="CKA104",
        category="format-mismatch",
        severity=Severity.INFO,
        summary="The file name suggests another format than its bytes.",
        why="Tools that dispatch on the extension may read a different format than torch does.",
        fix="Rename the file to match its content.",
    ),
    Rule(
        code="CKA105",
        category="zip-anomaly",
        severity=Severity.INFO,
        summary="The zip container has an anomaly that tools may read differently.",
        why="Duplicate names, bad CRCs or junk before the archive let one tool see other bytes "
        "than another; scanners have been bypassed this way.",
        fix="Re-save the checkpoint with torch.save.",
    ),
    Rule(
        code="CKA106",
        category="polyglot",
        severity=Severity.INFO,
        summary="The bytes are valid in more than one format.",
        why="torch reads one interpretation (a tar before anything else), a tool that sniffs "
        "another way reads the other; scanners have been bypassed this way. Every "
        "interpretation is audited.",
        fix="Do not load the file; re-save the checkpoint with torch.save.",
    ),
    Rule(
        code="CKA201",
        category="not-allowlisted",
        severity=Severity.INCOMPATIBLE,
        summary="The pickle names a global that torch's weights_only unpickler does not allow.",
        why="torch.load(weights_only=True) stops at the first such global.",
        fix="Convert the object to primitives/tensors, or allowlist it with "
        "torch.serialization.add_safe_globals if the remedy is 'allowlist'.",
    ),
    Rule(
        code="CKA202",
        category="blocked-module",
        severity=Severity.INCOMPATIBLE,
        summary="The pickle names a global from a module torch never allows (sys, os, posix, nt).",
        why="No allowlist can make torch load it.",
        fix="Remove it from what is saved.",
    ),
    Rule(
        code="CKA203",
        category="forbidden-operation",
        severity=Severity.INCOMPATIBLE,
        summary="The pickle performs an operation torch's unpickler forbids.",
        why="torch allows APPEND only on lists, SETITEM only on dict/OrderedDict/Counter, BUILD "
        "and NEWOBJ only on allowlisted types, and persistent ids only for storages; "
        "allowlisting the class does not lift these rules.",
        fix="Convert the object to a list, dict or tensor before saving.",
    ),
    Rule(
        code="CKA204",
        category="unsupported-opcode",
        severity=Severity.INCOMPATIBLE,
        summary="The pickle uses an opcode torch's weights_only unpickler does not implement.",
        why="torch's unpickler supports a protocol-2 subset; protocol 3+ opcodes fail with "
        "'Unsupported operand'.",
        fix="Save again with pickle protocol 2 (torch.save's default pickle_protocol).",
    ),
    Rule(
        code="CKA205",
        category="rebuild-error",
        severity=Severity.INCOMPATIBLE,
        summary="A tensor cannot be rebuilt from what the checkpoint declares.",
        why="torch fails when a storage record is missing or a tensor reaches past its storage.",
        fix="The file is damaged or hand-made: re-save it from the original objects.",
    ),
    Rule(
        code="CKA301",
        category="dangerous-global",
        severity=Severity.DANGEROUS,
        summary="The pickle names a global that can execute code or reach the system.",
        why="Loading the file without weights_only would let it run commands, import modules or "
        "touch files and the network.",
        fix="Do not load the file with weights_only=False and do not allowlist the global.",
    ),
    Rule(
        code="CKA302",
        category="unsafe-call",
        severity=Severity.DANGEROUS,
        summary="The pickle invokes a callable that is not shown to be an inert data constructor.",
        why="Known-dangerous lists leak; a call of an unknown or computed callable is how new "
        "gadgets run code.",
        fix="Do not load the file with weights_only=False unless you know the callable.",
    ),
    Rule(
        code="CKA303",
        category="hidden-payload",
        severity=Severity.DANGEROUS,
        summary="The file carries pickle data that torch does not read but other tools may.",
        why="An extra pickle member or bytes after STOP are a classic way to hide a payload.",
        fix="Do not load the file with other tools; re-save it from trusted objects.",
    ),
    Rule(
        code="CKA401",
        category="malformed",
        severity=Severity.ERROR,
        summary="A pickle or container could not be parsed.",
        why="A truncated or corrupt file cannot be judged compatible; torch fails on it too.",
        fix="Obtain the file again; check that the download was complete.",
    ),
    Rule(
        code="CKA402",
        category="limit-exceeded",
        severity=Severity.ERROR,
        summary="A resource limit stopped the analysis.",
        why="Bombs (deep nesting, huge declared lengths, zip bombs) are stopped by design; "
        "what was not analysed cannot be called compatible.",
        fix="Raise the limit if you trust the file's size, or treat it as hostile.",
    ),
)

RULES: dict[str, Rule] = {r.code: r for r in _ALL}
"""Every rule, by code."""

_BY_CATEGORY: dict[str, Rule] = {r.category: r for r in _ALL}


def rule(category: str) -> Rule:
    """Return the rule of a category name (``not-allowlisted`` -> CKA201)."""
    return _BY_CATEGORY[category]
