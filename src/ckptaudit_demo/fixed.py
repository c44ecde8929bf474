"""The example models after the fix: checkpoints hold only tensors and primitives.

Seed state goes through :meth:`SeedState.to_dict`, the alpha schedule is stored as its config
dict under ``alpha_schedule_config`` (the plan's name) and rebuilt on load, and the agent's
config and stats are flattened to numbers, strings and lists. Both checkpoints therefore load
with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import torch

from .models import (
    BlendConfig,
    CNNHost,
    MorphogeneticModelBase,
    PPOAgentBase,
    PPOConfig,
    SeedSlotBase,
    SeedStage,
    SeedState,
    SeedStateDict,
    SigmoidBlend,
    TaskConfig,
    TrainingPhase,
    build_blend,
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
    "load_checkpoint",
    "save_checkpoint",
]


class SeedSlot(SeedSlotBase):
    """Seed slot whose extra state is primitives only."""

    def get_extra_state(self) -> dict[str, SeedStateDict | BlendConfig | bool | None]:
        """Return the seed state as a dict, the alpha schedule as its config, and the flag."""
        return {
            "seed_state": self.seed_state.to_dict() if self.seed_state is not None else None,
            # The config, not the module: under its own name, so that no reader mistakes it
            # for the module the legacy checkpoints hold under "alpha_schedule".
            "alpha_schedule_config": (
                self.alpha_schedule.to_config() if self.alpha_schedule is not None else None
            ),
            "isolate_gradients": self.isolate_gradients,
        }

    def set_extra_state(self, state: Any) -> None:
        """Rebuild the seed state, the alpha schedule and, if needed, the seed module."""
        seed_state = state["seed_state"]
        schedule = state["alpha_schedule_config"]
        self._restore(
            SeedState.from_dict(seed_state) if seed_state is not None else None,
            build_blend(schedule) if schedule is not None else None,
            bool(state["isolate_gradients"]),
        )


class MorphogeneticModel(MorphogeneticModelBase):
    """Host CNN with seed slots whose state_dict holds only tensors and primitives."""

    slot_cls: ClassVar[type[SeedSlotBase]] = SeedSlot


def save_checkpoint(model: MorphogeneticModel, path: str | os.PathLike[str]) -> None:
    """Write the model's state_dict and the config needed to rebuild it to ``path``.

    ``config`` keeps the legacy ``"slots"`` key and adds the host and task settings, so
    :func:`load_checkpoint` can rebuild the architecture without guessing.
    """
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "config": {
                "slots": list(model.slot_names),
                "host": model.host.config(),
                "task": dataclasses.asdict(model.task_config),
            },
        },
        path,
    )


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> MorphogeneticModel:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Args:
        path: File written by :func:`save_checkpoint`.
        device: Where to put the model's tensors.

    Returns:
        The rebuilt model, in training mode like a freshly constructed one.

    Example:
        >>> model = load_checkpoint("model.pt")  # doctest: +SKIP
        >>> model.get_slot("mid").seed_state.stage  # doctest: +SKIP
        <SeedStage.BLENDING: 4>
    """
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    config = checkpoint["config"]
    model = MorphogeneticModel(
        host=CNNHost(**config.get("host", {})),
        device=device,
        slots=config["slots"],
        task_config=TaskConfig(**config.get("task", {})),
    )
    model.load_state_dict(checkpoint["model_state_dict"])
    return model


class PPOAgent(PPOAgentBase):
    """PPO agent whose checkpoint holds only tensors and primitives."""

    def save(self, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
        """Write weights, optimizer state, config, stats and ``metadata`` to ``path``.

        ``metadata`` must itself be primitives for the file to stay ``weights_only`` safe.
        """
        torch.save(
            {
                "policy_state_dict": self.policy.state_dict(),
                "value_state_dict": self.value.state_dict(),
                "optimizer_state_dict": self.optimizer.state_dict(),
                "state_dim": self.state_dim,
                "action_dim": self.action_dim,
                "config": dataclasses.asdict(self.config),
                "stats": {
                    "phase": self.phase.name,
                    "recent_returns": list(self.recent_returns),
                    "created_at": self.created_at.timestamp(),
                    "updates": self.updates,
                },
                "metadata": dict(metadata or {}),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> PPOAgent:
        """Load an agent written by :meth:`save` with ``weights_only=True``.

        Args:
            path: File written by :meth:`save`.
            device: Where to put the networks and optimizer state.

        Returns:
            The agent with weights, optimizer state, config and stats restored; its metadata
            is in :attr:`metadata`.

        Example:
            >>> agent = PPOAgent.load("agent.pt")  # doctest: +SKIP
        """
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        stats = checkpoint["stats"]
        created_at = datetime.fromtimestamp(float(stats["created_at"]), tz=timezone.utc)
        agent = cls(
            state_dim=int(checkpoint["state_dim"]),
            action_dim=int(checkpoint["action_dim"]),
            device=device,
            config=PPOConfig(**checkpoint["config"]),
            clock=lambda: created_at,
        )
        agent.policy.load_state_dict(checkpoint["policy_state_dict"])
        agent.value.load_state_dict(checkpoint["value_state_dict"])
        agent.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        agent.phase = TrainingPhase[str(stats["phase"])]
        agent.recent_returns.extend(float(r) for r in stats["recent_returns"])
        agent.updates = int(stats["updates"])
        agent.metadata = dict(checkpoint["metadata"])
        return agent
