"""precision=bf16 where the CPU cannot run a bf16 LSTM: refused before a run, naming the CPU.

These run on every machine: the probe's failure is forced where the CPU would pass it, and the
real probe's answer is checked against what the predictor then does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import models.precision as precision
from app.cli import main
from app.wiring import check_strategy
from models.checkpoint import save_bundle
from models.errors import ModelError
from models.inference import Predictor
from strategies.registry import make_strategy
from tests.models.test_model_inference import N_FEATURES, WINDOW, make_bundle

ONEDNN_ERROR = "could not create a primitive descriptor for the LSTM forward propagation primitive"


@pytest.fixture
def no_bf16(monkeypatch: pytest.MonkeyPatch):
    """This process behaves as on an AVX2-only CPU: the bf16 LSTM probe fails as oneDNN does."""

    def fail(device: str) -> None:
        raise RuntimeError(f"{ONEDNN_ERROR}. Run workload with ONEDNN_VERBOSE=all")

    precision.precision_support.cache_clear()
    monkeypatch.setattr(precision, "_bf16_lstm_probe", fail)
    yield
    precision.precision_support.cache_clear()


def test_probe_reports_the_cpu_capability(no_bf16: None) -> None:
    support = precision.precision_support("bf16", "cpu")
    assert not support.available
    assert "torch CPU capability" in support.capability and "avx512_bf16" in support.capability
    assert support.detail == ONEDNN_ERROR
    assert precision.precision_support("fp32", "cpu").available


def test_predictor_refuses_bf16_naming_the_capability(no_bf16: None) -> None:
    with pytest.raises(ModelError, match=r"precision=bf16 is not available on this CPU") as err:
        Predictor([make_bundle(0)], precision="bf16")
    assert "torch CPU capability" in str(err.value) and "use precision=fp32" in str(err.value)
    # fp32 on the same machine still decides
    x = np.zeros((2, WINDOW, N_FEATURES), np.float32)
    assert Predictor([make_bundle(0)]).predict(x).shape == (2, 3)


def test_strategy_check_refuses_before_any_data(no_bf16: None) -> None:
    """The app checks a model strategy's precision as soon as the strategy is made."""
    bf16 = make_strategy("model", {"precision": "bf16"})
    with pytest.raises(ValueError, match="precision=bf16 is not available"):
        check_strategy(bf16)
    check_strategy(make_strategy("model", {"precision": "fp32"}))  # fp32 always runs


def test_backtest_command_refuses_before_storing_anything(
    no_bf16: None, nifty_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "m.ckpt"
    save_bundle(make_bundle(0), model)
    db = tmp_path / "runs.db"
    argv = ["backtest", "--data", str(nifty_path), "--strategy", "model", "--model", str(model)]
    rc = main([*argv, "--param", "precision=bf16", "--db", f"sqlite:///{db}", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "precision=bf16 is not available on this CPU" in err and "avx512_bf16" in err
    assert not db.exists()  # refused before a run row (or the database) was created


def test_real_probe_agrees_with_the_predictor() -> None:
    """Whatever this CPU is: bf16 builds a working predictor exactly when the probe says so."""
    precision.precision_support.cache_clear()
    support = precision.precision_support("bf16", "cpu")
    x = np.random.default_rng(1).normal(size=(3, WINDOW, N_FEATURES)).astype(np.float32)
    if support.available:
        probs = Predictor([make_bundle(0)], precision="bf16").predict(x)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    else:
        with pytest.raises(ModelError, match="not available"):
            Predictor([make_bundle(0)], precision="bf16")
