"""``ckptaudit allowlist``: the ``add_safe_globals`` code a trusted file needs, complete.

The list is the audit's ``unsafe_globals``: every global the pickle names that torch does not
allow, plus the types BUILD touches without the pickle naming them (a numpy array's dtype
class, ``numpy.dtypes.Float32DType``). Whether that is enough is checked by auditing the file
again with those names allowed; when it is not (a deque with items, protocol > 2 opcodes,
TorchScript, tar, a plain pickle), the snippet says so and points to ``ckptaudit migrate``.
Dangerous globals are never put in a snippet. Nothing named in the file is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ckptaudit.audit import audit_file
from ckptaudit.errors import MigrationError
from ckptaudit.findings import FileReport, Remedy, Severity, Status
from ckptaudit.formats import FileSource, read_container
from ckptaudit.pickle.limits import DEFAULT_LIMITS
from ckptaudit.policy.torch_policy import Policy, load_policy

__all__ = ["Snippet", "allowlist_snippet"]

# Modules whose objects live elsewhere since numpy 2 (``numpy.core`` forwards to
# ``numpy._core``): the object's own name differs from the one in the file.
_MOVED_PREFIXES = ("numpy.core.",)


@dataclass(frozen=True)
class Snippet:
    """The code to paste, and what it cannot do."""

    code: str
    """Python that allowlists every needed global (and loads the file, with ``context``)."""
    names: tuple[str, ...]
    """The globals allowlisted, as ``module.name``."""
    sufficient: bool
    """True when the audit with these names allowed says every file loads."""
    warnings: str
    """Why allowlisting is not enough, for which file, and what to do instead."""


def _split_names(path: str) -> dict[str, tuple[str, str]]:
    """(module, name) of each global as the file's GLOBAL opcodes spell them."""
    out: dict[str, tuple[str, str]] = {}
    try:
        source = FileSource(path)
    except OSError:
        return out
    try:
        container = read_container(source, DEFAULT_LIMITS)
        for unit in container.units:
            for g in unit.result.globals:
                if not g.dynamic:
                    out.setdefault(g.qualified, (g.module, g.name))
    except Exception:  # the audit already says why a file is unreadable
        return out
    finally:
        source.close()
    return out


def _why_not(report: FileReport) -> list[str]:
    reasons: list[str] = []
    if report.format in ("torchscript", "torch-tar", "pickle", "zip", "unknown", "safetensors"):
        reasons.append(
            f"a {report.format} file: {report.predicted_error or 'not a torch.save file'}"
        )
    for f in report.findings:
        if f.remedy is Remedy.CONVERT:
            reasons.append(f"{f.global_name or f.category}: {f.hint}")
        elif f.remedy is Remedy.RESAVE:
            reasons.append(f"pickle opcode {f.opcode} (protocol > 2): torch never reads it")
    return list(dict.fromkeys(reasons))


def allowlist_snippet(
    paths: Sequence[str | os.PathLike[str]],
    *,
    context: bool = False,
    policy: Policy | None = None,
) -> Snippet:
    """Build the allowlisting code for files the user trusts.

    Raises:
        MigrationError: a file is dangerous (its dangerous globals are listed) or cannot be
            read; no snippet is given for it.
    """
    policy = policy or load_policy()
    names: dict[str, tuple[str, str]] = {}
    reports: list[FileReport] = []
    for raw in paths:
        path = os.fspath(raw)
        report = audit_file(path, policy=policy)
        if report.status is Status.DANGEROUS:
            bad = sorted(
                {
                    f.global_name or f.category
                    for f in report.findings
                    if f.severity is Severity.DANGEROUS
                }
            )
            raise MigrationError(
                f"{path} is dangerous; never allowlist: {', '.join(bad)}. "
                "`ckptaudit migrate --sanitize` recovers its tensors without running it"
            )
        if report.status is Status.ERROR:
            raise MigrationError(f"{path} could not be analysed: {report.error}")
        reports.append(report)
        spelled = _split_names(path)
        for name in report.unsafe_globals:
            names.setdefault(name, spelled.get(name) or tuple(name.rsplit(".", 1)))  # type: ignore[arg-type]
    warnings: list[str] = []
    sufficient = True
    allowed = policy.with_allowed(list(names))
    for raw, report in zip(paths, reports, strict=True):
        if report.weights_only_compatible:
            continue
        after = audit_file(os.fspath(raw), policy=allowed)
        if after.weights_only_compatible:
            continue
        sufficient = False
        reasons = _why_not(report) or [after.predicted_error or "see ckptaudit audit"]
        warnings.append(
            f"ckptaudit: allowlisting cannot make {os.fspath(raw)} load:\n"
            + "".join(f"  - {r}\n" for r in reasons)
            + f"  migration is the fix: ckptaudit migrate {os.fspath(raw)} FIXED.pt\n"
        )
    code = _code(names, [os.fspath(p) for p in paths], context)
    return Snippet(code=code, names=tuple(names), sufficient=sufficient, warnings="".join(warnings))


def _code(names: dict[str, tuple[str, str]], paths: list[str], context: bool) -> str:
    if not names:
        body = "# Nothing to allowlist: torch.load(f, weights_only=True) needs no extra globals.\n"
        return "import torch\n\n" + body
    imports: list[str] = []
    entries: list[str] = []
    for qualified, (module, name) in sorted(names.items()):
        head = name.split(".", 1)[0]
        alias = (
            f"{module.replace('.', '_')}_{head}"
            if head in {n for _, n in names.values() if n != name}
            else head
        )
        comment = None
        if module == "__main__":
            comment = (
                f"{qualified}: defined in the script that saved the file; import or define "
                f"{name} here"
            )
        elif "." in name or module.startswith(_MOVED_PREFIXES) or name.startswith("<"):
            comment = f"{qualified}: the file's spelling differs from the object's own name"
        if module != "__main__":
            line = f"from {module} import {head}" + (f" as {alias}" if alias != head else "")
            imports.append(line)
        attr = alias + name[len(head) :]
        if comment or module == "__main__":
            entries.append(f"    # {comment}\n    ({attr}, {qualified!r}),")
        else:
            entries.append(f"    {attr},")
    lines = ["import torch", *sorted(set(imports)), ""]
    listing = "\n".join(entries)
    if context:
        lines.append(f"with torch.serialization.safe_globals([\n{listing}\n]):")
        for path in paths:
            lines.append(f"    checkpoint = torch.load({path!r}, weights_only=True)")
    else:
        lines.append(f"torch.serialization.add_safe_globals([\n{listing}\n])")
    return "\n".join(lines) + "\n"
