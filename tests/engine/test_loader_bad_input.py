"""Bad input the loader used to misread silently (issue 10, items 5–8): every case is refused
naming file/row/column, or dropped and counted, or read only as declared."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.sessions import NSE
from config.settings import DataSettings
from engine.data.loader import load_bars
from engine.data.quality import DataError
from engine.data.timestamps import parse_times

HEADER = "timestamp,open,high,low,close,volume\n"


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def rows(*lines: str, header: str = HEADER) -> str:
    return header + "\n".join(lines) + "\n"


def load(path: Path, interval: str = "1minute", **data: object):
    return load_bars([path], interval, session=NSE, data=DataSettings(**data))


def refused(path: Path, *needles: str, **data: object) -> str:
    with pytest.raises(DataError) as info:
        load(path, **data)
    message = str(info.value)
    for needle in (str(path), *needles):
        assert needle in message, message
    return message


def ist(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="Asia/Kolkata")


# ---- 5. timestamps --------------------------------------------------------------------------

DAY_FIRST = [
    "04/01/2021 09:16,100,101,99,100.5,10",  # 4 January to an Indian vendor
    "04/01/2021 09:17,100.5,102,100,101,20",
    "13/01/2021 09:16,101,101.5,100.5,101.2,30",
]


def test_day_first_text_is_refused_not_read_month_first(tmp_path):
    path = write(tmp_path, "INFY.csv", rows(*DAY_FIRST))
    message = refused(path, "row 1", "column 'timestamp'", "'04/01/2021 09:16'", "--date-format")
    assert "ISO 8601" in message and "dayfirst" in message


@pytest.mark.parametrize(
    "fmt,first",
    [
        ("dayfirst", "2021-01-04 09:16"),
        ("%d/%m/%Y %H:%M", "2021-01-04 09:16"),
    ],
)
def test_a_declared_day_first_format_reads_4_january(tmp_path, fmt, first):
    path = write(tmp_path, "INFY.csv", rows(*DAY_FIRST))
    frame = load(path, date_format=fmt).frame
    assert frame["ts"].tolist() == [ist(first), ist("2021-01-04 09:17"), ist("2021-01-13 09:16")]


def test_month_first_is_read_month_first_and_refuses_a_day_first_row(tmp_path):
    path = write(tmp_path, "INFY.csv", rows(*DAY_FIRST[:2]))
    assert load(path, date_format="monthfirst").frame["ts"].iloc[0] == ist("2021-04-01 09:16")
    path = write(tmp_path, "BAD.csv", rows(*DAY_FIRST))  # 13/01: no month 13
    refused(path, "row 3", "'13/01/2021 09:16'", date_format="monthfirst")


def test_a_value_that_does_not_match_the_declared_format_is_refused(tmp_path):
    path = write(tmp_path, "F.csv", rows(DAY_FIRST[0], "2021-01-04 09:17,100,101,99,100.5,10"))
    refused(path, "row 2", "'2021-01-04 09:17'", "'%d/%m/%Y %H:%M'", date_format="%d/%m/%Y %H:%M")


def test_dayfirst_still_reads_iso_and_keeps_zones(tmp_path):
    path = write(
        tmp_path,
        "Z.csv",
        rows("2021-01-04T03:46:00Z,1,1,1,1,1", "04.01.2021 09:17:00+05:30,1,1,1,1,1"),
    )
    frame = load(path, date_format="dayfirst").frame
    assert frame["ts"].tolist() == [ist("2021-01-04 09:16"), ist("2021-01-04 09:17")]


@pytest.mark.parametrize(
    "text",
    ["2021-01-04 09:16", "2021-01-04 09:16:00", "2021-01-04T09:16:00.000", "2021-01-04T03:46Z"],
)
def test_unambiguous_iso_keeps_working(tmp_path, text):
    path = write(tmp_path, "I.csv", rows(f"{text},1,1,1,1,1"))
    assert load(path).frame["ts"].tolist() == [ist("2021-01-04 09:16")]


def test_kite_style_offset_without_colon_is_iso(tmp_path):
    path = write(tmp_path, "K.csv", rows("2021-01-04T09:16:00+0530,1,1,1,1,1"))
    assert load(path).frame["ts"].tolist() == [ist("2021-01-04 09:16")]


def test_junk_is_still_unparseable_not_ambiguous(tmp_path):
    path = write(tmp_path, "J.csv", rows("2021-01-04 09:16,1,1,1,1,1", "soon,1,1,1,1,1"))
    message = refused(path, "row 2", "'soon'", "cannot be parsed")
    assert "ambiguous" not in message


EPOCH_START = ist("2024-01-02 09:15")
EPOCH_NS = [EPOCH_START.value + i * 60_000_000_000 for i in range(10)]


def epoch_bars(tmp_path: Path, values: list[int] | list[float], name: str = "E.parquet") -> Path:
    n = len(values)
    frame = pd.DataFrame(
        {"ts": values, "open": [100.0] * n, "high": [101.0] * n, "low": [99.0] * n}
    )
    frame["close"], frame["volume"] = 100.0, 1
    path = tmp_path / name
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize("unit,per", [("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
def test_epoch_unit_is_detected_from_the_magnitude(tmp_path, unit, per):
    path = epoch_bars(tmp_path, [v // per for v in EPOCH_NS])
    bars = load(path)
    assert bars.frame["ts"].iloc[0] == EPOCH_START  # not 1970-01-19
    assert len(bars.frame) == 10 and bars.frame["ts"].diff().dropna().eq(pd.Timedelta("1min")).all()
    assert load(path, epoch_unit=unit).frame["ts"].equals(bars.frame["ts"])


def test_float_and_text_epochs(tmp_path):
    seconds = [v / 1e9 for v in EPOCH_NS]
    assert load(epoch_bars(tmp_path, seconds)).frame["ts"].iloc[0] == EPOCH_START
    csv = write(tmp_path, "T.csv", rows(*(f"{v // 1000},1,1,1,1,1" for v in EPOCH_NS)))  # us
    assert load(csv).frame["ts"].iloc[-1] == ist("2024-01-02 09:24")


def test_microseconds_are_not_five_minute_bars_in_1970(tmp_path):
    path = epoch_bars(tmp_path, [v // 1000 for v in EPOCH_NS])
    bars = load_bars([path], "5minute", session=NSE)
    assert bars.frame["ts"].tolist() == [ist("2024-01-02 09:15"), ist("2024-01-02 09:20")]


def test_a_declared_unit_that_does_not_fit_is_refused(tmp_path):
    path = epoch_bars(tmp_path, [v // 1000 for v in EPOCH_NS])  # microseconds
    message = refused(path, "row 1", "column 'ts'", "declared epoch unit 'ns'", epoch_unit="ns")
    assert "fits unit 'us'" in message


def test_epochs_that_fit_no_unit_or_mix_units_are_refused(tmp_path):
    path = epoch_bars(tmp_path, [12345, 12346], name="N.parquet")
    refused(path, "row 1", "no epoch unit", "(s, ms, us, ns)")
    mixed = [v // 1000 for v in EPOCH_NS]
    mixed[3] = EPOCH_NS[3] // 10**6  # milliseconds among microseconds
    refused(epoch_bars(tmp_path, mixed, name="M.parquet"), "row 4", "fits unit 'ms'")


def test_a_date_written_as_digits_is_not_an_epoch_but_can_be_declared(tmp_path):
    path = write(tmp_path, "G.csv", rows("202101040916,1,1,1,1,1"))
    refused(path, "row 1", "no epoch unit", "'%Y%m%d'")
    frame = load(path, date_format="%Y%m%d%H%M").frame
    assert frame["ts"].tolist() == [ist("2021-01-04 09:16")]


@pytest.mark.parametrize("when", ["1985-06-03 09:15", "2999-01-02 09:15"])
def test_dates_outside_any_trading_history_are_refused(tmp_path, when):
    path = write(tmp_path, "D.csv", rows("2021-01-04 09:16,1,1,1,1,1", f"{when},1,1,1,1,1"))
    refused(path, "row 2", "column 'timestamp'", "plausible trading dates")


def test_a_datetime_column_written_in_the_wrong_unit_is_refused(tmp_path):
    # microseconds stored as a nanosecond datetime: the parquet column is already "datetime"
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime([v // 1000 for v in EPOCH_NS], unit="ns"),
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
        }
    )
    path = tmp_path / "W.parquet"
    frame.to_parquet(path)
    refused(path, "row 1", "1970-01-20", "another epoch unit")


def test_tomorrow_is_plausible_and_the_day_after_is_not():
    values = pd.Series(["2024-06-06 09:15"])
    parse_times("x.csv", "ts", values, today=date(2024, 6, 5))  # tomorrow: a clock-skew margin
    with pytest.raises(DataError, match="plausible"):
        parse_times("x.csv", "ts", values, today=date(2024, 6, 4))


def test_the_date_format_is_part_of_the_fingerprint(tmp_path):
    iso = write(tmp_path, "I.csv", rows("2021-01-04 09:16,1,1,1,1,1"))
    assert load(iso).fingerprint == load(iso, date_format="iso").fingerprint
    assert load(iso).fingerprint == load_bars([iso], "1minute", session=NSE).fingerprint
    path = write(tmp_path, "INFY.csv", rows(*DAY_FIRST[:2]))
    day, month = load(path, date_format="dayfirst"), load(path, date_format="monthfirst")
    assert day.fingerprint != month.fingerprint
    assert load(path, date_format="%d/%m/%Y %H:%M").fingerprint not in {
        day.fingerprint,
        month.fingerprint,
    }


# ---- 6. non-finite prices --------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,reason",
    [
        ("2024-01-02 09:16:00,inf,inf,inf,inf,20", "non_finite_price"),
        ("2024-01-02 09:16:00,100,inf,100,101,20", "non_finite_price"),
        ("2024-01-02 09:16:00,-inf,102,100,101,20", "non_finite_price"),
        ("2024-01-02 09:16:00,100,102,100,101,inf", "non_finite_volume"),
        ("2024-01-02 09:16:00,100,102,100,101,-inf", "non_finite_volume"),
    ],
)
def test_infinite_values_are_dropped_and_counted(tmp_path, line, reason):
    good = ["2024-01-02 09:15:00,100,101,99,100.5,10", "2024-01-02 09:17:00,101,102,100,101,5"]
    path = write(tmp_path, "INF.csv", rows(good[0], line, good[1]))
    bars = load(path)
    assert dict(bars.quality.dropped) == {reason: 1}
    assert np.isfinite(bars.frame[["open", "high", "low", "close", "volume"]].to_numpy()).all()
    assert len(bars.frame) == 2 and reason in str(bars.quality)


def test_infinite_prices_in_a_parquet_are_dropped_too(tmp_path):
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-02 09:15", "2024-01-02 09:16"]),
            "open": [100.0, np.inf],
            "high": [101.0, np.inf],
            "low": [99.0, np.inf],
            "close": [100.0, np.inf],
        }
    )
    path = tmp_path / "P.parquet"
    frame.to_parquet(path)
    assert load(path).quality.dropped == {"non_finite_price": 1}


# ---- 7. bad prints ---------------------------------------------------------------------------


def session_bars(closes: list[float], day: str = "2024-01-02", symbol: str = "X") -> list[str]:
    """One line per minute from 09:15, open = previous close, a 0.1% range around the body."""
    lines, prev = [], closes[0]
    for i, c in enumerate(closes):
        o = prev
        hi, lo = max(o, c) * 1.001, min(o, c) * 0.999
        t = ist(f"{day} 09:15") + pd.Timedelta(minutes=i)
        lines.append(f"{t:%Y-%m-%d %H:%M},{symbol},{o:.4f},{hi:.4f},{lo:.4f},{c:.4f},10")
        prev = c
    return lines


LONG = "timestamp,symbol,open,high,low,close,volume\n"


def long_csv(tmp_path: Path, *sessions: list[str], name: str = "B.csv") -> Path:
    return write(tmp_path, name, rows(*(line for s in sessions for line in s), header=LONG))


def flat(n: int, level: float = 100.0) -> list[float]:
    return [level + 0.01 * (i % 3) for i in range(n)]


def spiked(closes: list[float], at: int, factor: float) -> list[str]:
    """``closes`` as bars, then bar ``at`` (all its prices) multiplied by ``factor``."""
    lines = session_bars(closes)
    ts, sym, *prices = lines[at].split(",")
    o, h, lo, c = (float(p) * factor for p in prices[:4])
    lines[at] = f"{ts},{sym},{o:.4f},{h:.4f},{lo:.4f},{c:.4f},{prices[4]}"
    return lines


def test_a_bar_at_1000x_is_dropped_and_counted(tmp_path):
    path = long_csv(tmp_path, spiked(flat(20), 10, 1000.0))
    bars = load(path)
    assert bars.quality.dropped == {"outlier_move": 1}
    assert len(bars.frame) == 19 and bars.frame["high"].max() < 101
    assert "outlier_move" in str(bars.quality)


def test_refuse_names_file_row_symbol_and_setting(tmp_path):
    path = long_csv(tmp_path, spiked(flat(20), 10, 0.001))  # a decimal slip down is as far
    refused(
        path,
        "row 11",
        "X bar at 2024-01-02 09:25",
        "data.max_bar_move_pct",
        "outlier_action",
        outlier_action="refuse",
    )


@pytest.mark.parametrize("at", [0, 19])
def test_a_bad_first_or_last_bar_of_the_session_is_caught(tmp_path, at):
    bars = load(long_csv(tmp_path, spiked(flat(20), at, 1000.0)))
    assert bars.quality.dropped == {"outlier_move": 1}
    assert bars.frame["close"].max() < 101


def test_the_good_bar_next_to_a_spike_at_the_edge_stays(tmp_path):
    bars = load(long_csv(tmp_path, spiked(flat(6), 1, 1000.0)))
    assert bars.quality.dropped == {"outlier_move": 1}
    assert len(bars.frame) == 5 and bars.frame["ts"].iloc[0] == ist("2024-01-02 09:15")


def test_genuine_big_moves_are_kept(tmp_path):
    circuit = flat(10) + flat(10, 120.0)  # +20% in one bar, and it stays (upper circuit)
    crash = [*flat(10), 80.0, *flat(9, 82.0)]  # -20% and stays near
    rebound = [*flat(10), 135.0, *flat(9, 100.0)]  # +35% and back: within the 50% bands allow
    day2 = [v * 1.6 for v in flat(20)]  # a gap open (or an unadjusted bonus): a new session
    path = long_csv(
        tmp_path,
        session_bars(circuit, symbol="UP"),
        session_bars(crash, symbol="DOWN"),
        session_bars(rebound, symbol="ROUND"),
        session_bars(flat(20)),
        session_bars(day2, day="2024-01-03"),
    )
    bars = load(path)
    assert "outlier_move" not in bars.quality.dropped
    assert len(bars.frame) == 100


def test_the_limit_is_a_setting(tmp_path):
    rebound = [*flat(10), 135.0, *flat(9, 100.0)]
    path = long_csv(tmp_path, session_bars(rebound))
    assert load(path).quality.dropped == {}
    tight = load(path, max_bar_move_pct=20.0)
    assert tight.quality.dropped == {"outlier_move": 1}
    assert tight.fingerprint != load(path).fingerprint  # it changed the bars


def test_two_bars_that_disagree_with_no_third_are_not_judged(tmp_path):
    bars = load(long_csv(tmp_path, session_bars([100.0, 1000.0])))
    assert bars.quality.dropped == {} and len(bars.frame) == 2


def test_a_level_that_persists_is_never_a_bad_print(tmp_path):
    """Even with a limit far below the moves: a jump that stays, or a new session's gap, is a
    new level; only the bar that goes and comes straight back is a bad print."""
    circuit = flat(10) + flat(10, 120.0)  # +20% in one bar, and it stays
    rebound = [*flat(10), 135.0, *flat(9, 100.0)]  # +35% and straight back
    day2 = [v * 1.6 for v in flat(20)]
    path = long_csv(
        tmp_path,
        session_bars(circuit, symbol="UP"),
        session_bars(rebound, symbol="ROUND"),
        session_bars(flat(20)),
        session_bars(day2, day="2024-01-03"),
    )
    bars = load(path, max_bar_move_pct=10.0)
    assert bars.quality.dropped == {"outlier_move": 1}
    kept = bars.frame[bars.frame["symbol"] == "ROUND"]
    assert len(kept) == 19 and kept["close"].max() < 101
    assert len(bars.frame[bars.frame["symbol"] == "UP"]) == 20
    assert len(bars.frame[bars.frame["symbol"] == "X"]) == 40


def test_real_nse_files_have_no_bad_prints(nifty_path):
    both = [nifty_path.parent]  # NIFTY 50 and NIFTY BANK, 2021
    bars = load_bars(both, "1minute", session=NSE)
    assert set(bars.symbols) == {"NIFTY 50", "NIFTY BANK"}
    assert bars.quality.dropped["outlier_move"] == 0
    # with room to spare: a limit ten times tighter than the default flags nothing either
    tight = load_bars(both, "1minute", session=NSE, data=DataSettings(max_bar_move_pct=5))
    assert tight.quality.dropped["outlier_move"] == 0 and len(tight.frame) == len(bars.frame)


# ---- 8. smaller ------------------------------------------------------------------------------


def test_a_column_mixing_zoned_and_naive_values_is_our_error(tmp_path):
    path = write(
        tmp_path,
        "MIX.csv",
        rows("2024-01-02 09:15:00,1,1,1,1,1", "2024-01-02T03:46:00+00:00,1,1,1,1,1"),
    )
    refused(path, "column 'timestamp'", "row 2: '2024-01-02T03:46:00+00:00'", "row 1")


def test_mixed_offsets_are_fine(tmp_path):
    path = write(
        tmp_path,
        "OFF.csv",
        rows("2024-01-02T09:15:00+05:30,1,1,1,1,1", "2024-01-02T03:46:00+00:00,1,1,1,1,1"),
    )
    assert load(path).frame["ts"].tolist() == [ist("2024-01-02 09:15"), ist("2024-01-02 09:16")]


def test_rows_with_an_empty_symbol_are_dropped_and_counted(tmp_path):
    path = write(
        tmp_path,
        "L.csv",
        rows(
            "2024-01-02 09:15,INFY,1,1,1,1,1",
            "2024-01-02 09:16,,1,1,1,1,1",
            "2024-01-02 09:17,   ,1,1,1,1,1",
            "2024-01-02 09:18,INFY,1,1,1,1,1",
            header=LONG,
        ),
    )
    bars = load(path)
    assert bars.quality.dropped == {"missing_symbol": 2}
    assert bars.frame["symbol"].tolist() == ["INFY", "INFY"]
    assert bars.quality.rows_read == 4


def test_a_data_directory_with_notes_loads_and_says_what_was_skipped(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder, "INFY.csv", rows("2024-01-02 09:15:00,100,101,99,100.5,10"))
    write(folder, "TCS_1min.txt", rows("2024-01-02 09:15:00,200,201,199,200.5,10"))
    write(folder, "README.txt", "Bars from the vendor, 1-minute, IST.\n")
    write(folder, "notes.md", "# notes\n")
    write(folder, ".DS_Store", "\x00\x01")
    (folder / "old").mkdir()
    bars = load_bars([folder], "1minute", session=NSE)
    assert bars.symbols == ["INFY", "TCS"]
    skipped = "\n".join(bars.quality.skipped)
    for name in ("README.txt", "notes.md", ".DS_Store", "old"):
        assert str(folder / name) in skipped
    assert "not a bar table" in skipped and "no time column" in skipped
    assert "skipped" in str(bars.quality) and "README.txt" in str(bars.quality)
    assert bars.quality.as_dict()["skipped"] == bars.quality.skipped
    assert bars.quality.files == [str(folder / "INFY.csv"), str(folder / "TCS_1min.txt")]
    # the notes are not data: editing them does not change the fingerprint
    before = bars.fingerprint
    write(folder, "README.txt", "changed\n")
    assert load_bars([folder], "1minute", session=NSE).fingerprint == before


def test_a_txt_bar_table_with_a_bad_row_is_still_refused(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    bad = write(folder, "X.txt", rows("2024-01-02 09:15:00,abc,101,99,100.5,10"))
    with pytest.raises(DataError, match="row 1, column 'open'"):
        load_bars([folder], "1minute", session=NSE)
    assert bad.exists()


def test_a_non_data_file_named_explicitly_is_refused(tmp_path):
    readme = write(tmp_path, "README.txt", "just notes\n")
    refused(readme, "no time column")


def test_a_directory_of_notes_only_is_refused_listing_them(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder, "README.txt", "notes\n")
    write(folder, "a.json", "{}")
    with pytest.raises(DataError) as info:
        load_bars([folder], "1minute", session=NSE)
    assert "README.txt" in str(info.value) and "a.json" in str(info.value)
