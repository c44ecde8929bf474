"""Fixtures of the remote-audit tests: real servers on 127.0.0.1 (see remote_servers)."""

from remote_servers import checkpoints, http_server, s3

__all__ = ["checkpoints", "http_server", "s3"]
