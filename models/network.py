"""The classifier: bidirectional LSTM → multi-head attention pooling → MLP → SELL/HOLD/BUY.

Shape at the defaults (the seed's): 89 features × 60 bars in, an LSTM of width 256 (two
bidirectional layers of 128 units per direction, concatenated), 4-head attention over the LSTM
outputs, 3 classes out, 1,409,027 parameters.

Why "width 256" is the concatenated width: with 256 units *per direction* the two LSTM layers
alone hold 2.29M parameters, far above the seed's ~1.4M, so the seed's "hidden 256" can only
have been the output width. The remaining budget is spent so the total lands at ~1.4M:

- attention: the LSTM output at the last bar (the bar the decision is about) is the query over
  all 60 outputs (keys and values), then residual + LayerNorm. Only one query per window keeps
  the attention at half the cost of full self-attention, which matters for the 50 ms
  97-window CPU budget; the attention layer's parameters are the same either way (263,168);
- pooling: [attention output, mean over time, max over time of the LSTM outputs] → 768;
- head: 768 → 512 → 256 → 3 with GELU (or ReLU) and dropout (525,827 parameters).

Class order is fixed and part of the checkpoint contract: SELL=0, HOLD=1, BUY=2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from engine.ports import BUY, CLASS_NAMES, HOLD, SELL  # the checkpoint's class order

__all__ = ["BUY", "CLASS_NAMES", "HOLD", "SELL", "IntradayClassifier", "ModelConfig"]
POOLINGS = ("attention", "last", "mean", "max")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the network; stored in checkpoints as a plain dict."""

    n_features: int = 89
    window: int = 60
    hidden_size: int = 256  # LSTM output width (both directions concatenated)
    num_layers: int = 2
    bidirectional: bool = True
    num_heads: int = 4
    dropout: float = 0.2
    attention_dropout: float = 0.1
    pooling: tuple[str, ...] = ("attention", "mean", "max")
    head_hidden: tuple[int, ...] = (512, 256)
    activation: str = "gelu"  # gelu | relu, between head layers
    num_classes: int = 3

    def __post_init__(self) -> None:
        self.validate()

    @property
    def units_per_direction(self) -> int:
        return self.hidden_size // 2 if self.bidirectional else self.hidden_size

    def validate(self) -> None:
        """Raise ValueError naming the field when the sizes cannot form a network."""
        for name in ("n_features", "window", "hidden_size", "num_layers", "num_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model config: {name} must be ≥ 1, got {getattr(self, name)}")
        if self.num_classes != len(CLASS_NAMES):
            raise ValueError(
                f"model config: num_classes must be {len(CLASS_NAMES)} (SELL, HOLD, BUY), "
                f"got {self.num_classes}"
            )
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError(
                f"model config: hidden_size {self.hidden_size} must be even when bidirectional"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model config: hidden_size {self.hidden_size} is not divisible by "
                f"num_heads {self.num_heads}"
            )
        for name in ("dropout", "attention_dropout"):
            value = float(getattr(self, name))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"model config: {name} must be in [0, 1), got {value}")
        unknown = [p for p in self.pooling if p not in POOLINGS]
        if unknown or len(set(self.pooling)) != len(self.pooling):
            raise ValueError(
                f"model config: pooling {list(self.pooling)} must be distinct names from "
                f"{list(POOLINGS)}"
            )
        if "attention" not in self.pooling:
            raise ValueError("model config: pooling must include 'attention'")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"model config: activation {self.activation!r} must be one of {list(ACTIVATIONS)}"
            )
        if any(int(h) < 1 for h in self.head_hidden):
            raise ValueError(f"model config: head_hidden sizes must be ≥ 1: {self.head_hidden}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pooling"] = list(self.pooling)
        out["head_hidden"] = list(self.head_hidden)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Build from a stored dict; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"model config: unknown keys {unknown}; known: {sorted(known)}")
        values = dict(raw)
        if "pooling" in values:
            values["pooling"] = tuple(str(p) for p in values["pooling"])
        if "head_hidden" in values:
            values["head_hidden"] = tuple(int(h) for h in values["head_hidden"])
        return cls(**values)


class IntradayClassifier(nn.Module):
    """Windows ``[batch, window, n_features]`` (scaled float32) → logits ``[batch, 3]``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig()
        cfg = self.config
        self.lstm = nn.LSTM(
            input_size=cfg.n_features,
            hidden_size=cfg.units_per_direction,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            bidirectional=cfg.bidirectional,
        )
        self.attention = nn.MultiheadAttention(
            cfg.hidden_size, cfg.num_heads, dropout=cfg.attention_dropout, batch_first=True
        )
        self.norm = nn.LayerNorm(cfg.hidden_size)
        layers: list[nn.Module] = []
        width = cfg.hidden_size * len(cfg.pooling)
        for size in cfg.head_hidden:
            layers += [
                nn.Linear(width, size),
                ACTIVATIONS[cfg.activation](),
                nn.Dropout(cfg.dropout),
            ]
            width = size
        layers.append(nn.Linear(width, cfg.num_classes))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.n_features:
            raise ValueError(
                f"expected windows [batch, time, {self.config.n_features}], got {tuple(x.shape)}"
            )
        seq, _ = self.lstm(x)
        last = seq[:, -1:, :]
        attended, _ = self.attention(last, seq, seq, need_weights=False)
        # Residual + LayerNorm in the dtype of the sequence (autocast may run the LSTM in bf16).
        pooled_attention = self.norm(last + attended.to(last.dtype)).squeeze(1)
        parts: list[torch.Tensor] = []
        for name in self.config.pooling:
            if name == "attention":
                parts.append(pooled_attention)
            elif name == "last":
                parts.append(seq[:, -1, :])
            elif name == "mean":
                parts.append(seq.mean(dim=1))
            else:
                parts.append(seq.amax(dim=1))
        dtype = parts[0].dtype
        return self.head(torch.cat([p.to(dtype) for p in parts], dim=1))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count (what the seed's "~1.4M" refers to)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
