"""The call-site model: every construct that makes a loader run code is judged, default-deny
in the known pool, untrusted outside it, and never by the shape of a call.

Each hostile case here is also run by a real loader in a subprocess that reaches a harmless
marker (a file created in a temp dir), so a builder that stops being a real payload fails;
each benign case is what a real library writes.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from support.opcodes import (
    build,
    empty_dict,
    empty_tuple,
    global_,
    lit,
    mark,
    newobj,
    reduce,
    setitems,
    tuple_,
    wrap,
)

import ckptaudit
from ckptaudit.findings import Severity, Status

# --------------------------------------------------------------------------- a real loader


def _open_marker(marker: Path) -> bytes:
    """``functools.partial(builtins.open, <marker>, 'w')``: calling it creates the marker."""
    return (
        global_("functools", "partial")
        + mark()
        + global_("builtins", "open")
        + lit(str(marker))
        + lit("w")
        + tuple_()
        + reduce()
    )


def _reaches_marker(data: bytes, marker: Path, *, before: str = "", after: str = "") -> bool:
    """Run CPython's unpickler on ``data`` in a fresh interpreter (``before`` it: imports a
    program would have done; ``after``: what a program does with the result); True when the
    marker file appears."""
    code = f"import pickle, sys\n{before}\ndata = sys.stdin.buffer.read()\ntry:\n"
    code += f"    obj = pickle.loads(data)\n    {after}\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120)
    return marker.exists()


def _dangerous(data: bytes) -> list[tuple[str, str | None]]:
    report = ckptaudit.audit_bytes(data)
    return [(f.rule, f.global_name) for f in report.findings if f.severity is Severity.DANGEROUS]


# --------------------------------------------------------------------------- hostile call sites


def test_newobj_of_a_lazy_iterator_consumed_by_an_inert_constructor(tmp_path: Path) -> None:
    """NEWOBJ map(open, [marker], ['w']): creating the iterator calls nothing, list() does."""
    marker = tmp_path / "marker"
    lazy = (
        global_("builtins", "map")
        + mark()
        + global_("builtins", "open")
        + lit([str(marker)])
        + lit(["w"])
        + tuple_()
        + newobj()
    )
    data = wrap(global_("builtins", "list") + mark() + lazy + tuple_() + reduce())
    assert _reaches_marker(data, marker)
    assert ("CKA301", "builtins.map") in _dangerous(data) or any(
        rule == "CKA302" for rule, _ in _dangerous(data)
    )


def test_newobj_of_an_uncatalogued_stdlib_iterator(tmp_path: Path) -> None:
    """itertools.starmap is in no catalog: default-deny at the new site catches it."""
    marker = tmp_path / "marker"
    lazy = (
        global_("itertools", "starmap")
        + mark()
        + global_("builtins", "open")
        + lit([(str(marker), "w")])
        + tuple_()
        + newobj()
    )
    data = wrap(global_("builtins", "tuple") + mark() + lazy + tuple_() + reduce())
    assert _reaches_marker(data, marker)
    assert ("CKA302", "itertools.starmap") in _dangerous(data)


def test_a_defaultdict_factory_runs_on_a_missing_key(tmp_path: Path) -> None:
    """The factory is a call site of its own: __missing__ calls it when code reads a key."""
    marker = tmp_path / "marker"
    data = wrap(
        global_("collections", "defaultdict") + mark() + _open_marker(marker) + tuple_() + reduce()
    )
    assert _reaches_marker(data, marker, after="obj['missing']")
    found = _dangerous(data)
    assert found, "a defaultdict whose factory opens a file"


def test_build_on_a_module_reached_by_getattr_rewrites_it(tmp_path: Path) -> None:
    """getattr(xml.dom, 'minidom') is a module, not data: BUILD on it rewrites its names for
    the whole process, and a later, innocent-looking global then runs the file's callable."""
    marker = tmp_path / "marker"
    target = global_("builtins", "getattr") + mark() + global_("xml", "dom") + lit("minidom")
    target += tuple_() + reduce()
    state = empty_dict() + mark() + lit("parseString") + _open_marker(marker) + setitems()
    trigger = global_("xml.dom.minidom", "parseString") + empty_tuple() + reduce()
    data = wrap(mark() + target + state + build() + trigger + tuple_())
    assert _reaches_marker(data, marker, before="import xml.dom.minidom")
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS
    assert any("rewrites a class, function or module" in f.message for f in report.findings)


def test_setitem_on_a_stdlib_type_not_tabled_for_it_is_dangerous() -> None:
    """collections.UserDict's methods are Python code the table does not vouch for (its
    __setitem__ writes to whatever ``data`` the state set): creating and filling one is an
    unsafe call site."""
    data = wrap(
        global_("collections", "UserDict")
        + empty_tuple()
        + newobj()
        + mark()
        + lit("k")
        + lit(1)
        + setitems()
    )
    assert ("CKA302", "collections.UserDict") in _dangerous(data)


