"""Secrets come from the environment only and never appear in anything written or printed."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.config import SecretFilter, check_config, find_secret_values, install_log_redaction, redact, secret_values
from engine.config.hydra_callback import redact_override
from tests.helpers.configs import CONF_DIR, LIVE_ENV, ROOT, SECRET_KEY, SECRET_VALUE, edited, live_config, valid_config

SECRET_LINE = SECRET_VALUE.strip().splitlines()[1]  # the key's body: must never leak, even line by line
NEEDLES = (SECRET_KEY, SECRET_LINE)


def _leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


def test_redact_replaces_secret_values_and_keeps_env_names():
    cfg = edited(valid_config(), ("set", "exchange.api_secret", "s3cr3t-value"), ("set", "exchange.apiKey", 12345678),
                 ("set", "data.db.password", "hunter22"), ("set", "exchange.pem_text", SECRET_VALUE),
                 ("set", "exchange.note", SECRET_VALUE))
    out = redact(cfg)
    assert out["exchange"]["api_secret"] == "***" and out["exchange"]["apiKey"] == "***"
    assert out["data"]["db"]["password"] == "***"
    assert out["exchange"]["note"] == "***" and out["exchange"]["pem_text"] == "***"
    assert out["exchange"]["api_key_env"] == "COINBASE_API_KEY"  # a name, kept
    assert out["risk"] == cfg["risk"]
    assert cfg["exchange"]["api_secret"] == "s3cr3t-value", "redact returns a copy"


def test_non_secret_keys_are_not_flagged():
    cfg = edited(valid_config(), ("set", "explain.symbol", "BTC/USDC"))
    assert find_secret_values(cfg) == []
    assert redact(cfg) == cfg


def test_env_secret_never_printed_even_when_misplaced():
    # The secret typed into a plain key (here the timeframe) is reported, but scrubbed.
    cfg = edited(live_config(), ("set", "data.timeframe", SECRET_KEY), ("set", "exchange.quote", SECRET_LINE))
    report = check_config(cfg, mode="live", env=LIVE_ENV)
    assert {"data.timeframe", "exchange.quote"} <= {p.path for p in report.problems}
    assert _leaks(report.format()) == []
    assert _leaks(repr(report.problems)) == []


def test_secret_values_cover_named_and_secret_looking_variables():
    env = {**LIVE_ENV, "GITHUB_TOKEN": "ghp_abcdefgh", "HOME": "/root", "SHORT_SECRET": "ab"}
    vals = secret_values(valid_config(), env)
    assert SECRET_KEY in vals and SECRET_VALUE in vals and SECRET_LINE in vals and "ghp_abcdefgh" in vals
    assert "/root" not in vals and "ab" not in vals


def test_shell_working_directory_is_not_a_secret():
    # "pwd" makes DB_PWD secret-looking; the shell's PWD/OLDPWD hold paths, and scrubbing them
    # turned Hydra's saved runtime.cwd into "***".
    vals = secret_values({}, {"PWD": "/work/project", "OLDPWD": "/work/other", "DB_PWD": "hunter2hunter2"})
    assert vals == ["hunter2hunter2"]


def _hydra_run_dir(tmp_path, task_overrides):
    from omegaconf import OmegaConf

    out = tmp_path / "run"
    (out / ".hydra").mkdir(parents=True)
    dirname = ",".join(task_overrides)
    files = {
        "config.yaml": "# as Hydra wrote it\nseed: 1\n",
        "hydra.yaml": f"# as Hydra wrote it\nhydra:\n  job:\n    override_dirname: {dirname}\n"
                      f"  overrides:\n    hydra: []\n    task: [{dirname}]\n",
        "overrides.yaml": "".join(f"- {o}\n" for o in task_overrides) or "[]\n",
    }
    for name, text in files.items():
        (out / ".hydra" / name).write_text(text)
    cfg = OmegaConf.create({"seed": 1, "hydra": {"output_subdir": ".hydra", "runtime": {"output_dir": str(out)},
                                                 "overrides": {"task": task_overrides, "hydra": []}}})
    return out / ".hydra", files, cfg


def test_redact_callback_leaves_clean_files_as_hydra_wrote_them(tmp_path, monkeypatch):
    from engine.config.hydra_callback import RedactSecrets

    monkeypatch.setenv("PWD", str(tmp_path))
    saved, files, cfg = _hydra_run_dir(tmp_path, ["seed=1"])
    RedactSecrets().on_job_start(cfg)
    assert {n: (saved / n).read_text() for n in files} == files  # not even re-dumped


def test_redact_callback_scrubs_a_literal_secret_typed_on_the_command_line(tmp_path):
    from engine.config.hydra_callback import RedactSecrets

    saved, files, cfg = _hydra_run_dir(tmp_path, ["seed=1", "+exchange.api_secret=typed-by-mistake-123"])
    RedactSecrets().on_job_start(cfg)
    texts = {n: (saved / n).read_text() for n in files}
    assert all("typed-by-mistake-123" not in t for t in texts.values()), texts
    assert "+exchange.api_secret=***" in texts["overrides.yaml"]
    assert "override_dirname: seed=1,+exchange.api_secret=***" in texts["hydra.yaml"]


@pytest.mark.parametrize("override", [
    f"exchange.api_key_env={SECRET_KEY}",  # the key's value pasted where its variable's name goes
    "exchange.api_secret_env=-----BEGIN EC PRIVATE KEY-----MHcCAQEEIpasted+base64/body==",
])
def test_redact_callback_scrubs_a_secret_pasted_into_an_env_name_key(tmp_path, override):
    # The check refuses it (secret_env_not_a_name), but Hydra has already saved the command line.
    from omegaconf import OmegaConf

    from engine.config.hydra_callback import RedactSecrets

    saved, files, cfg = _hydra_run_dir(tmp_path, ["seed=1", override])
    key, value = override.split("=", 1)
    OmegaConf.update(cfg, key, value, force_add=True)
    RedactSecrets().on_job_start(cfg)
    texts = {n: (saved / n).read_text() for n in files}
    assert all(value not in t for t in texts.values()), texts
    assert f"{key}=***" in texts["overrides.yaml"]


def test_log_filter_scrubs_ccxt_debug_records_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    ccxt_log = logging.getLogger("ccxt.base.exchange")
    app_log = logging.getLogger("rulebook")
    # An earlier in-process Hydra run (dictConfig with disable_existing_loggers) may have disabled
    # these loggers or stopped propagation; this test is about the filter, so it sets both itself.
    saved = [(lg, lg.level, lg.disabled, lg.propagate) for lg in (ccxt_log, app_log)]
    ccxt_log.setLevel(logging.DEBUG)
    for lg in (ccxt_log, app_log):
        lg.disabled, lg.propagate = False, True
    try:
        install_log_redaction(secret_values(valid_config(), LIVE_ENV))
        ccxt_log.debug("POST /orders headers {'Authorization': 'Bearer %s'}", SECRET_KEY)
        ccxt_log.debug("body %s", SECRET_VALUE)
        try:
            raise RuntimeError(f"auth failed for {SECRET_KEY}")
        except RuntimeError:
            logging.getLogger("rulebook").exception("order failed")
    finally:
        root.removeHandler(handler)
        for lg, level, disabled, propagate in saved:
            lg.setLevel(level)
            lg.disabled, lg.propagate = disabled, propagate
    text = stream.getvalue()
    # (the exchange's own filter on ccxt's loggers, once an earlier test in this process installed it,
    # redacts the whole header value first: the same marker either way)
    assert "Bearer ***" in text or "'Authorization': '***'" in text
    assert "order failed" in text and "RuntimeError: auth failed for ***" in text
    assert _leaks(text) == []


def test_filter_leaves_clean_records_alone():
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "value %d", (5,), None)
    assert SecretFilter([SECRET_KEY]).filter(rec) and rec.getMessage() == "value 5"


@pytest.mark.parametrize("text,expected", [
    ("+exchange.api_secret=abc", "+exchange.api_secret=***"),
    ("exchange.api_key_env=MY_KEY", "exchange.api_key_env=MY_KEY"),
    ("exchange.api_key_env=organizations/x/apiKeys/y", "exchange.api_key_env=***"),
    ("risk=aggressive", "risk=aggressive"),
    ("++data.password=x=y", "++data.password=***"),
])
def test_redact_override(text, expected):
    assert redact_override(text) == expected


APP = textwrap.dedent('''
    import logging, os, sys
    import hydra
    from engine.config import ConfigError
    from engine.config.entry import prepare_run, validate_entry

    log = logging.getLogger("rulebook")

    @hydra.main(version_base="1.3", config_path={conf!r}, config_name="config")
    def main(cfg):
        if cfg.mode.name == "validate":
            sys.exit(validate_entry(cfg))
        try:
            prepare_run(cfg, log)
        except ConfigError as exc:
            log.error("%s", exc)
            sys.exit(1)
        # What a careless adapter might log: must come out scrubbed.
        logging.getLogger("ccxt.base.exchange").debug("headers Authorization: Bearer %s", os.environ["COINBASE_API_KEY"])
        log.info("secret is %s", os.environ["COINBASE_API_SECRET"])

    main()
''')

LIVE_OVERRIDES = ["data=csv", "data.path=/data/ohlcv"]  # with LIVE_ENV and conf/live's burn-in: a valid live config


def _state_overrides(mode: str, tmp: Path) -> list[str]:
    """Live-clock modes keep their state under tmp, never in the project; shadow gets a dry_run file."""
    state = tmp / "state"
    if mode == "shadow":
        state.mkdir(exist_ok=True)
        (state / "default-dry_run.sqlite").touch()
    return [f"live.state_dir={state}"]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}, **LIVE_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _scan(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            leaks = _leaks(path.read_text(errors="replace"))
            if leaks:
                found[str(path.relative_to(folder))] = leaks
    return found


MODES = sorted(p.stem for p in (CONF_DIR / "mode").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("mode,literal", [(m, False) for m in MODES] + [("backtest", True), ("live", True)])
def test_no_secret_in_any_file_written(tmp_path, mode, literal):
    app = tmp_path / "app.py"
    app.write_text(APP.format(conf=str(CONF_DIR)))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(app), f"mode={mode}", f"hydra.run.dir={run_dir}",
           "+hydra.callbacks.redact._target_=engine.config.hydra_callback.RedactSecrets",
           "hydra.job_logging.loggers.ccxt.level=DEBUG"]
    if mode == "live":
        cmd += LIVE_OVERRIDES
    cmd += _state_overrides(mode, tmp_path)
    if literal:
        cmd.append(f"+exchange.api_secret={SECRET_KEY}")  # the mistake the checks must refuse
    proc = _run(cmd, tmp_path)
    assert proc.returncode == (1 if literal else 0), proc.stdout + proc.stderr
    assert (run_dir / ".hydra" / "overrides.yaml").exists()
    assert _scan(run_dir) == {}
    assert _leaks(proc.stdout + proc.stderr) == []
    if literal:
        assert "secret_in_config" in (run_dir / "run.log").read_text()  # the job name: conf/config.yaml


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_validate_cli_never_prints_secrets(tmp_path, mode):
    cmd = [sys.executable, "-m", "engine.config", f"mode={mode}", f"+exchange.api_key={SECRET_KEY}"]
    proc = _run(cmd, ROOT)
    assert proc.returncode == 2 and "[secret_in_config] exchange.api_key" in proc.stdout
    assert _leaks(proc.stdout + proc.stderr) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_run_py_leaves_no_secret(tmp_path, mode):
    cmd = [sys.executable, str(ROOT / "run.py"), f"mode={mode}", f"hydra.run.dir={tmp_path / 'run'}",
           *_state_overrides("none", tmp_path)]
    # Tests never reach the internet: dry_run/paper trade one cycle on the in-process emulator, and
    # live points at a local URL, which its checks refuse before any request.
    if mode in ("dry_run", "paper"):
        cmd += ["exchange=local_sim", "live.max_cycles=1"]
    if mode == "live":
        cmd += [*LIVE_OVERRIDES, "exchange.rest_url=http://127.0.0.1:9"]
    proc = _run(cmd, ROOT)
    if mode in ("dry_run", "paper"):
        assert proc.returncode == 0, proc.stdout + proc.stderr
    if mode in ("live", "shadow"):
        assert proc.returncode == 2 and "live_on_local_url" * (mode == "live") in proc.stderr, proc.stderr
    assert _scan(tmp_path) == {}
    assert _leaks(proc.stdout + proc.stderr) == []


def test_hydra_logging_redacts_the_overrides_launchers_log(tmp_path):
    # Hydra's launchers log every job's overrides ("#0 : ...") with Hydra's own logging config,
    # before rulebook's log redaction exists: that config must carry the override filter.
    import logging.config

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="config", return_hydra_config=True)
    logging_cfg = OmegaConf.to_container(cfg.hydra.hydra_logging, resolve=True)
    stream = io.StringIO()
    logging_cfg["handlers"]["console"]["stream"] = stream
    logging_cfg["loggers"] = {"hydra_test_launcher": {"handlers": ["console"], "propagate": False, "level": "INFO"}}
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logging_cfg)
        logging.getLogger("hydra_test_launcher").info(
            "\t#0 : +exchange.api_secret=typed-4242 exchange.api_key_env=organizations/x/apiKeys/pasted-7171 "
            "exchange.api_key_env=COINBASE_KEY seed=1")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "typed-4242" not in text and "pasted-7171" not in text
    assert "+exchange.api_secret=*** exchange.api_key_env=*** exchange.api_key_env=COINBASE_KEY seed=1" in text


@pytest.mark.parametrize("line,leak", [
    ("\t#0 : +exchange.api_secret='a b c' risk=balanced", "b c"),
    ('\t#0 : +exchange.api_secret="x y\\" z" risk=balanced', "z"),
    ("\t#0 : +exchange.api_secret=a\\ b\\ c risk=balanced", "b\\ c"),
])
def test_override_filter_redacts_a_quoted_value_with_spaces(line, leak):
    from engine.config.secrets import OverrideFilter

    rec = logging.LogRecord("hydra", logging.INFO, __file__, 1, line, (), None)
    assert OverrideFilter().filter(rec)
    assert rec.getMessage() == "\t#0 : +exchange.api_secret=*** risk=balanced"
    assert leak not in rec.getMessage()
