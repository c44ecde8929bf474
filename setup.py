"""Build hook for the optional compiled core; everything else is in pyproject.toml.

The extension is optional: where no C compiler is found the build prints a warning and the
package installs with its pure-Python code, which gives the same results more slowly.
"""

from setuptools import Extension, setup

_CORE = "src/ckptaudit/pickle/"

setup(
    ext_modules=[
        Extension(
            "ckptaudit.pickle._native",
            # The module, the dispatch loop and the path walker; _native.h is what they share.
            sources=[_CORE + name for name in ("_native.c", "_loop.c", "_walker.c")],
            depends=[_CORE + "_native.h"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
