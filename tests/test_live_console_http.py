"""The console's HTTP API and dashboard, a real aiohttp server on 127.0.0.1 (port 0) over a paper
session's state file: read-only views, operator actions behind a bearer token, the security rules."""
from __future__ import annotations

import json
import logging

import pytest

from engine.live.console import status as views
from engine.live.console.server import ENDPOINTS, ConsoleServer, is_loopback
from engine.live.store import StateStore
from tests.helpers.console import console_server, files_containing, new_token, read_state, request, sqlite_dump
from tests.helpers.live import run_mode

ACTIONS = ("pause", "resume", "kill", "reload")
READS = [p for m, p, _ in ENDPOINTS if m == "GET"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    run_mode("paper", tmp / "state", tmp / "out", cycles=6)
    return tmp


@pytest.fixture()
def served(session, tmp_path):
    """A copy of the session's state file, served with a fresh token."""
    f = tmp_path / "state" / "default-paper.sqlite"
    f.parent.mkdir()
    f.write_bytes((session / "state" / "default-paper.sqlite").read_bytes())
    token = new_token()
    srv = console_server(f, token)
    yield srv, f, token
    srv.stop()


def test_every_read_endpoint_answers_json_from_the_state(served):
    srv, f, _ = served
    st = StateStore.reader(f)
    try:
        t, sym = st.db.execute("SELECT t, symbol FROM decisions ORDER BY t LIMIT 1").fetchone()
        expect = {"/api/positions": views.positions(st), "/api/pnl": views.pnl(st), "/api/equity": views.equity(st),
                  "/api/orders": views.orders(st), "/api/fills": views.fills(st), "/api/alerts": views.alerts(st)}
    finally:
        st.close()
    for path in READS:
        url = srv.url + path + (f"?symbol={sym}&t={t}" if path == "/api/why" else "")
        r = request(url)
        assert r.status == 200, (path, r.body[:200])
        if path == "/":
            assert r.headers["Content-Type"].startswith("text/html") and b"rulebook console" in r.body
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
            continue
        if path == "/metrics":  # tests/test_live_console_metrics.py reads it
            assert r.headers["Content-Type"].startswith("text/plain")
            continue
        data = r.json()
        if path in expect:
            assert data == json.loads(json.dumps(expect[path], default=str)), path
    s = request(srv.url + "/api/status").json()
    assert s["mode"] == "paper" and s["heartbeat"]["state"] == "stopped" and len(s["positions"]) > 0
    w = request(f"{srv.url}/api/why?symbol={sym}&t={t}").json()
    assert w["symbol"] == sym and w["t"] == t and w["decisions"]
    assert len(request(srv.url + "/api/equity?limit=2").json()) == 2


def test_bad_queries_get_a_400_that_says_what_is_expected(served):
    srv, _, _ = served
    r = request(srv.url + "/api/fills?limit=lots")
    assert r.status == 400 and "expected an integer" in r.json()["error"]
    assert request(srv.url + "/api/alerts?limit=0").status == 400
    r = request(srv.url + "/api/why?symbol=NOPE/USDC&t=1")
    assert r.status == 400 and "not traded by this account" in r.json()["error"]
    assert request(srv.url + "/api/why").status == 400


def test_control_endpoints_refuse_no_token_and_a_wrong_token(served, caplog):
    srv, f, token = served
    before = sqlite_dump(f)
    caplog.set_level(logging.WARNING, logger="rulebook.console")
    wrong = [{}, {"Authorization": "Bearer " + token[:-1] + "x"}, {"Authorization": "Bearer"},
             {"Authorization": "Basic " + token}, {"Authorization": token}, {"Authorization": "Bearer " + token + "x"}]
    for action in ACTIONS:
        for headers in wrong:
            r = request(f"{srv.url}/api/control/{action}", "POST", headers, b"{}")
            assert r.status == 401, (action, headers)
    assert sqlite_dump(f) == before, "a refused action changed the state file"
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == len(ACTIONS) * len(wrong)
    assert all("401" in m and "/api/control/" in m for m in refused)
    assert not any(token in r.getMessage() or token[:-1] in r.getMessage() for r in caplog.records)


def test_a_console_without_a_token_refuses_every_action(session, tmp_path):
    f = tmp_path / "s.sqlite"
    f.write_bytes((session / "state" / "default-paper.sqlite").read_bytes())
    srv = console_server(f, None)
    try:
        for action in ACTIONS:
            r = request(f"{srv.url}/api/control/{action}", "POST", {"Authorization": "Bearer "}, b"")
            assert r.status == 401 and "RULEBOOK_CONSOLE_TOKEN" in r.json()["error"]
    finally:
        srv.stop()


def test_get_changes_nothing(served):
    srv, f, token = served
    before = sqlite_dump(f)
    auth = {"Authorization": "Bearer " + token}
    for path in READS:
        request(srv.url + path + "?symbol=BTC/USDC&t=1&all=1&limit=5", headers=auth)
    for action in ACTIONS:  # a GET on an action is not the action
        r = request(f"{srv.url}/api/control/{action}", headers=auth)
        assert r.status == 405
    assert sqlite_dump(f) == before


def test_no_endpoint_reads_a_file(served):
    srv, f, _ = served
    for path in ("/state.sqlite", "/" + f.name, "/api/../" + f.name, "/static/../../etc/passwd", "/api/status/..%2f..",
                 "/dashboard.html", "/server.py", "/%2e%2e/%2e%2e/etc/passwd", "/api/file?path=" + str(f)):
        r = request(srv.url + path)
        assert b"SQLite format 3" not in r.body and b"root:" not in r.body and b"import " not in r.body, path
        assert r.status in (404, 405) or r.headers.get("Content-Type", "").startswith("text/html"), path


def test_authorised_actions_are_recorded_with_who_and_when(served, tmp_path):
    srv, f, token = served
    auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    for action in ("pause", "kill", "resume", "reload"):
        r = request(f"{srv.url}/api/control/{action}", "POST", auth, json.dumps({"who": "alice"}).encode())
        assert r.status == 200 and r.json()["action"] == action
    r = request(f"{srv.url}/api/control/pause", "POST", {"Authorization": "Bearer " + token}, b"")
    assert r.status == 200  # no body: who is "operator"
    log = request(srv.url + "/api/controls").json()[::-1]
    assert [x["action"] for x in log] == ["pause", "kill", "resume", "reload", "pause"]
    assert all(x["via"] == "api" and x["wall_ms"] > 0 and x["applied_wall_ms"] is None for x in log)
    assert log[0]["who"] == "alice@127.0.0.1" and log[-1]["who"] == "operator@127.0.0.1"
    halts = request(srv.url + "/api/status").json()["halts"]
    assert halts["entries_paused"] is True and halts["kill_switch"] is False  # resumed, then paused again
    # the token is in no file written: the state file, its WAL, anything under the test's folders
    assert files_containing(f.parent, token) == [] and files_containing(tmp_path, token) == []


def test_non_loopback_bind_warns(tmp_path, caplog):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    caplog.set_level(logging.WARNING, logger="rulebook.console")
    ConsoleServer(tmp_path / "x.sqlite", "0.0.0.0", 0, None)  # constructed only: tests bind 127.0.0.1
    assert any("not loopback" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_a_running_paper_session_is_watched_and_paused_over_http(tmp_path):
    """Done-when of the console: a paper session against the emulator, watched (running, cycles
    advance) and paused from the API; the loop applies the pause at its next cycle."""
    from tests.helpers.console import RunningPaperSession
    from tests.helpers.wait import wait_until
    run = RunningPaperSession(tmp_path)
    token = new_token()
    srv = None
    try:
        wait_until(lambda: read_state(run.state, lambda st: st.get("state", "heartbeat")), 60,
                   "the loop's first heartbeat")
        srv = console_server(run.state, token)
        status = lambda: request(srv.url + "/api/status").json()
        first = wait_until(lambda: (s := status())["last_cycle"] and s, 60, "a first cycle")
        assert first["heartbeat"]["running"] is True and first["heartbeat"]["pid"] == run.proc.pid
        # the command line sees the same running session
        import contextlib
        import io

        from engine.live.__main__ import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["status", "--state", str(run.state), "--json"]) == 0
        cli = json.loads(out.getvalue())
        assert cli["heartbeat"]["running"] is True and cli["heartbeat"]["state"] == "running"
        wait_until(lambda: status()["last_cycle"]["t"] > first["last_cycle"]["t"], 60, "the next cycle")
        r = request(srv.url + "/api/control/pause", "POST", {"Authorization": "Bearer " + token}, b"")
        assert r.status == 200
        applied = wait_until(lambda: next((x["applied_wall_ms"] for x in status()["controls"]
                                           if x["id"] == r.json()["id"]), None), 60, "the loop applying the pause")
        assert status()["halts"]["entries_paused"] is True
        # the cycle that applied it (its decision and the stamp commit together)
        t_applied = read_state(run.state, lambda st: st.db.execute(
            "SELECT MAX(t) FROM cycles WHERE decided_wall_ms <= ?", (applied,)).fetchone()[0])
        wait_until(lambda: status()["last_cycle"]["t"] >= t_applied + 8, 60, "eight cycles after the pause")
        wanted = read_state(run.state, lambda st: sum(bool(json.loads(tr)["candidate"]) for (tr,) in st.db.execute(
            "SELECT trace FROM cycles WHERE t >= ?", (t_applied,))))
        assert wanted > 0, "the rules wanted to enter after the pause (else it proves nothing)"
        assert read_state(run.state, lambda st: st.db.execute(
            "SELECT COUNT(*) FROM orders WHERE side='buy' AND t >= ?", (t_applied,)).fetchone()[0]) == 0
    finally:
        if srv is not None:
            srv.stop()
        run.close()
    assert files_containing(tmp_path, token) == []


def test_serve_command_runs_the_console_as_a_companion_process(served, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from engine.paths import PROJECT_ROOT
    from tests.helpers.wait import LineReader
    _, f, _ = served
    token = new_token()
    err = tmp_path / "serve.log"
    p = subprocess.Popen([sys.executable, "-m", "engine.live", "serve", "--state", str(f), "--port", "0"],
                         cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=err.open("w"), text=True,
                         env={**os.environ, "RULEBOOK_CONSOLE_TOKEN": token})
    try:
        line = LineReader(p.stdout, "the console process").next(60, "its address line")
        url = line.split(" at ")[-1].strip().rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        assert request(url + "/api/status").json()["mode"] == "paper"
        assert request(url + "/api/control/kill", "POST", {"Authorization": "Bearer wrong"}, b"").status == 401
        assert request(url + "/api/control/kill", "POST", {"Authorization": "Bearer " + token}, b"").status == 200
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    log = err.read_text()
    assert "refused POST /api/control/kill from 127.0.0.1: 401" in log and token not in log
    assert files_containing(tmp_path, token) == [] and files_containing(f.parent, token) == []
