"""The findings document's advice is code that works: generated from what the checkpoint
holds, right for what the pickle shows (a plain class and a dataclass alike, a whole module,
a naive datetime), and run here on the real objects."""

from __future__ import annotations

import dataclasses
import datetime
import io
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import oracle_types as ot
import pytest
import torch
from torch import nn

import ckptaudit
from ckptaudit.report import OutputFormat, render

# The report's generated code, not the audit's core, is under test (reports are made by the
# real command in a new process): one pass of `make unit` runs them.
pytestmark = [pytest.mark.torch, pytest.mark.once]


def _report(tmp_path: Path, obj: Any, name: str = "x.pt") -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return _report_file(path)


def _report_file(path: Path) -> str:
    """``ckptaudit report PATH -o PATH.md``, run as a user runs it; the document's text."""
    out = path.with_suffix(".md")
    result = subprocess.run(
        [sys.executable, "-m", "ckptaudit", "report", str(path), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return out.read_text()


def _recommended(text: str) -> str:
    return text.split("## Recommended code changes")[1].split("## Verification")[0]


def _class_block(code: str, name: str) -> str:
    body = code.split("### Methods the classes need")[1].split("```python\n")[1].split("```")[0]
    blocks = body.split("\n\n\n")
    return next(b for b in blocks if f"\nclass {name}" in b or b.startswith(f"class {name}"))


def test_a_whole_module_is_saved_as_its_state_dict_not_extra_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    code = _recommended(_report(tmp_path, {"model": nn.Linear(3, 2)}))
    assert "extra_state" not in code
    assert "'model': model.state_dict()," in code
    assert "model = Linear(in_features=3, out_features=2)" in code
    assert "model.load_state_dict(state['model'])" in code


def test_without_generated_code_a_whole_module_is_still_advised_its_state_dict() -> None:
    buffer = io.BytesIO()
    torch.save({"model": nn.Linear(3, 2)}, buffer)
    report = ckptaudit.audit_bytes(buffer.getvalue(), name="m.pt")
    text = render([report], OutputFormat.MARKDOWN, ckptaudit.load_policy())
    code = _recommended(text)
    assert "extra_state" not in code
    assert "save `module.state_dict()` instead of the module" in code


def test_a_naive_datetime_keeps_no_timezone(tmp_path: Path) -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30)
    code = _recommended(_report(tmp_path, {"t": when}))
    assert "'t': t.isoformat()," in code and "t = datetime.fromisoformat(state['t'])" in code
    assert "timezone.utc" not in code and "timestamp" not in code
    assert datetime.datetime.fromisoformat(when.isoformat()) == when  # naive stays naive
    buffer = io.BytesIO()
    torch.save({"t": when}, buffer)
    fallback = _recommended(
        render(
            [ckptaudit.audit_bytes(buffer.getvalue())],
            OutputFormat.MARKDOWN,
            ckptaudit.load_policy(),
        )
    )
    assert "timezone.utc" not in fallback and "fromisoformat" in fallback


def _methods(code: str, name: str, namespace: dict[str, Any]) -> type:
    block = _class_block(code, name)
    exec(compile(block, f"<{name} methods>", "exec"), namespace)  # our generated code
    generated: type = namespace[name]
    return generated


@pytest.mark.slow
def test_the_generated_seed_state_methods_round_trip_the_real_object(tmp_path: Path) -> None:
    from ckptaudit_demo import build_checkpoint, build_model
    from ckptaudit_demo.models import SeedStage, SeedState

    build_checkpoint("morphogenetic", False, tmp_path / "legacy.pt")
    code = _recommended(_report_file(tmp_path / "legacy.pt"))
    namespace: dict[str, Any] = {
        "Any": Any,
        "SeedStage": SeedStage,
        "datetime": datetime.datetime,
        "deque": deque,
        "SeedState": SeedState,
    }
    generated = _methods(code, "SeedState", namespace)
    original = build_model(False).get_slot("mid").seed_state
    assert original is not None
    plain = generated.to_dict(original)  # type: ignore[attr-defined]
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # plain data: loads
    rebuilt = generated.from_dict.__func__(SeedState, loaded)  # type: ignore[attr-defined]
    assert isinstance(rebuilt, SeedState)
    for field in dataclasses.fields(SeedState):
        assert getattr(rebuilt, field.name) == getattr(original, field.name), field.name
    assert rebuilt.stage_history.maxlen == original.stage_history.maxlen


def test_a_plain_class_gets_methods_that_work_for_it(tmp_path: Path) -> None:
    """The bytes of a plain class and a dataclass are alike: the code must suit both."""
    code = _recommended(_report(tmp_path, {"o": ot.Plain(), "c": ot.Config()}))
    for cls in (ot.Plain, ot.Config):
        generated = _methods(code, cls.__name__, {"Any": Any, cls.__name__: cls})
        obj = cls()
        data = generated.to_dict(obj)  # type: ignore[attr-defined]
        rebuilt = generated.from_dict.__func__(cls, data)  # type: ignore[attr-defined]
        assert type(rebuilt) is cls and vars(rebuilt) == vars(obj)
