"""Part 2: the assignment's AlexNet and a device-resident training loop (in the style of airbench).

The whole split lives on the device as one tensor (uint8 for CIFAR-10); a batch is an index slice,
converted, normalised and resized (bilinear) on the device. No PIL, no DataLoader, no workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlhw.config import CNNConfig
from mlhw.data import Dataset, Split, channel_stats
from mlhw.errors import MLHWError

STOCK_CHANNELS = (96, 256, 384, 384, 256)
STOCK_HIDDEN = 4096
# (kernel, stride, padding, max-pool after) of the five convolutions
CONVS = ((11, 4, 0, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, True))


def feature_size(image_size: int) -> int:
    """Side of the conv stack's output for a square input (< 1: the input is too small)."""
    s = image_size
    for k, stride, pad, pool in CONVS:
        s = (s + 2 * pad - k) // stride + 1
        if pool:
            s = (s - 3) // 2 + 1
        if s < 1:
            return 0
    return s


@functools.cache
def min_image_size() -> int:
    return next(s for s in range(1, 1024) if feature_size(s) >= 1)


class AlexNet(nn.Module):
    """conv(3->96, k11, s4) [BN] ReLU pool; conv(96->256, k5, p2) [BN] ReLU pool; conv(256->384, k3) [BN]
    ReLU; conv(384->384) [BN] ReLU; conv(384->256) [BN] ReLU pool; flatten; [Dropout] Linear(9216, 4096)
    ReLU; [Dropout] Linear(4096, 4096) ReLU; Linear(4096, 10). `width` scales channels and hidden units."""

    def __init__(
        self,
        n_classes: int = 10,
        in_channels: int = 3,
        batchnorm: bool = True,
        dropout: bool = True,
        width: float = 1.0,
        image_size: int = 227,
    ):
        super().__init__()
        side = feature_size(image_size)
        if side < 1:
            raise MLHWError(
                f"--image-size {image_size} is too small for AlexNet's topology: the minimum is {min_image_size()} px"
            )
        channels = [max(1, round(c * width)) for c in STOCK_CHANNELS]
        hidden = max(1, round(STOCK_HIDDEN * width))
        layers, c_in = [], in_channels
        for c_out, (k, stride, pad, pool) in zip(channels, CONVS):
            layers.append(nn.Conv2d(c_in, c_out, k, stride, pad))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        drop = (lambda: [nn.Dropout(0.5)]) if dropout else (lambda: [])
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *drop(),
            nn.Linear(c_in * side * side, hidden),
            nn.ReLU(inplace=True),
            *drop(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class DeviceSplit:
    """One split resident on the device; `batch(idx)` makes network-ready inputs from an index slice."""

    def __init__(self, split: Split, device: torch.device, mean, std, image_size: int):
        self.x = torch.from_numpy(np.ascontiguousarray(split.x)).to(device)  # uint8 stays uint8: 4x less memory
        self.y = torch.from_numpy(split.y).to(device)
        c = self.x.shape[1]
        self.mean = torch.tensor(mean, device=device).view(1, c, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, c, 1, 1)
        self.size = image_size

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean) / self.std  # per-channel affine: commutes with the bilinear resize
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=torch.channels_last), self.y[idx]


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 autocast where the hardware has native bf16 (CUDA; CPUs with AVX512-BF16 or AMX,
    where oneDNN's bf16 convolutions train AlexNet 1.7x faster), else fp32 (None)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise MLHWError(f"--precision {precision!r}: use auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    with contextlib.suppress(Exception):
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
    return None


@dataclass
class CNNResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    diverged_epoch: int | None = None
    seconds: float = 0.0
    parameters: int = 0
    precision: str = "fp32"


@torch.no_grad()
def evaluate(model: nn.Module, split: DeviceSplit, amp: torch.dtype | None, chunk: int = 256) -> tuple[float, float]:
    model.eval()
    loss, hits = torch.zeros((), device=split.x.device), torch.zeros((), device=split.x.device)
    for i in range(0, len(split), chunk):
        idx = torch.arange(i, min(i + chunk, len(split)), device=split.x.device)
        x, y = split.batch(idx)
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x)
        loss += F.cross_entropy(out.float(), y, reduction="sum")
        hits += (out.argmax(1) == y).sum()
    n = max(1, len(split))
    return float(loss) / n, float(hits) / n


def build_model(cfg: CNNConfig, data: Dataset) -> AlexNet:
    return AlexNet(data.n_classes, data.image_shape[0], cfg.batchnorm, cfg.dropout, cfg.width, cfg.image_size)


def make_optimizer(cfg: CNNConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr)


def train_cnn(
    cfg: CNNConfig,
    data: Dataset,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    compile: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> CNNResult:
    """Train one variant for cfg.epochs on data.train, validate every epoch on data.val, test at the end.

    Per epoch: mean training loss and accuracy (over the epoch's batches, in train mode), validation
    loss and accuracy, epoch seconds and images/s. A non-finite training loss stops the run after
    that epoch, with `diverged_epoch` set: a result, not an error.
    """
    device = torch.device(device)
    if data.val is None:
        raise MLHWError(f"{data.name} has no validation split (use data.with_validation)")
    amp = resolve_precision(precision, device)
    torch.manual_seed(cfg.seed)  # initialisation and dropout
    shuffle = torch.Generator().manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    mean, std = channel_stats(data)
    train, val, test = (DeviceSplit(s, device, mean, std, cfg.image_size) for s in (data.train, data.val, data.test))
    model = build_model(cfg, data).to(device, memory_format=torch.channels_last)
    result = CNNResult(parameters=count_parameters(model), precision="bf16" if amp else "fp32")
    opt = make_optimizer(cfg, model.parameters())
    step_fn = torch.compile(model) if compile else model
    n, bs = len(train), cfg.batch_size
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), device=device)
        seen = 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if len(idx) < 2 and cfg.batchnorm:
                continue  # BatchNorm cannot train on a single image
            x, y = train.batch(idx)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = step_fn(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)  # stays on the device: no sync per step
            hits += (out.argmax(1) == y).sum()
            seen += len(idx)
        train_loss, train_acc = float(loss_sum) / max(1, seen), float(hits) / max(1, seen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, val, amp)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_seconds": seconds,
            "images_per_s": seen / seconds if seconds else 0.0,
        }
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if not math.isfinite(train_loss):
            result.diverged_epoch = epoch
            break
    result.test_loss, result.test_acc = evaluate(model, test, amp)
    result.seconds = time.perf_counter() - t_start
    return result


def flops_per_image(model: nn.Module, image_shape: tuple[int, int, int]) -> float:
    """Training FLOPs per image per step (forward + backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.train()
    x = torch.zeros(2, *image_shape, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was)
    return counter.get_total_flops() / 2
