"""The decisions trace: which rule decided what, per symbol, per cycle. This module owns its
keys, its writer and its readers, for every mode (backtest, dry_run, paper, live, shadow,
explain); nothing else spells a trace key.

Series-level verdicts are already whole (T, N) masks in the prepared rules: they are saved
as packed bits. Per-cycle verdicts (rules reading the portfolio or the order), risk clips,
guard blocks and halts are recorded sparsely as they happen. ``TraceRecorder.save`` writes
one ``trace.npz`` that :class:`Trace` reads back (``engine.explain``). A live-clock cycle
stores the same events as JSON (:func:`cycle_record`), replayed by :func:`replay_cycle`.

trace.npz keys (format version ``VERSION``, stored as ``version``; a trace without it is
version 1, which has the same keys):
  times, symbols, regime_labels, regime_idx, range, available, universe, eligible, rebuilds
  regime:<rule>                      (T,) bool
  series:<stage>:<rule>              (T, ceil(N/8)) packed bits; stage: universe, entry, exit, veto, guard
  events_t:<event> / events_len:<event> / events_idx:<event>
                                     the bars, counts and symbol indices of one event key
  halt:<halt>                        bars the halt held
Event keys: candidate, buy, sell, cycle_true:<rule> (a per-cycle rule held; a guard's: for the
symbols with an order, the ones it judges), clip:<cap> (weight reduced),
cap_block:<cap> (reduced to nothing), cap_pass:<cap> (reached the cap, untouched), block:<guard>,
lock:<protection> (an entry candidate a scoped protection of the risk file locked out).
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from array import array
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from engine.cycle.decide import Decision
from engine.cycle.prepare import Prepared
from engine.fileio import atomic_write
from engine.npz import Spooled, write_npz

_count = np.count_nonzero

VERSION = 2  # 2: adds the version key and the cap_block / cap_pass events (readable as 1)

CANDIDATE, BUY, SELL = "candidate", "buy", "sell"
CYCLE_TRUE, CLIP, CAP_BLOCK, CAP_PASS, BLOCK = "cycle_true:", "clip:", "cap_block:", "cap_pass:", "block:"
LOCK = "lock:"
HALT, SERIES, REGIME = "halt:", "series:", "regime:"
EV_T, EV_LEN, EV_IDX = "events_t:", "events_len:", "events_idx:"
STAGES = ("universe", "entry", "exit", "veto", "guard")
# the JSON record of one live cycle: event prefix -> its field (a mapping id -> indices)
_JSON_GROUPS = (("cycle_true", CYCLE_TRUE), ("clip", CLIP), ("cap_block", CAP_BLOCK), ("cap_pass", CAP_PASS),
                ("block", BLOCK), ("lock", LOCK))


class TraceError(ValueError):
    """A trace file this engine cannot read (a newer format, a missing key)."""


def series_key(stage: str, rule_id: str) -> str:
    return f"{SERIES}{stage}:{rule_id}"


def _idx(m: np.ndarray) -> np.ndarray:
    return m.nonzero()[0].astype(np.int32)


def decision_events(d: Decision) -> dict[str, np.ndarray]:
    """The events of one decision: event key -> symbol indices (only keys that hold somewhere)."""
    ev: dict[str, np.ndarray] = {}
    shape = d.candidates.shape
    for rid, v in d.cycle_verdicts.items():
        # only cycles where the rule held somewhere: a quiet bar skipped by the fast
        # path and the same bar run through ``decide`` leave the same trace
        if v.shape != shape:  # a constant verdict holds for every symbol or none
            v = np.broadcast_to(v, shape)
        if _count(v):
            ev[CYCLE_TRUE + rid] = _idx(v)
    if _count(d.candidates):
        ev[CANDIDATE] = _idx(d.candidates)
    for prefix, masks in ((CLIP, d.clipped), (CAP_BLOCK, d.cap_blocked), (CAP_PASS, d.cap_passed),
                          (BLOCK, d.blocked), (LOCK, d.locked)):
        for cid, m in masks.items():
            if _count(m):
                ev[prefix + cid] = _idx(m)
    if _count(d.buy_qty):
        ev[BUY] = _idx(d.buy_qty)
    if _count(d.sell_qty):
        ev[SELL] = _idx(d.sell_qty)
    return ev


def cycle_record(d: Decision) -> dict[str, Any]:
    """One decision's trace as JSON-ready data (a live-clock cycle's ``trace`` column)."""
    ev = decision_events(d)
    out: dict[str, Any] = {field: {} for field, _ in _JSON_GROUPS}
    out.update({CANDIDATE: [], BUY: [], SELL: []})
    for key, idx in ev.items():
        for field, prefix in _JSON_GROUPS:
            if key.startswith(prefix):
                out[field][key[len(prefix):]] = idx.tolist()
                break
        else:
            out[key] = idx.tolist()  # candidate, buy, sell
    out["halts"] = list(d.halts)
    return out


class NoTrace:
    """What a run records when nobody will read its trace (a grid point keeps only its metrics,
    which read the equity and the fills): the loop's calls, doing nothing. A report or
    ``explain`` needs a :class:`TraceRecorder`."""

    row0 = 0  # set per chunk by the loop, as on a TraceRecorder

    def add_chunk(self, p: Prepared, row0: int) -> None:
        pass

    def record(self, d: Decision) -> None:
        pass

    def record_halts(self, halt_id: str, bars: np.ndarray) -> None:
        pass

    def record_block(self, events) -> None:
        pass


class EventLog:
    """One event key's records, packed as they come: the bars, the symbol count of each and the
    symbol indices (int32), each in one growing buffer. A list of small per-decision arrays costs
    ~250 bytes of allocations each and, by the hundred thousand, pins memory a chunked run frees
    month after month. Measured (the RSS at month borders of 3 months of 1-minute bars for 200
    products, sma_cross; python benchmarks/chunked_memory.py): from the first border to the last,
    2179 -> 3620 MiB with per-decision arrays, 2147 -> 2811 MiB with EventLog, 2110 -> 2697 MiB
    with no decision recorded at all."""

    __slots__ = ("_t", "_n", "_idx", "_spools", "_len", "_n_symbols")

    def __init__(self, spool: Path | None = None):
        self._t, self._n, self._idx = array("i"), array("i"), bytearray()
        # a chunked run's log goes to disk at each chunk border (:meth:`spill`): files spool.t, .n, .idx
        self._spools = None if spool is None else tuple(
            Spooled(spool.with_suffix(f".{part}"), np.dtype(np.int32)) for part in ("t", "n", "idx"))
        self._len = self._n_symbols = 0

    def add(self, t: int, idx: np.ndarray) -> None:
        self._t.append(t)
        self._n.append(len(idx))
        self._idx += np.ascontiguousarray(idx, dtype=np.int32).tobytes()
        self._len += 1
        self._n_symbols += len(idx)

    def add_block(self, t: np.ndarray, n: np.ndarray, idx: np.ndarray) -> None:
        """Records of several bars at once: their bars, symbol counts and symbol indices, bar by bar."""
        self._t.frombytes(np.ascontiguousarray(t, dtype=np.int32).tobytes())
        self._n.frombytes(np.ascontiguousarray(n, dtype=np.int32).tobytes())
        self._idx += np.ascontiguousarray(idx, dtype=np.int32).tobytes()
        self._len += len(t)
        self._n_symbols += len(idx)

    def __len__(self) -> int:
        return self._len

    @property
    def n_symbols(self) -> int:
        """Symbol-records over every bar (e.g. candidates over the run)."""
        return self._n_symbols

    def spill(self) -> None:
        """Move the records held in memory to the log's files (a chunked run's, at a chunk border)."""
        if self._spools is None or not len(self._t):
            return
        for sp, raw in zip(self._spools, (self._t.tobytes(), self._n.tobytes(), bytes(self._idx))):
            sp.append_bytes(raw, len(raw) // 4)  # int32 records, all three
            sp.flush()
        self._t, self._n, self._idx = array("i"), array("i"), bytearray()

    def spooled(self) -> "tuple[Spooled, Spooled, Spooled] | None":
        """The log's three arrays on disk, every record spilled (None: the log is in memory)."""
        if self._spools is None:
            return None
        self.spill()
        return self._spools

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bars, counts, indices) as trace.npz stores them."""
        return tuple(a.copy() for a in self.views())  # type: ignore[return-value]

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`arrays` without the copies (a year of 1-minute bars for 200 products records
        ~70 MiB of indices a month): read-only, and no record may be added while one is held.
        A spilled log is read back from its files."""
        mem = (np.frombuffer(self._t, dtype=np.int32), np.frombuffer(self._n, dtype=np.int32),
               np.frombuffer(self._idx, dtype=np.int32))
        if self._spools is None or not self._spools[0].rows:
            return mem
        return tuple(np.concatenate([sp.read(), m]) for sp, m in zip(self._spools, mem))  # type: ignore[return-value]

    def records(self) -> list[tuple[int, np.ndarray]]:
        ts, ns, idx = self.arrays()
        ends = np.cumsum(ns)
        return [(int(t), idx[e - n:e]) for t, n, e in zip(ts, ns, ends)]