# --------------------------------------------------------------------------- tiers


def test_code_outside_the_known_pool_is_listed_once_per_package() -> None:
    data = wrap(
        mark()
        + global_("mylib.config", "Config")
        + empty_tuple()
        + newobj()
        + global_("mylib.states", "Stage")
        + lit((2,))
        + reduce()
        + tuple_()
    )
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.INCOMPATIBLE
    (untrusted,) = [f for f in report.findings if f.rule == "CKA304"]
    assert untrusted.global_name == "mylib"
    assert "mylib.config.Config" in untrusted.message and "mylib.states.Stage" in untrusted.message
    assert untrusted.count == 2


def test_trusted_packages_are_not_listed() -> None:
    data = wrap(global_("mylib.config", "Config") + empty_tuple() + newobj())
    policy = ckptaudit.load_policy().with_trusted(["mylib"])
    report = ckptaudit.audit_bytes(data, policy=policy)
    assert not [f for f in report.findings if f.rule == "CKA304"]


def test_fail_on_untrusted_selects_untrusted_code(tmp_path: Path) -> None:
    from ckptaudit.cli import EXIT_FAIL, EXIT_OK, main

    path = tmp_path / "x.pkl"
    path.write_bytes(wrap(global_("mylib.config", "Config") + empty_tuple() + newobj()))
    assert main(["audit", str(path), "--fail-on", "untrusted"]) == EXIT_FAIL
    assert main(["audit", str(path), "--fail-on", "dangerous"]) == EXIT_OK
    assert main(["audit", str(path), "--fail-on", "untrusted", "--trust", "mylib"]) == EXIT_OK
    assert main(["audit", str(path), "--fail-on", "dangerous,untrusted"]) == EXIT_FAIL


# --------------------------------------------------------------------------- benign: real files

torch = pytest.importorskip("torch")


def _saved(obj: object, **kw: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kw)
    return buffer.getvalue()


@pytest.mark.torch
@pytest.mark.parametrize(
    "make",
    [
        # A whole module in the legacy format: its class arrives in a ('module', ...) id.
        lambda: _saved(torch.nn.Linear(2, 3), _use_new_zipfile_serialization=False),
        lambda: _saved(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())),
        # Whole optimizers and schedulers: NEWOBJ and a vetted __setstate__.
        lambda: _saved(torch.optim.Adam(torch.nn.Linear(2, 2).parameters())),
        lambda: _saved(
            torch.optim.lr_scheduler.StepLR(
                torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1), 3
            )
        ),
        # A signature holds inspect._empty, a sentinel of a catalogued module.
        lambda: _saved({"sig": __import__("inspect").signature(lambda a, b=1: None)}),
        # What pickle.dumps writes for tensors: torch.storage._load_from_bytes(<a torch file>).
        lambda: pickle.dumps({"w": torch.ones(2), "p": torch.nn.Parameter(torch.zeros(2))}),
        # An Enum of torch.distributed.checkpoint, looked up by value.
        lambda: _saved(
            {
                "kind": __import__(
                    "torch.distributed.checkpoint.planner"
                ).distributed.checkpoint.planner.WriteItemType.TENSOR
            }
        ),
        # builtins.len of literal data (fickling's benign opcodes).
        lambda: wrap(global_("builtins", "len") + mark() + lit([]) + tuple_() + reduce()),
    ],
    ids=[
        "legacy-whole-linear",
        "whole-sequential",
        "whole-adam",
        "whole-steplr",
        "inspect-signature",
        "pickle-of-tensors",
        "dcp-enum",
        "builtins-len",
    ],
)
def test_real_library_files_are_not_dangerous(make: object) -> None:
    data = make()  # type: ignore[operator]
    report = ckptaudit.audit_bytes(data, name="x.pt")
    assert report.status is not Status.DANGEROUS, [
        (f.rule, f.global_name, f.message) for f in report.findings
    ]


@pytest.mark.torch
def test_a_storage_pickled_from_computed_bytes_is_dangerous() -> None:
    """torch.storage._load_from_bytes is inert only on literal bytes, which are audited."""
    data = wrap(
        global_("torch.storage", "_load_from_bytes")
        + mark()
        + global_("builtins", "bytes")
        + lit((3,))
        + reduce()
        + tuple_()
        + reduce()
    )
    assert ("CKA302", "torch.storage._load_from_bytes") in _dangerous(data)


@pytest.mark.torch
def test_a_dangerous_payload_inside_load_from_bytes_is_found() -> None:
    inner = _saved({"x": 1})
    evil_inner = pickle.dumps(0, protocol=2)[:2] + b"cos\nsystem\n(S'id'\ntR."
    for payload, dangerous in ((inner, False), (evil_inner, True)):
        data = wrap(
            global_("torch.storage", "_load_from_bytes")
            + mark()
            + lit(payload)
            + tuple_()
            + reduce()
        )
        report = ckptaudit.audit_bytes(data)
        assert (report.status is Status.DANGEROUS) is dangerous, report.findings
