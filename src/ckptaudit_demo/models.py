"""Networks, host, seeds and the PPO agent shared by the legacy and fixed examples.

Everything here is serialization-agnostic: ``legacy`` and ``fixed`` subclass the slot, the
model and the agent and add only ``get_extra_state``/``set_extra_state`` and ``save``/``load``,
so the two checkpoints differ exactly where the migration changed the code.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, NamedTuple, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BLEND_ALGORITHMS",
    "BLUEPRINTS",
    "HISTORY_LIMIT",
    "SLOT_POSITIONS",
    "ActOutput",
    "BlendAlgorithm",
    "BlendConfig",
    "CNNHost",
    "Clock",
    "ConvBlock",
    "ConvSeed",
    "LinearBlend",
    "MorphogeneticModelBase",
    "NormSeed",
    "PPOAgentBase",
    "PPOConfig",
    "RolloutBatch",
    "SeedSlotBase",
    "SeedStage",
    "SeedState",
    "SeedStateDict",
    "SigmoidBlend",
    "TaskConfig",
    "TrainingPhase",
    "build_blend",
    "build_blueprint",
    "compute_gae",
    "make_blend",
    "mlp",
    "utc_now",
]

Clock = Callable[[], datetime]
"""A zero-argument callable returning an aware datetime; injected so examples are reproducible."""

BlendConfig = dict[str, str | int | float]
"""A blend algorithm's constructor arguments plus its ``"algorithm"`` id."""

HISTORY_LIMIT = 16
"""How many past stages a seed remembers."""

SLOT_POSITIONS: dict[str, int] = {"early": 0, "mid": 1, "late": 2}
"""Index of the host block each named slot follows."""


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------------------------------
# Seed lifecycle state
# ---------------------------------------------------------------------------------------------


class SeedStage(enum.Enum):
    """Lifecycle stage of a seed module in a slot."""

    DORMANT = 1
    GERMINATED = 2
    TRAINING = 3
    BLENDING = 4
    FOSSILIZED = 5
    CULLED = 6


_TRANSITIONS: dict[SeedStage, frozenset[SeedStage]] = {
    SeedStage.DORMANT: frozenset({SeedStage.GERMINATED}),
    SeedStage.GERMINATED: frozenset({SeedStage.TRAINING, SeedStage.CULLED}),
    SeedStage.TRAINING: frozenset({SeedStage.BLENDING, SeedStage.CULLED}),
    SeedStage.BLENDING: frozenset({SeedStage.FOSSILIZED, SeedStage.CULLED}),
    SeedStage.FOSSILIZED: frozenset(),
    SeedStage.CULLED: frozenset(),
}


class SeedStateDict(TypedDict):
    """Primitive-only form of :class:`SeedState`, safe under ``weights_only=True``."""

    seed_id: str
    blueprint_id: str
    slot: str
    stage: str
    stage_entered_at: float
    stage_history: list[str]
    alpha: float
    blending_steps_done: int
    metrics: dict[str, float]


def _history() -> deque[SeedStage]:
    return deque(maxlen=HISTORY_LIMIT)


