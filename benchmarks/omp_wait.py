"""CPU threads under load: OpenMP's wait policy, default (spinning) vs PASSIVE, idle and beside busy peers.

torch's CPU kernels (and MKL's) run on OpenMP threads (GNU libgomp in the PyPI wheels). Between two parallel
regions a thread spins, by default, for some 300,000 turns before it sleeps. On an idle machine that saves a
wake-up; where other processes hold the cores (CI runners, a test suite's workers beside each other, a second
job), the spinning threads take the turns of the one thread with work, and a 2-thread step can take ten times as
long as a 1-thread one. `OMP_WAIT_POLICY=PASSIVE` makes a waiting thread sleep at once. libgomp reads it when it
is loaded, so each condition here runs in a fresh process.

Workloads (CPU, the paths reproduce takes in one process, `--jobs 1`):
  mlp-seeds  Part 1: 5 seeds x the 6-rate sweep as one batched computation (train_mlp_groups), 1,000 samples,
             one epoch: 30 replicas x batch 10, above mlhw.mlp.step_threads's bar, so on torch's threads
  cnn        Part 2: AlexNet at digits' preset (width 0.5, 67 px: its smallest) on 256 synthetic 32 px images,
             batch 64, Adam, one epoch with its validation pass
Load: `idle` (nothing started here: the machine's own load is printed beside it) and `busy` (one spinning
process per core, started by this script). Each cell is the best of --repeats fresh processes, the two
policies timed alternately so that both see the same load.

    uv run python benchmarks/omp_wait.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time

WORKLOADS = ("mlp-seeds", "cnn")
POLICIES = {"default": None, "passive": "PASSIVE"}


def run_workload(name: str) -> float:
    """Seconds of the timed part of `name` (in this process: the child). torch is imported before mlhw on purpose:
    importing mlhw first would set PASSIVE (mlhw/__init__.py) in the default policy's process too."""
    import numpy as np
    import torch  # noqa: I001 - before mlhw (above)

    from mlhw.config import CNNConfig, MLPConfig
    from mlhw.data import Dataset, Split, with_validation

    rng = np.random.RandomState(0)
    if name == "mlp-seeds":
        from mlhw.mlp import train_mlp_groups

        x = (rng.rand(1000, 1, 28, 28) < 0.2).astype(np.float32) * rng.rand(1000, 1, 28, 28).astype(np.float32)
        y = rng.randint(0, 10, 1000).astype(np.int64)
        data = Dataset("synthetic", Split(x, y), Split(x[:100], y[:100]))
        seeds = [8, 9, 10, 11, 12]
        res = train_mlp_groups(MLPConfig(epochs=1, batch_size=10), [data] * 5, seeds, [0.001, 0.01, 0.1, 1, 10, 100])
        return res[0][0].history[1]["epoch_seconds"]
    from mlhw.cnn import train_cnn

    x = rng.randint(0, 256, (320, 3, 32, 32), dtype=np.uint8)
    y = rng.randint(0, 10, 320).astype(np.int64)
    data = with_validation(Dataset("synthetic", Split(x[:288], y[:288]), Split(x[288:], y[288:])), 1 / 9)
    cfg = CNNConfig(dataset="digits", epochs=1)  # digits' preset: width 0.5, 67 px
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_cnn(cfg, data, device="cpu")
    return time.perf_counter() - t0


def timed(name: str, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True, check=True
    ).stdout
    return float(out.split()[-1])


def spin() -> None:
    while True:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(f"{run_workload(args.child):.6f}")
        return
    cores = os.cpu_count() or 1
    print(f"{cores} cores; load average before: {os.getloadavg()[0]:.1f}; best of {args.repeats} fresh processes")
    print(f"{'workload':<11}{'load':<7}{'default s':>11}{'passive s':>11}{'default/passive':>17}")
    for load in ("idle", "busy"):
        peers = []
        if load == "busy":
            peers = [multiprocessing.Process(target=spin, daemon=True) for _ in range(cores)]
            for p in peers:
                p.start()
        try:
            for name in WORKLOADS:
                times = {k: [] for k in POLICIES}
                for _ in range(args.repeats):
                    for k, policy in POLICIES.items():
                        times[k].append(timed(name, policy))
                d, p = min(times["default"]), min(times["passive"])
                print(f"{name:<11}{load:<7}{d:>11.3f}{p:>11.3f}{d / p:>16.2f}x", flush=True)
        finally:
            for p in peers:
                p.terminate()
                p.join()


if __name__ == "__main__":
    main()
