"""Bootstrap confidence intervals: percentile intervals over questions resampled with replacement.

A mean over a few hundred questions moves by several points between samples, so every figure in a
report carries its interval, and two configs are compared on the same questions by a paired bootstrap
of their per-question differences (tighter than two separate intervals, and the honest test)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> Estimate:
    """Mean of `values` with its percentile bootstrap interval (None values are left out)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // x.size)  # bounded memory for large sets
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        means[start:start + rows] = x[rng.integers(0, x.size, size=(rows, x.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size))


def paired_difference(a: dict[str, float | None], b: dict[str, float | None], resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> Estimate:
    """b − a over the questions both scored, with a bootstrap interval of the mean difference."""
    shared = sorted(q for q in a.keys() & b.keys() if a[q] is not None and b[q] is not None)
    return bootstrap_ci([b[q] - a[q] for q in shared], resamples, confidence, seed)
