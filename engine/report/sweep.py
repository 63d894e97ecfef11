"""The sweep report: one row per multirun job, written at the sweep root by a Hydra callback.

Register it in the Hydra config (conf/hydra/...)::

    hydra:
      callbacks:
        sweep_report:
          _target_: engine.report.sweep.SweepReportCallback

It scans the sweep directory for each job's ``results.json`` (a ``mode=walkforward`` job's
``walkforward.json``: its row holds the stitched out-of-sample metrics, DSR and PBO; or the
``error.json`` a failed job leaves: ``{"error": msg, "overrides": [...]}``) and writes ``sweep.json`` and
``sweep.html`` beside the job directories. ``python -m engine.report.sweep DIR`` does the
same by hand.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from markupsafe import Markup

from engine.config.secrets import redact_override, scrub, secret_values
from engine.report.charts import scatter_chart
from engine.report.heatmap import heatmap
from engine.report.errors import ReportError
from engine.report.jsonio import atomic_write_text, dumps
from engine.report.metrics import HEADLINE, METRIC_DEFINITIONS, bar_returns, bars_per_year
from engine.report.render import render
from engine.sweep.job import ERROR_FILE, PRUNED_FILE, RESULT_FILES

log = logging.getLogger(__name__)

MAX_DEPTH = 3  # job dirs sit at <sweep>/<num> by default; allow a custom hydra.sweep.subdir a little deeper
CHART_METRICS = ("total_return", "sharpe", "sortino", "cagr", "calmar", "max_drawdown", "win_rate",
                 "profit_factor", "expectancy", "fees_paid")


@dataclass
class RunRow:
    id: str  # the job directory relative to the sweep root, e.g. "3"
    status: str  # "ok" | "failed" | "pruned" (an Optuna trial its pruner stopped part-way)
    overrides: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: str | None = None  # relative link to the job's report.html
    error: str | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)  # the run's diagnostics (code, message)
    kind: str | None = None  # "backtest" (results.json) or "walkforward" (walkforward.json); None: failed
    statistics: dict[str, Any] | None = None  # a walk-forward's out-of-sample DSR and PBO

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "kind": self.kind, "overrides": self.overrides,
                "params": self.params, "metrics": self.metrics, "statistics": self.statistics,
                "report": self.report, "error": self.error, "warnings": self.warnings}


def _natural(s: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s) if p)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read JSON ({exc}); expected a results/error file a job wrote") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: holds a {type(data).__name__}; expected a JSON object")
    return data


def _hydra_overrides(job_dir: Path) -> list[str]:
    f = job_dir / ".hydra" / "overrides.yaml"
    if f.is_file():
        loaded = yaml.safe_load(f.read_text(encoding="utf-8")) or []
        return [str(o) for o in loaded] if isinstance(loaded, list) else []
    return []


def parse_override(override: str) -> tuple[str, Any] | None:
    """``"universe.params.top=10"`` -> ``("universe.params.top", 10)``; values read as YAML scalars."""
    key, sep, raw = override.partition("=")
    if not sep:
        return None
    key = key.lstrip("+~")
    try:
        value = yaml.safe_load(raw) if raw else raw
    except yaml.YAMLError:
        value = raw
    if not isinstance(value, (int, float, str, bool)) or value is None:
        value = raw
    return key, value


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories under the sweep root holding a result file, error.json or pruned.json, in natural order."""
    found = set()
    for name in (*RESULT_FILES, ERROR_FILE, PRUNED_FILE):
        for f in sweep_dir.rglob(name):
            rel = f.parent.relative_to(sweep_dir)
            if f.parent != sweep_dir and len(rel.parts) <= MAX_DEPTH and ".hydra" not in rel.parts:
                found.add(f.parent)
    return sorted(found, key=lambda p: _natural(p.relative_to(sweep_dir).as_posix()))


def _warnings(items: Any) -> list[dict[str, str]]:
    return [{"code": str(d.get("code", "")), "message": str(d.get("message", ""))}
            for d in items or [] if isinstance(d, dict)]


def _walkforward_row(rid: str, job_dir: Path, wf_file: Path) -> tuple[RunRow, list]:
    data = _read_json(wf_file)
    metrics = (data.get("out_of_sample") or {}).get("metrics")
    if not isinstance(metrics, dict):
        raise ReportError(f"{wf_file}: has no 'out_of_sample.metrics' object; expected the walkforward.json "
                          f"mode=walkforward writes")
    st = data.get("statistics") or {}
    stats = {"dsr": (st.get("deflated_sharpe") or {}).get("dsr"), "pbo": (st.get("pbo") or {}).get("pbo")}
    report = f"{rid}/walkforward.html" if (job_dir / "walkforward.html").is_file() else None
    row = RunRow(rid, "ok", [], metrics={k: metrics.get(k) for k in HEADLINE}, report=report,
                 warnings=_warnings(data.get("warnings")), kind="walkforward", statistics=stats)
    return row, (data.get("run") or {}).get("overrides") or _hydra_overrides(job_dir)


