"""Calls a file makes without naming a dangerous global: ckptaudit calls it dangerous, and a
real loader really reaches the payload (recorded by the stubs of ``support.loaders``).

These are the bypasses of the red-team campaigns: the first (closed in d413eec), the second
(55da442, cde38f1), the third (a62056d) and the fifth, a differential fuzz.
"""

from __future__ import annotations

import collections
import contextlib
import copyreg
import functools
import importlib.util
import io
import pickle
from pathlib import Path

import pytest
from support.containers import small_torch_zip
from support.loaders import (
    Recorder,
    assert_dangerous_and_reached,
    audit_against_torch,
    recording_pickle_module,
    with_class_makers,
    with_gadget_targets,
)
from support.opcodes import global_, invoke, unicode, wrap
from support.payloads import PAYLOAD, REACHED, SYSTEM_TRUE, namespace, os_attr, partial

import ckptaudit
from ckptaudit.findings import FileReport, Status

pytestmark = pytest.mark.torch

OD = global_("collections", "OrderedDict")

# --------------------------------------------------------------------------- implicit calls
# A method the file planted (append, extend, add, __setstate__, keys...) that the unpickler
# or a constructor calls on its own (first campaign, d413eec).

IMPLICIT_CALLS = [
    pytest.param(
        wrap(namespace(append=os_attr("system")) + unicode("true") + b"a"),
        "logging.os.system('true',)",
        id="append-on-namespace",
    ),
    pytest.param(
        wrap(
            namespace(extend=partial(os_attr("spawnvp"), b"K\x00", unicode("true")))
            + b"("
            + unicode("true")
            + b"e"
        ),
        "logging.os.spawnvp(0, 'true', ['true'])",
        id="appends-extend",
    ),
    pytest.param(
        wrap(
            namespace(add=os_attr("system")) + b"(" + unicode("true") + b"\x90", 4, use_frame=False
        ),
        "logging.os.system('true',)",
        id="additems-add",
    ),
    pytest.param(
        wrap(namespace(__setstate__=os_attr("system")) + unicode("true") + b"b"),
        "logging.os.system('true',)",
        id="second-build-calls-planted-setstate",
    ),
    pytest.param(
        wrap(invoke(global_("builtins", "dict"), namespace(keys=SYSTEM_TRUE))),
        "logging.os.system('true',)",
        id="dict-calls-planted-keys",
    ),
    pytest.param(
        wrap(invoke(global_("collections", "OrderedDict"), namespace(keys=SYSTEM_TRUE))),
        "logging.os.system('true',)",
        id="ordereddict-calls-planted-keys",
    ),
    pytest.param(
        wrap(
            invoke(
                global_("copyreg", "_reconstructor"),
                global_("collections", "OrderedDict"),
                global_("builtins", "dict"),
                namespace(keys=SYSTEM_TRUE),
            )
        ),
        "logging.os.system('true',)",
        id="reconstructor-dict-base-calls-planted-keys",
    ),
    pytest.param(
        b"\x80\x02(" + SYSTEM_TRUE + b"o.",
        "logging.os.system('true',)",
        id="obj-without-args-calls-partial",
    ),
    pytest.param(
        b"\x80\x02(iuuid\n_ip_getnode\n.",
        "uuid._ip_getnode()",
        id="inst-without-args-calls-function",
    ),
    pytest.param(
        wrap(
            global_("argparse", "Namespace")
            + b"N}"
            + unicode("__iter__")
            + SYSTEM_TRUE
            + b"s\x86b0"
            + invoke(global_("builtins", "list"), invoke(global_("argparse", "Namespace")))
        ),
        "logging.os.system('true',)",
        id="build-on-class-patches-iter-slot",
    ),
]


@pytest.mark.parametrize(("data", "ran"), IMPLICIT_CALLS)
def test_implicit_call_is_dangerous_and_runs(tmp_path: Path, data: bytes, ran: str) -> None:
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle", ran)


