"""A ``.npz`` writer whose bytes depend on the arrays only, and that streams arrays kept on disk.

``np.savez_compressed`` stamps each member with the wall clock, so the same run saved twice gives
two files; here every member carries one fixed time (1980-01-01, the zip format's first), and the
members are the ones numpy writes (``name.npy``, deflated, zip64): ``np.load`` reads them as its
own. A :class:`Spooled` array (rows appended to files as a run goes: a chunked backtest's trace)
is copied into its member block by block, never held whole in memory.
"""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Mapping

import numpy as np

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_BLOCK = 1 << 20


@dataclass
class Spooled:
    """An array appended row block by row block to one file: its dtype and the shape of a row."""

    path: Path
    dtype: np.dtype
    row_shape: tuple[int, ...] = ()
    rows: int = 0
    tail: list[bytes] = field(default_factory=list)  # appended since the last flush

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {a.shape[1:]} appended to a spool of rows {self.row_shape}")
        self.tail.append(a.tobytes())
        self.rows += a.shape[0]

    def append_bytes(self, data: bytes, rows: int) -> None:
        self.tail.append(bytes(data))
        self.rows += rows

    def flush(self) -> None:
        if self.tail:
            with open(self.path, "ab") as fh:
                for part in self.tail:
                    fh.write(part)
            self.tail.clear()

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *self.row_shape)

    def read(self) -> np.ndarray:
        """The whole array, in memory (for readers; the writer streams it)."""
        self.flush()
        if not self.path.exists():
            return np.zeros(self.shape, dtype=self.dtype)
        return np.fromfile(self.path, dtype=self.dtype).reshape(self.shape)

    def write_body(self, fid: BinaryIO) -> None:
        self.flush()
        if self.path.exists():
            with open(self.path, "rb") as fh:
                shutil.copyfileobj(fh, fid, _BLOCK)


def write_npz(fh: BinaryIO, arrays: Mapping[str, np.ndarray | Spooled]) -> None:
    """Write ``arrays`` to ``fh`` as a compressed .npz, member by member, in the mapping's order."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key, val in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fid:
                if isinstance(val, Spooled):
                    np.lib.format.write_array_header_1_0(fid, {"descr": np.lib.format.dtype_to_descr(val.dtype),
                                                               "fortran_order": False, "shape": val.shape})
                    val.write_body(fid)
                else:
                    a = np.asanyarray(val)
                    if not a.flags.c_contiguous:
                        a = np.ascontiguousarray(a)
                    np.lib.format.write_array_header_1_0(fid, np.lib.format.header_data_from_array_1_0(a))
                    view = memoryview(a.reshape(-1).view(np.uint8)) if a.size else b""
                    for i in range(0, len(view), _BLOCK):
                        fid.write(view[i:i + _BLOCK])
