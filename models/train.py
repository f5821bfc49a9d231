"""Training: labels → lazy windows → time split → scaler → AdamW/cosine → early stopping → test.

Choices that follow the seed: batch 512, AdamW at 1e-4 with cosine annealing over the epoch
budget, early stopping on validation loss with patience 15, class-weighted cross-entropy for
the imbalance, checkpoint names ``intraday-epoch=03-val_loss=1.0177-val_accuracy=0.5612.ckpt``.
Mixed precision (bf16 where the GPU has it, else fp16 with loss scaling) only on CUDA; CPU
training is fp32 and deterministic for a seed (fixed thread count, seeded shuffles and dropout).

The split is three-way by time: training fits the weights, validation picks the checkpoint
(early stopping), and the test period — never looked at while training — is scored once, with
the chosen checkpoint, next to the majority-class and logistic-regression baselines on the same
windows. Validation numbers flatter the model (they chose it); the test numbers are the ones
to judge it by.

Every epoch appends a JSON line to ``train_log.jsonl`` with the loss, accuracy, per-class
accuracy, confusion matrix and the majority-class baseline, so a run can be judged without
rerunning it; the last line holds the test scores and the baselines.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.version import code_version
from models.baselines import LinearBaseline, fit_baseline
from models.checkpoint import ModelBundle, load_bundle, running_spec, save_bundle
from models.dataset import (
    FeatureTable,
    Split,
    WindowSet,
    covered_rows,
    subsample,
    time_split,
    window_ends,
)
from models.errors import DatasetError, ModelError
from models.labels import LabelConfig, label_distribution, make_labels
from models.metrics import classification_report, majority_baseline
from models.network import CLASS_NAMES, IntradayClassifier, ModelConfig, count_parameters
from models.provenance import measured
from models.scaler import Scaler, fit_scaler

LOG_NAME = "train_log.jsonl"
BEST_NAME = "model.ckpt"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 512
    eval_batch_size: int = 0  # 0: 256 on CPU (cache-friendly), 4096 on CUDA
    lr: float = 1e-4
    weight_decay: float = 0.01
    patience: int = 15
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto | bf16 | fp16 | off — only ever used on CUDA
    train_frac: float = 0.7
    val_frac: float = 0.15  # the test period is what is left: 1 - train_frac - val_frac
    gap_bars: int | None = None  # default: the label horizon
    max_windows: int | None = None
    cross_sessions: bool = True
    grad_clip: float = 1.0
    save_top_k: int = 3
    num_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ModelError("train config: epochs, batch_size and patience must be ≥ 1")
        if self.device not in {"auto", "cpu", "cuda"}:
            raise ModelError(f"train config: device {self.device!r} must be auto, cpu or cuda")
        if self.amp not in {"auto", "bf16", "fp16", "off"}:
            raise ModelError(f"train config: amp {self.amp!r} must be auto, bf16, fp16 or off")


@dataclass
class TrainResult:
    best_path: Path
    model_path: Path
    log_path: Path
    model_hash: str
    best_metrics: dict[str, Any]  # the chosen checkpoint's: validation, test and baselines
    history: list[dict[str, Any]] = field(default_factory=list)
    peak_memory_mb: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelError("device cuda was asked for but CUDA is not available here")
        return torch.device("cuda")
    return torch.device("cpu")


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Autocast dtype: None on CPU (fp32) or when off."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Balanced weights n / (k · count_c); a class absent from training gets weight 0."""
    counts = np.bincount(labels.astype(np.int64), minlength=len(CLASS_NAMES)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(CLASS_NAMES))
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak resident memory of this process (MB); on CUDA also peak allocated GPU memory."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if device is not None and device.type == "cuda":
        return rss + torch.cuda.max_memory_allocated(device) / 2**20
    return rss


def checkpoint_name(epoch: int, val_loss: float, val_accuracy: float) -> str:
    return (
        f"intraday-epoch={epoch:02d}-val_loss={val_loss:.4f}-val_accuracy={val_accuracy:.4f}.ckpt"
    )


@dataclass
class PreparedData:
    """Labels, windows, split and scaler: everything training needs besides the network."""

    table: FeatureTable
    labels: np.ndarray
    split: Split
    scaler: Scaler
    train: WindowSet
    val: WindowSet
    test: WindowSet
    label_report: dict[str, Any]


