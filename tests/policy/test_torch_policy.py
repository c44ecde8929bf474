"""The shipped policy table equals the installed torch's live policy."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
import torch
from torch import _weights_only_unpickler as wo

from ckptaudit.policy import available_torch_versions, load_policy
from ckptaudit.policy.callables import INERT
from ckptaudit.policy.dangerous import DANGEROUS_MODULES, DANGEROUS_NAMES, danger_reason

pytestmark = pytest.mark.torch

_GEN = Path(__file__).resolve().parents[2] / "tools" / "gen_policy.py"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_policy", _GEN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_for_installed_torch_is_shipped_and_current() -> None:
    version = torch.__version__.split("+")[0]
    assert version in available_torch_versions()
    table = _generator().build_table()
    policy = load_policy(version)
    assert policy.allowed == frozenset(table["allowed_globals"])
    assert policy.blocked_modules == frozenset(wo._blocklisted_modules)


def test_allowlist_equals_torch_live_allowlist() -> None:
    policy = load_policy(torch.__version__.split("+")[0])
    assert policy.allowed == frozenset(wo._get_allowed_globals())


def test_supported_opcodes_match_torch_behaviour() -> None:
    """Each opcode the table supports is accepted by torch's Unpickler (spot checks)."""
    policy = load_policy()
    names = {op.name for op in __import__("pickletools").opcodes if policy.supports(ord(op.code))}
    assert {"BINUNICODE", "SETITEMS", "BINPERSID", "EMPTY_SET"} <= names
    assert not {"FRAME", "STACK_GLOBAL", "SHORT_BINUNICODE", "MEMOIZE"} & names
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand 149"):
        import io

        wo.Unpickler(io.BytesIO(b"\x80\x04\x95" + b"\x00" * 8)).load()


def test_every_catalog_entry_has_a_reason() -> None:
    for table in (DANGEROUS_MODULES, DANGEROUS_NAMES, {k: v.reason for k, v in INERT.items()}):
        assert all(isinstance(r, str) and r for r in table.values())


def test_no_default_allowed_global_is_called_dangerous() -> None:
    policy = load_policy()
    flagged = []
    for name in policy.allowed:
        module, _, attr = name.rpartition(".")
        if danger_reason(module, attr):
            flagged.append(name)
    # These are allowed by torch yet live in modules the catalog covers; checks skip
    # default-allowed globals before consulting the catalog.
    assert all(n.startswith("torch.serialization") for n in flagged), flagged


def test_python2_name_resolution_is_torchs() -> None:
    """The emulator names globals as torch resolves them; the tables must stay torch's."""
    from torch._utils import IMPORT_MAPPING, NAME_MAPPING

    from ckptaudit.pickle import names

    assert names.NAME_MAPPING == NAME_MAPPING
    assert names.IMPORT_MAPPING == IMPORT_MAPPING
    for version in available_torch_versions():
        policy = load_policy(version)
        assert policy.name_mapping == names.NAME_MAPPING, version
        assert policy.import_mapping == names.IMPORT_MAPPING, version
