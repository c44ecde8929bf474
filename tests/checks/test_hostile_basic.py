"""Hand-assembled hostile pickles come out dangerous, and auditing imports nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.lookalikes import named

import ckptaudit
from ckptaudit.findings import Severity, Status

CASES = {
    # protocol 0: GLOBAL + REDUCE
    "os_system_reduce": (b"cos\nsystem\n(S'id'\ntR.", "os.system"),
    "posix_system": (b"cposix\nsystem\n(S'id'\ntR.", "posix.system"),
    "builtins_eval": (
        b"\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1q\x00\x85R.",
        "builtins.eval",
    ),
    # protocol 4: names memoised then fetched with BINGET before STACK_GLOBAL
    "stack_global_from_memo": (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x94\x8c\x02id\x94\x85R.",
        "os.system",
    ),
    # protocol 0 INST and OBJ call the class with arguments
    "inst": (b"(S'id'\nios\nsystem\n.", "os.system"),
    "obj": (b"(cos\nsystem\nS'id'\no.", "os.system"),
    # NEWOBJ_EX on subprocess.Popen
    "newobj_ex": (
        b"\x80\x04\x8c\nsubprocess\x8c\x05Popen\x93\x8c\x02id\x85}\x92.",
        "subprocess.Popen",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_pickles_are_dangerous(name: str) -> None:
    data, culprit = CASES[name]
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS
    dangerous = [f for f in report.findings if f.severity is Severity.DANGEROUS]
    assert culprit in {f.global_name for f in dangerous}


def test_uncatalogued_known_pool_callable_invoked_is_dangerous() -> None:
    # mailcap.findmatch is in no catalog: default-deny in the standard library catches it.
    report = ckptaudit.audit_bytes(b"\x80\x02cmailcap\nfindmatch\nX\x01\x00\x00\x00xK\x02\x86R.")
    assert report.status is Status.DANGEROUS
    assert any(f.rule == "CKA302" and f.global_name == "mailcap.findmatch" for f in report.findings)


def test_a_call_outside_the_known_pool_is_untrusted_code_not_dangerous() -> None:
    # A user's module: not known to be harmful, not known to be safe. Listed, never passed.
    report = ckptaudit.audit_bytes(
        b"\x80\x02cobscure_pkg.tools\nrun_thing\nX\x01\x00\x00\x00xK\x02\x86R."
    )
    assert report.status is Status.INCOMPATIBLE
    (untrusted,) = [f for f in report.findings if f.rule == "CKA304"]
    assert untrusted.severity is Severity.UNTRUSTED
    assert untrusted.global_name == "obscure_pkg"
    assert "obscure_pkg.tools.run_thing" in untrusted.message


def test_enum_shaped_call_is_not_dangerous() -> None:
    report = ckptaudit.audit_bytes(named("enum-shaped-call").make())
    assert report.status is Status.INCOMPATIBLE
    (finding,) = [f for f in report.findings if f.rule == "CKA201"]
    assert finding.kind.value == "enum"


def test_calling_a_computed_callable_is_dangerous() -> None:
    # getattr(SomeClass, 'method')(...) : the result of a call is called.
    stream = (
        b"\x80\x02c__builtin__\ngetattr\ncpdb\nPdb\nX\x03\x00\x00\x00run\x86R"
        b"X\x02\x00\x00\x00id\x85R."
    )
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS
    assert any(f.rule == "CKA302" and "pdb.Pdb.run" in f.message for f in report.findings)


def test_calling_a_method_of_a_known_pool_class_is_judged_by_the_table() -> None:
    # getattr(datetime.datetime, 'fromtimestamp') is tabled inert; getattr(shlex, 'split')-like
    # reaches of uncatalogued pool functions are not.
    inert = (
        b"\x80\x02c__builtin__\ngetattr\ncdatetime\ndatetime\n"
        b"X\x0d\x00\x00\x00fromtimestamp\x86RK\x00\x85R."
    )
    assert ckptaudit.audit_bytes(inert).status is not Status.DANGEROUS
    unsafe = (
        b"\x80\x02c__builtin__\ngetattr\ncmailcap\nfindmatch\nX\x08\x00\x00\x00__call__\x86R)R."
    )
    assert ckptaudit.audit_bytes(unsafe).status is Status.DANGEROUS


def test_a_payload_before_a_corrupt_tail_is_still_dangerous() -> None:
    stream = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R\xff\xff\xff"
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS
    assert report.error  # and the corruption is reported too


def test_dangerous_is_reported_even_when_allowlisted() -> None:
    policy = ckptaudit.load_policy().with_allowed(["os.system"])
    report = ckptaudit.audit_bytes(CASES["os_system_reduce"][0], policy=policy)
    assert report.status is Status.DANGEROUS


def _canary(tmp_path: Path) -> tuple[str, Path]:
    """A module that leaves a marker file when imported."""
    name = "ckptaudit_canary_mod"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(f"""
        open({str(marker)!r}, "w").write("imported")
        def boom(*args):
            open({str(marker)!r}, "w").write("called")
        class Boom:
            def __init__(self, *args):
                boom()
    """)
    )
    return name, marker


def test_canary_proves_the_audit_imports_and_calls_nothing(tmp_path: Path) -> None:
    name, marker = _canary(tmp_path)
    calls = [
        b"c%s\nboom\n(S'x'\ntR." % name.encode(),
        b"(S'x'\ni%s\nBoom\n." % name.encode(),
        b"\x80\x04\x8c%c%s\x94\x8c\x04boom\x94\x93)R." % (len(name), name.encode()),
    ]
    creation = [b"\x80\x02c%s\nBoom\n)\x81." % name.encode()]  # NEWOBJ: __new__ only
    streams = calls + creation
    sys.path.insert(0, str(tmp_path))
    try:
        for stream in streams:
            report = ckptaudit.audit_bytes(stream)
            # Code outside the known pool: listed as untrusted (CKA304), never imported.
            assert report.status is Status.INCOMPATIBLE
            assert any(f.rule == "CKA304" and f.global_name == name for f in report.findings)
            path = tmp_path / "c.pt"
            path.write_bytes(stream)
            ckptaudit.audit_file(path)
        assert name not in sys.modules
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))
    # The canary itself works: a real unpickler trips it (in a separate process).
    code = (
        f"import sys, pickle; sys.path.insert(0, {str(tmp_path)!r}); pickle.loads({streams[0]!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.read_text() == "called"


def test_a_literal_nested_pickle_is_scanned_too() -> None:
    import pickle

    inner = b"cposix\nsystem\n(S'id'\ntR."
    outer = (
        pickle.dumps(0, protocol=2)[:2]
        + b"c_pickle\nloads\nC"
        + bytes([len(inner)])
        + inner
        + b"\x85R."
    )
    report = ckptaudit.audit_bytes(outer)
    assert report.status is Status.DANGEROUS
    nested = [f for f in report.findings if f.member and f.member.startswith("nested pickle")]
    assert any(f.global_name == "posix.system" for f in nested), report.findings


def test_a_callable_invoked_by_an_allowed_torch_function_is_judged() -> None:
    # _rebuild_from_type_v2(func, type, args, state) calls func(*args): torch allows the
    # outer function, but the file chooses what it calls.
    stream = (
        b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n("
        b"cmailcap\nfindmatch\nctorch\nTensor\nX\x02\x00\x00\x00id\x85}tR."
    )
    report = ckptaudit.audit_bytes(stream)
    assert report.status is Status.DANGEROUS
    assert any(f.rule == "CKA302" and f.global_name == "mailcap.findmatch" for f in report.findings)
