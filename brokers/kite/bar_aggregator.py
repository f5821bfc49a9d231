"""Ticks → session-aligned N-minute bars, on exchange time, deterministically.

Rules (the same input sequence always gives the same bars):

* **Buckets.** Bar k of a session starts at its open + k·N minutes and covers [start, start+N);
  the last bar is cut at the close (09:15 and 15:30 IST for NSE; the hours are the run's
  ``settings.session.times``, the same grid the loader resamples stored bars into). A bar is
  stamped with its start, as everywhere in the engine. Ticks outside the session make no bar
  data (counted in ``stats.out_of_session``) but do advance the clock below, so a post-close
  tick closes the day's last bar.
* **Time.** A tick's time is its exchange timestamp (only full-mode packets carry one). Ticks
  without one (ltp/quote modes, and the quote-mode snapshot Kite sends on every subscribe) are
  counted in ``stats.no_timestamp`` and dropped — unless ``arrival_time_fallback`` is set for a
  feed that is ltp/quote only, in which case the arrival time the caller passes is used. Mixing
  the two clocks in one feed would let a wall-clock stamp close bars of the exchange clock.
* **Closing a bar.** The watermark is the latest tick time seen for any symbol. The bar slot
  [T, T+N) is emitted, for all symbols at once, when the watermark reaches T+N+grace (grace lets
  slightly-late ticks of other symbols land). ``flush(now)`` closes slots by the wall clock when
  the feed is quiet; ``close()`` emits everything still open.
* **Late ticks.** A tick for a slot already emitted is counted (``stats.late``) and dropped:
  emitted bars are never revised or re-emitted, so nothing downstream sees a duplicate bar.
* **Out of order within an open bar.** open = price of the earliest-stamped tick, close = price
  of the latest-stamped tick (ties: the later arrival wins the close, the earlier the open);
  high/low over all.
* **Volume.** Kite's ``volume_traded`` is cumulative for the day. A bar's volume is the highest
  cumulative volume seen in it minus the highest one attributed to that symbol's earlier bars, so
  reordered ticks or a cumulative value that goes backwards never produce negative volume, and
  volume traded while we were disconnected is not lost: it lands in the first bar after the gap.
  Baseline for a symbol's first bar of the day: 0 if that bar is the session's first (so it
  includes the pre-open auction volume, as exchange candles do), otherwise the lowest cumulative
  value observed in that bar (we joined mid-session; earlier volume is unknowable, so that bar
  under-counts rather than absorbing the whole morning). Indices have no volume: 0.
* **Gaps.** A slot in which a symbol had no tick has no bar for that symbol (no forward fill —
  the consumer decides).
* **Bad ticks never become bars.** A tick whose price is not a positive finite number is
  dropped (``stats.bad_price``). A tick whose price moves more than ``max_move_pct`` (the
  loader's bad-print rule, settings ``data.max_bar_move_pct``, default 50: the widest move NSE's
  price bands allow in one session; see ``engine.data.outliers``) from the symbol's last
  accepted price of the same session is rejected, counted (``stats.outliers``) and logged as a
  warning. A tick cannot wait for its next neighbour, so the reference is the last accepted
  price; a new session starts without one (an overnight gap, a split, is a new level). If the
  reference itself was the bad one, or the price really moved that far, the price is not lost
  for long: after ``confirm_ticks`` (3) rejected ticks in a row that agree with each other
  (within the limit), the latest is accepted as the new level. ``max_move_pct=None``: off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import structlog

from brokers.kite.ticker_protocol import Tick
from config.sessions import IST, IST_OFFSET_NS, NS_PER_DAY, NS_PER_MINUTE, SessionTimes
from config.settings import DEFAULT_MAX_BAR_MOVE_PCT
from engine.data.outliers import move_pct

log = structlog.get_logger()

NS_PER_SECOND = 1_000_000_000
OHLCV = tuple[float, float, float, float, int]


class BarBatch(NamedTuple):
    """Every symbol's bar for one slot; ``bars`` maps symbol → (open, high, low, close, volume)."""

    ts_ns: int  # bar start, UTC epoch ns
    interval_ns: int
    bars: dict[str, OHLCV]

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_ns / NS_PER_SECOND, IST)


