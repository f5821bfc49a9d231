"""The model file: everything needed to run a model, loadable without unpickling code.

One ``torch.save`` of a dict holding only tensors and plain values (str, int, float, bool,
lists, dicts), so ``torch.load(weights_only=True)`` reads it — a checkpoint from someone else
cannot run code on load. Contents: weights, network hyper-parameters, the feature spec hash /
version / names it was trained on, the scaler, the label and window config, training metrics,
the code version and the provenance (``models.provenance``: which symbols and periods the model
was trained, validated and tested on; a file written before provenance existed reads as
unknown). A model whose spec hash differs from the running feature calculator's is refused with
both hashes in the message.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.version import code_version
from models.errors import CheckpointError, SpecMismatchError
from models.labels import LabelConfig
from models.network import CLASS_NAMES, IntradayClassifier, ModelConfig
from models.provenance import UNKNOWN_PROVENANCE, Provenance
from models.scaler import Scaler

FORMAT = "nse-trader/model"
FORMAT_VERSION = 1


#: torch's weights-only refusal names what it would not unpickle in one of these forms
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")
_REFUSED_MODULE = re.compile(r"whose module (\S+) is blocked")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def refused_pickles(exc: BaseException) -> list[str] | None:
    """The classes or modules a ``torch.load(weights_only=True)`` refused to unpickle, when
    ``exc`` is that refusal and names them; ``None`` otherwise.

    Torch's own message for this advises loading with ``weights_only=False`` — running the
    file's code — in bold ANSI; callers say it in their own words instead."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    text = str(exc)
    names = sorted({*_REFUSED_GLOBAL.findall(text), *_REFUSED_MODULE.findall(text)})
    return names or None


def describe_load_error(exc: BaseException) -> str:
    """``Type: what went wrong`` for a load failure: for torch's weights-only failures the
    unpickler's own finding (never torch's advice around it), else the first line; colour codes
    removed."""
    text = _ANSI.sub("", str(exc)).strip()
    detail = _UNPICKLER_DETAIL.search(text)
    line = detail.group(1) if detail else (text.splitlines() or [""])[0]
    return f"{type(exc).__name__}: {line.strip()[:200]}" if line else type(exc).__name__


def pickled_objects_message(path: Path, names: list[str]) -> str:
    """``path`` holds pickled objects: the start of every refusal message, naming them."""
    what = f" ({', '.join(names)})" if names else ""
    return (
        f"{path}: contains pickled Python objects{what} besides tensors and plain values; "
        "loading them could run code from the file"
    )


class _Current:
    """Sentinel: compare with the running feature calculator's spec hash."""


CURRENT = _Current()


