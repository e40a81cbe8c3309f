"""Part 1 benchmark: seconds per network-epoch of the part (c) workload, mlhw against its peers.

One process, one machine, the same 10,000 synthetic MNIST-shaped samples (784 -> 40 -> 10, batch 10,
lr 0.1, one epoch of SGD). Each contender is timed `--repeats` times and its best epoch is kept
(these machines are noisy; the best is the least disturbed). Printed: seconds and ratios.

Seeds: 3 seeds trained as one batched computation (train_mlp_groups, as `reproduce` trains a suite's
seeds) against 3 one-seed runs one after the other, for part (c) (one rate) and part (b) (the 6-rate
sweep); the two are timed alternately, so that both see the same load.

    uv run python benchmarks/mlp.py [--samples 10000] [--repeats 3]

Peers:
  torch-idiomatic  nn.Sequential + DataLoader(TensorDataset, batch_size=10, shuffle=True) + optim.SGD
  numpy-skeleton   the assignment skeleton's loop: backprop one example at a time, sum, update
  sklearn          MLPClassifier(solver="sgd", batch_size=10), plain SGD (no momentum, no L2)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from mlhw.config import MLPConfig
from mlhw.data import Dataset, Split
from mlhw.mlp import train_mlp, train_mlp_groups

SIZES, BATCH, LR = [784, 40, 10], 10, 0.1
SWEEP = [0.001, 0.01, 0.1, 1, 10, 100]
SEEDS = [8, 9, 10]


def synthetic(n: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    x = (rng.rand(n, 784) < 0.2).astype(np.float32) * rng.rand(n, 784).astype(np.float32)  # sparse, like MNIST
    return x, rng.randint(0, 10, n).astype(np.int64)


def as_dataset(x, y) -> Dataset:
    return Dataset("synthetic", Split(x.reshape(-1, 1, 28, 28), y), Split(x[:100].reshape(-1, 1, 28, 28), y[:100]))


def mlhw_epoch(x, y, lrs) -> float:
    res = train_mlp(MLPConfig(epochs=1, batch_size=BATCH, lr=LR), as_dataset(x, y), lrs, "cpu")
    return res[0].history[1]["epoch_seconds"]  # the SGD epoch alone, without the evaluation passes


def mlhw_seeds_epoch(x, y, lrs, batched: bool) -> float:
    """One SGD epoch of every seed of SEEDS: one batched computation, or one run per seed (summed)."""
    data, cfg = as_dataset(x, y), MLPConfig(epochs=1, batch_size=BATCH, lr=LR)
    if batched:
        return train_mlp_groups(cfg, [data] * len(SEEDS), SEEDS, lrs, "cpu")[0][0].history[1]["epoch_seconds"]
    runs = (train_mlp(cfg.model_copy(update={"seed": s}), data, lrs, "cpu")[0] for s in SEEDS)
    return sum(r.history[1]["epoch_seconds"] for r in runs)


def seeds_rows(x, y, repeats: int) -> None:
    """3 seeds batched vs 3 one-seed runs, timed alternately (best of `repeats` each)."""
    print(f"{'3 seeds, s / epoch':<26}{'batched':>10}{'3 runs':>10}{'speed-up':>10}")
    for label, lrs in (("part (c), 1 rate", [LR]), ("part (b), 6-rate sweep", SWEEP)):
        batched, separate = [], []
        for _ in range(repeats):
            separate.append(mlhw_seeds_epoch(x, y, lrs, batched=False))
            batched.append(mlhw_seeds_epoch(x, y, lrs, batched=True))
        b, s = min(batched), min(separate)
        print(f"{label:<26}{b:>10.4f}{s:>10.4f}{s / b:>9.2f}x")


def torch_idiomatic_epoch(x, y) -> float:
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    model = nn.Sequential(nn.Linear(784, 40), nn.ReLU(), nn.Linear(40, 10))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=BATCH, shuffle=True)
    t0 = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    return time.perf_counter() - t0


def numpy_skeleton_epoch(x, y) -> float:
    """The skeleton's structure: column vectors, backprop(x, y) per example, summed per mini-batch."""
    rng = np.random.RandomState(0)
    ws = [rng.randn(o, i) for i, o in zip(SIZES[:-1], SIZES[1:])]
    bs = [rng.randn(o, 1) for o in SIZES[1:]]
    xs = [xi.reshape(-1, 1).astype(np.float64) for xi in x]
    ys = [np.eye(10)[yi].reshape(-1, 1) for yi in y]

    def backprop(xi, yi):
        acts, zs = [xi], []
        for k, (w, b) in enumerate(zip(ws, bs)):
            z = w @ acts[-1] + b
            zs.append(z)
            acts.append(np.maximum(z, 0) if k < len(ws) - 1 else z)
        e = np.exp(zs[-1] - zs[-1].max())
        delta = e / e.sum() - yi
        nw, nb = [None] * len(ws), [None] * len(ws)
        nw[-1], nb[-1] = delta @ acts[-2].T, delta
        for k in range(len(ws) - 2, -1, -1):
            delta = (ws[k + 1].T @ delta) * (zs[k] > 0)
            nw[k], nb[k] = delta @ acts[k].T, delta
        return nw, nb

    order = rng.permutation(len(xs))
    t0 = time.perf_counter()
    for i in range(0, len(order), BATCH):
        idx = order[i : i + BATCH]
        sw, sb = [np.zeros_like(w) for w in ws], [np.zeros_like(b) for b in bs]
        for j in idx:
            nw, nb = backprop(xs[j], ys[j])
            sw = [a + b for a, b in zip(sw, nw)]
            sb = [a + b for a, b in zip(sb, nb)]
        ws[:] = [w - LR / len(idx) * g for w, g in zip(ws, sw)]
        bs[:] = [b - LR / len(idx) * g for b, g in zip(bs, sb)]
    return time.perf_counter() - t0


