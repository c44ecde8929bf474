"""Which remote errors are retried: network trouble is, an HTTP 4xx answer is not.

huggingface_hub raises OSErrors that carry the HTTP response; a missing repository or
revision (401/404) used to be retried three times (4.2 s) as if it were a network error.
"""

from __future__ import annotations

import pytest

from ckptaudit.formats.remote import _transient

errors = pytest.importorskip("huggingface_hub.errors")
httpx = pytest.importorskip("httpx2")


def _error(cls: type[Exception], status: int) -> Exception:
    response = httpx.Response(status, request=httpx.Request("GET", "http://127.0.0.1/x"))
    return cls("answer", response=response)  # type: ignore[call-arg]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_4xx_answer_is_final(status: int) -> None:
    assert not _transient(_error(errors.RepositoryNotFoundError, status))
    assert not _transient(_error(errors.HfHubHTTPError, status))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_timeouts_rate_limits_and_server_errors_are_retried(status: int) -> None:
    assert _transient(_error(errors.HfHubHTTPError, status))


def test_plain_network_errors_are_retried() -> None:
    assert _transient(ConnectionResetError())
    assert _transient(TimeoutError())
    assert not _transient(FileNotFoundError())
