"""Legacy example checkpoints fail ``weights_only=True``; fixed ones load and round-trip.

Nothing here loads with ``weights_only=False``: legacy objects are inspected in memory only.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import itertools
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from ckptaudit_demo import (  # noqa: E402
    EXAMPLE_METADATA,
    build_agent,
    build_checkpoint,
    build_model,
    example_input,
    fixed,
    legacy,
)
from ckptaudit_demo.models import (  # noqa: E402
    BLEND_ALGORITHMS,
    LinearBlend,
    NormSeed,
    SeedStage,
    SeedState,
    SigmoidBlend,
    TrainingPhase,
    build_blend,
)

pytestmark = pytest.mark.torch

WHICH = ["ppo", "morphogenetic"]
PRIMITIVES = (str, int, float, bool, type(None))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # The models are tiny; on a busy two-core machine, thread hand-offs cost more than the math.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def fixed_model() -> fixed.MorphogeneticModel:
    return build_model(True).eval()


@pytest.fixture(scope="module")
def fixed_agent() -> fixed.PPOAgent:
    return build_agent(True)


@pytest.fixture(scope="module")
def legacy_model() -> legacy.MorphogeneticModel:
    return build_model(False)


def _assert_primitive_tree(obj: Any, path: str = "root") -> None:
    if isinstance(obj, (*PRIMITIVES, torch.Tensor)):
        return
    if type(obj) in (dict, collections.OrderedDict):
        for key, value in obj.items():
            assert isinstance(key, (str, int)), f"{path}: key {key!r}"
            _assert_primitive_tree(value, f"{path}[{key!r}]")
        return
    assert type(obj) in (list, tuple), f"{path}: {type(obj).__qualname__}"
    for index, value in enumerate(obj):
        _assert_primitive_tree(value, f"{path}[{index}]")


# --- build_checkpoint ---------------------------------------------------------------------


@pytest.mark.parametrize("is_fixed", [False, True])
@pytest.mark.parametrize("which", WHICH)
def test_build_checkpoint_writes_file(tmp_path: Path, which: Any, is_fixed: bool) -> None:
    target = tmp_path / "ckpt.pt"
    out = build_checkpoint(which, is_fixed, str(target))
    assert out == target
    assert out.stat().st_size > 0


@pytest.mark.parametrize("is_fixed", [False, True])
@pytest.mark.parametrize("which", WHICH)
def test_build_checkpoint_is_deterministic(tmp_path: Path, which: Any, is_fixed: bool) -> None:
    # Same file name, because torch.save names the archive's root folder after it.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_checkpoint(which, is_fixed, tmp_path / "a" / "ckpt.pt").read_bytes()
    second = build_checkpoint(which, is_fixed, tmp_path / "b" / "ckpt.pt").read_bytes()
    assert first == second


def test_build_checkpoint_rejects_unknown_example(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown example"):
        build_checkpoint("resnet", True, tmp_path / "x.pt")  # type: ignore[arg-type]


def test_build_does_not_disturb_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(True)
    assert torch.equal(torch.rand(3), expected)


# --- legacy: fails weights_only, holds live objects -----------------------------------------


@pytest.mark.parametrize(
    ("which", "first_global"),
    [
        ("ppo", "ckptaudit_demo.models.PPOConfig"),
        ("morphogenetic", "ckptaudit_demo.models.SeedState"),
    ],
)
def test_legacy_checkpoint_fails_weights_only(
    tmp_path: Path, which: Any, first_global: str
) -> None:
    path = build_checkpoint(which, False, tmp_path / "legacy.pt")
    with pytest.raises(pickle.UnpicklingError, match=f"Unsupported global: GLOBAL {first_global}"):
        torch.load(path, weights_only=True)


def test_legacy_has_no_loader() -> None:
    assert not hasattr(legacy.PPOAgent, "load")
    assert not hasattr(legacy, "load_checkpoint")


def test_legacy_state_dict_holds_live_objects(legacy_model: legacy.MorphogeneticModel) -> None:
    state_dict = legacy_model.state_dict()
    assert "slots.mid._extra_state" in state_dict
    extra = state_dict["slots.mid._extra_state"]
    assert set(extra) == {"seed_state", "alpha_schedule", "isolate_gradients"}

    seed_state = extra["seed_state"]
    assert isinstance(seed_state, SeedState)
    assert dataclasses.is_dataclass(seed_state)
    assert seed_state.seed_id == "test-seed-001"
    assert seed_state.blueprint_id == "norm"
    assert seed_state.slot == "mid"
    assert isinstance(seed_state.stage, SeedStage)
    assert seed_state.stage is SeedStage.BLENDING
    assert isinstance(seed_state.stage_entered_at, datetime.datetime)
    assert seed_state.stage_entered_at.tzinfo is datetime.timezone.utc
    assert isinstance(seed_state.stage_history, collections.deque)
    assert list(seed_state.stage_history) == [
        SeedStage.DORMANT,
        SeedStage.GERMINATED,
        SeedStage.TRAINING,
    ]
    assert 0.0 < seed_state.alpha < 1.0
    assert seed_state.blending_steps_done == 3
    assert set(seed_state.metrics) == {"train_loss"}

    assert isinstance(extra["alpha_schedule"], nn.Module)
    assert isinstance(extra["alpha_schedule"], SigmoidBlend)
    assert extra["isolate_gradients"] is True

    for empty in ("early", "late"):
        assert state_dict[f"slots.{empty}._extra_state"] == {
            "seed_state": None,
            "alpha_schedule": None,
            "isolate_gradients": False,
        }


def test_legacy_agent_holds_live_objects() -> None:
    agent = build_agent(False)
    assert isinstance(agent.config, fixed.PPOConfig)
    assert agent.phase is TrainingPhase.TRAINING
    assert isinstance(agent.recent_returns, collections.deque)
    assert isinstance(agent.created_at, datetime.datetime)


def test_legacy_in_memory_copy_does_not_share_state(
    legacy_model: legacy.MorphogeneticModel,
) -> None:
    copy = legacy.MorphogeneticModel()
    copy.load_state_dict(legacy_model.state_dict())
    original_state = legacy_model.get_slot("mid").seed_state
    copied_state = copy.get_slot("mid").seed_state
    assert copied_state == original_state
    assert copied_state is not original_state


# --- fixed: loads with weights_only and round-trips -----------------------------------------


@pytest.mark.parametrize("which", WHICH)
def test_fixed_checkpoint_is_primitives_and_tensors(tmp_path: Path, which: Any) -> None:
    path = build_checkpoint(which, True, tmp_path / "fixed.pt")
    _assert_primitive_tree(torch.load(path, weights_only=True))


def test_fixed_model_round_trip(tmp_path: Path, fixed_model: fixed.MorphogeneticModel) -> None:
    path = tmp_path / "model.pt"
    fixed.save_checkpoint(fixed_model, path)
    restored = fixed.load_checkpoint(path).eval()

    x = example_input()
    with torch.no_grad():
        expected = fixed_model(x)
        assert expected.shape == (2, 10)
        assert torch.equal(restored(x), expected)

    saved, loaded = fixed_model.state_dict(), restored.state_dict()
    assert saved.keys() == loaded.keys()
    for key, value in saved.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(loaded[key], value), key
        else:
            assert loaded[key] == value, key
    assert restored.get_slot("mid").seed_state == fixed_model.get_slot("mid").seed_state


def test_fixed_model_seed_contributes_to_output(fixed_model: fixed.MorphogeneticModel) -> None:
    # Guards the round-trip test against passing vacuously with an inert seed.
    x = example_input()
    bare = fixed.MorphogeneticModel()
    bare.load_state_dict(fixed_model.state_dict())
    bare.get_slot("mid").cull()
    with torch.no_grad():
        assert not torch.equal(bare.eval()(x), fixed_model(x))


def test_set_extra_state_round_trips_every_field(fixed_model: fixed.MorphogeneticModel) -> None:
    slot = fixed_model.get_slot("mid")
    extra = slot.get_extra_state()
    _assert_primitive_tree(extra)
    assert extra["seed_state"]["stage"] == "BLENDING"
    assert extra["seed_state"]["stage_history"] == ["DORMANT", "GERMINATED", "TRAINING"]
    assert isinstance(extra["seed_state"]["stage_entered_at"], float)
    # The plan's name: the config, not the module, under its own key.
    assert set(extra) == {"seed_state", "alpha_schedule_config", "isolate_gradients"}
    assert extra["alpha_schedule_config"] == {
        "algorithm": "sigmoid",
        "steps": 10,
        "temperature": 1.0,
    }

    target = fixed.MorphogeneticModel().get_slot("mid")
    assert target.seed is None
    target.set_extra_state(extra)

    original, restored = slot.seed_state, target.seed_state
    assert original is not None
    assert restored is not None
    for field in dataclasses.fields(SeedState):
        assert getattr(restored, field.name) == getattr(original, field.name), field.name
    assert restored.stage is SeedStage.BLENDING
    assert restored.stage_entered_at == original.stage_entered_at
    assert restored.stage_entered_at.tzinfo == datetime.timezone.utc
    assert isinstance(restored.stage_history, collections.deque)
    assert restored.stage_history.maxlen == original.stage_history.maxlen
    assert isinstance(target.alpha_schedule, SigmoidBlend)
    assert slot.alpha_schedule is not None
    assert target.alpha_schedule.to_config() == slot.alpha_schedule.to_config()
    assert target.isolate_gradients is slot.isolate_gradients is True
    assert isinstance(target.seed, NormSeed)


def test_fixed_culled_seed_round_trips_without_module(
    tmp_path: Path, fixed_model: fixed.MorphogeneticModel
) -> None:
    model = fixed.MorphogeneticModel()
    model.load_state_dict(fixed_model.state_dict())
    model.get_slot("mid").cull()
    path = tmp_path / "culled.pt"
    fixed.save_checkpoint(model, path)

    restored = fixed.load_checkpoint(path).get_slot("mid")
    assert restored.seed is None
    assert restored.alpha_schedule is None
    assert restored.seed_state is not None
    assert restored.seed_state.stage is SeedStage.CULLED
    assert restored.seed_state.stage_history[-1] is SeedStage.BLENDING


def test_fixed_agent_round_trip(tmp_path: Path, fixed_agent: fixed.PPOAgent) -> None:
    path = tmp_path / "agent.pt"
    fixed_agent.save(path, metadata=EXAMPLE_METADATA)
    restored = fixed.PPOAgent.load(path)

    states = torch.randn(5, 50, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(restored.policy(states), fixed_agent.policy(states))
        assert torch.equal(restored.value(states), fixed_agent.value(states))

    saved_opt, loaded_opt = fixed_agent.optimizer.state_dict(), restored.optimizer.state_dict()
    assert saved_opt["param_groups"] == loaded_opt["param_groups"]
    assert saved_opt["state"].keys() == loaded_opt["state"].keys()
    assert saved_opt["state"]  # two updates ran, so Adam has moments to compare
    for index, param_state in saved_opt["state"].items():
        for name, value in param_state.items():
            assert torch.equal(loaded_opt["state"][index][name], value), (index, name)

    assert restored.config == fixed_agent.config
    assert restored.phase is fixed_agent.phase is TrainingPhase.TRAINING
    assert restored.recent_returns == fixed_agent.recent_returns
    assert restored.recent_returns.maxlen == fixed_agent.recent_returns.maxlen
    assert restored.created_at == fixed_agent.created_at
    assert restored.updates == fixed_agent.updates == 2
    assert restored.metadata == EXAMPLE_METADATA
    assert (restored.state_dim, restored.action_dim) == (50, 4)


# --- building blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm_id", sorted(BLEND_ALGORITHMS))
def test_blend_schedules_run_from_zero_to_one(algorithm_id: str) -> None:
    schedule = BLEND_ALGORITHMS[algorithm_id](10)
    alphas = [schedule.alpha(step) for step in range(12)]
    assert alphas[0] == pytest.approx(0.0, abs=1e-12)
    assert alphas[10] == pytest.approx(1.0)
    assert alphas[11] == alphas[10]
    assert all(a < b for a, b in itertools.pairwise(alphas[:11]))


def test_blend_config_round_trip() -> None:
    sigmoid = SigmoidBlend(7, temperature=0.5)
    rebuilt = build_blend(sigmoid.to_config())
    assert isinstance(rebuilt, SigmoidBlend)
    assert (rebuilt.steps, rebuilt.temperature) == (7, 0.5)
    assert isinstance(build_blend(LinearBlend(3).to_config()), LinearBlend)
    with pytest.raises(ValueError, match="unknown blend algorithm"):
        build_blend({"algorithm": "cosine", "steps": 3})


def test_lifecycle_rejects_illegal_transition() -> None:
    model = fixed.MorphogeneticModel()
    model.germinate_seed(blueprint_id="norm", seed_id="s", slot="early")
    slot = model.get_slot("early")
    with pytest.raises(RuntimeError, match="GERMINATED -> FOSSILIZED"):
        slot.advance(SeedStage.FOSSILIZED)
    with pytest.raises(RuntimeError, match="already holds"):
        model.germinate_seed(blueprint_id="norm", seed_id="t", slot="early")
    with pytest.raises(RuntimeError, match="not blending"):
        slot.step_blending()
