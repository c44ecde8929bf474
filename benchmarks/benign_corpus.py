"""Build a corpus of benign checkpoints from real libraries: ``python benign_corpus.py OUTDIR``.

Run it with the interpreter of a separate venv that has the libraries (never the project's,
and never letting pip replace torch 2.13.0)::

    python3 -m venv /tmp/venv-benign
    /tmp/venv-benign/bin/pip install torch==2.13.0 numpy==2.4.6 scikit-learn==1.9.1 \\
        omegaconf==2.4.0 transformers==5.24.0 psutil
    # these pin torch themselves or pull a newer one: installed without dependencies
    /tmp/venv-benign/bin/pip install --no-deps accelerate==1.15.0 pytorch-lightning==2.6.6 \\
        torchmetrics==1.9.0 lightning-utilities==0.15.3
    /tmp/venv-benign/bin/python benchmarks/benign_corpus.py /tmp/benign

Every file is what a real training script writes with ``torch.save`` (or ``pickle.dump``
for the few tools that use it). A library that is missing is skipped, with a note; the
manifest ``OUTDIR/MANIFEST.json`` lists each file, what made it, and the library versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import fractions
import importlib
import io
import json
import pathlib
import random
import sys
import uuid
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import torch

Builder = Callable[[], Any]
BUILDERS: dict[str, tuple[str, Builder]] = {}


def corpus(name: str, what: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        BUILDERS[name] = (what, fn)
        return fn

    return register


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


def _opt_state(cls: type, **kw: Any) -> Any:
    model = _model()
    opt = cls(model.parameters(), **kw)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return opt.state_dict()


for _name, _cls, _kw in [
    ("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", torch.optim.Adam, {"lr": 1e-3, "amsgrad": True}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 1e-3}),
    ("adagrad", torch.optim.Adagrad, {"lr": 1e-2}),
    ("radam", torch.optim.RAdam, {"lr": 1e-3}),
]:
    corpus(f"optimizer_{_name}.pt", f"torch.optim.{_cls.__name__}.state_dict()")(
        lambda _c=_cls, _k=_kw: _opt_state(_c, **_k)
    )


def _sched_state(make: Callable[[torch.optim.Optimizer], Any]) -> Any:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    sched = make(opt)
    for _ in range(3):
        opt.step()
        sched.step()
    return {"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}


_SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "steplr": lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 1.0, total_steps=10),
    "lambdalr": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e),
    "warmup_chain": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=2),
            torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
        ],
        milestones=[2],
    ),
}
for _name, _make in _SCHEDULERS.items():
    corpus(f"lr_scheduler_{_name}.pt", f"lr_scheduler {_name} state_dict + optimizer")(
        lambda _m=_make: _sched_state(_m)
    )


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


@corpus("legacy_format.pt", "a checkpoint in the legacy (non-zip) format")
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


@corpus("protocol0_objects.pt", "argparse Namespace and dataclass saved with pickle_protocol=0")
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


# -- libraries ------------------------------------------------------------------------------


@corpus("sklearn_scaler.pt", "an sklearn StandardScaler fitted, next to the weights")
def _sklearn() -> Any:
    from sklearn.preprocessing import StandardScaler

    return {"scaler": StandardScaler().fit(np.random.default_rng(0).random((10, 3)))}


@corpus("sklearn_label_encoder.pt", "an sklearn LabelEncoder")
def _sklearn_le() -> Any:
    from sklearn.preprocessing import LabelEncoder

    return {"labels": LabelEncoder().fit(["cat", "dog", "bird"])}


@corpus("omegaconf_config.pt", "an OmegaConf DictConfig (Hydra runs)")
def _omegaconf() -> Any:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {"layers": 4, "act": "relu"}, "lr": 0.001, "tags": ["a"]})
    return {"cfg": cfg, "model": _model().state_dict()}


@corpus("omegaconf_container.pt", "OmegaConf.to_container(cfg): plain dicts")
def _omegaconf_plain() -> Any:
    from omegaconf import OmegaConf

    return {"cfg": OmegaConf.to_container(OmegaConf.create({"lr": 0.1, "b": [1, 2]}))}


@corpus("training_args.bin", "transformers TrainingArguments (Trainer's training_args.bin)")
def _training_args() -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(output_dir="/tmp/out", learning_rate=5e-5, report_to=[])


@corpus("hf_model_state_dict.bin", "a transformers BertModel state_dict (pytorch_model.bin)")
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


@corpus("hf_config_whole.pt", "a transformers PretrainedConfig object saved whole")
def _hf_config() -> Any:
    from transformers import BertConfig

    return {"config": BertConfig(hidden_size=16)}


@corpus("hf_tokenizer_vocab.pt", "vocab of a tokenizers BPE tokenizer")
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


def _lightning_ckpt() -> Any:
    import pytorch_lightning as pl

    class Net(pl.LightningModule):
        def __init__(self, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch: Any, _idx: int) -> Any:
            return self.layer(batch[0]).sum()

        def configure_optimizers(self) -> Any:
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

    Net.__module__ = __name__
    Net.__qualname__ = "Net"
    globals()["Net"] = Net
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), 4)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir="/tmp/pl-benign",
    )
    trainer.fit(Net(), data)
    return trainer._checkpoint_connector.dump_checkpoint()


corpus("lightning.ckpt", "pytorch_lightning Trainer checkpoint (dump_checkpoint)")(_lightning_ckpt)


@corpus("torchmetrics_state.pt", "a torchmetrics Accuracy state_dict and metric object")
def _torchmetrics() -> Any:
    import torchmetrics

    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3)
    metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    return {"state": metric.state_dict(), "value": metric.compute()}


# -- writing ----------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in (
        "torch",
        "numpy",
        "sklearn",
        "omegaconf",
        "transformers",
        "tokenizers",
        "accelerate",
        "pytorch_lightning",
        "torchmetrics",
    ):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing library only skips its files
            out[mod] = "missing"
    return out


def build(outdir: pathlib.Path) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, str]] = []
    skipped: dict[str, str] = {}
    for name, (what, fn) in sorted(BUILDERS.items()):
        try:
            obj = fn()
        except Exception as exc:  # a missing or incompatible library
            skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        buffer = io.BytesIO()
        try:
            torch.save(
                obj,
                buffer,
                _use_new_zipfile_serialization=name != "legacy_format.pt",
                pickle_protocol=0 if name.startswith("protocol0") else 2,
            )
        except Exception as exc:  # not picklable with this library version
            skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        (outdir / name).write_bytes(buffer.getvalue())
        written.append({"file": name, "what": what})
    manifest = {"versions": _versions(), "files": written, "skipped": skipped}
    (outdir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=pathlib.Path)
    args = parser.parse_args(argv)
    manifest = build(args.outdir)
    print(f"{len(manifest['files'])} files in {args.outdir}; skipped: {manifest['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
