"""Build hook for the optional compiled core; everything else is in pyproject.toml.

The extension is optional: where no C compiler is found the build prints a warning and the
package installs with its pure-Python loop, which gives the same results more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ckptaudit.pickle._native",
            sources=["src/ckptaudit/pickle/_native.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
