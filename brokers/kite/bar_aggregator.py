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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from brokers.kite.ticker_protocol import Tick
from config.sessions import IST, IST_OFFSET_NS, NS_PER_DAY, NS_PER_MINUTE, SessionTimes

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
