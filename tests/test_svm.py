"""SVM solvers against each other, closed forms and scikit-learn/liblinear."""

import math

import numpy as np
import pytest
import scipy.optimize

from mlhw import svm
from mlhw.errors import MLHWError
from mlhw.svm import binary_task
from mlhw.theory import separable_blobs


def noisy_multiclass(n=90, k=3, d=3, seed=0):
    rng = np.random.RandomState(seed)
    return svm.add_bias_feature(rng.randn(n, d)), rng.randint(0, k, n)


def test_hinge_bounds_zero_one_pointwise():
    X, y = noisy_multiclass()
    rng = np.random.RandomState(1)
    for scale in (0.0, 0.01, 1.0, 100.0):  # scale 0: all ties, hinge 1 and 0-1 loss 1
        W = rng.randn(3, X.shape[1]) * scale
        assert np.all(svm.multiclass_hinge(W, X, y) >= svm.zero_one(W, X, y))
    assert np.all(svm.multiclass_hinge(np.zeros((3, 4)), X, y) == 1.0)


def test_separable_data_gets_a_certificate_and_the_lp_agrees():
    X, y = separable_blobs()
    sol = svm.solve_multiclass(X, y)
    assert sol.method == "certificate" and sol.objective == 0.0
    margins = -(svm.hinge_terms(sol.W, X, y) - (np.arange(4)[None] != y[:, None]))
    margins[np.arange(len(y)), y] = np.inf
    assert margins.min() >= 1.0  # every margin >= 1: f = 0, the lower bound
    W_lp, f_lp = svm.multiclass_lp(X, y, 4)
    assert f_lp == pytest.approx(0.0, abs=1e-9) and svm.zero_one(W_lp, X, y).sum() == 0


def test_lp_optimum_on_non_separable_data_beats_crammer_singer():
    """liblinear's Crammer-Singer SVM minimises 1/2||W||^2 + C sum hinge: for large C its f is an
    upper bound close to f*, never below it."""
    from sklearn.svm import LinearSVC

    X, y = noisy_multiclass()
    sol = svm.solve_multiclass(X, y)
    assert sol.method == "lp" and sol.objective > 0.1
    cs = LinearSVC(multi_class="crammer_singer", C=1e3, fit_intercept=False, tol=1e-8, max_iter=200_000).fit(X, y)
    f_cs = svm.multiclass_hinge(cs.coef_, X, y).mean()
    assert sol.objective <= f_cs + 1e-9
    assert f_cs - sol.objective < 1e-2
    rng = np.random.RandomState(0)
    for _ in range(50):  # and no random point does better
        assert svm.multiclass_hinge(sol.W + rng.randn(*sol.W.shape) * 0.1, X, y).mean() >= sol.objective - 1e-12


def test_the_lp_of_sparse_data_is_the_written_lp():
    """The LP is built from x's nonzero entries alone (MNIST is 81% zeros). Its optimum equals that of the LP
    written out row by row, (sample, wrong class) at a time, with every entry, solved by another HiGHS method."""
    from scipy.optimize import linprog

    rng, k, n = np.random.RandomState(0), 3, 120
    y = rng.randint(0, k, n)
    X = np.zeros((n, 4 * k))  # each class lights its own 4 pixels, half of them, with 15% noise elsewhere
    for c in range(k):
        X[y == c, 4 * c : 4 * c + 4] = rng.rand((y == c).sum(), 4)
    X *= rng.rand(*X.shape) < 0.5
    X += (rng.rand(*X.shape) < 0.15) * rng.rand(*X.shape)
    X[3] = 0.0  # a blank image: its row keeps only its slack
    p = X.shape[1]
    rows = []
    for s in range(n):
        for c in range(k):
            if c != y[s]:
                row = np.zeros(k * p + n)
                row[c * p : (c + 1) * p] += X[s]
                row[y[s] * p : (y[s] + 1) * p] -= X[s]
                row[k * p + s] = -1.0
                rows.append(row)
    cost = np.r_[np.zeros(k * p), np.full(n, 1.0 / n)]
    bounds = [(None, None)] * (k * p) + [(0, None)] * n
    written = linprog(cost, A_ub=np.array(rows), b_ub=-np.ones(len(rows)), bounds=bounds, method="highs-ipm")
    W, f = svm.multiclass_lp(X, y, k)
    assert written.status == 0 and 0.1 < f < 0.9  # neither separable nor W = 0 (random labels give f* = 1)
    assert f == pytest.approx(written.fun, abs=1e-7)
    assert svm.multiclass_hinge(W, X, y).mean() == pytest.approx(f, abs=1e-12)


def test_subgradient_descends_to_zero_on_separable_data():
    X, y = separable_blobs(n=120)
    res = svm.multiclass_subgradient(X, y, steps=5000, lr=1.0)
    assert res.history[0]["objective"] == 1.0  # W = 0: every term is 1
    assert res.objective == 0.0 and res.history[-1]["train_error"] == 0.0
    assert len(res.history) < 5001  # stopped early at f = 0


def overlapping(n=150, d=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) + 0.3
    return X, np.where(X @ rng.randn(d) + rng.randn(n) > 0, 1.0, -1.0)


