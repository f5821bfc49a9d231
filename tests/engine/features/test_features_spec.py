"""The spec: 89 unique features in a fixed order, a hash that is stable and that changes when
anything about a feature changes, and the kernels writing exactly the spec's columns."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from app.commands.features import register
from engine.features import kernels, spec

# Pinned on purpose: changing the spec must be a deliberate act (bump SPEC_VERSION, update this,
# retrain or rebuild what recorded the old hash).
PINNED_HASH = "d8eb25c6316f7bc0103398fbc0599ff1e4eca8eb45cec6e1e3af3e6570e81e16"


def test_eighty_nine_unique_features_in_kernel_order() -> None:
    assert spec.N_FEATURES == 89
    assert len(set(spec.FEATURE_NAMES)) == 89
    assert kernels.KERNEL_COLUMNS == spec.FEATURE_NAMES
    assert kernels.MAX_WARMUP == spec.MAX_WARMUP == 199
    assert [spec.COLUMN[n] for n in spec.FEATURE_NAMES] == list(range(89))


def test_spec_covers_the_issue_families() -> None:
    names = set(spec.FEATURE_NAMES)
    for must in ("rsi_7", "rsi_14", "rsi_21", "macd", "macd_signal", "macd_hist", "adx_14",
                 "plus_di_14", "minus_di_14", "stoch_k", "stoch_d", "willr_14", "cci_20",
                 "atr_14", "natr_14", "bb_upper", "bb_pctb", "bb_width", "parkinson_20",
                 "garman_klass_20", "obv", "mfi_14", "volume_z_20", "vwap_session", "dist_vwap",
                 "body_ratio", "gap_pct", "mos_sin", "mos_cos", "day_of_week",
                 "bars_since_open", "dist_session_high", "dist_session_low"):  # fmt: skip
        assert must in names, must
    assert sum(n.startswith("sma_") for n in names) == 6
    assert sum(n.startswith("logret_lag_") for n in names) == 10
    for f in spec.FEATURES:
        assert f.formula and f.warmup >= 0 and f.group


def test_hash_is_stable_and_pinned() -> None:
    again = subprocess.run(
        [sys.executable, "-c", "from engine.features.spec import SPEC_HASH; print(SPEC_HASH)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert again.stdout.strip() == spec.SPEC_HASH == spec._hash(spec._canonical())
    assert spec.SPEC_HASH == PINNED_HASH, "spec changed: bump SPEC_VERSION and re-pin the hash"


@pytest.mark.parametrize(
    "change",
    [
        lambda f: dataclasses.replace(f, warmup=f.warmup + 1),
        lambda f: dataclasses.replace(f, params={**f.params, "timeperiod": 99}),
        lambda f: dataclasses.replace(f, name=f.name + "x"),
        lambda f: dataclasses.replace(f, formula=f.formula + " "),
    ],
)
def test_any_change_changes_the_hash(monkeypatch: pytest.MonkeyPatch, change) -> None:  # type: ignore[no-untyped-def]
    features = list(spec.FEATURES)
    features[10] = change(features[10])
    monkeypatch.setattr(spec, "FEATURES", tuple(features))
    assert spec._hash(spec._canonical()) != spec.SPEC_HASH


def test_reordering_changes_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    features = list(spec.FEATURES)
    features[0], features[1] = features[1], features[0]
    monkeypatch.setattr(spec, "FEATURES", tuple(features))
    assert spec._hash(spec._canonical()) != spec.SPEC_HASH


def test_spec_json_document() -> None:
    doc = spec.spec_as_json()
    assert doc["hash"] == spec.SPEC_HASH and doc["version"] == spec.SPEC_VERSION
    assert [f["index"] for f in doc["features"]] == list(range(89))
    sma = doc["features"][spec.COLUMN["sma_20"]]
    assert sma["talib"] == {
        "function": "SMA",
        "arguments": {"timeperiod": 20},
        "output_index": 0,
        "input_columns": ["close"],
    }
    stoch_d = doc["features"][spec.COLUMN["stoch_d"]]["talib"]
    assert stoch_d["output_index"] == 1 and stoch_d["input_columns"] == ["high", "low", "close"]
    assert doc["features"][spec.COLUMN["body_ratio"]]["talib"] is None
    json.dumps(doc)  # serialisable as is


def test_features_spec_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["features", "spec", "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["hash"] == spec.SPEC_HASH and len(doc["features"]) == 89
    args = parser.parse_args(["features", "spec"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert spec.SPEC_HASH in text and "BBANDS" in text


def test_commands_module_does_not_load_numba() -> None:
    code = "import sys, app.commands.features; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
