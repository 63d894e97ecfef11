"""The decisions trace: which rule decided what, per symbol, per cycle.

Series-level verdicts are already whole (T, N) masks in the prepared rules: they are saved
as packed bits. Per-cycle verdicts (rules reading the portfolio or the order), risk clips,
guard blocks and halts are recorded sparsely as they happen. ``save`` writes one
``trace.npz`` that ``engine.explain`` reads back.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from engine.cycle.decide import Decision
from engine.fileio import atomic_write
from engine.cycle.prepare import Prepared

_count = np.count_nonzero


class TraceRecorder:
    def __init__(self, p: Prepared, start: int, stop: int):
        self.p = p
        self.start, self.stop = start, stop
        # (t, indices) lists per key; keys: "cycle:<rule>", "clip:<cap>", "block:<guard>",
        # "candidate", "buy", "sell"
        self.events: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
        self.halts: dict[str, list[int]] = defaultdict(list)

    def record(self, d: Decision) -> None:
        t = d.t
        ev = self.events
        for rid, v in d.cycle_verdicts.items():
            # only cycles where the rule held somewhere: a quiet bar skipped by the fast
            # path and the same bar run through ``decide`` leave the same trace
            if v.shape != d.candidates.shape:  # a constant verdict holds for every symbol or none
                v = np.broadcast_to(v, d.candidates.shape)
            if _count(v):
                ev["cycle_true:" + rid].append((t, v.nonzero()[0].astype(np.int32)))
        if _count(d.candidates):
            ev["candidate"].append((t, d.candidates.nonzero()[0].astype(np.int32)))
        for cid, m in d.clipped.items():
            ev["clip:" + cid].append((t, m.nonzero()[0].astype(np.int32)))
        for gid, m in d.blocked.items():
            if _count(m):
                ev["block:" + gid].append((t, m.nonzero()[0].astype(np.int32)))
        if _count(d.buy_qty):
            ev["buy"].append((t, d.buy_qty.nonzero()[0].astype(np.int32)))
        if _count(d.sell_qty):
            ev["sell"].append((t, d.sell_qty.nonzero()[0].astype(np.int32)))
        for h in d.halts:
            self.halts[h].append(t)

    def record_halts(self, halt_id: str, bars: np.ndarray) -> None:
        """Bars of a quiet stretch during which ``halt_id`` held (no order could follow)."""
        self.halts[halt_id].extend(int(b) for b in bars)

    # -- statistics for reports ---------------------------------------------------------------
    def rule_stats(self) -> dict[str, dict[str, int]]:
        """passed / blocked / clipped counts per rule over the run's cycles (symbol-cycles)."""
        p, sl = self.p, slice(self.start, self.stop - 1)
        listed = ~np.isnan(p.close[sl])
        stats: dict[str, dict[str, int]] = {}

        def put(label: str, passed: int, blocked: int, clipped: int = 0) -> None:
            stats[label] = {"passed": int(passed), "blocked": int(blocked), "clipped": int(clipped)}

        rs = p.rules
        for rid, m in p.regime_masks.items():
            put(f"regime:{rid}", m[sl].sum(), (~m[sl]).sum())
        for rid, m in p.filter_masks.items():
            put(f"universe:{rid}", (m[sl] & listed).sum(), (~m[sl] & listed).sum())
        for kind, group in (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes)):
            for s in group.series:
                put(f"{kind}:{s.rule.id}", (s.mask[sl] & listed).sum(), (~s.mask[sl] & listed).sum())
        for kind, group in (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes), ("guard", p.guards)):
            for c in group.cycle:
                ev = self.events.get("cycle_true:" + c.rule.id, [])
                put(f"{kind}:{c.rule.id}", sum(len(i) for _, i in ev), 0)
        for key, ev in self.events.items():
            if key.startswith("block:"):
                rid = key.split(":", 1)[1]
                label = f"guard:{rid}"
                cur = stats.get(label, {"passed": 0, "blocked": 0, "clipped": 0})
                cur["blocked"] += sum(len(i) for _, i in ev)
                stats[label] = cur
            if key.startswith("clip:"):
                cid = key.split(":", 1)[1]
                stats.setdefault(f"cap:{cid}", {"passed": 0, "blocked": 0, "clipped": 0})["clipped"] += sum(len(i) for _, i in ev)
        for c in rs.risk.caps:
            stats.setdefault(f"cap:{c.id}", {"passed": 0, "blocked": 0, "clipped": 0})
        for h in rs.risk.halts:
            stats[f"halt:{h.rule.id}"] = {"passed": 0, "blocked": len(self.halts.get(h.rule.id, [])), "clipped": 0}
        return dict(sorted(stats.items()))

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        p = self.p
        arrays: dict[str, np.ndarray] = {
            "times": p.market.times,
            "symbols": np.array(p.market.symbols),
            "regime_labels": np.array(p.regime_labels),
            "regime_idx": p.regime_idx,
            "range": np.array([self.start, self.stop]),
            "available": np.packbits(p.available, axis=1),
            "universe": np.packbits(p.universe, axis=1),
            "eligible": np.packbits(p.eligible, axis=1),
            "rebuilds": p.rebuilds,
        }
        for rid, m in p.regime_masks.items():
            arrays[f"regime:{rid}"] = m
        for rid, m in p.filter_masks.items():
            arrays[f"series:universe:{rid}"] = np.packbits(m, axis=1)
        for kind, group in (("entry", p.entries), ("exit", p.exits), ("veto", p.vetoes), ("guard", p.guards)):
            for s in group.series:
                arrays[f"series:{kind}:{s.rule.id}"] = np.packbits(s.mask, axis=1)
        for key, ev in self.events.items():
            if ev:
                arrays[f"events_t:{key}"] = np.array([t for t, _ in ev], dtype=np.int32)
                arrays[f"events_len:{key}"] = np.array([len(i) for _, i in ev], dtype=np.int32)
                arrays[f"events_idx:{key}"] = np.concatenate([i for _, i in ev]).astype(np.int32)
        for hid, ts in self.halts.items():
            arrays[f"halt:{hid}"] = np.array(ts, dtype=np.int32)
        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
