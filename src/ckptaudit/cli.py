"""The command line: parse arguments, call the library, print, exit. Nothing else prints.

Exit status of ``ckptaudit audit``: 0 nothing at or above --fail-on; 1 a file at or above it;
2 usage error; 3 a file could not be read (and nothing worse).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ckptaudit._compat import assert_never
from ckptaudit._version import __version__
from ckptaudit.errors import CkptAuditError, UsageError
from ckptaudit.findings import FileReport, Severity, Status, TextEnum
from ckptaudit.report import OutputFormat

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_UNREADABLE", "EXIT_USAGE", "FailOn", "main"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3


class FailOn(TextEnum):
    """What makes ``audit`` exit 1 (``--fail-on``, comma-separated for several)."""

    INCOMPATIBLE = "incompatible"
    """A file torch would refuse, or a dangerous one."""
    UNTRUSTED = "untrusted"
    """A file that would run code outside the known pool (CKA304), or a dangerous one."""
    DANGEROUS = "dangerous"
    """A dangerous file."""
    NEVER = "never"
    """Nothing: exit 0 whatever was found, unreadable files included."""

    def fails(self, report: FileReport) -> bool:
        """Whether this report makes the run fail under this setting."""
        match self:
            case FailOn.INCOMPATIBLE:
                return report.status in (Status.INCOMPATIBLE, Status.DANGEROUS)
            case FailOn.UNTRUSTED:
                return report.status is Status.DANGEROUS or any(
                    f.severity is Severity.UNTRUSTED for f in report.findings
                )
            case FailOn.DANGEROUS:
                return report.status is Status.DANGEROUS
            case FailOn.NEVER:
                return False
            case _:
                assert_never(self)


_E = TypeVar("_E", bound=TextEnum)


def _choice(enum: type[_E]) -> Callable[[str], _E]:
    """An argparse type for a closed set: its member, or an error listing the choices."""

    def parse(text: str) -> _E:
        try:
            return enum(text)
        except ValueError:
            choices = ", ".join(m.value for m in enum)
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {choices})"
            ) from None

    parse.__name__ = enum.__name__
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns every exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise a usage error instead of printing and exiting."""
        raise UsageError(message)


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="treat a global as allowlisted, like torch.serialization.add_safe_globals "
        "(repeatable)",
    )
    p.add_argument(
        "--allow-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read globals to allow from a file, one module.name per line, # for comments",
    )
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="a top-level package whose code you reviewed: not reported as untrusted code "
        "(repeatable)",
    )
    p.add_argument(
        "--torch-version",
        metavar="VERSION",
        help="judge against this torch release's policy table (default: the newest shipped)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ckptaudit",
        description="Checkpoint forensics: what stands between a PyTorch checkpoint and "
        "torch.load(weights_only=True), found without executing the file.",
    )
    from ckptaudit.pickle.native import backend

    parser.add_argument(
        "--version", action="version", version=f"ckptaudit {__version__} ({backend()} core)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    audit = sub.add_parser("audit", help="audit checkpoint files or directories")
    audit.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files, directories, or URLs (s3://bucket/key.pt, https://..., hf://...; "
        "globs like s3://bucket/runs/*.pt) read by ranged requests, never downloaded",
    )
    audit.add_argument(
        "--format",
        type=_choice(OutputFormat),
        choices=list(OutputFormat),
        default=OutputFormat.TEXT,
        help="output format (default: text); jsonl streams one JSON object per file as it "
        "is audited",
    )
    audit.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    audit.add_argument(
        "--fail-on",
        type=_fail_on,
        default=frozenset({FailOn.INCOMPATIBLE}),
        metavar="{incompatible,untrusted,dangerous,never}",
        help="exit 1 when a file is incompatible or dangerous (incompatible, the default), runs "
        "untrusted code or is dangerous (untrusted), is dangerous (dangerous), or never; "
        "comma-separate several",
    )
    audit.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="audit files in N parallel processes (default: the CPU count)",
    )
    audit.add_argument(
        "--no-progress", action="store_true", help="no progress bar for directory runs"
    )
    audit.add_argument(
        "--dask",
        metavar="SCHEDULER_ADDRESS",
        help="audit on the workers of an existing Dask cluster (e.g. tcp://host:8786) "
        "instead of local processes; needs ckptaudit[dask]",
    )
    audit.add_argument(
        "--revision",
        metavar="REV",
        help="read hf:// URLs at this branch, tag or commit (default: main)",
    )
    _add_policy_options(audit)

    report = sub.add_parser("report", help="write the Markdown findings document")
    report.add_argument("paths", nargs="+", metavar="PATH")
    report.add_argument("-o", "--output", metavar="FILE", required=True)
    report.add_argument(
        "--no-torch",
        action="store_true",
        help="do not ask the installed torch for its exact error messages",
    )
    _add_policy_options(report)

    explain = sub.add_parser("explain", help="explain a rule code (e.g. CKA201)")
    explain.add_argument("code", nargs="?", help="rule code; omit to list every rule")

    demo = sub.add_parser("demo", help="build an example checkpoint (needs torch)")
    demo.add_argument("which", choices=("ppo", "morphogenetic"))
    demo.add_argument("--fixed", action="store_true", help="the version after the fix")
    demo.add_argument("-o", "--output", metavar="FILE", help="where to save it")
    from ckptaudit.migrate.command import add_parsers

    add_parsers(sub)
    return parser


