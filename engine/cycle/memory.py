"""Let big numpy temporaries reuse freed memory instead of faulting in fresh pages.

``prepare`` builds dozens of (T, N) arrays and frees most of them again (70 MB each at 1,000
symbols x a year of hours). glibc serves every such block with a fresh ``mmap`` and unmaps it
on free, so each new array pays a page fault per 4 KiB page: measured here (``python benchmarks/claims.py``),
about 45 ms to write a 70 MB array that way against 9 ms into memory already mapped, and it varies with how many
huge pages the kernel has free. Inside :func:`reuse_freed_memory` big blocks come from the
heap and freed ones stay there for the next array; on exit the defaults come back and the
heap's free memory is returned to the system. Not glibc (macOS, musl): nothing happens.
Only speed changes: no value computed inside depends on where its memory came from.

A run read in chunks (engine/backtest/chunked.py) runs inside one such block: its chunks all
have one shape (engine/modes/month_chunks.py ``chunk_rows``), so the arrays one chunk frees
are the ones the next allocates, in pages already mapped. Chunks of calendar months (28 to 31
days) did not fit the holes the last one's left between the few blocks that stay (the trace's
packed rows, the streams' carried rows): the heap grew month after month, and handing it back
at each border (``malloc_trim``) cost every chunk its pages' faults again (3 months of 1-minute
bars for 200 products: 1.1 to 2.1 s of system time in the preparer with a trim at each border,
0.4 to 0.6 s without; ``python benchmarks/chunked_memory.py``, its "prepare" column).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from typing import Iterator

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_libc = None
_depth = 0


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        # The process's own symbols first: libc is loaded already, while find_library runs
        # `ldconfig -p` in a subprocess on every run.
        for find in (lambda: None, lambda: ctypes.util.find_library("c")):
            try:
                lib = ctypes.CDLL(find())
            except OSError:
                continue
            if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                _libc = lib
                break
    return _libc or None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    lib = _glibc()
    global _depth
    if lib is None or _depth:  # not glibc, or an outer block already set it up
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    _depth += 1
    lib.mallopt(_M_MMAP_MAX, 0)
    lib.mallopt(_M_TRIM_THRESHOLD, 1 << 40)
    try:
        yield
    finally:
        _depth -= 1
        lib.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        lib.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
        lib.malloc_trim(0)
