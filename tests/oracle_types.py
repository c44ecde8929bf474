"""Types pickled into the oracle corpus (importable by name, as torch.save needs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn


class Stage(enum.Enum):
    """A plain Enum."""

    DORMANT = 1
    ACTIVE = 2


class Level(enum.IntEnum):
    """An IntEnum."""

    LOW = 1
    HIGH = 2


class Color(str, enum.Enum):
    """A str-valued Enum."""

    RED = "red"


@dataclass
class Config:
    """A dataclass with primitives."""

    lr: float = 0.1
    name: str = "run"
    steps: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class WithEnum:
    """A dataclass holding an Enum."""

    stage: Stage = Stage.ACTIVE


@dataclass(slots=True)
class Slotted:
    """A dataclass with __slots__."""

    x: int = 1
    y: str = "a"


class Point(NamedTuple):
    """A namedtuple."""

    x: int
    y: int


class Plain:
    """A plain class with a __dict__."""

    def __init__(self) -> None:
        self.a = 1
        self.b = [1, 2]


class Tiny(nn.Module):
    """A small nn.Module."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.register_buffer("count", torch.zeros(1))


class AttrDict(dict):  # type: ignore[type-arg]
    """A dict subclass (filled by SETITEMS on a non-dict)."""


class ActivationModule(nn.Module):
    """A module holding a plain function (relu) as an attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.act = torch.nn.functional.relu
