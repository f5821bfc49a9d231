"""Import what the seed's training produced: a PyTorch Lightning ``.ckpt`` and ``scaler.pkl``.

Both are pickles, and unpickling runs whatever code the file names. A Lightning checkpoint is
first tried with ``torch.load(weights_only=True)`` (plain tensors and containers only); when
it holds anything else (Lightning's ``AttributeDict`` of hyper-parameters, callback state) and
always for ``scaler.pkl``, reading needs ``trust_pickle=True`` (``--trust-pickle``) — the user
vouching for the file's origin. Classes of packages not installed here (lightning itself) are
read as plain stand-ins, so the import does not need Lightning.

Parameter names are mapped onto this package's network: a common prefix such as ``model.`` is
stripped, component names are matched through aliases (``fc``/``classifier`` → ``head``,
``attn`` → ``attention``…), and the network's sizes are read off the tensor shapes (with the
hyper-parameters for what shapes cannot tell: heads, pooling, activation, window). Anything
that does not map — a tensor left over, a parameter not supplied, a shape that differs — is
listed by name and shape, and the import is refused unless leftovers are explicitly allowed.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.version import code_version
from models.checkpoint import (
    ModelBundle,
    describe_load_error,
    pickled_objects_message,
    refused_pickles,
    running_spec,
    save_bundle,
)
from models.errors import SeedImportError, UntrustedPickleError
from models.network import CLASS_NAMES, POOLINGS, IntradayClassifier, ModelConfig
from models.provenance import Provenance, unknown
from models.scaler import Scaler

COMPONENT_ALIASES: dict[str, tuple[str, ...]] = {
    "lstm": ("lstm", "rnn", "encoder", "bilstm"),
    "attention": ("attention", "attn", "mha", "multihead_attn", "multihead_attention", "self_attn"),
    "norm": ("norm", "layer_norm", "layernorm", "ln", "attn_norm", "attention_norm"),
    "head": ("head", "fc", "classifier", "mlp", "output", "out", "fc_layers"),
}
HPARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "num_heads": ("num_heads", "n_heads", "heads", "attention_heads", "nhead"),
    "window": ("window", "sequence_length", "seq_len", "seq_length", "lookback", "window_size"),
    "dropout": ("dropout", "dropout_rate", "drop_rate"),
    "attention_dropout": ("attention_dropout", "attn_dropout"),
    "pooling": ("pooling",),
    "activation": ("activation",),
}
_LSTM_PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


@dataclass
class ImportReport:
    """What mapped and what did not, for the user to read before trusting the result."""

    mapped: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    unmapped_source: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    missing_target: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    shape_mismatch: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )
    ignored_entries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: ModelConfig | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing_target or self.shape_mismatch)

    def format(self) -> str:
        lines = [f"mapped {len(self.mapped)} tensors"]
        if self.config is not None:
            lines.append(f"network config: {self.config.to_dict()}")
        for src, shape in self.unmapped_source:
            lines.append(f"  not mapped (checkpoint): {src} {list(shape)}")
        for dst, shape in self.missing_target:
            lines.append(f"  not supplied (network):  {dst} {list(shape)}")
        for src, dst, s_shape, d_shape in self.shape_mismatch:
            lines.append(f"  shape differs: {src} {list(s_shape)} → {dst} {list(d_shape)}")
        if self.ignored_entries:
            lines.append(f"ignored checkpoint entries: {', '.join(self.ignored_entries)}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


class _StandIn(dict[str, Any]):
    """Stand-in for a class whose package is not installed (e.g. Lightning's AttributeDict)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)

    def __reduce__(self) -> Any:  # pragma: no cover - never re-pickled
        return (dict, (dict(self),))


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_StandIn,), {"__module__": f"standin.{module}"})


def _lenient_load(fh: Any, **kwargs: Any) -> Any:
    return _LenientUnpickler(fh, **kwargs).load()


def _lenient_loads(data: bytes, **kwargs: Any) -> Any:
    return _LenientUnpickler(io.BytesIO(data), **kwargs).load()


#: A pickle-module look-alike for ``torch.load(pickle_module=...)`` (trusted files only).
_lenient_pickle = types.ModuleType("lenient_pickle")
_lenient_pickle.__dict__.update(
    Unpickler=_LenientUnpickler, load=_lenient_load, loads=_lenient_loads
)


