"""Background delivery of alerts and fills to people, through an outbox in the state file.

A daemon thread of the loop's process with its own SQLite connection; the cycle never waits
for it (it only reads what the cycle already committed):

1. scan: alerts and fills recorded since its cursor (``state.notify_cursor``) become one ``outbox``
   row per matching channel (event type and minimum level), in one transaction with the cursor,
   so nothing is enqueued twice (UNIQUE source, id, channel) or skipped across a restart. An alert
   equal (kind and message) to one enqueued for the channel within ``dedup_s`` is recorded
   ``duplicate`` and not sent.
2. deliver: per channel, due ``pending`` rows, at most ``rate_per_minute`` messages a minute
   (counted from the outbox, so across restarts too); when more are due than the minute allows,
   the rest go out together as one digest. A failed request (network, 429, 5xx) is retried with
   backoff (or Retry-After) up to ``max_attempts``, then the row is ``failed`` (logged, redacted);
   another 4xx fails it at once.

Delivery is at least once: a process killed between a channel's answer and the row's update
sends that one message again at the next start.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from engine.live.notify.channels import MAX_TEXT, Sender, clip
from engine.live.notify.settings import LEVELS, Channel, NotifySettings
from engine.live.store import StateStore, now_ms

log = logging.getLogger("rulebook.live.notify")

KIND_EVENT = {"kill_switch": "kill", "halt": "halt", "rules_reloaded": "reload", "rules_rejected": "reload",
              "burn_in": "burn_in"}
SCAN_BATCH = 1000


def alert_events(kind: str, level: str) -> tuple[str, ...]:
    """The event types an alert counts as: its kind's (kill, halt, reload, burn_in) and its level's
    (error; any other warning is ``warning``)."""
    ev = [KIND_EVENT[kind]] if kind in KIND_EVENT else []
    if level == "error":
        ev.append("error")
    elif level == "warning" and not ev:
        ev.append("warning")
    return tuple(ev)


def _matches(ch: Channel, events: tuple[str, ...], level: str) -> str | None:
    if LEVELS.index(level if level in LEVELS else "info") < LEVELS.index(ch.min_level):
        return None
    return next((e for e in events if e in ch.events), None)


class Dispatcher:
    def __init__(self, settings: NotifySettings, state: Path):
        self.s = settings
        self.state = Path(state)
        self.channels = {c.name: c for c in settings.channels}
        self._stop = threading.Event()
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.rounds = 0  # completed scan+deliver rounds (tests wait on it, never on time)

    @classmethod
    def start_for(cls, settings: NotifySettings, state: Path) -> "Dispatcher | None":
        if not settings.channels:
            return None
        d = cls(settings, state)
        d._thread.start()
        return d

    def stop(self, drain_s: float | None = None) -> None:
        """Deliver what is due for up to ``drain_s`` more seconds, then end the thread."""
        self._deadline = time.monotonic() + (self.s.drain_s if drain_s is None else drain_s)
        self._stop.set()
        self._thread.join(self._deadline - time.monotonic() + self.s.timeout_s + 5)

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        store = StateStore(self.state)
        # WAL + NORMAL on this connection only: a commit survives a crash of the process, and a power cut
        # can at worst lose the newest "sent" marks (sent again: at least once), never an alert or a fill
        store.db.execute("PRAGMA synchronous=NORMAL")
        senders = {name: Sender(c, self.s.timeout_s) for name, c in self.channels.items()}
        try:
            meta = store.get("meta", "session") or {}
            self.who = {"account": meta.get("account"), "mode": meta.get("mode")}
            self._init_cursor(store)
            while True:
                try:
                    self.scan(store)
                    due = self.deliver(store, senders)
                except Exception:  # noqa: BLE001 - delivery must never take the loop down; logged, retried next round
                    log.exception("alert delivery round failed")
                    due = 0
                self.rounds += 1
                if self._stop.is_set() and (due == 0 or time.monotonic() >= self._deadline):
                    break
                if not self._stop.is_set():
                    self._stop.wait(self.s.poll_s)
                elif due:
                    time.sleep(min(0.05, max(0.0, self._deadline - time.monotonic())))  # draining a retry
        finally:
            for x in senders.values():
                x.close()
            store.close()

    def _init_cursor(self, store: StateStore) -> None:
        """The first dispatcher on a state file starts at what is already there (no history flood)."""
        if store.get("state", "notify_cursor") is None:
            a = store.db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]
            f = store.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM fills").fetchone()[0]
            store.put("state", "notify_cursor", {"alert": a, "fill": f})

    # -- scan ---------------------------------------------------------------------------------
    def _prefix(self) -> str:
        return f"[{self.who['account']} {self.who['mode']}]"

    def scan(self, store: StateStore) -> int:
        cur = store.get("state", "notify_cursor")
        alerts = store.rows("SELECT id, wall_ms, t, level, kind, message, data FROM alerts WHERE id > ? ORDER BY id "
                            "LIMIT ?", (cur["alert"], SCAN_BATCH))
        fills = store.rows("SELECT rowid AS rid, fill_id, t, symbol, side, qty, price, fee, time_ms, rule FROM fills "
                           "WHERE rowid > ? ORDER BY rowid LIMIT ?", (cur["fill"], SCAN_BATCH))
        if not alerts and not fills:
            return 0
        now = now_ms()
        n = 0
        with store.txn() as db:
            for a in alerts:
                events = alert_events(a["kind"], a["level"])
                payload = {"source": "alert", "alert_id": a["id"], "level": a["level"], "kind": a["kind"],
                           "message": a["message"], "t": a["t"], "wall_ms": a["wall_ms"], **self.who}
                text = f"{self._prefix()} {a['level'].upper()} {a['kind']}: {a['message']}"
                for ch in self.channels.values():
                    ev = _matches(ch, events, a["level"])
                    if ev:
                        n += self._enqueue(db, ch, "alert", str(a["id"]), ev, a["level"], text,
                                           {**payload, "event": ev}, f"{a['kind']}|{a['message']}", a["wall_ms"])
            for f in fills:
                msg = (f"{f['side']} {f['qty']:.8g} {f['symbol']} @ {f['price']:.8g} (fee {f['fee']:.6g}"
                       + (f", rule {f['rule']}" if f["rule"] else "") + ")")
                payload = {"source": "fill", "event": "fill", "level": "info", "kind": "fill", "message": msg,
                           **{k: f[k] for k in ("fill_id", "t", "symbol", "side", "qty", "price", "fee", "time_ms", "rule")},
                           **self.who}
                for ch in self.channels.values():
                    if _matches(ch, ("fill",), "info"):
                        n += self._enqueue(db, ch, "fill", f["fill_id"], "fill", "info", f"{self._prefix()} fill: {msg}",
                                           payload, "fill|" + f["fill_id"], now)
            store.put("state", "notify_cursor", {"alert": alerts[-1]["id"] if alerts else cur["alert"],
                                                 "fill": fills[-1]["rid"] if fills else cur["fill"]}, db)
        return n

    def _enqueue(self, db, ch: Channel, source: str, sid: str, event: str, level: str, text: str, payload: dict,
                 key: str, created: int) -> int:
        dup = db.execute("SELECT 1 FROM outbox WHERE channel=? AND dedup_key=? AND status IN ('pending', 'sent') "
                         "AND created_wall_ms >= ? LIMIT 1", (ch.name, key, created - int(self.s.dedup_s * 1000))).fetchone()
        return db.execute("INSERT OR IGNORE INTO outbox(source, source_id, channel, event, level, text, payload, dedup_key, "
                          "status, created_wall_ms, next_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                          (source, sid, ch.name, event, level, text, json.dumps(payload, sort_keys=True, default=str),
                           key, "duplicate" if dup else "pending", created, created)).rowcount

    # -- deliver ------------------------------------------------------------------------------
    def deliver(self, store: StateStore, senders: dict[str, Sender]) -> int:
        """One round over every channel; returns how many rows are still due now."""
        left = 0
        for name, sender in senders.items():
            now = now_ms()
            due = store.rows("SELECT id, text, payload, attempts FROM outbox WHERE channel=? AND status='pending' "
                             "AND next_wall_ms <= ? ORDER BY id LIMIT 500", (name, now))
            if not due:
                continue
            used = store.db.execute("SELECT COUNT(DISTINCT batch) FROM outbox WHERE channel=? AND status='sent' "
                                    "AND sent_wall_ms > ?", (name, now - 60_000)).fetchone()[0]
            room = self.s.rate_per_minute - used
            if room <= 0:
                left += len(due)
                continue
            messages = [[r] for r in due] if len(due) <= room else [[r] for r in due[: room - 1]] + [due[room - 1:]]
            for rows in messages:
                ok = self._send(store, sender, rows)
                if not ok:
                    break  # the channel is down: the rest wait for its retry instead of hammering it
            left += store.db.execute("SELECT COUNT(*) FROM outbox WHERE channel=? AND status='pending' AND "
                                     "next_wall_ms <= ?", (name, now_ms())).fetchone()[0]
        return left

    def _send(self, store: StateStore, sender: Sender, rows: list[dict]) -> bool:
        if len(rows) == 1:
            text, payload = rows[0]["text"], json.loads(rows[0]["payload"])
        else:
            items = [json.loads(r["payload"]) for r in rows]
            lines = [f"- {p['level'].upper()} {p['kind']}: {p['message']}" for p in items]
            head = f"{self._prefix()} {len(rows)} alerts (more than {self.s.rate_per_minute} a minute):"
            text = clip("\n".join([head, *lines]), MAX_TEXT[sender.ch.type])
            payload = {"source": "digest", "event": "digest", "level": max((p["level"] for p in items), key=_rank),
                       "kind": "digest", "message": head, "count": len(rows), "items": items, **self.who}
        out = sender.send(text, payload)
        now = now_ms()
        ids = [r["id"] for r in rows]
        with store.txn() as db:
            if out.ok:
                db.executemany("UPDATE outbox SET status='sent', sent_wall_ms=?, batch=?, attempts=attempts+1, error=NULL "
                               "WHERE id=?", [(now, ids[0], i) for i in ids])
            else:
                for r in rows:
                    attempts = r["attempts"] + 1
                    final = not out.retry or attempts >= self.s.max_attempts
                    wait = out.retry_after_s if out.retry_after_s is not None else \
                        min(self.s.retry_base_s * 2 ** (attempts - 1), self.s.retry_max_s)
                    db.execute("UPDATE outbox SET status=?, attempts=?, next_wall_ms=?, error=? WHERE id=?",
                               ("failed" if final else "pending", attempts, now + int(wait * 1000), out.error, r["id"]))
        if not out.ok:
            log.warning("alert delivery to %s (%s) failed: %s%s", sender.ch.name, sender.ch.type, out.error,
                        "" if out.retry else " (not retried)")
        return out.ok


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0
