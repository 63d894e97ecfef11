"""The console's local HTTP API and dashboard (aiohttp, which ccxt already brings), a companion
process reading the state file a session writes (docs/console.md):

    RULEBOOK_CONSOLE_TOKEN=... python -m engine.live serve --state state/default-paper.sqlite

Security by default: bound to 127.0.0.1 (another address is allowed, with a warning); read-only
views on GET, opened on a read-only SQLite connection, so no GET can change anything; operator
actions only on POST with ``Authorization: Bearer <token>``, the token read from an environment
variable and compared in constant time (no token configured: every action is refused); no
endpoint takes a path or reads any file but the state file's views and the one dashboard page;
every refused request is logged (method, path, peer, status) without its headers or token.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from aiohttp import web

from engine.live import controls
from engine.live.console import status as views
from engine.live.store import StateStore

log = logging.getLogger("rulebook.console")
PAGE = Path(__file__).with_name("dashboard.html")
# what the page may load: itself only (no CDN, no other host), inline script and style
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_LIMIT = 5000

# (method, path, what) for docs/console.md and the report
ENDPOINTS = [
    ("GET", "/", "the dashboard (one static page, refreshing itself)"),
    ("GET", "/api/status", "heartbeat, last cycle, equity, cash, positions, open orders, PnL, halts, burn-in, alerts"),
    ("GET", "/api/positions", "held positions with unrealised PnL"),
    ("GET", "/api/orders", "open orders (?all=1: the newest ?limit=200 of every status)"),
    ("GET", "/api/fills", "the newest fills (?limit=200)"),
    ("GET", "/api/equity", "the equity curve, one point per cycle (?limit=2000)"),
    ("GET", "/api/pnl", "PnL today, this week, since start"),
    ("GET", "/api/alerts", "the newest alerts (?limit=20)"),
    ("GET", "/api/why", "why ?symbol=S was (not) traded at ?t=bar index or ISO time, from the stored trace"),
    ("GET", "/api/controls", "operator actions: who, when, via, applied"),
    ("GET", "/metrics", "Prometheus metrics (engine/live/console/metrics.py)"),
    ("POST", "/api/control/pause", "pause entries (bearer token)"),
    ("POST", "/api/control/resume", "resume: pause and kill switch off (bearer token)"),
    ("POST", "/api/control/kill", "kill switch on (bearer token)"),
    ("POST", "/api/control/reload", "reload the rule files at the next cycle (bearer token)"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _peer(request: web.Request) -> str:
    return request.remote or "unknown"


@web.middleware
async def _guard(request: web.Request, handler):
    """Security headers on every answer; every refusal logged without headers (so without the token)."""
    try:
        resp = await handler(request)
    except web.HTTPException as e:
        if e.status >= 400:
            log.warning("refused %s %s from %s: %d %s", request.method, request.path, _peer(request), e.status,
                        e.reason)
        e.headers["Cache-Control"] = "no-store"
        raise
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _int_arg(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise _bad(f"query parameter {name} is {raw!r}; expected an integer") from None
    if not 1 <= v <= MAX_LIMIT:
        raise _bad(f"query parameter {name} is {v}; expected 1 to {MAX_LIMIT}")
    return v


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _unavailable(message: str) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=json.dumps({"error": message}), content_type="application/json")


def _json(data) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), content_type="application/json")


class Console:
    """The routes over one state file; ``token`` None refuses every operator action."""

    def __init__(self, state: Path, token: str | None, token_env: str = "RULEBOOK_CONSOLE_TOKEN"):
        self.state = Path(state)
        self._token = token.encode() if token else None
        self.token_env = token_env
        self.page = PAGE.read_bytes()  # read once at start: no route reads a file per request

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_guard], client_max_size=4096)
        view = lambda fn: self._view(fn)
        app.add_routes([
            web.get("/", self.index),
            web.get("/api/status", view(lambda st, q: views.status(st))),
            web.get("/api/positions", view(lambda st, q: views.positions(st))),
            web.get("/api/orders", view(lambda st, q: views.orders(st, open_only=q.query.get("all") != "1",
                                                                    limit=_int_arg(q, "limit", 200)))),
            web.get("/api/fills", view(lambda st, q: views.fills(st, _int_arg(q, "limit", 200)))),
            web.get("/api/equity", view(lambda st, q: views.equity(st, _int_arg(q, "limit", 2000)))),
            web.get("/api/pnl", view(lambda st, q: views.pnl(st))),
            web.get("/api/alerts", view(lambda st, q: views.alerts(st, _int_arg(q, "limit", 20)))),
            web.get("/api/why", view(self._why)),
            web.get("/api/controls", view(lambda st, q: controls.history(st, _int_arg(q, "limit", 50)))),
            web.get("/metrics", self.metrics),
            *[web.post(f"/api/control/{a}", self._control(a)) for a in controls.ACTIONS],
        ])
        return app

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self.page, content_type="text/html", charset="utf-8")

    def _view(self, fn: Callable) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            try:
                st = StateStore.reader(self.state)  # read-only: a GET cannot write, whatever it runs
            except (FileNotFoundError, sqlite3.Error) as e:
                raise _unavailable(f"the state file cannot be opened: {e}") from None
            try:
                return _json(fn(st, request))
            except ValueError as e:
                raise _bad(str(e)) from None
            except sqlite3.OperationalError as e:  # a file a session is still creating
                raise _unavailable(f"the state file is not ready: {e}") from None
            finally:
                st.close()
        return handler

    @staticmethod
    def _why(st, request: web.Request):
        sym, t = request.query.get("symbol"), request.query.get("t")
        if not sym or not t:
            raise ValueError("/api/why needs ?symbol=SYMBOL&t=BAR_INDEX_OR_ISO_TIME")
        return views.why(st, sym, t)

    async def metrics(self, request: web.Request) -> web.Response:
        from engine.live.console.metrics import exposition
        try:
            body, ctype = exposition(self.state)
        except ImportError:
            raise web.HTTPNotImplemented(text="prometheus-client is not installed: pip install -e '.[console]'\n")
        except (FileNotFoundError, sqlite3.Error) as e:
            raise _unavailable(f"the state file cannot be read: {e}") from None
        return web.Response(body=body, headers={"Content-Type": ctype})

    def authorised(self, request: web.Request) -> bool:
        if self._token is None:
            return False
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        # compare_digest on bytes of any length: no early exit on the first differing character
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def _control(self, action: str) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            if not self.authorised(request):
                why = "a bearer token" if self._token else f"the console started with ${self.token_env} set"
                raise web.HTTPUnauthorized(text=json.dumps({"error": f"{action} needs {why}"}),
                                           content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
            who = ""
            if request.can_read_body:
                try:
                    who = str((await request.json()).get("who") or "")[:80]
                except (ValueError, AttributeError):
                    raise _bad('the body, if any, is JSON like {"who": "alice"}') from None
            st = StateStore(self.state)
            try:
                n = controls.request(st, action, who=f"{who or 'operator'}@{_peer(request)}", via="api")
            finally:
                st.close()
            log.info("operator action %s #%d from %s", action, n, _peer(request))
            return _json({"action": action, "id": n, "applied": "at the loop's next cycle"})
        return handler


class ConsoleServer:
    """The console served from a thread with its own event loop (tests and ``serve``); port 0 = any free port."""

    def __init__(self, state: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 token_env: str = "RULEBOOK_CONSOLE_TOKEN"):
        if not is_loopback(host):
            log.warning("console bound to %s, not loopback: anyone who can reach this address sees the account "
                        "(operator actions still need the token)", host)
        self.console = Console(state, token, token_env)
        self.host, self.port = host, port
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = web.AppRunner(self.console.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]  # the bound port (port 0: the one the OS chose)
        except BaseException as e:  # noqa: BLE001 - handed to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "ConsoleServer":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def serve(state: Path, host: str, port: int, token_env: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = os.environ.get(token_env) or None
    if token is None:
        log.warning("$%s is not set: the console is read-only (every operator action is refused)", token_env)
    try:
        srv = ConsoleServer(state, host, port, token, token_env).start()
    except OSError as e:
        print(f"error: cannot listen on {host}:{port} ({e.strerror or e})", flush=True)
        return 2
    print(f"console for {state} at {srv.url}/", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    srv.stop()
    return 0
