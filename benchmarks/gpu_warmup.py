"""Where the first AlexNet run of a process loses its time on a GPU: one fresh process per variant, one table.

A paper-sized run (10 epochs of 4,500 synthetic CIFAR-shaped images, 10 validations of 5,000, a test of 10,000;
Adam 5e-5, BatchNorm + Dropout, bf16) twice in each process: the first pays CUDA's and cuDNN's start-up and the
autotuning, the second is warm. Before the first run each process times its own start-up steps (import torch,
the CUDA context, the first cuBLAS product, the first cuDNN convolution). Variants change how cuDNN picks its
algorithms for the training batch: autotuning with torch's default limit, with a lower one
(mlhw.cnn.CUDNN_AUTOTUNE_LIMIT, torch.backends.cudnn.benchmark_limit: how many algorithms it tries
per shape), or none (its heuristics); one pays a first run's costs ahead with mlhw.cnn.warm_up (as a --jobs
worker on a GPU does while the parent checks), then its run 1 should take what run 2 takes.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_warmup.py | tee gpu_warmup.txt
    uv run python benchmarks/gpu_warmup.py --smoke     # CPU, tiny sizes: checks that the script runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = {
    "autotune, torch's default limit 10": {"benchmark_limit": 10},
    "autotune, limit 3 (mlhw's default)": {"benchmark_limit": 3},
    "limit 3, mlhw.cnn.warm_up first (a --jobs worker's start-up)": {"benchmark_limit": 3, "warm_up": True},
    "autotune, limit 1": {"benchmark_limit": 1},
    "no autotuning (heuristics)": {"autotune": False},
}


def child(spec: dict) -> dict:
    """One fresh process: start-up steps, then the same run twice."""
    t0 = time.perf_counter()
    times: dict = {}
    import torch

    times["import torch"] = time.perf_counter() - t0
    from types import SimpleNamespace

    import numpy as np

    import mlhw.cnn as cnn
    from mlhw.data import Dataset, Split

    times["import mlhw.cnn"] = time.perf_counter() - t0 - times["import torch"]
    cuda = torch.cuda.is_available() and not spec["smoke"]
    dev = torch.device("cuda" if cuda else "cpu")

    def timed(name, fn):
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - t

    if cuda:
        timed("CUDA context (first tensor)", lambda: torch.zeros(1, device=dev))
        a = torch.randn(512, 512, device=dev, dtype=torch.bfloat16)
        timed("first cuBLAS product (bf16)", lambda: a @ a)
        x = torch.randn(8, 16, 32, 32, device=dev, dtype=torch.bfloat16)
        w = torch.randn(16, 16, 3, 3, device=dev, dtype=torch.bfloat16)
        timed("first cuDNN convolution (bf16)", lambda: torch.nn.functional.conv2d(x, w))
    cnn.CUDNN_AUTOTUNE = spec.get("autotune", True)
    cnn.CUDNN_AUTOTUNE_LIMIT = spec.get("benchmark_limit", cnn.CUDNN_AUTOTUNE_LIMIT)
    rng = np.random.RandomState(0)

    def split(n):
        return Split(rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.randint(0, 10, n).astype(np.int64))

    n_train, n_val, n_test, epochs = (4_500, 5_000, 10_000, 10) if not spec["smoke"] else (128, 64, 64, 2)
    data = Dataset("synthetic", split(n_train), split(n_test), split(n_val))
    cfg = SimpleNamespace(
        optimizer="adam", lr=5e-5, momentum=0.0, batchnorm=True, dropout=True, epochs=epochs, batch_size=64,
        width=1.0 if not spec["smoke"] else 0.125, image_size=227 if not spec["smoke"] else 67, seed=0,
    )  # fmt: skip
    if spec.get("warm_up"):  # what a --jobs worker on a GPU does before its first unit: run 1 should be run 2's
        timed("mlhw.cnn.warm_up", lambda: cnn.warm_up(cfg, data, dev, "bf16" if cuda else "fp32"))
    runs = []
    for _ in range(2):
        marks = [time.perf_counter()]
        res = cnn.train_cnn(
            cfg,
            data,
            dev,
            "bf16" if cuda else "fp32",
            on_epoch=lambda e, r, marks=marks: marks.append(time.perf_counter()),
        )
        end = time.perf_counter()
        h = res.history
        runs.append(
            {
                "seconds": end - marks[0],
                "epoch 1 (setup, capture, autotune, train, first validation)": marks[1] - marks[0],
                "epoch 1 training": h[0]["epoch_seconds"],
                "epochs 2+ each": (marks[-1] - marks[1]) / max(1, len(marks) - 2),
                "test": end - marks[-1],
                "img/s (best epoch after the first)": max(r["images_per_s"] for r in h[1:]) if len(h) > 1 else 0.0,
            }
        )
    return {"start-up": times, "runs": runs, "total": time.perf_counter() - t0}


def stages(spec: dict) -> dict:
    """The first run's cold steps one at a time, each timed to the GPU's end, then again in the same process (warm):
    where the seconds of a first run go that autotuning does not explain."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    import mlhw.cnn as cnn
    from mlhw.data import CIFAR_MEAN, CIFAR_STD, Split

    cuda = torch.cuda.is_available() and not spec["smoke"]
    dev = torch.device("cuda" if cuda else "cpu")
    torch.zeros(1, device=dev)
    rng = np.random.RandomState(0)
    split = lambda n: Split(rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.randint(0, 10, n).astype(np.int64))  # noqa: E731
    size, width, n_eval = (227, 1.0, 5_000) if not spec["smoke"] else (67, 0.125, 64)
    cfg = SimpleNamespace(optimizer="adam", lr=5e-5, momentum=0.0)
    out: dict = {}

    def attempt_once(attempt: str) -> None:

        def timed(name, fn):
            t = time.perf_counter()
            r = fn()
            if cuda:
                torch.cuda.synchronize()
            out[f"{attempt}: {name}"] = time.perf_counter() - t
            return r

        torch.manual_seed(0)
        model = timed(
            "AlexNet built on the CPU, moved",
            lambda: cnn.AlexNet(image_size=size, width=width).to(dev, memory_format=torch.channels_last),
        )
        model.features[0].space_to_depth = cuda
        train, val = (
            timed(f"{k} split to the device", lambda n=n: cnn.DeviceSplit(split(n), dev, CIFAR_MEAN, CIFAR_STD, size))
            for k, n in (("train", 4_500), ("validation", n_eval))
        )
        opt = cnn.make_optimizer(cfg, model.parameters(), capturable=cuda)
        amp = torch.bfloat16 if cuda else None
        step = cnn.TrainStep(model, model, opt, None, train, amp, dev)
        if cuda:
            with cnn.cudnn_autotune(True):
                graph, idx = timed("capture: 3 autotuned eager steps + the graph (batch 64)", lambda: step.capture(64))
            timed("one replay", graph.replay)
        with cnn.cudnn_autotune(False):
            timed(
                "one eager step of the last, partial batch (20 images)",
                lambda: step.eager(torch.arange(20, device=dev)),
            )
        model.train(False)
        timed("validation of 5,000 (batches of 1,024, padded)", lambda: cnn.evaluate(model, val, amp, 1024, pad=cuda))
        timed("the same validation again", lambda: cnn.evaluate(model, val, amp, 1024, pad=cuda))

    for attempt in ("cold", "warm"):
        attempt_once(attempt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--stages", action="store_true", help="time a first run's steps one by one (one process)")
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(stages(spec) if spec.get("stages") else child(spec)), flush=True)
        return
    if args.stages:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps({"stages": True, "smoke": args.smoke})],
            capture_output=True, text=True,
        )  # fmt: skip
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"stages: failed\n{proc.stderr[-3000:]}", flush=True)
            return
        print("\n## a first run's steps in a fresh process, cold then warm (seconds)\n\n| step | s |\n|---|---|")
        for name, sec in json.loads(line[7:]).items():
            print(f"| {name} | {sec:.3f} |")
        return
    out = {}
    for name, spec in VARIANTS.items():
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec | {"smoke": args.smoke})],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", flush=True)
            continue
        out[name] = json.loads(line[7:])
        print(f"{name}: process {time.perf_counter() - t:.1f} s: {json.dumps(out[name])}", flush=True)
    print("\n## first run of a fresh process vs the second (seconds)\n")
    heads = ["import torch", "context", "cuBLAS", "cuDNN", "warm_up", "run 1", "run 2", "run 1 epoch 1",
             "run 2 epoch 1", "epochs 2+ each", "test", "img/s run 1", "img/s run 2"]  # fmt: skip
    print("| variant | " + " | ".join(heads) + " |")
    print("|---" * 14 + "|")
    for name, r in out.items():
        s, (a, b) = r["start-up"], r["runs"]
        e1 = "epoch 1 (setup, capture, autotune, train, first validation)"
        cells = [
            s.get("import torch", 0), s.get("CUDA context (first tensor)", 0), s.get("first cuBLAS product (bf16)", 0),
            s.get("first cuDNN convolution (bf16)", 0), s.get("mlhw.cnn.warm_up", 0),
            a["seconds"], b["seconds"], a[e1], b[e1], b["epochs 2+ each"],
            b["test"],
        ]  # fmt: skip
        rates = [a["img/s (best epoch after the first)"], b["img/s (best epoch after the first)"]]
        print(
            f"| {name} | "
            + " | ".join(f"{c:.2f}" for c in cells)
            + " | "
            + " | ".join(f"{x:,.0f}" for x in rates)
            + " |"
        )


if __name__ == "__main__":
    main()
