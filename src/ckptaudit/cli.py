"""The command line: parse arguments, call the library, print, exit. Nothing else prints.

Exit status of ``ckptaudit audit``: 0 nothing at or above --fail-on; 1 a file at or above it;
2 usage error (a path that does not exist, an output that cannot be written); 3 a file could
not be read (and nothing worse).

``--summary`` and ``-q`` are a *detail level* of the text format, not output formats of their
own: they say how much of each file's report a person sees, while the exit status, --fail-on
and -o work as always, and the machine formats (JSON, SARIF...) always carry everything.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, TypeVar

from ckptaudit._compat import assert_never
from ckptaudit._version import __version__
from ckptaudit.errors import CkptAuditError, UsageError, missing_extra
from ckptaudit.findings import FileReport, Severity, Status, TextEnum
from ckptaudit.report import Detail, OutputFormat, RenderOptions

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
    """Nothing: exit 0 whatever was found, unreadable files included (they are still
    reported); a path that does not exist is a usage error all the same (exit 2)."""

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
    detail = audit.add_mutually_exclusive_group()
    detail.add_argument(
        "--summary",
        action="store_const",
        const=Detail.SUMMARY,
        dest="detail",
        help="text: one line per file (verdict, issue count, what is wrong) and the totals",
    )
    detail.add_argument(
        "-q",
        "--quiet",
        action="store_const",
        const=Detail.QUIET,
        dest="detail",
        help="text: only the files that fail the run (--fail-on) or cannot be read, one line "
        "each, and the totals",
    )
    audit.add_argument(
        "--torch-check",
        action="store_true",
        help="text and markdown: quote the installed torch's own error, from its weights_only "
        "unpickler run over each file's pickle (tensor storages are never read); without it "
        "the error is ckptaudit's prediction, labelled so",
    )
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
        "instead of local processes; needs the 'dask' extra",
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
        "--torch-check",
        action="store_true",
        help="quote the installed torch's own error, from its weights_only unpickler run over "
        "each file's pickle (tensor storages are never read); without it the error is "
        "ckptaudit's prediction, labelled so",
    )
    report.add_argument(
        "--verification",
        metavar="CMD",
        help="the command the Verification section gives (default: ckptaudit audit of the "
        "files that fail)",
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


def _check_output(output: str | None) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if not output:
        return
    if os.path.isdir(output):
        raise UsageError(f"cannot write {output}: is a directory")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {output}: no such directory {parent}")


def _write_atomic(output: str, write: Callable[[IO[str]], None]) -> None:
    """Write ``output`` under a temporary name beside it, then rename; on failure, remove
    the temporary file and raise a usage error naming the cause."""
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            write(handle)
        os.replace(tmp, output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise UsageError(f"cannot write {output}: {(exc.strerror or str(exc)).lower()}") from None


def _emit(text: str, output: str | None, markup: bool) -> None:
    if output:
        def write(handle: IO[str]) -> None:
            handle.write(text)

        _write_atomic(output, write)
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


def _check_paths(paths: Iterable[str]) -> None:
    """A local path that does not exist is a usage error (a typo), not an unreadable file."""
    from ckptaudit.formats.remote import is_url

    for path in paths:
        if not is_url(path) and not os.path.lexists(path):
            raise UsageError(f"no such file or directory: {path}")


def _torch_checks(reports: Sequence[FileReport], policy: Any, wanted: bool) -> dict[str, Any]:
    """torch's own answer for each file that fails (``--torch-check``), by path."""
    if not wanted:
        return {}
    from ckptaudit.torch_oracle import torch_available, torch_check

    if not torch_available():
        raise missing_extra("--torch-check", "torch")
    allow = sorted(policy.extra_allowed)
    return {r.path: torch_check(r.path, allow=allow) for r in reports if r.findings}


def _recommended_code(reports: Sequence[FileReport], policy: Any) -> str | None:
    """The findings document's code changes, generated by migrate's planner (a dry run: it
    reads each failing file's pickle again and writes nothing)."""
    from ckptaudit.migrate import migrate
    from ckptaudit.migrate.codegen import render_recommended_code

    manifests = []
    for r in reports:
        if r.status is not Status.INCOMPATIBLE:
            continue  # compatible: nothing to change; dangerous or unreadable: not converted
        try:
            manifests.append(
                migrate(
                    r.path, f"{r.path}.fixed.pt", dry_run=True, write_manifest=False, policy=policy
                )
            )
        except CkptAuditError:
            continue  # refused (not convertible): the document's advice by kind covers it
    return render_recommended_code(manifests) or None


