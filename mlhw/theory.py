"""The theory questions (Q1-Q4) as executable checks: each claim, a numerical test, an error, a tolerance.

`run_checks()` returns one `Check` per claim and dataset; `mlhw theory` prints and logs them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mlhw import svm


@dataclass
class Check:
    question: str
    claim: str
    check: str
    data: str
    max_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_error) and self.max_error <= self.tolerance)

    def row(self) -> dict:
        return asdict(self) | {"passed": self.passed}


# --- Q2: max(x1, x2) as a one-hidden-layer ReLU network ---------------------------------------

MAX_NET_HIDDEN = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]])  # rows: hidden units
MAX_NET_OUTPUT = np.array([1.0, 1.0, 1.0, -1.0])


def max_net(x: np.ndarray) -> np.ndarray:
    """x: (n, 2). Hidden relu((x1+x2)/2), relu((x1-x2)/2), relu((-x1+x2)/2), relu((-x1-x2)/2);
    output z1 + z2 + z3 - z4 = (x1+x2)/2 + |x1-x2|/2 = max(x1, x2)."""
    return np.maximum(x @ MAX_NET_HIDDEN.T, 0.0) @ MAX_NET_OUTPUT


def max_net_inputs(seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    edge = [0.0, 1.0, -1.0, 1e-12, -1e-12, 1e6, -1e6, 3.5, -3.5]
    grid = np.array([(a, b) for a in edge for b in edge])  # ties, mixed signs, large magnitudes
    scales = 10.0 ** rng.uniform(-6, 6, size=(5000, 1))
    return np.vstack([grid, rng.randn(5000, 2), rng.randn(5000, 2) * scales])


def check_q2() -> list[Check]:
    x = max_net_inputs()
    err = np.abs(max_net(x) - x.max(1)) / np.maximum(1.0, np.abs(x).max(1))
    return [
        Check(
            "Q2",
            "relu net z1+z2+z3-z4 = max(x1,x2)",
            f"rel. error vs max, {len(x)} inputs, ties, |x|<=1e6",
            "random",
            float(err.max()),
            1e-14,
        )
    ]


# --- Q4: gradient of cross-entropy over softmax -----------------------------------------------


def softmax(w: np.ndarray) -> np.ndarray:
    e = np.exp(w - w.max(-1, keepdims=True))  # shift: stable for large logits
    return e / e.sum(-1, keepdims=True)


def xent(w: np.ndarray, y: np.ndarray) -> float:
    """-y . ln softmax(w), computed stably as logsumexp(w) - y.w (y one-hot)."""
    m = w.max()
    return float(m + np.log(np.exp(w - m).sum()) - y @ w)


def xent_grad(w: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The write-up's result: grad_w of -y . ln softmax(w) is softmax(w) - y."""
    return softmax(w) - y


def check_q4(trials: int = 60, seed: int = 0) -> list[Check]:
    import torch

    rng = np.random.RandomState(seed)
    auto_err, fd_err = 0.0, 0.0
    for t in range(trials):
        d = rng.randint(2, 60)
        scale = [1.0, 10.0, 1000.0][t % 3]  # includes logits large enough to overflow a naive exp
        w = rng.randn(d) * scale
        y = np.eye(d)[rng.randint(d)]
        g = xent_grad(w, y)
        wt = torch.tensor(w, requires_grad=True)
        loss = -(torch.tensor(y) * torch.log_softmax(wt, 0)).sum()
        (auto,) = torch.autograd.grad(loss, wt)
        auto_err = max(auto_err, float(np.abs(g - auto.numpy()).max()))
        h = 1e-6 * max(1.0, scale)
        fd = np.array([(xent(w + h * e, y) - xent(w - h * e, y)) / (2 * h) for e in np.eye(d)])
        fd_err = max(fd_err, float(np.abs(g - fd).max()))
    claim = "grad -y.ln softmax(w) = softmax(w)-y"
    return [
        Check("Q4", claim, f"vs autograd, {trials} w, |w| to 3e3", "random", auto_err, 1e-12),
        Check("Q4", claim, "vs central differences", "random", fd_err, 1e-5),
    ]


