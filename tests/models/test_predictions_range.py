"""The probability range printed with a model's backtest (``models.predictions``)."""

from __future__ import annotations

import numpy as np

from engine.ports import BUY, SELL
from models.predictions import QUANTILES, probability_range


def test_quantiles_of_buy_and_sell_and_the_share_reaching_the_threshold() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([2.0, 3.0, 2.0], size=500)
    got = probability_range(probs, entry_threshold=0.4)
    assert got["bars"] == 500 and got["quantiles"] == list(QUANTILES)
    assert got["BUY"] == np.quantile(probs[:, BUY], QUANTILES).tolist()
    assert got["SELL"] == np.quantile(probs[:, SELL], QUANTILES).tolist()
    reached = np.mean((probs[:, BUY] >= 0.4) | (probs[:, SELL] >= 0.4))
    assert got["entry_threshold_reached"] == reached and 0 < reached < 1
    assert "entry_threshold" not in probability_range(probs)
