"""A local stand-in for webhook, Slack, Discord and Telegram endpoints: an HTTP server on
127.0.0.1 (port 0) that records every POST and answers as told (tests never reach a chat service)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    body: dict
    wall_s: float


@dataclass
class Receiver:
    """``fail``: a list of status codes answered to the next requests (then 200); ``down``: answer 503."""

    fail: list[int] = field(default_factory=list)
    down: bool = False
    got: list[Received] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with rec.lock:
                    code = 503 if rec.down else (rec.fail.pop(0) if rec.fail else 200)
                    if code == 200:
                        rec.got.append(Received(self.path, json.loads(raw or b"{}"), time.time()))
                    else:
                        rec.refused += 1
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "0.05")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if code == 200 else b'{"ok": false}')

            def log_message(self, *a):  # quiet
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()

    def bodies(self, prefix: str = "") -> list[dict]:
        with self.lock:
            return [r.body for r in self.got if r.path.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