def test_implicit_call_parameter_detach_in_torch_zip(tmp_path: Path) -> None:
    parameter = invoke(
        global_("torch._utils", "_rebuild_parameter"),
        namespace(detach=SYSTEM_TRUE),
        b"\x89",
        invoke(global_("collections", "OrderedDict")),
    )
    data = small_torch_zip(wrap(b"}" + unicode("w") + parameter + b"s"))
    assert_dangerous_and_reached(tmp_path, data, "model.pt", "torch", "logging.os.system('true',)")


def test_build_on_module_monkeypatches_it(tmp_path: Path) -> None:
    """Sleepy pickle: BUILD on the module os (as logging.os) replaces os.getcwd for later."""
    data = wrap(global_("logging", "os") + b"}" + unicode("getcwd") + SYSTEM_TRUE + b"sb0}")
    _, report = audit_against_torch(tmp_path, data, "model.pkl")
    assert report.status is Status.DANGEROUS, report.findings
    stub = recording_pickle_module()
    assert stub.loads(data) == {}
    patched_os = stub.resolved[("logging", "os")]
    assert isinstance(patched_os.getcwd, functools.partial)  # the module now holds the payload
    patched_os.getcwd()  # what the application's next os.getcwd() would do
    assert stub.log == ["logging.os.system('true',)"]


# --------------------------------------------------------------------------- module aliases


@pytest.mark.parametrize(
    ("module", "name"), [("logging", "os"), ("random", "_os")], ids=["logging.os", "random._os"]
)
def test_module_alias_reference_is_dangerous(tmp_path: Path, module: str, name: str) -> None:
    data = wrap(b"}" + unicode("m") + global_(module, name) + b"s")
    _, report = audit_against_torch(tmp_path, data, "model.pkl")
    assert report.status is Status.DANGEROUS, report.findings
    stub = recording_pickle_module()
    assert isinstance(stub.loads(data)["m"], Recorder)  # the file does hand out the module


def test_stub_resolves_only_harmless_globals() -> None:
    """The recorder is what keeps the loaders above from running anything."""
    stub = recording_pickle_module()
    assert stub.loads(global_("copyreg", "_reconstructor") + b".") is copyreg._reconstructor
    for module, name in [("os", "system"), ("logging", "os"), ("builtins", "eval")]:
        assert isinstance(stub.loads(global_(module, name) + b"."), Recorder)


# --------------------------------------------------------------------------- planted methods
# Methods the name list lacked, attribute names computed by a call, other writers of an
# object's attributes, a callable instance planted as keys (second campaign, 55da442 and
# cde38f1). The same recording loaders, with the objects the gadgets need resolved for real
# (uuid.UUID calls replace(), a torch rebuild function calls setattr).


def _meta_args() -> bytes:
    """The arguments of _rebuild_meta_tensor_no_storage: (float32, (0,), (1,), False)."""
    return b"(" + global_("torch", "float32") + b"(K\x00t(K\x01t\x89t"


_HOOK_DICTS = [
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
]
# nn.Identity made by NEWOBJ + BUILD (no __init__): calling it runs its _forward_pre_hooks.
HOOKED_MODULE = (
    global_("torch.nn.modules.linear", "Identity")
    + b")\x81}"
    + unicode("_forward_pre_hooks")
    + invoke(OD)
    + b"(K\x00"
    + PAYLOAD
    + b"us"
    + b"".join(unicode(k) + b"}s" for k in ("_parameters", "_buffers", "_modules"))
    + unicode("training")
    + b"\x88s"
    + b"".join(unicode(k) + invoke(OD) + b"s" for k in _HOOK_DICTS)
    + b"b"
)

