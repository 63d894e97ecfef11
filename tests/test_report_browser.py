"""Both reports in a real headless Chromium: no console error, no network request, a screenshot.

Talks the Chrome DevTools Protocol over a minimal stdlib websocket client (tests/helpers/browser.py),
so it needs nothing but the ``chromium`` binary. Skipped, with the reason, where none is installed.
Set RULEBOOK_SCREENSHOT_DIR to keep the PNGs (CI uploads them as artifacts).
"""
from __future__ import annotations

import json

import pytest

from engine.report.outputs import write_run_outputs
from tests.helpers.browser import launch
from tests.helpers.results import make_results, make_sweep

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = launch(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.quit()


SORTED_DESC = """(() => {
  const t = document.getElementById(%r);
  const th = Array.from(t.tHead.rows[0].cells).find(h => h.textContent.trim() === %r);
  const col = th.cellIndex;
  th.click(); th.click();
  const v = Array.from(t.tBodies[0].rows).map(r => r.cells[col] ? r.cells[col].getAttribute('data-v') : null)
                 .filter(x => x !== '' && x !== null).map(Number);
  return {state: th.getAttribute('aria-sort'), n: v.length,
          sorted: v.every((x, i) => i === 0 || v[i - 1] >= x)};
})()"""


def test_detector_catches_console_errors_and_requests(browser, tmp_path):
    """The checks below can fail: a page that errors and fetches is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><img src="http://127.0.0.1:9/pixel.png">'
                   '<script>console.error("boom"); undefined_function();</script>')
    page = browser.open(bad.as_uri())
    assert any(u.startswith("http://127.0.0.1:9/") for u in page.network_requests())
    errors = " | ".join(page.console_errors())
    assert "boom" in errors and "undefined_function" in errors


def test_backtest_report_in_chromium(browser, tmp_path):
    results = make_results(n_bars=8784, n_symbols=30, n_trades=300, seed=4)
    paths = write_run_outputs(tmp_path / "run", results, timing={"elapsed_seconds": 12.5})
    page = browser.open(paths["report_html"].as_uri())
    assert page.network_requests() == []
    assert page.console_errors() == []
    assert page.evaluate("document.querySelectorAll('svg.chart').length") == 3
    sort = page.evaluate(SORTED_DESC % ("trades-table", "Return"))
    assert sort == {"state": "descending", "n": len(results["round_trips"]), "sorted": True}
    tip = page.evaluate("""(() => { const svg = document.getElementById('chart-equity');
        const r = svg.getBoundingClientRect();
        svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width * 0.6, clientY: r.top + 40,
                                                        bubbles: true}));
        const tip = svg.parentElement.querySelector('.tip');
        return {hidden: tip.hidden, text: tip.textContent}; })()""")
    assert not tip["hidden"] and "Strategy:" in tip["text"] and "Buy & hold:" in tip["text"] and "UTC" in tip["text"]
    assert page.console_errors() == []
    shot = page.screenshot(tmp_path / "backtest_report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_sweep_report_in_chromium(browser, tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    from engine.report.sweep import write_sweep_report
    paths = write_sweep_report(sweep)
    page = browser.open(paths["sweep_html"].as_uri())
    assert page.network_requests() == []
    assert page.console_errors() == []
    sort = page.evaluate(SORTED_DESC % ("sweep-table", "Sharpe"))
    assert sort["state"] == "descending" and sort["sorted"] and sort["n"] == 6
    visible = page.evaluate("""(() => { const p = document.getElementById('metric-pick');
        p.value = 'total_return'; p.dispatchEvent(new Event('change'));
        return Array.from(document.querySelectorAll('[data-metric]')).filter(e => !e.hidden)
               .map(e => e.getAttribute('data-metric')); })()""")
    assert visible == ["total_return"]
    page.screenshot(tmp_path / "sweep_report.png")


def test_walkforward_report_in_chromium(browser, tmp_path):
    from tests.helpers.walkforward import run_walkforward_mode

    run_walkforward_mode(tmp_path)
    doc = json.loads((tmp_path / "walkforward.json").read_text())
    page = browser.open((tmp_path / "walkforward.html").as_uri())
    assert page.network_requests() == []
    assert page.console_errors() == []
    shown = page.evaluate("""(() => ({dsr: document.getElementById('dsr').textContent.trim(),
        pbo: document.getElementById('pbo').textContent.trim(),
        warn: !!document.getElementById('warnings'),
        chart: document.querySelectorAll('#oos-equity path.line').length,
        folds: document.getElementById('folds-table').tBodies[0].rows.length}))()""")
    assert shown == {"dsr": f"{doc['statistics']['deflated_sharpe']['dsr']:,.3f}",
                     "pbo": f"{doc['statistics']['pbo']['pbo']:,.3f}",
                     "warn": bool(doc["warnings"]), "chart": 2, "folds": len(doc["folds"])}
    sort = page.evaluate(SORTED_DESC % ("folds-table", "OOS Sharpe"))
    assert sort["state"] == "descending" and sort["sorted"] and sort["n"] >= 1
    shot = page.screenshot(tmp_path / "walkforward_report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