def sklearn_epoch(x, y) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(40,),
        solver="sgd",
        batch_size=BATCH,
        learning_rate_init=LR,
        momentum=0.0,
        alpha=0.0,
        max_iter=1,
        shuffle=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(x, y)
        return time.perf_counter() - t0


def best_of(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    x, y = synthetic(args.samples)
    print(
        f"{args.samples} samples, 784-40-10, batch {BATCH}, lr {LR}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; best of {args.repeats}"
    )
    times = {
        "mlhw (1 rate)": best_of(lambda: mlhw_epoch(x, y, [LR]), args.repeats),
        "mlhw (6-rate sweep)": best_of(lambda: mlhw_epoch(x, y, SWEEP), args.repeats),
        "torch-idiomatic": best_of(lambda: torch_idiomatic_epoch(x, y), args.repeats),
        "numpy-skeleton": best_of(lambda: numpy_skeleton_epoch(x, y), args.repeats),
        "sklearn": best_of(lambda: sklearn_epoch(x, y), args.repeats),
    }
    one = times["mlhw (1 rate)"]
    print(f"{'contender':<22}{'s / epoch':>10}{'vs mlhw':>10}")
    for name, t in times.items():
        print(f"{name:<22}{t:>10.4f}{t / one:>9.1f}x")
    sweep = times["mlhw (6-rate sweep)"]
    print(f"sweep of 6 rates costs {sweep / one:.2f}x one rate ({6 * one / sweep:.1f}x faster than 6 runs)")
    print(
        f"targets: torch-idiomatic >= 20x: {times['torch-idiomatic'] / one:.1f}x; numpy-skeleton >= 5x: "
        f"{times['numpy-skeleton'] / one:.1f}x; sklearn >= 5x: {times['sklearn'] / one:.1f}x; sweep <= 2x: "
        f"{sweep / one:.2f}x"
    )
    seeds_rows(x, y, args.repeats)


if __name__ == "__main__":
    main()
