"""The SVM theory as solvers: multiclass hinge loss (Q1) and the soft SVM with l2 slack penalty (Q3).

Everything is float64 numpy: these solvers are the ground truth that the checks in mlhw.theory
compare against each other and against scikit-learn/liblinear.

Q1  f(W) = mean_i max_j (<w_j, x_i> - <w_{y_i}, x_i> + 1[j != y_i])       (always >= 0: j = y_i gives 0)
Q3  min 1/2 ||w||^2 + C/2 sum xi_i^2   s.t.  y_i (<w, x_i> + b) >= 1 - xi_i
    dual: max g(a, b) = -1/2 sum a_i a_j y_i y_j <x_i, x_j> - 1/(2C) sum (a_i + b_i)^2 + sum a_i,
          sum a_i y_i = 0, a, b >= 0;  at the optimum w = sum a_i y_i x_i, xi = (a + b)/C, b = 0.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mlhw.data import unit_float
from mlhw.errors import MLHWError

Bias = Literal["free", "regularized", "none"]

# Below this many entries of X the solvers run with one BLAS thread. Their loops make thousands of BLAS calls on
# a few hundred numbers, where OpenBLAS's threads only wait for each other, and on a busy machine (CI, a --jobs
# worker beside another) each call waits for a descheduled thread: on 2 loaded cores the Q3(d) dual QP (n = 120)
# took 33 s and Q1 on digits 1.1 s, against 0.25 s and 0.08 s on one thread (benchmarks/svm.py --blas).
SMALL_PROBLEM = 1_000_000


def _blas_by_size(fn):
    """Run `fn` with one BLAS thread when its problem (the first argument: X, or a SoftSVMProblem) is small."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = args[0]
        size = first.X.size if isinstance(first, SoftSVMProblem) else np.asarray(first).size
        if size >= SMALL_PROBLEM:
            return fn(*args, **kwargs)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


# --- Q1: multiclass hinge loss ------------------------------------------------------------------


def hinge_terms(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, k): <w_j, x_i> - <w_{y_i}, x_i> + 1[j != y_i]."""
    S = X @ W.T
    n, k = S.shape
    return S - S[np.arange(n), y][:, None] + (np.arange(k)[None, :] != y[:, None])


def multiclass_hinge(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample multiclass hinge loss l(W, x_i, y_i) = max_j (...)."""
    return hinge_terms(W, X, y).max(1)


