"""A FAKE OpenAI-compatible server on 127.0.0.1: it replays recorded streaming replies.

A real vLLM or llama.cpp server cannot run in the test environment, so this plays one:
a real HTTP/1.1 server on a free port that answers each ``POST`` with the next queued
reply, written with chunked transfer encoding in pieces cut wherever the test says
(mid-line, mid-JSON), as TCP would deliver them. It records every request (path,
headers, JSON body) so tests can check what the client sent. A reply may hang after
some pieces, to test client timeouts; hung handlers are released on exit.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One queued answer: status, body pieces, and whether to hang after some pieces."""

    body: str = ""
    status: int = 200
    content_type: str = "text/event-stream"
    #: Body cut into pieces of this many bytes (each sent as one HTTP chunk).
    piece: int = 29
    #: Stop after this many pieces and wait (until the server closes), or None.
    hang_after: int | None = None


@dataclass
class Request:
    """What the client sent."""

    path: str
    headers: dict[str, str]
    body: Any


class FakeOpenAiServer:
    """``with FakeOpenAiServer() as server: server.replies.append(Reply(...))``."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(fake: FakeOpenAiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fake.requests.append(Request(self.path, dict(self.headers), json.loads(raw)))
            reply = fake.replies.popleft() if fake.replies else Reply("no reply queued", 404)
            data = reply.body.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                if reply.status != 200 or reply.content_type == "application/json":
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                pieces = [data[i : i + reply.piece] for i in range(0, len(data), reply.piece)]
                for index, piece in enumerate(pieces):
                    if index == reply.hang_after:
                        fake.release.wait()
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client went away (closed early or timed out)

    return Handler
