"""The SVG chart pieces of the reports: axes a person can read, markers where they belong."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from app.charts import (
    Marker,
    Series,
    heat_color,
    line_chart,
    month_heat_table,
    nice_ticks,
    time_ticks,
)
from app.readable import pct


def stamps(*texts: str) -> np.ndarray:
    return np.array([pd.Timestamp(t, tz="Asia/Kolkata").value for t in texts], dtype=np.int64)


def test_value_axis_ticks_are_round_and_cover_the_data():
    assert nice_ticks(989_935.0, 1_009_000.0) == [985_000.0, 990_000.0, 995_000.0, 1_000_000.0,
                                                  1_005_000.0, 1_010_000.0]  # fmt: skip
    ticks = nice_ticks(-0.0198, 0.0)
    assert ticks[0] <= -0.0198 and ticks[-1] == 0.0 and [pct(t, 1) for t in ticks][-1] == "0.0%"


def test_time_axis_labels_are_ist_dates_or_times_within_one_day():
    days = stamps("2021-01-01 09:15", "2021-01-04 09:15", "2021-02-26 15:15")
    assert [label for _, label in time_ticks(days)] == ["2021-01-01", "2021-01-04", "2021-02-26"]
    one_day = stamps("2021-03-01 09:15", "2021-03-01 12:00", "2021-03-01 15:25")
    assert [label for _, label in time_ticks(one_day)] == ["09:15", "12:00", "15:25"]


def test_markers_sit_on_their_bars_and_carry_their_kind():
    ts = stamps(*(f"2021-01-0{d} 09:15" for d in range(4, 9)))
    svg = line_chart(
        ts, [Series(np.array([1.0, 2.0, 3.0, 2.0, 1.0]))], str,
        markers=[Marker(int(ts[1]), 2.0, "entry", "in"), Marker(int(ts[3]), 2.0, "exit", "out")],
        chart_id="c",
    )  # fmt: skip
    assert svg.count('class="marker entry"') == 1 and svg.count('class="marker exit"') == 1
    x_of = {
        m.group(1): float(m.group(2)) for m in re.finditer(r'marker (\w+)" points="([\d.]+)', svg)
    }
    # five bars across the plot: the 2nd and 4th sit at a quarter and three quarters
    assert x_of["exit"] - x_of["entry"] == (900 - 84 - 12) / 2
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_heat_table_colours_by_sign_and_sums_years():
    html = month_heat_table({"2021-01": -0.0056, "2021-02": 0.0104}, pct, {"2021": 0.0047}, "m")
    assert 'data-month="2021-01"' in html and "-0.56%" in html and "0.47%" in html
    assert heat_color(0.01, 0.01) != heat_color(-0.01, 0.01) and heat_color(0.0, 1.0) == "#ffffff"
