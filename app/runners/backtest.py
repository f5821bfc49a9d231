"""Event-replay backtest: stored bars through the shared pipeline as fast as the bus goes."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.wiring import build_pipeline
from brokers.simulated import SimulatedBroker
from config.settings import EngineSettings
from engine.bus import HandlerError
from engine.data.loader import LoadedBars
from engine.data.replay import ReplayFeed
from engine.metrics import compute_metrics
from engine.pipeline import Pipeline, run_config
from engine.store.queries import trade_dict
from engine.store.recorder import RunRecorder
from strategies.base import Strategy

#: yield to the event loop every N slices so a backtest inside the daemon stays responsive
YIELD_EVERY = 4096


@dataclass
class BacktestResult:
    run_id: str | None
    metrics: dict[str, float]
    trades: list[dict[str, Any]]
    bars_processed: int
    symbol_bars: int
    orders: int
    denials: int
    quality: dict[str, Any]
    elapsed_s: float
    pipeline: Pipeline = field(repr=False)
    strategy_report: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "metrics": {k: (None if not math.isfinite(v) else v) for k, v in self.metrics.items()},
            "trades": self.trades,
            "bars_processed": self.bars_processed,
            "symbol_bars": self.symbol_bars,
            "orders": self.orders,
            "risk_denials": self.denials,
            "data_quality": self.quality,
            "elapsed_seconds": self.elapsed_s,
            **self.strategy_report,
        }


def trade_dicts(pipe: Pipeline) -> list[dict[str, Any]]:
    return [
        trade_dict(t.symbol, t.side, t.qty, t.entry_ts_ns, t.entry_price, t.exit_ts_ns,
                   t.exit_price, t.pnl, t.costs, t.exit_reason)
        for t in pipe.portfolio.trades
    ]  # fmt: skip


async def finalize_positions(pipe: Pipeline, ts_ns: int) -> None:
    """End of data: cancel what is open, close what is held at its last close (like
    backtesting.py's ``finalize_trades``), so equity and the trade list agree. Only a simulated
    broker can settle like that; a real one keeps its positions."""
    broker = pipe.broker
    if not isinstance(broker, SimulatedBroker):
        return
    await broker.cancel_all(ts_ns, "end of data")
    portfolio = pipe.portfolio
    for symbol, qty in sorted(portfolio.holdings().items()):
        await broker.settle(ts_ns, symbol, qty, portfolio.last_price(symbol), "end of data")
    portfolio.curve_equity[-1] = portfolio.equity


async def run_backtest(
    bars: LoadedBars,
    strategy: Strategy,
    settings: EngineSettings,
    recorder: RunRecorder | None = None,
    progress: bool = False,
) -> BacktestResult:
    strategy.prepare_replay(bars, progress)
    pipe = build_pipeline(settings, strategy)
    bus = pipe.bus
    feed = ReplayFeed(bars, pipe.universe)
    if recorder is not None:
        recorder.attach(bus)
        recorder.start(strategy.name, run_config(settings, strategy), bars.fingerprint)
    started = time.perf_counter()
    bar_count = 0
    bar = None
    status, error = "finished", None
    pipe.host.start()
    bar_progress = _progress(len(feed)) if progress else None
    try:
        deliver = bus.deliver
        for bar in feed.slices(bus.next_seq):
            pending = deliver(bar)
            if pending is not None:
                await pending
            bar_count += 1
            if bar_count % YIELD_EVERY == 0:
                if bar_progress is not None:
                    bar_progress.update(YIELD_EVERY)
                await asyncio.sleep(0)
        if bar is not None:
            await finalize_positions(pipe, bar.ts_ns)
    except HandlerError as exc:
        status, error = "failed", str(exc)
        raise
    finally:
        if bar_progress is not None:
            bar_progress.close()
        elapsed = time.perf_counter() - started
        pf = pipe.portfolio
        curve_ts = np.asarray(pf.curve_ts, dtype=np.int64)
        curve_eq = np.asarray(pf.curve_equity)
        curve_gross = np.asarray(pf.curve_gross)
        metrics = compute_metrics(
            curve_ts,
            curve_eq,
            curve_gross,
            pf.trades,
            pf.initial_capital,
            bars.interval_minutes,
            pf.turnover,
            pf.total_costs,
            session=settings.session.times,
        )
        if recorder is not None:
            recorder.finish(
                status=status,
                portfolio=pf,
                metrics=metrics,
                quality=bars.quality.as_dict(),
                bars_processed=bar_count,
                error=error,
            )
    return BacktestResult(
        recorder.run_id if recorder else None,
        metrics,
        trade_dicts(pipe),
        bar_count,
        feed.matrix.n_symbol_bars,
        pipe.execution.orders,
        pipe.execution.denied,
        bars.quality.as_dict(),
        elapsed,
        pipe,
        strategy.report(),
    )


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="bar", unit_scale=True, leave=False, mininterval=0.5)
