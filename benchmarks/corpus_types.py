"""Picklable helper types used by the benchmark corpus (``make_corpus.py``).

They live in their own importable module so that the pickled global names are
stable (``corpus_types.Transition`` etc.) no matter how the generator is run,
and so that a trusted reader can resolve them if it ever needs the ground truth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Transition:
    """One step of an RL replay buffer (indices into an observation store)."""

    step: int
    obs_idx: int
    next_obs_idx: int
    action: int
    reward: float
    value: float
    log_prob: float
    td_error: float
    wall_time: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Phase(enum.Enum):
    """Training phase recorded in checkpoint metadata."""

    TRAIN = "train"
    EVAL = "eval"
    FINETUNE = "finetune"


@dataclass
class TrainConfig:
    """Small training configuration stored next to weights."""

    lr: float
    batch_size: int
    epochs: int
    optimizer: str = "adam"
    tags: list[str] = field(default_factory=list)
