"""How much of a run's period its model was trained or validated on.

A backtest on bars the model was fitted to, or chose its checkpoint on, shows how well it
remembers them — not how it trades. So every backtest or paper replay with a model measures,
per symbol, how many of its bars fall in the model's training or validation periods (the
model file's provenance, ``models.provenance``), and the run carries the answer: printed with
a WARNING when there is any overlap or the provenance is unknown, stored on the run
(``runs.in_sample_fraction``, ``runs.model_data_json``), shown by ``trader runs show`` and the
report, and in the JSON result. ``risk.promotion`` judges the stored numbers.

The rule, per symbol of the run:

- a bar is *in-sample* when its start time lies inside a period the model's provenance says
  it saw for that symbol: training or validation (the test period does not count — it played
  no part in fitting or choosing the model);
- a symbol the provenance does not list is out-of-sample only when the provenance lists its
  symbols (measured always does; a stated one only with ``--symbols``); otherwise every
  symbol counts as seen over the stated period;
- an ensemble's seen periods are the union of its members'; one member of unknown provenance
  makes the whole run's provenance unknown, and then no fraction is given (``None``);
- ``in_sample_fraction`` = in-sample symbol-bars / all symbol-bars of the run.

A live feed (Kite) has no stored period: its bars arrive after the session starts, so the
fraction is 0 when every seen period ends before that instant, and not measurable otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import structlog

from config.sessions import IST, epoch_ns
from engine.data.loader import LoadedBars
from engine.ports import Strategy
from engine.session import SessionResult
from models.inference import OnlinePredictor
from models.predictions import PrecomputedPredictor
from models.provenance import MEASURED, STATED, UNKNOWN, Provenance, Span
from strategies.model_strategy import ModelStrategy

log = structlog.get_logger()

Member = tuple[str, Provenance]  # (model hash, provenance) of one ensemble member


def model_members(strategy: Strategy) -> list[Member] | None:
    """The (model hash, provenance) of each model behind a model strategy's predictor; None for
    a strategy that trades no model (or has no predictor yet)."""
    if not isinstance(strategy, ModelStrategy):
        return None
    predictor = strategy.predictor
    if not isinstance(predictor, PrecomputedPredictor | OnlinePredictor):
        return None
    return [(b.model_hash, b.provenance) for b in predictor.predictor.bundles]


def _basis(members: Sequence[Member]) -> str:
    """The weakest basis among the members: unknown, else stated, else measured."""
    bases = {p.basis for _, p in members}
    return next(b for b in (UNKNOWN, STATED, MEASURED) if b in bases)


def _models(members: Sequence[Member]) -> list[dict[str, str]]:
    return [
        {"model_hash": digest[:16], "basis": prov.basis, "data_seen": prov.summary()}
        for digest, prov in members
    ]


def _minute(ts_ns: int) -> str:
    return pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(IST).strftime("%Y-%m-%d %H:%M")


def _seen(members: Sequence[Member], symbol: str) -> list[Span] | None:
    spans: list[Span] = []
    for _, prov in members:
        mine = prov.seen_spans(symbol)
        if mine is None:
            return None
        spans.extend(mine)
    return spans


def measure_replay(members: Sequence[Member], bars: LoadedBars) -> dict[str, Any]:
    """The overlap of a replay's bars with the members' training and validation periods."""
    frame = bars.frame
    codes, names = pd.factorize(frame["symbol"], sort=True)
    order = np.argsort(codes, kind="stable")  # one pass per symbol over its own rows
    ts = epoch_ns(frame["ts"])[order]
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    basis = _basis(members)
    symbols: dict[str, dict[str, Any]] = {}
    total = inside_total = 0
    for code, name in enumerate(names):
        mine = ts[bounds[code] : bounds[code + 1]]
        spans = _seen(members, str(name))
        entry: dict[str, Any] = {"bars": len(mine)}
        total += len(mine)
        if spans is None:
            entry.update(in_sample_bars=None, in_sample_fraction=None)
        else:
            inside = np.zeros(len(mine), dtype=bool)
            for span in spans:
                inside |= span.covers(mine)
            hits = mine[inside]
            inside_total += len(hits)
            entry.update(
                in_sample_bars=len(hits),
                in_sample_fraction=len(hits) / len(mine) if len(mine) else 0.0,
                first_in_sample=_minute(hits.min()) if len(hits) else None,
                last_in_sample=_minute(hits.max()) if len(hits) else None,
            )
        symbols[str(name)] = entry
    known = basis != UNKNOWN
    return {
        "provenance": basis,
        "models": _models(members),
        "period": {
            "kind": "replay",
            "first": _minute(ts.min()) if len(ts) else None,
            "last": _minute(ts.max()) if len(ts) else None,
            "symbol_bars": total,
        },
        "in_sample_bars": inside_total if known else None,
        "in_sample_fraction": (inside_total / total if total else 0.0) if known else None,
        "symbols": symbols,
    }


def measure_live(members: Sequence[Member], start_ns: int) -> dict[str, Any]:
    """A live feed's bars all come after ``start_ns``: out-of-sample when every period the
    members saw ends before it; not measurable when one reaches past it."""
    basis = _basis(members)
    out: dict[str, Any] = {
        "provenance": basis,
        "models": _models(members),
        "period": {"kind": "live", "first": _minute(start_ns), "last": None},
        "in_sample_bars": None,
        "in_sample_fraction": None,
        "symbols": {},
    }
    if basis == UNKNOWN:
        return out
    ends = [span.last_ns for _, prov in members for span in prov.seen_periods()]
    if ends and max(ends) >= start_ns:
        out["note"] = (
            f"the model's training or validation data reaches {_minute(max(ends))}, past this "
            "live session's start"
        )
        return out
    out["in_sample_bars"], out["in_sample_fraction"] = 0, 0.0
    return out


def measure_run(
    strategy: Strategy, replay: LoadedBars | None, start_ns: int | None = None
) -> dict[str, Any] | None:
    """What a run with ``strategy`` records about its model's data: measured on ``replay``'s
    bars, or for a live feed starting at ``start_ns``; None when no model trades. A run that is
    not out-of-sample is logged as a warning when it starts."""
    members = model_members(strategy)
    if members is None:
        return None
    if replay is not None:
        data = measure_replay(members, replay)
    elif start_ns is not None:
        data = measure_live(members, start_ns)
    else:
        raise ValueError("measure_run needs the replay's bars or the live session's start")
    if not is_out_of_sample(data):
        log.warning(
            "model.not_out_of_sample",
            provenance=data["provenance"],
            in_sample_fraction=data["in_sample_fraction"],
        )
    return data


def is_out_of_sample(data: dict[str, Any]) -> bool:
    """Known provenance and no bar in the model's training or validation periods."""
    return data["provenance"] != UNKNOWN and data["in_sample_fraction"] == 0.0