def read_run(sweep_dir: Path, job_dir: Path) -> RunRow:
    rid = job_dir.relative_to(sweep_dir).as_posix()
    results_file, error_file, pruned_file = job_dir / "results.json", job_dir / ERROR_FILE, job_dir / PRUNED_FILE
    wf_file = job_dir / "walkforward.json"
    if wf_file.is_file() and not results_file.is_file():
        row, overrides = _walkforward_row(rid, job_dir, wf_file)
    elif results_file.is_file():
        data = _read_json(results_file)
        metrics = data.get("metrics")
        if not isinstance(metrics, dict):
            raise ReportError(f"{results_file}: has no 'metrics' object; expected the results.json a run writes")
        overrides = (data.get("run") or {}).get("overrides") or _hydra_overrides(job_dir)
        report = f"{rid}/report.html" if (job_dir / "report.html").is_file() else None
        row = RunRow(rid, "ok", [], metrics={k: metrics.get(k) for k in HEADLINE}, report=report,
                     warnings=_warnings(data.get("diagnostics")), kind="backtest")
    else:
        pruned = pruned_file.is_file() and not error_file.is_file()
        data = _read_json(pruned_file if pruned else error_file)
        overrides = data.get("overrides") or _hydra_overrides(job_dir)
        row = RunRow(rid, "pruned" if pruned else "failed", [], error=str(data.get("error") or "unknown error"))
    row.overrides = [redact_override(str(o)) for o in overrides]
    row.params = dict(p for p in map(parse_override, row.overrides) if p is not None)
    return row


def swept_params(rows: Sequence[RunRow]) -> list[str]:
    """Override keys whose value differs between runs (a key missing from a run counts as a value)."""
    keys = sorted({k for r in rows for k in r.params})
    return [k for k in keys if len({json.dumps(r.params.get(k), sort_keys=True) for r in rows}) > 1]


def best_runs(rows: Sequence[RunRow]) -> dict[str, str]:
    """metric -> id of the best successful run (higher or lower is better per METRIC_DEFINITIONS)."""
    best: dict[str, str] = {}
    for metric in HEADLINE:
        higher = METRIC_DEFINITIONS[metric][2]
        if higher is None:
            continue
        scored = [(r.metrics.get(metric), i) for i, r in enumerate(rows) if r.status == "ok"]
        scored = [(v, i) for v, i in scored if isinstance(v, (int, float)) and math.isfinite(v)]
        if scored:
            # ties go to the earliest run: sort on (value, index) with the sign flipped for "higher"
            v, i = min(scored, key=lambda t: ((-t[0] if higher else t[0]), t[1]))
            best[metric] = rows[i].id
    return best


def _metrics_and_equity(job_dir: Path) -> tuple[dict, list]:
    """A finished job's metrics and [time, equity] pairs: a backtest's, or a walk-forward's
    stitched out-of-sample ones."""
    if not (job_dir / "results.json").is_file() and (job_dir / "walkforward.json").is_file():
        oos = _read_json(job_dir / "walkforward.json").get("out_of_sample") or {}
        return oos.get("metrics") or {}, oos.get("equity") or []
    data = _read_json(job_dir / "results.json")
    return data.get("metrics") or {}, data.get("equity") or []


def best_run_dsr(sweep_dir: Path, rows: Sequence[RunRow], best_id: str | None) -> dict[str, Any] | None:
    """The deflated Sharpe ratio of the best run by Sharpe (docs/metrics.md): N = the successful
    runs, V = the variance of their per-bar Sharpe ratios, moments from the best run's equity
    (a walk-forward's: its stitched out-of-sample equity)."""
    if best_id is None:
        return None
    metrics, equity = _metrics_and_equity(Path(sweep_dir) / best_id)
    try:
        per_bar = 1.0 / math.sqrt(bars_per_year(str(metrics.get("timeframe"))))
    except ValueError:
        return None  # no timeframe recorded: no per-bar Sharpe ratios
    returns = bar_returns([float(v) for _, v in equity], float(metrics.get("initial_equity") or 0.0) or 1.0)
    return deflated_best(best_id, returns, [r.metrics.get("sharpe") for r in rows if r.status == "ok"], per_bar)


