"""Build a corpus of benign checkpoints from real libraries: ``python benign_corpus.py OUTDIR``.

Every file is what a real library or training script writes in its normal use: ``torch.save``
of the objects it saves, or the file its own save function writes (ultralytics' trainer,
stable-baselines3's ``model.save``, ignite's ``Checkpoint``, skorch's ``pickle.dump``,
``torch.distributed.checkpoint.save``, ``torch.jit.save``...), or the weights a wheel ships
(lpips, chgnet), copied as they are. It is the false-alarm base of ``benchmarks/detection.py``:
no file here may be called ``dangerous``. A library that is missing or fails is skipped with a
note, never faked; ``OUTDIR/MANIFEST.json`` lists each file, what made it, the library and the
versions.

Run it with the interpreter of a separate venv that has the libraries (never the project's),
and never let pip replace torch 2.13.0: a newer torch downloads a multi-GB CUDA build, so
every install goes through a constraints file that pins it::

    python3 -m venv /work/scratch/venv-benign
    echo torch==2.13.0 > /tmp/torch-pin.txt
    /work/scratch/venv-benign/bin/pip install -c /tmp/torch-pin.txt \\
        -r benchmarks/requirements-benign.txt
    /work/scratch/venv-benign/bin/pip install --no-deps chgnet==0.4.2   # only its shipped weights
    /work/scratch/venv-benign/bin/python benchmarks/benign_corpus.py --install-torchvision-shim
    /work/scratch/venv-benign/bin/python benchmarks/benign_corpus.py /work/scratch/benign-corpus

The torchvision that pip resolves beside torch 2.13.0 (0.28.0) does not import: its compiled
ops do not load, and registering fake kernels for them raises ``operator torchvision::nms does
not exist``. ultralytics, timm and torchvision's own models need it, so
``--install-torchvision-shim`` writes ``TORCHVISION_SHIM`` as the venv's ``sitecustomize.py``:
when torchvision is first imported it ignores those registration failures (for
``torchvision::`` ops only) and gives ``torchvision.ops.nms`` in pure torch (ultralytics'
validation calls it). Nothing a library saves depends on either.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import fractions
import importlib.metadata
import importlib.util
import inspect
import io
import json
import pathlib
import pickle
import random
import shutil
import sys
import sysconfig
import tempfile
import uuid
import zipfile
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Saved:
    """An object the corpus writes with ``torch.save``."""

    what: str
    library: str
    build: Callable[[], Any]
    legacy: bool = False
    protocol: int = 2


@dataclasses.dataclass(frozen=True)
class Written:
    """Files a library's own save function writes into OUTDIR.

    ``write(outdir)`` returns ``{path relative to outdir: what it is}`` for every file it wrote.
    """

    what: str
    library: str
    write: Callable[[pathlib.Path], dict[str, str]]


Builder = Callable[[], Any]
Writer = Callable[[pathlib.Path], dict[str, str]]
BUILDERS: dict[str, Saved | Written] = {}


def corpus(
    name: str, what: str, library: str = "torch", *, legacy: bool = False, protocol: int = 2
) -> Callable[[Builder], Builder]:
    """Register a builder whose object is written to ``OUTDIR/name`` with ``torch.save``."""

    def register(fn: Builder) -> Builder:
        if name in BUILDERS:
            raise ValueError(f"duplicate corpus name {name}")
        BUILDERS[name] = Saved(what, library, fn, legacy, protocol)
        return fn

    return register


def writes(name: str, what: str, library: str) -> Callable[[Writer], Writer]:
    """Register a writer that saves files through the library's own code (``name``: a label)."""

    def register(fn: Writer) -> Writer:
        if name in BUILDERS:
            raise ValueError(f"duplicate corpus name {name}")
        BUILDERS[name] = Written(what, library, fn)
        return fn

    return register


@contextmanager
def _workdir() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="benign-") as tmp:
        yield pathlib.Path(tmp)


def _copy(src: pathlib.Path, outdir: pathlib.Path, name: str) -> str:
    dest = outdir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return name


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    )


def _trained() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return model, opt


# -- plain torch -------------------------------------------------------------------------------


@corpus("state_dict.pt", "model.state_dict()")
def _state_dict() -> Any:
    return _model().state_dict()


@corpus("checkpoint_adamw.pt", "model + AdamW state + epoch, the usual training checkpoint")
def _ckpt() -> Any:
    model, opt = _trained()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7, "step": 1234}


def _optimizer_classes() -> list[type[torch.optim.Optimizer]]:
    """Every optimizer torch.optim exports, so that a new one is built (or skipped) by name."""
    found = []
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        is_optimizer = isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
        if is_optimizer and cls is not torch.optim.Optimizer:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


# Options that make the saved state richer than the defaults (extra buffers, flags).
_OPTIMIZER_OPTIONS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "Adam": {"lr": 1e-3, "amsgrad": True},
    "AdamW": {"lr": 1e-3, "weight_decay": 0.01},
    "RMSprop": {"lr": 1e-3, "momentum": 0.9, "centered": True},
    "Adagrad": {"lr": 1e-2},
    "RAdam": {"lr": 1e-3, "decoupled_weight_decay": True},
    "NAdam": {"lr": 1e-3, "decoupled_weight_decay": True},
}


def _opt_state(cls: type[torch.optim.Optimizer]) -> Any:
    torch.manual_seed(0)
    kw = _OPTIMIZER_OPTIONS.get(cls.__name__, {})
    if cls.__name__ == "SparseAdam":  # only takes sparse gradients: an Embedding(sparse=True)
        emb = torch.nn.Embedding(10, 4, sparse=True)
        opt = cls(list(emb.parameters()), **kw)
        emb(torch.tensor([1, 3])).sum().backward()
        opt.step()
        return opt.state_dict()
    model = _model()
    params = list(model.parameters())
    if cls.__name__ == "Muon":  # only takes 2-D parameters; the others go to another optimizer
        params = [p for p in params if p.ndim == 2]
    opt = cls(params, **kw)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(torch.randn(2, 3, 8, 8)).sum()
        loss.backward()
        return loss

    for _ in range(2):  # twice: some optimizers create their state lazily on the first step
        opt.step(closure)
    return opt.state_dict()


for _cls in _optimizer_classes():
    corpus(f"optimizer_{_cls.__name__.lower()}.pt", f"torch.optim.{_cls.__name__}.state_dict()")(
        lambda _c=_cls: _opt_state(_c)
    )


@corpus("optimizer_whole_adam.pt", "a torch.optim.Adam object saved whole (torch.save(opt))")
def _optimizer_whole() -> Any:
    model, _ = _trained()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.step()
    return {"model": model, "optimizer": opt}


def warmup_factor(epoch: int) -> float:
    """A module-level LambdaLR function, as training scripts define it."""
    return min(1.0, (epoch + 1) / 5)


