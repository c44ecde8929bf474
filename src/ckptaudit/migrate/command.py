"""Arguments and output of ``ckptaudit migrate`` and ``ckptaudit allowlist``.

:mod:`ckptaudit.cli` registers the parsers from here and prints what the ``run_*``
functions return; nothing here prints or exits.

Exit status of ``migrate``: 0 every file migrated (or planned, with ``--dry-run``); 1 a file
was refused (dangerous, TorchScript, not convertible) or failed verification; 2 usage error.
``allowlist``: 0 a snippet was written; 1 dangerous globals (listed) or nothing to allowlist
can make torch load the file.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from ckptaudit.errors import CkptAuditError, MigrationError, UsageError
from ckptaudit.migrate.manifest import Manifest, manifest_dict, render_table
from ckptaudit.migrate.plan import MigrateOptions

__all__ = ["Outcome", "add_parsers", "run_allowlist", "run_migrate"]


@dataclass(frozen=True)
class Outcome:
    """What a command produced: exit status, text for stdout, text for stderr."""

    code: int
    out: str = ""
    err: str = ""


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``migrate`` and ``allowlist`` on the CLI's subparsers."""
    mig = sub.add_parser(
        "migrate",
        help="write a copy that torch.load(weights_only=True) loads, without running the file",
    )
    mig.add_argument("src", nargs="+", metavar="SRC", help="checkpoint(s), directories or URLs")
    mig.add_argument(
        "--dst",
        "-o",
        metavar="DST",
        help="the new file (a name ending in .safetensors writes safetensors); with one SRC, "
        "a second positional argument works too",
    )
    mig.add_argument("--out", metavar="OUTDIR", help="folder for many files (directories, URLs)")
    mig.add_argument("--in-place", action="store_true", help="replace SRC, keeping SRC.bak")
    mig.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    mig.add_argument(
        "--sanitize",
        action="store_true",
        help='replace dangerous constructs with "<removed: module.name>" and keep every tensor',
    )
    mig.add_argument(
        "--datetime",
        choices=("iso", "timestamp"),
        default="iso",
        help="datetimes as ISO 8601 text (default) or float timestamps (those with a timezone, "
        "and naive ones with --assume-timezone)",
    )
    mig.add_argument("--assume-timezone", metavar="ZONE", help="the zone of naive datetimes")
    mig.add_argument(
        "--emit-code", metavar="FILE", help="write to_dict/from_dict code for converted classes"
    )
    mig.add_argument("--format", choices=("text", "json"), default="text")
    mig.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="parallel files")
    mig.add_argument(
        "--no-torch", action="store_true", help="do not verify with torch even if installed"
    )

    allow = sub.add_parser(
        "allowlist", help="print the add_safe_globals snippet for files you trust"
    )
    allow.add_argument("paths", nargs="+", metavar="PATH")
    allow.add_argument(
        "--context", action="store_true", help="the torch.serialization.safe_globals form"
    )


def _options(args: argparse.Namespace) -> MigrateOptions:
    return MigrateOptions(
        datetime=args.datetime, assume_timezone=args.assume_timezone, sanitize=args.sanitize
    )


