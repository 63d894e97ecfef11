"""Headless Chromium over the Chrome DevTools Protocol, through a minimal stdlib websocket client,
so a browser test needs nothing but the ``chromium`` binary (find_chromium() None: skip, with the
reason). A page records its console errors and network requests. Set RULEBOOK_SCREENSHOT_DIR to keep
the PNGs (CI uploads them as artifacts)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

LOCAL_SCHEMES = {"file", "data", "about", "blob"}


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class WebSocket:
    """Just enough RFC 6455 for CDP: text frames, client masking, fragmentation, ping/close."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"websocket handshake refused: {status!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str, opcode: int = 0x1) -> None:
        payload = text.encode() if isinstance(text, str) else text
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:
                self.send(data, 0xA)
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            message += data
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """Headless Chromium driven over CDP; records console errors and network requests per page."""

    def __init__(self, binary: str, profile: Path):
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-sync", "--disable-default-apps", "--disable-extensions", "--mute-audio",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.quit()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = WebSocket(f"ws://127.0.0.1:{port}{path}")
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_event(self, method: str, session: str, timeout: float = 30.0) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        self.ws.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = json.loads(self.ws.recv())
            self.events.append(e)
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        raise TimeoutError(method)

    def drain(self, seconds: float) -> None:
        """Collect events for a while (late requests, errors from timers)."""
        self.ws.sock.settimeout(0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except (socket.timeout, TimeoutError):
                continue
        self.ws.sock.settimeout(30)

    def open(self, url: str, width: int = 1200, height: int = 900) -> "Page":
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        self.drain(0.7)
        return Page(self, session)

    def quit(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Page:
    def __init__(self, browser: Browser, session: str):
        self.b, self.session = browser, session

    def _mine(self, method: str) -> list[dict]:
        return [e["params"] for e in self.b.events if e.get("method") == method and e.get("sessionId") == self.session]

    def network_requests(self) -> list[str]:
        urls = [p["request"]["url"] for p in self._mine("Network.requestWillBeSent")]
        return [u for u in urls if urlparse(u).scheme not in LOCAL_SCHEMES]

    def console_errors(self) -> list[str]:
        errors = [" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                  for p in self._mine("Runtime.consoleAPICalled") if p.get("type") in ("error", "assert")]
        errors += [p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"]
                   for p in self._mine("Runtime.exceptionThrown")]
        errors += [p["entry"]["text"] for p in self._mine("Log.entryAdded") if p["entry"]["level"] == "error"]
        return errors

    def evaluate(self, expression: str):
        res = self.b.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session)
        if "exceptionDetails" in res:
            raise AssertionError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 7000) -> Path:
        size = self.b.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.b.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                           session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))
        keep = os.environ.get("RULEBOOK_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path


def launch(profile: Path) -> Browser:
    """A headless Chromium on ``profile``; the calling test is skipped, with the reason, without one."""
    binary = find_chromium()
    if binary is None:
        import pytest
        pytest.skip("no chromium found (/usr/bin/chromium or on PATH): install Debian's `chromium` package "
                    "to run the browser tests; CI's .ci/run does")
    return Browser(binary, profile)
