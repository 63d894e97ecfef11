"""A market cut into consecutive row chunks, as a chunked run reads it."""
from __future__ import annotations

from itertools import cycle

from engine.market.data import MarketData


def cut(market: MarketData, sizes: tuple[int, ...]) -> list[tuple[int, MarketData]]:
    """``(row0, chunk)`` over every row of ``market``: chunks of ``sizes`` rows, the sizes
    repeated until the rows run out (the last chunk is what is left)."""
    out, a = [], 0
    for size in cycle(sizes):
        if a >= market.n_bars:
            break
        b = min(a + size, market.n_bars)
        out.append((a, market.select(start=a, stop=b)))
        a = b
    return out
