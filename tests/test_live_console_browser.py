"""The console's dashboard in a real headless Chromium, over a paper session running against the
emulator (both in their own processes): it shows the running session and refreshes by itself,
its Pause button pauses entries, no console error, no request leaves 127.0.0.1, a screenshot is kept."""
from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from tests.helpers.browser import launch
from tests.helpers.console import RunningPaperSession, console_server, new_token, read_state
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def browser(tmp_path):
    b = launch(tmp_path / "chromium-profile")
    yield b
    b.quit()


def test_dashboard_of_a_running_paper_session(browser, tmp_path):
    run = RunningPaperSession(tmp_path)
    token = new_token()
    srv = None
    try:
        wait_until(lambda: read_state(run.state, lambda st: st.db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] >= 2),
                   60, "two cycles of the paper session")
        srv = console_server(run.state, token)
        page = browser.open(srv.url + "/")
        text = lambda el: page.evaluate(f"document.getElementById({el!r}).textContent")
        wait_until(lambda: text("state") == "running", 30, "the dashboard showing the session running")
        first = page.evaluate("document.getElementById('curve').getAttribute('points').split(' ').length")
        # it refreshes by itself: the equity curve grows as cycles come in
        wait_until(lambda: page.evaluate("document.getElementById('curve').getAttribute('points').split(' ').length")
                   > first, 30, "the curve growing with new cycles")
        assert "paper" in text("title") and "equity" in text("summary")
        page.evaluate(f"""(() => {{ document.getElementById('token').value = {json.dumps(token)};
            document.querySelector('button[data-action="pause"]').click(); }})()""")
        wait_until(lambda: "recorded" in text("msg"), 10, "the pause recorded")
        wait_until(lambda: "entries paused" in text("flags"), 30, "the dashboard showing entries paused")
        wait_until(lambda: page.evaluate("""Array.from(document.querySelectorAll('#controls tbody tr'))
            .some(r => r.cells[1].textContent === 'pause' && r.cells[4].textContent !== 'pending')"""), 30,
                   "the loop applying the pause, seen on the dashboard")
        who = page.evaluate("document.querySelector('#controls tbody tr').cells[2].textContent")
        assert who == "dashboard@127.0.0.1"
        browser.drain(2.5)  # a refresh more
        hosts = {urlparse(u).hostname for u in page.network_requests()}
        assert hosts == {"127.0.0.1"}, page.network_requests()
        assert all(urlparse(u).port == srv.port for u in page.network_requests())
        assert page.console_errors() == []
        shot = page.screenshot(tmp_path / "console_dashboard.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        if srv is not None:
            srv.stop()
        run.close()