def add_to_result(result: SessionResult, data: dict[str, Any] | None) -> None:
    """The JSON result carries the measure too (``in_sample_fraction`` at the top level)."""
    if data is not None:
        result.extra["in_sample_fraction"] = data["in_sample_fraction"]
        result.extra["model_data"] = data


RULE = "!" * 78
SHOWN_SYMBOLS = 10  # overlapping symbols listed by name; the JSON has every one


def describe(data: dict[str, Any]) -> list[str]:
    """Lines for people (the run's output, ``trader runs show``, the report): a WARNING block
    unless the run is out-of-sample evidence for a model of known provenance."""
    models = [f"  model {m['model_hash']}: {m['data_seen']}" for m in data.get("models", [])]
    period = data.get("period", {})
    if data["provenance"] == UNKNOWN:
        return [
            RULE,
            "WARNING: the data this model was trained on is UNKNOWN (no provenance), so nothing "
            "shows this run is out-of-sample.",
            *models,
            "  Its results say nothing about how the model trades on data it never saw, and "
            "`trader promote` refuses it as evidence. Record the training period with "
            "`trader model import … --trained-from … --trained-to …`, or train with "
            "`trader train`.",
            RULE,
        ]
    fraction = data["in_sample_fraction"]
    if fraction is None:
        return [
            RULE,
            "WARNING: how much of this run the model was trained or validated on could not be "
            f"measured: {data.get('note', '')}",
            *models,
            "  `trader promote` refuses it as evidence.",
            RULE,
        ]
    if fraction > 0:
        overlaps = [
            f"  {symbol}: {entry['in_sample_fraction']:.1%} of its {entry['bars']:,} bars "
            f"in-sample ({entry['first_in_sample']} → {entry['last_in_sample']} IST)"
            for symbol, entry in data["symbols"].items()
            if entry.get("in_sample_bars")
        ]
        if len(overlaps) > SHOWN_SYMBOLS:
            more = len(overlaps) - SHOWN_SYMBOLS
            overlaps = [*overlaps[:SHOWN_SYMBOLS], f"  … and {more} more symbols (--json: all)"]
        return [
            RULE,
            f"WARNING: IN-SAMPLE — {fraction:.1%} of this run's symbol-bars "
            f"({data['in_sample_bars']:,} of {period.get('symbol_bars', 0):,}) lie in data the "
            "model was trained or validated on:",
            *overlaps,
            *models,
            "  These results show how well the model fits data it has already seen, not how it "
            "would trade; `trader promote` refuses this run as evidence.",
            RULE,
        ]
    bars = period.get("symbol_bars")
    what = f"none of this run's {bars:,} symbol-bars" if bars is not None else "no bar"
    return [
        f"model data: out-of-sample — {what} lie in the model's training or validation periods",
        *models,
    ]
