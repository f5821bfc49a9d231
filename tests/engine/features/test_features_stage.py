"""The feature stage publishes one FeatureSlice per BarSlice, inside the same bus step."""

from __future__ import annotations

import numpy as np
import pandas as pd
from features_testdata import nse_5min

from config.sessions import NSE
from engine.bus import EventBus
from engine.data.loader import LoadedBars
from engine.data.quality import DataQuality
from engine.data.replay import ReplayFeed
from engine.events import BarSlice, FeatureSlice
from engine.features.calculator import FeatureCalculator, compute_history
from engine.features.spec import FEATURE_NAMES, N_FEATURES, SPEC_HASH
from engine.features.stage import FeatureStage
from engine.universe import Universe


async def test_stage_publishes_feature_slices_in_the_same_step() -> None:
    frame = nse_5min("NIFTY 50").iloc[:400]
    bank = nse_5min("NIFTY BANK").iloc[50:400]  # joins later
    both = pd.concat([frame, bank], ignore_index=True).sort_values(["symbol", "ts"])
    bars = LoadedBars(both.reset_index(drop=True), DataQuality(), 5, "test", NSE)
    universe = Universe()
    feed = ReplayFeed(bars, universe)
    bus = EventBus()
    stage = FeatureStage(bus, FeatureCalculator(session=NSE))
    log: list[object] = []
    bus.subscribe(BarSlice, lambda e: log.append(("bar", e.seq)))
    bus.subscribe(FeatureSlice, lambda e: log.append(e))
    for bar_slice in feed.slices(bus.next_seq):
        before = len(log)
        await bus.publish(bar_slice)
        got = [e for e in log[before:] if isinstance(e, FeatureSlice)]
        assert len(got) == 1, "exactly one FeatureSlice per BarSlice, within the publish"
        fs = got[0]
        assert fs.ts_ns == bar_slice.ts_ns and fs.seq > bar_slice.seq
        assert fs.symbols == bar_slice.symbols and (fs.sid == bar_slice.sid).all()
        assert fs.values.shape == (len(bar_slice.sid), N_FEATURES)
        assert fs.values.dtype == np.float32 and not fs.values.flags.writeable
        assert fs.spec_hash == SPEC_HASH
    feature_slices = [e for e in log if isinstance(e, FeatureSlice)]
    assert stage.calculator.bars_seen(universe.sid("NIFTY 50")) == 400
    # the last NIFTY row equals the batch computation of the same history
    batch = compute_history(frame, session=NSE)
    last = feature_slices[-1]
    pos = last.symbols.index("NIFTY 50")
    expected = batch[list(FEATURE_NAMES)].to_numpy()[-1]
    assert np.array_equal(last.values[pos].view(np.uint32), expected.view(np.uint32))
    assert last.ready[pos]