class TraceRecorder:
    """The trace of one run, recorded cycle by cycle (bars ``start`` to ``stop``).

    The prepared masks it saves and counts are taken chunk by chunk (:meth:`add_chunk`: packed
    rows and per-rule counts, never a whole (T, N) panel), so a chunked backtest records the same
    trace as one over the whole market, which is the one-chunk case: ``TraceRecorder(p, ...)``
    takes ``p`` as its only chunk unless ``chunked`` (the loop then adds each chunk)."""

    def __init__(self, p: "Prepared | None", start: int, stop: int, chunked: bool = False):
        # the run's facts (its market's times and symbols, regime labels, rules); a chunked run
        # sets them once its chunks are read
        self.p = p
        self.start, self.stop = start, stop
        # a chunked run keeps what grows with its length on disk: each event key's records and each
        # mask's packed rows go to files here at every chunk border (removed with the recorder)
        self._spool: Path | None = None
        if chunked:
            self._spool = Path(tempfile.mkdtemp(prefix="rulebook-trace-"))
            weakref.finalize(self, shutil.rmtree, self._spool, True)
        # event key -> its records (bars, counts, symbol indices), in bar order (keys: the module doc)
        self.logs: dict[str, EventLog] = _Logs(self._spool)
        self.halts: dict[str, list[int]] = defaultdict(list)
        self.row0 = 0  # the first row of the chunk being recorded: chunk-local bars are offset by it
        # rule label -> [passed, blocked] over the window's decided bars, summed over chunks
        self._counts: dict[str, list[int]] = {}
        self._cycle_ids: dict[str, list[str]] = {}  # stage -> ids of its per-cycle rules
        self._rows: dict[str, list[np.ndarray] | Spooled] = {}  # trace.npz key -> chunk rows (spooled: chunked)
        if not chunked:
            self.add_chunk(p, 0)

    def _add_rows(self, key: str, a: np.ndarray) -> None:
        if self._spool is None:
            self._rows.setdefault(key, []).append(a)
            return
        sp = self._rows.get(key)
        if sp is None:
            sp = self._rows[key] = Spooled(self._spool / f"rows{len(self._rows)}", a.dtype, a.shape[1:])
        sp.append(a)
        sp.flush()

    def add_chunk(self, p: Prepared, row0: int) -> None:
        """Chunk ``p`` (rows ``row0`` .. of the whole market): its masks' rows for the file, and
        their counts over the window's decided bars (``start`` .. ``stop - 1``) for rule_stats."""
        for ev in self.logs.values():  # the previous chunks' records: to disk (a chunked run)
            ev.spill()
        add = self._add_rows
        add("regime_idx", np.asarray(p.regime_idx))
        add("rebuilds", np.asarray(p.rebuilds))
        for key, m in (("available", p.available), ("universe", p.universe), ("eligible", p.eligible)):
            add(key, np.packbits(m, axis=1))
        for rid, m in p.regime_masks.items():
            add(REGIME + rid, np.asarray(m))
        for rid, m in p.filter_masks.items():
            add(series_key("universe", rid), np.packbits(m, axis=1))
        groups = (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes), ("guard", p.guards))
        for kind, group in groups:
            for s in group.series:
                add(series_key(kind, s.rule.id), np.packbits(s.mask, axis=1))
            self._cycle_ids[kind] = [c.rule.id for c in group.cycle]
        lo, hi = max(self.start - row0, 0), min(self.stop - 1 - row0, p.market.n_bars)
        counts = self._counts

        def put(label: str, passed, blocked) -> None:
            c = counts.setdefault(label, [0, 0])
            c[0] += int(passed)
            c[1] += int(blocked)

        sl = slice(lo, max(lo, hi))
        listed = ~np.isnan(p.close[sl])
        for rid, m in p.regime_masks.items():
            put(f"regime:{rid}", m[sl].sum(), (~m[sl]).sum())
        for rid, m in p.filter_masks.items():
            put(f"universe:{rid}", (m[sl] & listed).sum(), (~m[sl] & listed).sum())
        for kind, group in groups[:3]:
            for s in group.series:
                put(f"{kind}:{s.rule.id}", (s.mask[sl] & listed).sum(), (~s.mask[sl] & listed).sum())

    def record(self, d: Decision) -> None:
        self.record_events(d.t, decision_events(d), d.halts)

    def record_events(self, t: int, events: dict[str, np.ndarray], halts: Iterable[str]) -> None:
        logs = self.logs
        t += self.row0
        for key, idx in events.items():
            logs[key].add(t, idx)
        for h in halts:
            self.halts[h].append(t)

    def record_block(self, ev) -> None:
        """Events of bars decided as a block (engine/cycle/turned_away.py ``BlockEvents``), as if
        recorded bar by bar: a key seen for the first time joins the file in the order the bars
        would have made it (by its first bar, then as a decision lists its keys)."""
        logs = self.logs
        new = sorted((int(t[0]), i) for i, (key, t) in enumerate(zip(ev.keys, ev.t)) if len(t) and key not in logs)
        for _, i in new:
            logs[ev.keys[i]]  # made now, in that order
        for key, t, n, idx in zip(ev.keys, ev.t, ev.n, ev.idx):
            if len(t):
                logs[key].add_block(t + self.row0, n, idx)

    def record_halts(self, halt_id: str, bars: np.ndarray) -> None:
        """Bars of a quiet stretch during which ``halt_id`` held (no order could follow)."""
        self.halts[halt_id].extend(int(b) + self.row0 for b in bars)

    def bars_of(self, key: str) -> list[tuple[int, np.ndarray]]:
        """The (bar, symbol indices) recorded for one event key (e.g. ``BUY``)."""
        ev = self.logs.get(key)
        return ev.records() if ev is not None else []

    @property
    def events(self) -> dict[str, list[tuple[int, np.ndarray]]]:
        """Every event key's (bar, symbol indices) records, unpacked (for readers and tests)."""
        return {key: ev.records() for key, ev in self.logs.items()}

    # -- statistics for reports ---------------------------------------------------------------
    def rule_stats(self) -> dict[str, dict[str, int]]:
        """passed / blocked / clipped counts per rule over the run's cycles (symbol-cycles).

        A cap counts each entry candidate that reached it with a weight: passed (untouched),
        clipped (reduced, still bought) or blocked (reduced to nothing)."""
        stats: dict[str, dict[str, int]] = {}
        logs = self.logs
        n_of = lambda key: logs[key].n_symbols if key in logs else 0  # noqa: E731

        def put(label: str, passed: int, blocked: int, clipped: int = 0) -> None:
            stats[label] = {"passed": int(passed), "blocked": int(blocked), "clipped": int(clipped)}

        rs = self.p.rules
        for label, (passed, blocked) in self._counts.items():
            put(label, passed, blocked)
        for kind in ("entry", "exit", "veto", "guard"):
            for rid in self._cycle_ids.get(kind, []):
                put(f"{kind}:{rid}", n_of(CYCLE_TRUE + rid), 0)
        for key in logs:
            if key.startswith(BLOCK):
                label = f"guard:{key[len(BLOCK):]}"
                cur = stats.setdefault(label, {"passed": 0, "blocked": 0, "clipped": 0})
                cur["blocked"] += n_of(key)
        cap_ids = [c.id for c in rs.risk.caps]
        cap_ids += [k[len(CLIP):] for k in logs if k.startswith(CLIP) and k[len(CLIP):] not in cap_ids]
        for cid in cap_ids:
            blocked = n_of(CAP_BLOCK + cid)
            put(f"cap:{cid}", n_of(CAP_PASS + cid), blocked, n_of(CLIP + cid) - blocked)
        for lk in rs.risk.locks:
            put(f"protection:{lk.id}", 0, n_of(LOCK + lk.id))
        for h in rs.risk.halts:
            stats[f"halt:{h.rule.id}"] = {"passed": 0, "blocked": len(self.halts.get(h.rule.id, [])), "clipped": 0}
        return dict(sorted(stats.items()))

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        p = self.p
        rows = {key: parts if isinstance(parts, Spooled) else parts[0] if len(parts) == 1 else np.concatenate(parts)
                for key, parts in self._rows.items()}
        arrays: dict[str, np.ndarray | Spooled] = {
            "version": np.array(VERSION, dtype=np.int32),
            "times": p.market.times,
            "symbols": np.array(p.market.symbols),
            "regime_labels": np.array(p.regime_labels),
            "regime_idx": rows.pop("regime_idx"),
            "range": np.array([self.start, self.stop]),
            "available": rows.pop("available"),
            "universe": rows.pop("universe"),
            "eligible": rows.pop("eligible"),
            "rebuilds": rows.pop("rebuilds"),
            **rows,  # regime:<rule>, then series:<stage>:<rule> in stage order
        }
        for key, ev in self.logs.items():
            if len(ev):
                arrays[EV_T + key], arrays[EV_LEN + key], arrays[EV_IDX + key] = ev.spooled() or ev.views()
        for hid, ts in self.halts.items():
            arrays[HALT + hid] = np.array(ts, dtype=np.int32)
        atomic_write(path, lambda fh: write_npz(fh, arrays))


