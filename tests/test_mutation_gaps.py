"""Gaps found by mutation testing: each test here fails on a small plausible bug that every other test passed.

Each compares with an oracle that does not come from the code under test: numbers worked by hand, scikit-learn's
liblinear fitted here, Newton's method on the same problem, or a point whose feasibility is known by construction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from mlhw import check as gate
from mlhw import check_policy as P
from mlhw import svm

_MINIMIZE = scipy.optimize.minimize  # the real one, whatever a test has wrapped it in

# --- the reproduction gate: check.yaml's per-metric k -------------------------------------------------------------


def test_a_metric_entrys_k_replaces_the_policys_k():
    """check.yaml documents `mlp_lr_sweep.diverged: {absolute_floor: 0.34, k: 0}`: a metric's own k replaces the
    global one in k * se + floor. By hand, with std 0.05 on both sides and n = 3: se = sqrt(2 * 0.05^2 / 3) =
    0.0408; k = 0 gives the floor alone, 0.02, and a move of 0.03 drifts; the global k = 3 would allow
    3 * 0.0408 + 0.02 = 0.142 and pass it. (A gate that ignored the entry's k passed every other test.)"""
    row = {"dataset": "digits", "n": 3, "test_acc_mean": 0.90, "test_acc_std": 0.05}
    base = {"mlp_full": pd.DataFrame([row])}
    moved = {"mlp_full": pd.DataFrame([row | {"test_acc_mean": 0.93}])}
    se = math.sqrt(0.05**2 / 3 + 0.05**2 / 3)

    strict = P.policy_from_dict({"k": 3, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02, "k": 0}}})
    [r] = gate.compare(base, moved, strict).rows
    assert r.tolerance == pytest.approx(0.02, abs=1e-15) and r.status == "drift"

    loose = P.policy_from_dict({"k": 3, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02}}})
    [r] = gate.compare(base, moved, loose).rows
    assert r.tolerance == pytest.approx(3 * se + 0.02, rel=1e-12) and r.status == "ok"

    wider = P.policy_from_dict({"k": 0, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02, "k": 5}}})
    [r] = gate.compare(base, moved, wider).rows
    assert r.tolerance == pytest.approx(5 * se + 0.02, rel=1e-12) and r.status == "ok"


def test_key_values_written_as_text_compare_at_full_precision():
    """A grid column that `tables.summarise` adds to a key holds text ('0.1', '0.1000001': the config's repr), and a
    chaotic row's value in check.yaml may be quoted: text that is a number compares by value at full precision, as
    numbers do (test_check.test_close_key_values_stay_apart covers the numbers). At 6 digits the two rates below
    were one key: the table was skipped as having two rows with one key."""
    assert P.key_value("0.1") == P.key_value(0.1) == P.key_value("0.10") == P.key_value("1e-1")
    assert P.key_value("0.1000001") != P.key_value("0.1")
    assert P.key_value("1234567") != P.key_value("1234568")
    rows = [
        {"dataset": "digits", "lr": lr, "n": 1, "test_acc_mean": acc, "test_acc_std": float("nan")}
        for lr, acc in (("0.1", 0.9), ("0.1000001", 0.5))
    ]
    table = {"mlp_full": pd.DataFrame(rows)}
    res = gate.compare(table, table)
    assert not res.skipped_tables and res.passed
    assert {r.row for r in res.rows} == {"dataset=digits, lr=0.1", "dataset=digits, lr=0.1000001"}


# --- Q3: the liblinear comparison of a free-bias problem ------------------------------------------------------------


def _offset_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping classes whose boundary is far from the origin: the bias is large, so the free-bias optimum
    and the bias-penalised one differ by much more than liblinear's tolerance."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(3.0, 1.0, (60, 3)), rng.normal(5.0, 1.0, (60, 3))])
    return X, np.r_[-np.ones(60), np.ones(60)]


def test_a_free_bias_rows_liblinear_difference_compares_the_bias_penalised_problem_on_both_sides():
    """liblinear penalises its bias, so for a free-bias row soft_report compares it with our optimum of the
    bias-penalised problem (TABLE_NOTES['svm']). The oracle: LinearSVC fitted here with its own intercept (penalised
    as a feature of value 1), its objective 1/2 (|w|^2 + b^2) + C/2 sum xi^2 computed by hand. Our free-bias optimum
    lies well below it on this data; a report that compared liblinear with that read a difference of ~1e-1 and the
    theory's '= liblinear' row (tolerance 1e-6) failed on any data whose bias matters."""
    from sklearn.svm import LinearSVC

    X, y = _offset_pair()
    C = 1.0
    fit = LinearSVC(C=C / 2, loss="squared_hinge", dual=True, tol=1e-10, max_iter=1_000_000).fit(X, y)
    w, b = fit.coef_[0], fit.intercept_[0]
    penalised = 0.5 * (w @ w + b * b) + 0.5 * C * np.sum(np.maximum(0.0, 1 - y * (X @ w + b)) ** 2)

    report = svm.soft_report(X, y, C, "free")
    assert report["liblinear_objective"] == pytest.approx(penalised, rel=1e-7)
    assert report["primal_objective"] < penalised * (1 - 1e-3)  # the two problems really differ here
    assert report["liblinear_relative_difference"] <= 1e-6