@dataclass
class SeedState:
    """Everything the controller knows about the seed living in one slot."""

    seed_id: str
    """Unique id the controller gave the seed."""
    blueprint_id: str
    """Key into :data:`BLUEPRINTS` that built the seed module."""
    slot: str
    """Name of the slot the seed lives in."""
    stage: SeedStage
    """Current lifecycle stage."""
    stage_entered_at: datetime
    """When the seed entered ``stage`` (aware UTC)."""
    stage_history: deque[SeedStage] = field(default_factory=_history)
    """Stages the seed passed through, oldest first."""
    alpha: float = 0.0
    """Current blend weight of the seed's output, in [0, 1]."""
    blending_steps_done: int = 0
    """Blending steps taken so far."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Latest scalar measurements the controller observes."""

    def to_dict(self) -> SeedStateDict:
        """Return this state as primitives only (stage names, float timestamp, lists)."""
        return {
            "seed_id": self.seed_id,
            "blueprint_id": self.blueprint_id,
            "slot": self.slot,
            "stage": self.stage.name,
            "stage_entered_at": self.stage_entered_at.timestamp(),
            "stage_history": [stage.name for stage in self.stage_history],
            "alpha": float(self.alpha),
            "blending_steps_done": int(self.blending_steps_done),
            "metrics": {str(k): float(v) for k, v in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeedState:
        """Rebuild a state from :meth:`to_dict` output.

        Every field is converted explicitly because the mapping comes from a file.
        """
        history: deque[SeedStage] = _history()
        history.extend(SeedStage[str(name)] for name in data["stage_history"])
        return cls(
            seed_id=str(data["seed_id"]),
            blueprint_id=str(data["blueprint_id"]),
            slot=str(data["slot"]),
            stage=SeedStage[str(data["stage"])],
            stage_entered_at=datetime.fromtimestamp(
                float(data["stage_entered_at"]), tz=timezone.utc
            ),
            stage_history=history,
            alpha=float(data["alpha"]),
            blending_steps_done=int(data["blending_steps_done"]),
            metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
        )


# ---------------------------------------------------------------------------------------------
# Blend algorithms (alpha schedules)
# ---------------------------------------------------------------------------------------------


class BlendAlgorithm(nn.Module):
    """Schedule mapping a blending step to the seed's blend weight alpha in [0, 1]."""

    algorithm_id: ClassVar[str]

    def __init__(self, steps: int) -> None:
        super().__init__()
        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        self.steps = steps

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """Return alpha for each element of ``step``."""
        raise NotImplementedError

    def alpha(self, step: int) -> float:
        """Return alpha after ``step`` blending steps."""
        out: torch.Tensor = self(torch.tensor(float(step), dtype=torch.float64))
        return float(out.item())

    def to_config(self) -> BlendConfig:
        """Return the constructor arguments, keyed with the algorithm id."""
        return {"algorithm": self.algorithm_id, "steps": self.steps}

    @classmethod
    def from_config(cls, config: Mapping[str, str | int | float]) -> BlendAlgorithm:
        """Build an instance from :meth:`to_config` output."""
        return cls(int(config["steps"]))

    def _progress(self, step: torch.Tensor) -> torch.Tensor:
        return (step / self.steps).clamp(0.0, 1.0)


class LinearBlend(BlendAlgorithm):
    """Alpha grows linearly from 0 to 1 over ``steps``."""

    algorithm_id: ClassVar[str] = "linear"

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """Return ``step / steps`` clamped to [0, 1]."""
        return self._progress(step)


class SigmoidBlend(BlendAlgorithm):
    """Alpha follows a logistic curve, rescaled to hit exactly 0 and 1 at the ends.

    Lower ``temperature`` means a sharper switch around the midpoint.
    """

    algorithm_id: ClassVar[str] = "sigmoid"
    _SHARPNESS: ClassVar[float] = 12.0

    def __init__(self, steps: int, temperature: float = 1.0) -> None:
        super().__init__(steps)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """Return the rescaled logistic alpha for ``step``."""
        half = 0.5 * self._SHARPNESS / self.temperature
        raw = torch.sigmoid((self._progress(step) - 0.5) * 2.0 * half)
        low, high = 1.0 / (1.0 + math.exp(half)), 1.0 / (1.0 + math.exp(-half))
        return (raw - low) / (high - low)

    def to_config(self) -> BlendConfig:
        """Return steps, temperature and the algorithm id."""
        return {**super().to_config(), "temperature": self.temperature}

    @classmethod
    def from_config(cls, config: Mapping[str, str | int | float]) -> SigmoidBlend:
        """Build an instance from :meth:`to_config` output."""
        return cls(int(config["steps"]), float(config.get("temperature", 1.0)))


BLEND_ALGORITHMS: dict[str, type[BlendAlgorithm]] = {
    LinearBlend.algorithm_id: LinearBlend,
    SigmoidBlend.algorithm_id: SigmoidBlend,
}
"""Blend algorithms by id."""


def make_blend(algorithm_id: str, steps: int) -> BlendAlgorithm:
    """Build the blend algorithm ``algorithm_id`` with default settings for ``steps``."""
    try:
        cls = BLEND_ALGORITHMS[algorithm_id]
    except KeyError:
        raise ValueError(
            f"unknown blend algorithm {algorithm_id!r}; known: {sorted(BLEND_ALGORITHMS)}"
        ) from None
    return cls(steps)


def build_blend(config: Mapping[str, str | int | float]) -> BlendAlgorithm:
    """Rebuild a blend algorithm from its ``to_config()`` dict."""
    algorithm_id = str(config["algorithm"])
    try:
        cls = BLEND_ALGORITHMS[algorithm_id]
    except KeyError:
        raise ValueError(
            f"unknown blend algorithm {algorithm_id!r}; known: {sorted(BLEND_ALGORITHMS)}"
        ) from None
    return cls.from_config(config)


# ---------------------------------------------------------------------------------------------
# Host network and seed blueprints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskConfig:
    """Task-level settings for a morphogenetic model."""

    topology: str = "cnn"
    """Host family; only ``"cnn"`` exists in the examples."""
    blending_steps: int = 10
    """Number of steps a germinated seed takes to blend in fully."""


class ConvBlock(nn.Module):
    """Conv-BatchNorm-ReLU, optionally downsampling."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return F.relu(self.bn(self.conv(x)))


class CNNHost(nn.Module):
    """Small image classifier: a stem, ``n_blocks`` conv blocks doubling width, and a head."""

    topology: ClassVar[str] = "cnn"

    def __init__(
        self, num_classes: int = 10, n_blocks: int = 3, in_channels: int = 3, width: int = 16
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.n_blocks = n_blocks
        self.in_channels = in_channels
        self.width = width
        self.block_channels: tuple[int, ...] = tuple(width * 2**i for i in range(n_blocks))
        self.stem = ConvBlock(in_channels, width)
        blocks: list[nn.Module] = []
        channels = width
        for index, out_channels in enumerate(self.block_channels):
            blocks.append(ConvBlock(channels, out_channels, stride=1 if index == 0 else 2))
            channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
        )

    def config(self) -> dict[str, int]:
        """Return the constructor arguments."""
        return {
            "num_classes": self.num_classes,
            "n_blocks": self.n_blocks,
            "in_channels": self.in_channels,
            "width": self.width,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` without any seeds."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        out: torch.Tensor = self.head(x)
        return out


class NormSeed(nn.Module):
    """Residual seed: GroupNorm, ReLU, 3x3 conv, added back to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(8, channels), channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the seed."""
        out: torch.Tensor = x + self.conv(F.relu(self.norm(x)))
        return out


class ConvSeed(nn.Module):
    """Residual seed: 3x3 conv, BatchNorm, ReLU, added back to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = ConvBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the seed."""
        out: torch.Tensor = x + self.block(x)
        return out


BLUEPRINTS: dict[str, Callable[[int], nn.Module]] = {"norm": NormSeed, "conv": ConvSeed}
"""Seed module factories by blueprint id; each takes the slot's channel count."""


def build_blueprint(blueprint_id: str, channels: int) -> nn.Module:
    """Build a fresh seed module of blueprint ``blueprint_id`` for ``channels`` channels."""
    try:
        factory = BLUEPRINTS[blueprint_id]
    except KeyError:
        raise ValueError(
            f"unknown blueprint {blueprint_id!r}; known: {sorted(BLUEPRINTS)}"
        ) from None
    return factory(channels)


# ---------------------------------------------------------------------------------------------
# Seed slot and morphogenetic model
# ---------------------------------------------------------------------------------------------


class SeedSlotBase(nn.Module):
    """A named place after a host block where a seed can grow and be blended in.

    Subclasses decide how the slot's non-tensor state is serialized.
    """

    seed: nn.Module | None
    alpha_schedule: BlendAlgorithm | None

    def __init__(
        self,
        name: str,
        channels: int,
        *,
        blending_steps: int,
        device: torch.device | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__()
        self.name = name
        self.channels = channels
        self.blending_steps = blending_steps
        self.device = device if device is not None else torch.device("cpu")
        self._clock = clock
        self.seed = None
        self.alpha_schedule = None
        self.seed_state: SeedState | None = None
        self.isolate_gradients = False

    @property
    def is_active(self) -> bool:
        """Whether a live seed module contributes to the output."""
        return self.seed is not None and self.seed_state is not None

    def germinate(
        self, blueprint_id: str, seed_id: str, blend_algorithm_id: str = "sigmoid"
    ) -> SeedState:
        """Plant a new seed; the slot must be empty or hold a culled seed."""
        if self.seed_state is not None and self.seed_state.stage is not SeedStage.CULLED:
            raise RuntimeError(f"slot {self.name!r} already holds seed {self.seed_state.seed_id!r}")
        self.seed = build_blueprint(blueprint_id, self.channels).to(self.device)
        self.alpha_schedule = make_blend(blend_algorithm_id, self.blending_steps)
        # Isolated until blended in, so a bad seed cannot damage the host's features.
        self.isolate_gradients = True
        history = _history()
        history.append(SeedStage.DORMANT)
        self.seed_state = SeedState(
            seed_id=seed_id,
            blueprint_id=blueprint_id,
            slot=self.name,
            stage=SeedStage.GERMINATED,
            stage_entered_at=self._clock(),
            stage_history=history,
        )
        return self.seed_state

    def advance(self, stage: SeedStage) -> None:
        """Move the seed to ``stage``, recording the old stage in its history."""
        state = self._require_state()
        if stage not in _TRANSITIONS[state.stage]:
            raise RuntimeError(
                f"seed {state.seed_id!r}: cannot go {state.stage.name} -> {stage.name}"
            )
        state.stage_history.append(state.stage)
        state.stage = stage
        state.stage_entered_at = self._clock()

    def step_blending(self) -> float:
        """Take one blending step and return the new alpha."""
        state = self._require_state()
        if state.stage is not SeedStage.BLENDING or self.alpha_schedule is None:
            raise RuntimeError(f"seed {state.seed_id!r} is not blending")
        state.blending_steps_done += 1
        state.alpha = self.alpha_schedule.alpha(state.blending_steps_done)
        return state.alpha

    def fossilize(self) -> None:
        """Make the seed a permanent, fully blended part of the network."""
        self.advance(SeedStage.FOSSILIZED)
        self._require_state().alpha = 1.0
        self.isolate_gradients = False

    def cull(self) -> None:
        """Discard the seed module, keeping its state as a record."""
        self.advance(SeedStage.CULLED)
        self._require_state().alpha = 0.0
        self.seed = None
        self.alpha_schedule = None
        self.isolate_gradients = False

    def record_metric(self, name: str, value: float) -> None:
        """Store the latest value of a scalar metric for the controller."""
        self._require_state().metrics[name] = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blend the seed's output into ``x`` with weight alpha; identity when empty."""
        if self.seed is None or self.seed_state is None:
            return x
        seed_out: torch.Tensor = self.seed(x.detach() if self.isolate_gradients else x)
        return torch.lerp(x, seed_out, self.seed_state.alpha)

    def _restore(
        self,
        seed_state: SeedState | None,
        alpha_schedule: BlendAlgorithm | None,
        isolate_gradients: bool,
    ) -> None:
        """Adopt deserialized state, creating or dropping the seed module to match it."""
        previous = self.seed_state
        self.seed_state = seed_state
        self.alpha_schedule = alpha_schedule
        self.isolate_gradients = isolate_gradients
        if seed_state is None or seed_state.stage is SeedStage.CULLED:
            self.seed = None
        elif (
            self.seed is None
            or previous is None
            or previous.blueprint_id != seed_state.blueprint_id
        ):
            # load_state_dict calls set_extra_state before it descends into child modules, so
            # a seed built here still receives its weights from the same state_dict.
            self.seed = build_blueprint(seed_state.blueprint_id, self.channels).to(self.device)

    def _require_state(self) -> SeedState:
        if self.seed_state is None:
            raise RuntimeError(f"slot {self.name!r} is empty")
        return self.seed_state


class MorphogeneticModelBase(nn.Module):
    """A host CNN with named seed slots after its blocks.

    Subclasses set :attr:`slot_cls` to pick the slots' serialization.
    """

    slot_cls: ClassVar[type[SeedSlotBase]] = SeedSlotBase

    def __init__(
        self,
        host: CNNHost | None = None,
        device: str | torch.device = "cpu",
        slots: Sequence[str] = ("early", "mid", "late"),
        task_config: TaskConfig | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__()
        self.host = host if host is not None else CNNHost()
        self.task_config = task_config if task_config is not None else TaskConfig()
        if self.task_config.topology != self.host.topology:
            raise ValueError(
                f"task topology {self.task_config.topology!r} does not match host "
                f"{self.host.topology!r}"
            )
        self.device = torch.device(device)
        self.slot_names = tuple(slots)
        self._slot_after: dict[int, str] = {}
        modules: dict[str, nn.Module] = {}
        for name in self.slot_names:
            position = SLOT_POSITIONS.get(name)
            if position is None or position >= self.host.n_blocks:
                raise ValueError(f"slot {name!r} has no host block to follow")
            self._slot_after[position] = name
            modules[name] = self.slot_cls(
                name,
                self.host.block_channels[position],
                blending_steps=self.task_config.blending_steps,
                device=self.device,
                clock=clock,
            )
        self.slots = nn.ModuleDict(modules)
        self.to(self.device)

    def get_slot(self, name: str) -> SeedSlotBase:
        """Return the slot called ``name``."""
        slot = self.slots[name]
        assert isinstance(slot, SeedSlotBase)
        return slot

    def germinate_seed(
        self, blueprint_id: str, seed_id: str, slot: str, blend_algorithm_id: str = "sigmoid"
    ) -> SeedState:
        """Plant seed ``seed_id`` of blueprint ``blueprint_id`` in ``slot``."""
        return self.get_slot(slot).germinate(blueprint_id, seed_id, blend_algorithm_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` of shape (N, C, H, W), passing through each slot after its block."""
        x = self.host.stem(x)
        for index, block in enumerate(self.host.blocks):
            x = block(x)
            name = self._slot_after.get(index)
            if name is not None:
                x = self.slots[name](x)
        out: torch.Tensor = self.host.head(x)
        return out


# ---------------------------------------------------------------------------------------------
# PPO agent
# ---------------------------------------------------------------------------------------------


class TrainingPhase(enum.Enum):
    """Where the agent is in its training run."""

    WARMUP = "warmup"
    TRAINING = "training"
    EVALUATION = "evaluation"


@dataclass
class PPOConfig:
    """PPO hyperparameters."""

    learning_rate: float = 3e-4
    """Adam step size shared by policy and value networks."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE bias/variance trade-off."""
    clip_epsilon: float = 0.2
    """Probability-ratio clip range."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    update_epochs: int = 4
    """Passes over each rollout."""
    hidden_dim: int = 64
    """Width of both MLPs."""
    returns_window: int = 100
    """How many recent episode returns the agent keeps."""


class ActOutput(NamedTuple):
    """Result of :meth:`PPOAgentBase.act`."""

    action: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor


@dataclass(frozen=True)
class RolloutBatch:
    """One batch of experience for a PPO update; all tensors share the first dimension."""

    states: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Return a two-hidden-layer tanh MLP."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.Tanh(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.Tanh(),
        nn.Linear(hidden_dim, out_dim),
    )


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    *,
    last_value: float,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (advantages, returns) for a single trajectory via generalized advantage estimation.

    ``dones[t]`` is 1.0 when the episode ended after step ``t``.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    next_value = torch.tensor(last_value, dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        running = delta + gamma * gae_lambda * not_done * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


class PPOAgentBase:
    """Discrete-action PPO agent with separate policy and value MLPs.

    Subclasses add ``save`` (and, where it is safe, ``load``).
    """

    def __init__(
        self,
        state_dim: int = 50,
        action_dim: int = 4,
        device: str | torch.device = "cpu",
        config: PPOConfig | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.device = torch.device(device)
        self.config = config if config is not None else PPOConfig()
        self.policy = mlp(state_dim, self.config.hidden_dim, action_dim).to(self.device)
        self.value = mlp(state_dim, self.config.hidden_dim, 1).to(self.device)
        self.optimizer = torch.optim.Adam(
            [*self.policy.parameters(), *self.value.parameters()], lr=self.config.learning_rate
        )
        self.phase = TrainingPhase.WARMUP
        self.recent_returns: deque[float] = deque(maxlen=self.config.returns_window)
        self.created_at = clock()
        self.updates = 0
        # Filled only by loaders; save() takes metadata explicitly so nothing stale leaks.
        self.metadata: dict[str, Any] = {}

    @torch.no_grad()
    def act(self, states: torch.Tensor) -> ActOutput:
        """Sample actions for a batch of states."""
        log_probs = F.log_softmax(self.policy(states), dim=-1)
        action = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
        value: torch.Tensor = self.value(states).squeeze(-1)
        return ActOutput(action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1), value)

    def record_episode(self, episode_return: float) -> None:
        """Remember the return of a finished episode."""
        self.recent_returns.append(float(episode_return))

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """Run the clipped PPO objective over ``batch`` and return the last epoch's losses."""
        cfg = self.config
        advantages = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
        params = [*self.policy.parameters(), *self.value.parameters()]
        stats: dict[str, float] = {}
        for _ in range(cfg.update_epochs):
            log_probs = F.log_softmax(self.policy(batch.states), dim=-1)
            taken = log_probs.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
            ratio = torch.exp(taken - batch.log_probs)
            clipped = ratio.clamp(1.0 - cfg.clip_epsilon, 1.0 + cfg.clip_epsilon)
            policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            value_loss = F.mse_loss(self.value(batch.states).squeeze(-1), batch.returns)
            entropy = -(log_probs.exp() * log_probs).sum(dim=-1).mean()
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
            self.optimizer.zero_grad()
            torch.autograd.backward(loss)
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.optimizer.step()
            stats = {
                "policy_loss": float(policy_loss.item()),
                "value_loss": float(value_loss.item()),
                "entropy": float(entropy.item()),
            }
        self.updates += 1
        self.phase = TrainingPhase.TRAINING
        return stats
