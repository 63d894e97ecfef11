"""Alerts to people: the four channel formats, retries, rate limit (digest), dedup, the outbox
across a restart, and a paper session whose every event type reaches a local receiver once."""
from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter

import pytest

from engine.live import controls
from engine.live.errors import LiveError
from engine.live.notify.dispatcher import Dispatcher, alert_events
from engine.live.notify.settings import NotifySettings
from engine.live.store import StateStore
from tests.helpers.console import files_containing
from tests.helpers.live import run_mode
from tests.helpers.receiver import Receiver
from tests.helpers.wait import wait_until

SECRET = "s3cr3t-hook-7f2a"


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def env(monkeypatch, receiver):
    monkeypatch.setenv("RB_T_HOOK", f"{receiver.url}/hook/{SECRET}")
    monkeypatch.setenv("RB_T_SLACK", f"{receiver.url}/slack/{SECRET}")
    monkeypatch.setenv("RB_T_DISCORD", f"{receiver.url}/discord/{SECRET}")
    monkeypatch.setenv("RB_T_TG_TOKEN", "123:" + SECRET)
    monkeypatch.setenv("RB_T_TG_CHAT", "-100777")
    return receiver


def settings(receiver, *types, **kw) -> NotifySettings:
    chans = {"webhook": {"type": "webhook", "url_env": "RB_T_HOOK"},
             "slack": {"type": "slack", "url_env": "RB_T_SLACK"},
             "discord": {"type": "discord", "url_env": "RB_T_DISCORD"},
             "telegram": {"type": "telegram", "token_env": "RB_T_TG_TOKEN", "chat_id_env": "RB_T_TG_CHAT",
                          "api_url": receiver.url + "/tg"}}
    return NotifySettings.from_mapping({"channels": [chans[t] for t in (types or chans)],
                                        "retry_base_s": 0.02, "poll_s": 0.02, "drain_s": 10, **kw})


def store_with_session(path) -> StateStore:
    st = StateStore(path)
    st.put("meta", "session", {"account": "acct", "mode": "paper", "symbols": ["BTC/USDC"], "timeframe": "1m",
                               "initial_cash": 1000.0})
    return st


def outbox(path) -> list[tuple]:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT source, source_id, channel, status, attempts FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()


def test_each_channel_speaks_its_own_format(tmp_path, env):
    st = store_with_session(tmp_path / "s.sqlite")
    d = Dispatcher.start_for(settings(env), st.path)
    wait_until(lambda: d.rounds > 0, 10, "the dispatcher's first round")
    st.alert(None, "error", "kill_switch", "kill switch on: 0 open order(s) cancelled", 5)
    wait_until(lambda: len(env.got) == 4, 10, "one message per channel")
    d.stop()
    hook = env.bodies("/hook/")[0]
    assert hook["event"] == "kill" and hook["level"] == "error" and hook["kind"] == "kill_switch"
    assert hook["account"] == "acct" and hook["mode"] == "paper" and hook["t"] == 5 and "kill switch on" in hook["text"]
    assert env.bodies("/slack/") == [{"text": "[acct paper] ERROR kill_switch: kill switch on: 0 open order(s) cancelled"}]
    disc = env.bodies("/discord/")[0]
    assert disc["content"].startswith("[acct paper] ERROR kill_switch") and disc["allowed_mentions"] == {"parse": []}
    tg = [r for r in env.got if r.path.startswith("/tg/")][0]
    assert tg.path == f"/tg/bot123:{SECRET}/sendMessage" and tg.body["chat_id"] == "-100777"
    assert [s for *_, s, _ in outbox(st.path)] == ["sent"] * 4
    st.close()


