"""Build the deterministic benchmark corpus for ckptaudit and its peers.

Usage::

    python benchmarks/make_corpus.py OUTDIR [--only NAME ...] [--small]

Entries (NAME for ``--only``):

``objgraph``  ``objgraph.pt``: RL replay buffer, 200k dataclass ``Transition``
              objects in a ``collections.deque`` (~33 MB data.pkl, ~9 M opcodes).
``many``      ``many.pt``: 10k ``nn.Linear`` layers (20k tensors) plus Adam state
              after one step (60k more tensors; ~7.5 MB data.pkl).
``big``       ``big.pt``: 16 float32 tensors of 64 MiB each (1 GiB).
``dir1000``   ``dir1000/``: 1,000 small checkpoints (mostly clean state_dicts,
              a few with a dataclass / Enum / datetime in their metadata).
``dir20000``  ``dir20000/``: 20,000 small checkpoints; only built when named with
              ``--only dir20000`` (or ``--only all``).

``--small`` builds reduced sizes for a quick smoke run.  Every entry is built
from fixed seeds, so two runs give the same pickle streams.  For each
``dirN`` a ``dirN.manifest.json`` is written next to the directory with the kind
of every file and whether ``torch.load(weights_only=True)`` is expected to
accept it.  A ``corpus-summary.json`` with the printed table is written to
OUTDIR.  The corpus is never loaded by this script except to count opcodes
with :func:`pickletools.genops`, which does not execute anything.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import json
import pickletools
import random
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_types import Phase, TrainConfig, Transition

TORCH_PIN = "2.13.0"
ALL_NAMES = ("objgraph", "many", "big", "dir1000", "dir20000")
DEFAULT_NAMES = ("objgraph", "many", "big", "dir1000")


@dataclass(frozen=True)
class Sizes:
    """Knobs controlling how large each corpus entry is."""

    transitions: int
    linear_layers: int
    big_tensors: int
    big_tensor_numel: int
    dir1000: int
    dir20000: int


FULL = Sizes(
    transitions=200_000,
    linear_layers=10_000,
    big_tensors=16,
    big_tensor_numel=16 * 2**20,  # 64 MiB of float32
    dir1000=1_000,
    dir20000=20_000,
)
SMALL = Sizes(
    transitions=20_000,
    linear_layers=1_000,
    big_tensors=16,
    big_tensor_numel=2**20,  # 4 MiB of float32
    dir1000=100,
    dir20000=500,
)


@dataclass
class EntryStats:
    """One row of the summary table."""

    name: str
    files: int
    size_bytes: int
    data_pkl_bytes: int
    opcodes: int
    build_seconds: float


# --------------------------------------------------------------------------- #
# Inspection (static: reads data.pkl from the zip, counts opcodes, never loads)
# --------------------------------------------------------------------------- #


def read_data_pkl(path: Path) -> bytes:
    """Return the bytes of the ``*/data.pkl`` member of a zip checkpoint."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith("/data.pkl") or name == "data.pkl":
                return zf.read(name)
    raise ValueError(f"{path}: no data.pkl member")


def count_opcodes(data: bytes) -> int:
    """Count pickle opcodes with :func:`pickletools.genops` (no execution)."""
    return sum(1 for _ in pickletools.genops(data))


def inspect_files(name: str, paths: Iterable[Path], seconds: float) -> EntryStats:
    """Aggregate size, data.pkl size and opcode count over ``paths``."""
    files = size = pkl = ops = 0
    for path in paths:
        data = read_data_pkl(path)
        files += 1
        size += path.stat().st_size
        pkl += len(data)
        ops += count_opcodes(data)
    return EntryStats(name, files, size, pkl, ops, seconds)


# --------------------------------------------------------------------------- #
# Builders
# --------------------------------------------------------------------------- #


def build_objgraph(out: Path, n: int) -> list[Path]:
    """Write ``objgraph.pt``: a deque of ``n`` dataclass transitions."""
    rng = random.Random(1234)
    buf: collections.deque[Transition] = collections.deque()
    episode = t = 0
    for i in range(n):
        done = rng.random() < 0.005
        buf.append(
            Transition(
                step=i,
                obs_idx=i,
                next_obs_idx=i + 1,
                action=rng.randrange(18),
                reward=round(rng.gauss(0.0, 1.0), 3),
                value=rng.random(),
                log_prob=-3.0 * rng.random(),
                td_error=rng.gauss(0.0, 0.1),
                wall_time=1.7e9 + i * 0.01,
                done=done,
                info={
                    "episode": episode,
                    "t": t,
                    "lives": 3 - (t // 1000) % 4,
                    "TimeLimit.truncated": False,
                    "trace_id": f"actor-{i % 8}/ep{episode:06d}/t{t:07d}/seed0",
                },
            )
        )
        t += 1
        if done:
            episode += 1
            t = 0
    path = out / "objgraph.pt"
    torch.save({"replay_buffer": buf, "capacity": n, "seed": 1234}, path, pickle_protocol=2)
    return [path]


def build_many(out: Path, layers: int) -> list[Path]:
    """Write ``many.pt``: ``2*layers`` parameters plus Adam state after one step."""
    torch.manual_seed(0)
    encoder = nn.Module()
    encoder.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(layers))
    model = nn.Module()
    model.encoder = encoder  # keys look like "encoder.layers.123.weight"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    opt.step()
    ckpt = {
        "epoch": 7,
        "global_step": 12_345,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
    }
    path = out / "many.pt"
    torch.save(ckpt, path)
    return [path]