def zero_one(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample 0-1 loss of the prediction argmax_j <w_j, x>; a tie with the true class counts as an
    error (the hinge bound l >= 0-1 holds for ties too: a tie gives l >= 1)."""
    S = X @ W.T
    true = S[np.arange(len(y)), y]
    S[np.arange(len(y)), y] = -np.inf
    return (S.max(1) >= true).astype(np.float64)


def design_matrix(images: np.ndarray) -> np.ndarray:
    """Images (any pixel dtype) as float64 rows in [0, 1]: the SVMs' design matrix."""
    return unit_float(images).reshape(len(images), -1).astype(np.float64)


def binary_task(X: np.ndarray, labels: np.ndarray, classes: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of two classes, labelled +1 (the first) and -1 (the second)."""
    keep = np.isin(labels, classes)
    return X[keep], np.where(labels[keep] == classes[0], 1.0, -1.0)


def add_bias_feature(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


@dataclass
class MulticlassResult:
    W: np.ndarray
    objective: float  # f(W)
    method: str  # "certificate" (separable: f = 0 = lower bound) or "lp" (HiGHS)
    seconds: float
    history: list[dict] = field(default_factory=list)


@_blas_by_size
def solve_multiclass(
    X: np.ndarray, y: np.ndarray, n_classes: int | None = None, max_lbfgs_iter: int = 500
) -> MulticlassResult:
    """Minimise f exactly.

    f >= 0 everywhere, so any W with all margins <w_{y_i} - w_j, x_i> >= 1 is a minimiser (f = 0).
    First try to find one fast: fit an unregularised softmax model by L-BFGS; if it separates the
    data, scale it until the smallest margin is 1 (a certificate of optimality). Otherwise solve the
    linear program min mean t_i s.t. t_i >= <w_j - w_{y_i}, x_i> + 1 (j != y_i), t >= 0 with HiGHS.
    """
    from scipy.optimize import minimize

    t0 = time.perf_counter()
    k = n_classes or int(y.max()) + 1
    n, p = X.shape
    onehot = np.eye(k)[y]

    def nll(wflat):
        Z = X @ wflat.reshape(k, p).T
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        return -np.log(P[np.arange(n), y] + 1e-300).mean(), ((P - onehot).T @ X / n).ravel()

    fit = minimize(nll, np.zeros(k * p), jac=True, method="L-BFGS-B", options={"maxiter": max_lbfgs_iter})
    W = fit.x.reshape(k, p)
    margins = -(hinge_terms(W, X, y) - (np.arange(k)[None, :] != y[:, None]))  # <w_y - w_j, x>
    margins[np.arange(n), y] = np.inf
    smallest = margins.min()
    if np.isfinite(smallest) and smallest > 0:
        W = W / smallest * (1 + 1e-9)  # margins >= 1 with room for rounding
        f = float(multiclass_hinge(W, X, y).mean())
        if f == 0.0:
            return MulticlassResult(W, f, "certificate", time.perf_counter() - t0)
    W, f = multiclass_lp(X, y, k)
    return MulticlassResult(W, f, "lp", time.perf_counter() - t0)


def multiclass_lp(X: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n, p = X.shape
    i, j = np.nonzero(np.arange(k)[None, :] != y[:, None])  # one constraint per (sample, wrong class)
    m = len(i)
    # variables: W row-major (k * p), then t (n).  row: x_i.w_j - x_i.w_{y_i} - t_i <= -1
    # Built from x's nonzero pixels alone: with every zero stored (2p + 1 entries a row, in dense copies) 20,000
    # MNIST images (180,000 rows) took 23 GB and the kernel killed the run; 81% of MNIST's pixels are 0.
    xi = sp.csr_matrix(X)[i].tocoo()  # row r: x_{i_r}
    r, f, v = xi.row, xi.col, xi.data
    A = sp.csr_matrix(
        (
            np.concatenate([v, -v, -np.ones(m)]),
            (np.concatenate([r, r, np.arange(m)]), np.concatenate([j[r] * p + f, y[i][r] * p + f, k * p + i])),
        ),
        shape=(m, k * p + n),
    )
    c = np.concatenate([np.zeros(k * p), np.full(n, 1.0 / n)])
    res = linprog(c, A_ub=A, b_ub=-np.ones(m), bounds=[(None, None)] * (k * p) + [(0, None)] * n, method="highs")
    if res.status != 0:
        raise RuntimeError(f"HiGHS could not solve the multiclass hinge LP: {res.message}")
    W = res.x[: k * p].reshape(k, p)
    return W, float(multiclass_hinge(W, X, y).mean())


@_blas_by_size
def multiclass_subgradient(
    X: np.ndarray,
    y: np.ndarray,
    steps: int = 2000,
    lr: float = 1.0,
    n_classes: int | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> MulticlassResult:
    """Minimise f by full-batch subgradient descent (the learning view of the same objective).
    A subgradient of l_i is x_i on row argmax_j and -x_i on row y_i (zero when the max is the
    j = y_i term). Stops early when f reaches 0 (every margin >= 1)."""
    t0 = time.perf_counter()
    k = n_classes or int(y.max()) + 1
    n, p = X.shape
    W = np.zeros((k, p))
    history = []
    for step in range(steps + 1):
        terms = hinge_terms(W, X, y)
        jstar = terms.argmax(1)
        loss = terms[np.arange(n), jstar]
        row = {"step": step, "objective": float(loss.mean()), "train_error": float(zero_one(W, X, y).mean())}
        history.append(row)
        if on_step is not None:
            on_step(step, row)
        active = loss > 0
        if not active.any() or step == steps:
            break
        G = np.zeros((k, p))
        np.add.at(G, jstar[active], X[active])
        np.add.at(G, y[active], -X[active])
        W -= lr / n * G
    return MulticlassResult(W, history[-1]["objective"], "subgradient", time.perf_counter() - t0, history)


# --- Q3: soft SVM with l2 penalty on the slacks ------------------------------------------------


@dataclass
class SoftSVMProblem:
    """min 1/2 ||w||^2 [+ 1/2 b^2 when the bias is regularized] + C/2 sum xi^2, y in {-1, +1}.

    bias="free" is the assignment's problem (b unregularised); "regularized" folds b into the
    features as a constant 1 (what liblinear solves); "none" has no bias."""

    X: np.ndarray
    y: np.ndarray
    C: float = 1.0
    bias: Bias = "free"

    def __post_init__(self):
        if not self.C > 0:
            raise MLHWError(f"C must be > 0 (got {self.C})")
        if len(self.X) == 0:
            raise MLHWError("no training data")
        if set(np.unique(self.y)) != {-1.0, 1.0}:
            raise MLHWError("a binary soft SVM needs labels of both classes, -1 and +1")

    @functools.cached_property
    def A(self) -> np.ndarray:
        """Features with the bias column when there is a bias (built once: it can be large)."""
        return self.X if self.bias == "none" else add_bias_feature(self.X)

    @property
    def reg(self) -> np.ndarray:
        """1 for every regularised coordinate of theta = (w, b); 0 for a free bias."""
        r = np.ones(self.A.shape[1])
        if self.bias == "free":
            r[-1] = 0.0
        return r

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        return (theta, 0.0) if self.bias == "none" else (theta[:-1], float(theta[-1]))

    def slacks(self, theta: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, 1.0 - self.y * (self.A @ theta))

    def primal(self, theta: np.ndarray) -> float:
        xi = self.slacks(theta)
        return float(0.5 * np.sum(self.reg * theta**2) + 0.5 * self.C * xi @ xi)

    def dual(self, a: np.ndarray, b: np.ndarray | None = None) -> float:
        """g(a, b) for the free-bias problem (a bias in the features adds sum(a y)^2 / 2 to the kernel)."""
        b = np.zeros_like(a) if b is None else b
        v = self.kernel_features().T @ (a * self.y)
        return float(-0.5 * v @ v - (a + b) @ (a + b) / (2 * self.C) + a.sum())

    def kernel_features(self) -> np.ndarray:
        """The features whose inner products form the dual's kernel: a regularised bias is a feature."""
        return add_bias_feature(self.X) if self.bias == "regularized" else self.X


@dataclass
class PrimalSolution:
    theta: np.ndarray
    objective: float
    iterations: int
    seconds: float
    converged: bool = True  # False: max_iter ran out before the gradient test held


@_blas_by_size
def solve_primal(
    prob: SoftSVMProblem, tol: float = 1e-10, max_iter: int = 100, warm_start: bool = True
) -> PrimalSolution:
    """Newton's method on the (piecewise quadratic, convex) primal with xi eliminated:
    P(theta) = 1/2 theta' R theta + C/2 sum max(0, 1 - y_i a_i.theta)^2.

    The Hessian R + C A_S' A_S (S = samples with margin < 1) is kept up to date with the rows that
    enter or leave S instead of being recomputed, and each step is followed by an exact line search
    (a 1-D Newton iteration on the piecewise quadratic, kept inside a bracket). Converges in a few steps to
    machine precision. Large problems start from the solution on a 1/8 subsample (C scaled by 8): the first
    full Hessian then covers the samples near the margin, not all of them (measured: 2.3 s -> 1.0 s at
    50,000 x 785). C above 1e4 is reached by continuation, C = 1e3, 1e4, ... each warm-started from the last:
    from zero, Newton crawled from kink to kink (digits 3 vs 8, no bias, C = 1e5: 100 steps, objective 39x the
    optimum; with a free bias at C = 1e8 it stopped 0.3% above it and called that converged).
    """
    t0 = time.perf_counter()
    A, y, C = prob.A, prob.y, prob.C
    theta = np.zeros(A.shape[1])
    if warm_start and len(y) >= 20_000:
        pick = np.random.RandomState(0).choice(len(y), len(y) // 8, replace=False)
        small = SoftSVMProblem(prob.X[pick], y[pick], C * 8, prob.bias)
        theta = solve_primal(small, tol=1e-6, warm_start=False).theta
    steps = 0
    c = min(C, 1e3) if C > 1e4 else C
    while True:
        theta, it, converged = _newton(A, y, c, prob.reg, theta, tol, max_iter)
        steps += it
        if c >= C:
            break
        c = min(C, 10 * c)
    return PrimalSolution(theta, prob.primal(theta), steps, time.perf_counter() - t0, converged)


def _newton(A, y, C, r, theta, tol, max_iter) -> tuple[np.ndarray, int, bool]:
    """Newton steps from theta; returns (theta, steps, converged). Converged: the gradient is below tol times
    the size of its terms, or a step on an unchanged set S gained nothing at machine precision (the minimiser
    of that quadratic piece: the optimum, to rounding)."""
    active = np.zeros(len(y), dtype=bool)
    H = np.diag(r).astype(np.float64)
    P, fresh = np.inf, True
    for it in range(max_iter):  # noqa: B007 (the count is returned)
        m = y * (A @ theta)
        now = m < 1
        xi = np.maximum(0.0, 1 - m)
        pull = C * (A.T @ (y * xi))  # one pass over A, no row copies
        g = r * theta - pull
        P_now = 0.5 * (r * theta) @ theta + 0.5 * C * xi @ xi
        # relative to its two terms (equal at the optimum), not to the first gradient: at C = 1e8 that one is
        # 1e8 times larger and the test passed 0.3% above the optimum
        if np.linalg.norm(g) <= tol * max(1.0, np.linalg.norm(r * theta) + np.linalg.norm(pull)):
            return theta, it, True
        stalled = (now == active).all() and P_now >= P * (1 - 1e-15)
        if stalled and fresh:
            return theta, it, True
        P = P_now
        enter, leave = now & ~active, active & ~now
        if stalled:  # the updates' rounding (C |A|^2 against R's 1) bent the step: the Hessian afresh, once
            H = np.diag(r).astype(np.float64) + C * A[now].T @ A[now]
            fresh = True
        elif enter.all():
            H += C * (A.T @ A)
        elif enter.any() or leave.any():
            H += C * A[enter].T @ A[enter] - C * A[leave].T @ A[leave]
            fresh = False
        active = now
        try:
            d = np.linalg.solve(H + 1e-12 * np.eye(len(H)), -g)
        except np.linalg.LinAlgError:
            d = -g
        theta = theta + _line_search(theta, d, m, y * (A @ d), r, C) * d
    return theta, max_iter, False


def _line_search(theta, d, m, z, r, C) -> float:
    """argmin over t >= 0 of P(theta + t d): P' is nondecreasing and piecewise linear in t; 1-D Newton from
    t = 1, bisecting whenever it leaves the bracket (unguarded, it could wander among the kinks)."""
    rd, rtd = (r * d) @ d, (r * theta) @ d

    def slope(t):
        mt = m + t * z
        s = mt < 1
        return rtd + t * rd - C * np.sum((1 - mt[s]) * z[s]), rd + C * np.sum(z[s] ** 2)

    lo, hi = 0.0, 1.0
    for _ in range(60):  # a bracket: P'(hi) >= 0
        if slope(hi)[0] >= 0:
            break
        lo, hi = hi, 2 * hi
    t = 1.0
    for _ in range(200):
        d1, d2 = slope(t)
        if d1 == 0 or d2 <= 0:
            break
        lo, hi = (t, hi) if d1 < 0 else (lo, t)
        nt = t - d1 / d2
        if not lo <= nt <= hi:
            nt = 0.5 * (lo + hi)
        done = abs(nt - t) <= 1e-15 * max(1.0, abs(t))
        t = nt
        if done:
            break
    return t


@dataclass
class DualSolution:
    a: np.ndarray  # multipliers of the margin constraints
    b: np.ndarray  # multipliers of xi >= 0: zero (solve_dual_qp finds it so without assuming it)
    objective: float  # g(a, b)
    theta: np.ndarray  # (w, bias) recovered from a: w = sum a_i y_i x_i
    iterations: int
    seconds: float
    converged: bool = True  # False: max_iter ran out before the active set settled


@_blas_by_size
def solve_dual(prob: SoftSVMProblem, max_iter: int = 200) -> DualSolution:
    """Maximise g(a, b) over a, b >= 0 (with sum a_i y_i = 0 for a free bias) by an exact method
    independent of the primal solver: a primal-dual active-set (semismooth Newton) iteration on
    min 1/2 a'Qa - 1'a, Q = (y y') * K + I/C, whose stationarity is Q a + beta y - 1 = lam,
    lam >= 0 the multipliers of a >= 0. Each step solves the KKT system on the free set exactly.

    The b block is set to 0 here (for a >= 0, dg/db_i = -(a_i + b_i)/C <= 0): Q3(d)'s claim, which
    `solve_dual_qp` checks by solving over a and b together.
    """
    t0 = time.perf_counter()
    n = len(prob.y)
    if n > 6000:
        raise MLHWError(f"the dual solver forms the {n}x{n} kernel: use at most 6,000 samples (got {n})")
    F, y = prob.kernel_features(), prob.y
    Q = (y[:, None] * y[None, :]) * (F @ F.T) + np.eye(n) / prob.C
    equality = prob.bias == "free"
    free = np.ones(n, dtype=bool)
    a, beta, converged = np.zeros(n), 0.0, False
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        S = np.flatnonzero(free)
        a, solved_beta = _free_set_optimum(Q, y, S, equality, np.linalg.solve)
        beta = beta if solved_beta is None else solved_beta
        lam = Q @ a + beta * y - 1.0
        lam[S] = 0.0
        new_free = (a - lam) > 0  # free where a > 0, or where a = 0 but g still increases along a_i
        if np.array_equal(new_free, free):
            converged = True
            break
        free = new_free
    if not converged:  # PDAS can cycle when Q is nearly singular (C >= 1e4 on digits 3 vs 8): the slow, sure method
        a, beta, extra, converged = _primal_active_set(Q, y, equality)
        it += extra
    b = np.zeros(n)
    theta = F.T @ (a * y)
    if equality:
        # on a support vector (Q a)_i + beta y_i = 1 reads y_i (<w, x_i> + beta) = 1 - a_i/C: b = beta
        theta = np.r_[theta, beta]
    return DualSolution(a, b, prob.dual(a, b), theta, it, time.perf_counter() - t0, converged)


def _free_set_optimum(
    Q: np.ndarray, y: np.ndarray, S: np.ndarray, equality: bool, solve
) -> tuple[np.ndarray, float | None]:
    """min 1/2 a'Qa - 1'a with a_i = 0 off the free set S (and y'a = 0): the KKT system on S, by `solve`
    (np.linalg.solve, or least squares where the system may be singular). Returns (a, beta); beta is None when
    there is none to solve for (no equality, or S empty)."""
    a = np.zeros(len(y))
    if not len(S):
        return a, None
    if not equality:
        a[S] = solve(Q[np.ix_(S, S)], np.ones(len(S)))
        return a, None
    K = np.block([[Q[np.ix_(S, S)], y[S, None]], [y[None, S], np.zeros((1, 1))]])
    sol = solve(K, np.r_[np.ones(len(S)), 0.0])
    a[S] = sol[:-1]
    return a, float(sol[-1])


def _primal_active_set(Q: np.ndarray, y: np.ndarray, equality: bool) -> tuple[np.ndarray, float, int, bool]:
    """min 1/2 a'Qa - 1'a over a >= 0 (and y'a = 0) by the primal active-set method (Lawson-Hanson's, with the
    equality): a stays feasible, the objective falls at every step, so it cannot cycle as PDAS can; it takes a
    step per support vector or so. Returns (a, beta, iterations, converged)."""
    n = len(y)
    a, beta, free = np.zeros(n), 0.0, np.zeros(n, dtype=bool)
    scale = max(1.0, float(np.abs(Q).max()))
    if equality:  # one sample of each class: a lone free a_i would be held at 0 by y'a = 0
        free[np.flatnonzero(y > 0)[:1]] = free[np.flatnonzero(y < 0)[:1]] = True
    for it in range(1, 20 * n + 1):
        S = np.flatnonzero(free)
        z, beta_z = _free_set_optimum(Q, y, S, equality, lambda A, b: np.linalg.lstsq(A, b, rcond=None)[0])
        beta_z = 0.0 if beta_z is None else beta_z
        if np.all(z[S] > 0):  # the free set's optimum is feasible: take it, then look for a violated multiplier
            a, beta = z, beta_z
            lam = Q @ a + beta * y - 1.0  # the multipliers of a_i >= 0, for i held at 0
            lam[S] = np.inf
            worst = int(np.argmin(lam))
            if lam[worst] >= -1e-12 * scale:
                return a, beta, it, True
            free[worst] = True
            other = y != y[worst]
            if equality and not np.any(free & other):  # and its partner of the other class, as at the start
                free[np.flatnonzero(other)[np.argmin(lam[other])]] = True
        else:  # walk towards z until a free a_i reaches 0, and hold it there
            down = S[z[S] <= 0]
            gap = a[down] - z[down]
            step = float(np.min(np.where(gap > 0, a[down] / np.where(gap > 0, gap, 1.0), 0.0)))
            a = a + step * (z - a)
            free[down[a[down] <= 1e-15 * max(1.0, float(a.max()))]] = False
            a[~free] = 0.0
    return a, beta, it, False


# The general dual QP (2n variables, SLSQP) on digits 3 vs 8: 0.45 s at n = 120, 4.4 s at 264 (measured).
QP_DUAL_SAMPLES = 120


@_blas_by_size
def solve_dual_qp(prob: SoftSVMProblem) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Q3(d)'s dual exactly as written: maximise g(a, b) over a >= 0 and b >= 0 (and sum a_i y_i = 0 for a free
    bias), all 2n variables, by a general QP method (SLSQP) that knows nothing of b's optimum: it starts from
    b = 1, so a b it returns at 0 is found, not assumed. Returns (a, b, g, SLSQP's success flag).

    b's curvature is 1/C: for C = 100 SLSQP stopped with b ~ 1e-5 (digits 3 vs 8); the solver works on
    b / sqrt(C), whose curvature is 1 (then b < 1e-8 for C = 0.01 .. 1e4, g equal to the active set's to 1e-13)."""
    from scipy.optimize import minimize

    F, y, C = prob.kernel_features(), prob.y, prob.C
    n, s = len(y), float(np.sqrt(C))
    if n > 1500:
        raise MLHWError(f"the explicit dual QP is for small problems: n <= 1500 (got {n})")

    def neg_g(v):
        a, b = v[:n], s * v[n:]
        u = F.T @ (a * y)
        t = a + b
        value = 0.5 * u @ u + t @ t / (2 * C) - a.sum()
        grad_a = y * (F @ u) + t / C - 1.0
        return value, np.r_[grad_a, s * t / C]

    constraints = [{"type": "eq", "fun": lambda v: v[:n] @ y, "jac": lambda v: np.r_[y, np.zeros(n)]}]
    res = minimize(
        neg_g,
        np.r_[np.zeros(n), np.ones(n) / s],  # b = 1
        jac=True,
        method="SLSQP",
        bounds=[(0.0, None)] * (2 * n),
        constraints=constraints if prob.bias == "free" else [],
        options={"maxiter": 2000, "ftol": 1e-13},
    )
    return res.x[:n], s * res.x[n:], -float(res.fun), bool(res.success)


@_blas_by_size
def solve_explicit_qp(prob: SoftSVMProblem, nonnegative_slack: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The primal exactly as written, variables (theta, xi) and one linear constraint per sample,
    solved by a general QP method (SLSQP), with or without the extra constraint xi >= 0 (Q3(a))."""
    from scipy.optimize import minimize

    A, y, C, r = prob.A, prob.y, prob.C, prob.reg
    n, q = A.shape
    if n + q > 3000:
        raise MLHWError(f"the explicit QP is for small problems: n + features <= 3000 (got {n + q})")
    # in u = sqrt(C) xi the objective is 1/2 ||w||^2 + 1/2 ||u||^2, as well scaled for any C; in xi itself its
    # curvature C made SLSQP stop far from the optimum at large C (Q3(a)'s difference read 1.5e7 at C = 1e6)
    s = np.sqrt(C)
    M = np.hstack([y[:, None] * A, np.eye(n) / s])  # M v >= 1

    D = np.r_[r * np.ones(q), np.ones(n)]  # the objective's diagonal: 1/2 v' diag(D) v

    def obj(v):
        return 0.5 * np.sum(D * v**2)

    if nonnegative_slack:  # u >= 0 as constraint rows: as SLSQP bounds it stopped 2.5e-6 above the optimum
        M = np.vstack([M, np.hstack([np.zeros((n, q)), np.eye(n)])])
    b = (np.arange(len(M)) < n).astype(np.float64)
    res = minimize(
        obj,
        np.r_[np.zeros(q), np.full(n, s)],
        jac=lambda v: D * v,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda v: M @ v - b, "jac": lambda v: M}],
        options={"maxiter": 2000, "ftol": 1e-15},
    )
    v = _crossover(D, M, b, res.x, obj)
    return v[:q], v[q:] / s, float(obj(v))


def _crossover(D: np.ndarray, M: np.ndarray, b: np.ndarray, v: np.ndarray, obj) -> np.ndarray:
    """min 1/2 v' diag(D) v s.t. M v >= b, refined from SLSQP's point v: the KKT system on the constraints
    active there, kept if it is feasible, its multipliers are >= 0 and it is no worse (then it is the optimum).
    SLSQP can stop short ("positive directional derivative"): with no bias at C = 100 it stopped 1.1e-5 above
    the optimum on one BLAS thread and 2e-12 off on two; the active set it found was right."""
    act = M @ v - b <= 1e-7 * np.maximum(1.0, np.abs(b))
    Ma, m, k = M[act], len(v), int(act.sum())
    K = np.block([[np.diag(D), -Ma.T], [Ma, np.zeros((k, k))]])
    sol = np.linalg.lstsq(K, np.r_[np.zeros(m), b[act]], rcond=None)[0]
    w, lam = sol[:m], sol[m:]
    feasible = (M @ w - b).min() >= -1e-12 * max(1.0, np.abs(b).max())
    dual_ok = k == 0 or lam.min() >= -1e-10 * max(1.0, np.abs(lam).max())
    return w if feasible and dual_ok and obj(w) <= obj(v) else v


def liblinear_theta(prob: SoftSVMProblem, tol: float = 1e-10, dual: bool = True) -> np.ndarray:
    """scikit-learn's LinearSVC (liblinear) on the same objective. liblinear minimises
    1/2 ||w||^2 + C' sum max(0, 1 - y w.x)^2 and regularises its intercept, so: C' = C / 2, no
    intercept of its own, and the bias (when regularized) folded into the features on both sides."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if prob.bias == "free":
        raise MLHWError("liblinear regularises the bias: compare with bias='regularized' or 'none'")
    # random_state: liblinear's dual coordinate descent visits the samples in a random order, taken from numpy's
    # global generator when it is not given one: its objective moved in its last bit (1e-16) from one reproduction
    # to the next on one machine, after whatever had drawn from that generator before it (a review, 2026-11-30)
    clf = LinearSVC(
        C=prob.C / 2,
        loss="squared_hinge",
        penalty="l2",
        dual=dual,
        fit_intercept=False,
        tol=tol,
        max_iter=1_000_000,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(prob.A, prob.y)
    return clf.coef_.ravel().astype(np.float64)


def kkt_report(prob: SoftSVMProblem, primal: PrimalSolution, dual: DualSolution) -> dict[str, float]:
    """How far the primal and dual optima are from satisfying the optimality relations together."""
    F = prob.kernel_features()
    y, C = prob.y, prob.C
    w_primal = primal.theta if prob.bias != "free" else primal.theta[:-1]
    w_dual = F.T @ (dual.a * y)
    xi = prob.slacks(primal.theta)
    margins = y * (prob.A @ primal.theta)
    scale = max(1.0, abs(primal.objective))
    return {
        "primal_objective": primal.objective,
        "dual_objective": dual.objective,
        "duality_gap": (primal.objective - dual.objective) / scale,
        # the dual at the primal's multipliers a = C xi: equal to the primal only if the primal is the optimum
        # (weak duality), so it says which solver stopped short when the two disagree
        "primal_certificate_gap": (primal.objective - prob.dual(C * xi)) / scale,
        "w_residual": float(np.linalg.norm(w_primal - w_dual) / max(1e-300, np.linalg.norm(w_primal))),
        "bias_residual": abs(prob.split(primal.theta)[1] - prob.split(dual.theta)[1]),
        "xi_residual": float(np.max(np.abs(xi - (dual.a + dual.b) / C))),
        # a_i (m_i - 1 + xi_i) = 0 with the primal's margins and the dual's slacks (a + b) / C: with the primal's
        # own xi = max(0, 1 - m) the bracket is 0 inside the margin by construction, and a scaled a passed
        "complementary_slackness": float(np.max(np.abs(dual.a * (margins - 1 + (dual.a + dual.b) / C)))),
        "equality_residual": abs(float(dual.a @ y)) if prob.bias == "free" else 0.0,  # sum a_i y_i = 0
        "min_a": float(dual.a.min()),
        "converged": float(primal.converged and dual.converged),
        "support_vectors": int(np.sum(dual.a > 1e-9 * max(1.0, dual.a.max()))),
    }


def binary_error(theta: np.ndarray, A: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.where(A @ theta >= 0, 1.0, -1.0) != y))


def _dual_qp_rows(y: np.ndarray) -> np.ndarray:
    """The rows of Q3(d)'s sub-problem: the first QP_DUAL_SAMPLES; if those hold one class alone (data sorted by
    label), the first QP_DUAL_SAMPLES / 2 of each class, in their order."""
    rows = np.arange(min(len(y), QP_DUAL_SAMPLES))
    if len(np.unique(y[rows])) < 2:
        rows = np.sort(np.concatenate([np.flatnonzero(y == c)[: QP_DUAL_SAMPLES // 2] for c in np.unique(y)]))
    return rows


# |primal - dual| / max(1, |primal|) above this is a failed Q3 run (at C = 1e8 Newton once stopped 0.3% above the
# optimum and said it had converged; the theory's own check on small problems asks for 1e-10)
GAP_TOLERANCE = 1e-8


def soft_failure(report: dict) -> str | None:
    """Why a Q3 report (soft_report's, or a run record of it) is not an optimum; None when it is. The one rule of
    `mlhw svm soft`, `reproduce` and `mlhw check`: a solver that did not converge, or two that disagree."""
    if report.get("primal_converged") == 0.0:
        return "Newton did not converge: the primal objective is not the optimum"
    if report.get("converged") == 0.0:
        return "a solver did not converge: the dual and the gap are not an optimum"
    gap = report.get("duality_gap")
    if gap is not None and not abs(gap) <= GAP_TOLERANCE:  # (NaN fails too)
        certified = abs(report.get("primal_certificate_gap", float("nan"))) <= GAP_TOLERANCE
        which = (
            f"the dual's active set stopped short (the primal is the optimum: the dual at a = C xi equals it to "
            f"{abs(report['primal_certificate_gap']):.0e})"
            if certified
            else "one solver stopped short of the optimum"
        )
        return f"the primal and the dual differ by {gap:.1e} (relative; tolerance {GAP_TOLERANCE:g}): {which}"
    return None


# The active-set dual (and with it the duality gap and the KKT residuals) is solved up to this many samples
DUAL_MAX_SAMPLES = 6000
# Q3(a)'s explicit QP (SLSQP, dense) on the whole problem up to this many variables (samples + features); above,
# on Q3(d)'s sub-problem, since the claim holds for any data: on MNIST 3 vs 8 (785 features) the whole took 76 of
# 84 s at 977 samples and 8 minutes at 1,987, in silence; the sub-problem (120 samples) takes 3-8 s
EXPLICIT_QP_MAX_VARIABLES = 1000


def soft_stages(n: int, q: int) -> list[str]:
    """What soft_report computes for n samples of q features (q: with the bias column, if any), in order."""
    whole = n + q <= EXPLICIT_QP_MAX_VARIABLES
    return (
        ["primal (Newton)"]
        + (["dual (active set)"] if n <= DUAL_MAX_SAMPLES else [])
        + [f"Q3(a): the explicit QP with and without xi >= 0 ({'all samples' if whole else 'a sub-problem'})"]
        + (["Q3(d): the dual by a general QP (a sub-problem)"] if n > 1 else [])
        + ["liblinear"]
    )


def soft_skipped(n: int) -> str | None:
    """Why soft_report solves no dual (active set), and so reports no duality gap or KKT residuals, at n samples,
    and the way to them; None when it does."""
    if n <= DUAL_MAX_SAMPLES:
        return None
    return f"not solved: {n:,} samples > {DUAL_MAX_SAMPLES:,} (a smaller --train-size)"


@_blas_by_size
def soft_report(
    X: np.ndarray,
    y: np.ndarray,
    C: float,
    bias: str = "free",
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    on_stage: Callable[[int, str], None] | None = None,
) -> dict[str, float]:
    """Q3 in full, computed once for `mlhw svm soft`, `reproduce` and `mlhw theory`: the primal (Newton)
    and the dual (active set) solved independently, the duality gap and KKT residuals, Q3(a) (the
    explicit QP with and without xi >= 0: on the whole problem when small, else on Q3(d)'s sub-problem) and the
    agreement with liblinear on the same objective (the bias folded into the features on both sides, since
    liblinear regularises it), and Q3(d): the dual over a and b by a general QP (a sub-problem: solve_dual_qp is
    slow) against the active set. `on_stage(i, name)`: called as the i-th of soft_stages begins."""
    prob = SoftSVMProblem(X, y, C, bias)
    stages = iter(enumerate(soft_stages(len(y), prob.A.shape[1])))

    def stage() -> None:
        i, name = next(stages)
        if on_stage is not None:
            on_stage(i, name)

    stage()
    primal = solve_primal(prob)
    report: dict[str, float] = {
        "n_train": len(y),
        "primal_objective": primal.objective,
        "primal_seconds": primal.seconds,
        "newton_iterations": primal.iterations,
        "primal_converged": float(primal.converged),  # (the dual, and so "converged", only up to 6,000 samples)
        "train_error": binary_error(primal.theta, prob.A, y),
    }
    if X_test is not None and y_test is not None:
        A = X_test if bias == "none" else add_bias_feature(X_test)
        report["n_test"] = len(y_test)
        report["test_error"] = binary_error(primal.theta, A, y_test) if len(y_test) else float("nan")
    if len(y) <= DUAL_MAX_SAMPLES:
        stage()
        dual = solve_dual(prob)
        report |= kkt_report(prob, primal, dual) | {"dual_seconds": dual.seconds}
    # Q3(a) and Q3(d) on (at most) QP_DUAL_SAMPLES samples: their claims hold for any data of both classes
    sub = SoftSVMProblem(X[rows], y[rows], C, bias) if len(rows := _dual_qp_rows(y)) < len(y) else prob
    stage()
    whole = len(y) + prob.A.shape[1] <= EXPLICIT_QP_MAX_VARIABLES
    at, newton = (prob, primal) if whole else (sub, solve_primal(sub))
    _, _, f_plain = solve_explicit_qp(at, nonnegative_slack=False)
    _, _, f_nonneg = solve_explicit_qp(at, nonnegative_slack=True)
    report |= {
        "qp_n": len(at.y),
        "qp_objective": f_plain,
        "qp_nonneg_objective": f_nonneg,
        "q3a_relative_difference": abs(f_nonneg - f_plain) / max(1.0, abs(f_plain)),
        "qp_vs_newton_relative_difference": abs(f_plain - newton.objective) / max(1.0, abs(newton.objective)),
    }
    if len(y) > 1:
        stage()
        a, b, g, ok = solve_dual_qp(sub)
        g_active = solve_dual(sub).objective
        report |= {
            "qp_dual_n": len(sub.y),
            "qp_dual_max_beta": float(np.max(b) / max(1.0, np.max(a))),
            "qp_dual_vs_active_set": abs(g - g_active) / max(1.0, abs(g)),
            # SLSQP's own flag; it can say no at an optimum it reached (a line search that cannot improve
            # on 1e-14): its result is judged by qp_dual_vs_active_set instead
            "qp_dual_success": float(ok),
        }
    stage()
    ref = prob if bias != "free" else SoftSVMProblem(X, y, C, "regularized")
    ours = primal.objective if ref is prob else solve_primal(ref).objective
    lib = ref.primal(liblinear_theta(ref))
    report |= {"liblinear_objective": lib, "liblinear_relative_difference": abs(lib - ours) / max(1.0, abs(ours))}
    return report


@_blas_by_size
def multiclass_report(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    method: str = "exact",
    steps: int = 2000,
    lr: float = 1.0,
    on_step=None,
) -> dict[str, float]:
    """Q1 in full: f*, training and test error, and how often the 0-1 loss exceeds the hinge (never)."""
    if method == "exact":
        sol = solve_multiclass(X, y, n_classes)
    else:
        sol = multiclass_subgradient(X, y, steps, lr, n_classes, on_step)
    hinge, err01 = multiclass_hinge(sol.W, X, y), zero_one(sol.W, X, y)
    return {
        "objective": sol.objective,
        "train_error": float(err01.mean()),
        "test_error": float(zero_one(sol.W, X_test, y_test).mean()),
        "bound_violations": int(np.sum(err01 > hinge)),
        "seconds": sol.seconds,
        "method": sol.method,
        "steps": len(sol.history) - 1 if sol.history else 0,
    }
