"""pytest plugin, registered through the ``pytest11`` entry point: the ``ckptaudit_check``
fixture.

``ckptaudit_check(obj_or_path, *, torch_version=None, allow=())`` is
:func:`ckptaudit.testing.assert_loadable`, with two defaults a project sets once in its
pytest configuration::

    [tool.pytest.ini_options]
    ckptaudit_allow = ["mylib.config.Config"]   # added to every call's allow=
    ckptaudit_torch_version = "2.13.0"          # used when a call names none

The audit core is imported only when a test uses the fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ckptaudit.findings import FileReport

__all__ = ["ckptaudit_check", "pytest_addoption"]

_ALLOW = "ckptaudit_allow"
_TORCH = "ckptaudit_torch_version"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the two ini settings the fixture reads."""
    parser.addini(
        _ALLOW,
        type="linelist",
        default=[],
        help="ckptaudit: globals (module.name) every ckptaudit_check call treats as allowlisted",
    )
    parser.addini(
        _TORCH,
        type="string",
        default="",
        help="ckptaudit: torch policy table ckptaudit_check judges by (default: the newest)",
    )


@pytest.fixture
def ckptaudit_check(request: pytest.FixtureRequest) -> Callable[..., FileReport]:
    """:func:`ckptaudit.testing.assert_loadable`, with the project's configured defaults."""
    from ckptaudit.testing import assert_loadable

    configured_allow = [str(name) for name in request.config.getini(_ALLOW)]
    configured_torch = str(request.config.getini(_TORCH)) or None

    def check(
        obj_or_path: Any,
        *,
        torch_version: str | None = None,
        allow: Iterable[object] = (),
    ) -> FileReport:
        __tracebackhide__ = True
        return assert_loadable(
            obj_or_path,
            torch_version=torch_version or configured_torch,
            allow=[*configured_allow, *allow],
        )

    return check