class WarmupCosine:
    """A callable LambdaLR object: its ``__dict__`` goes into the scheduler's state_dict."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup = warmup
        self.total = total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return 0.5 * (1 + np.cos(np.pi * (step - self.warmup) / max(1, self.total - self.warmup)))


def _sched_state(make: Callable[[torch.optim.Optimizer], Any]) -> Any:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    sched = make(opt)
    for _ in range(3):
        opt.step()
        sched.step()
    return {"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}


_LR = torch.optim.lr_scheduler
# One recipe per scheduler class (a class missing here is built by no builder: add it); the
# keys are file names, the first word the class.
_SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "lambdalr": lambda o: _LR.LambdaLR(o, lambda e: 0.9**e),
    "lambdalr_function": lambda o: _LR.LambdaLR(o, warmup_factor),
    "lambdalr_callable_object": lambda o: _LR.LambdaLR(o, WarmupCosine(2, 10)),
    "multiplicativelr": lambda o: _LR.MultiplicativeLR(o, lambda e: 0.95),
    "steplr": lambda o: _LR.StepLR(o, 2, 0.5),
    "multisteplr": lambda o: _LR.MultiStepLR(o, [1, 2], 0.1),
    "constantlr": lambda o: _LR.ConstantLR(o, 0.5, total_iters=2),
    "linearlr": lambda o: _LR.LinearLR(o, 0.1, total_iters=2),
    "exponentiallr": lambda o: _LR.ExponentialLR(o, 0.9),
    "cosine": lambda o: _LR.CosineAnnealingLR(o, 10),
    "cosineannealingwarmrestarts": lambda o: _LR.CosineAnnealingWarmRestarts(o, 2, 2),
    "cycliclr": lambda o: _LR.CyclicLR(o, 0.01, 0.1, step_size_up=2),
    "cycliclr_exp_range": lambda o: _LR.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=0.9),
    "onecycle": lambda o: _LR.OneCycleLR(o, 1.0, total_steps=10),
    "polynomiallr": lambda o: _LR.PolynomialLR(o, total_iters=5, power=2.0),
    "warmup_chain": lambda o: _LR.SequentialLR(
        o, [_LR.LinearLR(o, 0.1, total_iters=2), _LR.ExponentialLR(o, 0.9)], milestones=[2]
    ),
    "chainedscheduler": lambda o: _LR.ChainedScheduler(
        [_LR.ConstantLR(o, 0.5, total_iters=2), _LR.ExponentialLR(o, 0.9)]
    ),
    "swalr": lambda o: torch.optim.swa_utils.SWALR(o, swa_lr=0.05, anneal_epochs=2),
}
for _name, _make in _SCHEDULERS.items():
    corpus(f"lr_scheduler_{_name}.pt", f"lr_scheduler {_name} state_dict + optimizer")(
        lambda _m=_make: _sched_state(_m)
    )


@corpus("lr_scheduler_whole_steplr.pt", "a StepLR object saved whole (with its optimizer)")
def _scheduler_whole() -> Any:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    sched = _LR.StepLR(opt, 2)
    opt.step()
    sched.step()
    return {"scheduler": sched, "optimizer": opt}


@corpus("lr_scheduler_plateau.pt", "ReduceLROnPlateau state_dict")
def _plateau() -> Any:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    for loss in (1.0, 0.9, 0.95):
        sched.step(loss)
    return sched.state_dict()


@corpus("grad_scaler.pt", "torch.amp.GradScaler state (AMP)")
def _scaler() -> Any:
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    return {"scaler": scaler.state_dict()}


@corpus("ema.pt", "EMA copy of the weights (torch.optim.swa_utils.AveragedModel)")
def _ema() -> Any:
    model = _model()
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999)
    )
    ema.update_parameters(model)
    return {"model": model.state_dict(), "ema": ema.state_dict()}


@corpus("rng_states.pt", "torch, numpy (legacy + Generator) and random RNG states")
def _rng() -> Any:
    return {
        "torch": torch.get_rng_state(),
        "torch_generator": torch.Generator().manual_seed(3).get_state(),
        "numpy": np.random.get_state(),
        "numpy_generator": np.random.default_rng(1).bit_generator.state,
        "python": random.getstate(),
    }


@corpus("numpy_rng_objects.pt", "numpy RandomState and Generator objects")
def _np_rng_obj() -> Any:
    return {"rs": np.random.RandomState(0), "gen": np.random.default_rng(0)}


@corpus("random_instance.pt", "a random.Random instance")
def _random_obj() -> Any:
    return {"rng": random.Random(42)}


@corpus("module_whole.pt", "torch.nn module saved whole (torch.save(model))")
def _module_whole() -> Any:
    return _model()


@corpus("transformer_layer_whole.pt", "torch.nn.TransformerEncoderLayer saved whole")
def _transformer_whole() -> Any:
    return torch.nn.TransformerEncoderLayer(8, 2, 16)


@corpus("tensor_kinds.pt", "parameters, buffers, views, sparse, complex, bf16, int8, bool")
def _tensors() -> Any:
    base = torch.arange(24.0).reshape(4, 6)
    return {
        "param": torch.nn.Parameter(torch.ones(3)),
        "view": base[1:, ::2],
        "sparse_coo": torch.eye(3).to_sparse(),
        "sparse_csr": torch.eye(3).to_sparse_csr(),
        "complex": torch.randn(3, dtype=torch.complex64),
        "bf16": torch.ones(2, dtype=torch.bfloat16),
        "int8": torch.zeros(4, dtype=torch.int8),
        "bool": torch.tensor([True, False]),
        "quantized": torch.quantize_per_tensor(torch.rand(4), 0.1, 0, torch.quint8),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "size": torch.Size([2, 3]),
    }


@corpus("legacy_format.pt", "a state_dict in the legacy (non-zip) format", legacy=True)
def _legacy() -> Any:
    return _model().state_dict()


# -- Python values configs are made of ------------------------------------------------------


@corpus("argparse_namespace.pt", "argparse.Namespace of hyperparameters with the weights")
def _argparse() -> Any:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--name", default="run")
    return {"args": parser.parse_args([]), "model": _model().state_dict()}


@dataclasses.dataclass
class TrainConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    layers: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    run_dir: pathlib.Path = pathlib.Path("runs/exp1")


@corpus("dataclass_config.pt", "a dataclass config (module benign_corpus)")
def _dataclass() -> Any:
    return {"config": TrainConfig(), "config_dict": dataclasses.asdict(TrainConfig())}


class Flags(enum.IntFlag):
    A = 1
    B = 2


class Phase(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@corpus("enum_and_namedtuple.pt", "an Enum member and a namedtuple")
def _enum() -> Any:
    point = namedtuple("Point", "x y")
    globals()["Point"] = point
    point.__module__ = __name__
    return {"phase": Phase.TRAIN, "point": point(1, 2)}


@corpus("datetimes_tz.pt", "timezone-aware datetimes (UTC, fixed offset, ZoneInfo)")
def _datetimes() -> Any:
    return {
        "utc": datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc),
        "offset": datetime.datetime(
            2024, 5, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        "zoneinfo": datetime.datetime(2024, 5, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
        "date": datetime.date(2024, 5, 1),
        "elapsed": datetime.timedelta(hours=3, seconds=5),
    }


@corpus("paths.pt", "pathlib paths of data and output directories")
def _paths() -> Any:
    return {
        "data": pathlib.Path("/data/imagenet"),
        "pure": pathlib.PurePosixPath("a/b"),
        "win": pathlib.PureWindowsPath("C:/x"),
    }


@corpus("python_values.pt", "collections, Decimal, Fraction, UUID, sets, bytes, complex")
def _values() -> Any:
    return {
        "ordered": OrderedDict(a=1),
        "counter": Counter("hello"),
        "deque": deque([1, 2, 3], maxlen=5),
        "defaultdict": defaultdict(list, {"a": [1]}),
        "decimal": Decimal("1.10"),
        "fraction": fractions.Fraction(1, 3),
        "uuid": uuid.UUID(int=7),
        "set": {1, 2},
        "frozenset": frozenset({3}),
        "bytes": b"\x00\x01",
        "bytearray": bytearray(b"ab"),
        "complex": 1 + 2j,
        "slice": slice(1, 5, 2),
        "range": range(3),
        "namespace": SimpleNamespace(a=1),
    }


@corpus("metrics_history.pt", "training history: lists of floats, numpy scalars, arrays")
def _history() -> Any:
    return {
        "loss": [float(x) for x in np.linspace(1, 0.1, 50)],
        "best": np.float32(0.1),
        "best_epoch": np.int64(49),
        "confusion": np.eye(3, dtype=np.int32),
        "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
        "structured": np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        "strings": np.array(["a", "bc"]),
    }


@corpus("tokenizer_vocab.pt", "a tokenizer vocabulary dict and merges list")
def _vocab() -> Any:
    vocab = {f"tok{i}": i for i in range(500)}
    return {"vocab": vocab, "merges": [("t", "o"), ("to", "k")], "special": {"<pad>": 0}}


@corpus(
    "protocol0_objects.pt",
    "argparse Namespace and dataclass saved with pickle_protocol=0",
    protocol=0,
)
def _proto0() -> Any:
    return {
        "args": argparse.Namespace(lr=0.1),
        "config": TrainConfig(),
        "ordered": OrderedDict(a=1),
    }


@corpus(
    "stdlib_misc.pt", "array.array, re.Pattern, ChainMap, IntFlag, numpy datetime64/SeedSequence"
)
def _stdlib_misc() -> Any:
    import array
    import re
    from collections import ChainMap

    return {
        "array": array.array("f", [1.0, 2.0]),
        "pattern": re.compile(r"layer\.(\d+)\.weight"),
        "chain": ChainMap({"a": 1}, {"b": 2}),
        "flags": Flags.A | Flags.B,
        "when": np.datetime64("2024-05-01T12:00"),
        "took": np.timedelta64(5, "s"),
        "seed": np.random.SeedSequence(1234),
        "f16": np.float16(1.5),
    }


@corpus("weight_norm_whole.pt", "modules with weight_norm / spectral_norm hooks saved whole")
def _weight_norm() -> Any:
    return torch.nn.Sequential(
        torch.nn.utils.weight_norm(torch.nn.Linear(4, 4)),
        torch.nn.utils.spectral_norm(torch.nn.Linear(4, 2)),
    )


@corpus("distributions.pt", "torch.distributions objects")
def _distributions() -> Any:
    d = torch.distributions
    return {
        "normal": d.Normal(torch.zeros(2), torch.ones(2)),
        "cat": d.Categorical(logits=torch.zeros(3)),
    }


@corpus(
    "sklearn_pipeline.pt",
    "an sklearn Pipeline with FunctionTransformer(np.log1p) and a fitted model",
    "scikit-learn",
)
def _sklearn_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    X, y = rng.random((20, 3)), np.array([0, 1] * 10)
    return {"pipe": make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)}


@corpus("partial_lr_fn.pt", "functools.partial of a math function stored in a config")
def _partial() -> Any:
    import functools
    import math

    return {"warmup": functools.partial(math.pow, 0.9)}


@corpus("quantized_model_whole.pt", "a dynamically quantized model saved whole")
def _quantized() -> Any:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


@corpus("fp8_and_uint_tensors.pt", "float8, uint16/32/64 and nested (jagged) tensors")
def _new_dtypes() -> Any:
    return {
        "f8": torch.zeros(4, dtype=torch.float8_e4m3fn),
        "u16": torch.zeros(2, dtype=torch.uint16),
        "nested": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
    }


@corpus("sparse_tensors.pt", "sparse COO (coalesced or not, hybrid), CSR, CSC, BSR, BSC tensors")
def _sparse() -> Any:
    dense = torch.tensor([[1.0, 0, 0, 2], [0, 0, 3, 0], [0, 4, 0, 0], [5, 0, 0, 6]])
    uncoalesced = torch.sparse_coo_tensor([[0, 0, 1], [1, 1, 2]], [1.0, 2.0, 3.0], (3, 3))
    return {
        "coo": dense.to_sparse(),
        "coo_uncoalesced": uncoalesced,
        "coo_hybrid": torch.ones(4, 4, 2).to_sparse(1),
        "csr": dense.to_sparse_csr(),
        "csc": dense.to_sparse_csc(),
        "bsr": dense.to_sparse_bsr((2, 2)),
        "bsc": dense.to_sparse_bsc((2, 2)),
        "param": torch.nn.Parameter(dense.to_sparse(), requires_grad=False),
    }


@corpus("sparse_embedding_state.pt", "an Embedding(sparse=True) state_dict and its sparse grad")
def _sparse_grad() -> Any:
    emb = torch.nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 3])).sum().backward()
    assert emb.weight.grad is not None
    return {"state": emb.state_dict(), "grad": emb.weight.grad}


@corpus("nested_strided.pt", "nested tensors in the strided layout (torch.nested default)")
def _nested_strided() -> Any:
    return {
        "nt": torch.nested.nested_tensor([torch.ones(2, 3), torch.zeros(4, 3)]),
        "nt_int": torch.nested.as_nested_tensor([torch.arange(3), torch.arange(5)]),
    }


@corpus("nested_jagged.pt", "nested tensors in the jagged layout (NJT), contiguous and not")
def _nested_jagged() -> Any:
    values = torch.arange(12.0).reshape(6, 2)
    offsets = torch.tensor([0, 2, 6])
    return {
        "njt": torch.nested.nested_tensor(
            [torch.ones(2, 3), torch.zeros(4, 3)], layout=torch.jagged
        ),
        "from_offsets": torch.nested.nested_tensor_from_jagged(values, offsets),
        "narrowed": torch.nested.narrow(
            torch.arange(12.0).reshape(3, 4),
            1,
            torch.tensor([0, 1, 0]),
            torch.tensor([2, 3, 1]),
            layout=torch.jagged,
        ),
    }


@corpus(
    "quantized_tensors.pt", "per-tensor and per-channel quantized tensors (quint8, qint8, qint32)"
)
def _qtensors() -> Any:
    x = torch.rand(3, 4)
    return {
        "per_tensor": torch.quantize_per_tensor(x, 0.1, 0, torch.quint8),
        "per_tensor_qint32": torch.quantize_per_tensor(x, 0.01, 0, torch.qint32),
        "per_channel": torch.quantize_per_channel(
            x, torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1, 2]), 0, torch.qint8
        ),
    }


class _QuantNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(self.quant(x)))
        return self.dequant(self.fc(x.flatten(1)))


def _static_quantized() -> torch.nn.Module:
    torch.manual_seed(0)
    model = _QuantNet().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    prepared = torch.ao.quantization.prepare(model)
    prepared(torch.randn(4, 3, 8, 8))
    return torch.ao.quantization.convert(prepared)


@corpus("quantized_static_state_dict.pt", "an eager-mode statically quantized model's state_dict")
def _static_q_state() -> Any:
    return _static_quantized().state_dict()


@corpus("quantized_static_whole.pt", "an eager-mode statically quantized model saved whole")
def _static_q_whole() -> Any:
    return _static_quantized()


@corpus("quantized_dynamic_state_dict.pt", "a dynamically quantized Linear/LSTM state_dict")
def _dynamic_q_state() -> Any:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    lstm = torch.nn.LSTM(4, 4)
    return {
        "mlp": torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}).state_dict(),
        "lstm": torch.ao.quantization.quantize_dynamic(lstm, {torch.nn.LSTM}).state_dict(),
    }


@corpus("qat_prepared_state_dict.pt", "a QAT-prepared model's state_dict (fake-quant observers)")
def _qat_state() -> Any:
    model = _QuantNet().train()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    prepared = torch.ao.quantization.prepare_qat(model)
    prepared(torch.randn(4, 3, 8, 8))
    return prepared.state_dict()


def _common_modules() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    nn = torch.nn
    return {
        "linear": nn.Linear(4, 2),
        "bilinear": nn.Bilinear(2, 3, 4),
        "conv1d": nn.Conv1d(2, 4, 3, padding="same"),
        "conv_transpose": nn.ConvTranspose2d(2, 2, 2, stride=2),
        "embedding": nn.Embedding(10, 4, padding_idx=0),
        "embedding_bag": nn.EmbeddingBag(10, 4, mode="mean"),
        "batchnorm": nn.BatchNorm1d(4),
        "layernorm": nn.LayerNorm(4),
        "groupnorm": nn.GroupNorm(2, 4),
        "rmsnorm": nn.RMSNorm(4),
        "instancenorm": nn.InstanceNorm2d(4, affine=True),
        "dropout": nn.Dropout(0.1),
        "activations": nn.Sequential(nn.GELU("tanh"), nn.SiLU(), nn.PReLU(), nn.Softmax(-1)),
        "pooling": nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        "upsample": nn.Upsample(scale_factor=2, mode="bilinear"),
        "pixel_shuffle": nn.PixelShuffle(2),
        "identity": nn.Identity(),
        "module_list": nn.ModuleList([nn.Linear(2, 2), nn.Tanh()]),
        "module_dict": nn.ModuleDict({"a": nn.Linear(2, 2)}),
        "parameter_list": nn.ParameterList([nn.Parameter(torch.ones(2))]),
        "parameter_dict": nn.ParameterDict({"p": nn.Parameter(torch.ones(2))}),
        "multihead_attention": nn.MultiheadAttention(8, 2, batch_first=True),
        "losses": nn.ModuleList(
            [nn.CrossEntropyLoss(label_smoothing=0.1), nn.MSELoss(), nn.BCEWithLogitsLoss()]
        ),
    }


@corpus("nn_modules_whole.pt", "common torch.nn modules saved whole (torch.save(module))")
def _modules_whole() -> Any:
    return _common_modules()


@corpus("rnn_modules_whole.pt", "LSTM, GRU and RNN saved whole (flat weights)")
def _rnn_whole() -> Any:
    lstm = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True, batch_first=True)
    lstm(torch.randn(1, 3, 4))
    return {"lstm": lstm, "gru": torch.nn.GRU(4, 8), "rnn": torch.nn.RNN(4, 8, nonlinearity="relu")}


@corpus("transformer_whole.pt", "a small torch.nn.Transformer saved whole")
def _transformer_full() -> Any:
    torch.manual_seed(0)
    return torch.nn.Transformer(8, 2, 1, 1, 16, batch_first=True)


@corpus("parametrized_state_dict.pt", "state_dict of modules with torch.nn.utils.parametrizations")
def _parametrized() -> Any:
    p = torch.nn.utils.parametrizations
    model = torch.nn.Sequential(
        p.weight_norm(torch.nn.Linear(4, 4)),
        p.spectral_norm(torch.nn.Linear(4, 4)),
        p.orthogonal(torch.nn.Linear(4, 4)),
    )
    return model.state_dict()


@corpus("numpy_recarray.pt", "numpy record arrays (np.rec.array, recarray views)")
def _recarray() -> Any:
    rec = np.rec.array(
        [(1, 2.5, b"a"), (2, 3.5, b"b")], dtype=[("id", "i4"), ("x", "f8"), ("s", "S2")]
    )
    plain = np.zeros(3, dtype=[("a", "i4"), ("b", "f4")])
    return {"rec": rec, "view": plain.view(np.recarray), "record": rec[0]}


def _documented(lr: float, steps: int = 10, *, name: str | None = None) -> None:
    """A function whose signature a config keeps (its annotations are strings here)."""


@corpus("inspect_signature.pt", "an inspect.Signature kept in a config (holds inspect._empty)")
def _signature() -> Any:
    return {"signature": inspect.signature(_documented), "empty": inspect.Parameter.empty}


@corpus("torch_objects.pt", "torch.Generator, dtypes, layouts, qschemes, devices, Size")
def _torch_objects() -> Any:
    # torch.memory_format is left out: torch cannot pickle it
    return {
        "generator": torch.Generator().manual_seed(7),
        "dtypes": [torch.float32, torch.bfloat16, torch.complex64, torch.bool, torch.uint8],
        "layouts": [torch.strided, torch.sparse_coo, torch.sparse_csr],
        "qscheme": torch.per_channel_affine,
        "size": torch.Size([3, 4]),
        "device": torch.device("cuda", 0),
        "finfo_eps": torch.finfo(torch.float16).eps,
    }


for _protocol in (3, 4, 5):
    corpus(
        f"checkpoint_protocol{_protocol}.pt",
        f"the usual training checkpoint saved with pickle_protocol={_protocol}",
        protocol=_protocol,
    )(_ckpt)


# -- legacy (non-zip) re-saves: the same objects as above, written by torch's legacy format ------


for _name, _builder, _what in [
    ("legacy_checkpoint_adamw.pt", _ckpt, "model + AdamW state + epoch"),
    ("legacy_module_whole.pt", _module_whole, "a Sequential saved whole"),
    (
        "legacy_transformer_layer_whole.pt",
        _transformer_whole,
        "a TransformerEncoderLayer saved whole",
    ),
    ("legacy_nn_modules_whole.pt", _modules_whole, "common torch.nn modules saved whole"),
    (
        "legacy_quantized_static_whole.pt",
        _static_q_whole,
        "a statically quantized model saved whole",
    ),
    ("legacy_tensor_kinds.pt", _tensors, "parameters, views, sparse, complex, quantized tensors"),
    (
        "legacy_lr_scheduler_onecycle.pt",
        lambda: _sched_state(_SCHEDULERS["onecycle"]),
        "OneCycleLR",
    ),
]:
    corpus(_name, f"legacy-format re-save: {_what}", legacy=True)(_builder)


# -- files torch's own save functions write ---------------------------------------------------


class _WithEmptyBuffer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.register_buffer("mask", torch.empty(0))  # a zero-length storage record

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.mask.sum()


@writes("torchscript", "TorchScript archives written by torch.jit.save", "torch")
def _torchscript(outdir: pathlib.Path) -> dict[str, str]:
    torch.jit.save(
        torch.jit.script(_WithEmptyBuffer()), outdir / "torchscript_zero_length_storage.pt"
    )
    torch.jit.save(
        torch.jit.trace(_model().eval(), torch.randn(1, 3, 8, 8)), outdir / "torchscript_traced.pt"
    )
    return {
        "torchscript_zero_length_storage.pt": "torch.jit.script of a module with an empty buffer",
        "torchscript_traced.pt": "torch.jit.trace of a small CNN",
    }


@writes("torch_export", "a torch.export program written by torch.export.save", "torch")
def _export(outdir: pathlib.Path) -> dict[str, str]:
    program = torch.export.export(_model().eval(), (torch.randn(1, 3, 8, 8),))
    torch.export.save(program, outdir / "exported_program.pt2")
    return {"exported_program.pt2": "torch.export.save of a small CNN"}


@writes("dcp", "torch.distributed.checkpoint save directory and its torch.save conversion", "torch")
def _dcp(outdir: pathlib.Path) -> dict[str, str]:
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    model, opt = _trained()
    state = {"model": model.state_dict(), "optim": opt.state_dict(), "step": 1234, "tag": "run"}
    target = outdir / "dcp_checkpoint"
    with warnings.catch_warnings():  # one process, no process group: DCP says so and goes on
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=target)
        dcp_to_torch_save(target, outdir / "dcp_to_torch_save.pt")
    out = {
        f"dcp_checkpoint/{p.name}": "torch.distributed.checkpoint.save: "
        + ("its metadata (pickle.dump)" if p.name == ".metadata" else "a shard")
        for p in sorted(target.iterdir())
    }
    out["dcp_to_torch_save.pt"] = "format_utils.dcp_to_torch_save of that directory"
    return out


# -- libraries ------------------------------------------------------------------------------


@corpus(
    "sklearn_scaler.pt", "an sklearn StandardScaler fitted, next to the weights", "scikit-learn"
)
def _sklearn() -> Any:
    from sklearn.preprocessing import StandardScaler

    return {"scaler": StandardScaler().fit(np.random.default_rng(0).random((10, 3)))}


@corpus("sklearn_label_encoder.pt", "an sklearn LabelEncoder", "scikit-learn")
def _sklearn_le() -> Any:
    from sklearn.preprocessing import LabelEncoder

    return {"labels": LabelEncoder().fit(["cat", "dog", "bird"])}


@corpus("omegaconf_config.pt", "an OmegaConf DictConfig (Hydra runs)", "omegaconf")
def _omegaconf() -> Any:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {"layers": 4, "act": "relu"}, "lr": 0.001, "tags": ["a"]})
    return {"cfg": cfg, "model": _model().state_dict()}


@corpus("omegaconf_container.pt", "OmegaConf.to_container(cfg): plain dicts", "omegaconf")
def _omegaconf_plain() -> Any:
    from omegaconf import OmegaConf

    return {"cfg": OmegaConf.to_container(OmegaConf.create({"lr": 0.1, "b": [1, 2]}))}


@corpus(
    "training_args.bin",
    "transformers TrainingArguments (Trainer's training_args.bin)",
    "transformers",
)
def _training_args() -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(output_dir="/tmp/out", learning_rate=5e-5, report_to=[])


@corpus(
    "hf_model_state_dict.bin",
    "a transformers BertModel state_dict (pytorch_model.bin)",
    "transformers",
)
def _hf_state() -> Any:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32,
    )  # fmt: skip
    return BertModel(cfg).state_dict()


@corpus("hf_trainer_state.pt", "transformers Trainer rng_state.pth contents")
def _hf_rng() -> Any:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }


@corpus("hf_config_whole.pt", "a transformers PretrainedConfig object saved whole", "transformers")
def _hf_config() -> Any:
    from transformers import BertConfig

    return {"config": BertConfig(hidden_size=16)}


@corpus("hf_tokenizer_vocab.pt", "vocab of a tokenizers BPE tokenizer", "tokenizers")
def _hf_tokenizer() -> Any:
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    return {"vocab": tok.get_vocab(), "json": tok.to_str()}


@corpus("accelerate_rng.pt", "accelerate's random_states_0.pkl contents")
def _accelerate() -> Any:
    states = {
        "random_state": random.getstate(),
        "numpy_random_seed": np.random.get_state(),
        "torch_manual_seed": torch.get_rng_state(),
    }
    return states


def _lightning_net() -> type:
    """The LightningModule, defined on first use (pytorch_lightning may be missing)."""
    if "Net" in globals():
        return globals()["Net"]  # type: ignore[no-any-return]
    import pytorch_lightning as pl

    class Net(pl.LightningModule):
        def __init__(self, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch: Any, _idx: int) -> Any:
            loss = self.layer(batch[0]).sum()
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

    Net.__module__ = __name__
    Net.__qualname__ = "Net"
    globals()["Net"] = Net
    return Net


def _lightning_ckpt() -> Any:
    import pytorch_lightning as pl

    net_cls = _lightning_net()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), 4)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir="/tmp/pl-benign",
    )
    trainer.fit(net_cls(), data)
    return trainer._checkpoint_connector.dump_checkpoint()


corpus(
    "lightning.ckpt", "pytorch_lightning Trainer checkpoint (dump_checkpoint)", "pytorch_lightning"
)(_lightning_ckpt)


@corpus(
    "torchmetrics_state.pt", "a torchmetrics Accuracy state_dict and metric object", "torchmetrics"
)
def _torchmetrics() -> Any:
    import torchmetrics

    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3)
    metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    return {"state": metric.state_dict(), "value": metric.compute()}


# -- libraries that write their own files ---------------------------------------------------


def _yolo_dataset(root: pathlib.Path) -> pathlib.Path:
    """A four-image detection dataset in the YOLO layout (ultralytics' own format)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / split / f"{i}.jpg")
            (root / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.3 0.4\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return data


@writes("ultralytics", "YOLO trainer checkpoints and Model.save", "ultralytics")
def _ultralytics(outdir: pathlib.Path) -> dict[str, str]:
    from ultralytics import YOLO

    with _workdir() as tmp:
        data = _yolo_dataset(tmp / "data")
        YOLO("yolo11n.yaml").train(
            data=str(data),
            epochs=2,
            imgsz=64,
            batch=2,
            workers=0,
            device="cpu",
            plots=False,
            save_period=1,
            project=str(tmp / "runs"),
            name="exp",
            amp=False,
            verbose=False,
            seed=0,
            deterministic=True,
        )
        weights = tmp / "runs" / "exp" / "weights"
        out = {
            _copy(weights / "epoch1.pt", outdir, "ultralytics_train_epoch1.pt"): (
                "mid-training checkpoint as the trainer writes it (save_period): EMA model, "
                "optimizer, train_args"
            ),
            _copy(weights / "last.pt", outdir, "ultralytics_train_last.pt"): (
                "the trainer's last.pt after training (optimizer stripped)"
            ),
        }
        YOLO(str(weights / "last.pt")).save(outdir / "ultralytics_model_save.pt")
        out["ultralytics_model_save.pt"] = "YOLO(last.pt).save(): the trained model, whole"
        YOLO("yolo11n-cls.yaml").save(outdir / "ultralytics_cls_model_save.pt")
        out["ultralytics_cls_model_save.pt"] = "YOLO('yolo11n-cls.yaml').save(): an untrained model"
    return out


@writes(
    "stable_baselines3",
    "stable-baselines3 model.save zips, their members, policy.save",
    "stable_baselines3",
)
def _sb3(outdir: pathlib.Path) -> dict[str, str]:
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    out: dict[str, str] = {}
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
    ppo = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    ppo.learn(128)
    small = {
        "learning_starts": 16,
        "buffer_size": 256,
        "batch_size": 16,
        "seed": 0,
        "device": "cpu",
    }
    algos = {
        "ppo_cartpole": ppo,
        "a2c_cartpole": A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0, device="cpu"),
        "dqn_cartpole": DQN("MlpPolicy", "CartPole-v1", **small),
        "sac_pendulum": SAC("MlpPolicy", "Pendulum-v1", **small),
        "td3_pendulum": TD3("MlpPolicy", "Pendulum-v1", **small),
    }
    for name, algo in algos.items():
        if algo is not ppo:
            algo.learn(48)
        algo.save(outdir / f"sb3_{name}.zip")
        out[f"sb3_{name}.zip"] = f"{type(algo).__name__}.save(): the model zip"
        with zipfile.ZipFile(outdir / f"sb3_{name}.zip") as archive:
            for member in archive.namelist():
                if member.endswith(".pth"):
                    (outdir / f"sb3_{name}_{member}").write_bytes(archive.read(member))
                    out[f"sb3_{name}_{member}"] = (
                        f"{member} from {type(algo).__name__}.save()'s zip"
                    )
    ppo.policy.save(str(outdir / "sb3_ppo_policy_save.pth"))
    out["sb3_ppo_policy_save.pth"] = "policy.save(): state_dict + constructor parameters"
    env.save(str(outdir / "sb3_vecnormalize.pkl"))
    out["sb3_vecnormalize.pkl"] = "VecNormalize.save(): running statistics, pickled"
    for name in ("sac_pendulum", "dqn_cartpole"):
        algos[name].save_replay_buffer(outdir / f"sb3_{name}_replay_buffer.pkl")  # type: ignore[attr-defined]
        out[f"sb3_{name}_replay_buffer.pkl"] = "save_replay_buffer(): the ReplayBuffer, pickled"
    return out


def _timm_model(name: str) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10)  # type: ignore[no-any-return]