def prepare_data(
    table: FeatureTable, window: int, label_cfg: LabelConfig, cfg: TrainConfig
) -> PreparedData:
    """Label rows, pick window ends, split by time (train / validation / test) and fit the
    scaler on training rows only."""
    if table.close is None:
        raise DatasetError("feature table has no close prices; labels need them")
    labels = make_labels(table.close, table.symbol_codes, table.session_ids, label_cfg)
    ends = window_ends(table, window, cfg.cross_sessions, labels)
    if len(ends) == 0:
        raise DatasetError(
            f"no complete {window}-bar windows with labels in {len(table)} rows "
            f"({len(table.symbols)} symbols); need more bars per symbol"
        )
    ends = subsample(ends, cfg.max_windows)
    split = time_split(table, ends, label_cfg.horizon, cfg.train_frac, cfg.val_frac, cfg.gap_bars)
    scaler = fit_scaler(table.values, covered_rows(len(table), split.train, window))
    train, val, test = (
        WindowSet(table, part, window, labels, scaler.mean, scaler.scale)
        for part in (split.train, split.val, split.test)
    )
    report = {
        "all_rows": label_distribution(labels),
        "train": label_distribution(labels[split.train]),
        "val": label_distribution(labels[split.val]),
        "test": label_distribution(labels[split.test]),
    }
    return PreparedData(table, labels, split, scaler, train, val, test, report)


def evaluate(
    model: nn.Module,
    windows: WindowSet,
    criterion: nn.Module,
    batch_size: int,
    device: torch.device,
    autocast: torch.dtype | None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean criterion loss, predictions, labels) over all windows, in order."""
    model.eval()
    total, count = 0.0, 0
    preds, trues = [], []
    with torch.inference_mode():
        for x, y in windows.iter_batches(batch_size):
            assert y is not None
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(
                device.type, dtype=autocast or torch.float32, enabled=autocast is not None
            ):
                logits = model(x)
            loss = criterion(logits.float(), y)
            total += float(loss) * len(y)
            count += len(y)
            preds.append(logits.argmax(dim=1).cpu().numpy())
            trues.append(y.cpu().numpy())
    return total / max(count, 1), np.concatenate(preds), np.concatenate(trues)


def logistic_baseline(
    data: PreparedData, max_train: int = 200_000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Logistic regression on the scaled last row of each window, fitted on (at most
    ``max_train``) training windows with balanced class weights, scored on validation and test.

    The bar a network has to clear: what a linear read of the current features already gets."""
    fitted = fit_training_baseline(data, max_train, seed)
    out = {}
    for part, rows in (("validation", data.split.val), ("test", data.split.test)):
        report = classification_report(
            data.labels[rows], fitted.logistic_predict(data.table.values[rows])
        )
        out[part] = {**report, "fitted_on": fitted.fitted_on, "converged": fitted.converged}
    return out


def fit_training_baseline(
    data: PreparedData, max_train: int = 200_000, seed: int = 0
) -> LinearBaseline:
    """The majority class and the logistic regression, fitted on (at most ``max_train``)
    training windows' last rows, scaled by the model's scaler."""
    train_rows = subsample(data.split.train, max_train)
    return fit_baseline(
        data.table.values[train_rows], data.labels[train_rows], data.scaler.mean,
        data.scaler.scale, seed=seed,
    )  # fmt: skip