def _policy(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ckptaudit.policy.torch_policy import load_policy, read_allow_file

    policy = load_policy(args.torch_version)
    names = list(args.allow)
    for path in args.allow_file:
        names += read_allow_file(path)
    for name in names:
        if "." not in name:
            raise UsageError(f"--allow takes module.name, got {name!r}")
    policy = policy.with_allowed(names) if names else policy
    for package in args.trust:
        if not package.isidentifier():
            raise UsageError(f"--trust takes a top-level package name, got {package!r}")
    return policy.with_trusted(args.trust) if args.trust else policy


def _emit(text: str, output: str | None, markup: bool) -> None:
    if output:
        tmp = f"{output}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, output)
        return
    if markup:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(text, end="")
    else:
        sys.stdout.write(text)


def _core_notice() -> None:
    """Say once per run, on stderr, that the pure-Python core runs because none was built."""
    from ckptaudit.pickle import native

    if not os.environ.get("CKPTAUDIT_PURE_PYTHON") and native.backend() == "python":
        print(
            "ckptaudit: note: the compiled core is not built (no C compiler when ckptaudit was "
            "installed?); the pure-Python core runs, with the same results, 4-6x slower. "
            "CKPTAUDIT_PURE_PYTHON=1 chooses it and silences this note.",
            file=sys.stderr,
        )


def _fails(report: FileReport, fail_on: frozenset[FailOn]) -> bool:
    return any(setting.fails(report) for setting in fail_on)


def _fail_on(text: str) -> frozenset[FailOn]:
    """``--fail-on``: one setting or several, comma-separated (``incompatible,untrusted``)."""
    parse = _choice(FailOn)
    return frozenset(parse(part.strip()) for part in text.split(",") if part.strip())


def _exit_code(outcomes: Iterable[tuple[Status, bool]], fail_on: frozenset[FailOn]) -> int:
    """The exit status from (status, whether the report fails the run) of every file."""
    seen: set[Status] = set()
    failed = False
    for status, fails in outcomes:
        seen.add(status)
        failed = failed or fails
    if failed:
        return EXIT_FAIL
    if fail_on != {FailOn.NEVER} and Status.ERROR in seen:
        return EXIT_UNREADABLE
    return EXIT_OK


def _cmd_audit(args: argparse.Namespace) -> int:
    from ckptaudit.report import render
    from ckptaudit.runner import audit_paths

    policy = _policy(args)
    _core_notice()
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.revision is not None:
        from ckptaudit.formats.hub import paths_at_revision

        args.paths = paths_at_revision(args.paths, args.revision)
    progress = not args.no_progress and sys.stderr.isatty()
    if args.format is OutputFormat.JSONL:
        return _stream_jsonl(args, policy, progress)
    reports = audit_paths(
        args.paths, policy=policy, jobs=args.jobs, progress=progress, dask=args.dask
    )
    if not reports:
        raise UsageError("no checkpoint files found under the given paths")
    markup = args.format is OutputFormat.TEXT and not args.output and sys.stdout.isatty()
    _emit(render(reports, args.format, policy, markup=markup), args.output, markup)
    return _exit_code(((r.status, _fails(r, args.fail_on)) for r in reports), args.fail_on)


def _stream_jsonl(args: argparse.Namespace, policy: Any, progress: bool) -> int:
    """Write one JSON line per file as soon as it is audited (runs of any size)."""
    from ckptaudit.report.json import jsonl_line
    from ckptaudit.runner import iter_audit_paths

    reports = iter_audit_paths(
        args.paths, policy=policy, jobs=args.jobs, progress=progress, dask=args.dask
    )
    outcomes: list[tuple[Status, bool]] = []
    tmp = f"{args.output}.tmp-{os.getpid()}" if args.output else None
    out = open(tmp, "w", encoding="utf-8") if tmp else sys.stdout  # noqa: SIM115
    try:
        for report in reports:
            outcomes.append((report.status, _fails(report, args.fail_on)))
            out.write(jsonl_line(report, policy))
            out.flush()
    finally:
        if tmp:
            out.close()
    if tmp and args.output:
        os.replace(tmp, args.output)
    if not outcomes:
        raise UsageError("no checkpoint files found under the given paths")
    return _exit_code(outcomes, args.fail_on)


def _cmd_report(args: argparse.Namespace) -> int:
    from ckptaudit.report import render
    from ckptaudit.runner import audit_paths

    policy = _policy(args)
    _core_notice()
    reports = audit_paths(args.paths, policy=policy, jobs=1, progress=False)
    if not reports:
        raise UsageError("no checkpoint files found under the given paths")
    if args.no_torch:
        os.environ["CKPTAUDIT_NO_TORCH"] = "1"
    _emit(render(reports, OutputFormat.MARKDOWN, policy), args.output, False)
    print(f"wrote {args.output} ({len(reports)} checkpoints)")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from ckptaudit.checks import all_rules

    rules = {r.code: r for r in all_rules()}
    if args.code is None:
        for r in rules.values():
            print(f"{r.code}  {r.category:<24} {r.severity.label:<12} {r.summary}")
        return EXIT_OK
    found = rules.get(args.code.upper())
    if found is None:
        raise UsageError(f"unknown rule {args.code!r}; `ckptaudit explain` lists them")
    print(
        f"{found.code} {found.category} ({found.severity.label})\n\n{found.summary}\n\n"
        f"Why: {found.why}\n\nFix: {found.fix}\n\n"
        f"About this family of rules:\n\n{inspect.cleandoc(found.doc)}\n\n"
        f"Online: {found.help_uri}"
    )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from ckptaudit_demo import build_checkpoint
    except ImportError as exc:
        raise UsageError(f"the demo needs torch (pip install 'ckptaudit[torch]'): {exc}") from None
    output = args.output or f"{args.which}-{'fixed' if args.fixed else 'legacy'}.pt"
    path = build_checkpoint(args.which, args.fixed, output)
    print(f"saved {path}")
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ckptaudit.migrate.command import run_migrate

    outcome = run_migrate(args, lambda line: print(line, file=sys.stderr, flush=True))
    sys.stdout.write(outcome.out)
    sys.stderr.write(outcome.err)
    return outcome.code


def _cmd_allowlist(args: argparse.Namespace) -> int:
    from ckptaudit.migrate.command import run_allowlist

    outcome = run_allowlist(args)
    sys.stdout.write(outcome.out)
    sys.stderr.write(outcome.err)
    return outcome.code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        handler = {
            "audit": _cmd_audit,
            "report": _cmd_report,
            "explain": _cmd_explain,
            "demo": _cmd_demo,
            "migrate": _cmd_migrate,
            "allowlist": _cmd_allowlist,
        }[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"ckptaudit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CkptAuditError as exc:
        print(f"ckptaudit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