@corpus("timm_mobilenetv3_state_dict.pth", "timm mobilenetv3_small_050 state_dict", "timm")
def _timm_state() -> Any:
    return _timm_model("mobilenetv3_small_050").state_dict()


@corpus("timm_vit_tiny_whole.pt", "a timm vit_tiny_patch16_224 saved whole", "timm")
def _timm_whole() -> Any:
    return _timm_model("vit_tiny_patch16_224")


@corpus("timm_resnet_whole.pt", "a timm resnet10t saved whole", "timm")
def _timm_resnet_whole() -> Any:
    return _timm_model("resnet10t")


@writes("timm_train", "timm's CheckpointSaver (train.py) checkpoint with args and EMA", "timm")
def _timm_saver(outdir: pathlib.Path) -> dict[str, str]:
    from timm.utils import CheckpointSaver, ModelEmaV3

    model = _timm_model("mobilenetv3_small_050")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    ema = ModelEmaV3(model, decay=0.999)
    ema.update(model)
    args = argparse.Namespace(
        model="mobilenetv3_small_050", lr=0.1, epochs=2, batch_size=2, amp=False
    )
    with _workdir() as tmp:
        saver = CheckpointSaver(
            model,
            opt,
            args=args,
            model_ema=ema,
            checkpoint_dir=str(tmp),
            recovery_dir=str(tmp),
            max_history=1,
        )
        saver.save_checkpoint(epoch=0, metric=0.5)
        saver.save_recovery(epoch=0, batch_idx=1)
        return {
            _copy(
                tmp / "checkpoint-0.pth.tar", outdir, "timm_checkpoint-0.pth.tar"
            ): "CheckpointSaver.save_checkpoint",
            _copy(
                next(tmp.glob("recovery-*.pth.tar")), outdir, "timm_recovery.pth.tar"
            ): "CheckpointSaver.save_recovery",
        }


