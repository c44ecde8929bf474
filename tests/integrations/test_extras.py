"""Each extra installed alone in a fresh venv, and used for what it is for.

Slow (minutes: ``[torch]`` alone installs torch), so these are marked ``extras`` and run by
``make extras``, not by ``make test``. torch is always installed with the constraint
``torch==2.13.0``: an unconstrained torch would be a multi-GB CUDA build.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_helpers import Dist, clean_env, distributions, make_venv, run

pytestmark = pytest.mark.extras

torch = pytest.importorskip("torch")


def _install(dist: Dist, extra: str, tmp_path: Path) -> tuple[Path, set[str]]:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    python = make_venv(tmp_path / f"venv-{extra}")
    run(
        [python, "-m", "pip", "install", "--quiet", "-c", constraints, f"{dist.wheel}[{extra}]"],
        env=clean_env(),
    )
    return python, distributions(python)


def _audit(python: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    proc = run(
        [python, "-m", "ckptaudit", "audit", "--no-progress", "--format", "json", *args],
        env=env or clean_env(),
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_torch_extra(dist: Dist, tmp_path: Path) -> None:
    python, installed = _install(dist, "torch", tmp_path)
    assert "torch" in installed
    version = run([python, "-c", "import torch; print(torch.__version__)"]).stdout
    assert version.startswith("2.13.0"), version
    legacy = tmp_path / "legacy.pt"
    run([python, "-m", "ckptaudit", "demo", "morphogenetic", "-o", legacy], env=clean_env())
    status, doc = _audit(python, str(legacy))
    assert status == 1 and doc["files"][0]["status"] == "incompatible"
    code = (
        "import ckptaudit, torch; print(ckptaudit.audit_object({'w': torch.ones(1)}).status.value)"
    )
    assert run([python, "-c", code]).stdout.strip() == "compatible"


@pytest.fixture()
def hub() -> Iterator[object]:
    from hub_server import Hub, serve_hub

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    with serve_hub(Hub(repos={"org/model": {"main": {"model.pt": buffer.getvalue()}}})) as stand_in:
        yield stand_in


def test_remote_extra_reads_http_and_hf_urls(dist: Dist, hub: object, tmp_path: Path) -> None:
    python, installed = _install(dist, "remote", tmp_path)
    assert {"fsspec", "aiohttp", "huggingface-hub"} <= installed and "torch" not in installed
    url = hub.url  # type: ignore[attr-defined]
    env = clean_env(HF_ENDPOINT=url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
    status, doc = _audit(
        python, f"{url}/org/model/resolve/main/model.pt", "hf://org/model/model.pt", env=env
    )
    assert status == 0 and [f["status"] for f in doc["files"]] == ["compatible"] * 2


def test_s3_extra_reads_s3_urls(dist: Dist, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    python, installed = _install(dist, "s3", tmp_path)
    assert "s3fs" in installed and "torch" not in installed
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket="ckpts")
        client.upload_file(str(checkpoints["bad.pt"]), "ckpts", "runs/bad.pt")
        status, doc = _audit(python, "s3://ckpts/runs/bad.pt", env=clean_env(**creds))
    finally:
        server.stop()
    assert status == 1 and doc["files"][0]["unsafe_globals"] == ["collections.deque"]


def test_dask_extra_audits_on_a_cluster(
    dist: Dist, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    python, installed = _install(dist, "dask", tmp_path)
    assert "distributed" in installed and "torch" not in installed
    code = (
        "import sys\n"
        "from distributed import LocalCluster\n"
        "from ckptaudit.cli import main\n"
        "with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,\n"
        "                  dashboard_address=None, host='127.0.0.1', protocol='tcp') as cluster:\n"
        "    sys.exit(main(['audit', '--format', 'json', '-o', sys.argv[1], '--dask',\n"
        "                   cluster.scheduler_address, *sys.argv[2:]]))\n"
    )
    out = tmp_path / "report.json"
    proc = run(
        [python, "-c", code, out, checkpoints["good.pt"], checkpoints["bad.pt"]],
        env=clean_env(),
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert [f["status"] for f in json.loads(out.read_text())["files"]] == [
        "compatible",
        "incompatible",
    ]
