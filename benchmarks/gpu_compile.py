"""Would torch.compile inside mlhw's captured AlexNet step reach 20,000 img/s? One probe, in one device call.

issue 13 measured torch.compile on the H100 without CUDA graphs (+5% over eager steps) and with
max-autotune (no gain after 193 s). Not measured: Inductor's kernels (BatchNorm + ReLU fused, its own
max-pool, the casts folded into their neighbours) replayed from mlhw's one CUDA graph per step. train_cnn
did not capture a compiled step when this probe was written (`compile=True` turned graphs off; it captures it
since this probe's 2026-11-29 numbers), so this script builds the step itself from mlhw's parts (TrainStep,
make_optimizer, DeviceSplit), as gpu_profile.py does:

  speed     the whole step (bf16, channels-last, space-to-depth, fused capturable Adam), captured in one CUDA
            graph: mlhw's eager modules against torch.compile(model), ms per step and img/s, best of 3 timings;
            the compile's own seconds (what a process would pay once, beside a run of ~4 s);
  numbers   from one start, the same 20 batches, eager steps (no Dropout: Inductor draws other masks): the
            largest loss difference compiled vs eager, beside eager vs eager (the floor of cuDNN's kernels).

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_compile.py
    uv run python benchmarks/gpu_compile.py --smoke     # CPU, a small AlexNet, backend aot_eager: the plumbing
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gpu_check import synthetic_cifar  # the same random CIFAR-shaped images

from mlhw.cnn import AlexNet, DeviceSplit, TrainStep, cudnn_autotune, make_optimizer
from mlhw.data import CIFAR_MEAN, CIFAR_STD


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(device, width, size, dropout, compiled, backend):
    """A fresh AlexNet (seed 0) as train_cnn sets it up on `device`, its optimizer and its step."""
    torch.manual_seed(0)
    model = AlexNet(dropout=dropout, width=width, image_size=size).to(device, memory_format=torch.channels_last)
    model.features[0].space_to_depth = device.type == "cuda"
    model.train()
    opt = make_optimizer(
        argparse.Namespace(optimizer="adam", lr=5e-5, momentum=0.0),
        model.parameters(),
        capturable=device.type == "cuda",
    )
    forward = torch.compile(model, backend=backend) if compiled else model
    return model, opt, forward


def timed_step(train, device, amp, batch, reps, width, size, compiled, backend) -> tuple[float, float]:
    """(seconds to the first step, i.e. the compile; ms per captured step, best of 3 timings of `reps`)."""
    model, opt, forward = build(device, width, size, True, compiled, backend)
    step = TrainStep(model, forward, opt, None, train, amp, device)
    idx = torch.arange(batch, device=device)
    with cudnn_autotune(device.type == "cuda"):
        t0 = time.perf_counter()
        step.eager(idx)
        sync(device)
        first = time.perf_counter() - t0
        if device.type == "cuda":
            graph, static_idx = step.capture(batch)
            run = graph.replay
        else:
            run = lambda: step.eager(idx)  # noqa: E731
        best = float("inf")
        for _ in range(3):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                run()
            sync(device)
            best = min(best, (time.perf_counter() - t0) / reps * 1e3)
    return first, best


def losses(train, device, amp, batch, steps, width, size, compiled, backend) -> np.ndarray:
    model, opt, forward = build(device, width, size, False, compiled, backend)
    step = TrainStep(model, forward, opt, None, train, amp, device)
    gen = torch.Generator().manual_seed(1)
    out = []
    with cudnn_autotune(device.type == "cuda"):
        for _ in range(steps):
            idx = torch.randperm(len(train), generator=gen)[:batch].to(device)
            step.loss_sum.zero_()
            step.eager(idx)
            out.append(step.loss_sum.item() / batch)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a CPU, a small AlexNet, backend aot_eager")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    width, size, reps, steps = (1.0, 227, args.reps, 20) if cuda else (0.125, 67, 3, 4)
    backend = "inductor" if cuda else "aot_eager"  # a CPU's inductor compiles C++ for minutes: the plumbing only
    amp = torch.bfloat16 if cuda else None
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"gpu_compile: {name}; torch {torch.__version__}; batch {args.batch}, {size} px, backend {backend}")
    train = DeviceSplit(synthetic_cifar(4608), device, CIFAR_MEAN, CIFAR_STD, size)
    common = (train, device, amp, args.batch)

    rows = []
    for label, compiled in (("mlhw's step (eager modules), captured", False), ("torch.compile(model), captured", True)):
        try:
            first, ms = timed_step(*common, reps, width, size, compiled, backend)
            rows.append((label, f"{ms:.3f}", f"{args.batch / ms * 1e3:,.0f}", f"first step {first:.1f} s"))
        except Exception as exc:  # a probe: say what failed, go on
            rows.append((label, "error", "", f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"))
        print(rows[-1], flush=True)
    try:
        a = losses(*common, steps, width, size, False, backend)
        b = losses(*common, steps, width, size, False, backend)
        c = losses(*common, steps, width, size, True, backend)
        rows.append(("losses, eager vs eager (no Dropout)", f"{np.abs(a - b).max():.2e}", "", f"{steps} steps"))
        rows.append(
            (
                "losses, compiled vs eager (no Dropout)",
                f"{np.abs(a - c).max():.2e}",
                "",
                f"loss {a[0]:.4f} -> {a[-1]:.4f}",
            )
        )
    except Exception as exc:
        rows.append(("losses", "error", "", f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"))
    print(f"\n## gpu_compile on {name}, torch {torch.__version__}\n")
    print("| AlexNet bf16 step, batch 64, Adam 5e-5, BatchNorm + Dropout | ms / max diff | img/s | note |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