def _tiny_unet() -> torch.nn.Module:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(  # type: ignore[no-any-return]
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )


@writes("diffusers", "a diffusers pipeline save_pretrained(safe_serialization=False)", "diffusers")
def _diffusers_pipeline(outdir: pathlib.Path) -> dict[str, str]:
    from diffusers import DDPMPipeline, DDPMScheduler

    with _workdir() as tmp:
        DDPMPipeline(unet=_tiny_unet(), scheduler=DDPMScheduler()).save_pretrained(
            tmp, safe_serialization=False
        )
        name = _copy(
            tmp / "unet" / "diffusion_pytorch_model.bin", outdir, "diffusers_unet_weights.bin"
        )
        return {name: "DDPMPipeline.save_pretrained(safe_serialization=False): unet weights"}


@corpus(
    "diffusers_training_state.pt", "diffusers EMAModel + get_scheduler('cosine') state", "diffusers"
)
def _diffusers_training() -> Any:
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    unet = _tiny_unet()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    sched = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=10)
    opt.step()
    sched.step()
    ema = EMAModel(unet.parameters(), model_cls=type(unet), model_config=unet.config)  # type: ignore[attr-defined]
    ema.step(unet.parameters())
    return {
        "ema": ema.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "optimizer": opt.state_dict(),
    }


