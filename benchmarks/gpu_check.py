"""GPU check: speed and equality of the CUDA code paths, in one device call (a few minutes), one table.

Synthetic MNIST-shaped and CIFAR-shaped data (no download); needs torch (+ torchvision and PIL for the
notebook peer), not MLflow, pydantic or typer: configs are plain namespaces with the fields the core reads.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_check.py | tee gpu_check.txt
    uv run python benchmarks/gpu_check.py --smoke      # CPU, tiny sizes: checks that the script runs

Rows:
  cnn   AlexNet (227 px, batch 64, Adam 5e-5, BatchNorm + Dropout) training img/s, the best epoch after the
        first: mlhw bf16 with its defaults (fused Adam, the step in one CUDA graph, the first convolution by
        space-to-depth), then with one lever off at a time (plain first convolution; foreach Adam; eager
        steps), fp32, fp16 + GradScaler (captured, and eager), torch.compile's network in the captured step
        (bf16 and fp16), the compiled warm-up of reproduce --compile's GPU worker (the run after it should take
        the default's seconds, compiling nothing), the assignment's other variants, and the
        notebook's pipeline (PIL Resize + ToTensor + Normalize, DataLoader, fp32, foreach Adam) as the peer.
        Evaluation img/s with cuDNN's heuristics (mlhw's choice) vs autotuned.
  mlp   part (c) (50,000 x 784 -> 40 -> 10, batch 10, lr 0.1): seconds per SGD epoch (the second epoch,
        without evaluation), CUDA graphs vs eager CUDA vs this machine's CPU; the 6-rate sweep of part (b);
        5 seeds as one batched computation (train_mlp_groups, as reproduce trains a suite's seeds) against
        one seed, for part (c) (the data every seed shares) and part (b) (a subset per seed).
  check float64 MLP CUDA (graphs) == CPU; MLP graphs == eager (float32); MLP 3 seeds batched == 3 one-seed
        runs (float64, a subset per seed, chunks and a partial last batch) and batched graphs == batched
        eager (float32); CNN graphs == eager (bf16 and fp32; fp16 + GradScaler on a GPU),
        each beside eager == eager (the run-to-run noise floor of cuDNN's kernels); the space-to-depth first
        convolution == cuDNN's (fp32 forward and gradients, relative).
"""

from __future__ import annotations

import argparse
import functools
import time
import traceback
from types import SimpleNamespace

import numpy as np
import torch

from mlhw.cnn import (
    AlexNet,
    DeviceSplit,
    cudnn_autotune,
    evaluate,
    flops_per_image,
    space_to_depth_conv,
    train_cnn,
    warm_up,
)
from mlhw.data import CIFAR_MEAN, CIFAR_STD, Dataset, Split, subset
from mlhw.mlp import train_mlp, train_mlp_groups

ROWS: list[tuple[str, str, str, str]] = []  # (section, what, value, note)
T0 = time.perf_counter()
CNN_OVERRIDES: dict = {}  # --smoke: a small AlexNet (a CPU takes minutes per epoch at 227 px)


def mlp_cfg(**kw) -> SimpleNamespace:
    base = dict(hidden=(40,), epochs=2, batch_size=10, lr=0.1, seed=8, dtype="float32")
    return SimpleNamespace(**(base | kw))


def cnn_cfg(**kw) -> SimpleNamespace:
    base = dict(
        optimizer="adam",
        lr=5e-5,
        momentum=0.0,
        batchnorm=True,
        dropout=True,
        epochs=3,
        batch_size=64,
        width=1.0,
        image_size=227,
        seed=0,
    )
    return SimpleNamespace(**(base | CNN_OVERRIDES | kw))


def row(section: str, what: str, value: str, note: str = "") -> None:
    ROWS.append((section, what, value, note))
    print(f"[{time.perf_counter() - T0:6.1f} s] {section:<6} {what:<48} {value:>14}  {note}", flush=True)


def guarded(fn):
    """A failing row is reported, and the other rows still run."""

    def run(*a, **kw):
        try:
            return fn(*a, **kw)
        except Exception as err:  # noqa: BLE001 - the script must print its table whatever fails
            traceback.print_exc()
            row("error", fn.__name__, type(err).__name__, str(err).splitlines()[0][:90] if str(err) else "")
            return None

    return run