def build_big(out: Path, count: int, numel: int) -> list[Path]:
    """Write ``big.pt``: ``count`` float32 tensors of ``numel`` elements each."""
    side = int(numel**0.5)
    shape: tuple[int, ...] = (side, numel // side) if side * (numel // side) == numel else (numel,)
    sd = {}
    for i in range(count):
        sd[f"blocks.{i}.weight"] = torch.empty(shape, dtype=torch.float32).fill_(0.5 * i + 0.25)
    path = out / "big.pt"
    torch.save(sd, path)
    return [path]


def _small_state_dict(rng: random.Random) -> dict[str, torch.Tensor]:
    """A small MLP/conv state_dict whose shape depends on ``rng``."""
    torch.manual_seed(rng.randrange(2**31))
    kind = rng.randrange(3)
    if kind == 0:
        dims = [rng.choice((8, 16, 32)) for _ in range(rng.randint(2, 5))]
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            mods += [nn.Linear(a, b), nn.ReLU()]
        model: nn.Module = nn.Sequential(*mods)
    elif kind == 1:
        c = rng.choice((4, 8, 16))
        model = nn.Sequential(
            nn.Conv2d(3, c, 3), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3), nn.BatchNorm2d(c)
        )
    else:
        d = rng.choice((16, 32))
        model = nn.Sequential(nn.Embedding(64, d), nn.LayerNorm(d), nn.Linear(d, d))
    return model.state_dict()


def _small_checkpoint(index: int, seed: int) -> tuple[Any, str, bool]:
    """Return ``(object, kind, weights_only_expected_ok)`` for file ``index``."""
    rng = random.Random(seed * 1_000_003 + index)
    sd = _small_state_dict(rng)
    special = index % 50
    if special == 7:
        cfg = TrainConfig(lr=1e-3, batch_size=32, epochs=rng.randint(1, 90), tags=["bench"])
        return {"state_dict": sd, "config": cfg}, "dataclass", False
    if special == 23:
        return {"state_dict": sd, "phase": Phase.FINETUNE, "epoch": index}, "enum", False
    if special == 41:
        stamp = dt.datetime(2024, 1, 1, 12, 0, 0) + dt.timedelta(minutes=index)
        return {"state_dict": sd, "saved_at": stamp}, "datetime", False
    style = rng.randrange(3)
    if style == 0:
        return sd, "state_dict", True
    meta = {"epoch": rng.randint(0, 99), "loss": round(rng.random(), 4), "arch": "tiny"}
    if style == 1:
        return {"state_dict": sd, **meta}, "wrapped_state_dict", True
    return {"model": sd, "meta": meta, "versions": (1, 2, 3)}, "nested_state_dict", True


def build_dir(out: Path, name: str, count: int, seed: int) -> list[Path]:
    """Write ``count`` small checkpoints into ``out/name`` plus a manifest."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob("*.pt"):
        stale.unlink()
    manifest: dict[str, dict[str, Any]] = {}
    paths = []
    width = len(str(count - 1))
    for i in range(count):
        obj, kind, ok = _small_checkpoint(i, seed)
        path = d / f"ckpt_{i:0{width}d}.pt"
        torch.save(obj, path)
        paths.append(path)
        manifest[path.name] = {"kind": kind, "weights_only_ok": ok}
    kinds = collections.Counter(v["kind"] for v in manifest.values())
    doc = {"count": count, "kinds": dict(sorted(kinds.items())), "files": manifest}
    (out / f"{name}.manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
    return paths


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def builders(out: Path, sizes: Sizes) -> dict[str, Callable[[], list[Path]]]:
    """Map each entry name to a zero-argument builder."""
    return {
        "objgraph": lambda: build_objgraph(out, sizes.transitions),
        "many": lambda: build_many(out, sizes.linear_layers),
        "big": lambda: build_big(out, sizes.big_tensors, sizes.big_tensor_numel),
        "dir1000": lambda: build_dir(out, "dir1000", sizes.dir1000, seed=1000),
        "dir20000": lambda: build_dir(out, "dir20000", sizes.dir20000, seed=20000),
    }


def format_table(rows: list[EntryStats]) -> str:
    """Render the summary as a Markdown table."""
    lines = [
        "| entry | files | size | data.pkl bytes | opcodes | build s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.files:,} | {r.size_bytes / 2**20:,.1f} MiB | "
            f"{r.data_pkl_bytes:,} | {r.opcodes:,} | {r.build_seconds:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path, help="where to write the corpus (e.g. /tmp/ckpt-corpus)")
    p.add_argument(
        "--only",
        action="append",
        choices=(*ALL_NAMES, "all"),
        help="build only this entry (repeatable); 'all' includes dir20000",
    )
    p.add_argument("--small", action="store_true", help="reduced sizes for a smoke run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the requested entries and print the summary table."""
    args = parse_args(argv)
    if not torch.__version__.startswith(TORCH_PIN):
        print(f"warning: torch {torch.__version__} != pinned {TORCH_PIN}", file=sys.stderr)
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    names = DEFAULT_NAMES if not args.only else tuple(args.only)
    if "all" in names:
        names = ALL_NAMES
    sizes = SMALL if args.small else FULL
    table = builders(out, sizes)
    rows = []
    for name in ALL_NAMES:
        if name not in names:
            continue
        t0 = time.perf_counter()
        paths = table[name]()
        built = time.perf_counter() - t0
        label = f"{name}/" if name.startswith("dir") else f"{name}.pt"
        row = inspect_files(label, paths, built)
        rows.append(row)
        print(f"built {label}: {row.files} file(s), {row.opcodes:,} opcodes", file=sys.stderr)
    text = format_table(rows)
    print(text)
    summary_path = out / "corpus-summary.json"
    old: dict[str, Any] = {}
    if summary_path.exists():
        old = json.loads(summary_path.read_text())
    entries = old.get("entries", {})
    for r in rows:
        entries[r.name] = {**asdict(r), "small": args.small}
    summary = {"torch": torch.__version__, "entries": entries}
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