def deflated_best(best_id: str, returns, sharpes: Sequence[Any], per_bar: float) -> dict[str, Any]:
    """DSR of the best run from its per-bar returns and every run's annualised Sharpe ratio
    (``per_bar`` = 1 / sqrt(bars per year) turns those into per-bar ones)."""
    from engine.research.overfit import deflated_sharpe, moments, trial_sharpe_variance

    per = [x * per_bar if isinstance(x, (int, float)) else None for x in sharpes]
    return {"run": best_id, **deflated_sharpe(moments(returns), len(sharpes), trial_sharpe_variance(per)).to_json()}


def summarise(sweep_dir: Path) -> dict[str, Any]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"sweep directory {sweep_dir} does not exist; expected a Hydra multirun directory")
    rows = [read_run(sweep_dir, d) for d in job_dirs(sweep_dir)]
    best = best_runs(rows)
    return {
        "sweep_dir": sweep_dir.name,
        "n_runs": len(rows),
        "n_failed": sum(r.status == "failed" for r in rows),
        "n_pruned": sum(r.status == "pruned" for r in rows),
        "params": swept_params(rows),
        "metrics": list(HEADLINE),
        "best": best,
        "deflated_sharpe": best_run_dsr(sweep_dir, rows, best.get("sharpe")),
        "runs": [r.to_json() for r in rows],
    }


def sweep_context(summary: dict[str, Any]) -> dict[str, Any]:
    runs, params, best = summary["runs"], summary["params"], summary["best"]
    ok = [r for r in runs if r["status"] == "ok"]
    charts = []
    for metric in CHART_METRICS:
        label, kind, _higher, _ = METRIC_DEFINITIONS[metric]
        per_param = []
        for p in params:
            pts = [r for r in ok if p in r["params"]]
            if not pts:
                continue
            hl = next((i for i, r in enumerate(pts) if r["id"] == best.get(metric)), None)
            per_param.append({"param": p, "svg": Markup(scatter_chart(
                [r["params"][p] for r in pts], [r["metrics"].get(metric) for r in pts], x_name=p, y_name=label,
                y_kind="pct" if kind == "pct" else ("money" if kind == "money" else "num"),
                labels=[f"run {r['id']}" for r in pts], highlight=hl))})
        heat = heatmap(ok, params[0], params[1], metric, _higher) if len(params) == 2 else None
        charts.append({"metric": metric, "label": label, "kind": kind, "charts": per_param, "heatmap": heat})
    columns = [{"key": m, "label": METRIC_DEFINITIONS[m][0], "kind": METRIC_DEFINITIONS[m][1]} for m in HEADLINE]
    return {"title": f"rulebook sweep: {summary['sweep_dir']}", "summary": summary, "runs": runs, "params": params,
            "best": best, "columns": columns,
            "definitions": {k: v[3] for k, v in METRIC_DEFINITIONS.items()}, "charts": charts, "default_metric": "sharpe" if "sharpe" in best
            else (next(iter(best), CHART_METRICS[0]))}


def write_sweep_report(sweep_dir: Path, secrets: Sequence[str] = ()) -> dict[str, Path]:
    """Write sweep.json and sweep.html at the sweep root; return their paths.

    ``secrets``: values to mask wherever they appear (a failed job's error text included).
    """
    sweep_dir = Path(sweep_dir)
    summary = summarise(sweep_dir)
    html = render("sweep.html.j2", sweep_context(summary))
    return {"sweep_json": atomic_write_text(sweep_dir / "sweep.json", scrub(dumps(summary), secrets)),
            "sweep_html": atomic_write_text(sweep_dir / "sweep.html", scrub(html, secrets))}


try:  # the callback base class lives in Hydra; the rest of this module works without it
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a declared dependency
    _HydraCallback = object


class SweepReportCallback(_HydraCallback):
    """Hydra callback: after a multirun, summarise every job into sweep.json and sweep.html."""

    def __init__(self, **_: Any) -> None:
        pass

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            from omegaconf import OmegaConf
            plain = OmegaConf.to_container(config, resolve=False) if OmegaConf.is_config(config) else {}
            plain.pop("hydra", None)
            paths = write_sweep_report(sweep_dir, secrets=secret_values(plain, os.environ, named_only=True))
        except ReportError as exc:
            log.error("sweep report not written: %s", exc)
            return
        log.info("sweep report: %s", paths["sweep_html"])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m engine.report.sweep SWEEP_DIR", file=sys.stderr)
        return 2
    try:
        paths = write_sweep_report(Path(args[0]))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in paths.values():
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