@pytest.mark.parametrize("bias", ["free", "regularized", "none"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_primal_dual_and_explicit_qp_agree(bias, C):
    X, y = overlapping()
    prob = svm.SoftSVMProblem(X, y, C, bias)
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    k = svm.kkt_report(prob, primal, dual)
    assert abs(k["duality_gap"]) < 1e-10
    assert (
        k["w_residual"] < 1e-8
        and k["bias_residual"] < 1e-8
        and k["xi_residual"] < 1e-8
        and k["complementary_slackness"] < 1e-8
    )
    assert k["min_a"] >= -1e-12 and k["converged"] == 1.0 and primal.converged and dual.converged
    assert k["equality_residual"] < 1e-10 if bias == "free" else k["equality_residual"] == 0.0
    np.testing.assert_allclose(dual.theta, primal.theta, rtol=1e-7, atol=1e-9)
    for nonneg in (False, True):
        theta, xi, f = svm.solve_explicit_qp(prob, nonneg)
        assert f == pytest.approx(primal.objective, rel=1e-7)


@pytest.mark.parametrize("dual", [True, False])
def test_primal_matches_liblinear(dual):
    X, y = overlapping(400, 20, seed=3)
    for bias in ("regularized", "none"):
        prob = svm.SoftSVMProblem(X, y, 0.5, bias)
        ours = svm.solve_primal(prob)
        theirs = prob.primal(svm.liblinear_theta(prob, dual=dual))
        assert abs(theirs - ours.objective) / ours.objective < 1e-6
        assert ours.objective <= theirs * (1 + 1e-12)  # the exact optimum is never worse


def test_liblinear_gives_the_same_bits_whatever_numpy_drew_before():
    """liblinear (Q3's independent check) visits the samples in a random order; left to numpy's global generator, its
    objective moved in its last bit between reproductions on one machine (digits 3 vs 8, C = 1: four objectives for
    five global seeds). Seeded, the committed tables' liblinear column is the same bits at every reproduction."""
    from sklearn.datasets import load_digits

    X, t = load_digits(return_X_y=True)
    m = (t == 3) | (t == 8)
    prob = svm.SoftSVMProblem(X[m] / 16.0, np.where(t[m] == 3, 1.0, -1.0), 1.0, "regularized")
    thetas = []
    for seed in range(5):
        np.random.seed(seed)
        thetas.append(svm.liblinear_theta(prob))
    assert all(np.array_equal(thetas[0], th) for th in thetas[1:])
    assert abs(prob.primal(thetas[0]) - svm.solve_primal(prob).objective) / prob.primal(thetas[0]) < 1e-6


def test_slacks_closed_form_on_a_tiny_problem():
    """One point per class on a line, no bias: by symmetry both slacks are 1 - w, checked against the 1-D optimum."""
    X = np.array([[1.0], [-1.0]])
    y = np.array([1.0, -1.0])
    C = 2.0
    prob = svm.SoftSVMProblem(X, y, C, "none")
    sol = svm.solve_primal(prob)
    # minimise 1/2 w^2 + C (1 - w)^2 over w <= 1: w = 2C / (1 + 2C)
    assert sol.theta[0] == pytest.approx(2 * C / (1 + 2 * C), rel=1e-12)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.ones((4, 2)), np.ones(4), "both classes"),
        (np.zeros((0, 2)), np.zeros(0), "no training data"),
    ],
)
def test_bad_problems(X, y, message):
    with pytest.raises(MLHWError, match=message):
        svm.SoftSVMProblem(X, y, 1.0)


def test_C_must_be_positive():
    with pytest.raises(MLHWError, match="C must be > 0"):
        svm.SoftSVMProblem(np.eye(2), np.array([1.0, -1.0]), 0.0)


