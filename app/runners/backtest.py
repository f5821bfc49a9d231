"""Event-replay backtest: stored bars through the one session, as fast as the bus goes, the
whole run written in one transaction at the end. A model strategy's run also records how much
of its period the model was trained or validated on (``app/overlap.py``)."""

from __future__ import annotations

from typing import Any, Literal

from app.overlap import add_to_result, measure_run
from app.wiring import attach_predictor, build_pipeline
from config.settings import EngineSettings
from engine.data.loader import LoadedBars
from engine.data.replay import ReplaySource
from engine.ports import Strategy
from engine.session import CommitPolicy, SessionResult, TradingSession
from engine.store.recorder import RunRecorder, store_model_calls
from engine.store.schema import REPLAY_FEED

Predictions = Literal["ahead", "bar_by_bar"]


async def run_backtest(
    bars: LoadedBars,
    strategy: Strategy,
    settings: EngineSettings,
    recorder: RunRecorder | None = None,
    progress: bool = False,
    predictions: Predictions = "ahead",
) -> SessionResult:
    """Backtest ``bars``. A model strategy's predictions are computed ahead in large batches
    (``"ahead"``, the default) or by the online predictor as paper and live do
    (``"bar_by_bar"``); both must give the same run."""
    ahead = attach_predictor(strategy, bars if predictions == "ahead" else None, progress)
    model_data = measure_run(strategy, bars)
    if recorder is not None:
        recorder.model_data = model_data
        recorder.feed_kind = REPLAY_FEED
    bar_progress = _progress_bar(bars) if progress else None
    session = TradingSession(
        ReplaySource(bars),
        build_pipeline(settings, strategy),
        recorder,
        commit=CommitPolicy.AT_END,
        progress=bar_progress.update if bar_progress is not None else None,
    )
    try:
        result = await session.run()
    finally:
        if bar_progress is not None:
            bar_progress.close()
    if ahead is not None:
        result.extra["model_calls"] = ahead.score()
        if recorder is not None and result.outcome == "finished":
            store_model_calls(recorder.engine, recorder.run_id, result.extra["model_calls"])
        threshold = getattr(getattr(strategy, "p", None), "entry_threshold", None)
        result.extra["model_probabilities"] = ahead.probability_range(threshold)
    add_to_result(result, model_data)
    return result


def _progress_bar(bars: LoadedBars) -> Any:
    from tqdm import tqdm

    total = int(bars.frame["ts"].nunique())
    return tqdm(total=total, unit="bar", unit_scale=True, leave=False, mininterval=0.5)