def check_backprop(seed: int = 0) -> list[Check]:
    """Q4's delta at work: Part 1's hand-written backprop (mlhw.mlp.Network.backprop: delta = softmax(z) - y at the
    output, delta W * relu'(z) below) against autograd and central differences, on the assignment's [784, 40, 10]
    network with its N(0, 1) initialisation, float64, three networks of a batch of 10 each."""
    import torch

    from mlhw.mlp import Network

    net = Network([784, 40, 10], replicas=1, seeds=[seed, seed + 1, seed + 2], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 10, 784, generator=g, dtype=torch.float64)  # each network its own batch, pixels in [0, 1]
    labels = torch.randint(0, 10, (3, 10), generator=g)
    y = torch.nn.functional.one_hot(labels, 10).to(torch.float64)
    hand = [t for pair in net.backprop(x, y) for t in pair]
    params = [p.clone().requires_grad_() for p in net.params]

    def summed_loss(ps) -> torch.Tensor:  # the plain forward, cross-entropy summed over each batch
        h = torch.relu(torch.baddbmm(ps[1], x, ps[0].transpose(1, 2)))
        z = torch.baddbmm(ps[3], h, ps[2].transpose(1, 2))
        return torch.nn.functional.cross_entropy(z.reshape(-1, 10), labels.reshape(-1), reduction="sum")

    auto = torch.autograd.grad(summed_loss(params), params)
    auto_err = max(float((h - a).norm() / a.norm().clamp_min(1e-300)) for h, a in zip(hand, auto))
    rng, fd_err, eps = np.random.RandomState(seed), 0.0, 1e-6
    with torch.no_grad():
        for _ in range(30):  # central differences at random weights and biases of every layer
            k = rng.randint(len(params))
            i = tuple(rng.randint(n) for n in params[k].shape)
            base = params[k][i].item()
            params[k][i] = base + eps
            up = summed_loss(params).item()
            params[k][i] = base - eps
            down = summed_loss(params).item()
            params[k][i] = base
            scale = max(1.0, float(hand[k].abs().max()))
            fd_err = max(fd_err, abs((up - down) / (2 * eps) - hand[k][i].item()) / scale)
    claim = "Part 1 backprop = the gradient"
    what = "[784, 40, 10], N(0, 1), float64, 3 x batch 10"
    return [
        Check("Q4", claim, f"vs autograd, rel. norm, {what}", "random", auto_err, 1e-12),
        Check("Q4", claim, "vs central differences, 30 weights", "random", fd_err, 1e-6),
    ]


# --- Q1: multiclass hinge loss -----------------------------------------------------------------


