"""engine/npz.py: a trace.npz whose bytes depend on its arrays only (not the clock), read back by
np.load as numpy's own; an array spooled to disk in row blocks writes the same bytes as the whole
array; a chunked run's trace keeps its earlier chunks' records on disk, not in memory."""
from __future__ import annotations

import io
import time

import numpy as np

from engine.npz import Spooled, write_npz
from engine.trace import TraceRecorder


def _arrays(rng) -> dict:
    return {"version": np.array(2, dtype=np.int32), "symbols": np.array(["BTC/USDC", "ETH/USDC"]),
            "mask": np.packbits(rng.random((1000, 70)) > 0.5, axis=1), "idx": rng.integers(0, 70, 5000).astype(np.int32),
            "regime": rng.random(1000) > 0.3, "empty": np.zeros(0, dtype=np.int32)}


def _bytes(arrays) -> bytes:
    buf = io.BytesIO()
    write_npz(buf, arrays)
    return buf.getvalue()


def test_the_bytes_do_not_depend_on_the_clock(monkeypatch):
    arrays = _arrays(np.random.default_rng(0))
    first = _bytes(arrays)
    later = time.time() + 86_400 * 400
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(time, "localtime", lambda *a: time.gmtime(later))
    assert _bytes(arrays) == first
    with np.load(io.BytesIO(first)) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)


def test_a_spooled_array_writes_the_whole_arrays_bytes(tmp_path):
    rng = np.random.default_rng(1)
    arrays = _arrays(rng)
    sp = Spooled(tmp_path / "mask", np.dtype(np.uint8), arrays["mask"].shape[1:])
    for a, b in ((0, 1), (1, 400), (400, 401), (401, 1000)):
        sp.append(arrays["mask"][a:b])
        if b % 2:
            sp.flush()  # some blocks on disk, the last ones still in memory
    ev = Spooled(tmp_path / "idx", np.dtype(np.int32))
    ev.append_bytes(arrays["idx"][:1234].tobytes(), 1234)
    ev.flush()
    ev.append_bytes(arrays["idx"][1234:].tobytes(), 5000 - 1234)
    assert _bytes({**arrays, "mask": sp, "idx": ev}) == _bytes(arrays)
    assert np.array_equal(sp.read(), arrays["mask"])


def test_a_chunked_trace_keeps_earlier_chunks_records_on_disk(tmp_path):
    from tests.helpers.backtest import prepared_run
    from tests.helpers.prepared_rows import row_chunks

    p, s = prepared_run(())
    rec = TraceRecorder(None, 0, p.market.n_bars, chunked=True)
    chunks = row_chunks(p, (500,) * 10)
    for c in chunks[:3]:
        rec.row0 = c.extra["row0"]  # as the loop sets it
        rec.add_chunk(c, c.extra["row0"])
        rec.record_events(10, {"buy": np.array([1, 2]), "candidate": np.array([0, 1, 2])}, ())
    rec.add_chunk(chunks[3], chunks[3].extra["row0"])  # a border: the records so far go to disk
    held = {k: len(ev._t) for k, ev in rec.logs.items()}
    assert held == {"buy": 0, "candidate": 0} and len(rec.logs["buy"]) == 3
    assert rec.logs["candidate"].n_symbols == 9
    t, n, idx = rec.logs["buy"].views()
    assert t.tolist() == [10, 510, 1010] and n.tolist() == [2, 2, 2] and idx.tolist() == [1, 2] * 3
    assert all(isinstance(v, Spooled) for v in rec._rows.values())  # the masks' rows: spooled too