PLANTED_METHODS = [
    # A. methods the name list lacked
    pytest.param(wrap(invoke(OD, namespace(items=PAYLOAD))), id="ordereddict-falls-back-to-items"),
    pytest.param(
        wrap(invoke(global_("uuid", "UUID"), namespace(replace=PAYLOAD))),
        id="uuid-calls-planted-replace",
    ),
    # B. the attribute name is computed by a call: str('keys') is the str 'keys'
    pytest.param(
        wrap(
            invoke(
                global_("builtins", "dict"),
                invoke(global_("types", "SimpleNamespace"))
                + b"}"
                + invoke(global_("builtins", "str"), unicode("keys"))
                + PAYLOAD
                + b"sb",
            )
        ),
        id="computed-key-str-dict",
    ),
    pytest.param(
        wrap(
            invoke(
                OD,
                invoke(global_("types", "SimpleNamespace"))
                + b"}"
                + invoke(global_("builtins", "str"), unicode("keys"))
                + PAYLOAD
                + b"sb",
            )
        ),
        id="computed-key-str-ordereddict",
    ),
    # C. other writers of an object's attributes
    pytest.param(
        wrap(
            invoke(
                OD,
                partial(global_("builtins", "int"))
                + b"("
                + global_("builtins", "int")
                + b")N}"
                + unicode("keys")
                + PAYLOAD
                + b"stb",
            )
        ),
        id="partial-4tuple-state-dict",
    ),
    pytest.param(
        wrap(
            invoke(
                OD,
                invoke(
                    global_("torch._tensor", "_rebuild_from_type_v2"),
                    global_("torch._utils", "_rebuild_meta_tensor_no_storage"),
                    global_("torch", "Tensor"),
                    _meta_args(),
                    b"}" + unicode("keys") + PAYLOAD + b"s",
                ),
            )
        ),
        id="rebuild-from-type-v2-state",
    ),
    pytest.param(
        wrap(
            invoke(
                OD,
                invoke(
                    global_("torch._tensor", "_rebuild_from_type"),
                    global_("torch._utils", "_rebuild_meta_tensor_no_storage"),
                    global_("torch.nn.parameter", "Parameter"),
                    _meta_args(),
                    b"}" + unicode("keys") + PAYLOAD + b"s",
                ),
            )
        ),
        id="rebuild-from-type-v1-dict",
    ),
    pytest.param(
        wrap(
            invoke(
                OD,
                invoke(
                    global_("torch._utils", "_rebuild_parameter_with_state"),
                    global_("torch._utils", "_rebuild_meta_tensor_no_storage")
                    + _meta_args()
                    + b"R",
                    b"\x89",
                    invoke(OD),
                    b"}" + unicode("keys") + PAYLOAD + b"s",
                ),
            )
        ),
        id="rebuild-parameter-with-state",
    ),
    # D. a callable instance (an nn.Module with a forward pre-hook) planted as keys
    pytest.param(
        wrap(invoke(global_("builtins", "dict"), namespace(keys=HOOKED_MODULE))),
        id="module-instance-planted-as-keys",
    ),
]


def test_uncatalogued_payload_alone_is_not_dangerous(tmp_path: Path) -> None:
    """Keeps the planted tests honest: only the route makes them dangerous. (If uuid's helper
    is ever catalogued, pick another uncatalogued callable for PAYLOAD.)"""
    _, report = audit_against_torch(
        tmp_path, wrap(b"}" + unicode("f") + PAYLOAD + b"s"), "model.pkl"
    )
    assert report.status is Status.INCOMPATIBLE, report.findings


@pytest.mark.parametrize("data", PLANTED_METHODS)
def test_planted_method_is_dangerous_and_runs(tmp_path: Path, data: bytes) -> None:
    assert_dangerous_and_reached(
        tmp_path, data, "model.pkl", "pickle", REACHED, with_gadget_targets
    )


