"""The network's shape: the seed's sizes at the defaults, every size a hyper-parameter."""

from __future__ import annotations

import pytest
import torch

from models.network import (
    BUY,
    CLASS_NAMES,
    HOLD,
    SELL,
    IntradayClassifier,
    ModelConfig,
    count_parameters,
)


def lstm_params(inp: int, units: int, layers: int, directions: int) -> int:
    total = 0
    for layer in range(layers):
        width = inp if layer == 0 else units * directions
        total += directions * (4 * units * (width + units) + 8 * units)
    return total


def test_default_network_is_the_seed_shape() -> None:
    cfg = ModelConfig()
    model = IntradayClassifier(cfg)
    assert (cfg.n_features, cfg.window, cfg.hidden_size, cfg.num_layers) == (89, 60, 256, 2)
    assert cfg.bidirectional and cfg.num_heads == 4 and cfg.num_classes == 3
    assert model.lstm.hidden_size == 128 and model.lstm.bidirectional
    assert model.attention.num_heads == 4
    assert count_parameters(model) == 1_409_027
    logits = model.eval()(torch.randn(5, 60, 89))
    assert logits.shape == (5, 3)


def test_parameter_count_follows_every_size() -> None:
    cfg = ModelConfig(
        n_features=7,
        window=9,
        hidden_size=24,
        num_layers=3,
        num_heads=3,
        pooling=("attention", "last"),
        head_hidden=(10,),
    )
    h = cfg.hidden_size
    expected = (
        lstm_params(7, 12, 3, 2)
        + (3 * h * h + 3 * h)
        + (h * h + h)  # attention in/out projections
        + 2 * h  # LayerNorm
        + (2 * h * 10 + 10)
        + (10 * 3 + 3)  # head
    )
    model = IntradayClassifier(cfg)
    assert count_parameters(model) == expected
    assert model(torch.randn(2, 9, 7)).shape == (2, 3)


def test_unidirectional_uses_full_width() -> None:
    model = IntradayClassifier(
        ModelConfig(n_features=4, hidden_size=8, num_heads=2, bidirectional=False, head_hidden=())
    )
    assert model.lstm.hidden_size == 8 and not model.lstm.bidirectional
    assert model(torch.randn(3, 5, 4)).shape == (3, 3)


def test_class_order_is_sell_hold_buy() -> None:
    assert (SELL, HOLD, BUY) == (0, 1, 2)
    assert CLASS_NAMES == ("SELL", "HOLD", "BUY")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hidden_size": 255}, "even"),
        ({"hidden_size": 256, "num_heads": 3}, "num_heads"),
        ({"pooling": ("mean",)}, "attention"),
        ({"pooling": ("attention", "median")}, "pooling"),
        ({"num_classes": 2}, "num_classes"),
        ({"dropout": 1.5}, "dropout"),
        ({"activation": "tanh"}, "activation"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


def test_config_round_trips_through_a_plain_dict() -> None:
    cfg = ModelConfig(hidden_size=64, head_hidden=(32, 16), pooling=("attention", "max"))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "hiden_size": 3})


def test_wrong_input_width_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[batch, time, 89\]"):
        IntradayClassifier()(torch.randn(2, 60, 88))