class _Logs(dict):
    """Event key -> EventLog, made on first use; a chunked run's logs each get their own files."""

    def __init__(self, spool: Path | None):
        super().__init__()
        self._spool = spool

    def __missing__(self, key: str) -> EventLog:
        log = self[key] = EventLog(None if self._spool is None else self._spool / f"events{len(self)}")
        return log


def replay_cycle(trace: TraceRecorder, t: int, record: dict, sides: dict[str, list[int]] | None = None) -> None:
    """Add one live cycle's stored :func:`cycle_record` to ``trace``. ``sides``: the symbol
    indices bought and sold at t, for records written before they carried their own."""
    events: dict[str, np.ndarray] = {}
    for field, prefix in _JSON_GROUPS:
        for rid, idx in (record.get(field) or {}).items():
            if idx:
                events[prefix + rid] = np.array(idx, dtype=np.int32)
    for key in (CANDIDATE, BUY, SELL):
        idx = record.get(key)
        if idx is None and sides is not None and key in sides:
            idx = sides[key]
        if idx:
            events[key] = np.array(sorted(idx), dtype=np.int32)
    trace.record_events(t, events, record.get("halts") or [])


@dataclass
class Trace:
    """The arrays of one trace.npz, unpacked lazily."""

    z: Any
    times: np.ndarray
    symbols: tuple[str, ...]
    regime_labels: tuple[str, ...]
    regime_idx: np.ndarray
    start: int
    stop: int

    @classmethod
    def load(cls, path: Path) -> "Trace":
        z = np.load(path, allow_pickle=False)
        version = int(z["version"]) if "version" in z.files else 1
        if version > VERSION:
            raise TraceError(f"{path} is a version {version} trace, written by a newer engine; this engine reads "
                             f"trace versions 1 to {VERSION}: run the same rulebook version that wrote it")
        start, stop = (int(x) for x in z["range"])
        return cls(z, z["times"], tuple(str(s) for s in z["symbols"]), tuple(str(s) for s in z["regime_labels"]),
                   z["regime_idx"], start, stop)

    @property
    def files(self) -> list[str]:
        return self.z.files

    def has(self, key: str) -> bool:
        return key in self.z.files

    def bit(self, key: str, t: int, i: int) -> bool | None:
        """One symbol's verdict at bar t from a packed (T, N) mask; None if not recorded."""
        if not self.has(key):
            return None
        row = self.z[key][t]
        return bool(np.unpackbits(row, count=len(self.symbols))[i])

    def row(self, key: str, t: int) -> np.ndarray:
        return np.unpackbits(self.z[key][t], count=len(self.symbols)).astype(bool)

    def event(self, key: str, t: int) -> np.ndarray | None:
        """Symbol indices recorded for ``key`` at bar t; None if nothing was recorded at t."""
        if not self.has(EV_T + key):
            return None
        ts = self.z[EV_T + key]
        k = np.searchsorted(ts, t)
        if k >= len(ts) or ts[k] != t:
            return None
        lens = self.z[EV_LEN + key]
        off = int(lens[:k].sum())
        return self.z[EV_IDX + key][off: off + int(lens[k])]

    def in_event(self, key: str, t: int, i: int) -> bool | None:
        idx = self.event(key, t)
        return None if idx is None else bool(np.any(idx == i))

    def event_ids(self, prefix: str) -> list[str]:
        """The ids recorded under an event prefix (``BLOCK``, ``CLIP``...), in file order."""
        return [k[len(EV_T) + len(prefix):] for k in self.z.files if k.startswith(EV_T + prefix)]

    def series_ids(self, stage: str) -> list[str]:
        p = f"{SERIES}{stage}:"
        return [k[len(p):] for k in self.z.files if k.startswith(p)]

    def halts_at(self, t: int) -> list[str]:
        return [k[len(HALT):] for k in self.z.files if k.startswith(HALT) and np.any(self.z[k] == t)]
