"""The known pool: code on every machine that loads a checkpoint, and so judged call by call.

The standard library and torch's install closure (torch, numpy, sympy, networkx, jinja2,
fsspec, filelock, typing_extensions, mpmath...) are importable wherever a checkpoint is loaded,
which is what makes their callables gadgets: an attacker can count on them. A call into them
that the callables table does not show to be inert is ``dangerous`` (default-deny).

Code outside the pool (a user's ``mylib.Config``, a library such as ultralytics) is not known
to ckptaudit: loading the file imports it and may run it, so the modules are reported as
``untrusted-code``, never silently passed and never guessed to be dangerous.
"""

from __future__ import annotations

import json
import sys
from importlib import resources

__all__ = ["CLOSURE_PACKAGES", "is_known_pool", "top_package"]

CLOSURE_PACKAGES: dict[str, str] = {
    "torch": "the library that loads the checkpoint",
    "functorch": "installed with torch",
    "torchgen": "installed with torch",
    "triton": "installed with torch's CUDA builds",
    "numpy": "numpy arrays and scalars ride in checkpoints; installed wherever they load",
    "sympy": "a dependency of torch",
    "mpmath": "a dependency of sympy",
    "networkx": "a dependency of torch",
    "jinja2": "a dependency of torch",
    "markupsafe": "a dependency of jinja2",
    "fsspec": "a dependency of torch",
    "filelock": "a dependency of torch",
    "typing_extensions": "a dependency of torch",
    "setuptools": "a dependency of torch on Python 3.12 and newer",
    "pkg_resources": "installed with setuptools",
    "_distutils_hack": "installed with setuptools",
}
"""Top-level packages besides the standard library that are in the known pool, with why."""

def _stdlib() -> frozenset[str]:
    text = (resources.files("ckptaudit.policy") / "data" / "stdlib-modules.json").read_text()
    shipped: list[str] = json.loads(text)["modules"]
    # The running Python's own list too (a newer CPython than the table knows), and the
    # Python 2 names every loader resolves (``__builtin__``, ``copy_reg``).
    return frozenset(shipped) | frozenset(sys.stdlib_module_names) | {
        "__builtin__",
        "copy_reg",
        "exceptions",
    }


_STDLIB = _stdlib()
"""Top-level modules CPython 3.8-3.13 ship, including the ``test`` package and the private
extension modules ``sys.stdlib_module_names`` omits (tools/gen_stdlib_modules.py)."""


def top_package(module: str) -> str:
    """The top-level package of a module (``torch.nn.modules`` -> ``torch``)."""
    return module.split(".", 1)[0]


def is_known_pool(module: str) -> bool:
    """True for the standard library (of any Python 3 version this one knows) and torch's
    install closure; False for everything else (``__main__`` included)."""
    top = top_package(module)
    return top in _STDLIB or top in CLOSURE_PACKAGES
