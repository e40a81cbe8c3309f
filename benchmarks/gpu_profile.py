"""Where one AlexNet training step's GPU time goes (issue 13: 20,000 img/s at batch 64), in one device call.

mlhw's step as train_cnn runs it (bf16 autocast, channels-last, space-to-depth first convolution, fused
capturable Adam, cuDNN autotuned for the training batch), on synthetic CIFAR-shaped images:

  graph  each part of the step captured in its own CUDA graph and replayed: batch preparation alone, then
         + forward, + backward, + Adam (the whole step, as mlhw trains), and Adam alone: ms per step, so the
         differences are what each part costs;
  kernel the eager step under torch.profiler: device time per step by kind of kernel (convolution, matrix
         product, normalisation, pooling, optimizer, elementwise...) and the 25 costliest kernels.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_profile.py
    uv run python benchmarks/gpu_profile.py --smoke      # CPU, a small AlexNet: checks that the script runs
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from mlhw.cnn import AlexNet, DeviceSplit, TrainStep, cudnn_autotune, make_optimizer
from mlhw.data import CIFAR_MEAN, CIFAR_STD, Split

KINDS = [  # (kind, pattern on the kernel's name), the first match wins
    ("optimizer (Adam)", r"adam|multi_tensor"),
    ("normalisation (BatchNorm)", r"batch_norm|batchnorm|\bbn_|welford|bn_fw|bn_bw"),
    ("pooling", r"max_pool|maxpool|pool"),
    ("dropout", r"dropout|fused_dropout|bernoulli"),
    ("convolution", r"conv|cudnn|implicit|dgrad|wgrad|fprop"),  # before copies: their names say nhwc
    ("resize / layout copies", r"upsample|interpolate|bilinear|copy|permute|transpose|nchwtonhwc|nhwctonchw|pad"),
    ("matrix product", r"gemm|cutlass|cublas|nvjet|addmm|\bmm\b"),
    ("reductions (conv bias gradients, loss, hits)", r"reduce|softmax|nll|cross_entropy|argmax|sum"),
    ("elementwise", r"elementwise|vectorized|unrolled|relu|threshold|mul|add|div|fill"),
]


# the library that runs a kind on a GPU; a CPU's ops are oneDNN's or ATen's own: no name there
LIBRARIES = {"convolution": "cuDNN", "matrix product": "cuBLAS"}

ANNOTATION = re.compile(r"^(Optimizer\.|ProfilerStep|## |autograd::)")


def kind_of(name: str, cuda: bool = True) -> str:
    """The kind of a kernel (an op on a CPU), with the library that runs it on a GPU: 'convolution (cuDNN)'."""
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return f"{kind} ({LIBRARIES[kind]})" if cuda and kind in LIBRARIES else kind
    return "other"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ms_per_call(fn, device, reps: int) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / reps * 1e3


def graphed(fn, device, warmup: int = 3):
    """fn captured in a CUDA graph (warm-up on a side stream first); returns the replay. On a CPU: fn."""
    if device.type != "cuda":
        return fn
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a CPU and a small AlexNet: checks that the script runs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    width, size, reps = (0.25, 67, 3) if args.smoke else (1.0, 227, args.reps)
    cuda = device.type == "cuda"
    amp = torch.bfloat16 if cuda else None
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"gpu_profile: {name}; torch {torch.__version__}; batch {args.batch}, {size} px, width {width}")

    rng = np.random.RandomState(0)
    n = 4608
    split = Split(rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.randint(0, 10, n).astype(np.int64))
    train = DeviceSplit(split, device, CIFAR_MEAN, CIFAR_STD, size)
    torch.manual_seed(0)
    model = AlexNet(width=width, image_size=size).to(device, memory_format=torch.channels_last)
    model.features[0].space_to_depth = cuda
    model.train()
    cfg = argparse.Namespace(optimizer="adam", lr=5e-5, momentum=0.0)
    opt = make_optimizer(cfg, model.parameters(), capturable=cuda)
    step = TrainStep(model, model, opt, None, train, amp, device)
    idx = torch.arange(args.batch, device=device)

    def prep():
        train.batch(idx)

    def forward():
        x, y = train.batch(idx)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            model(x)

    def forward_backward():
        x, y = train.batch(idx)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False):
            out = model(x)
        F.cross_entropy(out.float(), y).backward()

    rows = []
    with cudnn_autotune(cuda):
        step.eager(idx)  # the optimizer's state exists, the grads too (Adam alone needs them)
        parts = [
            ("batch preparation (index, normalise, resize, channels-last)", prep),
            ("+ forward (no grad)", forward),
            ("+ forward and backward", forward_backward),
        ]
        for label, fn in parts:
            opt.zero_grad(set_to_none=True)
            rows.append((label, ms_per_call(graphed(fn, device), device, reps)))
        opt.zero_grad(set_to_none=True)
        full = graphed(lambda: step(idx), device)
        rows.append(("the whole step, as mlhw trains (+ Adam, loss and hit sums)", ms_per_call(full, device, reps)))
        step.eager(idx)
        rows.append(("Adam alone (fused, capturable)", ms_per_call(graphed(opt.step, device), device, reps)))
    # on a CPU `graphed` returns the plain call: no graph to name
    how, each = ("CUDA graphs", "replays") if cuda else ("plain calls (no CUDA graphs on a CPU)", "calls")
    print(f"\n## {how}, ms per step (batch {args.batch}; {reps} {each} each)\n")
    print("| part | ms | img/s at this rate |\n|---|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.3f} | {args.batch / ms * 1e3:,.0f} |")

    # eager steps under the profiler: kernel time by kind (graph replays hide their kernels from it)
    from torch.profiler import ProfilerActivity, profile

    steps = 3 if args.smoke else 20
    for _ in range(3):
        step.eager(idx)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with cudnn_autotune(cuda), profile(activities=activities) as prof:
        for _ in range(steps):
            step.eager(idx)
        sync(device)
    per_kernel: dict[str, float] = defaultdict(float)
    for evt in prof.key_averages():
        t = getattr(evt, "self_device_time_total", None)
        if t is None:
            t = getattr(evt, "self_cuda_time_total", 0.0)
        if ANNOTATION.match(evt.key):  # a span around kernels counted on their own (Optimizer.step#Adam.step)
            continue
        if cuda and t > 0 and getattr(evt, "device_type", None) is not None and "CUDA" in str(evt.device_type):
            per_kernel[evt.key] += t / steps
        elif not cuda:
            per_kernel[evt.key] += evt.self_cpu_time_total / steps
    total = sum(per_kernel.values()) or 1.0
    by_kind: dict[str, float] = defaultdict(float)
    for k, t in per_kernel.items():
        by_kind[kind_of(k, cuda)] += t
    unit = "device" if cuda else "CPU (self time of every op)"
    print(f"\n## eager step under the profiler: {unit} time per step, {total / 1e3:.3f} ms ({steps} steps)\n")
    print("| kind | ms per step | share |\n|---|---|---|")
    for kind, t in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {t / 1e3:.3f} | {t / total:.0%} |")
    print(f"\n| the 25 costliest {'kernels' if cuda else 'ops'} | kind | us per step | share |\n|---|---|---|---|")
    for k, t in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:25]:
        print(f"| {k[:110]} | {kind_of(k, cuda)} | {t:.1f} | {t / total:.1%} |")


if __name__ == "__main__":
    main()
