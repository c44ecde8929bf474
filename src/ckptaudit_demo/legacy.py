"""The example models serialized as the research codebase does today, before the fix.

Both checkpoints pickle live Python objects (dataclasses, enums, ``datetime``, ``deque``, an
``nn.Module``), so ``torch.load(path, weights_only=True)`` rejects them. There is deliberately
no loader here: the only way to read these files is ``weights_only=False``, which executes
whatever the file says. Audit them instead.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from .models import (
    CNNHost,
    MorphogeneticModelBase,
    PPOAgentBase,
    PPOConfig,
    SeedSlotBase,
    SeedStage,
    SeedState,
    SigmoidBlend,
    TaskConfig,
    TrainingPhase,
)

__all__ = [
    "CNNHost",
    "MorphogeneticModel",
    "PPOAgent",
    "PPOConfig",
    "SeedSlot",
    "SeedStage",
    "SeedState",
    "SigmoidBlend",
    "TaskConfig",
    "TrainingPhase",
    "save_checkpoint",
]


class SeedSlot(SeedSlotBase):
    """Seed slot whose extra state is the live objects themselves."""

    def get_extra_state(self) -> dict[str, Any]:
        """Return the seed state dataclass, the alpha schedule module and the isolation flag."""
        return {
            "seed_state": self.seed_state,
            "alpha_schedule": self.alpha_schedule,
            "isolate_gradients": self.isolate_gradients,
        }

    def set_extra_state(self, state: Any) -> None:
        """Adopt the objects from :meth:`get_extra_state`, as an in-memory copy does."""
        # Copies, so two models loaded from one state_dict never share a mutable SeedState.
        self._restore(
            copy.deepcopy(state["seed_state"]),
            copy.deepcopy(state["alpha_schedule"]),
            bool(state["isolate_gradients"]),
        )


class MorphogeneticModel(MorphogeneticModelBase):
    """Host CNN with seed slots that pickle their objects into the state_dict."""

    slot_cls: ClassVar[type[SeedSlotBase]] = SeedSlot


def save_checkpoint(model: MorphogeneticModel, path: str | os.PathLike[str]) -> None:
    """Write ``{"model_state_dict": ..., "config": {"slots": [...]}}`` to ``path``."""
    torch.save(
        {"model_state_dict": model.state_dict(), "config": {"slots": list(model.slot_names)}},
        path,
    )


class PPOAgent(PPOAgentBase):
    """PPO agent whose checkpoint pickles its config dataclass and training stats."""

    def save(self, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
        """Write weights, optimizer state, config, stats and ``metadata`` to ``path``."""
        torch.save(
            {
                "policy_state_dict": self.policy.state_dict(),
                "value_state_dict": self.value.state_dict(),
                "optimizer_state_dict": self.optimizer.state_dict(),
                "state_dim": self.state_dim,
                "action_dim": self.action_dim,
                "config": self.config,
                "stats": {
                    "phase": self.phase,
                    "recent_returns": self.recent_returns,
                    "created_at": self.created_at,
                    "updates": self.updates,
                },
                "metadata": dict(metadata or {}),
            },
            path,
        )
