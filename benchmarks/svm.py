"""SVM benchmark: mlhw's soft-SVM solver vs liblinear at equal final objective, and Q1 on digits.

One process. For each problem the exact optimum P* is computed first (mlhw's Newton method to machine
precision). Each contender is then run at the loosest tolerance whose objective is within 1e-6 of P*
(relative), and that run is timed (best of --repeats). Problems: digits 3 vs 8 (C = 1) and a
50,000 x 784 synthetic binary problem shaped like MNIST. liblinear solves the same objective: the
bias folded into the features, C' = C / 2 (see mlhw.svm.liblinear_theta).

    uv run python benchmarks/svm.py [--samples 50000] [--repeats 2] [--blas]

--blas instead times the solvers' BLAS threads (mlhw.svm.SMALL_PROBLEM): each solver on its problem with one
BLAS thread against the machine's default, on an idle machine and with one spinning process per core beside it
(as on a busy CI runner or beside another --jobs worker).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np

from mlhw import svm
from mlhw.data import load_digits_data
from mlhw.svm import binary_task

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


def _spin():
    while True:
        pass


def blas_threads(samples, repeats):
    """Each solver with the machine's default BLAS threads and with one, idle and busy; the undecorated solver
    (`__wrapped__`), so that the limit is the one set here."""
    from threadpoolctl import threadpool_info, threadpool_limits

    digits = load_digits_data()
    X = digits.train.x.reshape(len(digits.train), -1).astype(np.float64)
    Xb = svm.add_bias_feature(X)
    pair = svm.SoftSVMProblem(*binary_task(X, digits.train.y, (3, 8)), 1.0, "free")
    small_qp = svm.SoftSVMProblem(pair.X[: svm.QP_DUAL_SAMPLES], pair.y[: svm.QP_DUAL_SAMPLES], 1.0, "free")
    big = svm.SoftSVMProblem(*synthetic(samples), 1.0, "regularized")
    cases = [
        (
            f"Q1 exact, digits {Xb.shape[0]} x {Xb.shape[1]}",
            Xb.size,
            lambda: svm.solve_multiclass.__wrapped__(Xb, digits.train.y),
        ),
        (f"Q3 dual active set, digits 3v8 ({len(pair.y)})", pair.X.size, lambda: svm.solve_dual.__wrapped__(pair)),
        (
            f"Q3(d) dual QP, SLSQP, n = {len(small_qp.y)}",
            small_qp.X.size,
            lambda: svm.solve_dual_qp.__wrapped__(small_qp),
        ),
        (f"Q3 Newton, synthetic {samples} x 784", big.X.size, lambda: svm.solve_primal.__wrapped__(big)),
    ]
    default = max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)
    print(
        f"BLAS threads: default {default}, {os.cpu_count()} CPUs; one thread below {svm.SMALL_PROBLEM:,} entries of X"
    )
    print(f"{'solver':<44}{'size':>11}{'load':>6}{'default':>10}{'1 thread':>10}{'default/1':>11}")
    for load in ("idle", "busy"):
        spinners = []
        if load == "busy":
            spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
            for sp in spinners:
                sp.start()
        try:
            for label, size, run in cases:
                with threadpool_limits(limits=default, user_api="blas"):
                    t_default, _ = timed(run, repeats)
                with threadpool_limits(limits=1, user_api="blas"):
                    t_one, _ = timed(run, repeats)
                mlhw = "1" if size < svm.SMALL_PROBLEM else "default"
                print(
                    f"{label:<44}{size:>11,}{load:>6}{t_default:>9.3f}s{t_one:>9.3f}s{t_default / t_one:>10.2f}x"
                    f"  (mlhw: {mlhw})"
                )
        finally:
            for sp in spinners:
                sp.terminate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--blas", action="store_true", help="time BLAS threads (one vs default), idle and busy")
    args = ap.parse_args()
    if args.blas:
        blas_threads(args.samples, args.repeats)
        return

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
    t_lp, (_, f_lp) = timed(lambda: svm.multiclass_lp(Xb, digits.train.y, 10), 1)
    print(f"\nQ1 multiclass hinge on digits ({len(X)} x {Xb.shape[1]}, 10 classes):")
    print(f"  mlhw exact ({sol.method}): {t_exact:.3f} s, f* = {sol.objective}")
    print(f"  HiGHS on the straightforward LP: {t_lp:.3f} s, f* = {f_lp:.3g}  ({t_lp / t_exact:.1f}x slower)")


if __name__ == "__main__":
    main()