def baselines(data: PreparedData, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Majority class (the most common training label) and logistic regression, each scored on
    the validation and the test windows: ``{"validation": {...}, "test": {...}}``."""
    train_labels = data.labels[data.split.train]
    logistic = logistic_baseline(data, seed=seed)
    return {
        part: {
            "majority": majority_baseline(train_labels, data.labels[rows]),
            "logistic": logistic[part],
        }
        for part, rows in (("validation", data.split.val), ("test", data.split.test))
    }


def format_evaluation(metrics: dict[str, Any]) -> str:
    """The chosen checkpoint on validation and on test, each next to its baselines, as a table.

    Validation chose the checkpoint, so its row is optimistic; the test rows are the verdict."""
    head = f"{'':<11}{'':<24}{'windows':>8} {'accuracy':>9} {'balanced':>9}" + "".join(
        f" {name:>6}" for name in CLASS_NAMES
    )
    lines = [head]

    def row(part: str, name: str, report: dict[str, Any]) -> None:
        per_class = report.get("per_class_accuracy", {})
        cells = "".join(
            f" {per_class.get(c):>6.3f}" if per_class.get(c) is not None else f" {'-':>6}"
            for c in CLASS_NAMES
        )
        windows = sum(report.get("support", {}).values())
        lines.append(
            f"{part:<11}{name:<24}{windows:>8} {report['accuracy']:>9.3f} "
            f"{report['balanced_accuracy']:>9.3f}{cells}"
        )

    chosen = f"model (epoch {metrics['epoch']})"
    base = metrics.get("baselines", {})
    for part, key in (("validation", "validation"), ("test", "test")):
        model = metrics["validation"] if part == "validation" else metrics.get("test")
        if model is None:
            continue
        row(part, chosen, model)
        if key in base:
            row(part, f"majority ({base[key]['majority']['class']})", base[key]["majority"])
            row(part, "logistic regression", base[key]["logistic"])
    return "\n".join(lines)


class _Log:
    """Append-only JSON-lines training log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def train(
    table: FeatureTable,
    out_dir: str | Path,
    model_cfg: ModelConfig | None = None,
    label_cfg: LabelConfig | None = None,
    cfg: TrainConfig | None = None,
    interval_minutes: int | None = None,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train one model on ``table``; checkpoints and the log go to ``out_dir``."""
    model_cfg = model_cfg or ModelConfig(n_features=table.n_features)
    label_cfg = label_cfg or LabelConfig()
    cfg = cfg or TrainConfig()
    if model_cfg.n_features != table.n_features:
        raise ModelError(
            f"model expects {model_cfg.n_features} features, the table has {table.n_features}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    autocast = amp_dtype(device, cfg.amp)
    eval_batch = cfg.eval_batch_size or (4096 if device.type == "cuda" else 256)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    data = prepare_data(table, model_cfg.window, label_cfg, cfg)
    train_labels = data.labels[data.split.train]
    val_labels = data.labels[data.split.val]
    weights = class_weights(train_labels)
    baseline = majority_baseline(train_labels, val_labels)

    model = IntradayClassifier(model_cfg).to(device)
    criterion = nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32, device=device)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    grad_scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)

    fingerprint = table.fingerprint()
    source = {"kind": "trained", "seed": cfg.seed, "data_fingerprint": fingerprint}
    provenance = measured(
        table.ts_ns, table.symbol_codes, table.symbols,
        {"train": data.split.train, "validation": data.split.val, "test": data.split.test},
        model_cfg.window, label_cfg.horizon, interval_minutes=interval_minutes,
        data_fingerprint=fingerprint, spec_hash=table.spec_hash,
    )  # fmt: skip

    def write(path: Path, metrics: dict[str, Any]) -> None:
        bundle = _bundle(model, data, label_cfg, cfg, interval_minutes, metrics, source)
        bundle.provenance = provenance
        save_bundle(bundle, path)

    log = _Log(out / LOG_NAME)
    setup = {
        "event": "setup",
        "device": str(device),
        "amp": None if autocast is None else str(autocast).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "parameters": count_parameters(model),
        "model_config": model_cfg.to_dict(),
        "label_config": label_cfg.to_dict(),
        "train_config": asdict(cfg),
        "spec_hash": table.spec_hash,
        "symbols": len(table.symbols),
        "rows": len(table),
        "split": data.split.describe(),
        "provenance": provenance.to_dict(),
        "labels": data.label_report,
        "class_weights": dict(zip(CLASS_NAMES, weights.tolist(), strict=True)),
        "majority_baseline": baseline,
    }
    log.write(setup)
    echo(
        f"train: {len(data.train)} windows, val: {len(data.val)} windows, test: "
        f"{len(data.test)} windows (scored once, at the end), {setup['parameters']:,} "
        f"parameters on {device}" + (f" ({setup['amp']})" if autocast else "")
    )
    echo(f"data seen: {provenance.summary()}")

    best_loss = math.inf
    best_path: Path | None = None
    best_metrics: dict[str, Any] = {}
    best_state: dict[str, torch.Tensor] = {}
    kept: list[tuple[float, Path]] = []
    history: list[dict[str, Any]] = []
    stale = 0
    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(
            data.train.iter_batches(cfg.batch_size, shuffle=True, rng=rng),
            total=data.train.n_batches(cfg.batch_size),
            desc=f"epoch {epoch:02d}",
            disable=not cfg.progress,
            leave=False,
        )
        for x, y in bar:
            assert y is not None
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                device.type, dtype=autocast or torch.float32, enabled=autocast is not None
            ):
                logits = model(x)
            loss = criterion(logits.float(), y)
            if not torch.isfinite(loss):
                raise ModelError(f"epoch {epoch}: training loss became {float(loss)}; lower lr")
            grad_scaler.scale(loss).backward()
            grad_scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            grad_scaler.step(optimizer)
            grad_scaler.update()
            running += float(loss.detach()) * len(y)
            seen += len(y)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        scheduler.step()
        val_loss, preds, trues = evaluate(model, data.val, criterion, eval_batch, device, autocast)
        report = classification_report(trues, preds)
        record = {
            "event": "epoch",
            "epoch": epoch,
            "train_loss": running / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": report["accuracy"],
            "val_balanced_accuracy": report["balanced_accuracy"],
            "per_class_accuracy": report["per_class_accuracy"],
            "confusion_matrix": report["confusion_matrix"],
            "majority_baseline_accuracy": baseline["accuracy"],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        improved = val_loss < best_loss
        if improved:
            best_loss, stale = val_loss, 0
            path = out / checkpoint_name(epoch, val_loss, report["accuracy"])
            best_metrics = {
                "epoch": epoch,
                "val_loss": val_loss,
                "val_accuracy": report["accuracy"],
                "val_balanced_accuracy": report["balanced_accuracy"],
                "validation": {**report, "loss": val_loss, "windows": len(data.val)},
                "majority_baseline": {
                    "class": baseline["class"],
                    "accuracy": baseline["accuracy"],
                },
                "split": data.split.describe(),
                "labels": data.label_report,
            }
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            write(path, best_metrics)
            best_path = path
            kept.append((val_loss, path))
            kept.sort(key=lambda item: item[0])
            for _, old in kept[cfg.save_top_k :]:
                old.unlink(missing_ok=True)
            kept = kept[: cfg.save_top_k]
        else:
            stale += 1
        record["checkpoint"] = str(best_path) if improved else None
        log.write(record)
        echo(
            f"epoch {epoch:02d}: train_loss {record['train_loss']:.4f} val_loss {val_loss:.4f} "
            f"val_acc {report['accuracy']:.4f} (majority {baseline['accuracy']:.4f})"
            + (" *" if improved else "")
        )
        if stale >= cfg.patience:
            echo(f"early stop: no val_loss improvement for {cfg.patience} epochs")
            break

    assert best_path is not None
    # The checkpoint is chosen; only now is the test period looked at, once, with it.
    model.load_state_dict(best_state)
    test_loss, preds, trues = evaluate(model, data.test, criterion, eval_batch, device, autocast)
    best_metrics["test"] = {
        **classification_report(trues, preds),
        "loss": test_loss,
        "windows": len(data.test),
    }
    best_metrics["baselines"] = baselines(data, seed=cfg.seed)
    write(best_path, best_metrics)  # same weights (same model hash), now with the test scores
    model_path = out / BEST_NAME
    shutil.copyfile(best_path, model_path)
    final: dict[str, Any] = {
        "event": "done",
        "best_checkpoint": best_path,
        "best": {k: best_metrics[k] for k in ("epoch", "val_loss", "val_accuracy")},
        "test": best_metrics["test"],
        "baselines": best_metrics["baselines"],
        "epochs_run": len(history),
        "peak_memory_mb": peak_memory_mb(device),
    }
    log.write(final)
    echo(format_evaluation(best_metrics))
    model_hash = load_bundle(model_path, expected_spec_hash=None).model_hash
    return TrainResult(
        best_path=best_path,
        model_path=model_path,
        log_path=log.path,
        model_hash=model_hash,
        best_metrics=best_metrics,
        history=history,
        peak_memory_mb=final["peak_memory_mb"],
    )


def _bundle(
    model: IntradayClassifier,
    data: PreparedData,
    label_cfg: LabelConfig,
    cfg: TrainConfig,
    interval_minutes: int | None,
    metrics: dict[str, Any],
    source: dict[str, Any],
) -> ModelBundle:
    running = running_spec()
    table = data.table
    version = running[1] if running is not None and running[0] == table.spec_hash else ""
    return ModelBundle(
        model=model,
        scaler=data.scaler,
        spec_hash=table.spec_hash,
        feature_names=table.feature_names,
        spec_version=version,
        label_config=label_cfg,
        cross_sessions=cfg.cross_sessions,
        interval_minutes=interval_minutes,
        metrics=metrics,
        code_version=code_version(),
        source=source,
    )