@dataclass
class AggregatorStats:
    ticks: int = 0
    late: int = 0
    out_of_session: int = 0
    no_timestamp: int = 0
    unknown_token: int = 0
    bad_price: int = 0
    outliers: int = 0
    bars: int = 0


class _Bar:
    __slots__ = ("close", "close_ns", "cum_max", "cum_min", "high", "low", "open", "open_ns")

    def __init__(self, ts_ns: int, price: float, cum: int | None) -> None:
        self.open = self.high = self.low = self.close = price
        self.open_ns = self.close_ns = ts_ns
        self.cum_min = self.cum_max = cum

    def add(self, ts_ns: int, price: float, cum: int | None) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        if ts_ns < self.open_ns:
            self.open, self.open_ns = price, ts_ns
        if ts_ns >= self.close_ns:
            self.close, self.close_ns = price, ts_ns
        if cum is not None:
            if self.cum_max is None or cum > self.cum_max:
                self.cum_max = cum
            if self.cum_min is None or cum < self.cum_min:
                self.cum_min = cum


class BarAggregator:
    """One interval. Run one instance per interval wanted (e.g. 1 and 5 minutes)."""

    def __init__(
        self,
        interval_minutes: int = 1,
        symbols: Mapping[int, str] | None = None,
        grace_s: float = 2.0,
        *,
        session: SessionTimes,
        arrival_time_fallback: bool = False,
        max_move_pct: float | None = DEFAULT_MAX_BAR_MOVE_PCT,
        confirm_ticks: int = 3,
    ) -> None:
        if not 1 <= interval_minutes <= session.length_minutes:
            raise ValueError(f"interval_minutes {interval_minutes} must be 1..one session")
        self.interval_ns = interval_minutes * NS_PER_MINUTE
        self.grace_ns = int(grace_s * NS_PER_SECOND)
        self.symbols = dict(symbols or {})
        self.session = session
        self.arrival_time_fallback = arrival_time_fallback
        self.stats = AggregatorStats()
        self._open_ns = session.open_minute * NS_PER_MINUTE  # offsets within the IST day
        self._close_ns = session.close_minute * NS_PER_MINUTE
        self._slots: dict[int, dict[str, _Bar]] = {}
        self._slot_end: dict[int, int] = {}
        self._emitted_until = -(2**62)  # every slot starting before this is out
        self._watermark = -(2**62)
        self._base: dict[str, tuple[int, int]] = {}  # symbol → (IST day, cumulative baseline)
        self.max_move_pct = max_move_pct
        self.confirm_ticks = confirm_ticks
        self._last: dict[str, tuple[int, float]] = {}  # symbol → (IST day, last accepted price)
        self._rejected: dict[str, tuple[float, int]] = {}  # symbol → (last rejected, run length)

    # --- input -----------------------------------------------------------------------------

    def on_tick(self, tick: Tick, received_at: datetime | None = None) -> list[BarBatch]:
        """Feed one decoded Kite tick (symbol looked up from its instrument token)."""
        symbol = self.symbols.get(tick["instrument_token"])
        if symbol is None:
            self.stats.unknown_token += 1
            return []
        stamp = tick.get("exchange_timestamp")
        if stamp is None and self.arrival_time_fallback:
            stamp = received_at
        if stamp is None:
            self.stats.no_timestamp += 1
            return []
        ts_ns = int(stamp.timestamp()) * NS_PER_SECOND + stamp.microsecond * 1000
        return self.add(symbol, ts_ns, float(tick["last_price"]), tick.get("volume_traded"))

    def add(self, symbol: str, ts_ns: int, price: float, cum_volume: int | None) -> list[BarBatch]:
        """Feed one trade observation; returns the bar slots this closed (usually none)."""
        self.stats.ticks += 1
        local = (ts_ns + IST_OFFSET_NS) % NS_PER_DAY
        if self._open_ns <= local < self._close_ns:
            slot = ts_ns - (local - self._open_ns) % self.interval_ns
            if slot < self._emitted_until:
                self.stats.late += 1
            elif not self._believable(symbol, ts_ns, price):
                pass  # counted and logged; the tick still advances the clock below
            else:
                bars = self._slots.get(slot)
                if bars is None:
                    bars = self._slots[slot] = {}
                    day_close = ts_ns - local + self._close_ns
                    self._slot_end[slot] = min(slot + self.interval_ns, day_close)
                bar = bars.get(symbol)
                if bar is None:
                    bars[symbol] = _Bar(ts_ns, price, cum_volume)
                else:
                    bar.add(ts_ns, price, cum_volume)
        else:
            self.stats.out_of_session += 1
        if ts_ns > self._watermark:
            self._watermark = ts_ns
            return self._emit_until(ts_ns - self.grace_ns)
        return []

    def _believable(self, symbol: str, ts_ns: int, price: float) -> bool:
        """The bad-tick rule of the module doc; True: the tick may make bar data."""
        if not (math.isfinite(price) and price > 0):
            self.stats.bad_price += 1
            log.warning("feed.tick_rejected", symbol=symbol, price=price, reason="bad price")
            return False
        day = (ts_ns + IST_OFFSET_NS) // NS_PER_DAY
        last = self._last.get(symbol)
        if self.max_move_pct is None or last is None or last[0] != day:
            return self._accept(symbol, day, price)
        move = move_pct(price, last[1])
        if move <= self.max_move_pct:
            return self._accept(symbol, day, price)
        before = self._rejected.get(symbol)
        run = 1
        if before is not None and move_pct(price, before[0]) <= self.max_move_pct:
            run = before[1] + 1
        if run >= self.confirm_ticks:  # a level that persists is not a bad print
            log.warning(
                "feed.tick_level_accepted", symbol=symbol, price=price, last_price=last[1],
                ticks=run,
            )  # fmt: skip
            return self._accept(symbol, day, price)
        self._rejected[symbol] = (price, run)
        self.stats.outliers += 1
        log.warning(
            "feed.tick_rejected", symbol=symbol, price=price, last_price=last[1],
            move_pct=round(move, 1), max_move_pct=self.max_move_pct, reason="outlier",
        )  # fmt: skip
        return False

    def _accept(self, symbol: str, day: int, price: float) -> bool:
        self._last[symbol] = (day, price)
        self._rejected.pop(symbol, None)
        return True

    def flush(self, now: datetime) -> list[BarBatch]:
        """Close slots that ended (plus grace) by wall-clock ``now`` — for a quiet feed."""
        now_ns = int(now.timestamp() * NS_PER_SECOND)
        return self._emit_until(now_ns - self.grace_ns)

    def close(self) -> list[BarBatch]:
        """Emit every open slot (end of session / shutdown)."""
        return self._emit_until(2**62)

    # --- output ----------------------------------------------------------------------------

    def _emit_until(self, limit_ns: int) -> list[BarBatch]:
        ready = sorted(slot for slot, end in self._slot_end.items() if end <= limit_ns)
        out = []
        for slot in ready:
            out.append(self._emit(slot))
        return out

    def _emit(self, slot: int) -> BarBatch:
        bars = self._slots.pop(slot)
        del self._slot_end[slot]
        self._emitted_until = max(self._emitted_until, slot + self.interval_ns)
        day = (slot + IST_OFFSET_NS) // NS_PER_DAY
        first_slot = (slot + IST_OFFSET_NS) % NS_PER_DAY == self._open_ns
        result: dict[str, OHLCV] = {}
        for symbol in sorted(bars):
            bar = bars[symbol]
            result[symbol] = (
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                self._volume(symbol, bar, day, first_slot),
            )
        self.stats.bars += len(result)
        return BarBatch(slot, self.interval_ns, result)

    def _volume(self, symbol: str, bar: _Bar, day: int, first_slot: bool) -> int:
        if bar.cum_max is None:
            return 0
        known = self._base.get(symbol)
        if known is not None and known[0] == day:
            base = known[1]
        elif first_slot:
            base = 0
        else:
            base = bar.cum_min if bar.cum_min is not None else bar.cum_max
        self._base[symbol] = (day, max(base, bar.cum_max))
        return max(0, bar.cum_max - base)