def _targets(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(source, destination) pairs from the arguments."""
    from ckptaudit.discovery import expand_inputs
    from ckptaudit.formats.remote import is_url

    srcs = list(args.src)
    if args.out is None:
        if args.in_place:
            if args.dst:
                raise UsageError("--in-place takes no destination")
            return [(s, None) for s in expand_inputs(srcs)]
        if len(srcs) == 2 and args.dst is None and not os.path.isdir(srcs[0]):
            srcs, args.dst = srcs[:1], srcs[1]
        if len(srcs) != 1 or os.path.isdir(srcs[0]) or (args.dst is None and not args.dry_run):
            raise UsageError("migrate SRC DST, or migrate SRC... --out OUTDIR")
        return [(srcs[0], args.dst or srcs[0] + ".migrated.pt")]
    if args.dst or args.in_place:
        raise UsageError("--out does not combine with DST or --in-place")
    pairs: list[tuple[str, str | None]] = []
    for raw in srcs:
        found = expand_inputs([raw])
        for path in found:
            if is_url(path):
                rel = path.rstrip("/").rsplit("/", 1)[-1]
            elif os.path.isdir(raw):
                rel = os.path.relpath(path, raw)
            else:
                rel = os.path.basename(path)
            pairs.append((path, os.path.join(args.out, rel)))
    if not pairs:
        raise UsageError("no checkpoint files found under the given paths")
    return pairs


def _one(
    src: str, dst: str | None, args: argparse.Namespace
) -> tuple[str, Manifest | None, str | None]:
    from ckptaudit.migrate.api import migrate

    try:
        if dst is not None and not args.dry_run:
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        manifest = migrate(
            src,
            dst,
            dry_run=args.dry_run,
            in_place=args.in_place,
            options=_options(args),
            verify_with_torch=False if args.no_torch else None,
        )
    except UsageError:
        raise
    except CkptAuditError as exc:
        return src, None, str(exc)
    except OSError as exc:
        return src, None, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return src, manifest, None


def run_migrate(args: argparse.Namespace, progress: Callable[[str], None]) -> Outcome:
    """Run ``ckptaudit migrate``; ``progress`` receives one line per finished file."""
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    pairs = _targets(args)
    results: list[tuple[str, Manifest | None, str | None]] = []
    if args.jobs == 1 or len(pairs) == 1:
        for n, (src, dst) in enumerate(pairs, 1):
            results.append(_one(src, dst, args))
            if len(pairs) > 1:
                progress(
                    f"[{n}/{len(pairs)}] {src}: {'ok' if results[-1][2] is None else 'failed'}"
                )
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(_one, src, dst, args) for src, dst in pairs]
            for n, future in enumerate(futures, 1):
                results.append(future.result())
                state = "ok" if results[-1][2] is None else "failed"
                progress(f"[{n}/{len(pairs)}] {results[-1][0]}: {state}")
    code = 0 if all(error is None for _, _, error in results) else 1
    err = "".join(f"ckptaudit: {src}: {error}\n" for src, _, error in results if error)
    manifests = [m for _, m, _ in results if m is not None]
    if args.emit_code and manifests:
        from ckptaudit.migrate.codegen import generate_code

        text = generate_code(manifests)
        with open(args.emit_code, "w", encoding="utf-8") as handle:
            handle.write(text)
    if args.format == "json":
        data = [manifest_dict(m) for m in manifests]
        failed = [{"source": s, "error": e} for s, _, e in results if e]
        out = json.dumps({"migrations": data, "failed": failed}, indent=2) + "\n"
        return Outcome(code, out, err)
    out = "".join(render_table(m) for m in manifests)
    if len(results) > 1:
        out += _summary(results)
    if args.emit_code and manifests:
        out += f"wrote {args.emit_code}\n"
    return Outcome(code, out, err)


def _summary(results: list[tuple[str, Manifest | None, str | None]]) -> str:
    width = min(max(len(src) for src, _, _ in results), 60)
    lines = [f"\n{'file':<{width}}  {'before':<12}  conversions  tensors  result"]
    for src, manifest, error in results:
        name = src if len(src) <= width else "..." + src[-(width - 3) :]
        if manifest is None:
            lines.append(f"{name:<{width}}  {'-':<12}  {'-':>11}  {'-':>7}  {error}")
            continue
        lines.append(
            f"{name:<{width}}  {manifest.status_before:<12}  {len(manifest.conversions):>11}  "
            f"{len(manifest.tensors):>7}  {'planned' if manifest.dry_run else 'ok'}"
        )
    ok = sum(1 for _, m, _ in results if m is not None)
    lines.append(f"{ok} of {len(results)} migrated")
    return "\n".join(lines) + "\n"


def run_allowlist(args: argparse.Namespace) -> Outcome:
    """Run ``ckptaudit allowlist``."""
    from ckptaudit.migrate.allowlist import allowlist_snippet

    try:
        snippet = allowlist_snippet(args.paths, context=args.context)
    except MigrationError as exc:
        return Outcome(1, "", f"ckptaudit: {exc}\n")
    return Outcome(0 if snippet.sufficient else 1, snippet.code, snippet.warnings)