def separable_blobs(n: int = 300, k: int = 4, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated Gaussian blobs (with a bias feature): linearly separable by construction."""
    rng = np.random.RandomState(seed)
    centers = rng.randn(k, d) * 10
    y = rng.randint(0, k, n)
    return svm.add_bias_feature(centers[y] + rng.randn(n, d)), y


def svm_f(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Q1's objective f(W): the mean multiclass hinge."""
    return float(svm.multiclass_hinge(W, X, y).mean())


def q1_holds(report: dict) -> bool:
    """Q1's claims on one solved problem (`svm.multiclass_report`): the 0-1 loss never exceeds the hinge, and
    a mean hinge of 0 means zero training error (f = 0 => every sample classified right)."""
    return report["bound_violations"] == 0 and (report["objective"] > 0 or report["train_error"] == 0)


def check_q1(X: np.ndarray, y: np.ndarray, name: str, seed: int = 0) -> list[Check]:
    sol = svm.solve_multiclass(X, y)
    # a second minimiser, found without the certificate's scaling (which has zero error by construction): the
    # linear program's, by HiGHS. "Every minimiser has zero training error" is then tested on one that could fail
    W_lp, _ = (sol.W, sol.objective) if sol.method == "lp" else svm.multiclass_lp(X, y, sol.W.shape[0])
    minimisers = {sol.method: sol.W, "lp": W_lp}
    rng = np.random.RandomState(seed)
    # the minimiser and 20 random W. hinge >= 0-1 loss: `worst` must be <= 0. f = 0 => zero error, sample by
    # sample (f = 0 is every sample's hinge at 0): the 0-1 loss where the hinge is 0, which at the minimiser of
    # separable data is its training error, and on any data still a claim
    zero = 1e-9  # a margin scaled to exactly 1 may round to a hinge of 1e-16
    worst, wrong_at_zero = -np.inf, 0.0
    for W in [sol.W] + [rng.randn(*sol.W.shape) * rng.choice([0.01, 1.0, 100.0]) for _ in range(20)]:
        h, e = svm.multiclass_hinge(W, X, y), svm.zero_one(W, X, y)
        worst = max(worst, float((e - h).max()))
        wrong_at_zero = max(wrong_at_zero, float(e[h <= zero].max(initial=0.0)))
    # (the premise, f = 0: on data that is not separable no minimiser reaches it and the claim says nothing)
    at_min = [float(svm.zero_one(W, X, y).mean()) for W in minimisers.values() if svm_f(W, X, y) <= zero] or [0.0]
    which = ", ".join(f"{m} ({'HiGHS' if m == 'lp' else 'scaled softmax fit'})" for m in minimisers)
    return [
        Check("Q1", "separable: min f = 0", f"f* ({sol.method})", name, float(sol.objective), 0.0),
        Check(
            "Q1", "f = 0 => zero training error", f"training error of the minimisers: {which}", name, max(at_min), 0.0
        ),
        Check("Q1", "f = 0 => zero training error", "0-1 loss where hinge = 0, 21 W", name, wrong_at_zero, 0.0),
        Check("Q1", "hinge >= 0-1 loss pointwise", "max(0-1 - hinge), 21 W", name, max(0.0, worst), 0.0),
    ]


# --- Q3: soft SVM with l2 slack penalty, primal and dual ---------------------------------------


def random_multipliers(y: np.ndarray, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """alpha >= 0 with sum alpha_i y_i = 0 (else the Lagrangian is unbounded below in b), and beta >= 0."""
    a = np.abs(rng.randn(len(y)))
    pos, neg = y > 0, y < 0
    a[neg] *= a[pos].sum() / a[neg].sum()
    return a, np.abs(rng.randn(len(y)))


def lagrangian_minimum(
    X: np.ndarray, y: np.ndarray, C: float, a: np.ndarray, b: np.ndarray, bias: float | None = None
) -> float:
    """min over (w, bias, xi) of Q3(b)'s Lagrangian
        L = 1/2 ||w||^2 + C/2 sum xi^2 - sum a_i (y_i (<w, x_i> + bias) - 1 + xi_i) - sum b_i xi_i
    found numerically (scipy's L-BFGS-B on torch autograd's gradients, from zero), without (c)'s derivation of its
    minimiser; with `bias` given, the minimum over (w, xi) alone at that bias. (torch's own LBFGS found the same to
    1e-16, but its first use imports torch._dynamo: 1.3-1.7 s of the theory unit on the 2-core CPU.)"""
    import torch
    from scipy.optimize import minimize

    Xt, yt, at, bt = (torch.as_tensor(v, dtype=torch.float64) for v in (X, y, a, b))
    d, n, free = X.shape[1], len(y), bias is None

    def lagrangian(z: np.ndarray) -> tuple[float, np.ndarray]:
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        w, xi = zt[:d], zt[d : d + n]
        t = zt[d + n] if free else torch.tensor(float(bias), dtype=torch.float64)
        value = 0.5 * w @ w + 0.5 * C * xi @ xi - at @ (yt * (Xt @ w + t) - 1 + xi) - bt @ xi
        value.backward()
        return float(value.detach()), zt.grad.numpy().copy()

    found = minimize(
        lagrangian,
        np.zeros(d + n + free),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 0.0, "gtol": 1e-13, "maxcor": 20},
    )
    return float(found.fun)


def dual_function_error(X: np.ndarray, y: np.ndarray, trials: int = 5, seed: int = 0) -> float:
    """Q3(b) -> (c): the closed form g(a, b) against the Lagrangian's numerical minimum, at random multipliers and
    a random C in [0.1, 10] (not only at the optimum, where strong duality already ties g to the primal; and not at
    C = 1, where 1/(2C) and C/2 agree): the largest relative gap."""
    rng = np.random.RandomState(seed)
    worst = 0.0
    for _ in range(trials):
        a, b = random_multipliers(y, rng)
        C = float(10 ** rng.uniform(-1, 1))
        g = svm.SoftSVMProblem(X, y, C, "free").dual(a, b)
        worst = max(worst, abs(lagrangian_minimum(X, y, C, a, b) - g) / max(1.0, abs(g)))
    return worst


def unbounded_slope_error(X: np.ndarray, y: np.ndarray, trials: int = 3, seed: int = 0, far: float = 1e4) -> float:
    """Q3(b): where sum a_i y_i != 0 the Lagrangian has no minimum, since the bias can make it as small as one
    likes. At random multipliers a, b >= 0 with sum a_i y_i = s != 0 (almost surely), L's numerical minimum over
    (w, xi) at bias t falls along t = sign(s) * far, ... without bound, by |s| per unit of bias: the largest
    relative error of that slope (measured between t = 0 and t = sign(s) * far) against -|s|."""
    rng = np.random.RandomState(seed)
    worst = 0.0
    for _ in range(trials):
        a, b = np.abs(rng.randn(len(y))), np.abs(rng.randn(len(y)))
        s, C = float(a @ y), float(10 ** rng.uniform(-1, 1))
        worst = max(worst, abs(lagrangian_fall(X, y, C, a, b, math.copysign(far, s)) + abs(s)) / abs(s))
    return worst


def lagrangian_fall(X: np.ndarray, y: np.ndarray, C: float, a: np.ndarray, b: np.ndarray, t: float) -> float:
    """How L's minimum over (w, xi) changes per unit of bias between bias 0 and bias t (negative: it falls)."""
    return (lagrangian_minimum(X, y, C, a, b, bias=t) - lagrangian_minimum(X, y, C, a, b, bias=0.0)) / abs(t)


def check_q3(X: np.ndarray, y: np.ndarray, name: str, C: float = 1.0) -> list[Check]:
    k = svm.soft_report(X, y, C, "free")
    return [
        Check(
            "Q3(a)",
            "xi >= 0 leaves the optimum",
            "QP optima with/without xi>=0",
            name,
            k["q3a_relative_difference"],
            1e-8,
        ),
        Check(
            "Q3(a)",
            "xi eliminated: same optimum",
            "explicit QP vs Newton",
            name,
            k["qp_vs_newton_relative_difference"],
            1e-8,
        ),
        Check(
            "Q3(b,c)",
            "g(a, b) = min over w, b, xi of the Lagrangian",
            "rel. diff: g's formula vs L-BFGS on L, 5 random (a, b, C)",
            name,
            dual_function_error(X, y),
            1e-8,
        ),
        Check(
            "Q3(b)",
            "sum a_i y_i != 0: L has no minimum",
            "rel. err.: L's fall per unit bias vs |sum a_i y_i|, 3 random (a, b, C)",
            name,
            unbounded_slope_error(X, y),
            1e-8,
        ),
        Check("Q3(c,d)", "strong duality", "rel. gap: Newton vs dual", name, abs(k["duality_gap"]), 1e-10),
        Check("Q3(c)", "w = sum alpha_i y_i x_i", "rel. norm of difference", name, k["w_residual"], 1e-8),
        Check("Q3(c)", "bias from the dual = bias primal", "|b_primal - b_dual|", name, k["bias_residual"], 1e-8),
        Check("Q3(c)", "xi = (alpha + beta)/C", "max |xi - alpha/C| (beta = 0: Q3(d))", name, k["xi_residual"], 1e-8),
        Check(
            "Q3(d)",
            "beta = 0 at the optimum",
            f"max beta / max(1, max alpha), general QP, n={k['qp_dual_n']}",
            name,
            k["qp_dual_max_beta"],
            1e-6,
        ),
        Check(
            "Q3(d)",
            "max over alpha, beta = max over alpha",
            "rel. diff: general QP vs active set",
            name,
            k["qp_dual_vs_active_set"],
            1e-8,
        ),
        Check("Q3(c)", "sum alpha_i y_i = 0 (free bias)", "|sum alpha_i y_i|", name, k["equality_residual"], 1e-8),
        Check("Q3", "both solvers converged", "1 if either stopped short, else 0", name, 1.0 - k["converged"], 0.0),
        Check(
            "Q3(d)",
            "complementary slackness",
            "max |alpha_i(m_i - 1 + xi_i)|, dual xi",
            name,
            k["complementary_slackness"],
            1e-8,
        ),
        Check(
            "Q3",
            "= liblinear (LinearSVC)",
            "rel. objective diff, bias folded",
            name,
            k["liblinear_relative_difference"],
            1e-6,
        ),
    ]


def run_checks(digits=None) -> list[Check]:
    """Every check, on small generated data and (when given, a Dataset) on digits."""
    checks = check_q2() + check_q4() + check_backprop()
    checks += check_q1(*separable_blobs(), "blobs")
    rng = np.random.RandomState(1)
    Xg = rng.randn(120, 6)
    yg = np.where(Xg @ rng.randn(6) + 0.5 * rng.randn(120) > 0, 1.0, -1.0)  # overlapping classes
    checks += check_q3(Xg, yg, "overlapping")
    if digits is not None:
        X = svm.design_matrix(digits.train.x)
        checks += check_q1(svm.add_bias_feature(X), digits.train.y, "digits")
        checks += check_q3(*svm.binary_task(X, digits.train.y, (3, 8)), "digits 3v8")
    return checks