@corpus("diffusers_scheduler_whole.pt", "a diffusers DDPMScheduler object saved whole", "diffusers")
def _diffusers_scheduler() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")


def pyro_model(data: torch.Tensor) -> None:
    """A pyro model: a latent mean, a learned scale, observed data."""
    import pyro
    import pyro.distributions as dist

    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc, scale), obs=data)


def _pyro_fit() -> Any:
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    guide = AutoNormal(pyro_model)
    svi = SVI(pyro_model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    data = torch.randn(20) + 3
    for _ in range(5):
        svi.step(data)
    return pyro, guide, svi


@writes("pyro", "pyro param store save() and a guide saved whole", "pyro")
def _pyro(outdir: pathlib.Path) -> dict[str, str]:
    pyro, guide, svi = _pyro_fit()
    pyro.get_param_store().save(str(outdir / "pyro_param_store.pt"))
    torch.save(
        {"guide": guide, "params": pyro.get_param_store().get_state()},
        outdir / "pyro_guide_whole.pt",
    )
    svi.optim.save(str(outdir / "pyro_optim_state.pt"))
    return {
        "pyro_param_store.pt": "pyro.get_param_store().save(): params + constraints",
        "pyro_guide_whole.pt": "an AutoNormal guide saved whole (pyro's serving tutorial)",
        "pyro_optim_state.pt": "pyro.optim.Adam save(): per-parameter optimizer states",
    }


def _pyg_data() -> Any:
    from torch_geometric.data import Data

    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    return Data(x=torch.randn(4, 3), edge_index=edge_index, y=torch.tensor([0, 1, 0, 1]))


@corpus("pyg_data.pt", "torch_geometric Data and HeteroData objects", "torch_geometric")
def _pyg_objects() -> Any:
    from torch_geometric.data import HeteroData

    hetero = HeteroData()
    hetero["paper"].x = torch.randn(3, 4)
    hetero["author"].x = torch.randn(2, 4)
    hetero["author", "writes", "paper"].edge_index = torch.tensor([[0, 1], [0, 2]])
    return {"data": _pyg_data(), "hetero": hetero}


@writes(
    "pyg_dataset",
    "torch_geometric InMemoryDataset.save (a processed dataset file)",
    "torch_geometric",
)
def _pyg_dataset(outdir: pathlib.Path) -> dict[str, str]:
    from torch_geometric.data import InMemoryDataset

    InMemoryDataset.save([_pyg_data(), _pyg_data()], str(outdir / "pyg_processed_data.pt"))
    return {"pyg_processed_data.pt": "InMemoryDataset.save: (data dict, slices, Data class)"}


def _pyg_gcn() -> torch.nn.Module:
    from torch_geometric.nn.models import GCN

    torch.manual_seed(0)
    return GCN(3, 8, 2, 2)


@corpus("pyg_gcn_state_dict.pt", "a torch_geometric GCN state_dict", "torch_geometric")
def _pyg_state() -> Any:
    return _pyg_gcn().state_dict()


@corpus(
    "pyg_models_whole.pt", "torch_geometric GCN, GAT and GraphSAGE saved whole", "torch_geometric"
)
def _pyg_whole() -> Any:
    from torch_geometric.nn.models import GAT, GraphSAGE

    return {"gcn": _pyg_gcn(), "gat": GAT(3, 8, 2, 2, heads=2), "sage": GraphSAGE(3, 8, 2, 2)}


@writes("ignite", "ignite Checkpoint handler with DiskSaver during a training run", "ignite")
def _ignite(outdir: pathlib.Path) -> dict[str, str]:
    from ignite.engine import Events, create_supervised_trainer
    from ignite.handlers import Checkpoint, DiskSaver, PiecewiseLinear

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = create_supervised_trainer(model, opt, torch.nn.CrossEntropyLoss())
    param_sched = PiecewiseLinear(opt, "lr", milestones_values=[(0, 0.1), (4, 0.01)])
    trainer.add_event_handler(Events.ITERATION_STARTED, param_sched)
    torch_sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    to_save = {
        "model": model,
        "optimizer": opt,
        "trainer": trainer,
        "param_scheduler": param_sched,
        "lr_scheduler": torch_sched,
    }
    with _workdir() as tmp:
        handler = Checkpoint(to_save, DiskSaver(str(tmp), require_empty=False), n_saved=1)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, handler)
        batches = [(torch.randn(4, 4), torch.randint(0, 2, (4,))) for _ in range(2)]
        trainer.run(batches, max_epochs=2)
        saved = next(tmp.glob("checkpoint_*.pt"))
        return {
            _copy(saved, outdir, "ignite_checkpoint.pt"): "Checkpoint(DiskSaver) after 2 epochs"
        }


