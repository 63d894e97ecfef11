"""What a run leaves in its directory: results.json, report.html, trades/fills/equity CSV."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from engine.config.secrets import redact, redact_override, scrub, secret_values
from engine.report.backtest_view import build_context, check_results
from engine.report.breakdown import breakdowns
from engine.report.csvout import write_csvs
from engine.report.jsonio import atomic_write_text, clean, dumps
from engine.report.options import ReportOptions
from engine.report.render import render


def prepare_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The dict results.json holds: breakdowns filled in, secrets masked, JSON-clean."""
    check_results(results)
    out = dict(results)
    if not out.get("breakdown"):
        out["breakdown"] = breakdowns(out.get("round_trips") or [])
    run = dict(out.get("run") or {})
    if "config" in run:
        run["config"] = redact(run["config"])
    if "overrides" in run:
        run["overrides"] = [redact_override(str(o)) for o in run["overrides"] or []]
    out["run"] = run
    out.pop("timing", None)  # elapsed time differs run to run: it never goes in results.json
    return clean(out)


def render_backtest_report(results: Mapping[str, Any], timing: Mapping[str, Any] | None = None,
                           options: ReportOptions = ReportOptions()) -> str:
    return render("backtest.html.j2", build_context(results, timing, options))


def write_run_outputs(run_dir: Path, results: Mapping[str, Any], timing: Mapping[str, Any] | None = None,
                      options: ReportOptions | None = None) -> dict[str, Path]:
    """Write results.json (byte-deterministic), report.html and the CSVs; return their paths.

    ``timing`` ({"elapsed_seconds": x}) is shown in the report only, never in results.json.
    """
    options = options or ReportOptions()
    run_dir = Path(run_dir)
    data = prepare_results(results)
    # the secrets the config points at (api_key_env: VAR -> $VAR) are masked wherever they appear
    secrets = secret_values((results.get("run") or {}).get("config") or {}, os.environ, named_only=True)
    paths = {"results_json": atomic_write_text(run_dir / "results.json",
                                               scrub(dumps(data, cleaned=True), secrets))}
    if options.html:
        paths["report_html"] = atomic_write_text(run_dir / "report.html",
                                                 scrub(render_backtest_report(data, timing, options), secrets))
    if options.csv:
        paths.update(write_csvs(run_dir, data))
    return paths
