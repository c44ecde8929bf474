"""The catalog of dangerous globals: names that execute code, import, or reach the system.

Every entry carries a one-line reason. A module entry covers the module and its submodules;
a name entry covers ``module.name`` and attributes reached through it (``name.attr``). The
catalog is reported whatever the allowlist says. It is not the only defence: a call of any
callable not shown to be an inert data constructor is dangerous too (see
:mod:`ckptaudit.checks.rules.unsafe_calls`), because lists like this one leak.

To add an entry: put it in the right table with a reason, add a hostile case for it to
tests/hostile_cases.py (built from opcodes, citing its advisory, reached by a real loader),
and regenerate docs/detection.md with ``python benchmarks/detection.py``.
"""

from __future__ import annotations

__all__ = [
    "DANGEROUS_MODULES",
    "DANGEROUS_NAMES",
    "NOT_DANGEROUS",
    "NOT_DANGEROUS_MODULES",
    "danger_reason",
]

DANGEROUS_MODULES: dict[str, str] = {
    # Processes and the operating system
    "os": "operating-system access: processes, files, environment",
    "posix": "operating-system access (os on POSIX)",
    "nt": "operating-system access (os on Windows)",
    "sys": "interpreter internals: modules, paths, hooks",
    "subprocess": "runs processes",
    "_posixsubprocess": "runs processes",
    "pty": "spawns processes with a terminal",
    "commands": "runs shell commands (Python 2)",
    "popen2": "runs processes (Python 2)",
    "platform": "runs processes (platform.popen) and reads system files",
    "signal": "installs signal handlers",
    "_winapi": "Windows process and file API",
    "msvcrt": "Windows C runtime",
    "winreg": "Windows registry",
    "_thread": "starts threads running callables",
    "threading": "starts threads running callables",
    "multiprocessing": "starts processes running callables",
    "_multiprocessing": "process primitives: creating a SemLock makes a named semaphore",
    "concurrent": "runs callables in pools",
    "asyncio": "runs processes and network connections",
    "resource": "changes process limits",
    "gc": "reaches every live object",
    "ctypes": "loads native libraries and calls C functions",
    "_ctypes": "loads native libraries and calls C functions",
    "cffi": "loads native libraries and calls C functions",
    "mmap": "maps files into memory",
    # Code execution and import machinery
    "builtins.__import__": "imports modules",
    "importlib": "imports modules",
    "_imp": "imports modules",
    "imp": "imports modules",
    "_frozen_importlib": "imports modules",
    "_frozen_importlib_external": "imports modules",
    "zipimport": "imports modules from archives",
    "pkgutil": "imports modules",
    "runpy": "runs modules and code",
    "code": "runs interactive Python code",
    "codeop": "compiles Python code",
    "pdb": "runs code under the debugger",
    "bdb": "runs code under the debugger",
    "cProfile": "runs code under the profiler",
    "profile": "runs code under the profiler",
    "trace": "runs code under the tracer",
    "timeit": "runs code strings",
    "doctest": "runs code from docstrings",
    "pydoc": "runs pagers and imports modules",
    "site": "changes import paths",
    "marshal": "loads code objects",
    "inspect": "reaches frames and code of live objects",
    "types": "builds functions, code objects and modules",
    "operator": "call-forwarding gadgets (attrgetter, methodcaller, call)",
    "_operator": "call-forwarding gadgets (attrgetter, methodcaller, call)",
    "functools.reduce": "calls a function over an iterable",
    "_functools.reduce": "calls a function over an iterable",
    "copy": "calls __reduce__/__deepcopy__ of arbitrary objects",
    "idlelib": "runs code in the IDLE shell",
    "lib2to3": "rewrites source files",
    "distutils": "builds and runs code",
    "setuptools": "builds and runs code",
    "pip": "installs and runs packages",
    "ensurepip": "installs packages",
    "venv": "creates environments and runs processes",
    # Deserializers that run code from their input
    "pickle": "nested unpickling runs code",
    "_pickle": "nested unpickling runs code",
    "cPickle": "nested unpickling runs code (Python 2)",
    "pickletools": "reads pickles",
    "shelve": "pickle-backed storage",
    "dill": "unpickling that runs code",
    "cloudpickle": "unpickling that runs code",
    "joblib": "unpickling that runs code",
    "jsonpickle": "deserialization that runs code",
    "yaml": "yaml.load/unsafe_load construct arbitrary objects",
    "torch.serialization": "torch.load of a nested payload runs code",
    "torch.storage._load_from_bytes": "calls torch.load(weights_only=False) on embedded bytes",
    "torch.jit": "loads and compiles TorchScript",
    "torch._C": "native torch internals (JIT import, file I/O)",
    "torch.hub": "downloads and runs code",
    "torch.package": "imports packaged code",
    "torch.utils.cpp_extension": "compiles and loads native code",
    "torch._inductor": "compiles and runs generated code",
    "torch._dynamo": "compiles and runs generated code",
    "torch.fx.graph_module": "execs generated Python code (reduce_graph_module)",
    "torch.distributed.rpc": "remote procedure calls",
    "torch.multiprocessing": "starts processes",
    "numpy.load": "np.load(allow_pickle=True) unpickles",
    "numpy.lib.npyio": "loads pickled arrays",
    "numpy.lib.format": "reads pickled arrays",
    "numpy.f2py": "compiles and runs Fortran/C",
    "numpy.distutils": "builds and runs code",
    "numpy.testing": "runs code strings (runstring) and processes",
    "numpy.ctypeslib": "loads native libraries",
    "numpy.memmap": "creates and overwrites files",
    "numpy.save": "writes files",
    "numpy.savez": "writes files",
    "numpy.fromfile": "reads files",
    "numpy.tofile": "writes files",
    "pandas.read_pickle": "unpickles",
    "pandas.eval": "evaluates expressions (numexpr or Python)",
    "pandas.core.computation": "evaluates expressions (pandas.eval, DataFrame.query)",
    "pandas.io": "reads files, unpickles",
    "keras": "loads models that run code (Lambda layers)",
    "tensorflow": "loads graphs and runs ops with file and network access",
    # Files, network, browsers
    "builtins.open": "opens files",
    "io": "opens files (io.open, FileIO)",
    "_io": "opens files (FileIO)",
    "codecs.open": "opens files",
    "fileinput": "opens files",
    "tempfile": "creates files",
    "shutil": "copies, moves and deletes files; runs archivers",
    "zipfile": "reads and writes archives on disk",
    "tarfile": "reads and writes archives on disk",
    "dbm": "opens database files",
    "sqlite3": "opens database files",
    "_sqlite3": "opens database files (sqlite3's C module)",
    "weakref": "weakref.ref(obj, callback) calls the callback as soon as obj dies",
    "_weakref": "weakref.ref(obj, callback) calls the callback as soon as obj dies",
    "wave": "its objects' __del__ calls self.close(), which state can replace",
    "sunau": "its objects' __del__ calls self.close(), which state can replace",
    "aifc": "its objects' __del__ calls self.close(), which state can replace",
    "_pyio": "file objects whose __del__ calls self.close(), which state can replace",
    "unittest": "imports modules by name, runs tests and exits (unittest.TestProgram)",
    "logging.config": "listens on sockets, reads config files, imports handlers",
    "logging.FileHandler": "creates files",
    "socket": "network access",
    "_socket": "network access",
    "ssl": "network access",
    "select": "network access",
    "selectors": "network access",
    "socketserver": "runs network servers",
    "http": "network clients and servers",
    "urllib": "network access",
    "urllib2": "network access (Python 2)",
    "httplib": "network access (Python 2)",
    "ftplib": "network access",
    "smtplib": "network access",
    "smtpd": "network server",
    "telnetlib": "network access",
    "poplib": "network access",
    "imaplib": "network access",
    "nntplib": "network access",
    "xmlrpc": "remote procedure calls",
    "requests": "network access",
    "httpx": "network access",
    "urllib3": "network access",
    "aiohttp": "network access",
    "paramiko": "SSH connections and remote commands",
    "webbrowser": "starts a browser (runs processes)",
    "antigravity": "starts a browser",
    "turtle": "opens windows, runs Tk",
    "tkinter": "opens windows, runs Tk code",
    "IPython": "runs interactive code",
    "jinja2": "compiles templates to Python code",
    "atexit": "registers callables to run at exit",
    "sched": "schedules callables",
    "logging.handlers": "creates files, sockets and mail connections",
    "mailbox": "creates directories and files",
    "gzip": "opens files",
    "bz2": "opens files",
    "lzma": "opens files",
    "zipapp": "writes archives",
    "compileall": "compiles files",
    "py_compile": "compiles files",
    "wsgiref": "runs web servers",
    "cgi": "runs CGI handling",
    "cgitb": "writes reports to files",
    "curses": "takes over the terminal",
    "fcntl": "file-descriptor control",
    "termios": "terminal control",
    "tty": "terminal control",
    "syslog": "writes system logs",
    "pipes": "runs shell pipelines",
    "getpass": "reads from the terminal",
    "readline": "reads and writes history files",
    "rlcompleter": "evaluates expressions for completion",
    "cmd": "runs interactive command loops",
    "plistlib": "loads files",
    "ctypes.util": "runs compilers to find libraries",
    "__main__.__builtins__": "reaches the builtins of the loading program",
}

