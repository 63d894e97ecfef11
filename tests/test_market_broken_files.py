"""A corpus of broken data files: each must fail with the file, row, column and a precise reason."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from engine.market.loaders import load_market
from engine.market.validate import DataError
from tests.helpers.market import HOUR_MS, T0_MS, csv_text, frame, good_rows, write_text


@dataclass(frozen=True)
class Broken:
    id: str
    source: str
    file: str
    write: callable  # (folder, file) -> None
    row: int | None
    column: str | None
    message: str  # exact text after "<file>: "


def _csv(mutate, date="iso"):
    def write(folder: Path, name: str) -> None:
        rows = [list(r) for r in good_rows(6)]
        mutate(rows)
        write_text(folder, name, csv_text(rows, date=date))
    return write


def _set(row: int, col: int, value):
    """Mutation setting data row ``row`` (1-based), column index ``col`` to ``value``."""
    def mutate(rows):
        rows[row - 1][col] = value
    return mutate


def _json(mutate, gz=False):
    def write(folder: Path, name: str) -> None:
        rows = [[int(r[0]), *r[1:]] for r in good_rows(6)]
        mutate(rows)
        text = json.dumps(rows)
        if gz:
            with gzip.open(folder / name, "wt") as fh:
                fh.write(text)
        else:
            write_text(folder, name, text)
    return write


def _table(mutate, kind):
    def write(folder: Path, name: str) -> None:
        rows = [list(r) for r in good_rows(6)]
        mutate(rows)
        df = frame(rows)
        (df.to_feather if kind == "feather" else df.to_parquet)(folder / name)
    return write


rows6 = good_rows(6)
CSV = "BTC_USDC-1h.csv"

CORPUS = [
    Broken("csv-duplicate-time", "csv", CSV, _csv(_set(3, 0, rows6[1][0])), 3, "date",
           "data row 3 (line 4), column 'date': found 2024-01-01T01:00:00Z, expected unique timestamps "
           "(this one repeats the previous row)"),
    Broken("csv-unsorted", "csv", CSV, _csv(_set(4, 0, rows6[0][0] - HOUR_MS)), 4, "date",
           "data row 4 (line 5), column 'date': found 2023-12-31T23:00:00Z, expected timestamps sorted "
           "ascending (this one is earlier than the previous row)"),
    Broken("csv-off-grid", "csv", CSV, _csv(_set(2, 0, T0_MS + HOUR_MS // 2)), 2, "date",
           "data row 2 (line 3), column 'date': found 2024-01-01T00:30:00Z, expected a bar open on the 1h "
           "grid (a multiple of 3600 s since epoch)"),
    Broken("csv-nan-close", "csv", CSV, _csv(_set(3, 4, "NaN")), 3, "close",
           "data row 3 (line 4), column 'close': found nan, expected a finite price"),
    Broken("csv-inf-high", "csv", CSV, _csv(_set(1, 2, "inf")), 1, "high",
           "data row 1 (line 2), column 'high': found inf, expected a finite price"),
    Broken("csv-text-volume", "csv", CSV, _csv(_set(2, 5, "abc")), 2, "volume",
           "data row 2 (line 3), column 'volume': found 'abc', expected a number"),
    Broken("csv-empty-open", "csv", CSV, _csv(_set(5, 1, "")), 5, "open",
           "data row 5 (line 6), column 'open': found an empty cell, expected a number"),
    Broken("csv-zero-low", "csv", CSV, _csv(_set(3, 3, 0.0)), 3, "low",
           "data row 3 (line 4), column 'low': found 0.0, expected a price > 0"),
    Broken("csv-negative-volume", "csv", CSV, _csv(_set(4, 5, -2.5)), 4, "volume",
           "data row 4 (line 5), column 'volume': found -2.5, expected a volume >= 0"),
    Broken("csv-high-below-body", "csv", CSV, _csv(_set(3, 2, rows6[2][4] * 0.99)), 3, "high",
           f"data row 3 (line 4), column 'high': found {rows6[2][4] * 0.99!r}, expected >= max(open, close) "
           f"= {max(rows6[2][1], rows6[2][4])!r}"),
    Broken("csv-low-above-body", "csv", CSV, _csv(_set(2, 3, rows6[1][1] * 1.001)), 2, "low",
           f"data row 2 (line 3), column 'low': found {rows6[1][1] * 1.001!r}, expected <= min(open, close) "
           f"= {min(rows6[1][1], rows6[1][4])!r}"),
    Broken("csv-bad-date", "csv", CSV, _csv(_set(3, 0, "yesterday")), 3, "date",
           "data row 3 (line 4), column 'date': found 'yesterday', expected an ISO-8601 date "
           "(e.g. 2024-01-01T00:00:00Z) or epoch milliseconds, one form for the whole column"),
    Broken("csv-epoch-seconds", "csv", CSV, _csv(lambda rows: [r.__setitem__(0, str(r[0] // 1000)) for r in rows]),
           1, "date", "data row 1 (line 2), column 'date': found 1704067200, expected epoch milliseconds "
           "(>= 100000000000; is this in seconds?) or an ISO-8601 date"),
    Broken("csv-blank-line", "csv", CSV,
           lambda folder, name: write_text(folder, name, csv_text(good_rows(2)) + "\n" + csv_text(good_rows(
               1, t0=T0_MS + 2 * HOUR_MS)).split("\n", 1)[1]), 3, "date",
           "data row 3 (line 4), column 'date': found an empty cell, expected an ISO-8601 date "
           "(e.g. 2024-01-01T00:00:00Z) or epoch milliseconds, one form for the whole column"),
    Broken("csv-missing-column", "csv", CSV,
           lambda folder, name: write_text(folder, name, csv_text([r[:5] for r in good_rows(3)],
                                                                  header="date,open,high,low,close")),
           None, "volume",
           "missing column(s) volume; found columns date, open, high, low, close, expected "
           "date,open,high,low,close,volume"),
    Broken("csv-header-only", "csv", CSV, lambda folder, name: write_text(folder, name, "date,open,high,low,close,volume\n"),
           None, None, "no data rows, expected at least one bar"),
    Broken("csv-empty-file", "csv", CSV, lambda folder, name: write_text(folder, name, ""),
           None, None, "empty file, expected a header line date,open,high,low,close,volume and bars"),
    Broken("csv-column-twice", "csv", CSV,
           lambda folder, name: write_text(folder, name, csv_text([[*r, r[4]] for r in good_rows(3)],
                                                                  header="date,open,high,low,close,volume,Close")),
           None, "close",
           "column 'close' appears 2 times (header names are matched case-insensitively); found columns "
           "date, open, high, low, close, volume, Close, expected each of date,open,high,low,close,volume once"),
    Broken("csv-date-too-many-digits", "csv", CSV,
           _csv(_set(1, 0, "99999999999999999999999"), date="ms"),
           1, "date", "data row 1 (line 2), column 'date': found '99999999999999999999999', expected epoch "
           "milliseconds (at most 18 digits) or an ISO-8601 date"),
    Broken("json-short-row", "freqtrade", "BTC_USDC-1h.json", _json(lambda rows: rows[1].pop()), 2, None,
           "data row 2: found " + json.dumps([int(rows6[1][0]), *rows6[1][1:5]])[:80]
           + ", expected [ms, open, high, low, close, volume]"),
    Broken("json-string-close", "freqtrade", "BTC_USDC-1h.json", _json(_set(3, 4, "1.5")), 3, "close",
           'data row 3, column \'close\': found "1.5", expected a number'),
    Broken("json-not-a-list", "freqtrade", "BTC_USDC-1h.json",
           lambda folder, name: write_text(folder, name, '{"open": 1}'), None, None,
           "found a JSON dict, expected a list of [ms, open, high, low, close, volume] rows"),
    Broken("json-truncated", "freqtrade", "BTC_USDC-1h.json",
           lambda folder, name: write_text(folder, name, json.dumps(good_rows(3))[:-5]), None, None,
           None),
    Broken("jsongz-duplicate-time", "freqtrade", "BTC_USDC-1h.json.gz", _json(_set(2, 0, int(rows6[0][0])), gz=True),
           2, "date", "data row 2, column 'date': found 2024-01-01T00:00:00Z, expected unique timestamps "
           "(this one repeats the previous row)"),
    Broken("feather-negative-volume", "freqtrade", "BTC_USDC-1h.feather", _table(_set(3, 5, -1.0), "feather"),
           3, "volume", "data row 3, column 'volume': found -1.0, expected a volume >= 0"),
    Broken("parquet-negative-close", "parquet", "BTC_USDC-1h.parquet", _table(_set(6, 4, -3.0), "parquet"),
           6, "close", "data row 6, column 'close': found -3.0, expected a price > 0"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_broken_file_fails_with_a_precise_error(tmp_path, case):
    case.write(tmp_path, case.file)
    with pytest.raises(DataError) as err:
        load_market(case.source, tmp_path, "1h")
    e = err.value
    text = str(e)
    assert text.startswith(f"{case.file}: "), text
    assert e.file == case.file
    assert e.row == case.row
    assert e.column == case.column
    if case.message is not None:
        assert text == f"{case.file}: {case.message}"


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 12


def test_json_truncated_names_line_and_column(tmp_path):
    write_text(tmp_path, "BTC_USDC-1h.json", "[[1704067200000, 1, 2, 0.5, 1.5, 3],\n [1704070800000, 1,")
    with pytest.raises(DataError, match=r"BTC_USDC-1h.json: invalid JSON at line 2, column \d+"):
        load_market("freqtrade", tmp_path, "1h")


def test_many_bad_rows_are_counted(tmp_path):
    rows = [list(r) for r in good_rows(6)]
    for r in rows[2:5]:
        r[5] = -1.0
    write_text(tmp_path, CSV, csv_text(rows))
    with pytest.raises(DataError, match=r"data row 3 \(line 4\), column 'volume': found -1.0, expected a "
                                        r"volume >= 0 \(2 more row\(s\) like this\)"):
        load_market("csv", tmp_path, "1h")


def test_damaged_parquet_is_a_data_error(tmp_path):
    write_text(tmp_path, "BTC_USDC-1h.parquet", "this is not parquet")
    with pytest.raises(DataError, match=r"BTC_USDC-1h.parquet: not a readable Parquet file"):
        load_market("parquet", tmp_path, "1h")


def test_parquet_missing_column(tmp_path):
    pd.DataFrame({"date": [T0_MS], "open": [1.0]}).to_parquet(tmp_path / "BTC_USDC-1h.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) high, low, close, volume"):
        load_market("parquet", tmp_path, "1h")


def _extra_cells(line: int, extra: str):
    """A CSV whose file line ``line`` (header = 1) ends with ``extra`` cells."""
    def write(folder: Path, name: str) -> None:
        lines = csv_text(good_rows(6)).splitlines()
        lines[line - 1] += extra
        write_text(folder, name, "\n".join(lines) + "\n")
    return write


@pytest.mark.parametrize("line,extra,n", [(2, ",5", 7), (2, ",", 7), (4, ",5,6", 8), (7, ",x", 7)])
def test_csv_row_with_more_cells_than_the_header_is_named(tmp_path, line, extra, n):
    # pandas silently turns a first row with an extra cell into an index column (every value
    # then shifts one column left) and reports later ones as a tokenizer error.
    _extra_cells(line, extra)(tmp_path, CSV)
    with pytest.raises(DataError) as err:
        load_market("csv", tmp_path, "1h")
    assert str(err.value) == (f"{CSV}: data row {line - 1} (line {line}): found {n} cells, expected 6 like the "
                              f"header (date,open,high,low,close,volume)")
    assert (err.value.file, err.value.row, err.value.column) == (CSV, line - 1, None)


@pytest.mark.parametrize("fmt", ["csv_ms", "json", "parquet_ms"])
def test_epoch_microseconds_are_rejected_not_read_as_far_future_milliseconds(tmp_path, fmt):
    # Binance's public kline files switched to epoch microseconds; read as ms they landed in
    # the year 55,970 with 999 empty bars between every two real ones, without a word.
    us = [[int(r[0]) * 1000, *r[1:]] for r in good_rows(3)]
    name = "BTC_USDC-1h." + {"csv_ms": "csv", "json": "json", "parquet_ms": "parquet"}[fmt]
    if fmt == "csv_ms":
        write_text(tmp_path, name, csv_text(us, date="ms"))
    elif fmt == "json":
        write_text(tmp_path, name, json.dumps(us))
    else:
        pd.DataFrame(us, columns=["date", "open", "high", "low", "close", "volume"]).to_parquet(tmp_path / name)
    with pytest.raises(DataError) as err:
        load_market("parquet" if fmt == "parquet_ms" else "csv" if fmt == "csv_ms" else "freqtrade", tmp_path, "1h")
    line = " (line 2)" if fmt == "csv_ms" else ""
    assert str(err.value) == (f"{name}: data row 1{line}, column 'date': found {T0_MS * 1000}, expected epoch "
                              f"milliseconds (< 100000000000000; is this in microseconds or nanoseconds?) "
                              f"or an ISO-8601 date")
    assert (err.value.row, err.value.column) == (1, "date")


@pytest.mark.parametrize("ext", ["json", "json.gz"])
@pytest.mark.parametrize("token,expected", [
    ("Infinity", "whole epoch milliseconds"),
    ("-Infinity", "whole epoch milliseconds"),
    ("NaN", "whole epoch milliseconds"),
    ("1704070800000.5", "whole epoch milliseconds"),
    ("99999999999999999999999", "epoch milliseconds (< 100000000000000; is this in microseconds or "
                                "nanoseconds?) or an ISO-8601 date"),
    ("9223372036854775807", "epoch milliseconds (< 100000000000000; is this in microseconds or "
                            "nanoseconds?) or an ISO-8601 date"),
])
def test_json_date_not_finite_or_overflowing_is_shown_as_written(tmp_path, ext, token, expected):
    # Shown before as np.float64(inf) / NaTZ, or (overflow) blamed on the next row as "not sorted".
    rows = [[int(r[0]), *r[1:]] for r in good_rows(3)]
    text = json.dumps(rows).replace(str(rows[1][0]), token, 1)
    name = f"BTC_USDC-1h.{ext}"
    if ext == "json":
        write_text(tmp_path, name, text)
    else:
        with gzip.open(tmp_path / name, "wt") as fh:
            fh.write(text)
    with pytest.raises(DataError) as err:
        load_market("freqtrade", tmp_path, "1h")
    assert str(err.value) == f"{name}: data row 2, column 'date': found {token}, expected {expected}"
    assert (err.value.row, err.value.column) == (2, "date")


def test_parquet_float_date_not_finite_is_shown_plainly(tmp_path):
    df = pd.DataFrame(good_rows(3), columns=["date", "open", "high", "low", "close", "volume"])
    df["date"] = df["date"].astype(float)
    df.loc[1, "date"] = float("inf")
    df.to_parquet(tmp_path / "BTC_USDC-1h.parquet")
    with pytest.raises(DataError) as err:
        load_market("parquet", tmp_path, "1h")
    assert str(err.value) == "BTC_USDC-1h.parquet: data row 2, column 'date': found inf, expected whole epoch milliseconds"


def test_json_integer_too_big_for_a_float_is_named(tmp_path):
    rows = [[int(r[0]), *r[1:]] for r in good_rows(3)]
    big = "1" + "0" * 400
    write_text(tmp_path, "BTC_USDC-1h.json", json.dumps(rows).replace(repr(rows[2][4]), big, 1))
    with pytest.raises(DataError) as err:
        load_market("freqtrade", tmp_path, "1h")
    assert str(err.value) == f"BTC_USDC-1h.json: data row 3, column 'close': found {big[:24]}... (401 digits), expected a number"
    assert (err.value.row, err.value.column) == (3, "close")


def test_json_nested_too_deeply_is_a_data_error(tmp_path):
    write_text(tmp_path, "BTC_USDC-1h.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"^BTC_USDC-1h.json: invalid JSON \(nested too deeply\), expected "):
        load_market("freqtrade", tmp_path, "1h")


def test_json_integer_beyond_pythons_digit_limit_is_a_data_error(tmp_path):
    write_text(tmp_path, "BTC_USDC-1h.json", "[[1704067200000, 1" + "0" * 5000 + ", 1, 1, 1, 1]]")
    with pytest.raises(DataError, match=r"^BTC_USDC-1h.json: invalid JSON \(.*digits.*\), expected "):
        load_market("freqtrade", tmp_path, "1h")


@pytest.mark.parametrize("named", ["1m", "15m"])
def test_coarser_bars_in_a_file_named_for_a_finer_timeframe_are_an_error(tmp_path, named):
    # 30 five-minute bars named -1m loaded as 1m with 4 empty bars between every two real ones
    # (only a gap warning); the rules then ran on a 1m clock over 5m data.
    rows = [[int(r[0]), *r[1:]] for r in good_rows(30, timeframe="5m")]
    if named == "15m":
        rows = [[int(r[0]), *r[1:]] for r in good_rows(30, timeframe="30m")]
    name = f"BTC_USDC-{named}.json"
    write_text(tmp_path, name, json.dumps(rows))
    with pytest.raises(DataError) as err:
        load_market("freqtrade", tmp_path, named)
    coarse = "5m" if named == "1m" else "30m"
    assert str(err.value) == (f"{name}: column 'date': consecutive bars are always a multiple of {coarse} apart, "
                              f"expected {named} bars (is this {coarse} data named -{named}?)")
    assert (err.value.column, err.value.row) == ("date", None)


def test_a_finer_file_with_many_gaps_still_loads(tmp_path):
    rows = [[int(r[0]), *r[1:]] for r in good_rows(30, timeframe="1m")]
    del rows[1::2][:10]  # gaps of 2 bars, but some bars are still 1m apart
    write_text(tmp_path, "BTC_USDC-1m.json", json.dumps(rows))
    assert load_market("freqtrade", tmp_path, "1m").n_bars == 30


@pytest.mark.parametrize("date", ["1000-01-01T00:00:00Z", "1950-01-01T00:00:00Z", "6000-01-01T00:00:00Z"])
def test_iso_dates_obey_the_epoch_ms_range(tmp_path, date):
    """ISO dates get the range epoch-ms integers get (1973-03-03 to 5138-11-16), not any year."""
    rows = [list(r) for r in good_rows(3)]
    text = csv_text(rows).splitlines()
    text[2] = date + text[2][text[2].index(","):]
    write_text(tmp_path, "BTC_USDC-1h.csv", "\n".join(text) + "\n")
    with pytest.raises(DataError) as info:
        load_market("csv", tmp_path, "1h")
    assert str(info.value) == (f"BTC_USDC-1h.csv: data row 2 (line 3), column 'date': found {date!r}, expected a date "
                               f"from 1973-03-03 to 5138-11-16 (the range of epoch milliseconds read)")


def test_datetime_column_dates_obey_the_epoch_ms_range(tmp_path):
    df = frame(good_rows(3))
    df.loc[1, "date"] = pd.Timestamp("1950-01-01", tz="UTC")
    df.to_feather(tmp_path / "BTC_USDC-1h.feather")
    with pytest.raises(DataError, match=r"data row 2, column .date.: found .*1950.*, expected a date from 1973-03-03 to 5138-11-16"):
        load_market("freqtrade", tmp_path, "1h")
