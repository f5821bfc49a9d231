"""What a person reads: percentages, two-decimal ratios, rupees, and zones named on every time."""

from datetime import UTC, datetime

from app.readable import format_metric, ist, utc


def test_metrics_read_as_people_expect() -> None:
    assert format_metric("total_return", -0.0055372) == "-0.55%"
    assert format_metric("win_rate", 0.288) == "28.80%"
    assert format_metric("sharpe", -2.767145868579116) == "-2.77"
    assert format_metric("trade_count", 319.0) == "319"
    assert format_metric("total_pnl", -2060.5) == "₹-2,060.50"
    assert format_metric("profit_factor", float("inf")) == "inf"
    assert format_metric("strategy", "sma_cross") == "sma_cross"


def test_market_times_are_ist_and_other_times_name_their_zone() -> None:
    open_utc = datetime(2021, 3, 1, 3, 45, tzinfo=UTC)
    assert ist(open_utc) == "2021-03-01 09:15 IST"
    assert ist(int(open_utc.timestamp() * 1e9)) == "2021-03-01 09:15 IST"
    assert utc("2026-12-02T21:18:40") == "2026-12-02 21:18:40 UTC"