DANGEROUS_NAMES: dict[str, str] = {
    "builtins.eval": "evaluates Python code",
    "builtins.exec": "executes Python code",
    "builtins.compile": "compiles Python code",
    "builtins.execfile": "executes a Python file",
    "builtins.getattr": "reaches any attribute (methods, modules) of an object",
    "builtins.setattr": "changes any attribute of an object",
    "builtins.delattr": "deletes attributes",
    "builtins.globals": "reaches the loading module's globals",
    "builtins.locals": "reaches local variables",
    "builtins.vars": "reaches an object's namespace",
    "builtins.dir": "lists attributes for gadget chains",
    "builtins.input": "reads from the terminal",
    "builtins.breakpoint": "starts the debugger",
    "builtins.help": "starts the help pager",
    "builtins.exit": "exits the interpreter",
    "builtins.quit": "exits the interpreter",
    "builtins.type": "type(name, bases, dict) creates classes",
    "builtins.super": "reaches parent-class methods",
    "builtins.classmethod": "wraps callables",
    "builtins.staticmethod": "wraps callables",
    "builtins.property": "wraps callables",
    "builtins.memoryview": "raw memory access",
    "builtins.map": "calls a function over an iterable",
    "builtins.filter": "calls a function over an iterable",
    "builtins.iter": "calls a callable until a sentinel",
    "builtins.next": "advances iterators (drives map/filter gadgets)",
    "builtins.object.__subclasses__": "reaches every class",
    "builtins.__build_class__": "creates classes",
    "builtins.__loader__": "imports modules",
    "builtins.__builtins__": "reaches every builtin",
    "builtins.__dict__": "reaches every builtin",
    "collections.namedtuple": "builds classes from strings",
    "functools.wraps": "copies attributes between callables",
    "functools.cached_property": "wraps a callable",
    "functools.singledispatch": "wraps a callable",
    "copyreg._reconstructor": "calls base.__init__-style constructors of arbitrary bases",
    "copyreg.__newobj_ex__": "calls cls.__new__ with arguments",
    "enum.EnumMeta": "creates classes",
    "abc.ABCMeta": "creates classes",
    "typing.NamedTuple": "creates classes",
    "dataclasses.make_dataclass": "creates classes with generated code",
    "torch.load": "torch.load of a nested payload runs code",
    "torch.save": "writes files",
    "torch.from_file": "reads files",
    "torch.ops": "calls native operators (some read and write files)",
    "torch.classes": "instantiates native classes",
    "torch.utils.data.datapipes": "reads files and runs callables",
    "torch.Storage.from_file": "reads files",
    "torch.UntypedStorage.from_file": "reads files",
}