@dataclass
class ModelBundle:
    """A network together with what it needs to be fed and what it was trained for."""

    model: IntradayClassifier
    scaler: Scaler
    spec_hash: str
    feature_names: tuple[str, ...] = ()
    spec_version: str = ""
    label_config: LabelConfig | None = None
    cross_sessions: bool = True  # whether training windows could span sessions
    interval_minutes: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    #: which data the model saw; not part of ``model_hash`` (it says what was fitted on what,
    #: not what the network computes)
    provenance: Provenance = UNKNOWN_PROVENANCE

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def model_hash(self) -> str:
        """Identity of what the model computes: weights, config, scaler and spec (not metrics)."""
        digest = hashlib.sha256()
        header = {
            "config": self.config.to_dict(),
            "scaler": self.scaler.to_dict(),
            "spec_hash": self.spec_hash,
            "cross_sessions": self.cross_sessions,
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()


def running_spec() -> tuple[str, str, tuple[str, ...]] | None:
    """(hash, version, names) of the feature calculator in this process, None if absent."""
    try:
        from engine.features import spec  # imported lazily: the model package must load alone
    except ImportError:
        return None
    names = tuple(getattr(spec, "FEATURE_NAMES", ()))
    return str(spec.SPEC_HASH), str(getattr(spec, "SPEC_VERSION", "")), names


def check_spec(what: str, model_hash: str, running_hash: str | None) -> None:
    """Refuse a model trained on another feature spec (no-op when nothing is running)."""
    if running_hash is not None and model_hash != running_hash:
        raise SpecMismatchError(
            what,
            model_hash,
            running_hash,
            "the model was trained on different features and is refused (retrain, or run the "
            "calculator version it was trained with)",
            against="the running feature calculator's",
        )


def bundle_to_dict(bundle: ModelBundle) -> dict[str, Any]:
    state = {
        k: v.detach().to("cpu", torch.float32).clone() for k, v in bundle.model.state_dict().items()
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": list(CLASS_NAMES),
        "state_dict": state,
        "model_config": bundle.config.to_dict(),
        "feature_spec": {
            "hash": bundle.spec_hash,
            "version": bundle.spec_version,
            "names": list(bundle.feature_names),
        },
        "scaler": {
            "mean": torch.from_numpy(bundle.scaler.mean.astype(np.float64)),
            "scale": torch.from_numpy(bundle.scaler.scale.astype(np.float64)),
            "n_samples": int(bundle.scaler.n_samples),
        },
        "label_config": None if bundle.label_config is None else bundle.label_config.to_dict(),
        "data_config": {
            "cross_sessions": bool(bundle.cross_sessions),
            "interval_minutes": bundle.interval_minutes,
        },
        "metrics": bundle.metrics,
        "code_version": bundle.code_version or code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": bundle.source,
        "provenance": bundle.provenance.to_dict(),
    }


def save_bundle(bundle: ModelBundle, path: str | Path) -> str:
    """Write the model file atomically (temp file + rename); returns the model hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(bundle_to_dict(bundle), tmp)
    tmp.replace(path)
    return bundle.model_hash


def _require(raw: dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise CheckpointError(f"{path}: model file has no {key!r} entry")
    return raw[key]


def bundle_from_dict(raw: dict[str, Any], path: Path) -> ModelBundle:
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an nse-trader model file (format {raw.get('format')!r}); a PyTorch "
            "Lightning checkpoint must first be imported with `trader model import`"
        )
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model file format version {raw['format_version']} is newer than this "
            f"code understands ({FORMAT_VERSION})"
        )
    try:
        config = ModelConfig.from_dict(_require(raw, "model_config", path))
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = IntradayClassifier(config)
    try:
        model.load_state_dict(_require(raw, "state_dict", path))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {exc}") from None
    model.eval()
    spec = _require(raw, "feature_spec", path)
    sc = _require(raw, "scaler", path)
    scaler = Scaler(
        mean=sc["mean"].numpy().astype(np.float64),
        scale=sc["scale"].numpy().astype(np.float64),
        n_samples=int(sc.get("n_samples", 0)),
    )
    if scaler.n_features != config.n_features:
        raise CheckpointError(
            f"{path}: scaler has {scaler.n_features} features, network expects {config.n_features}"
        )
    data = raw.get("data_config") or {}
    labels = raw.get("label_config")
    try:
        provenance = Provenance.from_dict(raw.get("provenance"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: provenance entry is malformed: {exc}") from None
    return ModelBundle(
        model=model,
        scaler=scaler,
        spec_hash=str(spec.get("hash", "")),
        feature_names=tuple(spec.get("names") or ()),
        spec_version=str(spec.get("version") or ""),
        label_config=None if labels is None else LabelConfig.from_dict(labels),
        cross_sessions=bool(data.get("cross_sessions", True)),
        interval_minutes=data.get("interval_minutes"),
        metrics=dict(raw.get("metrics") or {}),
        code_version=str(raw.get("code_version", "")),
        source=dict(raw.get("source") or {}),
        provenance=provenance,
    )


def load_bundle(
    path: str | Path, expected_spec_hash: str | _Current | None = CURRENT
) -> ModelBundle:
    """Read a model file with ``weights_only=True`` and check its feature spec.

    ``expected_spec_hash``: ``CURRENT`` compares with the running calculator (when one is
    importable), a string compares with that hash, ``None`` skips the check (inspection only).
    """
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model file") from None
    except Exception as exc:
        refused = refused_pickles(exc)
        if refused is None:
            raise CheckpointError(
                f"{path}: cannot be read as a model file ({describe_load_error(exc)})"
            ) from None
        raise CheckpointError(
            f"{pickled_objects_message(path, refused)}, so it is not loaded (model files written "
            "by this package hold none). If it is one of the seed's Lightning checkpoints and "
            "you trust where it came from, convert it once: trader model import "
            f"--ckpt {path} --scaler SCALER.pkl --trust-pickle --out model.ckpt"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: model file holds a {type(raw).__name__}, not a dict")
    bundle = bundle_from_dict(raw, path)
    if isinstance(expected_spec_hash, _Current):
        running = running_spec()
        expected = None if running is None else running[0]
    else:
        expected = expected_spec_hash
    check_spec(str(path), bundle.spec_hash, expected)
    return bundle
