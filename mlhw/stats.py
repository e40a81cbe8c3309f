"""Statistics over seeds: a metric's mean and sample std, and the difference of two groups of runs.

`welch_difference(first, second)` gives mean(second) - mean(first) with Welch's interval (unequal variances,
Welch-Satterthwaite degrees of freedom: scipy's `ttest_ind(second, first, equal_var=False)`), and says when every
run of one group lies above every run of the other, with the exact two-sided rank test's probability of so clean a
split (`split_probability`: 2 / C(n1 + n2, n1) without ties, 0.10 at 3 vs 3): Welch's t with 3 runs a side rarely
excludes 0, and a reader should see the split it cannot confirm. Where neither group varies (t undefined), that
probability alone decides, as the exact rank test (`rank_test`) decides Part 2 (c)'s epoch counts. Plain numbers
in and out: no MLflow, no Typer.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass
class Difference:
    """mean(second) - mean(first) of one metric, with Welch's interval where it exists."""

    metric: str
    first: str
    second: str
    n_first: int
    n_second: int
    mean_first: float
    mean_second: float
    std_first: float
    std_second: float
    diff: float
    low: float | None  # None: no interval (n < 2 or non-finite values)
    high: float | None
    df: float | None
    confidence: float
    # "second higher" | "first higher" | "not distinguishable" | "no interval" | "identical"
    verdict: str
    note: str = ""
    clipped: bool = False  # the interval of a difference of accuracies, cut to [-1, 1] (t's can pass beyond)
    # "second" | "first": every run of that side above every run of the other; None: the runs interleave
    above: str | None = None
    split_p: float | None = None  # the chance of so clean a split if the sides did not differ (split_probability)


def split_probability(first: list[float], second: list[float]) -> float:
    """The exact two-sided permutation probability of a split as clean as one group wholly below the other: the
    share of the C(n1 + n2, n1) ways to deal the pooled values into groups of these sizes in which one group lies
    wholly below the other. Such a deal gives one group the n smallest values, which it can only when they lie
    strictly below the rest, so it is 2 / C(n1 + n2, n1) (Mann-Whitney's exact p at U = 0) without ties at the
    boundary; a tie there makes that extreme impossible (epochs 3, 3 against three runs that never reached a level,
    inf, inf, inf: only the first group can lie below, 1 / C(5, 2) = 0.1, not 0.2)."""
    n1, n2 = len(first), len(second)
    pooled = sorted(list(first) + list(second))
    ways = sum(0 < n < len(pooled) and pooled[n - 1] < pooled[n] for n in (n1, n2))  # first below; second below
    return ways / math.comb(n1 + n2, n1)


def rank_test(first: list[float], second: list[float]) -> tuple[float, float]:
    """(p, u): the exact two-sided permutation test of Mann-Whitney's U. u = U / (n1 n2), the share of pairs in which
    a value of `first` is above one of `second` (ties count a half); p, the share of the C(n1 + n2, n1) ways to deal
    the pooled values into groups of these sizes whose u lies as far from 1/2 as this one. Values may be inf (an
    epoch count of a run that never reached a level: later than any). A clean split gives split_probability.
    U is the first group's sum of mid-ranks less n1 (n1 + 1) / 2, so the deals are counted by that sum (doubled, an
    integer) in one pass over the values: polynomial in the runs, not one deal at a time (C(30, 15) = 155 million)."""
    pooled = sorted(float(v) for v in list(first) + list(second))
    n1, n = len(first), len(first) + len(second)
    n2 = n - n1
    if n1 == 0 or n2 == 0:
        return 1.0, 0.5
    twice_rank: dict[float, int] = {}  # a value's mid-rank, doubled: ranks i + 1 .. j of its ties, (i + 1 + j)
    i = 0
    while i < n:
        j = i
        while j < n and pooled[j] == pooled[i]:
            j += 1
        twice_rank[pooled[i]] = i + 1 + j
        i = j
    # ways[k][s]: the number of k-value groups whose doubled rank sum is s
    ways: list[dict[int, int]] = [{} for _ in range(n1 + 1)]
    ways[0][0] = 1
    for v in pooled:
        r = twice_rank[v]
        for k in range(min(n1, n) - 1, -1, -1):
            for total, count in ways[k].items():
                ways[k + 1][total + r] = ways[k + 1].get(total + r, 0) + count
    observed = sum(twice_rank[float(v)] for v in first)
    center = n1 * (n + 1)  # the doubled rank sum's mean
    far = abs(observed - center)
    p = sum(c for total, c in ways[n1].items() if abs(total - center) >= far) / math.comb(n, n1)
    u = (observed / 2 - n1 * (n1 + 1) / 2) / (n1 * n2)
    return min(1.0, p), u


