"""Factories for the console tests: a console server on 127.0.0.1 port 0 over a state file, and
plain HTTP requests to it (stdlib urllib: the test is a client like any other)."""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


def request(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None,
            timeout: float = 30.0) -> Answer:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Answer(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.read(), dict(e.headers))


def new_token() -> str:
    return "rbtok-" + secrets.token_hex(16)


def console_server(state: Path, token: str | None):
    """A started ConsoleServer (call ``.stop()``) on 127.0.0.1, any free port."""
    from engine.live.console.server import ConsoleServer
    return ConsoleServer(state, "127.0.0.1", 0, token).start()


def sqlite_dump(path: Path) -> list[str]:
    """Every row of every table of a state file (to show a request changed nothing)."""
    import sqlite3
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def read_state(path: Path, fn):
    """``fn(store)`` on a read-only view of ``path``; None while the file or its tables do not exist yet."""
    import sqlite3

    from engine.live.store import StateStore
    try:
        st = StateStore.reader(path)
    except (FileNotFoundError, sqlite3.Error):
        return None
    try:
        return fn(st)
    except sqlite3.OperationalError:
        return None
    finally:
        st.close()


def files_containing(root: Path, needle: str) -> list[Path]:
    b = needle.encode()
    return [p for p in Path(root).rglob("*") if p.is_file() and b in p.read_bytes()]


class RunningPaperSession:
    """A paper loop in its own process against an emulator in another (tests/helpers/live.py),
    for ``cycles`` bars of 1m at the emulator's speed; ``close()`` stops both."""

    def __init__(self, tmp: Path, cycles: int = 200, speed: float = 120.0):
        from tests.helpers.live import EmulatorProcess, start_loop, wait_started
        from tests.helpers.runs import compose_config
        self.emu = EmulatorProcess(tmp, speed=speed)
        try:
            cfg = compose_config(self.emu.overrides("paper", tmp / "state", cycles=cycles))
            cfg_file = tmp / "paper.json"
            cfg_file.write_text(json.dumps(cfg))
            self.log = tmp / "loop.log"
            self.proc = start_loop(cfg_file, "paper", self.log)
            wait_started(self.log, 1)
        except BaseException:
            self.emu.close()
            raise
        self.state = tmp / "state" / "default-paper.sqlite"

    def close(self) -> None:
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # stops after the current cycle
            try:
                self.proc.wait(30)
            except Exception:  # noqa: BLE001 - a hung loop is killed
                self.proc.kill()
                self.proc.wait()
        self.emu.close()
