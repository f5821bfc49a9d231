"""Prometheus text exposition (format 0.0.4), written by hand: the daemon exposes a few dozen
samples, which does not justify a dependency.

Every sample carries the run's ``mode`` label, so a paper and a live daemon scraped by the same
Prometheus can never be summed into one number.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping

#: decision latency buckets (seconds); 0.15 is the budget for bar close → order submitted
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Exposition:
    """Collects metric families and renders them; ``common`` labels go on every sample."""

    def __init__(self, common: Mapping[str, str]) -> None:
        self._common = dict(common)
        self._lines: list[str] = []
        self._names: set[str] = set()

    def _labels(self, extra: Mapping[str, str]) -> str:
        labels = {**self._common, **extra}
        if not labels:
            return ""
        body = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
        return "{" + body + "}"

    def _family(self, name: str, kind: str, help_text: str) -> None:
        if name in self._names:
            raise ValueError(f"metric {name} declared twice")
        self._names.add(name)
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def _sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._lines.append(f"{name}{self._labels(labels)} {format_value(value)}")

    def gauge(self, name: str, help_text: str, value: float) -> None:
        self._family(name, "gauge", help_text)
        self._sample(name, {}, value)

    def counter(self, name: str, help_text: str, value: float) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        self._family(name, "counter", help_text)
        self._sample(name, {}, value)

    def labelled(
        self, name: str, kind: str, help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:  # fmt: skip
        self._family(name, kind, help_text)
        for labels, value in samples:
            self._sample(name, labels, value)

    def histogram(self, name: str, help_text: str, hist: Histogram) -> None:
        self._family(name, "histogram", help_text)
        running = 0
        for bound, count in zip(hist.bounds, hist.counts, strict=True):
            running += count
            self._sample(f"{name}_bucket", {"le": format_value(bound)}, running)
        self._sample(f"{name}_bucket", {"le": "+Inf"}, hist.count)
        self._sample(f"{name}_sum", {}, hist.total)
        self._sample(f"{name}_count", {}, hist.count)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


class Histogram:
    """Cumulative histogram of observations (non-cumulative counts per bucket kept here;
    rendering accumulates them)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.count = 0
        self.total = 0.0

    def copy(self) -> Histogram:
        """A snapshot that later observations do not change (rendered in another thread)."""
        twin = Histogram(self.bounds)
        twin.counts, twin.count, twin.total = list(self.counts), self.count, self.total
        return twin

    def observe(self, value: float) -> None:
        i = bisect_left(self.bounds, value)  # bucket "le": value ≤ bound
        if i < len(self.bounds):
            self.counts[i] += 1
        self.count += 1
        self.total += value


class ObservedWindow(list[float]):
    """Stands in for ``SessionStatus.decision_latency_s``: the session appends each bar's latency
    and trims the list to a window; this list also hands every append to an observer, so the
    histogram counts every bar, not just those still in the window when Prometheus scrapes."""

    def __init__(self, initial: Iterable[float], observe: Callable[[float], None]) -> None:
        super().__init__(initial)
        self._observe = observe

    def append(self, value: float) -> None:
        super().append(value)
        self._observe(value)