def p_text(p: float) -> str:
    """A probability as reports print it: 0.10, 0.03, 0.008."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 and np.all(np.isfinite(x)) else float("nan")


def welch_difference(
    first, second, metric: str = "", names: tuple[str, str] = ("first", "second"), confidence: float = CONFIDENCE
) -> Difference:
    """Welch's interval for mean(second) - mean(first) (scipy's ttest_ind, equal_var=False)."""
    from scipy import stats

    a = np.asarray([float(v) for v in first], dtype=float)
    b = np.asarray([float(v) for v in second], dtype=float)
    ma = float(np.mean(a)) if len(a) else float("nan")
    mb = float(np.mean(b)) if len(b) else float("nan")
    with np.errstate(invalid="ignore"):
        d = mb - ma
    out = Difference(metric, *names, len(a), len(b), ma, mb, _std(a), _std(b), d, None, None, None, confidence, "")
    finite = len(a) > 1 and len(b) > 1 and np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    if finite and (b.min() > a.max() or a.min() > b.max()):  # a rank test's evidence, where t with 3 runs has little
        out.above = "second" if b.min() > a.max() else "first"
        out.split_p = split_probability(a.tolist(), b.tolist())
    if len(a) == 0 or len(b) == 0:
        out.verdict, out.note = "no interval", "no runs on one side"
    elif not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        out.verdict, out.note = "no interval", "non-finite values (diverged runs)"
    elif len(a) < 2 or len(b) < 2:
        out.verdict, out.note = "no interval", f"n={min(len(a), len(b))}: no interval"
    elif np.ptp(a) == 0 and np.ptp(b) == 0:
        # no spread on either side: Welch's df is 0/0 and its interval degenerates to the point d, which proves
        # nothing about few runs (2 vs 2 collapsed runs, each predicting one class, read as "better"). The evidence
        # left is the rank test's, as in Part 2 (c): the split is as clean as can be, and its probability decides.
        out.low = out.high = d
        spread = f"no spread in any of the {len(a)} + {len(b)} runs"
        if d == 0:
            out.verdict, out.note = "identical", f"{spread}: the interval is the point difference"
        elif out.split_p is not None and out.split_p <= 1 - confidence:
            out.verdict = "second higher" if d > 0 else "first higher"
            out.note = f"{spread}: the interval is the point difference (rank test p = {p_text(out.split_p)})"
        else:
            out.verdict = "not distinguishable"
            p = "-" if out.split_p is None else p_text(out.split_p)
            out.note = f"{spread}, but so clean a split comes by chance with probability {p} at {len(b)} vs {len(a)}"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(b, a, equal_var=False)
            ci = res.confidence_interval(confidence_level=confidence)
        out.low, out.high, out.df = float(ci.low), float(ci.high), float(res.df)
        if metric.endswith("acc"):  # a difference of accuracies lies in [-1, 1]: t's interval can pass beyond
            out.clipped = out.low < -1.0 or out.high > 1.0
            out.low, out.high = max(out.low, -1.0), min(out.high, 1.0)
        if out.low > 0:
            out.verdict = "second higher"
        elif out.high < 0:
            out.verdict = "first higher"
        else:
            out.verdict = "not distinguishable"
    return out


def mean_std(xs: list[float]) -> dict:
    """{'mean', 'std', 'n'} of the values (std None for n < 2; non-finite values kept: the mean is then inf/nan)."""
    a = np.asarray(xs, dtype=float)
    with np.errstate(invalid="ignore"):
        m = float(np.mean(a)) if len(a) else float("nan")
    s = _std(a)
    return {"mean": m, "std": None if math.isnan(s) else s, "n": len(a)}