def _skorch_net() -> Any:
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    net = NeuralNetClassifier(
        module, max_epochs=2, lr=0.1, batch_size=8, verbose=0, train_split=None
    )
    rng = np.random.default_rng(0)
    return net.fit(rng.random((16, 4), dtype=np.float32), np.array([0, 1] * 8, dtype=np.int64))


@writes("skorch", "a fitted skorch net: pickled, save_params files, torch.save'd", "skorch")
def _skorch(outdir: pathlib.Path) -> dict[str, str]:
    net = _skorch_net()
    with open(outdir / "skorch_net.pkl", "wb") as f:
        pickle.dump(net, f)  # skorch's documented way to save the whole net
    net.save_params(
        f_params=str(outdir / "skorch_params.pt"),
        f_optimizer=str(outdir / "skorch_optimizer.pt"),
        f_criterion=str(outdir / "skorch_criterion.pt"),
    )
    torch.save(net, outdir / "skorch_net_torch_save.pt")
    return {
        "skorch_net.pkl": "pickle.dump(net): tensors go through torch.storage._load_from_bytes",
        "skorch_params.pt": "net.save_params(f_params=...)",
        "skorch_optimizer.pt": "net.save_params(f_optimizer=...)",
        "skorch_criterion.pt": "net.save_params(f_criterion=...)",
        "skorch_net_torch_save.pt": "torch.save(net)",
    }