def synthetic_mnist(n: int, seed: int = 0) -> Split:
    rng = np.random.RandomState(seed)
    x = (rng.rand(n, 1, 28, 28) < 0.2) * rng.randint(0, 256, (n, 1, 28, 28))  # sparse, like MNIST
    return Split(x.astype(np.uint8), rng.randint(0, 10, n).astype(np.int64))


def synthetic_cifar(n: int, seed: int = 0) -> Split:
    rng = np.random.RandomState(seed)
    return Split(rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.randint(0, 10, n).astype(np.int64))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- CNN ------------------------------------------------------------------------------------------


@guarded
def notebook_images_per_s(train: Split, device: torch.device, steps: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms

    tf = transforms.Compose(
        [transforms.Resize((227, 227)), transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(train.y)

        def __getitem__(self, i):
            return tf(Image.fromarray(train.x[i].transpose(1, 2, 0))), int(train.y[i])

    torch.manual_seed(0)
    model = AlexNet().to(device)
    opt = torch.optim.Adam(model.parameters(), 5e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    done, t0 = 0, 0.0
    for step, (xb, yb) in enumerate(DataLoader(Images(), batch_size=64, shuffle=True)):
        if step == 2:  # two warm-up steps
            sync(device)
            t0 = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        done += len(yb) if step >= 2 else 0
        if step == steps + 1:
            break
    sync(device)
    rate = done / (time.perf_counter() - t0)
    row("cnn", "notebook pipeline (PIL + DataLoader, fp32)", f"{rate:,.0f} img/s", "the peer: 1.00x")
    return rate


def row_variant(data, device, label, base, epochs, precision, cfg_kw) -> None:
    t0 = time.perf_counter()
    res = train_cnn(cnn_cfg(epochs=epochs, **cfg_kw), data, device, precision)
    rate = max(h["images_per_s"] for h in res.history[1:])
    vs = f"{rate / base:.2f}x notebook; " if base else ""
    row("cnn", label, f"{rate:,.0f} img/s", f"{vs}run {time.perf_counter() - t0:.1f} s")


@guarded
def mlhw_images_per_s(data: Dataset, device, label: str, base: float | None, epochs: int, **kw) -> float:
    t0 = time.perf_counter()
    res = train_cnn(cnn_cfg(epochs=epochs), data, device, **kw)
    rate = max(h["images_per_s"] for h in res.history[1:])
    vs = f"{rate / base:.2f}x notebook; " if base else ""
    levers = f"{res.precision}, {res.optimizer_impl}, graphs={res.cuda_graphs}, s2d={res.space_to_depth}"
    note = f"{vs}{levers}; run {time.perf_counter() - t0:.1f} s"
    row("cnn", label, f"{rate:,.0f} img/s", note)
    return rate


@guarded
def compiled_warm_up_row(data: Dataset, device, label: str, precision: str, epochs: int) -> None:
    """reproduce --compile's GPU worker: mlhw.cnn.warm_up compiles the network before the first run, which then
    compiles nothing (its seconds are the default's run, not the compiled row's 25-30 s more). torch._dynamo is
    reset first: the compiled rows before this one left the graph in this process."""
    import torch._dynamo

    torch._dynamo.reset()
    cfg = cnn_cfg(epochs=epochs)
    t0 = time.perf_counter()
    warm_up(cfg, data, device, precision, compile=True)
    sync(device)
    t1 = time.perf_counter()
    res = train_cnn(cfg, data, device, precision, compile=True)
    run = time.perf_counter() - t1
    rate = max(h["images_per_s"] for h in res.history[1:])
    first = res.history[0]["images_per_s"]
    note = f"warm-up {t1 - t0:.1f} s, then run {run:.1f} s; its first epoch {first:,.0f} img/s"
    row("cnn", label, f"{rate:,.0f} img/s", note)


@guarded
def eval_rows(data: Dataset, device) -> None:
    """Evaluation img/s (bf16, chunks of 1024, padded): cuDNN's heuristics vs autotuned algorithms."""
    c = cnn_cfg()
    model = AlexNet(width=c.width, image_size=c.image_size).to(device, memory_format=torch.channels_last)
    model.features[0].space_to_depth = device.type == "cuda"
    split = DeviceSplit(data.train, device, CIFAR_MEAN, CIFAR_STD, c.image_size)
    amp = torch.bfloat16 if device.type == "cuda" else None
    rates = {}
    for label, tune in (("heuristics (mlhw)", False), ("autotuned", True)):
        with cudnn_autotune(tune):
            evaluate(model, split, amp, 1024, pad=True)  # warm-up (and the autotuning)
            sync(device)
            t0 = time.perf_counter()
            evaluate(model, split, amp, 1024, pad=True)
            sync(device)
        rates[label] = len(split) / (time.perf_counter() - t0)
        row("cnn", f"evaluation, cuDNN {label}", f"{rates[label]:,.0f} img/s")
    row("cnn", "  heuristics vs autotuned", f"{rates['heuristics (mlhw)'] / rates['autotuned']:.2f}x")


@guarded
def s2d_check(device) -> None:
    """AlexNet's first convolution by space-to-depth vs cuDNN's, fp32, one batch: output and gradients."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 227, 227, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(3, 96, 11, 4).to(device)
    x.requires_grad_(True)
    out = {}
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # true fp32 on both sides (cuDNN's default on Ampere+ is TF32)
    for label, fn in (
        ("cudnn", lambda: torch.nn.functional.conv2d(x, conv.weight, conv.bias, 4)),
        ("s2d", lambda: space_to_depth_conv(x, conv.weight, conv.bias, 4, 0)),
    ):
        y = fn()
        grads = torch.autograd.grad(y.square().sum(), (x, conv.weight, conv.bias))
        out[label] = [t.detach() for t in (y, *grads)]
    torch.backends.cudnn.allow_tf32 = tf32
    rel = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(out["s2d"], out["cudnn"]))
    row("check", "first conv: space-to-depth == cuDNN (fp32, output + grads)", f"{rel:.2e}", "max abs diff / max abs")


def cnn_equal(
    data: Dataset,
    device,
    precision: str,
    optimizer: str = "adam",
    lr: float = 5e-5,
    run_as: str | None = None,
    momentum: float = 0.0,
    compile: bool = False,
) -> None:
    """graphs vs eager, beside eager vs eager: train losses, validation and test (loss, accuracy). `run_as`: the
    precision that runs where the requested one does not (bf16 on a CPU: fp32); the label names both. `compile`:
    torch.compile's network in every run (its captured steps against its eager ones)."""
    ran = []

    def curve(graphs: bool) -> np.ndarray:
        cfg = cnn_cfg(epochs=2, optimizer=optimizer, lr=lr, momentum=momentum)
        res = train_cnn(cfg, data, device, run_as or precision, compile, cuda_graphs=graphs)
        ran.append(res.precision)
        vals = [v for h in res.history for v in (h["train_loss"], h["train_acc"], h["val_loss"], h["val_acc"])]
        return np.array(vals + [res.test_loss, res.test_acc])

    eager, eager2, graphed = curve(False), curve(False), curve(True)
    d_ge, d_ee = np.abs(graphed - eager).max(), np.abs(eager2 - eager).max()
    # two rows read "(adam 5e-05, fp32, ...)" on a CPU, where the bf16 check ran in fp32: say what was asked for
    what = precision if ran[0] == precision else f"{precision} asked for, {ran[0]} ran on {device.type}"
    row(
        "check",
        f"CNN{' compiled' if compile else ''} graphs == eager ({optimizer} {lr:g}"
        f"{f' momentum {momentum:g}' if momentum else ''}, {what}, 2 epochs, max abs diff)",
        f"{d_ge:.2e}",
        f"eager vs eager (noise floor): {d_ee:.2e}; train loss {eager[0]:.4f} -> {eager[4]:.4f}",
    )


# --- MLP ------------------------------------------------------------------------------------------


def mlp_epoch(data: Dataset, device, rates, **kw) -> tuple[float, list]:
    res = train_mlp(mlp_cfg(epochs=2, dtype=kw.pop("dtype", "float32")), data, rates, device, **kw)
    return res[0].history[2]["epoch_seconds"], res


SEEDS = [8, 9, 10, 11, 12]  # the paper profile's


def mlp_seeds_epoch(datas: list[Dataset], device, rates) -> tuple[float, list]:
    res = train_mlp_groups(mlp_cfg(epochs=2), datas, SEEDS[: len(datas)], rates, device)
    return res[0][0].history[2]["epoch_seconds"], res


@guarded
def mlp_rows(device, n: int, sweep_n: int) -> None:
    test = synthetic_mnist(1000, 1)
    full = Dataset("synthetic-mnist", synthetic_mnist(n), test)
    sweep = Dataset("synthetic-mnist", synthetic_mnist(sweep_n), test)
    rates = [0.001, 0.01, 0.1, 1, 10, 100]
    cpu = torch.device("cpu")
    times = {}
    for label, dev, kw in (
        ("CUDA graphs", device, {}),
        ("eager CUDA", device, {"cuda_graphs": False}),
        ("CPU", cpu, {}),
    ):
        if dev.type != "cuda" and label != "CPU":
            continue
        t, res = mlp_epoch(full, dev, [0.1], **kw)
        times[label] = t
        row("mlp", f"part (c) epoch, {n:,} x 784-40-10, {label}", f"{t:.3f} s", f"device={res[0].device}")
    if "CPU" in times:
        for label in ("CUDA graphs", "eager CUDA"):
            if label in times:
                row("mlp", f"  {label} vs CPU", f"{times['CPU'] / times[label]:.2f}x", "> 1: faster than the CPU")
    for label, dev in (("CUDA graphs", device), ("CPU", cpu)):
        if dev.type != "cuda" and label != "CPU":
            continue
        t, _ = mlp_epoch(sweep, dev, rates)
        row("mlp", f"part (b) 6-rate sweep epoch, {sweep_n:,} samples, {label}", f"{t:.3f} s")
    # 5 seeds in one computation vs one seed, on the device (CUDA graphs on a GPU); timed alternately
    label = "CUDA graphs" if device.type == "cuda" else device.type.upper()
    subsets = [subset(full, sweep_n, len(test) // 2, s) for s in SEEDS]
    for what, datas, lrs in (
        (f"part (c) epoch, {n:,} samples", [full] * len(SEEDS), [0.1]),
        (f"part (b) 6-rate sweep epoch, {sweep_n:,} samples", subsets, rates),
    ):
        one, five = [], []
        for _ in range(2):
            one.append(mlp_epoch(datas[0], device, lrs)[0])
            five.append(mlp_seeds_epoch(datas, device, lrs)[0])
        t1, t5 = min(one), min(five)
        row("mlp", f"{what}, 5 seeds batched, {label}", f"{t5:.3f} s", f"one seed {t1:.3f} s")
        row(
            "mlp",
            "  5 seeds batched vs one seed",
            f"{t5 / t1:.2f}x",
            f"5 one-seed runs: 5x; speed-up {5 * t1 / t5:.1f}x",
        )


@guarded
def mlp_checks(device, n: int) -> None:
    data = Dataset("synthetic-mnist", synthetic_mnist(n, 2), synthetic_mnist(500, 3))
    rates = [0.01, 0.1, 1.0]

    def curves(dev, dtype, **kw) -> np.ndarray:
        res = train_mlp(mlp_cfg(epochs=3, dtype=dtype), data, rates, dev, **kw)
        return np.array([[h[k] for h in r.history for k in ("train_loss", "train_acc", "test_acc")] for r in res])

    cpu64 = curves(torch.device("cpu"), "float64")
    gpu64 = curves(device, "float64")
    row(
        "check",
        f"MLP float64 {device.type} == CPU (3 epochs, 3 rates)",
        f"{np.abs(gpu64 - cpu64).max():.2e}",
        "max abs diff",
    )
    if device.type == "cuda":
        g32, e32 = curves(device, "float32"), curves(device, "float32", cuda_graphs=False)
        row("check", "MLP graphs == eager CUDA (float32, 3 epochs)", f"{np.abs(g32 - e32).max():.2e}", "max abs diff")

    # 3 seeds batched: each seed its own subset (n - 3 rows: a partial last batch), init and order; chunks
    # of about a tenth of an epoch, so that the gathers, the full chunks and the tail are all used
    seeds, m = SEEDS[:3], n - 3
    datas = [subset(data, m, 400, s) for s in seeds]
    steps = max(2, m // 25)
    keys = ("train_loss", "train_acc", "test_acc")

    def grouped(dtype, **kw) -> np.ndarray:
        res = train_mlp_groups(mlp_cfg(epochs=3, dtype=dtype), datas, seeds, rates, device, graph_steps=steps, **kw)
        return np.array([[h[k] for h in r.history for k in keys] for per in res for r in per])

    def separate(dtype) -> np.ndarray:
        out = []
        for s, d in zip(seeds, datas):
            res = train_mlp(mlp_cfg(epochs=3, dtype=dtype, seed=s), d, rates, device, graph_steps=steps)
            out += [[h[k] for h in r.history for k in keys] for r in res]
        return np.array(out)

    g64, s64 = grouped("float64"), separate("float64")
    how = "graphs" if device.type == "cuda" else "eager"
    row(
        "check",
        f"MLP 3 seeds batched == 3 runs (float64, {device.type} {how})",
        f"{np.abs(g64 - s64).max():.2e}",
        f"max abs diff; {m:,} rows per seed, {steps} steps per chunk",
    )
    if device.type == "cuda":
        g32, e32 = grouped("float32"), grouped("float32", cuda_graphs=False)
        row("check", "MLP 3 seeds batched: graphs == eager (float32)", f"{np.abs(g32 - e32).max():.2e}", "max abs diff")


# --- main -----------------------------------------------------------------------------------------


def memory_rows(data) -> None:
    """mlhw.memory on a real GPU: its memory as torch reports it, and an AlexNet whose weights fit this machine's
    memory but whose training state (gradients, Adam's moments) does not fit the GPU's: refused naming cuda:0."""
    from mlhw import memory
    from mlhw.config import CNNConfig

    gpu = memory.gpu_memory(torch.device("cuda", 0))
    row("memory", "GPU memory (mlhw.memory.gpu_memory)", f"{gpu / 1e9:.1f} GB" if gpu else "unknown")
    cpu = memory.machine_memory()
    for size in range(227, 1025, 16):
        cfg = CNNConfig(dataset="cifar10", width=16, image_size=size)
        drawn, trained = memory.least_bytes(cfg, data, on_cpu=False)[0], memory.trained_bytes(cfg, data)[0]
        if gpu and cpu and drawn <= cpu and trained > gpu:
            why = memory.too_large(cfg, data, "cuda")
            ok = why is not None and "cuda:0's" in why[1]
            row("memory", f"AlexNet width 16, {size} px: {trained / 1e9:.0f} GB as trained", "refused" if ok else "NOT")
            if not ok:
                row("error", "memory_rows", "not refused", str(why)[:90])
            return
    row("memory", "AlexNet width 16: no size fits the CPU and not the GPU", "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device: checks the script runs")
    ap.add_argument("--compile-only", action="store_true", help="only the torch.compile rows and the default beside")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    smoke = args.smoke or device.type != "cuda"
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability()
        name = f"{torch.cuda.get_device_name()} (compute capability {cap[0]}.{cap[1]})"
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"gpu_check: {name}; torch {torch.__version__}; smoke={smoke}", flush=True)
    if smoke:  # a CPU's Inductor compiles C++ for minutes: the compiled rows check their plumbing only
        torch.compile = functools.partial(torch.compile, backend="aot_eager")

    if smoke:
        cnn_train, cnn_epochs, nb_steps, mlp_n, sweep_n, check_n, eq_n = 128, 2, 1, 2_000, 1_000, 300, 70
    else:
        cnn_train, cnn_epochs, nb_steps, mlp_n, sweep_n, check_n, eq_n = 6_144, 3, 12, 50_000, 10_000, 5_000, 660
    small = synthetic_cifar(64, 9)
    if smoke:
        CNN_OVERRIDES.update(width=0.125, image_size=67)
    cnn_data = Dataset("synthetic", synthetic_cifar(cnn_train), small, small)
    if not smoke:
        row(
            "cnn",
            "training GFLOP per image (227 px)",
            f"{flops_per_image(AlexNet().to(device), (3, 227, 227)) / 1e9:.2f}",
        )
    peer = not smoke and not args.compile_only
    base = notebook_images_per_s(synthetic_cifar(nb_steps * 64 + 128, 5), device, nb_steps) if peer else None
    lab, prec = ("mlhw bf16", "bf16") if device.type == "cuda" else ("mlhw auto", "auto")
    compiled = [
        (f"{lab}: torch.compile + fused Adam + CUDA graph + space-to-depth", dict(precision=prec, compile=True))
    ]
    variants = [
        (f"{lab}: fused Adam + CUDA graph + space-to-depth (default)", dict(precision=prec)),
        (f"{lab}: plain first convolution (space-to-depth off)", dict(precision=prec, space_to_depth=False)),
        (f"{lab}: foreach Adam + CUDA graph", dict(precision=prec, fused=False)),
        (f"{lab}: fused Adam, eager steps", dict(precision=prec, cuda_graphs=False)),
        (f"{lab}: foreach Adam, eager (the old loop)", dict(precision=prec, fused=False, cuda_graphs=False)),
        ("mlhw fp32: fused Adam + CUDA graph", dict(precision="fp32")),
    ]
    warm_label = f"{lab}: compiled warm-up (reproduce --compile's GPU worker), then a compiled run"
    if args.compile_only:
        compile_rows(cnn_data, device, base, cnn_epochs, variants[0], compiled[0], eq_n, small, name)
        return
    if device.type == "cuda":
        variants += compiled + [
            ("mlhw fp16 + GradScaler + CUDA graph (the T4/V100 path)", dict(precision="fp16")),
            ("mlhw fp16 + GradScaler, eager steps (the path before)", dict(precision="fp16", cuda_graphs=False)),
            ("mlhw fp16 + GradScaler + torch.compile + CUDA graph", dict(precision="fp16", compile=True)),
        ]
    for label, kw in variants:
        mlhw_images_per_s(cnn_data, device, label, base, cnn_epochs, **kw)
    compiled_warm_up_row(cnn_data, device, warm_label, prec, cnn_epochs)
    for label, kw in (
        ("SGD 0.005, BatchNorm + Dropout", dict(optimizer="sgd", lr=0.005)),
        ("Adam 5e-5, no BatchNorm/Dropout", dict(batchnorm=False, dropout=False)),
    ):
        guarded(
            lambda label=label, kw=kw: row_variant(
                cnn_data, device, f"{lab} default: {label}", base, cnn_epochs, prec, kw
            )
        )()
    eval_rows(cnn_data, device)
    s2d_check(device)

    mlp_rows(device, mlp_n, sweep_n)
    mlp_checks(device, check_n)
    if device.type == "cuda":
        guarded(memory_rows)(cnn_data)
    eq_data = Dataset("synthetic", synthetic_cifar(eq_n, 7), small, small)  # 10 full batches + a tail of 20
    equal = [("fp32", "adam", 5e-5, 0.0), ("bf16", "adam", 5e-5, 0.0), ("bf16", "sgd", 0.005, 0.0)]
    if device.type == "cuda":  # fp16's scaled step, captured with the scale and the overflow flag on the device
        equal += [("fp16", "adam", 5e-5, 0.0), ("fp16", "sgd", 0.005, 0.9)]  # momentum: buffers through skipped steps
    for precision, optimizer, lr, momentum in equal:
        run_as = None if device.type == "cuda" else "fp32"  # a CPU's autocast is no check of the GPU's bf16
        guarded(cnn_equal)(eq_data, device, precision, optimizer, lr, run_as, momentum)
    if device.type == "cuda":
        guarded(cnn_equal)(eq_data, device, "bf16", compile=True)
    table(name)


def compile_rows(cnn_data, device, base, epochs, default, compiled, eq_n, small, name) -> None:
    """--compile-only: the default and the compiled step's img/s, and the compiled graphs == compiled eager."""
    for label, kw in (default, compiled):
        mlhw_images_per_s(cnn_data, device, label, base, epochs, **kw)
    lab = default[0].split(":")[0]
    compiled_warm_up_row(
        cnn_data, device, f"{lab}: compiled warm-up, then a compiled run", compiled[1]["precision"], epochs
    )
    eq_data = Dataset("synthetic", synthetic_cifar(eq_n, 7), small, small)
    run_as = None if device.type == "cuda" else "fp32"
    guarded(cnn_equal)(eq_data, device, "bf16", "adam", 5e-5, run_as, compile=True)
    table(name)


def table(name: str) -> None:
    print(f"\n## gpu_check on {name}, torch {torch.__version__}: {time.perf_counter() - T0:.0f} s\n")
    print("| part | what | value | note |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(x.replace("|", "/") for x in r) + " |")
    if any(r[0] == "error" for r in ROWS):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
