"""What a study is asked to do, as one JSON-able value: stored with the study, compared on a
resume (a resume with other parameters is refused, naming the first that differs), and handed
to every task (Ray workers rebuild everything they need from it)."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

STORE_FILE = "study.json"
FLAGS = {"params": "--param"}  # spec fields whose flag is not --<field>


@dataclass(frozen=True)
class StudySpec:
    data: list[str]
    interval: str
    start_date: str | None
    end_date: str | None
    strategy: str
    params: dict[str, str]  # --param: the same at every grid point
    grid: dict[str, list[str]]  # --grid k=v1,v2: one point per combination
    train: str
    test: str
    step: str | None
    expanding: bool
    seeds: int  # models per fold, seeds seed, seed+1, …; their ensemble trades
    training: dict[str, Any]  # trader train's options (epochs, window, horizon, …, seed)
    settings: dict[str, Any] = field(default_factory=dict)  # the resolved engine settings

    @property
    def trains_models(self) -> bool:
        return self.strategy == "model"

    @property
    def threads(self) -> int:
        """torch threads of every training and prediction: fixed, so a fold computes the same
        numbers in this process and in a Ray worker (whose default differs)."""
        return int(self.training.get("threads") or 1)

    @property
    def horizon(self) -> int:
        """The label horizon the folds are purged by (0: a strategy trained on no labels)."""
        return int(self.training["horizon"]) if self.trains_models else 0

    def seed_list(self) -> list[int]:
        first = int(self.training.get("seed", 0))
        return [first + k for k in range(self.seeds)]

    def points(self) -> list[dict[str, str]]:
        """Strategy parameters per grid point (grid names in sorted order, values as given)."""
        names = sorted(self.grid)
        combos = itertools.product(*(self.grid[n] for n in names)) if names else [()]
        return [{**self.params, **dict(zip(names, combo, strict=True))} for combo in combos]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), sort_keys=True, default=str))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StudySpec:
        return cls(**raw)

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """Human-readable ``name: stored → asked`` for every parameter that differs."""
        mine = self.to_dict()
        out = []
        for key in sorted(set(mine) | set(stored)):
            if key == "settings":
                for sub in sorted(set(mine[key]) | set(stored.get(key, {}))):
                    a, b = stored.get(key, {}).get(sub), mine[key].get(sub)
                    if a != b:
                        out.append(f"settings.{sub}: {_short(a)} → {_short(b)}")
                continue
            if key == "training":
                for sub in sorted(set(mine[key]) | set(stored.get(key, {}))):
                    a, b = stored.get(key, {}).get(sub), mine[key].get(sub)
                    if a != b:
                        out.append(f"--{sub.replace('_', '-')}: {a} → {b}")
                continue
            if mine.get(key) != stored.get(key):
                flag = FLAGS.get(key, "--" + key.replace("_", "-"))
                out.append(f"{flag}: {stored.get(key)} → {mine.get(key)}")
        return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "…"