@corpus(
    "torchmetrics_whole.pt",
    "torchmetrics metrics and a MetricCollection saved whole",
    "torchmetrics",
)
def _torchmetrics_whole() -> Any:
    import torchmetrics

    preds, target = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])
    collection = torchmetrics.MetricCollection(
        [
            torchmetrics.classification.MulticlassAccuracy(3),
            torchmetrics.classification.MulticlassF1Score(3),
        ]
    )
    collection.update(preds, target)
    auroc = torchmetrics.classification.BinaryAUROC()  # list states (dim_zero_cat)
    auroc.update(torch.rand(4), torch.tensor([0, 1, 1, 0]))
    return {"collection": collection, "auroc": auroc, "mean": torchmetrics.MeanMetric()}


@corpus(
    "torchmetrics_collection_state.pt",
    "a MetricCollection state_dict with persistent states",
    "torchmetrics",
)
def _torchmetrics_collection() -> Any:
    import torchmetrics

    collection = torchmetrics.MetricCollection(
        {
            "acc": torchmetrics.classification.MulticlassAccuracy(3),
            "auroc": torchmetrics.classification.BinaryAUROC(),
        }
    )
    collection.persistent(True)
    return collection.state_dict()


def _shipped(package: str) -> pathlib.Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(package)
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


@writes("lpips", "the weights the lpips wheel ships (lpips/weights/*/*.pth), copied", "lpips")
def _lpips(outdir: pathlib.Path) -> dict[str, str]:
    root = _shipped("lpips") / "weights"
    return {
        _copy(
            p, outdir, f"lpips_{p.parent.name}_{p.name}"
        ): f"shipped in the lpips wheel: {p.relative_to(root.parent)}"
        for p in sorted(root.glob("*/*.pth"))
    }


@writes("chgnet", "the pretrained weights the chgnet wheel ships, copied", "chgnet")
def _chgnet(outdir: pathlib.Path) -> dict[str, str]:
    root = _shipped("chgnet") / "pretrained"
    return {
        _copy(
            p, outdir, f"chgnet_{p.name}"
        ): f"shipped in the chgnet wheel: {p.relative_to(root.parent)}"
        for p in sorted(root.glob("*/*.pth.tar"))
    }


@writes("accelerate", "accelerate Accelerator.save_state(safe_serialization=False)", "accelerate")
def _accelerate_state(outdir: pathlib.Path) -> dict[str, str]:
    from accelerate import Accelerator

    model, opt = _trained()
    sched = torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=4)
    acc = Accelerator(cpu=True)
    model, opt, sched = acc.prepare(model, opt, sched)
    with _workdir() as tmp:
        acc.save_state(str(tmp), safe_serialization=False)
        return {
            _copy(p, outdir, f"accelerate_save_state_{p.name}"): f"Accelerator.save_state: {p.name}"
            for p in sorted(tmp.iterdir())
            if p.is_file()
        }


@corpus("torchvision_resnet18_state_dict.pth", "a torchvision resnet18 state_dict", "torchvision")
def _tv_state() -> Any:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).state_dict()


@corpus(
    "torchvision_models_whole.pt",
    "torchvision mobilenet_v3_small and squeezenet saved whole",
    "torchvision",
)
def _tv_whole() -> Any:
    import torchvision

    torch.manual_seed(0)
    return {
        "mobilenet": torchvision.models.mobilenet_v3_small(num_classes=10),
        "squeezenet": torchvision.models.squeezenet1_1(num_classes=10),
    }