NOT_DANGEROUS: dict[str, str] = {
    "types.SimpleNamespace": "a plain attribute container",
    "io.BytesIO": "an in-memory buffer",
    "io.StringIO": "an in-memory buffer",
    "_io.BytesIO": "an in-memory buffer",
    "_io.StringIO": "an in-memory buffer",
    "socket.AddressFamily": "an Enum of address families",
    "socket.SocketKind": "an Enum of socket kinds",
    "signal.Signals": "an Enum of signal numbers",
    "signal.Handlers": "an Enum of default handlers",
    "http.HTTPStatus": "an Enum of status codes",
    "http.HTTPMethod": "an Enum of methods",
    "ssl.TLSVersion": "an Enum of TLS versions",
    "ssl.VerifyMode": "an Enum of verification modes",
    "ssl.Purpose": "an Enum of purposes",
    "inspect._ParameterKind": "an Enum of parameter kinds",
    "torch.Generator": "random generator state",
    "torch._C.Generator": "random generator state",
    # torch.tanh pickles as getattr(torch._C._VariableFunctionsClass, 'tanh') and
    # torch.Tensor.add as getattr(torch._C.TensorBase, 'add'): the namespace is only data.
    "torch._C._VariableFunctionsClass": "the namespace of torch's operators (torch.tanh, ...)",
    "torch._C._VariableFunctions": "the namespace of torch's operators (torch.tanh, ...)",
    "torch._C.TensorBase": "the base class of tensors (torch.Tensor.add, ...)",
    "torch._C._TensorBase": "the base class of tensors (old name of torch._C.TensorBase)",
}
"""Names inside dangerous modules that are plain data."""

