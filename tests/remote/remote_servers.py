"""Real servers on 127.0.0.1 for the remote-audit tests, and the checkpoints they serve.

* an HTTP server (stdlib ``ThreadingHTTPServer``) that honours ``Range`` and counts the body
  bytes it sends;
* moto's S3 server behind a byte-counting TCP proxy, so what crosses the socket is measured
  whatever the S3 client does.

Only loopback addresses; every server is stopped at teardown; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import pytest

from ckptaudit.findings import AuditStats, FileReport

GIB = 1 << 30
MIB = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def comparable(report: FileReport) -> FileReport:
    """A report without what legitimately differs between a local and a remote audit."""
    return dataclasses.replace(report, path="", stats=AuditStats())


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.pt: a dataclass inside (incompatible); legacy.pt: the same, legacy format;
    big.pt: a real torch.save zip holding one 1 GiB tensor (sparse on disk)."""
    torch = pytest.importorskip("torch")
    import oracle_types as ot

    root = tmp_path_factory.mktemp("served")
    obj = {"config": ot.Config(), "weight": torch.zeros(4, 3)}
    torch.save(obj, root / "config.pt")
    torch.save(obj, root / "legacy.pt", _use_new_zipfile_serialization=False)
    # skip_data writes the archive and seeks over the storage bytes: 1 GiB in a millisecond.
    with torch.serialization.skip_data():
        torch.save({"weight": torch.empty(256 * 1024 * 1024)}, root / "big.pt")
    assert (root / "big.pt").stat().st_size > GIB
    return root


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class HttpServer:
    url: str
    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, int] = field(default_factory=dict)
    """Body bytes sent, per path."""
    ranges: dict[str, list[str]] = field(default_factory=dict)
    """Range headers received, per path (``""`` for a request without one)."""
    honour_ranges: bool = True
    advertise_no_ranges: bool = True
    """When ranges are not honoured: say so (``Accept-Ranges: none``) or stay silent."""

    def reset(self) -> None:
        with self.lock:
            self.sent.clear()
            self.ranges.clear()


def _handler(state: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle keep-alive connection ends its thread

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _accept_ranges(self) -> None:
            if state.honour_ranges:
                self.send_header("Accept-Ranges", "bytes")
            elif state.advertise_no_ranges:
                self.send_header("Accept-Ranges", "none")

        def _target(self) -> Path | None:
            name = self.path.split("?", 1)[0].lstrip("/")
            path = state.root / name
            if "/" in name or not path.is_file():
                self.send_error(404)
                return None
            return path

        def do_HEAD(self) -> None:
            path = self._target()
            if path is None:
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self._accept_ranges()
            self.end_headers()

        def do_GET(self) -> None:
            path = self._target()
            if path is None:
                return
            size = path.stat().st_size
            header = self.headers.get("Range", "")
            with state.lock:
                state.ranges.setdefault(self.path, []).append(header)
            start, end = 0, size
            match = _RANGE.match(header.strip()) if state.honour_ranges else None
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start = int(first)
                    end = min(size, int(last) + 1) if last else size
                else:  # bytes=-N: the last N bytes
                    start = max(0, size - int(last))
                if start >= size or start >= end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start))
            self._accept_ranges()
            self.end_headers()
            with open(path, "rb") as handle:
                handle.seek(start)
                left = end - start
                while left > 0:
                    chunk = handle.read(min(left, 256 << 10))
                    if not chunk:
                        break
                    # Tallied before the write: once the client holds the bytes, the tally
                    # must already count them (tests compare the two without waiting).
                    with state.lock:
                        state.sent[self.path] = state.sent.get(self.path, 0) + len(chunk)
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True
                        return
                    left -= len(chunk)

    return Handler


@pytest.fixture(scope="session")
def http_server(checkpoints: Path) -> Iterator[HttpServer]:
    """An HTTP/1.1 server on 127.0.0.1 serving the checkpoints, with Range support."""
    state = HttpServer(url="", root=checkpoints)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- S3 (moto) behind a counting proxy ---------------------------------------------------


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes the upstream server sends back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.downstream_bytes = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.address = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def reset(self) -> int:
        with self._lock:
            n, self.downstream_bytes = self.downstream_bytes, 0
        return n

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=30)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while not self._stop.is_set():
                data = src.recv(256 << 10)
                if not data:
                    break
                if count:
                    with self._lock:
                        self.downstream_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for s in self._sockets:
                s.close()


@dataclass
class S3:
    endpoint: str
    bucket: str
    proxy: CountingProxy
    storage_options: dict[str, object]


@pytest.fixture(scope="session")
def s3(checkpoints: Path) -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 (behind a counting proxy) holding the checkpoints."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    proxy = CountingProxy(server.get_host_and_port())
    endpoint = f"http://{proxy.address[0]}:{proxy.address[1]}"
    stack = contextlib.ExitStack()
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="ckpts")
        for path in sorted(checkpoints.iterdir()):
            if path.name == "big.pt":
                continue
            client.upload_file(str(path), "ckpts", f"runs/{path.name}")
        big = _put_big(checkpoints / "big.pt", "ckpts", "runs/big.pt")
        stack.callback(big.close)
        yield S3(
            endpoint=endpoint,
            bucket="ckpts",
            proxy=proxy,
            storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"},
        )
    finally:
        stack.close()
        proxy.close()
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _put_big(path: Path, bucket: str, key: str) -> BinaryIO:
    """Put the 1 GiB object into the in-process moto backend without sending it over HTTP.

    Uploading a gigabyte through moto's server takes ~20 s, far past the test budget; here
    the key is created empty and its value buffer swapped for the (sparse) file itself.
    Every read of it still goes through moto's HTTP server and its Range handling.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    fake_key = backend.put_object(bucket, key, b"")
    fake_key._value_buffer.close()
    handle = open(path, "rb")  # noqa: SIM115 - closed at teardown
    fake_key._value_buffer = handle
    fake_key.contentsize = path.stat().st_size
    fake_key._etag = "0" * 32
    return handle
