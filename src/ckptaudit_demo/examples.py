"""Build the examples: a trained PPO agent, the three-slot model, and their checkpoints.

Needs torch (the ``torch`` extra). Everything is seeded and runs on CPU, so
:func:`build_checkpoint` writes the same bytes for the same file name and torch version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F

from .fixed import MorphogeneticModel as _FixedModel
from .fixed import PPOAgent as _FixedAgent
from .fixed import save_checkpoint as _save_fixed
from .legacy import MorphogeneticModel as _LegacyModel
from .legacy import PPOAgent as _LegacyAgent
from .legacy import save_checkpoint as _save_legacy
from .models import (
    CNNHost,
    MorphogeneticModelBase,
    PPOAgentBase,
    RolloutBatch,
    SeedStage,
    TaskConfig,
    compute_gae,
)

__all__ = [
    "EXAMPLE_METADATA",
    "SEED",
    "build_agent",
    "build_checkpoint",
    "build_model",
    "example_input",
]

SEED = 0
"""Seed for every random draw made while building the examples."""

EXAMPLE_METADATA: dict[str, Any] = {
    "experiment": "ckptaudit-example",
    "environment": "contextual-bandit",
    "seed": SEED,
    "episodes": 8,
}
"""Metadata passed to ``agent.save`` by :func:`build_checkpoint`."""

_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
# Not a whole number of seconds, so the float-timestamp round trip is exercised to the microsecond.
_TICK = timedelta(seconds=1, microseconds=250_001)
_EPISODE_LEN = 8


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, restoring the previous setting afterwards."""
    # Thread count can change float reduction order, which would break byte-identical
    # checkpoints across machines; and for models this small, one thread is also fastest.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _TickingClock:
    """Deterministic clock: each call returns a time one tick after the previous one."""

    def __init__(self) -> None:
        self._now = _EPOCH

    def __call__(self) -> datetime:
        now = self._now
        self._now += _TICK
        return now


@overload
def build_agent(fixed: Literal[True]) -> _FixedAgent: ...
@overload
def build_agent(fixed: Literal[False]) -> _LegacyAgent: ...
@overload
def build_agent(fixed: bool) -> PPOAgentBase: ...
def build_agent(fixed: bool) -> PPOAgentBase:
    """Build a PPO agent (state_dim=50, action_dim=4) trained for two small updates."""
    agent_cls = _FixedAgent if fixed else _LegacyAgent
    with _single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        agent = agent_cls(state_dim=50, action_dim=4, device="cpu", clock=_TickingClock())
        for _ in range(2):
            _train_agent_once(agent, steps=4 * _EPISODE_LEN)
    return agent


def _train_agent_once(agent: PPOAgentBase, steps: int) -> None:
    # A contextual bandit: the right action is the argmax of the state's first action_dim
    # features, which gives the update a real signal without shipping an environment.
    states = torch.randn(steps, agent.state_dim)
    out = agent.act(states)
    rewards = (out.action == states[:, : agent.action_dim].argmax(dim=-1)).float()
    dones = torch.zeros(steps)
    dones[_EPISODE_LEN - 1 :: _EPISODE_LEN] = 1.0
    advantages, returns = compute_gae(
        rewards,
        out.value,
        dones,
        last_value=0.0,
        gamma=agent.config.gamma,
        gae_lambda=agent.config.gae_lambda,
    )
    agent.update(RolloutBatch(states, out.action, out.log_prob, advantages, returns))
    for episode_return in rewards.view(-1, _EPISODE_LEN).sum(dim=-1).tolist():
        agent.record_episode(episode_return)


@overload
def build_model(fixed: Literal[True]) -> _FixedModel: ...
@overload
def build_model(fixed: Literal[False]) -> _LegacyModel: ...
@overload
def build_model(fixed: bool) -> MorphogeneticModelBase: ...
def build_model(fixed: bool) -> MorphogeneticModelBase:
    """Build the three-slot model with a "norm" seed blending into slot "mid".

    The seed "test-seed-001" uses the "sigmoid" schedule and has taken three blending steps,
    each with one SGD step on a random batch, so alpha is strictly between 0 and 1.
    """
    model_cls = _FixedModel if fixed else _LegacyModel
    with _single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_cls(
            host=CNNHost(num_classes=10, n_blocks=3),
            device="cpu",
            slots=["early", "mid", "late"],
            task_config=TaskConfig(topology="cnn", blending_steps=10),
            clock=_TickingClock(),
        )
        model.germinate_seed(
            blueprint_id="norm", seed_id="test-seed-001", slot="mid", blend_algorithm_id="sigmoid"
        )
        slot = model.get_slot("mid")
        slot.advance(SeedStage.TRAINING)
        slot.advance(SeedStage.BLENDING)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        images = torch.randn(8, 3, 32, 32)
        labels = torch.randint(0, 10, (8,))
        for _ in range(3):
            slot.step_blending()
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            slot.record_metric("train_loss", loss.item())
    return model


def example_input(batch: int = 2) -> torch.Tensor:
    """Return a fixed (batch, 3, 32, 32) input for comparing model outputs."""
    generator = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(batch, 3, 32, 32, generator=generator)


def build_checkpoint(
    which: Literal["ppo", "morphogenetic"], fixed: bool, path: str | os.PathLike[str]
) -> Path:
    """Build an example and save its checkpoint.

    Args:
        which: ``"ppo"`` for the agent checkpoint, ``"morphogenetic"`` for the model one.
        fixed: Save with the fixed (``weights_only``-safe) serialization instead of the
            legacy one.
        path: Where to write the checkpoint; the parent directory must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> build_checkpoint("morphogenetic", fixed=False, path="legacy.pt")  # doctest: +SKIP
        PosixPath('legacy.pt')
    """
    out = Path(path)
    if which == "ppo":
        if fixed:
            build_agent(True).save(out, metadata=EXAMPLE_METADATA)
        else:
            build_agent(False).save(out, metadata=EXAMPLE_METADATA)
    elif which == "morphogenetic":
        if fixed:
            _save_fixed(build_model(True), out)
        else:
            _save_legacy(build_model(False), out)
    else:
        raise ValueError(f"unknown example {which!r}; expected 'ppo' or 'morphogenetic'")
    return out
