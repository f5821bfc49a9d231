"""``trader train`` and ``trader model import|info`` (registered by app/cli.py).

Heavy imports (torch, the feature calculator) happen inside the handlers so that registering
these commands costs nothing for the rest of the CLI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.commands.data_options import add_data_options, data_settings
from app.commands.run_options import iso_date
from app.errors import UserError


def register(subparsers: Any) -> None:
    """Add ``train`` and ``model`` to the ``trader`` sub-command parser."""
    tr = subparsers.add_parser("train", help="train the LSTM + attention classifier")
    src = tr.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data",
        nargs="+",
        action="extend",
        metavar="PATH",
        help="bar files/directories (features computed here)",
    )
    src.add_argument(
        "--features",
        type=Path,
        metavar="FEATURES.parquet",
        help="a features file written by the feature calculator",
    )
    tr.add_argument("--interval", default="5minute", help="bar interval for --data (5minute)")
    add_data_options(tr)
    tr.add_argument(
        "--start-date", type=iso_date, help="--data: first day to train on (YYYY-MM-DD)"
    )
    tr.add_argument("--end-date", type=iso_date, help="--data: last day to train on (YYYY-MM-DD)")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--max-windows", type=int, help="subsample to at most N windows")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="a new or empty directory for the checkpoints, model.ckpt and the log (a directory "
        "holding files is refused: one training run per directory)",
    )  # fmt: skip
    tr.add_argument("--batch-size", type=int, default=512)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--patience", type=int, default=15)
    tr.add_argument(
        "--amp",
        choices=["auto", "bf16", "fp16", "off"],
        default="auto",
        help="mixed precision on CUDA (CPU always trains in fp32)",
    )
    tr.add_argument("--threads", type=int, help="CPU threads for torch")
    tr.add_argument("--window", type=int, default=60, help="bars per window (60)")
    tr.add_argument("--hidden-size", type=int, default=256, help="LSTM output width (256)")
    tr.add_argument("--horizon", type=int, default=6, help="label horizon in bars (6)")
    tr.add_argument("--label-mode", choices=["fixed", "volatility"], default="volatility")
    tr.add_argument(
        "--threshold",
        type=float,
        default=0.001,
        help="fixed mode: return threshold (0.001 = 0.1%%)",
    )
    tr.add_argument(
        "--vol-multiplier",
        type=float,
        default=0.3,
        help="volatility mode: threshold = k·σ·√horizon",
    )
    tr.add_argument(
        "--windows-within-session",
        action="store_true",
        help="windows never span two sessions (default: they may, as the seed's)",
    )
    tr.add_argument(
        "--labels-cross-sessions",
        action="store_true",
        help="labels may look past the session close (default: not)",
    )
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    model = subparsers.add_parser("model", help="model files: import the seed's, inspect")
    msub = model.add_subparsers(dest="model_command", required=True)
    imp = msub.add_parser("import", help="seed Lightning .ckpt + scaler.pkl → model file")
    imp.add_argument("--ckpt", type=Path, required=True)
    imp.add_argument("--scaler", type=Path, required=True)
    imp.add_argument("--out", type=Path, required=True, metavar="MODEL")
    imp.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling these files (they can run code: only files you trust)",
    )
    imp.add_argument("--spec-hash", help="feature spec hash to stamp (default: the running one)")
    imp.add_argument(
        "--allow-unmapped",
        action="store_true",
        help="import even if checkpoint tensors are left over (reported)",
    )
    imp.add_argument(
        "--trained-from",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="first day of the data the seed was trained and validated on (recorded as the "
        "model's provenance; without it the provenance is unknown and promotion is refused)",
    )
    imp.add_argument(
        "--trained-to",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="last day of the data the seed was trained and validated on",
    )
    imp.add_argument(
        "--symbols",
        help="with --trained-from/--trained-to: the symbols the seed was trained on, "
        "comma-separated (default: not stated, so every symbol counts as seen)",
    )
    imp.add_argument(
        "--class-order",
        default="SELL,HOLD,BUY",
        help="the seed's class names by output index (default SELL,HOLD,BUY)",
    )
    imp.set_defaults(func=cmd_model_import)
    info = msub.add_parser("info", help="print a model file's metadata")
    info.add_argument("model", type=Path)
    info.set_defaults(func=cmd_model_info)


def _model_configs(args: argparse.Namespace, n_features: int) -> tuple[Any, Any, Any]:
    from models.labels import LabelConfig
    from models.network import ModelConfig
    from models.train import TrainConfig

    model_cfg = ModelConfig(n_features=n_features, window=args.window, hidden_size=args.hidden_size)
    label_cfg = LabelConfig(
        horizon=args.horizon,
        mode=args.label_mode,
        threshold=args.threshold,
        vol_multiplier=args.vol_multiplier,
        cross_sessions=args.labels_cross_sessions,
    )
    train_cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        max_windows=args.max_windows,
        cross_sessions=not args.windows_within_session,
        num_threads=args.threads,
        progress=not args.no_progress,
    )
    return model_cfg, label_cfg, train_cfg


def cmd_train(args: argparse.Namespace) -> int:
    from models.feature_source import table_from_bars, table_from_features_file
    from models.labels import format_distribution
    from models.train import train

    refuse_used_out(args.out)  # before any data is read
    if args.features is not None:
        if args.start_date or args.end_date:
            raise UserError("--start-date/--end-date select bars of --data, not of --features")
        table, interval = table_from_features_file(args.features)
    else:
        from config.settings import load_settings

        settings = load_settings(**data_settings(args))  # the hours and data rules runs use
        table, interval = table_from_bars(
            args.data,
            args.interval,
            session=settings.session.times,
            data=settings.data,
            start=args.start_date,
            end=args.end_date,
        )
    print(f"features: {len(table)} rows, {len(table.symbols)} symbols, spec {table.spec_hash[:12]}")
    model_cfg, label_cfg, train_cfg = _model_configs(args, table.n_features)
    result = train(table, args.out, model_cfg, label_cfg, train_cfg, interval_minutes=interval)
    labels = result.best_metrics["labels"]
    for part, name in (("train", "train"), ("val", "val  "), ("test", "test ")):
        print(f"{name} {format_distribution(labels[part])}")
    best = result.best_metrics
    test = best["test"]
    print(
        f"best: epoch {best['epoch']} (chosen on validation: val_loss {best['val_loss']:.4f}, "
        f"val_accuracy {best['val_accuracy']:.4f}); test accuracy {test['accuracy']:.4f} vs "
        f"majority {best['baselines']['test']['majority']['accuracy']:.4f}, logistic "
        f"{best['baselines']['test']['logistic']['accuracy']:.4f}"
    )
    print(f"model: {result.model_path}  (hash {result.model_hash[:16]})")
    print(f"log: {result.log_path}   peak memory {result.peak_memory_mb:,.0f} MB")
    return 0


def refuse_used_out(out: Path) -> None:
    """One training run per directory: a second run into the same ``--out`` would leave both
    runs' epoch checkpoints side by side and overwrite ``model.ckpt`` and the log, so which file
    came from which run could no longer be told. Refused, naming what is there."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise UserError(
            f"--out {out} already holds files ({shown}); training again there would mix the "
            "checkpoints of two runs: choose a new directory (or remove this one)"
        )


