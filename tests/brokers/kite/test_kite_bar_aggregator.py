"""Tick → bar rules: session alignment, exchange time, cumulative volume, late ticks."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from brokers.kite.bar_aggregator import BarAggregator, BarBatch
from config.sessions import IST, NSE

DAY = datetime(2024, 6, 5, tzinfo=IST)


def at(hh: int, mm: int, ss: int = 0, day: datetime = DAY) -> datetime:
    return day.replace(hour=hh, minute=mm, second=ss)


def ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000


def feed(
    agg: BarAggregator, ticks: list[tuple[str, datetime, float, int | None]]
) -> list[BarBatch]:
    out: list[BarBatch] = []
    for symbol, ts, price, cum in ticks:
        out += agg.add(symbol, ns(ts), price, cum)
    return out


def test_one_minute_bars_from_ticks():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    out = feed(
        agg,
        [
            ("INFY", at(9, 15, 1), 100.0, 1000),  # includes pre-open volume
            ("INFY", at(9, 15, 20), 101.0, 1100),
            ("INFY", at(9, 15, 59), 99.5, 1150),
            ("INFY", at(9, 16, 5), 99.0, 1180),  # closes the 09:15 bar
        ],
    )
    assert len(out) == 1
    assert out[0].ts == at(9, 15) and out[0].ts.utcoffset() == timedelta(hours=5, minutes=30)
    assert out[0].bars == {"INFY": (100.0, 101.0, 99.5, 99.5, 1150)}
    (last,) = agg.close()
    assert last.ts == at(9, 16) and last.bars["INFY"] == (99.0, 99.0, 99.0, 99.0, 30)


def test_five_minute_bars_are_anchored_at_0915():
    # toy prices that double and triple: the bad-tick rule (tested below) is off here
    agg = BarAggregator(5, grace_s=0, session=NSE, max_move_pct=None)
    out = feed(agg, [("A", at(9, 19, 59), 1.0, 10), ("A", at(9, 20, 0), 2.0, 20)])
    assert [b.ts for b in out] == [at(9, 15)]
    out = feed(agg, [("A", at(9, 24, 59), 3.0, 25), ("A", at(9, 25), 4.0, 26)])
    assert [b.ts for b in out] == [at(9, 20)]
    assert out[0].bars["A"] == (2.0, 3.0, 2.0, 3.0, 15)
    assert out[0].interval_ns == 5 * 60 * 1_000_000_000


def test_last_bar_is_cut_at_the_close_and_post_close_ticks_close_it():
    agg = BarAggregator(60, grace_s=0, session=NSE)
    feed(agg, [("A", at(15, 15), 10.0, 5), ("A", at(15, 29, 59), 11.0, 9)])
    out = feed(agg, [("A", at(15, 30, 0), 12.0, 12)])  # closing session tick: no bar data
    assert [b.ts for b in out] == [at(15, 15)]
    assert out[0].bars["A"][:4] == (10.0, 11.0, 10.0, 11.0)
    assert agg.stats.out_of_session == 1
    assert agg.close() == []


def test_pre_open_ticks_make_no_bars():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    feed(agg, [("A", at(9, 7, 30), 5.0, 500), ("A", at(9, 15, 2), 6.0, 520)])
    (bar,) = agg.close()
    assert bar.ts == at(9, 15) and bar.bars["A"] == (6.0, 6.0, 6.0, 6.0, 520)
    assert agg.stats.out_of_session == 1


def test_out_of_order_ticks_within_a_bar_use_exchange_time():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    feed(
        agg,
        [
            ("A", at(9, 20, 30), 50.0, 300),
            ("A", at(9, 20, 10), 48.0, 250),  # earlier: becomes the open
            ("A", at(9, 20, 50), 52.0, 320),
            ("A", at(9, 20, 40), 55.0, 310),  # not the latest: not the close
        ],
    )
    (bar,) = agg.close()
    # joined mid-session: volume counts from the lowest cumulative value seen (250)
    assert bar.bars["A"] == (48.0, 55.0, 48.0, 52.0, 70)


def test_late_ticks_are_counted_and_dropped_never_re_emitted():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    out = feed(agg, [("A", at(9, 15, 10), 10.0, 100), ("A", at(9, 16, 1), 11.0, 150)])
    assert [b.ts for b in out] == [at(9, 15)]
    out = feed(agg, [("A", at(9, 15, 59), 99.0, 120)])  # belongs to the emitted 09:15 bar
    assert out == [] and agg.stats.late == 1
    out = feed(agg, [("A", at(9, 17, 0), 12.0, 160)]) + agg.close()
    assert [b.ts for b in out] == [at(9, 16), at(9, 17)]
    assert out[0].bars["A"] == (11.0, 11.0, 11.0, 11.0, 50)  # late price not mixed in
    assert sum(b.bars["A"][4] for b in out) == 60


def test_grace_lets_another_symbols_slightly_late_tick_land():
    agg = BarAggregator(1, grace_s=2, session=NSE)
    out = feed(agg, [("A", at(9, 15, 30), 1.0, 1), ("A", at(9, 16, 1), 2.0, 2)])
    assert out == []  # 09:16:01 < 09:16:00 + 2s grace
    out = feed(agg, [("B", at(9, 15, 59), 7.0, 70), ("A", at(9, 16, 2), 2.5, 3)])
    assert [sorted(b.bars) for b in out] == [["A", "B"]]
    assert agg.stats.late == 0


def test_volume_survives_a_gap_and_a_backwards_cumulative_value():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    out = (
        feed(
            agg,
            [
                ("A", at(9, 15, 5), 1.0, 1000),
                ("A", at(9, 16, 5), 1.0, 1200),
                # disconnected 09:17–09:19: nothing seen; trading went on
                ("A", at(9, 20, 5), 1.0, 2000),
                ("A", at(9, 20, 6), 1.0, 1990),  # glitch: cumulative goes backwards
                ("A", at(9, 21, 5), 1.0, 2100),
            ],
        )
        + agg.close()
    )
    volumes = {b.ts: b.bars["A"][4] for b in out}
    assert volumes == {at(9, 15): 1000, at(9, 16): 200, at(9, 20): 800, at(9, 21): 100}
    assert sum(volumes.values()) == 2100  # equals the day's cumulative volume


def test_joining_mid_session_does_not_dump_the_morning_into_one_bar():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    out = feed(agg, [("A", at(11, 0, 1), 5.0, 900_000), ("A", at(11, 0, 30), 5.1, 900_400)])
    out += agg.close()
    assert out[0].bars["A"][4] == 400


def test_a_new_day_resets_the_volume_baseline():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    next_day = DAY + timedelta(days=1)
    out = feed(
        agg,
        [
            ("A", at(15, 29, 0), 1.0, 5_000_000),
            ("A", at(9, 15, 3, day=next_day), 1.0, 1000),
            ("A", at(9, 16, 3, day=next_day), 1.0, 1500),
        ],
    )
    assert [b.bars["A"][4] for b in out] == [0, 1000]  # day 1 joined late; day 2 from 0
    assert [b.ts for b in out] == [at(15, 29), at(9, 15, day=next_day)]


def test_wall_clock_flush_closes_a_quiet_feed():
    agg = BarAggregator(1, grace_s=1, session=NSE)
    feed(agg, [("A", at(9, 30, 10), 1.0, 10)])
    assert agg.flush(at(9, 31, 0)) == []
    (bar,) = agg.flush(at(9, 31, 1))
    assert bar.ts == at(9, 30)
    assert feed(agg, [("A", at(9, 30, 59), 2.0, 11)]) == [] and agg.stats.late == 1


def test_decoded_ticks_with_and_without_exchange_time():
    symbols = {408065: "INFY", 256265: "NIFTY 50"}
    agg = BarAggregator(1, symbols=symbols, grace_s=0, session=NSE)
    full = {
        "instrument_token": 408065,
        "last_price": 1500.0,
        "volume_traded": 10,
        "exchange_timestamp": at(9, 15, 1),
    }
    index = {"instrument_token": 256265, "last_price": 22000.0}  # quote mode: no timestamp
    assert agg.on_tick(full) == []
    # without the fallback, a tick lacking exchange time is dropped even if arrival time is known
    assert agg.on_tick(index, received_at=at(9, 15, 2)) == [] and agg.stats.no_timestamp == 1
    assert agg.on_tick({"instrument_token": 1, "last_price": 1.0}) == []
    assert agg.stats.unknown_token == 1
    assert agg.close()[0].bars == {"INFY": (1500.0, 1500.0, 1500.0, 1500.0, 10)}

    quote_feed = BarAggregator(
        1, symbols=symbols, grace_s=0, arrival_time_fallback=True, session=NSE
    )
    assert quote_feed.on_tick(index) == [] and quote_feed.stats.no_timestamp == 1
    assert quote_feed.on_tick(index, received_at=at(9, 15, 2)) == []
    assert quote_feed.close()[0].bars == {"NIFTY 50": (22000.0,) * 4 + (0,)}


def test_same_ticks_same_bars_regardless_of_how_they_are_split_into_slices():
    rng = random.Random(7)
    ticks = []
    cum = {"A": 0, "B": 0}
    t = at(9, 15)
    for _ in range(2000):
        t += timedelta(seconds=rng.randint(0, 3))
        sym = rng.choice("AB")
        cum[sym] += rng.randint(1, 50)
        ticks.append((sym, t, round(rng.uniform(90, 110), 2), cum[sym]))
    first = feed(BarAggregator(5, grace_s=0, session=NSE), ticks)
    second_agg = BarAggregator(5, grace_s=0, session=NSE)
    second = feed(second_agg, ticks[:1000]) + feed(second_agg, ticks[1000:])
    assert first == second
    assert len({b.ts_ns for b in first}) == len(first)  # no duplicated bar
    starts = [b.ts for b in first]
    assert all((s.hour * 60 + s.minute - 555) % 5 == 0 for s in starts)


def test_interval_must_fit_a_session():
    with pytest.raises(ValueError, match="interval_minutes"):
        BarAggregator(0, session=NSE)


# ---- bad ticks never become bars (the loader's bad-print rule, on ticks) ----------------------


def test_a_tick_at_1000x_is_rejected_counted_and_logged():
    from structlog.testing import capture_logs

    agg = BarAggregator(1, grace_s=0, session=NSE)
    with capture_logs() as logs:
        feed(
            agg,
            [
                ("INFY", at(9, 15, 1), 1500.0, 10),
                ("INFY", at(9, 15, 20), 1_500_000.0, 11),  # a bad print
                ("INFY", at(9, 15, 40), 1501.0, 12),
            ],
        )
    (bar,) = agg.close()
    assert bar.bars["INFY"][:4] == (1500.0, 1501.0, 1500.0, 1501.0)
    assert agg.stats.outliers == 1
    (warning,) = [e for e in logs if e["event"] == "feed.tick_rejected"]
    assert warning["log_level"] == "warning" and warning["symbol"] == "INFY"
    assert warning["price"] == 1_500_000.0 and warning["last_price"] == 1500.0


def test_non_positive_and_non_finite_tick_prices_are_rejected():
    agg = BarAggregator(1, grace_s=0, session=NSE)
    feed(
        agg,
        [
            ("A", at(9, 15, 1), 0.0, 1),  # not even a first reference
            ("A", at(9, 15, 2), float("nan"), 2),
            ("A", at(9, 15, 3), 100.0, 3),
            ("A", at(9, 15, 4), float("inf"), 4),
            ("A", at(9, 15, 5), -5.0, 5),
        ],
    )
    (bar,) = agg.close()
    assert bar.bars["A"][:4] == (100.0,) * 4 and agg.stats.bad_price == 4


def test_genuine_moves_and_a_new_sessions_gap_are_accepted():
    agg = BarAggregator(1, grace_s=0, session=NSE, max_move_pct=10.0)
    next_day = DAY + timedelta(days=1)
    out = feed(
        agg,
        [
            ("A", at(9, 15, 1), 100.0, 1),
            ("A", at(9, 15, 2), 109.0, 2),  # +9%: within 10%
            ("A", at(9, 15, 3), 118.0, 3),  # +8.3% from the last accepted: a trend is fine
            ("A", at(9, 15, 4), 60.0, 4),  # -49%: rejected
            ("A", at(9, 15, 5, day=next_day), 50.0, 1),  # a new session: no reference yet
            ("A", at(9, 15, 6, day=next_day), 51.0, 2),
        ],
    )
    out += agg.close()
    assert [b.bars["A"][:4] for b in out] == [
        (100.0, 118.0, 100.0, 118.0),
        (50.0, 51.0, 50.0, 51.0),
    ]
    assert agg.stats.outliers == 1


def test_a_level_that_persists_is_accepted_after_three_ticks():
    """If the reference was the bad tick (or the price really is there), the feed recovers."""
    agg = BarAggregator(1, grace_s=0, session=NSE)
    ticks = [("A", at(9, 15, 1), 1.0, 1)] + [("A", at(9, 15, s), 100.0 + s, s) for s in (2, 3, 4)]
    feed(agg, ticks)
    (bar,) = agg.close()
    assert bar.bars["A"][:4] == (1.0, 104.0, 1.0, 104.0)  # 102 and 103 lost, 104 accepted
    assert agg.stats.outliers == 2


def test_the_tick_rule_is_configurable_and_can_be_off():
    ticks = [("A", at(9, 15, 1), 100.0, 1), ("A", at(9, 15, 2), 130.0, 2)]
    strict = BarAggregator(1, grace_s=0, session=NSE, max_move_pct=20.0)
    feed(strict, ticks)
    assert strict.close()[0].bars["A"][3] == 100.0 and strict.stats.outliers == 1
    off = BarAggregator(1, grace_s=0, session=NSE, max_move_pct=None)
    feed(off, [*ticks, ("A", at(9, 15, 3), 100_000.0, 3)])
    assert off.close()[0].bars["A"][3] == 100_000.0 and off.stats.outliers == 0


def test_the_live_source_hands_its_limit_to_the_aggregator():
    from brokers.kite.feed import KiteLiveSource

    def no_client(**_: object) -> None:
        return None

    source = KiteLiveSource(no_client, {1: "A"}, 1, session=NSE, max_tick_move_pct=12.5)
    assert source._aggregator.max_move_pct == 12.5
    default = KiteLiveSource(no_client, {1: "A"}, 1, session=NSE)
    assert default._aggregator.max_move_pct == 50.0