def test_warm_started_newton_reaches_the_same_optimum():
    rng = np.random.RandomState(5)
    X = rng.rand(24_000, 12)
    y = np.where(X @ rng.randn(12) + 0.3 * rng.randn(24_000) > 0, 1.0, -1.0)
    prob = svm.SoftSVMProblem(X, y, 0.1, "free")
    warm, cold = svm.solve_primal(prob), svm.solve_primal(prob, warm_start=False)
    assert warm.objective == pytest.approx(cold.objective, rel=1e-12)
    np.testing.assert_allclose(warm.theta, cold.theta, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("bias", ["free", "regularized", "none"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_q3d_the_dual_over_alpha_and_beta_puts_beta_at_zero(bias, C):
    """Q3(d): maximising g(alpha, beta) over both blocks (a general QP that starts from beta = 1) ends with
    beta = 0 and the same optimum as the active-set dual, which sets beta = 0 without solving for it."""
    X, y = overlapping(60, 5, seed=1)
    prob = svm.SoftSVMProblem(X, y, C, bias)
    a, b, g, _ = svm.solve_dual_qp(prob)
    assert np.max(b) <= 1e-6 * max(1.0, np.max(a)) and np.min(a) >= -1e-12
    assert g == pytest.approx(svm.solve_dual(prob).objective, rel=1e-8)
    assert g == pytest.approx(svm.solve_primal(prob).objective, rel=1e-8)  # strong duality, independently


def test_q1_holds_fails_on_either_broken_claim():
    from mlhw.theory import q1_holds

    ok = {"bound_violations": 0, "objective": 0.0, "train_error": 0.0}
    assert q1_holds(ok) and q1_holds(ok | {"objective": 0.2, "train_error": 0.1})
    assert not q1_holds(ok | {"bound_violations": 1})  # a sample whose 0-1 loss exceeds its hinge
    assert not q1_holds(ok | {"train_error": 0.01})  # f = 0 with a misclassified sample


def test_q3d_general_qp_reaches_beta_zero_at_large_c_on_digits():
    """b's curvature is 1/C: unscaled, SLSQP stopped at beta ~ 1e-5 on digits 3 vs 8 with C = 100."""
    from mlhw import data

    d = data.load_digits_data()
    m = np.isin(d.train.y, [3, 8])
    X, y = svm.design_matrix(d.train.x)[m][:120], np.where(d.train.y[m][:120] == 3, 1.0, -1.0)
    for C in (100.0, 1e4):
        prob = svm.SoftSVMProblem(X, y, C, "free")
        a, b, g, _ = svm.solve_dual_qp(prob)
        assert np.max(b) <= 1e-6 * max(1.0, np.max(a)), (C, np.max(b))
        assert g == pytest.approx(svm.solve_dual(prob).objective, rel=1e-10)


def test_zero_one_is_its_definition_ties_included():
    rng = np.random.RandomState(0)
    X, y = svm.add_bias_feature(rng.randn(40, 3)), rng.randint(0, 4, 40)
    for W in (np.zeros((4, 4)), np.round(rng.randn(4, 4)), rng.randn(4, 4)):  # all ties, some ties, none
        S = X @ W.T
        want = [float(any(S[i, j] >= S[i, y[i]] for j in range(4) if j != y[i])) for i in range(40)]
        assert svm.zero_one(W, X, y).tolist() == want
    assert svm.zero_one(np.zeros((4, 4)), X, y).tolist() == [1.0] * 40


@pytest.mark.parametrize("C", [1e4, 1e6])
def test_the_dual_is_exact_at_large_c_where_pdas_cycles(C):
    """On all of digits 3 vs 8 the primal-dual active set cycles for C >= 1e4 (it reported a dual of 14.69 above
    the primal's 11.545: impossible); the dual must still equal the primal, found independently."""
    from mlhw import data

    d = data.load_digits_data()
    m = np.isin(d.train.y, [3, 8])
    prob = svm.SoftSVMProblem(svm.design_matrix(d.train.x)[m], np.where(d.train.y[m] == 3, 1.0, -1.0), C, "free")
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    k = svm.kkt_report(prob, primal, dual)
    assert dual.converged and abs(k["duality_gap"]) < 1e-9, k
    assert k["complementary_slackness"] < 1e-6 and k["equality_residual"] < 1e-9 and k["min_a"] >= -1e-12
    for nonneg in (False, True):  # and the explicit QP (Q3(a)): in xi it stopped 1.5e7 (relative) off at C = 1e6
        assert svm.solve_explicit_qp(prob, nonneg)[2] == pytest.approx(primal.objective, rel=1e-8), nonneg


@pytest.mark.parametrize("bias", ["free", "none"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0, 1e5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fallback_active_set_alone_reaches_the_qp_optimum(bias, C, seed):
    """The primal active-set method that takes over when PDAS cycles, run on its own, against the primal by
    Newton and the explicit primal QP (other solvers of another problem: strong duality makes the optima equal).
    Before the QP worked in sqrt(C) xi it stopped at 1487900 against Newton's 1491450.79 at C = 1e5."""
    X, y = overlapping(80, 5, seed=seed)
    prob = svm.SoftSVMProblem(X, y, C, bias)
    F = prob.kernel_features()
    Q = (y[:, None] * y[None, :]) * (F @ F.T) + np.eye(len(y)) / C
    a, _, _, converged = svm._primal_active_set(Q, y, bias == "free")
    assert converged and a.min() >= 0
    if bias == "free":
        assert abs(a @ y) < 1e-9 * max(1.0, a.max())
    g = prob.dual(a, np.zeros_like(a))
    assert g == pytest.approx(svm.solve_primal(prob).objective, rel=1e-10)
    assert g == pytest.approx(svm.solve_explicit_qp(prob, nonnegative_slack=False)[2], rel=1e-7)


def test_q1s_implication_is_checked_sample_by_sample_on_any_data(monkeypatch):
    """Q1's "f = 0 => zero training error" was the minimiser's training error, which on data that is not
    separable (f* > 0: the implication says nothing) failed a claim that holds; it is now the 0-1 loss of the
    samples whose hinge is 0, at the minimiser and at 20 random W."""
    from mlhw import theory

    rng = np.random.RandomState(0)
    X, y = svm.add_bias_feature(rng.randn(200, 4)), rng.randint(0, 3, 200)
    separable, minimisers, implication, bound = theory.check_q1(X, y, "noise")
    assert separable.max_error == pytest.approx(1.0) and not separable.passed  # noise: f* = 1 (W = 0)
    assert implication.passed and bound.passed
    assert minimisers.passed  # no minimiser has f = 0 here: the premise fails, the claim says nothing
    blobs = theory.check_q1(*theory.separable_blobs(), "blobs")
    assert all(c.passed for c in blobs)
    # a 0-1 loss that calls every sample wrong breaks the implication where the hinge is 0 (blobs: everywhere)
    monkeypatch.setattr(svm, "zero_one", lambda W, X, y: np.ones(len(y)))
    assert [c.max_error for c in theory.check_q1(*theory.separable_blobs(), "blobs")[1:3]] == [1.0, 1.0]


def test_complementary_slackness_sees_multipliers_of_the_wrong_size():
    """It took xi = max(0, 1 - m) from the primal, which makes m - 1 + xi zero inside the margin by construction:
    multipliers three times too large still read 0. With the dual's slacks (a + b) / C it is a cross-check."""
    import dataclasses

    prob = svm.SoftSVMProblem(*overlapping(), 1.0, "free")
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    assert svm.kkt_report(prob, primal, dual)["complementary_slackness"] < 1e-12
    wrong = dataclasses.replace(dual, a=3 * dual.a)
    assert svm.kkt_report(prob, primal, wrong)["complementary_slackness"] > 0.1


def test_small_problems_run_on_one_blas_thread_and_large_ones_on_the_default(monkeypatch):
    """OpenBLAS threads on vectors of a few hundred numbers only wait for each other: on 2 busy cores the Q3(d)
    dual QP (n = 120) took 33 s instead of 0.25 s. The solvers take one BLAS thread below SMALL_PROBLEM."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []

    def spy(fn):
        def wrapped(*a, **k):
            seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(svm, "_free_set_optimum", spy(svm._free_set_optimum))  # inside solve_dual
    monkeypatch.setattr(svm, "SMALL_PROBLEM", 1_000)
    with threadpool_limits(limits=2, user_api="blas"):
        X, y = overlapping(n=150, d=6)  # 900 entries: small
        svm.solve_dual(svm.SoftSVMProblem(X, y, 1.0, "free"))
        assert seen and seen[-1] == {1}
        X, y = overlapping(n=400, d=6)  # 2,400 entries: large
        svm.solve_dual(svm.SoftSVMProblem(X, y, 1.0, "free"))
        assert seen[-1] == {2}
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {2}  # restored


@pytest.mark.parametrize("bias", ["free", "regularized", "none"])
def test_newton_reaches_the_optimum_at_large_C(bias):
    """From zero, Newton crawled from kink to kink at large C: digits 3 vs 8 with no bias at C = 1e5 ended 100
    steps later at 39x the optimum (not converged), with a free bias at C = 1e8 0.3% above it, called converged.
    Continuation in C and a guarded line search: against the dual's active set and liblinear (same objective)."""
    from mlhw.data import load_digits_data

    d = load_digits_data()
    X, y = binary_task(d.train.x.reshape(len(d.train.x), -1), d.train.y, (3, 8))
    for C in (1e5, 1e6, 1e8):
        prob = svm.SoftSVMProblem(X, y, C, bias)
        primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
        assert primal.converged and dual.converged
        # with no bias, 2e-10 (1e6) and 5e-10 (1e8) above the dual remain; liblinear agrees with the dual
        tol = 1e-12 if bias != "none" or C < 1e6 else 1e-9
        assert (primal.objective - dual.objective) / dual.objective == pytest.approx(0, abs=tol), (C, bias)
        if bias != "free":  # liblinear regularises its bias: the same objective with the bias folded in
            lib = prob.primal(svm.liblinear_theta(prob))
            assert (primal.objective - lib) / lib <= tol


def test_the_dual_at_the_primals_multipliers_certifies_the_primal():
    """At C = 1e9 on ill-conditioned data the dual's active set stops short while saying it converged (a known
    limit, found by a review): the dual evaluated at a = C xi of the primal is the certificate that tells which
    solver is right (weak duality: it equals the primal only at the optimum)."""
    import dataclasses

    rng = np.random.default_rng(0)
    X, y = 10 * rng.normal(size=(60, 10)), np.where(rng.random(60) < 0.5, 1.0, -1.0)
    prob = svm.SoftSVMProblem(X, y, 1e9, "none")
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    k = svm.kkt_report(prob, primal, dual)
    assert abs(k["primal_certificate_gap"]) < 1e-12  # the primal is the optimum
    worse = dataclasses.replace(primal, theta=primal.theta * 1.01, objective=prob.primal(primal.theta * 1.01))
    assert svm.kkt_report(prob, worse, dual)["primal_certificate_gap"] > 1e-6  # a primal off the optimum is not


def test_the_dual_functions_formula_is_the_lagrangians_minimum_and_a_wrong_one_is_caught(monkeypatch):
    """Q3(b, c): g(a, b) from the derivation against L minimised numerically at random multipliers; a formula
    with C/2 where 1/(2C) belongs (the slip the derivation invites) fails the check, at the random C it draws."""
    from mlhw import svm, theory

    rng = np.random.RandomState(3)
    X = rng.randn(40, 4)
    y = np.where(X[:, 0] + 0.3 * rng.randn(40) > 0, 1.0, -1.0)
    a, b = theory.random_multipliers(y, rng)
    assert (a >= 0).all() and (b >= 0).all() and abs(a @ y) < 1e-12
    assert theory.dual_function_error(X, y) < 1e-10

    def wrong(self, a, b=None):
        b = np.zeros_like(a) if b is None else b
        v = self.X.T @ (a * self.y)
        return float(-0.5 * v @ v - self.C * (a + b) @ (a + b) / 2 + a.sum())

    monkeypatch.setattr(svm.SoftSVMProblem, "dual", wrong)
    assert theory.dual_function_error(X, y) > 1e-2
    # as `mlhw theory` runs it (the check is not only fit to C = 1, where 1/(2C) = C/2)
    (bc,) = [c for c in theory.check_q3(X, y, "noise") if c.question == "Q3(b,c)"]
    assert not bc.passed and bc.max_error > 1e-2


def test_the_lagrangian_has_no_minimum_unless_sum_alpha_y_is_zero():
    """Q3(b): with sum a_i y_i = s != 0 the bias drives L down without bound. Oracle: at a fixed bias t the
    minimiser over (w, xi) is w = sum a_i y_i x_i, xi = (a + b)/C (worked by hand), so min L = g(a, b) - t s:
    L-BFGS's minima must fall on that line; with balanced multipliers (s = 0) they do not move at all."""
    from mlhw import theory

    rng = np.random.RandomState(5)
    X = rng.randn(30, 3)
    y = np.where(rng.rand(30) > 0.5, 1.0, -1.0)
    a, b, C = np.abs(rng.randn(30)), np.abs(rng.randn(30)), 0.7
    s = a @ y
    w = X.T @ (a * y)
    g = -0.5 * w @ w - (a + b) @ (a + b) / (2 * C) + a.sum()
    for t in (-50.0, 3.0, 1e4):
        assert theory.lagrangian_minimum(X, y, C, a, b, bias=t) == pytest.approx(g - t * s, rel=1e-10)
    assert theory.lagrangian_fall(X, y, C, a, b, np.copysign(1e4, s)) == pytest.approx(-abs(s), rel=1e-10)
    balanced, b2 = theory.random_multipliers(y, rng)
    assert abs(theory.lagrangian_fall(X, y, C, balanced, b2, 1e4)) < 1e-10  # s = 0: bounded, g is its minimum
    assert theory.unbounded_slope_error(X, y) < 1e-10
    (row,) = [c for c in theory.check_q3(X, y, "noise") if c.claim.startswith("sum a_i y_i != 0")]
    assert row.passed


def test_q3d_runs_on_data_sorted_by_label():
    """Q3(d)'s sub-problem took the first 120 samples: on data sorted by label they were of one class, and the
    whole report (a run that already existed) failed. It takes 60 of each class then, and agrees with the dual."""
    X, y = overlapping(400, 5, seed=2)
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    assert (y[: svm.QP_DUAL_SAMPLES] == y[0]).all()  # the case: the first 120 are one class
    rep = svm.soft_report(X, y, 1.0)
    assert rep["qp_dual_n"] == svm.QP_DUAL_SAMPLES and rep["qp_dual_vs_active_set"] < 1e-8
    assert rep["qp_dual_max_beta"] < 1e-6
    mixed = overlapping(400, 5, seed=2)  # the first 120 hold both classes: they are the sub-problem, as before
    assert (svm._dual_qp_rows(mixed[1]) == np.arange(svm.QP_DUAL_SAMPLES)).all()


def _overlapping_pair(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(-1, 1.2, (60, 4)), rng.normal(1, 1.2, (60, 4))])
    return X, np.r_[-np.ones(60), np.ones(60)]


@pytest.mark.parametrize("bias", ["none", "regularized", "free"])
def test_soft_report_measures_its_test_error_on_the_test_set(bias):
    """The test set is the training set with every label flipped: each point the classifier gets right there it
    gets wrong here, so the test error is 1 - the training error (generic data: no point on the boundary). A test
    error measured on the training set read the same as the training error."""
    X, y = _overlapping_pair()
    report = svm.soft_report(X, y, 1.0, bias, X, -y)
    assert 0 < report["train_error"] < 0.5 and report["n_test"] == len(y)
    assert report["test_error"] == pytest.approx(1 - report["train_error"], abs=1e-12)


def test_soft_report_compares_with_an_independent_liblinear_fit_and_its_differences_are_its_objectives():
    """liblinear's objective against a LinearSVC fitted here and evaluated by hand (squared hinge with C/2: the
    same problem as 1/2 |theta|^2 + C/2 sum xi^2, the bias regularised); the relative differences the table shows
    are those of the objectives it shows (a constant 0 passed every check of their smallness)."""
    from sklearn.svm import LinearSVC

    X, y = _overlapping_pair(1)
    C = 1.0
    report = svm.soft_report(X, y, C, "regularized")
    fit = LinearSVC(C=C / 2, loss="squared_hinge", dual=True, tol=1e-9, max_iter=100_000).fit(X, y)
    w, b = fit.coef_[0], fit.intercept_[0]
    by_hand = 0.5 * (w @ w + b * b) + 0.5 * C * np.sum(np.maximum(0.0, 1 - y * (X @ w + b)) ** 2)
    assert report["liblinear_objective"] == pytest.approx(by_hand, rel=1e-7)
    assert report["primal_objective"] == pytest.approx(by_hand, rel=1e-7)
    lib, ours = report["liblinear_objective"], report["primal_objective"]
    plain, nonneg = report["qp_objective"], report["qp_nonneg_objective"]
    assert (lib, plain) != (ours, nonneg)  # round-off apart: the differences below are not 0 by construction
    assert report["liblinear_relative_difference"] == pytest.approx(abs(lib - ours) / max(1.0, abs(ours)), abs=0)
    assert report["q3a_relative_difference"] == pytest.approx(abs(nonneg - plain) / max(1.0, abs(plain)), abs=0)


def test_multiclass_report_counts_the_points_whose_zero_one_loss_exceeds_the_hinge(monkeypatch):
    """The bound never fails (Q1), so a count fixed at 0 passed every run: with the hinge replaced by 0, every
    misclassified training point is a violation."""
    X, y = noisy_multiclass()
    honest = svm.multiclass_report(X, y, X, y, 3)
    assert honest["bound_violations"] == 0 and honest["train_error"] > 0
    monkeypatch.setattr(svm, "multiclass_hinge", lambda W, X, y: np.zeros(len(y)))
    broken = svm.multiclass_report(X, y, X, y, 3)
    assert broken["bound_violations"] == round(broken["train_error"] * len(y)) > 0


def test_a_check_passes_up_to_its_tolerance_and_not_beyond():
    """Check.passed: max_error <= tolerance, finite; tolerance 0 is an exact claim."""
    from mlhw.theory import Check

    def passed(err, tol):
        return Check("Q", "claim", "check", "data", err, tol).passed

    assert passed(1e-8, 1e-8) and passed(0.0, 1e-8) and passed(0.0, 0.0)
    assert not passed(np.nextafter(1e-8, 1.0), 1e-8)  # the next float above the tolerance
    assert not passed(2e-8, 1e-8) and not passed(1e-7, 1e-8)
    assert not passed(5e-324, 0.0)  # an exact claim: the smallest error fails it
    assert not passed(float("nan"), 1e-8) and not passed(float("inf"), 1e-8) and not passed(float("inf"), math.inf)
    row = Check("Q", "claim", "check", "data", 2e-8, 1e-8).row()
    assert row["passed"] is False and row["max_error"] == 2e-8


def test_q2s_check_sees_an_output_off_by_a_little_on_small_inputs(monkeypatch):
    """A max network whose output is 1e-8 off (an output bias) is off by 1e-8 relative to max(1, |x|) on the inputs
    of size <= 1: the check's error is that, not diluted by the largest input of the whole set (up to ~4e6)."""
    from mlhw import theory

    (honest,) = theory.check_q2()
    assert honest.passed
    real = theory.max_net
    monkeypatch.setattr(theory, "max_net", lambda x: real(x) + 1e-8)
    (wrong,) = theory.check_q2()
    assert not wrong.passed and wrong.max_error == pytest.approx(1e-8, rel=1e-6)


def test_q1s_bound_is_checked_at_random_w_not_only_at_the_minimiser(monkeypatch):
    """A 0-1 loss that is wrong for one sample at W other than the minimiser (the sample with the smallest hinge,
    classified right, called wrong) breaks hinge >= 0-1 there: at a W of scale 100 on the blobs that sample's hinge
    is 0, so the bound is exceeded by 1."""
    from mlhw import theory

    X, y = theory.separable_blobs()
    minimiser = svm.solve_multiclass(X, y).W
    real = svm.zero_one

    def wrong_away_from_the_minimiser(W, X, y):
        e = real(W, X, y)
        if not np.array_equal(W, minimiser):
            h = svm.multiclass_hinge(W, X, y)
            right = np.flatnonzero(e == 0)
            if len(right):
                e[right[np.argmin(h[right])]] = 1.0
        return e

    monkeypatch.setattr(svm, "zero_one", wrong_away_from_the_minimiser)
    bound = theory.check_q1(X, y, "blobs")[3]
    assert bound.claim == "hinge >= 0-1 loss pointwise"
    assert not bound.passed and bound.max_error == 1.0


def test_q3s_strong_duality_row_fails_a_gap_of_1e6(monkeypatch):
    """A dual solver that stops 1e-6 (relative) below the optimum: the strong-duality row reads a gap of 1e-6 and
    fails (its tolerance is 1e-10: the solvers agree to ~1e-15 on these problems)."""
    import dataclasses

    from mlhw import theory

    rng = np.random.RandomState(3)
    X = rng.randn(40, 4)
    y = np.where(X[:, 0] + 0.3 * rng.randn(40) > 0, 1.0, -1.0)
    real = svm.solve_dual

    def short(prob, *a, **k):
        d = real(prob, *a, **k)
        return dataclasses.replace(d, objective=d.objective - 1e-6 * max(1.0, abs(d.objective)))

    monkeypatch.setattr(svm, "solve_dual", short)
    for slow in ("dual_function_error", "unbounded_slope_error"):  # L-BFGS on the Lagrangian: other rows, seconds
        monkeypatch.setattr(theory, slow, lambda X, y: 0.0)
    (row,) = [c for c in theory.check_q3(X, y, "noise") if c.claim == "strong duality"]
    assert not row.passed and row.max_error == pytest.approx(1e-6, rel=1e-6)


def test_q3a_on_a_large_problem_is_checked_on_the_sub_problem_and_the_stages_are_said(monkeypatch):
    """Q3(a)'s explicit QP (dense SLSQP) on 1,987 MNIST 3s and 8s took 8 minutes in silence. Above
    EXPLICIT_QP_MAX_VARIABLES it runs on Q3(d)'s 120 rows: its optimum is then that sub-problem's, as Newton finds it
    independently, not the whole problem's. Every stage soft_stages names is announced, in order; above
    DUAL_MAX_SAMPLES the dual is not solved, and soft_skipped says so."""
    rng = np.random.RandomState(0)
    X = rng.randn(1200, 4)
    y = np.where(X[:, 0] + 0.5 * rng.randn(1200) > 0, 1.0, -1.0)
    said = []
    rep = svm.soft_report(X, y, 1.0, "free", on_stage=lambda i, what: said.append((i, what)))
    assert said == list(enumerate(svm.soft_stages(1200, 5)))  # 4 features and the free bias's column
    assert "dual (active set)" in [w for _, w in said] and "(a sub-problem)" in said[2][1]
    rows = svm._dual_qp_rows(y)
    sub = svm.solve_primal(svm.SoftSVMProblem(X[rows], y[rows], 1.0, "free")).objective
    assert rep["qp_n"] == 120 and rep["qp_objective"] == pytest.approx(sub, rel=1e-8)
    assert rep["primal_objective"] > 5 * sub  # the whole problem's optimum is another number
    assert rep["q3a_relative_difference"] < 1e-8 and svm.soft_skipped(1200) is None

    small = svm.soft_report(X[:300], y[:300], 1.0, "free")  # 300 + 5 variables: the whole problem
    assert small["qp_n"] == 300 and small["qp_objective"] == pytest.approx(small["primal_objective"], rel=1e-8)

    monkeypatch.setattr(svm, "DUAL_MAX_SAMPLES", 1000)
    said.clear()
    rep = svm.soft_report(X, y, 1.0, "free", on_stage=lambda i, what: said.append(what))
    assert "dual_objective" not in rep and "duality_gap" not in rep and "dual (active set)" not in said
    assert len(said) == 4 and svm.soft_skipped(1200) == "not solved: 1,200 samples > 1,000 (a smaller --train-size)"


def test_one_subgradient_step_is_the_hand_worked_one():
    """Q1's subgradient method on two points, worked by hand. At W = 0 every term is 1 (ties), so each point's
    subgradient is +x_i on the other class's row and -x_i on its own: G = [[-1, 1], [1, -1]], and the step
    W -= lr / n * G gives W = [[0.25, -0.25], [-0.25, 0.25]] at lr 0.5, n 2, where each hinge is 1 - 0.5 = 0.5.
    A step without the 1/n (lr * G: a rate n times larger) passed test_svm, and so did a loop one step short."""
    X, y = np.eye(2), np.array([0, 1])
    res = svm.multiclass_subgradient(X, y, steps=1, lr=0.5)
    np.testing.assert_allclose(res.W, [[0.25, -0.25], [-0.25, 0.25]], rtol=0, atol=1e-15)
    assert [(h["step"], h["objective"], h["train_error"]) for h in res.history] == [(0, 1.0, 1.0), (1, 0.5, 0.0)]
    assert res.objective == 0.5 and res.method == "subgradient"
    # one step more reaches every margin 1 (f = 0) and stops there, short of its 5 steps
    done = svm.multiclass_subgradient(X, y, steps=5, lr=0.5)
    assert [h["objective"] for h in done.history] == [1.0, 0.5, 0.0]
    np.testing.assert_allclose(done.W, [[0.5, -0.5], [-0.5, 0.5]], rtol=0, atol=1e-15)


def test_kkt_residuals_read_how_far_a_wrong_dual_is_from_the_primal():
    """Each residual of kkt_report (the Q3(c) rows of `mlhw theory` and the svm table) against a dual moved off
    the optimum by a known amount: multipliers 1.5 times too large give w = 1.5 w*, a relative residual of 0.5; a
    dual bias 0.25 off reads 0.25; one multiplier 0.3 too large breaks sum a_i y_i = 0 by 0.3 and xi = a / C by
    0.3 / C. A residual fixed at 0 (bias, equality) or computed on part of w passed every test of test_svm: the
    exact solvers make each of them 0 to rounding. The support vectors are the samples inside the margin."""
    import dataclasses

    X, y = overlapping()
    C = 2.0
    for bias in ("none", "regularized", "free"):
        prob = svm.SoftSVMProblem(X, y, C, bias)
        primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
        margins = y * (prob.A @ primal.theta)
        assert svm.kkt_report(prob, primal, dual)["support_vectors"] == int(np.sum(margins < 1 - 1e-9)) > 0
        scaled = svm.kkt_report(prob, primal, dataclasses.replace(dual, a=1.5 * dual.a))
        assert scaled["w_residual"] == pytest.approx(0.5, rel=1e-7)
    prob = svm.SoftSVMProblem(X, y, C, "free")
    primal, dual = svm.solve_primal(prob), svm.solve_dual(prob)
    exact = svm.kkt_report(prob, primal, dual)
    assert max(exact["bias_residual"], exact["equality_residual"], exact["xi_residual"]) < 1e-8
    shifted = dataclasses.replace(dual, theta=dual.theta + np.r_[np.zeros(X.shape[1]), 0.25])
    assert svm.kkt_report(prob, primal, shifted)["bias_residual"] == pytest.approx(0.25, rel=1e-7)
    bumped = dataclasses.replace(dual, a=dual.a + 0.3 * (np.arange(len(y)) == 0))
    k = svm.kkt_report(prob, primal, bumped)
    assert k["equality_residual"] == pytest.approx(0.3, rel=1e-7)
    assert k["xi_residual"] == pytest.approx(0.3 / C, rel=1e-6)


@pytest.mark.parametrize(
    "report, reason",
    [
        ({"primal_converged": 1.0, "converged": 1.0, "duality_gap": 1e-12}, None),
        ({"primal_converged": 1.0, "converged": 1.0, "duality_gap": -1e-8}, None),  # the tolerance itself passes
        ({"primal_converged": 1.0}, None),  # above 6,000 samples: no dual, no gap
        ({"primal_converged": 0.0, "converged": 1.0, "duality_gap": 0.0}, "Newton did not converge"),
        ({"primal_converged": 1.0, "converged": 0.0, "duality_gap": 0.0}, "a solver did not converge"),
        ({"converged": 1.0, "duality_gap": 2e-8}, "differ by 2.0e-08 (relative; tolerance 1e-08): one solver stopped"),
        ({"converged": 1.0, "duality_gap": float("nan")}, "differ by nan"),
        (
            {"converged": 1.0, "duality_gap": -3e-6, "primal_certificate_gap": 1e-12},
            "differ by -3.0e-06 (relative; tolerance 1e-08): the dual's active set stopped short",
        ),
    ],
)
def test_soft_failure_names_the_first_rule_a_q3_report_breaks(report, reason):
    """The one rule of `svm soft`, reproduce and `mlhw check` on hand-written reports: Newton's flag, then both
    solvers' flag, then |gap| <= 1e-8 (NaN fails), and which solver stopped short when the primal is certified. A
    rule that ignored the solvers' flag (`converged`), or let a NaN gap through, passed every test of test_svm."""
    why = svm.soft_failure(report)
    assert why is None if reason is None else reason in why


def test_each_q3_row_of_the_theory_checks_reads_its_own_number(monkeypatch):
    """check_q3 turns soft_report's numbers into rows: each row must read the number of its claim, written out here
    by hand (claim -> report key). With every key a different value, a row reading a neighbour's number shows; a
    bias row that read xi_residual, and a 'both solvers converged' row fixed at 0, passed every test (the exact
    solvers make all of them 0 to rounding)."""
    from mlhw import theory

    keys = [
        "q3a_relative_difference",
        "qp_vs_newton_relative_difference",
        "duality_gap",
        "w_residual",
        "bias_residual",
        "xi_residual",
        "qp_dual_max_beta",
        "qp_dual_vs_active_set",
        "equality_residual",
        "complementary_slackness",
        "liblinear_relative_difference",
    ]
    report = {k: (i + 1) / 64 for i, k in enumerate(keys)} | {"converged": 0.0, "qp_dual_n": 7}
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: report)
    monkeypatch.setattr(theory, "dual_function_error", lambda X, y: 0.5)
    monkeypatch.setattr(theory, "unbounded_slope_error", lambda X, y: 0.75)
    X, y = overlapping(20, 3)
    rows = {c.claim: c.max_error for c in theory.check_q3(X, y, "noise")}
    by_hand = {
        "xi >= 0 leaves the optimum": "q3a_relative_difference",
        "xi eliminated: same optimum": "qp_vs_newton_relative_difference",
        "strong duality": "duality_gap",
        "w = sum alpha_i y_i x_i": "w_residual",
        "bias from the dual = bias primal": "bias_residual",
        "xi = (alpha + beta)/C": "xi_residual",
        "beta = 0 at the optimum": "qp_dual_max_beta",
        "max over alpha, beta = max over alpha": "qp_dual_vs_active_set",
        "sum alpha_i y_i = 0 (free bias)": "equality_residual",
        "complementary slackness": "complementary_slackness",
        "= liblinear (LinearSVC)": "liblinear_relative_difference",
    }
    assert {claim: rows[claim] for claim in by_hand} == {claim: report[key] for claim, key in by_hand.items()}
    assert rows["g(a, b) = min over w, b, xi of the Lagrangian"] == 0.5
    assert rows["sum a_i y_i != 0: L has no minimum"] == 0.75
    assert rows["both solvers converged"] == 1.0  # 1 - converged: a solver stopped short
    assert len(rows) == len(by_hand) + 3


def test_the_beta_row_reads_the_largest_beta_scaled_and_fails_above_one_in_a_million(monkeypatch):
    """Q3(d)'s 'beta = 0 at the optimum' row, with the general QP's beta set by hand (one entry nonzero, the rest at
    0): it reports max beta / max(1, max alpha) and fails above 1e-6. A row that read min(beta), or a tolerance of
    1e-2, passed every test: the real QP returns beta at 0 to rounding, so no test ever saw a nonzero one."""
    from mlhw import theory

    real = svm.solve_dual_qp

    def beta_of(share):
        def solve(prob):
            a, b, g, ok = real(prob)
            b = np.zeros_like(b)
            b[len(b) // 2] = share * max(1.0, float(np.max(a)))
            return a, b, g, ok

        return solve

    X, y = overlapping(20, 3)
    for share, passes in ((0.5, False), (2e-6, False), (5e-7, True)):
        monkeypatch.setattr(svm, "solve_dual_qp", beta_of(share))
        (row,) = [c for c in theory.check_q3(X, y, "noise") if c.claim == "beta = 0 at the optimum"]
        assert row.max_error == pytest.approx(share, rel=1e-12) and row.passed is passes, (share, row)


# --- found by hand mutation testing: each fails on a small plausible bug every other test passed; each compares with
# an oracle that does not come from the code under test (liblinear fitted here, Newton's method, a point whose
# feasibility is known by construction)

_MINIMIZE = scipy.optimize.minimize  # the real one, whatever a test has wrapped it in


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
