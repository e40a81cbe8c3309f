"""SVM benchmark: mlhw's soft-SVM solver vs liblinear at equal final objective, and Q1 on digits.

One process. For each problem the exact optimum P* is computed first (mlhw's Newton method to machine
precision). Each contender is then run at the loosest tolerance whose objective is within 1e-6 of P*
(relative), and that run is timed (best of --repeats). Problems: digits 3 vs 8 (C = 1) and a
50,000 x 784 synthetic binary problem shaped like MNIST. liblinear solves the same objective: the
bias folded into the features, C' = C / 2 (see mlhw.svm.liblinear_theta).

    uv run python benchmarks/svm.py [--samples 50000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mlhw import svm
from mlhw.data import load_digits_data
from mlhw.theory import binary_task

TARGET = 1e-6
TOLS = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10]


def timed(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def at_target(prob, p_star, solve, repeats):
    """Loosest tolerance reaching P* within TARGET; returns (seconds, tol, relative gap)."""
    for tol in TOLS:
        theta = solve(tol)
        gap = (prob.primal(theta) - p_star) / abs(p_star)
        if gap <= TARGET:
            seconds, _ = timed(lambda tol=tol: solve(tol), repeats)
            return seconds, tol, gap
    return float("nan"), None, gap


def compare(name, prob, repeats):
    p_star = svm.solve_primal(prob, tol=1e-14).objective
    contenders = {
        "mlhw Newton": lambda tol: svm.solve_primal(prob, tol=tol).theta,
        "liblinear dual CD (LinearSVC dual=True)": lambda tol: svm.liblinear_theta(prob, tol=tol, dual=True),
        "liblinear TRON (LinearSVC dual=False)": lambda tol: svm.liblinear_theta(prob, tol=tol, dual=False),
    }
    print(f"\n{name}: n = {len(prob.y)}, features = {prob.A.shape[1]}, C = {prob.C}, P* = {p_star:.10g}")
    times = {}
    for label, solve in contenders.items():
        seconds, tol, gap = at_target(prob, p_star, solve, repeats)
        times[label] = seconds
        print(f"  {label:<42}{seconds:>8.3f} s  (tol {tol}, gap {gap:.1e})")
    ours = times["mlhw Newton"]
    for label, t in times.items():
        if label != "mlhw Newton":
            print(f"  {label} / mlhw = {t / ours:.2f}x")
    return times


def synthetic(n, d=784, seed=0):
    rng = np.random.RandomState(seed)
    X = (rng.rand(n, d) < 0.2) * rng.rand(n, d)  # MNIST-like: mostly zeros, values in [0, 1]
    s = X @ rng.randn(d)
    y = np.where(s + rng.randn(n) * s.std() * 0.3 > np.median(s), 1.0, -1.0)
    return X.astype(np.float64), y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    digits = load_digits_data()
    X = digits.train.x.reshape(len(digits.train), -1).astype(np.float64)
    compare(
        "digits 3 vs 8", svm.SoftSVMProblem(*binary_task(X, digits.train.y, (3, 8)), 1.0, "regularized"), args.repeats
    )
    compare(
        f"synthetic {args.samples} x 784",
        svm.SoftSVMProblem(*synthetic(args.samples), 1.0, "regularized"),
        args.repeats,
    )

    Xb = svm.add_bias_feature(X)
    t_exact, sol = timed(lambda: svm.solve_multiclass(Xb, digits.train.y), args.repeats)
    t_lp, (_, f_lp) = timed(lambda: svm._multiclass_lp(Xb, digits.train.y, 10), 1)
    print(f"\nQ1 multiclass hinge on digits ({len(X)} x {Xb.shape[1]}, 10 classes):")
    print(f"  mlhw exact ({sol.method}): {t_exact:.3f} s, f* = {sol.objective}")
    print(f"  HiGHS on the straightforward LP: {t_lp:.3f} s, f* = {f_lp:.3g}  ({t_lp / t_exact:.1f}x slower)")


if __name__ == "__main__":
    main()