def _render_options(
    args: argparse.Namespace, reports: Sequence[FileReport], policy: Any, fmt: OutputFormat
) -> RenderOptions:
    markup = fmt is OutputFormat.TEXT and not args.output and sys.stdout.isatty()
    shows_errors = fmt is OutputFormat.MARKDOWN or args.detail in (None, Detail.FULL)
    checks = _torch_checks(reports, policy, args.torch_check and shows_errors)
    recommended = _recommended_code(reports, policy) if fmt is OutputFormat.MARKDOWN else None
    return RenderOptions(
        markup=markup,
        detail=args.detail or Detail.FULL,
        fails=lambda r: _fails(r, args.fail_on),
        torch_checks=checks,
        recommended_code=recommended,
        verification=getattr(args, "verification", None),
    )


def _cmd_audit(args: argparse.Namespace) -> int:
    from ckptaudit.report import render
    from ckptaudit.runner import audit_paths

    if args.detail is not None and args.format is not OutputFormat.TEXT:
        raise UsageError(
            f"--summary and -q shape the text format; --format {args.format} always carries "
            "every finding"
        )
    if args.torch_check and args.format not in (OutputFormat.TEXT, OutputFormat.MARKDOWN):
        raise UsageError("--torch-check quotes torch's error in the text and markdown formats")
    policy = _policy(args)
    _check_output(args.output)
    _check_paths(args.paths)
    _core_notice()
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.revision is not None:
        from ckptaudit.formats.hub import paths_at_revision

        args.paths = paths_at_revision(args.paths, args.revision)
    # Drawn on stderr, so only a terminal there matters: stdout may be a file.
    progress = not args.no_progress and sys.stderr.isatty()
    if args.format is OutputFormat.JSONL:
        return _stream_jsonl(args, policy, progress)
    reports = audit_paths(
        args.paths, policy=policy, jobs=args.jobs, progress=progress, dask=args.dask
    )
    if not reports:
        raise UsageError("no checkpoint files found under the given paths")
    options = _render_options(args, reports, policy, args.format)
    _emit(render(reports, args.format, policy, options=options), args.output, options.markup)
    return _exit_code(((r.status, _fails(r, args.fail_on)) for r in reports), args.fail_on)


def _stream_jsonl(args: argparse.Namespace, policy: Any, progress: bool) -> int:
    """Write one JSON line per file as soon as it is audited (runs of any size)."""
    from ckptaudit.report.json import jsonl_line
    from ckptaudit.runner import iter_audit_paths

    reports = iter_audit_paths(
        args.paths, policy=policy, jobs=args.jobs, progress=progress, dask=args.dask
    )
    outcomes: list[tuple[Status, bool]] = []

    def write(out: IO[str]) -> None:
        for report in reports:
            outcomes.append((report.status, _fails(report, args.fail_on)))
            out.write(jsonl_line(report, policy))
            out.flush()

    if args.output:
        _write_atomic(args.output, write)
    else:
        write(sys.stdout)
    if not outcomes:
        raise UsageError("no checkpoint files found under the given paths")
    return _exit_code(outcomes, args.fail_on)


def _cmd_report(args: argparse.Namespace) -> int:
    from ckptaudit.report import render
    from ckptaudit.runner import audit_paths

    policy = _policy(args)
    _check_output(args.output)
    _check_paths(args.paths)
    _core_notice()
    reports = audit_paths(args.paths, policy=policy, jobs=1, progress=False)
    if not reports:
        raise UsageError("no checkpoint files found under the given paths")
    args.detail = None
    args.fail_on = frozenset({FailOn.INCOMPATIBLE})
    options = _render_options(args, reports, policy, OutputFormat.MARKDOWN)
    _emit(render(reports, OutputFormat.MARKDOWN, policy, options=options), args.output, False)
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
    output = args.output or f"{args.which}-{'fixed' if args.fixed else 'legacy'}.pt"
    _check_output(output)
    try:
        from ckptaudit_demo import build_checkpoint
    except ImportError as exc:
        raise missing_extra(f"the demo ({exc})", "torch") from None
    with _replaced_on_success(output) as tmp:
        build_checkpoint(args.which, args.fixed, tmp)
    print(f"saved {output}")
    return EXIT_OK


@contextlib.contextmanager
def _replaced_on_success(output: str) -> Iterator[str]:
    """A temporary name beside ``output``, renamed over it when the block succeeds and
    removed when it fails, so that a failed write leaves nothing behind."""
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, output)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, (OSError, RuntimeError)):  # torch.save reports I/O as RuntimeError
            raise UsageError(f"cannot write {output}: {exc}") from None
        raise


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