@writes("hf_trainer", "a transformers Trainer checkpoint-N directory's files", "transformers")
def _hf_trainer(outdir: pathlib.Path) -> dict[str, str]:
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    rows = [
        {"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)} for i in range(8)
    ]
    with _workdir() as tmp:
        args = TrainingArguments(
            output_dir=str(tmp),
            per_device_train_batch_size=4,
            max_steps=2,
            save_steps=2,
            report_to=[],
            use_cpu=True,
            seed=0,
            lr_scheduler_type="cosine",
            warmup_steps=1,
        )
        Trainer(model=BertForSequenceClassification(cfg), args=args, train_dataset=rows).train()
        ckpt = tmp / "checkpoint-2"
        return {
            _copy(p, outdir, f"hf_trainer_checkpoint_{p.name}"): f"Trainer checkpoint-2/{p.name}"
            for p in sorted(ckpt.iterdir())
            if p.suffix not in (".json", ".txt", ".jinja", ".md")
        }


@writes(
    "lightning_model_checkpoint",
    "a checkpoint written by Lightning's ModelCheckpoint",
    "pytorch_lightning",
)
def _lightning_model_checkpoint(outdir: pathlib.Path) -> dict[str, str]:
    import pytorch_lightning as pl

    net_cls = _lightning_net()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), 4)
    with _workdir() as tmp:
        checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp, monitor="train_loss", save_last=True)
        trainer = pl.Trainer(
            max_epochs=2,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(tmp),
            callbacks=[checkpoint, pl.callbacks.EarlyStopping("train_loss")],
        )
        trainer.fit(net_cls(), data)
        return {
            _copy(tmp / "last.ckpt", outdir, "lightning_modelcheckpoint_last.ckpt"): (
                "ModelCheckpoint(save_last=True) with EarlyStopping: callbacks state, loops"
            )
        }


# -- writing ----------------------------------------------------------------------------------

# Distribution name or import name -> module whose __version__ the manifest records.
_LIBRARIES = {
    "torch": "torch",
    "numpy": "numpy",
    "scikit-learn": "sklearn",
    "omegaconf": "omegaconf",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "accelerate": "accelerate",
    "pytorch_lightning": "pytorch_lightning",
    "torchmetrics": "torchmetrics",
    "torchvision": "torchvision",
    "ultralytics": "ultralytics",
    "stable_baselines3": "stable_baselines3",
    "gymnasium": "gymnasium",
    "timm": "timm",
    "diffusers": "diffusers",
    "pyro": "pyro",
    "torch_geometric": "torch_geometric",
    "ignite": "ignite",
    "skorch": "skorch",
    "lpips": "lpips",
    "chgnet": "chgnet",
}


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for label in _LIBRARIES:
        try:
            out[label] = importlib.metadata.version(
                {
                    "pyro": "pyro-ppl",
                    "ignite": "pytorch-ignite",
                    "torch_geometric": "torch-geometric",
                }.get(label, label)
            )
        except importlib.metadata.PackageNotFoundError:  # a missing library only skips its files
            out[label] = "missing"
    return out


def _build_one(name: str, entry: Saved | Written, outdir: pathlib.Path) -> dict[str, str]:
    """Write one registry entry; return ``{file: what}``."""
    if isinstance(entry, Written):
        return entry.write(outdir)
    buffer = io.BytesIO()
    torch.save(
        entry.build(),
        buffer,
        _use_new_zipfile_serialization=not entry.legacy,
        pickle_protocol=entry.protocol,
    )
    (outdir / name).write_bytes(buffer.getvalue())
    return {name: entry.what}


def build(outdir: pathlib.Path, only: list[str] | None = None) -> dict[str, Any]:
    """Write every registered file into ``outdir`` and its ``MANIFEST.json``."""
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, str]] = []
    skipped: dict[str, str] = {}
    for name, entry in sorted(BUILDERS.items()):
        if only and not any(word in name for word in only):
            continue
        try:
            files = _build_one(name, entry, outdir)
        except Exception as exc:  # a missing library, or one this torch breaks: noted, not faked
            skipped[name] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"skipped {name}: {skipped[name]}", file=sys.stderr)
            continue
        written += [{"file": f, "what": w, "library": entry.library} for f, w in files.items()]
    written.sort(key=lambda row: row["file"])
    manifest = {"versions": _versions(), "files": written, "skipped": skipped}
    (outdir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


TORCHVISION_SHIM = r'''"""Make torchvision importable beside torch 2.13.0 (benign-corpus venv only).

torchvision's compiled ops do not load beside this torch: its import then fails registering
fake kernels for them. Those failures are ignored and ``nms`` is given in pure torch; nothing
a library saves depends on either.
"""

import importlib.abc
import importlib.machinery
import sys


def _nms(boxes, scores, iou_threshold):  # type: ignore[no-untyped-def]
    import torch

    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(i)
        if order.numel() == 1:
            break
        rest = boxes[order[1:]]
        lt = torch.maximum(boxes[i, :2], rest[:, :2])
        rb = torch.minimum(boxes[i, 2:], rest[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(1)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(boxes[i]) + area(rest) - inter)
        order = order[1:][iou <= iou_threshold]
    return torch.stack(keep) if keep else boxes.new_zeros(0, dtype=torch.long)


def _ignore_fake_kernel_failures():  # type: ignore[no-untyped-def]
    import torch.library

    original = torch.library.register_fake
    if getattr(original, "_benign_shim", False):
        return

    def register_fake(op, func=None, /, **kw):  # type: ignore[no-untyped-def]
        if not (isinstance(op, str) and op.startswith("torchvision::")):
            return original(op, func, **kw)

        def register(fn):  # type: ignore[no-untyped-def]
            try:
                return original(op, fn, **kw)
            except RuntimeError:  # the op's C++ kernel was never loaded
                return fn

        return register if func is None else register(func)

    register_fake._benign_shim = True
    torch.library.register_fake = register_fake


class _TorchvisionShim(importlib.abc.MetaPathFinder):
    # Stays installed: a find_spec that is only a probe (is torchvision there?) imports nothing,
    # so the patch goes into the loader of every spec handed out, and runs when one executes.
    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != "torchvision":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):  # type: ignore[no-untyped-def]
            _ignore_fake_kernel_failures()
            exec_module(module)
            import torchvision.ops.boxes

            torchvision.ops.nms = torchvision.ops.boxes.nms = _nms

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _TorchvisionShim())
'''


def install_torchvision_shim() -> pathlib.Path:
    """Write ``TORCHVISION_SHIM`` as this venv's ``sitecustomize.py`` (the corpus venv only)."""
    if sys.prefix == sys.base_prefix:
        raise SystemExit("refusing: not a venv (the shim belongs in the corpus venv only)")
    target = pathlib.Path(sysconfig.get_paths()["purelib"]) / "sitecustomize.py"
    target.write_text(TORCHVISION_SHIM)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("outdir", type=pathlib.Path, nargs="?")
    parser.add_argument("--only", action="append", help="build the entries whose name has WORD")
    parser.add_argument(
        "--install-torchvision-shim",
        action="store_true",
        help="write the torchvision shim as this venv's sitecustomize.py, then exit",
    )
    args = parser.parse_args(argv)
    if args.install_torchvision_shim:
        print(f"wrote {install_torchvision_shim()}")
        return 0
    if args.outdir is None:
        parser.error("OUTDIR is required")
    manifest = build(args.outdir, args.only)
    print(f"{len(manifest['files'])} files in {args.outdir}; {len(manifest['skipped'])} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