NOT_DANGEROUS_MODULES: dict[str, str] = {
    "torch.jit._pickle": "TorchScript's pickle helpers only build lists, tensors and type tags",
    "torch._C._nn": "neural-network ops (gelu, ...) that modules keep as attributes: computation",
    "torch._C._fft": "FFT ops: computation",
    "torch._C._linalg": "linear-algebra ops: computation",
    "torch._C._special": "special-function ops: computation",
    "torch._C._nested": "nested-tensor ops: computation",
    "torch._C._sparse": "sparse ops: computation",
    "torch._C._VariableFunctionsClass": "torch's operators (torch.tanh, torch.add): computation",
    "torch._C._VariableFunctions": "torch's operators (torch.tanh, torch.add): computation",
    "torch._C.TensorBase": "tensor methods (torch.Tensor.add, ...): computation",
    "torch._C._TensorBase": "tensor methods (old name of torch._C.TensorBase): computation",
}
"""Submodules and operator namespaces of dangerous modules whose members only compute.

A member is exempt whether the pickle names it ``module.member`` or reaches it by a dotted
name (``torch._C`` + ``_VariableFunctionsClass.tanh``), except the few in
:data:`_SYSTEM_OPS` or named like them. Calling a member is still judged by the unsafe-call
rule: only references kept as data (an activation in a config) are exempt.
"""

# Operators in those namespaces that reach files, raw memory, stdout or Python callables.
_SYSTEM_OPS: dict[str, str] = {
    "from_file": "maps a file into a tensor",
    "_from_blob": "makes a tensor from a raw memory address",
    "_print": "writes to the process's standard output",
    "apply_": "calls a Python callable on every element",
    "map_": "calls a Python callable on every element",
    "map2_": "calls a Python callable on every element",
}
# Words that mark such an operator if a later torch adds one (none in torch 2.13 but from_file).
_SYSTEM_OP_WORDS = ("file", "save", "load", "jit", "script", "blob", "pickle")


def _system_op(name: str) -> str | None:
    reason = _SYSTEM_OPS.get(name)
    if reason is None and any(word in name.lower() for word in _SYSTEM_OP_WORDS):
        reason = "a native operator whose name says it reaches files or code"
    return reason


# Attribute names that, reached through a dotted qualname, lead to code or the system.
_DANGEROUS_ATTRS = frozenset(
    {
        "system",
        "popen",
        "spawn",
        "execv",
        "execve",
        "execl",
        "fork",
        "kill",
        "remove",
        "unlink",
        "rmdir",
        "rmtree",
        "eval",
        "exec",
        "compile",
        "open",
        "load",
        "loads",
        "getattr",
        "setattr",
        "import_module",
        "run",
        "call",
        "check_call",
        "check_output",
        "getoutput",
        "getstatusoutput",
        "Popen",
        "write_text",
        "write_bytes",
        "read_text",
        "read_bytes",
        "mkdir",
        "touch",
        "rename",
        "replace",
        "chmod",
        "symlink_to",
    }
)


_MODULE_ALIASES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "posixsubprocess",
        "pty",
        "ctypes",
        "importlib",
        "imp",
        "runpy",
        "marshal",
        "shutil",
        "socket",
        "pickle",
        "builtins",
    }
)
"""Modules that other modules import under their own name (``logging.os``) or a private
one (``random._os``): no data object carries these names, so reaching one is a gadget."""


def danger_reason(module: str, name: str) -> str | None:
    """Return why ``module.name`` is dangerous, or None if the catalog does not list it.

    Dotted names (``a.b`` in protocol 4) are traversals through attributes: a dunder
    component, a module reached through another module, or a dangerous attribute anywhere
    on the path is enough.
    """
    parts = name.split(".")
    qualified = f"{module}.{name}"
    if qualified in NOT_DANGEROUS and qualified not in DANGEROUS_NAMES:
        return None
    owner, _, member = qualified.rpartition(".")
    if owner in NOT_DANGEROUS_MODULES and not member.startswith("__"):
        return _system_op(member)
    reason = DANGEROUS_NAMES.get(qualified)
    if reason:
        return reason
    # Prefixes of the dotted path: "builtins.eval.__call__" is builtins.eval.
    for i in range(1, len(parts)):
        reason = DANGEROUS_NAMES.get(f"{module}.{'.'.join(parts[:i])}")
        if reason:
            return reason
    # The module itself, its parents, and module-style entries naming a function.
    candidates = [module]
    pieces = module.split(".")
    candidates += [".".join(pieces[:i]) for i in range(len(pieces) - 1, 0, -1)]
    candidates += [f"{module}.{'.'.join(parts[:i])}" for i in range(1, len(parts) + 1)]
    for candidate in candidates:
        reason = DANGEROUS_MODULES.get(candidate)
        if reason:
            return reason
    for part in parts:
        if part.lstrip("_") in _MODULE_ALIASES:
            # logging.os, random._os, posixpath.os: the module object under another name.
            return f"reaches module {part.lstrip('_')} through an alias"
    if len(parts) > 1:
        for part in parts:
            if part.startswith("__") and part.endswith("__"):
                return f"attribute traversal through {part}"
            if part in _DANGEROUS_ATTRS:
                return f"attribute traversal to {part}"
            if part in DANGEROUS_MODULES:
                return f"attribute traversal to module {part}"
    return None
