"""hf:// URLs against a local stand-in of the Hub's file API (real HTTP on 127.0.0.1).

The real client (huggingface_hub's HfFileSystem, through fsspec) is pointed at the stand-in
with HF_ENDPOINT; the CLI runs in a subprocess, as a user runs it, so that the client reads
HF_ENDPOINT and HF_TOKEN from its environment at import as it does in real use.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
torch = pytest.importorskip("torch")

from hub_server import Hub, serve_hub  # noqa: E402

# Each test runs the CLI in a subprocess with huggingface_hub: run once, not per core.
pytestmark = pytest.mark.integration

TOKEN = "hf_local_stand_in_token"
EVIL = b"cos\nsystem\n(S'id'\ntR."


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    big = _saved({"w": torch.zeros(256, 1024)})  # 1 MiB of tensor bytes, never fetched
    deque = _saved({"d": __import__("collections").deque([1])})
    stand_in = Hub(
        repos={
            "org/model": {
                "main": {"model.pt": big, "sub/deque.pt": deque},
                "refs/pr/1": {"model.pt": EVIL},
                "v1": {"model.pt": deque},
            },
            "org/private": {"main": {"model.pt": big}},
        },
        private={"org/private"},
        token=TOKEN,
    )
    with serve_hub(stand_in):
        yield stand_in


def run(hub: Hub, tmp_path: Path, *args: str, token: str | None = TOKEN) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    if token is not None:
        env["HF_TOKEN"] = token
    out = tmp_path / "report.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ckptaudit", "audit", "--format", "json", "-o", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, doc, proc.stderr


def test_hf_url_is_audited_by_ranged_reads(hub: Hub, tmp_path: Path) -> None:
    hub.requests.clear()
    status, doc, err = run(hub, tmp_path, "hf://org/model/model.pt")
    assert status == 0, err
    (report,) = doc["files"]
    assert (report["path"], report["status"]) == ("hf://org/model/model.pt", "compatible")
    size = len(hub.repos["org/model"]["main"]["model.pt"])
    assert report["stats"]["bytes_read"] < size // 4  # the tensor storage stays on the Hub
    downloads = [r for r in hub.requests if "/resolve/" in r.path]
    assert downloads and all(r.range and r.range.startswith("bytes=") for r in downloads)


def test_hf_token_reaches_the_hub_as_a_bearer_token(hub: Hub, tmp_path: Path) -> None:
    hub.requests.clear()
    status, doc, err = run(hub, tmp_path, "hf://org/private/model.pt")
    assert status == 0, err
    assert doc["files"][0]["status"] == "compatible"
    assert hub.requests and {r.authorization for r in hub.requests} == {f"Bearer {TOKEN}"}

    hub.requests.clear()
    status, doc, err = run(hub, tmp_path, "hf://org/private/model.pt", token=None)
    assert status == 3, err  # unreadable: an error report, not a crash and not a pass
    (report,) = doc["files"]
    assert report["status"] == "error" and "org/private" in report["error"]
    assert hub.requests and {r.authorization for r in hub.requests} == {None}


def test_revision_selects_branch_tag_pr_or_commit(hub: Hub, tmp_path: Path) -> None:
    status, doc, _ = run(hub, tmp_path, "--revision", "refs/pr/1", "hf://org/model/model.pt")
    assert status == 1
    (report,) = doc["files"]
    assert report["path"] == "hf://org/model@refs/pr/1/model.pt"
    assert report["status"] == "dangerous"

    status, doc, _ = run(hub, tmp_path, "--revision", "v1", "hf://org/model/model.pt")
    assert (status, doc["files"][0]["status"]) == (1, "incompatible")

    sha = hub.sha("org/model", "v1")
    status, doc, _ = run(hub, tmp_path, "--revision", sha, "hf://org/model/model.pt")
    assert doc["files"][0]["path"] == f"hf://org/model@{sha}/model.pt"
    assert doc["files"][0]["status"] == "incompatible"

    # a prefix (trailing slash) is listed at the revision too
    status, doc, _ = run(hub, tmp_path, "--revision", "main", "hf://org/model/")
    assert [(f["path"], f["status"]) for f in doc["files"]] == [
        ("hf://org/model/model.pt", "compatible"),
        ("hf://org/model/sub/deque.pt", "incompatible"),
    ]


def test_revision_errors_are_usage_errors(hub: Hub, tmp_path: Path) -> None:
    status, _, err = run(hub, tmp_path, "--revision", "nope", "hf://org/model/model.pt")
    assert status == 2 and "cannot read hf://org/model/model.pt at revision 'nope'" in err
    status, _, err = run(hub, tmp_path, "--revision", "v1", "hf://org/model@main/model.pt")
    assert status == 2 and "at revision 'v1'" in err
    status, _, err = run(hub, tmp_path, "--revision", "v1", str(tmp_path))
    assert status == 2 and "--revision applies to hf:// URLs" in err
