"""The example models, --emit-code, allowlist snippets, safetensors export, ckptaudit.load,
the command line, and the zip layout."""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import pathlib
import struct
import subprocess
import sys
import warnings
import zipfile
from typing import Any

import pytest
import torch
from migrate_helpers import SLOW, assert_same, plain
from support import oracle_corpus as oracle

import ckptaudit
from ckptaudit.cli import main
from ckptaudit.findings import Status
from ckptaudit.migrate.zipwriter import TorchZipWriter
from ckptaudit_demo import build_checkpoint, build_model


def _load(path: pathlib.Path | io.BytesIO) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("examples")
    for which in ("ppo", "morphogenetic"):
        build_checkpoint(which, False, folder / f"{which}-legacy.pt")
    return folder


@pytest.mark.parametrize("which", ["ppo", "morphogenetic"])
def test_legacy_examples_migrate_to_compatible_checkpoints(
    examples: pathlib.Path, tmp_path: pathlib.Path, which: str
) -> None:
    src = examples / f"{which}-legacy.pt"
    assert ckptaudit.audit_file(src).status is Status.INCOMPATIBLE
    manifest = ckptaudit.migrate(src, tmp_path / "fixed.pt")
    assert ckptaudit.audit_file(tmp_path / "fixed.pt").status is Status.COMPATIBLE
    assert manifest.conversions and all(c.path.startswith("root") for c in manifest.conversions)
    _load(tmp_path / "fixed.pt")


def test_emitted_from_dict_code_rebuilds_the_original_objects(
    examples: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    code = tmp_path / "keep_fixed.py"
    status = main(
        [
            "migrate",
            str(examples / "morphogenetic-legacy.pt"),
            str(tmp_path / "m.pt"),
            "--emit-code",
            str(code),
            "--no-torch",
        ]
    )
    assert status == 0
    spec = importlib.util.spec_from_file_location("keep_fixed", code)
    assert spec is not None and spec.loader is not None
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    extra = _load(tmp_path / "m.pt")["model_state_dict"]["slots.mid._extra_state"]
    original = build_model(False).get_slot("mid")
    rebuilt = generated.seed_state_from_dict(extra["seed_state"])
    assert rebuilt == original.seed_state
    assert rebuilt.stage_history.maxlen == original.seed_state.stage_history.maxlen
    assert generated.seed_state_to_dict(rebuilt) == extra["seed_state"]
    blend = original.alpha_schedule
    again = generated.sigmoid_blend_from_dict(generated.sigmoid_blend_to_dict(blend))
    assert (again.steps, again.temperature) == (blend.steps, blend.temperature)


def _allowlist_fixable() -> list[str]:
    return sorted(oracle.CASES)


@SLOW
def test_every_snippet_makes_torch_load_in_a_fresh_process(tmp_path: pathlib.Path) -> None:
    """For every oracle case allowlisting can fix: the emitted code, run in a new
    interpreter, makes torch.load(weights_only=True) succeed.

    The ``--context`` form leaves torch's allowlist as it found it, so one new interpreter
    runs every case's snippet in turn (each alone in its namespace); the add_safe_globals
    form gets an interpreter of its own.
    """
    from ckptaudit.migrate import allowlist_snippet

    scripts: dict[str, str] = {}
    first_global_form = None
    for case in _allowlist_fixable():
        path = tmp_path / f"{case}.pt"
        torch.save(oracle.CASES[case](), path)
        report = ckptaudit.audit_file(path)
        if report.status is Status.DANGEROUS or report.weights_only_compatible:
            continue
        snippet = allowlist_snippet([path], context=True)
        if not snippet.sufficient:
            assert snippet.warnings and "ckptaudit migrate" in snippet.warnings
            continue
        scripts[case] = snippet.code
        if first_global_form is None:
            first_global_form = (
                allowlist_snippet([path]).code + f"torch.load({str(path)!r}, weights_only=True)\n"
            )
    assert len(scripts) >= 10 and first_global_form is not None
    runner = (
        "import sys, warnings\nwarnings.simplefilter('ignore')\nfailed = []\n"
        f"for name, code in {scripts!r}.items():\n"
        "    try:\n        exec(code, {})\n"
        "    except Exception as exc:\n        failed.append((name, repr(exc)))\n"
        "print(failed)\nsys.exit(1 if failed else 0)\n"
    )
    tests_dir = str(pathlib.Path(__file__).parents[1])
    env = {"PYTHONPATH": tests_dir, "PATH": "/usr/bin:/bin"}
    for code in (runner, "import warnings\nwarnings.simplefilter('ignore')\n" + first_global_form):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tests_dir, env=env
        )
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-2000:])


