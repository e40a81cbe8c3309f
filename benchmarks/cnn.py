"""Part 2 benchmark: training images/s of mlhw's loop vs the original notebook's pipeline.

One process, one device, the paper model (AlexNet, 227 px, Adam) and the same synthetic CIFAR-shaped
uint8 images for both:
  notebook  torchvision-style dataset whose transform is PIL Resize((227, 227)) + ToTensor + Normalize,
            DataLoader(batch_size=64, shuffle=True), fp32, NCHW
  mlhw      mlhw.cnn.train_cnn: the split on the device as one uint8 tensor, index-slice batches
            converted/normalised/resized on the device, channels_last, bf16 autocast where native
            (`auto`), reported in fp32 too
Achieved GFLOP/s = images/s x training FLOPs per image (torch.utils.flop_counter, ~6.6 GFLOP at 227 px).

    uv run python benchmarks/cnn.py [--images 256]          # CPU: keep it short
    python benchmarks/cnn.py --images 4096 --grid            # GPU: also the whole paper grid, end to end
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlhw.cnn import AlexNet, flops_per_image, train_cnn
from mlhw.config import CNNConfig
from mlhw.data import CIFAR_MEAN, CIFAR_STD, Dataset, Split
from mlhw.reference import CNN_VARIANTS


def synthetic_cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.randint(0, 10, n).astype(np.int64)


def notebook_images_per_s(x, y, device, steps_timed: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms

    tf = transforms.Compose(
        [transforms.Resize((227, 227)), transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    )

    class Images(torch.utils.data.Dataset):  # what torchvision.datasets.CIFAR10 does per item
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return tf(Image.fromarray(x[i].transpose(1, 2, 0))), int(y[i])

    torch.manual_seed(0)
    model = AlexNet().to(device)
    opt = torch.optim.Adam(model.parameters(), 5e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(Images(), batch_size=64, shuffle=True)
    done, t0 = 0, None
    for step, (xb, yb) in enumerate(loader):
        if step == 1:  # the first step warms up (allocations, kernels); time the rest
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        if step >= 1:
            done += len(yb)
        if step == steps_timed:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t0)


def mlhw_images_per_s(x, y, device, precision: str) -> float:
    """The second of two epochs (the first includes warm-up), with a tiny validation/test split."""
    data = Dataset("synthetic", Split(x, y), Split(x[:2], y[:2]), Split(x[:2], y[:2]))
    res = train_cnn(CNNConfig(dataset="cifar10", epochs=2, width=1.0, image_size=227), data, device, precision)
    return res.history[-1]["images_per_s"]


def paper_grid(device, precision: str) -> None:
    """4 variants x 10 epochs on the CIFAR-sized split (4,500 train / 5,000 val / 10,000 test), synthetic."""
    tr, va, te = synthetic_cifar(4500, 1), synthetic_cifar(5000, 2), synthetic_cifar(10000, 3)
    data = Dataset("synthetic-cifar", Split(*tr), Split(*te), Split(*va))
    total = time.perf_counter()
    for name, fields in CNN_VARIANTS.items():
        t0 = time.perf_counter()
        res = train_cnn(CNNConfig(dataset="cifar10", **fields), data, device, precision)
        ips = np.mean([h["images_per_s"] for h in res.history[1:]])
        print(f"  {name:<18} {time.perf_counter() - t0:7.1f} s  ({ips:.0f} train img/s after epoch 1)")
    print(f"  paper grid end to end: {time.perf_counter() - total:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256, help="synthetic training images (multiple of 64)")
    ap.add_argument("--grid", action="store_true", help="also run the whole paper grid (GPU)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of the GPU, for the %% of peak")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = synthetic_cifar(args.images)
    flops = flops_per_image(AlexNet().to(device), (3, 227, 227))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"AlexNet 227 px, batch 64, Adam, {args.images} synthetic images; {name}; "
        f"{flops / 1e9:.2f} GFLOP per image per training step"
    )
    rates = {
        "notebook (PIL + DataLoader, fp32)": notebook_images_per_s(x, y, device, args.images // 64 - 1),
        "mlhw (fp32)": mlhw_images_per_s(x, y, device, "fp32"),
        "mlhw (auto precision)": mlhw_images_per_s(x, y, device, "auto"),
    }
    base = rates["notebook (PIL + DataLoader, fp32)"]
    print(f"{'pipeline':<36}{'img/s':>9}{'GFLOP/s':>10}{'vs notebook':>13}")
    for k, v in rates.items():
        print(f"{k:<36}{v:>9.1f}{v * flops / 1e9:>10.1f}{v / base:>12.2f}x")
    if args.peak_tflops:
        best = max(rates["mlhw (fp32)"], rates["mlhw (auto precision)"]) * flops / 1e12
        print(f"mlhw achieves {100 * best / args.peak_tflops:.1f}% of the {args.peak_tflops:g} TFLOP/s bf16 peak")
    if args.grid:
        paper_grid(device, "auto")


if __name__ == "__main__":
    main()