def stated_provenance(args: argparse.Namespace) -> Any:
    """``--trained-from/--trained-to/--symbols`` → the stated provenance, or an unknown one when
    no period is given; half a period or a period that ends before it starts is refused."""
    from models import provenance

    start, end = args.trained_from, args.trained_to
    if start is None and end is None:
        if args.symbols:
            raise UserError("--symbols states the seed's training symbols: it needs "
                            "--trained-from and --trained-to")  # fmt: skip
        return provenance.unknown(
            "seed import without --trained-from/--trained-to: the data the seed was trained "
            "and validated on was not stated"
        )
    if start is None or end is None:
        missing = "--trained-from" if start is None else "--trained-to"
        raise UserError(f"{missing} is needed too: the training period has two ends")
    if end < start:
        raise UserError(f"--trained-to {end} is before --trained-from {start}")
    symbols = None if not args.symbols else args.symbols.split(",")
    return provenance.stated(start, end, symbols)


def cmd_model_import(args: argparse.Namespace) -> int:
    from models.seed_import import import_seed_to_file

    stated = stated_provenance(args)  # checked before any file is read
    model_hash, report = import_seed_to_file(
        args.ckpt,
        args.scaler,
        args.out,
        trust_pickle=args.trust_pickle,
        spec_hash=args.spec_hash,
        allow_unmapped=args.allow_unmapped,
        class_order=tuple(n.strip().upper() for n in args.class_order.split(",")),
        provenance=stated,
    )
    print(report.format())
    print(f"data seen: {stated.summary()}")
    print(f"model: {args.out}  (hash {model_hash[:16]})")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from models.checkpoint import load_bundle, running_spec
    from models.network import count_parameters

    bundle = load_bundle(args.model, expected_spec_hash=None)
    running = running_spec()
    info = {
        "model_hash": bundle.model_hash,
        "parameters": count_parameters(bundle.model),
        "config": bundle.config.to_dict(),
        "spec_hash": bundle.spec_hash,
        "spec_matches_running": None if running is None else running[0] == bundle.spec_hash,
        "label_config": None if bundle.label_config is None else bundle.label_config.to_dict(),
        "cross_sessions": bundle.cross_sessions,
        "interval_minutes": bundle.interval_minutes,
        "code_version": bundle.code_version,
        "data_seen": bundle.provenance.summary(),
        "provenance": bundle.provenance.to_dict(),
        "source": bundle.source,
        "metrics": {k: v for k, v in bundle.metrics.items() if k not in {"labels", "split"}},
    }
    print(json.dumps(info, indent=2, default=str))
    return 0