def test_allowlist_refuses_dangerous_files_and_says_when_it_cannot_be_enough(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hostile_cases as hc

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(next(c for c in hc.CASES if c.expect == "dangerous").data)
    assert main(["allowlist", str(bad)]) == 1
    assert "never allowlist" in capsys.readouterr().err
    dq = tmp_path / "dq.pt"
    torch.save({"d": collections.deque([1, 2])}, dq)
    assert main(["allowlist", str(dq)]) == 1
    err = capsys.readouterr().err
    assert "allowlisting cannot make" in err and "ckptaudit migrate" in err
    np_file = tmp_path / "np.pt"
    torch.save({"a": __import__("numpy").arange(3.0)}, np_file)
    assert main(["allowlist", str(np_file)]) == 0
    assert "Float64DType" in capsys.readouterr().out  # needed by BUILD, never named


def test_safetensors_export_dedupes_or_copies_shared_storage_and_reloads(
    tmp_path: pathlib.Path,
) -> None:
    import oracle_types as ot
    from safetensors import safe_open
    from safetensors.torch import load_file

    base = torch.arange(12.0).reshape(3, 4)
    obj = {
        "w": base,
        "tied": base,
        "t": base.t(),
        "cfg": ot.Config(),
        "p": torch.nn.Parameter(torch.ones(2)),
    }
    torch.save(obj, tmp_path / "s.pt")
    manifest = ckptaudit.migrate(tmp_path / "s.pt", tmp_path / "s.safetensors")
    tensors = load_file(tmp_path / "s.safetensors")
    assert torch.equal(tensors["w"], base) and torch.equal(tensors["t"], base.t().contiguous())
    assert "tied" not in tensors and manifest.extra["aliases"] == {}  # the same object: named once
    assert sorted(manifest.extra["copied_shared_storage"]) == ["t", "w"]
    with safe_open(tmp_path / "s.safetensors", "pt") as f:
        meta = f.metadata()
    structure = json.loads(meta["ckptaudit.structure"])
    assert structure["cfg"] == {"lr": 0.1, "name": "run", "steps": [1, 2]}
    assert structure["tied"] == {"__tensor__": "w"}
    assert json.loads(meta["ckptaudit.tensor_info"])["p"] == {
        "requires_grad": True,
        "parameter": True,
    }
    assert any("safetensors package" in v for v in manifest.verified)


def test_load_refuses_loads_and_migrates(tmp_path: pathlib.Path) -> None:
    import hostile_cases as hc

    obj = oracle.CASES["nested_mix"]()
    torch.save(obj, tmp_path / "m.pt")
    got, manifest = ckptaudit.load(tmp_path / "m.pt", with_manifest=True)
    assert_same(plain(obj), got)
    assert manifest.conversions
    torch.save(oracle.linear(), tmp_path / "ok.pt")
    assert_same(plain(oracle.linear()), ckptaudit.load(str(tmp_path / "ok.pt")))
    assert_same(plain(obj), ckptaudit.load((tmp_path / "m.pt").read_bytes()))
    trap = next(c for c in hc.CASES if c.container in ("pickle",) and c.expect == "dangerous")
    with pytest.raises(ckptaudit.MigrationRefused):
        ckptaudit.load(trap.data)


def test_cli_dry_run_json_and_a_directory_with_a_summary(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    torch.save(oracle.CASES["deque"](), src / "a.pt")
    torch.save(oracle.CASES["dataclass"](), src / "sub" / "b.pt")
    (src / "sub" / "c.pt").write_bytes(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idq\x00\x85R.")
    assert (
        main(
            ["migrate", str(src / "a.pt"), str(tmp_path / "x.pt"), "--dry-run", "--format", "json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["migrations"][0]["dry_run"] and not (tmp_path / "x.pt").exists()
    assert main(["migrate", str(src), "--out", str(tmp_path / "out"), "-j", "2", "--no-torch"]) == 1
    captured = capsys.readouterr()
    assert "2 of 3 migrated" in captured.out and "[3/3]" in captured.err
    assert "dangerous" in captured.err
    assert (tmp_path / "out" / "sub" / "b.pt").exists() and not (
        tmp_path / "out" / "sub" / "c.pt"
    ).exists()


def test_the_zip_layout_is_torch_saves(tmp_path: pathlib.Path) -> None:
    """Same members, order, alignment and end records as torch.save; zip64 fields when
    sizes pass the limit (lowered here) are read by zipfile and by torch."""
    torch.save({"w": torch.ones(3)}, tmp_path / "t.pt")
    (tmp_path / "m").mkdir()
    ckptaudit.migrate(tmp_path / "t.pt", tmp_path / "m" / "t.pt")
    ours, theirs = (zipfile.ZipFile(p) for p in (tmp_path / "m" / "t.pt", tmp_path / "t.pt"))
    assert [i.filename for i in ours.infolist()] == [i.filename for i in theirs.infolist()]
    for info in ours.infolist():
        raw = (tmp_path / "m" / "t.pt").read_bytes()
        name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
        assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0
        assert info.flag_bits == 0x0808 and info.compress_type == 0
    buffer = io.BytesIO()
    writer = TorchZipWriter(buffer, "archive", zip64_limit=8)
    writer.add_bytes("data.pkl", b"\x80\x02}q\x00.")
    writer.add_bytes("byteorder", b"little")
    writer.add_bytes("version", b"3\n")
    writer.finish()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        assert z.read("archive/version") == b"3\n" and z.testzip() is None
    assert _load(io.BytesIO(buffer.getvalue())) == {}
