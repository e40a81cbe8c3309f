"""Start-up benchmark: what a command pays before its first run, against its peers measured in the same run.

Each case runs in fresh processes (start-up costs are first-time costs), alternated, best and median of --rounds:

- a new SQLite store: MLflow's own schema migrations (an empty cache) against a copy of the cached empty database
  (mlhw.store_template), both through mlhw.store.Store;
- what `reproduce --jobs N` imports before it starts its workers on a new store (the CLI, the executors, the
  experiments file's loader, the results layout, the store) against the same with MLflow, which mlhw.store imported
  until MLflow was imported where a client is made;
- Q3(b,c)'s numerical Lagrangian minimum on digits 3 vs 8, first call of a process: scipy's L-BFGS-B on torch
  autograd's gradients (mlhw.theory.lagrangian_minimum) against torch.optim.LBFGS (whose first use imports
  torch._dynamo), the same minimum to 1e-12 or the script says so.

    uv run python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

STORE = """
import os, sys, time
from mlhw.store import Store, import_mlflow
import_mlflow()
import mlflow.store.tracking.sqlalchemy_store  # the imports either way: not timed
t = time.perf_counter()
Store(f"sqlite:///{sys.argv[1]}/mlflow.db")
print(time.perf_counter() - t)
"""

BEFORE_WORKERS = "import mlhw.cli.reproduce, mlhw.executors, mlhw.experiments, mlhw.layout, mlhw.store"
IMPORTS = {"with mlflow": BEFORE_WORKERS + "\nimport mlflow", "without": BEFORE_WORKERS}

LAGRANGIAN = """
import sys, time
import numpy as np
import torch
from mlhw import svm, theory
from mlhw.data import load_digits_data, unit_float
digits = load_digits_data()
X = unit_float(digits.train.x).reshape(len(digits.train), -1).astype(np.float64)
X, y = svm.binary_task(X, digits.train.y, (3, 8))
a, b = theory.random_multipliers(y, np.random.RandomState(0))
C = 0.7


def torch_lbfgs():
    Xt, yt, at, bt = (torch.as_tensor(v, dtype=torch.float64) for v in (X, y, a, b))
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    xi = torch.zeros(len(y), dtype=torch.float64, requires_grad=True)

    def lagrangian():
        return 0.5 * w @ w + 0.5 * C * xi @ xi - at @ (yt * (Xt @ w + bias) - 1 + xi) - bt @ xi

    opt = torch.optim.LBFGS([w, bias, xi], lr=1, max_iter=1000, tolerance_grad=1e-13, tolerance_change=0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = lagrangian()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return float(lagrangian())


solve = torch_lbfgs if sys.argv[1] == "torch" else lambda: theory.lagrangian_minimum(X, y, C, a, b)
t = time.perf_counter()
value = solve()
seconds = time.perf_counter() - t
g = svm.SoftSVMProblem(X, y, C, "free").dual(a, b)
print(seconds, abs(value - g) / max(1.0, abs(g)))
"""


def python(code: str, *args: str, env: dict | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env or os.environ
    )
    return out.stdout.strip()


def seconds_of(code: str) -> float:
    return float(python(f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"))


def row(name: str, times: list[float], peer: list[float] | None = None) -> None:
    best, median = min(times), statistics.median(times)
    ratio = "" if peer is None else f"{statistics.median(peer) / median:6.1f}x"
    print(f"  {name:<62} best {best:7.3f} s  median {median:7.3f} s  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    work = tempfile.mkdtemp(prefix="mlhw-startup-")
    warm_cache = os.path.join(work, "warm-cache")
    new, copied = [], []
    for i in range(rounds + 1):  # the first copy's round makes the template: not counted
        for kind, times in (("new", new), ("copied", copied)):
            folder = os.path.join(work, f"{kind}{i}")
            os.mkdir(folder)
            cache = os.path.join(work, f"cold-cache{i}") if kind == "new" else warm_cache
            seconds = float(python(STORE, folder, env={**os.environ, "MLHW_CACHE_DIR": cache}))
            if i:
                times.append(seconds)
    print(f"a new SQLite store (mlhw.store.Store, MLflow already imported), {rounds} fresh processes each")
    row("MLflow's migrations (no template in the cache)", new)
    row("a copy of the cached empty database", copied, new)

    took: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(rounds):
        for name, code in IMPORTS.items():
            took[name].append(seconds_of(code))
    print("\nwhat `reproduce --jobs N` imports before it starts its workers on a new store (fresh processes)")
    row("its modules and MLflow (mlhw.store imported MLflow until now)", took["with mlflow"])
    row("its modules, MLflow imported where a client is made", took["without"], took["with mlflow"])

    runs: dict[str, list[float]] = {"torch": [], "scipy": []}
    worst = 0.0
    for _ in range(rounds):
        for which in runs:
            seconds, error = map(float, python(textwrap.dedent(LAGRANGIAN), which).split())
            runs[which].append(seconds)
            worst = max(worst, error)
    print("\nQ3(b,c): the Lagrangian's numerical minimum, digits 3 vs 8, first call of a process")
    row("torch.optim.LBFGS (imports torch._dynamo at its first use)", runs["torch"])
    row("scipy L-BFGS-B on torch autograd (mlhw.theory)", runs["scipy"], runs["torch"])
    print(f"  largest relative difference from g(a, b)'s closed form, either solver: {worst:.1e}")
    if worst > 1e-12:
        print("  NOT THE SAME MINIMUM: the comparison above is void")


if __name__ == "__main__":
    main()