def test_planted_keys_in_rebuild_state_reach_torch_load(tmp_path: Path) -> None:
    """The same gadget as data.pkl of a torch zip: torch.load's own unpickling reaches it."""
    tensor = invoke(
        global_("torch._tensor", "_rebuild_from_type_v2"),
        global_("torch._utils", "_rebuild_meta_tensor_no_storage"),
        global_("torch", "Tensor"),
        _meta_args(),
        b"}" + unicode("keys") + PAYLOAD + b"s",
    )
    data = small_torch_zip(wrap(b"}" + unicode("w") + invoke(OD, tensor) + b"s"))
    assert_dangerous_and_reached(tmp_path, data, "model.pt", "torch", REACHED, with_gadget_targets)


# --------------------------------------------------------------------------- shape exemptions
# A stdlib class with side effects called in the shape of an Enum lookup or a mapping
# subclass: the exemption is for the user's classes only (second campaign).

STDLIB_IN_BENIGN_SHAPES = [
    pytest.param(
        wrap(invoke(global_("unittest", "TestProgram"), unicode("antigravity"))),
        "unittest.TestProgram('antigravity',)",
        id="enum-shape-unittest-testprogram",
    ),
    pytest.param(
        wrap(global_("unittest", "TestProgram") + b")R(" + unicode("a") + b"K\x01u"),
        "unittest.TestProgram()",
        id="mapping-shape-unittest-testprogram",
    ),
    pytest.param(
        wrap(invoke(global_("_sqlite3", "Connection"), unicode("/tmp/x.db"))),
        "_sqlite3.Connection('/tmp/x.db',)",
        id="enum-shape-sqlite3-connection",
    ),
]


@pytest.mark.parametrize(("data", "ran"), STDLIB_IN_BENIGN_SHAPES)
def test_stdlib_class_in_an_enum_or_mapping_shape_is_dangerous(
    tmp_path: Path, data: bytes, ran: str
) -> None:
    assert_dangerous_and_reached(tmp_path, data, "model.pkl", "pickle", ran, with_gadget_targets)


# --------------------------------------------------------------------------- NEWOBJ and destructors
# NEWOBJ that runs code of the file's choosing (a class built from the file's namespace, a
# weakref callback) and destructors that call a planted close() (third campaign, a62056d).
# The same recording loaders and PAYLOAD (an uncatalogued runner); the classes these gadgets
# need are resolved for real, by name, when the loader asks for them.


def assert_dangerous_and_reached_by_newobj(tmp_path: Path, data: bytes) -> FileReport:
    return assert_dangerous_and_reached(
        tmp_path, data, "model.pkl", "pickle", REACHED, with_class_makers
    )


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _class_of(meta: tuple[str, str], **namespace: bytes) -> bytes:
    """NEWOBJ meta('X', (object,), namespace): a class whose methods the file wrote."""
    ns = b"}(" + b"".join(unicode(k) + v for k, v in namespace.items()) + b"u"
    return (
        global_(*meta) + _tuple(unicode("X"), _tuple(global_("builtins", "object")), ns) + b"\x81"
    )


def _needs(module: str) -> list[pytest.MarkDecorator]:
    return [] if importlib.util.find_spec(module) else [pytest.mark.skip(f"no {module}")]


_METACLASSES = [
    ("numbers", "ABCMeta"),
    ("typing", "_ProtocolMeta"),
    ("_py_abc", "ABCMeta"),
    ("torch.nn.parameter", "_ParameterMeta"),
]

NEWOBJ_GADGETS = [
    # A. NEWOBJ of a metaclass alias: the instance's death (POP) runs the planted __del__ ...
    *[
        pytest.param(
            wrap(_class_of(meta, __del__=PAYLOAD) + b")\x81" + b"0}"),
            id=f"newobj-metaclass-{'.'.join(meta)}-del",
        )
        for meta in _METACLASSES
    ],
    # ... and BUILD on an instance runs the planted __setstate__ (a class attribute, not state).
    pytest.param(
        wrap(
            _class_of(("numbers", "ABCMeta"), __setstate__=PAYLOAD)
            + b")\x81"
            + unicode("x")
            + b"b0}"
        ),
        id="newobj-metaclass-numbers.ABCMeta-setstate",
    ),
    # B. NEWOBJ weakref.ref(set(), callback): the set dies with the argument tuple -> callback.
    pytest.param(
        wrap(
            global_("weakref", "ref")
            + _tuple(invoke(global_("builtins", "set")), PAYLOAD)
            + b"\x810}"
        ),
        id="newobj-weakref-ref-callback",
    ),
    pytest.param(
        wrap(
            b"}("
            + unicode("w")
            + global_("_weakref", "ref")
            + _tuple(invoke(global_("builtins", "set")), PAYLOAD)
            + b"\x81u"
        ),
        id="newobj-_weakref-ref-callback-kept",
    ),
]

