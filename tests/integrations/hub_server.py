"""A local stand-in of the Hugging Face Hub's file API, on 127.0.0.1.

It implements the endpoints ``huggingface_hub``'s ``HfFileSystem`` calls to read files (repo
info by revision, tree listing, paths-info, and ``resolve`` downloads with byte ranges), for
model repositories with any number of revisions. Point the client at it with ``HF_ENDPOINT``.
Every request is recorded with its ``Authorization`` header, so tests can check that
``HF_TOKEN`` reaches the server and which byte ranges were read.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Hub", "Request", "serve_hub"]


@dataclass(frozen=True)
class Request:
    """One request the stand-in received."""

    method: str
    path: str
    authorization: str | None
    range: str | None


@dataclass
class Hub:
    """Repositories by id, each a mapping revision -> {path in repo: bytes}.

    A revision is a branch name (``main``, ``refs/pr/1``) or a commit sha; every branch gets a
    stable fake sha. ``private`` repositories answer 401 unless the bearer token is ``token``.
    """

    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    token: str | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def sha(self, repo: str, revision: str) -> str:
        """The fake commit sha of a branch."""
        return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()

    def files(self, repo: str, revision: str) -> dict[str, bytes] | None:
        """The files of a repository at a branch or at a branch's sha, or None."""
        revisions = self.repos.get(repo)
        if revisions is None:
            return None
        if revision in revisions:
            return revisions[revision]
        for branch, files in revisions.items():
            if self.sha(repo, branch) == revision:
                return files
        return None

    def branch(self, repo: str, revision: str) -> str:
        """The branch a revision names (itself, or the branch whose sha it is)."""
        for branch in self.repos.get(repo, {}):
            if revision in (branch, self.sha(repo, branch)):
                return branch
        return revision


_API = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<verb>revision|tree|paths-info)/(?P<rest>.*))?$"
)
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read ``hub.requests`` instead."""

        def _record(self) -> str:
            path = urlsplit(self.path).path
            hub.requests.append(
                Request(
                    self.command, path, self.headers.get("Authorization"), self.headers.get("Range")
                )
            )
            return path

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, doc: object, headers: dict[str, str] | None = None) -> None:
            self._send(
                status,
                json.dumps(doc).encode(),
                {"Content-Type": "application/json", **(headers or {})},
            )

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(
                status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}
            )

        def _authorized(self, repo: str) -> bool:
            if repo not in hub.private:
                return True
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _lookup(self, repo: str, revision: str) -> dict[str, bytes] | None:
            if repo not in hub.repos or not self._authorized(repo):
                # The Hub answers 401 for private and missing repositories alike.
                self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
                return None
            files = hub.files(repo, revision)
            if files is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return files

        @staticmethod
        def _entries(
            files: dict[str, bytes], prefix: str, recursive: bool
        ) -> list[dict[str, object]]:
            """The tree under ``prefix``: its children, or everything below it (recursive)."""
            prefix = prefix.strip("/")
            seen: dict[str, dict[str, object]] = {}
            for name, data in sorted(files.items()):
                if prefix and not name.startswith(prefix + "/"):
                    continue
                parts = (name[len(prefix) + 1 :] if prefix else name).split("/")
                depth = len(parts) if recursive else 1
                for i in range(1, min(depth, len(parts) - 1) + 1):
                    folder = "/".join(([prefix] if prefix else []) + parts[:i])
                    seen.setdefault(
                        folder,
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(folder.encode()).hexdigest(),
                            "size": 0,
                            "path": folder,
                        },
                    )
                if recursive or len(parts) == 1:
                    seen[name] = Handler._file_entry(name, data)
            return list(seen.values())

        @staticmethod
        def _file_entry(name: str, data: bytes) -> dict[str, object]:
            return {
                "type": "file",
                "oid": hashlib.sha1(data).hexdigest(),
                "size": len(data),
                "path": name,
            }

        def do_GET(self) -> None:
            path = self._record()
            api = _API.match(path)
            if api:
                query = parse_qs(urlsplit(self.path).query)
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                self._api(api.group("repo"), api.group("verb"), api.group("rest") or "", recursive)
                return
            resolve = _RESOLVE.match(path)
            if resolve:
                self._resolve(
                    resolve.group("repo"),
                    unquote(resolve.group("rev")),
                    unquote(resolve.group("path")),
                )
                return
            self._error(404, "EntryNotFound", f"no route for {path}")

        do_HEAD = do_GET

        def do_POST(self) -> None:
            path = self._record()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            api = _API.match(path)
            if not api or api.group("verb") != "paths-info":
                self._error(404, "EntryNotFound", f"no route for {path}")
                return
            repo, revision = api.group("repo"), unquote(api.group("rest"))
            files = self._lookup(repo, revision)
            if files is None:
                return
            if self.headers.get("Content-Type", "").startswith("application/json"):
                wanted = json.loads(body).get("paths", [])
            else:
                wanted = parse_qs(body).get("paths", [])
            out: list[dict[str, object]] = []
            for p in wanted:
                p = p.strip("/")
                if p in files:
                    out.append(self._file_entry(p, files[p]))
                elif any(n.startswith(p + "/") for n in files):
                    out.append(
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(p.encode()).hexdigest(),
                            "size": 0,
                            "path": p,
                        }
                    )
            self._json(200, out)

        def _api(self, repo: str, verb: str | None, rest: str, recursive: bool) -> None:
            # The revision is one URL-quoted segment (refs%2Fpr%2F1), the path may follow.
            if verb in (None, "revision"):
                revision = unquote(rest) or "main"
                files = self._lookup(repo, revision)
                if files is None:
                    return
                self._json(
                    200,
                    {
                        "id": repo,
                        "modelId": repo,
                        "private": repo in hub.private,
                        "sha": hub.sha(repo, hub.branch(repo, revision)),
                        "siblings": [{"rfilename": n} for n in sorted(files)],
                    },
                )
                return
            # tree/{revision}[/{path}]: the revision is one URL-quoted segment.
            quoted, _, sub = rest.partition("/")
            revision, sub = unquote(quoted), unquote(sub)
            files = self._lookup(repo, revision)
            if files is None:
                return
            entries = self._entries(files, sub, recursive)
            if sub and not entries and sub.strip("/") not in files:
                self._error(404, "EntryNotFound", f"{sub} does not exist on {revision}")
                return
            self._json(200, entries)

        def _resolve(self, repo: str, revision: str, name: str) -> None:
            files = self._lookup(repo, revision)
            if files is None:
                return
            if name not in files:
                self._error(404, "EntryNotFound", f"{name} does not exist on {revision}")
                return
            data = files[name]
            headers = {
                "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                "X-Repo-Commit": hub.sha(repo, hub.branch(repo, revision)),
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            wanted = self.headers.get("Range")
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
            if not match:
                self._send(200, data, headers)
                return
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, data[start : end + 1], headers)

    return Handler


@contextmanager
def serve_hub(hub: Hub) -> Iterator[Hub]:
    """Serve ``hub`` on an ephemeral port of 127.0.0.1; ``hub.url`` is its endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
