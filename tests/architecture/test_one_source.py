"""One source of truth per fact: where two places could disagree, a test holds them together.

Each test here guards a fact that once lived in two or more places and drifted: the code-version
stamp, the feature-spec mismatch error, the exchange time zone, the session hours.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from app.cli import main
from config.sessions import IST_ZONE_NAME, NSE
from engine.features import spec
from engine.features.build import META_HASH, feature_schema
from engine.store.database import open_database
from engine.store.queries import load_run
from engine.store.recorder import RunRecorder
from engine.version import code_version
from models import errors as model_errors
from models.checkpoint import ModelBundle, load_bundle, save_bundle
from models.network import IntradayClassifier, ModelConfig
from models.scaler import Scaler
from tests.support.layers import LAYERS
from tests.support.paths import ROOT

#: the one module allowed to name the exchange's zone
ZONE_HOME = Path("config/sessions.py")
#: run in their own venv without the project (see their docstring): a checked copy, below
ANCHORS = Path("bench/anchors")


def tiny_bundle(spec_hash: str) -> ModelBundle:
    config = ModelConfig(n_features=4, window=4, hidden_size=4, num_heads=1, head_hidden=(4,))
    return ModelBundle(
        model=IntradayClassifier(config).eval(),
        scaler=Scaler(np.zeros(4), np.ones(4), 1),
        spec_hash=spec_hash,
    )


def test_a_model_file_and_a_run_from_one_checkout_carry_the_same_code_version(
    tmp_path: Path,
) -> None:
    """Models and runs are matched up by their stamp: both must write the very same string."""
    model_path = tmp_path / "m.ckpt"
    save_bundle(tiny_bundle("s" * 64), model_path)
    stamped_model = torch.load(model_path, weights_only=True)["code_version"]

    db = open_database(str(tmp_path / "runs.db"))
    recorder = RunRecorder(db, "backtest")
    recorder.start("sma_cross", {}, "fingerprint")
    stamped_run = load_run(db, recorder.run_id)["code_version"]

    assert stamped_model == stamped_run == code_version()


def test_one_spec_mismatch_error_refuses_feature_files_and_models(tmp_path: Path) -> None:
    """The feature-file reader and the model loader raise the core's one class, naming both
    hashes; it is a ValueError, which is what the CLI maps to its bad-input status."""
    assert model_errors.SpecMismatchError is spec.SpecMismatchError
    assert issubclass(spec.SpecMismatchError, ValueError)

    model_path = tmp_path / "m.ckpt"
    save_bundle(tiny_bundle("a" * 64), model_path)
    with pytest.raises(spec.SpecMismatchError) as refused_model:
        load_bundle(model_path, expected_spec_hash="b" * 64)
    assert "a" * 64 in str(refused_model.value) and "b" * 64 in str(refused_model.value)


def test_a_spec_mismatch_is_bad_input_to_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "stale.parquet"
    schema = feature_schema()
    pq.write_table(
        schema.empty_table().replace_schema_metadata({**schema.metadata, META_HASH: b"f" * 64}),
        stale,
    )
    rc = main(["train", "--features", str(stale), "--out", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "f" * 64 in err and spec.SPEC_HASH in err and str(stale) in err


def _zone_definitions(path: Path) -> Iterator[str]:
    """Places in ``path`` that name the zone themselves: a ``ZoneInfo(...)`` call or a string
    holding "Asia/Kolkata" that is not a docstring."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ZoneInfo":
            yield f"{path}:{node.lineno}: ZoneInfo(...)"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and IST_ZONE_NAME in node.value
            and id(node) not in docstrings
        ):
            yield f"{path}:{node.lineno}: {node.value!r}"


def test_the_exchange_zone_is_defined_once() -> None:
    """Product code, test support and benchmarks import the zone from config.sessions (tests
    themselves may spell it out: they state expectations independently of the code)."""
    roots = [*LAYERS, "tests/support", "bench"]
    found = [
        hit
        for root in roots
        for path in sorted((ROOT / root).rglob("*.py"))
        if path.relative_to(ROOT) != ZONE_HOME and ANCHORS not in path.relative_to(ROOT).parents
        for hit in _zone_definitions(path.relative_to(ROOT))
    ]
    assert not found, "import IST / IST_ZONE_NAME from config.sessions instead:\n" + "\n".join(
        found
    )


def test_the_bench_anchors_copy_of_the_exchange_clock_agrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The anchors cannot import the project, so they keep a copy of the zone and the session;
    this holds the copy to the one source."""
    spec = importlib.util.spec_from_file_location("anchor_bars", ROOT / ANCHORS / "_bars.py")
    assert spec is not None and spec.loader is not None
    anchor = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, anchor)  # its dataclasses look themselves up
    spec.loader.exec_module(anchor)
    copy = {
        "zone": anchor.IST,
        "open": anchor.SESSION_OPEN_MINUTE,
        "close": anchor.SESSION_CLOSE_MINUTE,
    }
    assert copy == {"zone": IST_ZONE_NAME, "open": NSE.open_minute, "close": NSE.close_minute}