# C. NEWOBJ (no __init__) + BUILD {'close': payload} + POP: the class's __del__ calls self.close().
DESTRUCTOR_CLOSES = [
    pytest.param(module, cls, extra, id=f"del-calls-close-{module}.{cls}", marks=_needs(module))
    for module, cls, extra in [
        ("wave", "Wave_read", b""),
        ("_pyio", "BytesIO", b""),
        ("sunau", "Au_write", unicode("_file") + b"K\x01"),  # __del__ closes only an open _file
        ("aifc", "Aifc_write", unicode("_file") + b"K\x01"),
    ]
]


@pytest.mark.parametrize("data", NEWOBJ_GADGETS)
def test_newobj_of_a_metaclass_or_weakref_runs_the_files_code(tmp_path: Path, data: bytes) -> None:
    assert_dangerous_and_reached_by_newobj(tmp_path, data)


@pytest.mark.parametrize(("module", "cls", "extra"), DESTRUCTOR_CLOSES)
def test_destructor_calls_planted_close(
    tmp_path: Path, module: str, cls: str, extra: bytes
) -> None:
    state = b"}(" + unicode("close") + PAYLOAD + extra + b"u"
    assert_dangerous_and_reached_by_newobj(
        tmp_path, wrap(global_(module, cls) + b")\x81" + state + b"b0}")
    )


# --------------------------------------------------------------------------- keys of a global
# A mapping constructor that asks a global for keys(), and a library class with side effects
# in an Enum's shape: the minimal forms of the two root causes a differential fuzz found
# (70,300 generated pickles, CPython's calls recorded against ckptaudit's verdicts; the fifth
# campaign).

KEYS_OF_A_GLOBAL = [
    pytest.param(b"cbuiltins\ndict\ncpkg\nCls\n\x85R.", id="dict-of-a-global"),
    pytest.param(
        b"ccollections\nOrderedDict\ncpkg.sub\nhelper\n\x85R.", id="ordereddict-of-a-global"
    ),
    pytest.param(b"(cbuiltins\ndict\ncuuid\n_get_command_stdout\no.", id="dict-of-a-global-by-obj"),
    pytest.param(
        b"ccollections\ndefaultdict\ncmymod\nModel\ncmymod\nrun\n\x86R.",
        id="defaultdict-of-a-global",
    ),
]


@pytest.mark.parametrize("data", KEYS_OF_A_GLOBAL)
def test_mapping_constructor_reading_keys_of_a_global_is_dangerous(data: bytes) -> None:
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS, report.findings
    # CPython really asks the global for keys(): a recording stand-in sees the call.
    called: list[str] = []

    class Stand:
        @staticmethod
        def keys() -> list[str]:
            called.append("keys")
            return []

    class Loader(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) == ("builtins", "dict"):
                return dict
            if module == "collections":
                return getattr(collections, name)
            return Stand

    with contextlib.suppress(Exception):
        Loader(io.BytesIO(data)).load()
    assert called == ["keys"]


def test_library_class_with_side_effects_gets_no_enum_exemption() -> None:
    """torch.distributed.FileStore(path) creates the file it names: never an Enum lookup."""
    data = b"ctorch.distributed\nFileStore\nX\x04\x00\x00\x00/tmp\x85R."
    report = ckptaudit.audit_bytes(data)
    assert report.status is Status.DANGEROUS, report.findings