def test_events_and_levels_choose_the_channel(tmp_path, env, monkeypatch):
    s = NotifySettings.from_mapping({"poll_s": 0.02, "channels": [
        {"name": "fills", "type": "webhook", "url_env": "RB_T_HOOK", "events": ["fill"]},
        {"name": "pager", "type": "slack", "url_env": "RB_T_SLACK", "events": ["error", "halt", "kill", "warning"],
         "min_level": "warning"}]})
    st = store_with_session(tmp_path / "s.sqlite")
    d = Dispatcher.start_for(s, st.path)
    wait_until(lambda: d.rounds > 0, 10, "the dispatcher's first round")
    st.alert(None, "info", "rules_reloaded", "rule files reloaded", 1)  # reload: neither channel
    st.alert(None, "warning", "halt", "risk halt daily_loss active", 2)  # pager
    st.alert(None, "warning", "stale_quote", "orders blocked on stale quotes", 3)  # pager (warning)
    st.db.execute("INSERT INTO fills(fill_id, t, symbol, side, qty, price, fee, time_ms, rule) VALUES "
                  "('f1', 4, 'BTC/USDC', 'buy', 0.5, 100.0, 0.1, 0, 'golden_cross')")
    wait_until(lambda: len(env.got) == 3, 10, "three deliveries")
    d.stop()
    assert [b["text"] for b in env.bodies("/slack/")] == ["[acct paper] WARNING halt: risk halt daily_loss active",
                                                          "[acct paper] WARNING stale_quote: orders blocked on stale quotes"]
    fill = env.bodies("/hook/")[0]
    assert fill["event"] == "fill" and fill["fill_id"] == "f1" and fill["message"] == \
        "buy 0.5 BTC/USDC @ 100 (fee 0.1, rule golden_cross)"
    st.close()
    assert alert_events("rules_rejected", "error") == ("reload", "error")
    assert alert_events("bars_skipped", "warning") == ("warning",)


def test_failed_requests_are_retried_and_4xx_is_not(tmp_path, env, caplog):
    env.fail = [503, 429, 503]
    st = store_with_session(tmp_path / "s.sqlite")
    d = Dispatcher.start_for(settings(env, "webhook"), st.path)
    wait_until(lambda: d.rounds > 0, 10, "the dispatcher's first round")
    caplog.set_level(logging.WARNING, logger="rulebook.live.notify")
    st.alert(None, "error", "order_abandoned", "order x abandoned", 1)
    wait_until(lambda: len(env.got) == 1, 10, "the delivery after three refusals")
    env.fail = [400]
    st.alert(None, "error", "order_abandoned", "order y abandoned", 2)
    wait_until(lambda: any(s == "failed" for *_, s, _ in outbox(st.path)), 10, "the 400 marked failed")
    d.stop()
    assert [(s, n) for *_, s, n in outbox(st.path)] == [("sent", 4), ("failed", 1)]
    assert env.refused == 4 and len(env.got) == 1
    logs = " ".join(r.getMessage() for r in caplog.records)
    assert "HTTP 503" in logs and "HTTP 400" in logs and "not retried" in logs
    assert SECRET not in logs and SECRET not in json.dumps(outbox(st.path))
    st.close()


def test_a_burst_beyond_the_rate_limit_goes_out_as_one_digest(tmp_path, env):
    st = store_with_session(tmp_path / "s.sqlite")
    d = Dispatcher(settings(env, "webhook", rate_per_minute=5), st.path)
    d._init_cursor(store := StateStore(st.path))
    with st.txn() as db:
        for k in range(30):
            st.alert(db, "error", "order_rejected", f"order {k} rejected", k)
    d._thread.start()
    wait_until(lambda: outbox(st.path) and all(s == "sent" for *_, s, _ in outbox(st.path)), 10,
               "every alert of the burst sent")
    d.stop()
    bodies = env.bodies("/hook/")
    assert len(bodies) == 5  # the minute's budget: 4 alerts on their own and one digest of the other 26
    assert [b["kind"] for b in bodies[:4]] == ["order_rejected"] * 4
    assert bodies[4]["event"] == "digest" and bodies[4]["count"] == 26
    assert [i["message"] for i in bodies[4]["items"]] == [f"order {k} rejected" for k in range(4, 30)]
    store.close()
    st.close()


def test_the_same_alert_again_within_dedup_s_is_not_sent(tmp_path, env):
    st = store_with_session(tmp_path / "s.sqlite")
    d = Dispatcher.start_for(settings(env, "slack"), st.path)
    wait_until(lambda: d.rounds > 0, 10, "the dispatcher's first round")
    for _ in range(3):
        st.alert(None, "warning", "halt", "risk halt daily_loss active: entries blocked", 1)
    st.alert(None, "warning", "halt", "risk halt drawdown active: entries blocked", 1)
    wait_until(lambda: len(outbox(st.path)) == 4 and len(env.got) == 2, 10, "four rows, two deliveries")
    d.stop()
    assert [s for *_, s, _ in outbox(st.path)] == ["sent", "duplicate", "duplicate", "sent"]
    st.close()


