"""``trader demo``: the engine's main job on an embedded default — no downloads, no credentials.

A seeded synthetic market is split by time: a small LSTM + attention model is trained on the
first 70% of sessions (features from the same numba calculator the pipeline uses), then the model
strategy is backtested on the remaining 30%, which the model never saw, through the same loader
validation, pipeline, risk chain and store as real data. ``--strategy sma_cross`` runs the
reference strategy instead; ``--model CKPT`` uses an existing model file.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from engine.data.loader import LoadedBars
from engine.data.synthetic import SyntheticMarket

TRAIN_SHARE = 0.7


def split_by_session(bars: LoadedBars, share: float) -> tuple[LoadedBars, LoadedBars]:
    """Earlier sessions / later sessions (no session in both)."""
    days = sorted(bars.frame["ts"].dt.date.unique())
    cut = days[max(1, int(len(days) * share))]
    early = bars.frame["ts"].dt.date < cut
    first = dataclasses.replace(
        bars,
        frame=bars.frame[early].reset_index(drop=True),
        fingerprint=f"{bars.fingerprint}-before-{cut}",
    )
    second = dataclasses.replace(
        bars,
        frame=bars.frame[~early].reset_index(drop=True),
        fingerprint=f"{bars.fingerprint}-from-{cut}",
    )
    return first, second


def train_demo_model(bars: LoadedBars, out: Path, epochs: int, seed: int) -> Path:
    """A small model of the seed's shape (1 bidirectional layer, 32 wide) in well under a minute
    on a laptop CPU."""
    from models.feature_source import table_from_loaded_bars
    from models.labels import LabelConfig
    from models.network import ModelConfig
    from models.train import TrainConfig, train

    table = table_from_loaded_bars(bars)
    result = train(
        table, out,
        ModelConfig(n_features=table.n_features, hidden_size=32, num_layers=1, num_heads=2,
                    head_hidden=(32,)),
        LabelConfig(),
        TrainConfig(epochs=epochs, batch_size=256, lr=2e-3, patience=2, seed=seed,
                    max_windows=6000, progress=False),
        interval_minutes=bars.interval_minutes,
        echo=lambda line: print(f"  {line}"),
    )  # fmt: skip
    return result.model_path


def demo_model(args: argparse.Namespace, train_part: LoadedBars) -> Path:
    """The demo's model: trained once per recipe (training data, seed, epochs) into its own
    directory under ``--model-dir`` (default ``$TRADER_HOME/demo-model``), reused when the same
    demo runs again — training is deterministic for a seed, so the file would be the same.
    One directory per recipe: two trainings never mix their checkpoints."""
    from config.paths import demo_model_dir
    from models.train import BEST_NAME

    root = Path(args.model_dir) if args.model_dir else demo_model_dir()
    out = root / f"{train_part.fingerprint[:16]}-seed{args.seed}-epochs{args.epochs}"
    if (out / BEST_NAME).exists():
        print(f"using the model trained earlier on the same sessions, seed and epochs: {out}")
        return out / BEST_NAME
    if out.exists():
        shutil.rmtree(out)  # an interrupted training of this recipe: start it again, cleanly
    print(f"training a small model on the first {len(train_part.frame):,} bars → {out}")
    return train_demo_model(train_part, out, args.epochs, args.seed)


def run_demo(args: argparse.Namespace) -> int:
    from app.commands.run_options import prepare_run, run_and_report, settings_from_args

    market = SyntheticMarket(symbols=args.symbols, days=args.days, seed=args.seed)
    bars = market.bars(args.interval, settings_from_args(args).session.times)
    print(
        f"synthetic market: {args.symbols} symbols × {args.days} sessions, seed {args.seed}, "
        f"{args.interval} bars"
    )
    if args.strategy == "model":
        train_part, test_part = split_by_session(bars, TRAIN_SHARE)
        if not args.model:
            args.model = [str(demo_model(args, train_part))]
        print(
            f"backtesting the model strategy on the {len(test_part.frame):,} later bars "
            "it never saw"
        )
        bars = test_part
    return run_and_report(args, prepare_run(args), bars, bars.fingerprint)
