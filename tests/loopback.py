"""For tests of remote files: a static file server on 127.0.0.1 (bounded, shut down on exit, byte ranges),
and a checkpoint that would run code if it were fully unpickled."""

from __future__ import annotations

import functools
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch


class _Handler(SimpleHTTPRequestHandler):
    timeout = 10  # seconds a connection may stay idle: nothing hangs a test

    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]

    def send_head(self) -> Any:
        """``Range: bytes=a-b`` answered with 206 and those bytes, as object stores do (the standard
        library's server sends the whole file)."""
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start = int(wanted.group(1))
        end = min(int(wanted.group(2) or len(data) - 1), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])


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


class Payload:
    """Unpickling this creates ``marker``: code that a checkpoint must never get to run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def write_evil(path: Path, marker: Path, base: dict[str, object] | None = None) -> Path:
    """A checkpoint (``base``, or a minimal one) that also holds a pickled payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(base or {"state_dict": {"w": torch.zeros(2)}}), "payload": Payload(marker)}, path)
    return path