def test_pending_alerts_survive_a_restart_and_are_not_repeated(tmp_path, env):
    env.down = True
    st = store_with_session(tmp_path / "s.sqlite")
    s = settings(env, "webhook", max_attempts=1000, retry_max_s=0.05)
    d = Dispatcher.start_for(s, st.path)
    wait_until(lambda: d.rounds > 0, 10, "the dispatcher's first round")
    for k in range(3):
        st.alert(None, "error", "order_rejected", f"order {k} rejected", k)
    wait_until(lambda: env.refused >= 2, 10, "deliveries refused while the receiver is down")
    d.stop(drain_s=0)
    assert {s for *_, s, _ in outbox(st.path)} == {"pending"}
    st.alert(None, "error", "order_rejected", "order 3 rejected (while the loop was down)", 3)
    env.down = False
    d = Dispatcher.start_for(s, st.path)  # the restart
    wait_until(lambda: len(env.got) == 4, 10, "the four alerts delivered")
    d.stop()
    d = Dispatcher.start_for(s, st.path)  # and another: nothing is sent again
    wait_until(lambda: d.rounds > 2, 10, "rounds of a third dispatcher")
    d.stop()
    assert sorted(b["alert_id"] for b in env.bodies()) == [1, 2, 3, 4]
    st.close()


def test_channel_config_errors_name_the_key(monkeypatch):
    with pytest.raises(LiveError, match=r"channels\[0\].url_env is a URL; expected the NAME of an environment variable"):
        NotifySettings.from_mapping({"channels": [{"type": "slack", "url_env": "https://hooks.slack.com/x"}]})
    with pytest.raises(LiveError, match=r"channels\[0\].type is 'email'; expected one of webhook, telegram"):
        NotifySettings.from_mapping({"channels": [{"type": "email"}]})
    with pytest.raises(LiveError, match=r"channels\[0\] \(telegram\) needs chat_id_env"):
        NotifySettings.from_mapping({"channels": [{"type": "telegram", "token_env": "X"}]})
    with pytest.raises(LiveError, match=r"events names 'fills'"):
        NotifySettings.from_mapping({"channels": [{"type": "webhook", "url_env": "X", "events": ["fills"]}]})
    monkeypatch.delenv("RB_T_UNSET", raising=False)
    s = NotifySettings.from_mapping({"channels": [{"type": "discord", "url_env": "RB_T_UNSET"}]})
    with pytest.raises(LiveError, match=r"reads \$RB_T_UNSET, which is not set"):
        s.check_env()


@pytest.mark.slow
def test_a_paper_session_delivers_each_event_type_once_across_a_restart(tmp_path, env):
    chans = ("live.notify.channels=[{name: all, type: webhook, url_env: RB_T_HOOK},"
             "{name: errors, type: slack, url_env: RB_T_SLACK, events: [error]}]")
    extra = (chans, "live.notify.poll_s=0.02", "live.notify.rate_per_minute=1000",
             "risk.params.hourly_loss_limit=0.00001")  # halts on the first loss
    state = tmp_path / "state"
    run_mode("paper", state, tmp_path / "out", *extra, cycles=4)
    f = state / "default-paper.sqlite"
    st = StateStore(f)
    controls.request(st, "kill", "test", "cli")
    controls.request(st, "reload", "test", "cli")
    st.close()
    run_mode("paper", state, tmp_path / "out2", *extra, cycles=2)
    hook = env.bodies("/hook/")
    events = Counter(b["event"] for b in hook)
    assert {"fill", "halt", "burn_in", "reload", "kill"} <= set(events), events
    db = sqlite3.connect(str(f))
    n_fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    n_alerts = db.execute("SELECT COUNT(*) FROM alerts WHERE kind IN ('halt','burn_in','rules_reloaded','kill_switch')"
                          ).fetchone()[0]
    db.close()
    ids = [b.get("alert_id") or b.get("fill_id") for b in hook]
    assert len(ids) == len(set(ids)) == n_fills + n_alerts, "each alert and fill once"
    slack = [b["text"] for b in env.bodies("/slack/")]  # the errors-only channel: the kill switch alone
    assert len(slack) == 1 and slack[0].startswith("[default paper] ERROR kill_switch: kill switch on: "), slack
    assert {s for *_, s, _ in outbox(f)} == {"sent"}
    assert files_containing(tmp_path, SECRET) == [], "a webhook URL was written to a file"
