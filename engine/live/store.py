"""The state file of one account and mode: SQLite (stdlib), WAL, one transaction per step.

Everything a restart needs lives here: the bars each cycle decided on (so a shadow replay
sees the same data), cycles and their decisions, orders (written *before* they are sent,
with their client order id), fills, positions, cash, the portfolio and halt state, rule
file versions, alerts and control flags (the kill switch).
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (t INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
  t INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, status TEXT NOT NULL, regime TEXT,
  equity REAL, cash REAL, exposure REAL, halts TEXT, rules_hash TEXT, trace TEXT, session INTEGER,
  decided_wall_ms INTEGER);
CREATE TABLE IF NOT EXISTS decisions (
  t INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, rule TEXT,
  PRIMARY KEY (t, symbol, side));
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, t INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
  qty REAL NOT NULL, type TEXT NOT NULL, rule TEXT, status TEXT NOT NULL, exchange_order_id TEXT,
  filled REAL NOT NULL DEFAULT 0, avg_price REAL, fee REAL NOT NULL DEFAULT 0, reason TEXT,
  created_wall_ms INTEGER, updated_wall_ms INTEGER, limit_price REAL, stop_price REAL);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS fills (
  fill_id TEXT PRIMARY KEY, client_order_id TEXT, exchange_order_id TEXT, t INTEGER NOT NULL,
  symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
  slippage REAL NOT NULL DEFAULT 0, time_ms INTEGER NOT NULL, rule TEXT);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL, entry_price REAL,
  entry_t INTEGER, entry_rule TEXT);
CREATE TABLE IF NOT EXISTS cash (currency TEXT PRIMARY KEY, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rule_versions (id INTEGER PRIMARY KEY AUTOINCREMENT, wall_ms INTEGER, t INTEGER,
  file TEXT, sha256 TEXT, status TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, wall_ms INTEGER, t INTEGER,
  level TEXT, kind TEXT, message TEXT, data TEXT);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT NOT NULL, wall_ms INTEGER);
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, started_wall_ms INTEGER,
  ended_wall_ms INTEGER, cycles INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, source_id TEXT NOT NULL,
  channel TEXT NOT NULL, event TEXT NOT NULL, level TEXT NOT NULL, text TEXT NOT NULL, payload TEXT NOT NULL,
  dedup_key TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_wall_ms INTEGER NOT NULL,
  next_wall_ms INTEGER NOT NULL, sent_wall_ms INTEGER, batch INTEGER, error TEXT, UNIQUE(source, source_id, channel));
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(channel, status, next_wall_ms);
CREATE TABLE IF NOT EXISTS control_log (id INTEGER PRIMARY KEY AUTOINCREMENT, wall_ms INTEGER NOT NULL,
  action TEXT NOT NULL, who TEXT NOT NULL, via TEXT NOT NULL, applied_wall_ms INTEGER, detail TEXT);
"""

def _add_columns(db: sqlite3.Connection, table: str, cols: dict[str, str]) -> None:
    """Columns added after a state file was first created (older files gain them on open)."""
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in cols.items():
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


FINAL = ("filled", "canceled", "rejected", "abandoned")


def now_ms() -> int:
    return int(time.time() * 1000)


class StateStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), one per step
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed step survives a power cut too
        self.db.executescript(SCHEMA)
        _add_columns(self.db, "sessions", {"exchange": "TEXT"})  # which exchange a session ran on (burn-in gate)
        _add_columns(self.db, "alerts", {"resolved_wall_ms": "INTEGER"})  # an operator resolved it
        # a file written before limit (stop) orders were recorded
        _add_columns(self.db, "orders", {"limit_price": "REAL", "stop_price": "REAL"})
        # an order list's client id on each of its legs (a position's take-profit and stop as one OCO)
        _add_columns(self.db, "orders", {"list_id": "TEXT"})
        # how long the cycle took up to its decision's commit, and how late after its bar's close it decided
        _add_columns(self.db, "cycles", {"cycle_ms": "REAL", "lag_ms": "REAL"})

    @classmethod
    def reader(cls, path: Path) -> "ReadOnlyStore":
        """A read-only view of an existing state file (the console's, which must never write)."""
        return ReadOnlyStore(path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def txn(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta / state (JSON values) -----------------------------------------------------------
    def get(self, table: str, key: str, default: Any = None) -> Any:
        row = self.db.execute(f"SELECT value FROM {table} WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, table: str, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute(f"INSERT OR REPLACE INTO {table}(key, value) VALUES (?, ?)",
                                (key, json.dumps(value, sort_keys=True)))

    # -- bars -----------------------------------------------------------------------------------
    def append_bars(self, db: sqlite3.Connection, times: np.ndarray, rows: np.ndarray) -> None:
        """rows: (k, 6, N) = open, high, low, close, volume, spread_bps per symbol."""
        start = self.n_bars()
        db.executemany("INSERT INTO bars(t, time_ms, data) VALUES (?, ?, ?)",
                       [(start + i, int(times[i]), np.ascontiguousarray(rows[i], dtype=np.float64).tobytes())
                        for i in range(len(times))])

    def n_bars(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM bars").fetchone()[0])

    def last_bar_time(self) -> int | None:
        row = self.db.execute("SELECT MAX(time_ms) FROM bars").fetchone()
        return None if row[0] is None else int(row[0])

    def bars(self, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute("SELECT time_ms, data FROM bars ORDER BY t").fetchall()
        times = np.array([r[0] for r in rows], dtype=np.int64)
        data = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float64).reshape(len(rows), 6, n_symbols)
        return times, data

    # -- queries --------------------------------------------------------------------------------
    def rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cur = self.db.execute(sql, args)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def cycle(self, t: int) -> dict | None:
        r = self.rows("SELECT * FROM cycles WHERE t=?", (t,))
        return r[0] if r else None

    def open_orders(self) -> list[dict]:
        marks = ",".join("?" * len(FINAL))
        return self.rows(f"SELECT * FROM orders WHERE status NOT IN ({marks}) ORDER BY t, client_order_id", FINAL)

    def update_order(self, db: sqlite3.Connection, cid: str, **cols: Any) -> None:
        cols["updated_wall_ms"] = now_ms()
        sets = ", ".join(f"{k}=?" for k in cols)
        db.execute(f"UPDATE orders SET {sets} WHERE client_order_id=?", (*cols.values(), cid))

    def alert(self, db: sqlite3.Connection | None, level: str, kind: str, message: str, t: int | None,
              data: dict | None = None) -> None:
        (db or self.db).execute("INSERT INTO alerts(wall_ms, t, level, kind, message, data) VALUES (?,?,?,?,?,?)",
                                (now_ms(), t, level, kind, message, json.dumps(data or {}, sort_keys=True, default=str)))


class ReadOnlyStore(StateStore):
    """The same queries on a connection SQLite opens read-only: a write raises, whatever asks for it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no state file at {self.path}")
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30,
                                  check_same_thread=False)
        have = {r[1] for r in self.db.execute("PRAGMA table_info(cycles)")}
        self.has_cycle_timing = "cycle_ms" in have