def read_lightning_ckpt(path: str | Path, trust_pickle: bool = False) -> dict[str, Any]:
    """The checkpoint dict; weights-only unless the caller trusts the file."""
    path = Path(path)
    if not path.exists():
        raise SeedImportError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle:
            refused = refused_pickles(exc)
            what = (
                pickled_objects_message(path, refused)
                if refused
                else f"{path}: cannot be read as plain tensors ({describe_load_error(exc)}); it "
                "may hold pickled objects, and unpickling them could run code from the file"
            )
            raise UntrustedPickleError(
                f"{what}. Pass --trust-pickle only if you trust where it came from"
            ) from None
        try:
            raw = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_lenient_pickle
            )
        except Exception as exc2:
            raise SeedImportError(
                f"{path}: cannot be read as a PyTorch checkpoint ({describe_load_error(exc2)})"
            ) from None
    if not isinstance(raw, Mapping):
        raise SeedImportError(f"{path}: holds a {type(raw).__name__}, not a checkpoint dict")
    return dict(raw)


def read_sklearn_scaler(path: str | Path, trust_pickle: bool = False) -> Scaler:
    """mean_/scale_ of a pickled (or joblib-dumped) scikit-learn StandardScaler."""
    path = Path(path)
    if not trust_pickle:
        raise UntrustedPickleError(
            f"{path}: a scaler .pkl is a pickle, and unpickling can run code from the file. "
            "Pass --trust-pickle only if you trust where it came from"
        )
    if not path.exists():
        raise SeedImportError(f"{path}: no such scaler file")
    obj: Any
    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh)
    except Exception as exc:
        try:
            import joblib

            obj = joblib.load(path)
        except Exception:
            raise SeedImportError(
                f"{path}: cannot be unpickled ({type(exc).__name__}: {exc})"
            ) from None
    scale = getattr(obj, "scale_", None)
    mean = getattr(obj, "mean_", None)
    if scale is None and mean is None:
        raise SeedImportError(
            f"{path}: holds a {type(obj).__name__} without mean_/scale_ (not a fitted "
            "StandardScaler)"
        )
    known = np.asarray(scale if scale is not None else mean, dtype=np.float64)
    return Scaler(
        mean=np.zeros(len(known)) if mean is None else np.asarray(mean, dtype=np.float64),
        scale=np.ones(len(known)) if scale is None else np.asarray(scale, dtype=np.float64),
        n_samples=int(np.max(getattr(obj, "n_samples_seen_", 0))),
    )


