"""A static file server on 127.0.0.1 for tests of remote checkpoints: bounded, and shut down on exit."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    timeout = 10  # seconds a connection may stay idle: nothing hangs a test

    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]


class LoopbackServer(ThreadingHTTPServer):
    """Serves one folder; ``requests`` lists every request (``GET /a/last.ckpt``) in order."""

    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def gets(self, path: str) -> int:
        """How many times ``path`` was downloaded (GET requests answered)."""
        return sum(r == f"GET {path}" for r in self.requests)


@contextmanager
def serve(folder: Path) -> Iterator[LoopbackServer]:
    """Serve ``folder`` on a free port of 127.0.0.1 (loopback only) until the block ends."""
    server = LoopbackServer(folder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
