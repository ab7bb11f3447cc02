"""A study's numbers as a reviewer checks them: each cell's 95% confidence interval, and the
declared contrasts between cells, with their intervals, p values and a Holm adjustment.

Computed with scipy.stats (t intervals, Welch's and the paired t-test); Holm's step-down by
hand (a few lines). A contrast is seed-paired when both cells ran the same seeds, so that each
seed's two runs saw the same data order and the same initial weights' random stream: the
paired test then removes the seed's own luck from the comparison; otherwise Welch's.
"""

import math
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95


def interval(values: list[float]) -> tuple[float, float]:
    """The t-based 95% confidence interval of the mean (nan, nan for n < 2)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sem = sum(values) / n, stats.sem(values)
    if sem == 0:
        return mean, mean
    return tuple(float(v) for v in stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem))


@dataclass
class Contrast:
    """B minus A on one metric: the difference of means, its 95% CI and p, by `test`."""

    a: str
    b: str
    metric: str
    n_a: int
    n_b: int
    difference: float
    low: float
    high: float
    p: float
    test: str  # "paired" (same seeds) or "welch"
    welch_p: float
    holm_p: float = math.nan
    name: str = ""  # the declared contrast's name, if it has one (claims refer to it)
    family: str = ""  # the Holm family within its metric ("" = the file's unnamed family)
    family_size: int = 0

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def contrast(a: dict[int, float], b: dict[int, float], names: tuple[str, str], metric: str):
    """B − A for per-seed values `a`, `b` (seed -> value): seed-paired when the seeds match."""
    xs, ys = list(a.values()), list(b.values())
    difference = sum(ys) / len(ys) - sum(xs) / len(xs)
    welch = stats.ttest_ind(ys, xs, equal_var=False)
    if sorted(a) == sorted(b) and len(a) >= 2:
        seeds = sorted(a)
        paired = stats.ttest_rel([b[s] for s in seeds], [a[s] for s in seeds])
        result, test = paired, "paired"
    else:
        result, test = welch, "welch"
    low, high = result.confidence_interval(CONFIDENCE)
    return Contrast(names[0], names[1], metric, len(xs), len(ys), difference, float(low),
                    float(high), float(result.pvalue), test, float(welch.pvalue))  # fmt: skip


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest p times (m − i), made monotone, at most
    1; nan stays nan (and does not count)."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m, adjusted, running = len(ranked), [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