def _tensor_items(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _root_prefix(names: list[str]) -> str:
    """Prefix before the LSTM module (``model.`` in ``model.lstm.weight_ih_l0``)."""
    lstm_keys = [n for n in names if n.endswith(".weight_ih_l0")]
    if not lstm_keys:
        raise SeedImportError(
            "checkpoint state_dict has no LSTM weights (no '*.weight_ih_l0'); it is not the "
            "seed's LSTM classifier"
        )
    module = min(lstm_keys, key=len)[: -len(".weight_ih_l0")]
    return module.rsplit(".", 1)[0] + "." if "." in module else ""


def _canonical(name: str) -> tuple[str, str] | None:
    """``fc.0.weight`` → ("head", "0.weight"); None when the component is unknown."""
    first, _, rest = name.partition(".")
    for target, aliases in COMPONENT_ALIASES.items():
        if first.lower() in aliases:
            return target, rest
    return None


def _hparam(hparams: Mapping[str, Any], key: str) -> Any:
    for alias in HPARAM_ALIASES[key]:
        if alias in hparams:
            return hparams[alias]
    return None


def infer_config(
    parts: dict[str, dict[str, torch.Tensor]], hparams: Mapping[str, Any], report: ImportReport
) -> ModelConfig:
    """Sizes from shapes; heads, pooling, activation and window from hyper-parameters."""
    lstm = parts.get("lstm", {})
    w_ih, w_hh = lstm.get("weight_ih_l0"), lstm.get("weight_hh_l0")
    if w_ih is None or w_hh is None:
        raise SeedImportError("checkpoint has no LSTM layer-0 weights (weight_ih_l0/weight_hh_l0)")
    units = int(w_hh.shape[1])
    layers = 1 + max(int(m.group(2)) for k in lstm if (m := _LSTM_PARAM.match(k)))
    bidirectional = "weight_ih_l0_reverse" in lstm
    hidden = units * (2 if bidirectional else 1)
    head_weights = sorted(
        ((k, v) for k, v in parts.get("head", {}).items() if k.endswith("weight") and v.dim() == 2),
        key=lambda kv: [int(p) if p.isdigit() else p for p in kv[0].split(".")],
    )
    if not head_weights:
        raise SeedImportError("checkpoint has no classifier head weights (head/fc/classifier)")
    head_hidden = tuple(int(v.shape[0]) for _, v in head_weights[:-1])
    pooled = int(head_weights[0][1].shape[1])
    pooling = _hparam(hparams, "pooling")
    if pooling is None:
        if pooled % hidden or not 1 <= pooled // hidden <= len(POOLINGS):
            raise SeedImportError(
                f"classifier input width {pooled} is not a multiple 1..4 of the LSTM width {hidden}"
            )
        pooling = ("attention", "mean", "max", "last")[: pooled // hidden]
        report.notes.append(f"pooling {list(pooling)} inferred from the classifier input width")
    heads = _hparam(hparams, "num_heads")
    if heads is None:
        heads = 4
        report.notes.append("num_heads not in hyper_parameters; assumed 4")
    window = _hparam(hparams, "window")
    if window is None:
        window = 60
        report.notes.append("window length not in hyper_parameters; assumed 60")
    values: dict[str, Any] = {
        "n_features": int(w_ih.shape[1]),
        "window": int(window),
        "hidden_size": hidden,
        "num_layers": layers,
        "bidirectional": bidirectional,
        "num_heads": int(heads),
        "pooling": tuple(pooling),
        "head_hidden": head_hidden,
        "num_classes": int(head_weights[-1][1].shape[0]),
    }
    for key in ("dropout", "attention_dropout", "activation"):
        found = _hparam(hparams, key)
        if found is not None:
            values[key] = found
    try:
        return ModelConfig(**values)
    except ValueError as exc:
        raise SeedImportError(f"checkpoint shapes give an unusable network: {exc}") from None


def map_state_dict(
    state: Mapping[str, Any], hparams: Mapping[str, Any]
) -> tuple[ModelConfig, dict[str, torch.Tensor], ImportReport]:
    """Seed names → this network's names; returns the config, the mapped weights, the report."""
    report = ImportReport()
    tensors = _tensor_items(state)
    report.ignored_entries.extend(sorted(k for k in state if k not in tensors))
    prefix = _root_prefix(list(tensors))
    parts: dict[str, dict[str, torch.Tensor]] = {}
    origin: dict[tuple[str, str], str] = {}
    for name, tensor in tensors.items():
        canon = _canonical(name[len(prefix) :]) if name.startswith(prefix) else None
        if canon is None:
            report.unmapped_source.append((name, tuple(tensor.shape)))
            continue
        parts.setdefault(canon[0], {})[canon[1]] = tensor
        origin[canon] = name
    config = infer_config(parts, hparams, report)
    report.config = config
    target = IntradayClassifier(config).state_dict()
    mapped: dict[str, torch.Tensor] = {}
    # Head Linear layers are matched by order: the seed's Sequential may index them differently.
    ours_head = [
        k.rsplit(".", 1)[0] for k in target if k.startswith("head.") and k.endswith("weight")
    ]
    theirs_head = sorted(
        {
            k.rsplit(".", 1)[0]
            for k, v in parts.get("head", {}).items()
            if k.endswith("weight") and v.dim() == 2
        },
        key=lambda k: [int(p) if p.isdigit() else p for p in k.split(".")],
    )
    head_map = dict(zip(theirs_head, (o.removeprefix("head.") for o in ours_head), strict=False))
    for (component, rest), src in origin.items():
        if component == "head":
            layer, _, leaf = rest.rpartition(".")
            dst = f"head.{head_map[layer]}.{leaf}" if layer in head_map else None
        else:
            dst = f"{component}.{rest}"
        tensor = tensors[src]
        if dst is None or dst not in target:
            report.unmapped_source.append((src, tuple(tensor.shape)))
        elif tuple(tensor.shape) != tuple(target[dst].shape):
            report.shape_mismatch.append((src, dst, tuple(tensor.shape), tuple(target[dst].shape)))
        else:
            mapped[dst] = tensor.detach().to(torch.float32)
            report.mapped.append((src, dst, tuple(tensor.shape)))
    for dst, tensor in target.items():
        if dst not in mapped and not any(m[1] == dst for m in report.shape_mismatch):
            report.missing_target.append((dst, tuple(tensor.shape)))
    report.unmapped_source.sort()
    return config, mapped, report


FORWARD_NOTE = (
    "names and shapes fit, but the forward pass is this package's (LSTM → attention with the "
    "last bar as query → residual LayerNorm → pooling → head): compare a few predictions with "
    "the seed's own code before trading on the import"
)


def permute_classes(
    mapped: dict[str, torch.Tensor], config: ModelConfig, class_order: tuple[str, ...]
) -> None:
    """Reorder the output layer so row i is ``CLASS_NAMES[i]`` whatever the seed's order was."""
    if sorted(class_order) != sorted(CLASS_NAMES):
        raise SeedImportError(
            f"class order {list(class_order)} must name each of {list(CLASS_NAMES)} once"
        )
    if tuple(class_order) == CLASS_NAMES:
        return
    last = 3 * len(config.head_hidden)  # index of the final Linear in the head Sequential
    order = torch.tensor([class_order.index(name) for name in CLASS_NAMES])
    for leaf in ("weight", "bias"):
        key = f"head.{last}.{leaf}"
        mapped[key] = mapped[key][order].clone()


def import_seed(
    ckpt_path: str | Path,
    scaler_path: str | Path,
    trust_pickle: bool = False,
    spec_hash: str | None = None,
    allow_unmapped: bool = False,
    class_order: tuple[str, ...] = CLASS_NAMES,
    provenance: Provenance | None = None,
) -> tuple[ModelBundle, ImportReport]:
    """Build a model bundle from a seed checkpoint and scaler; refuse on anything unmapped.

    ``class_order``: the seed's class names by output index (this package's is SELL, HOLD, BUY).
    ``provenance``: the data the seed was trained on as the operator states it
    (``models.provenance.stated``); the checkpoint itself does not say, so without it the
    model's provenance is unknown — and no backtest of it counts as out-of-sample.
    """
    ckpt_path, scaler_path = Path(ckpt_path), Path(scaler_path)
    scaler = read_sklearn_scaler(scaler_path, trust_pickle)
    raw = read_lightning_ckpt(ckpt_path, trust_pickle)
    state = raw.get("state_dict", raw)
    if not isinstance(state, Mapping):
        raise SeedImportError(f"{ckpt_path}: 'state_dict' is a {type(state).__name__}, not a dict")
    hparams_raw = raw.get("hyper_parameters") or {}
    hparams = dict(hparams_raw) if isinstance(hparams_raw, Mapping) else {}
    config, mapped, report = map_state_dict(state, hparams)
    report.ignored_entries.extend(sorted(k for k in raw if k not in {"state_dict"}))
    if not report.ok or (report.unmapped_source and not allow_unmapped):
        why = (
            "checkpoint tensors left over would be computation this network does not do"
            if report.ok
            else "the network would be incomplete"
        )
        raise SeedImportError(f"{ckpt_path}: import refused ({why}):\n{report.format()}")
    if scaler.n_features != config.n_features:
        raise SeedImportError(
            f"{scaler_path}: scaler has {scaler.n_features} features, the checkpoint's network "
            f"takes {config.n_features}"
        )
    running = running_spec()
    if spec_hash is None:
        if running is None:
            raise SeedImportError(
                "no feature calculator is importable to take the spec hash from; pass spec_hash"
            )
        spec_hash = running[0]
        report.notes.append(
            "the seed checkpoint records no feature spec; stamped with the running spec "
            f"{spec_hash}"
        )
    names: tuple[str, ...] = ()
    version = ""
    if running is not None and running[0] == spec_hash:
        version, names = running[1], running[2]
        if names and len(names) != config.n_features:
            raise SeedImportError(
                f"{ckpt_path}: network takes {config.n_features} features, the running spec "
                f"{spec_hash} has {len(names)}"
            )
    permute_classes(mapped, config, tuple(class_order))
    report.notes.append(f"seed class order {list(class_order)} → {list(CLASS_NAMES)}")
    report.notes.append(FORWARD_NOTE)
    model = IntradayClassifier(config)
    model.load_state_dict(mapped, strict=True)
    model.eval()
    epoch = raw.get("epoch")
    if provenance is None:
        provenance = unknown("seed import: the data the seed was trained on was not stated")
    if provenance.known and provenance.spec_hash is None:
        provenance = dataclasses.replace(provenance, spec_hash=spec_hash)
    bundle = ModelBundle(
        model=model,
        scaler=scaler,
        spec_hash=spec_hash,
        feature_names=names,
        spec_version=version,
        label_config=None,
        cross_sessions=True,
        metrics={"seed_epoch": epoch} if isinstance(epoch, int) else {},
        code_version=code_version(),
        source={
            "kind": "seed-import",
            "ckpt": ckpt_path.name,
            "scaler": scaler_path.name,
            "unmapped": [n for n, _ in report.unmapped_source],
        },
        provenance=provenance,
    )
    return bundle, report


def import_seed_to_file(
    ckpt_path: str | Path,
    scaler_path: str | Path,
    out_path: str | Path,
    trust_pickle: bool = False,
    spec_hash: str | None = None,
    allow_unmapped: bool = False,
    class_order: tuple[str, ...] = CLASS_NAMES,
    provenance: Provenance | None = None,
) -> tuple[str, ImportReport]:
    bundle, report = import_seed(
        ckpt_path, scaler_path, trust_pickle, spec_hash, allow_unmapped, class_order, provenance
    )
    return save_bundle(bundle, out_path), report