# --- Q3(a): the explicit QP, with and without xi >= 0 ----------------------------------------------------------------


def _record_slsqp(monkeypatch, adjust=None) -> list[dict]:
    """Wrap scipy.optimize.minimize (imported by the solvers at each call): record each call's arguments, and let
    `adjust(res)` change its result (an SLSQP that stops short)."""
    calls, real = [], _MINIMIZE

    def minimize(fun, x0, *args, **kwargs):
        calls.append({"x0": np.array(x0), **kwargs})
        res = real(fun, x0, *args, **kwargs)
        if adjust is not None:
            adjust(res)
        return res

    monkeypatch.setattr(scipy.optimize, "minimize", minimize)
    return calls


def test_q3a_adds_the_constraint_xi_ge_0_and_only_there(monkeypatch):
    """Q3(a)'s check compares the QP with and without xi >= 0; at the optimum both agree (that is the claim), so a
    QP that dropped the constraint compared a problem with itself and the check could not fail. The oracle is a
    point whose feasibility is known: separable data (x = +-2), w = 10 (margins 20) and xi = -1 satisfy every
    margin constraint y (w x) >= 1 - xi, and violate xi >= 0 alone."""
    X, y = np.array([[2.0], [-2.0]]), np.array([1.0, -1.0])
    prob = svm.SoftSVMProblem(X, y, C=4.0, bias="none")
    calls = _record_slsqp(monkeypatch)
    for nonneg in (False, True):
        svm.solve_explicit_qp(prob, nonnegative_slack=nonneg)
    s = math.sqrt(prob.C)  # the QP's variables are (w, u = sqrt(C) xi)
    point = np.r_[10.0, -s, -s]
    lowest = [float(np.min(call["constraints"][0]["fun"](point))) for call in calls]
    assert lowest[0] >= 0  # without xi >= 0: feasible
    assert lowest[1] == pytest.approx(-s)  # with it: the rows u >= 0 are violated, by u


def test_the_explicit_qp_refines_a_point_where_slsqp_stopped_short(monkeypatch):
    """SLSQP can stop short of the optimum with the right active set (svm._crossover's docstring: 1.1e-5 above it
    with no bias at C = 100 on one BLAS thread); the KKT refinement on that active set makes the QP's objective the
    optimum. Simulated here: SLSQP's point scaled by 1 + 1e-8 (feasible, the active margins off by 1e-8, within the
    active-set test's 1e-7, the objective 2e-8 too high). The oracle is Newton's method on the same problem."""
    from mlhw.data import load_digits_data

    d = load_digits_data()
    X, y = svm.binary_task(svm.design_matrix(d.train.x), d.train.y, (3, 8))
    for bias, C in (("none", 100.0), ("free", 1.0)):
        prob = svm.SoftSVMProblem(X, y, C, bias)
        newton = svm.solve_primal(prob).objective

        def short(res):
            res.x = res.x * (1 + 1e-8)

        _record_slsqp(monkeypatch, short)
        for nonneg in (False, True):
            _, _, f = svm.solve_explicit_qp(prob, nonnegative_slack=nonneg)
            assert abs(f - newton) / max(1.0, abs(newton)) <= 1e-12, (bias, C, nonneg, f, newton)


def test_the_kkt_reports_converged_flag_needs_both_solvers():
    """kkt_report's `converged` (the theory's 'both solvers converged' row reads 1 - it) is 1 only when Newton and the
    dual both converged. A flag that read the dual's alone passed every test: the rows that read it were tested with
    the flag set by hand, never with a primal that stopped short. The oracle is the flag injected here."""
    import dataclasses

    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = np.where(X[:, 0] + 0.5 * rng.randn(40) > 0, 1.0, -1.0)
    prob = svm.SoftSVMProblem(X, y, 1.0, "free")
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    assert primal.converged and dual.converged
    assert svm.kkt_report(prob, primal, dual)["converged"] == 1.0
    stopped = dataclasses.replace(primal, converged=False)
    assert svm.kkt_report(prob, stopped, dual)["converged"] == 0.0
    assert svm.kkt_report(prob, primal, dataclasses.replace(dual, converged=False))["converged"] == 0.0
