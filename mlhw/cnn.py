"""Part 2: the assignment's AlexNet and a device-resident training loop (in the style of airbench).

The whole split lives on the device as one tensor (uint8 for CIFAR-10); a batch is an index slice,
converted, normalised and resized (bilinear) on the device. No PIL, no DataLoader, no workers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlhw.data import Dataset, Split, channel_stats
from mlhw.device import DeviceCaps, device_caps, select_precision
from mlhw.divergence import descending, is_diverged
from mlhw.errors import MLHWError
from mlhw.topology import CONVS, MIN_IMAGE_SIZE, STOCK_CHANNELS, STOCK_HIDDEN, feature_size

if TYPE_CHECKING:  # the core needs only the config's fields (and stays importable without pydantic)
    from mlhw.config import CNNConfig


def space_to_depth_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int):
    """conv2d(x, weight, bias, stride, padding) computed as a stride-1 convolution on a rearranged input.

    Each s x s block of the input becomes s*s*C channels of one pixel (space-to-depth), and the k x k
    kernel, zero-padded to a multiple of s, becomes a ceil(k/s) x ceil(k/s) kernel over those channels:
    out[i] = sum_kh x[s*i + kh] w[kh], with kh = s*a + d, reads block i + a at offset d. Same sum,
    another order (equal to rounding). Why: AlexNet's first convolution (3 channels, 11 x 11, stride 4)
    is a poor fit for GPU tensor cores (cuDNN pads the 3 channels to 8 and runs an Ampere-era kernel);
    the rearranged one (48 channels, 3 x 3, stride 1) is an ordinary convolution. The parameters are the
    original ones: autograd takes the gradient through the rearrangement."""
    s, k = stride, weight.shape[-1]
    if padding:
        x = F.pad(x, (padding,) * 4)
    n, c, h, w = x.shape
    blocks = -(-k // s)  # ceil(k / s): the rearranged kernel's side
    out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
    need_h, need_w = s * (out_h - 1 + blocks), s * (out_w - 1 + blocks)  # rows the blocks cover
    x = x[:, :, :need_h, :need_w]
    if need_h > x.shape[2] or need_w > x.shape[3]:  # the last block reaches past the input: zeros, read by zero weights
        x = F.pad(x, (0, need_w - x.shape[3], 0, need_h - x.shape[2]))
    # NHWC order, so a channels_last input is rearranged by one copy: channel index (di * s + dj) * c + c_in
    x = x.permute(0, 2, 3, 1).reshape(n, need_h // s, s, need_w // s, s, c).transpose(2, 3)
    x = x.reshape(n, need_h // s, need_w // s, s * s * c).permute(0, 3, 1, 2)
    o = weight.shape[0]
    wt = F.pad(weight, (0, blocks * s - k, 0, blocks * s - k)).reshape(o, c, blocks, s, blocks, s)
    wt = wt.permute(0, 3, 5, 1, 2, 4).reshape(o, s * s * c, blocks, blocks)
    if x.is_contiguous(memory_format=torch.channels_last):
        wt = wt.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, wt, bias)


class Conv2d(nn.Conv2d):
    """nn.Conv2d that, with `space_to_depth` set, computes a strided convolution by space_to_depth_conv
    (same parameters, same state_dict). Set by train_cnn on CUDA for AlexNet's first layer."""

    space_to_depth = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, pad = self.stride[0], self.padding[0]
        if self.space_to_depth and stride > 1 and self.groups == 1 and self.dilation == (1, 1):
            return space_to_depth_conv(x, self.weight, self.bias, stride, pad)
        return super().forward(x)


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
                f"--image-size {image_size} is too small for AlexNet's topology: the minimum is {MIN_IMAGE_SIZE} px"
            )
        channels = [max(1, round(c * width)) for c in STOCK_CHANNELS]
        hidden = max(1, round(STOCK_HIDDEN * width))
        layers, c_in = [], in_channels
        for c_out, (k, stride, pad, pool) in zip(channels, CONVS):
            layers.append(Conv2d(c_in, c_out, k, stride, pad))
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


# cuDNN autotuning of the training batch's shapes (see train_cnn); its cache lives in the process.
CUDNN_AUTOTUNE = True
# How many of its algorithms cuDNN tries per shape when it autotunes, in the order of its heuristics (torch's
# default: 10). Measured on an H100 (benchmarks/gpu_warmup.py, a fresh process, a paper-sized AlexNet run):
# the first run of a process took 17.4 s with 10, 12.6 s with 3, 11.5 s with none tried (heuristics alone);
# the warm training rate 17,148-17,220 img/s with 10, 17,020-17,124 with 3, 16,766-16,789 with none.
CUDNN_AUTOTUNE_LIMIT = 3


@contextlib.contextmanager
def cudnn_autotune(on: bool, limit: int | None = None):
    """cuDNN tries its algorithms for each new shape and keeps the fastest (on; at most `limit` of them,
    default CUDNN_AUTOTUNE_LIMIT, 0 = all), or picks one by its heuristics (off). Scoped, so that the
    process-wide settings are left as they were."""
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit
    torch.backends.cudnn.benchmark = on
    torch.backends.cudnn.benchmark_limit = CUDNN_AUTOTUNE_LIMIT if limit is None else limit
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit = before


AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device | str, caps: DeviceCaps | None = None) -> torch.dtype | None:
    """The autocast dtype (None: fp32) for --precision auto|fp32|bf16|fp16 on `device`; the rule is
    mlhw.device.select_precision (auto: bf16 where native, fp16 on CUDA GPUs older than compute
    capability 8.0, else fp32). `caps` injects the hardware (tests)."""
    return AMP_DTYPES[select_precision(precision, caps or device_caps(device))]


def precision_name(amp: torch.dtype | None) -> str:
    return next(k for k, v in AMP_DTYPES.items() if v == amp)


@dataclass
class CNNResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    diverged_epoch: int | None = None  # the epoch whose training loss diverged (mlhw.divergence); the run stops there
    seconds: float = 0.0
    parameters: int = 0
    precision: str = "fp32"  # fp32, bf16 or fp16 (the resolved --precision)
    cuda_graphs: bool = False  # full training batches replayed from one captured CUDA graph
    optimizer_impl: str = "default"  # optimizer_impl(): "fused" (one kernel for every parameter), "foreach", "default"
    eval_batch: int = 256
    space_to_depth: bool = False  # the first convolution computed by space_to_depth_conv


@torch.no_grad()
def evaluate(
    model: nn.Module, split: DeviceSplit, amp: torch.dtype | None, chunk: int = 256, pad: bool = False
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the split, `chunk` images per forward pass. pad: the last
    chunk is padded to the full size (repeating the last image; its rows are dropped), so that the
    GPU sees one shape per process (cuDNN's plans and the allocator's blocks are reused)."""
    model.eval()
    dev = split.x.device
    n = len(split)
    loss, hits = torch.zeros((), device=dev), torch.zeros((), device=dev)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        idx = torch.arange(i, i + (chunk if pad else m), device=dev).clamp_(max=n - 1)
        x, y = split.batch(idx)
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(x)[:m]  # eval mode: every row is independent of the padding
        y = y[:m]
        loss += F.cross_entropy(out.float(), y, reduction="sum")
        hits += (out.argmax(1) == y).sum()
    total_loss, total_hits = torch.stack([loss, hits.float()]).tolist()  # one sync
    return total_loss / max(1, n), total_hits / max(1, n)


def build_model(cfg: CNNConfig, data: Dataset) -> AlexNet:
    return AlexNet(data.n_classes, data.image_shape[0], cfg.batchnorm, cfg.dropout, cfg.width, cfg.image_size)


def make_optimizer(
    cfg: CNNConfig, params, fused: bool | None = None, capturable: bool = False
) -> torch.optim.Optimizer:
    """SGD or Adam. fused: one kernel over every parameter instead of a loop over them. None = where it
    is faster: on CUDA always; on a CPU for Adam only. Measured on this project's 2-core CPU over
    AlexNet's 58M parameters: an Adam step takes 0.17 s fused vs 1.66 s (default for-loop) and 1.10 s
    (foreach), same arithmetic, rounding differs by ~1e-8; a plain SGD step takes 0.57 s fused vs 0.18 s.
    capturable: Adam's step count lives on the device (CUDA graphs)."""
    params = list(params)
    on_cuda = bool(params) and params[0].device.type == "cuda"
    if cfg.optimizer == "sgd":
        cls, kw = torch.optim.SGD, {"lr": cfg.lr, "momentum": cfg.momentum}
    else:
        cls, kw = torch.optim.Adam, {"lr": cfg.lr} | ({"capturable": True} if capturable else {})
    opt = None
    if fused is not False and (fused or on_cuda or cfg.optimizer == "adam"):
        try:
            opt = cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError) as err:  # no fused kernel for this device in this torch
            if fused:
                raise MLHWError(f"fused {cfg.optimizer} is not available (torch {torch.__version__}): {err}") from None
    opt = opt or cls(params, **kw)
    if cfg.optimizer == "sgd" and cfg.momentum:
        # Momentum buffers made here, as zeros: a first step then sets 0 * momentum + grad = grad, what torch's own
        # first step sets, bit for bit. Left to itself, torch's fused SGD makes them with empty_like at its first
        # step, and when fp16's GradScaler skips that step (overflowed gradients) they stay uninitialised memory
        # that every later step reads as momentum.
        for p in params:
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return opt


def step_capturable(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> bool:
    """Whether a training step with `opt` (and fp16's gradient scaler) can be captured in a CUDA graph: a graph
    cannot hold a host read. Without a scaler there is none. With one, GradScaler hands a fused optimizer
    (`_step_supports_amp_scaling`: torch's fused Adam and SGD) the scale and the overflow flag as device tensors and
    the kernel skips an overflowed step itself; any other optimizer is stepped only after the host has read the
    overflow flag (`.item()`), a sync per step."""
    return scaler is None or bool(getattr(opt, "_step_supports_amp_scaling", False))


def optimizer_impl(opt: torch.optim.Optimizer) -> str:
    d = opt.defaults
    return "fused" if d.get("fused") else "foreach" if d.get("foreach") else "default"


class TrainStep:
    """One training step on the batch of images `idx`; the loss and the hits are added to device
    accumulators (no host sync). The same code runs eagerly and under CUDA-graph capture."""

    def __init__(self, model, forward, opt, scaler, train: DeviceSplit, amp, device: torch.device):
        self.model, self.forward, self.opt, self.scaler, self.train, self.amp = model, forward, opt, scaler, train, amp
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.hits = torch.zeros((), device=device, dtype=torch.long)

    def __call__(self, idx: torch.Tensor, forward=None) -> None:
        x, y = self.train.batch(idx)
        # cache_enabled=False: autocast's weight cache cannot live across CUDA-graph replays (each weight
        # is used once per forward here, so the cache saves nothing anyway).
        with torch.autocast(
            self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None, cache_enabled=False
        ):
            out = (self.forward if forward is None else forward)(x)
        loss = F.cross_entropy(out.float(), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.loss_sum += loss.detach() * len(y)
        self.hits += (out.argmax(1) == y).sum()

    def eager(self, idx: torch.Tensor, forward=None) -> None:
        """One step outside any graph; `forward`: the network for this batch (default: the step's own)."""
        self.opt.zero_grad(set_to_none=True)
        self(idx, forward)

    def capture(self, batch_size: int, warmup: int = 3) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """Capture one full training step on a static index buffer (PyTorch's whole-network recipe:
        warm up on a side stream, capture with the gradients unset), then undo the warm-up steps:
        parameters, BatchNorm statistics, optimizer state, fp16's loss scale, dropout RNG and accumulators are put back,
        so replaying the graph computes what the eager loop computes from the same start."""
        dev = self.device
        idx = torch.arange(batch_size, device=dev) % len(self.train)
        saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        scaling = self.scaler.state_dict() if self.scaler is not None else None  # fp16's loss scale, before the warm-up
        rng = torch.cuda.get_rng_state(dev)
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self.eager(idx)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self(idx)
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(saved[k])
            for state in self.opt.state.values():  # a fresh Adam/SGD-momentum state is all zeros
                for t in state.values():
                    if torch.is_tensor(t):
                        t.zero_()
        if scaling is not None:
            self.scaler.load_state_dict(scaling)  # in place: the graph holds the scale and growth tensors
        torch.cuda.set_rng_state(rng, dev)
        self.loss_sum.zero_(), self.hits.zero_()
        return graph, idx


def train_cnn(
    cfg: CNNConfig,
    data: Dataset,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    compile: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
    *,
    cuda_graphs: bool | None = None,
    fused: bool | None = None,
    eval_batch: int | None = None,
    space_to_depth: bool | None = None,
) -> CNNResult:
    """Train one variant for cfg.epochs on data.train, validate every epoch on data.val, test at the end.

    Per epoch: mean training loss and accuracy (over the epoch's batches, in train mode), validation
    loss and accuracy, epoch seconds and images/s. A training loss that diverges (mlhw.divergence:
    non-finite, or > 10 ln(n_classes) and not falling; the first epoch has no earlier loss, so the threshold alone
    judges it) stops the run after that epoch, with `diverged_epoch` set:
    a result, not an error.

    cuda_graphs (None = on for CUDA, except fp16 with an unfused optimizer: step_capturable): every full batch is
    one replay of a captured training step (batch preparation, forward, backward, fp16's loss scaling, optimizer,
    loss and accuracy sums); the last, partial batch runs eagerly.
    compile: the full batches' forward and backward by torch.compile (Inductor's kernels: BatchNorm and ReLU
    fused, the casts folded into their neighbours), captured in the CUDA graph as the eager modules are; the
    first step pays the compilation (25 s on an H200's machine), then 23,667 img/s against 19,223 (H200, 2026-11-29,
    benchmarks/gpu_compile.py). The last, partial batch runs the eager modules: its other shape would compile
    the network again. fused: see make_optimizer. eval_batch: images per evaluation
    pass (None: 1024 on CUDA, padded to one shape; 256 on a CPU). space_to_depth (None = on for CUDA):
    the first convolution by space_to_depth_conv (measured on an H100: +13% training img/s).

    cuDNN autotunes (tries its algorithms, keeps the fastest) only the shapes of the full training
    batch, which is nearly all the work; evaluation and the last, partial batch use its heuristics.
    Measured on an H100: autotuning every shape made the first run of a process 7.7 s slower.
    """
    device = torch.device(device)
    if data.val is None:
        raise MLHWError(f"{data.name} has no validation split (use data.with_validation)")
    amp = resolve_precision(precision, device)
    torch.manual_seed(cfg.seed)  # initialisation and dropout
    shuffle = torch.Generator().manual_seed(cfg.seed)
    cuda = device.type == "cuda"
    tune = cuda and CUDNN_AUTOTUNE
    mean, std = channel_stats(data)
    train, val, test = (DeviceSplit(s, device, mean, std, cfg.image_size) for s in (data.train, data.val, data.test))
    model = build_model(cfg, data).to(device, memory_format=torch.channels_last)
    model.features[0].space_to_depth = cuda if space_to_depth is None else space_to_depth
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    opt = make_optimizer(cfg, model.parameters(), fused=fused, capturable=cuda)
    graphs = cuda and cuda_graphs is not False and step_capturable(opt, scaler)
    eval_batch = eval_batch or (1024 if cuda else 256)
    result = CNNResult(
        parameters=count_parameters(model),
        precision=precision_name(amp),
        cuda_graphs=graphs,
        optimizer_impl=optimizer_impl(opt),
        eval_batch=eval_batch,
    )
    result.space_to_depth = model.features[0].space_to_depth
    step = TrainStep(model, torch.compile(model) if compile else model, opt, scaler, train, amp, device)
    n, bs = len(train), cfg.batch_size
    graph = static_idx = None
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        if graphs and graph is None and n >= bs:  # captured once per run, inside epoch 1's time
            with cudnn_autotune(tune):
                graph, static_idx = step.capture(bs)
        perm = torch.randperm(n, generator=shuffle).to(device)
        step.loss_sum.zero_(), step.hits.zero_()
        seen = 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if len(idx) < 2 and cfg.batchnorm:
                continue  # BatchNorm cannot train on a single image
            if graph is not None and len(idx) == bs:
                static_idx.copy_(idx)
                graph.replay()
            else:
                with cudnn_autotune(tune and len(idx) == bs):
                    step.eager(idx, model if compile and len(idx) != bs else None)
            seen += len(idx)
        train_loss, hits = torch.stack([step.loss_sum, step.hits.float()]).tolist()  # the epoch's one sync
        # no image trained on (validation refuses such a split): NaN, not a loss of 0 that reads as perfect
        train_loss, train_acc = (train_loss / seen, hits / seen) if seen else (math.nan, math.nan)
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, val, amp, eval_batch, pad=cuda)
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
        if is_diverged(train_loss, data.n_classes, descending([h["train_loss"] for h in result.history])):
            result.diverged_epoch = epoch
            break
    result.test_loss, result.test_acc = evaluate(model, test, amp, eval_batch, pad=cuda)
    result.seconds = time.perf_counter() - t_start
    return result


def warm_up(
    cfg: CNNConfig, data: Dataset, device: torch.device | str, precision: str = "auto", compile: bool = False
) -> None:
    """Pay a process's one-time costs of AlexNet on `device` before its first run: one epoch of cfg's model on a
    few of data's images (two full batches, the capture and a replay, and a partial one; one evaluation pass),
    through train_cnn itself, so that the shapes, dtypes and kernels are the real run's. What stays is what a
    process keeps: the kernels CUDA loads on first use, cuDNN's autotuned algorithms for the training batch (its
    cache is keyed by shape), the allocator's blocks, torch._dynamo (torch.optim's first optimizer imports it: 2.3 s
    on this project's 2-core CPU). Measured on an H100 (benchmarks/gpu_warmup.py): a fresh
    process's first paper-sized run took 12.6 s, its second 4.5 s; its first epoch 9.4 s vs 1.2 s, with or
    without autotuning. --jobs N workers on a GPU call this while the parent still checks and creates the store.
    Nothing a run reads is left changed: the random generators are restored (and every run seeds its own).
    `compile` (reproduce --compile): the warm-up's full batches go through torch.compile too, so that the
    compilation (25-31 s on an H200) is paid here, not inside the first run's epoch: torch._dynamo keeps the graph
    for the process, and a later run's new model of the same config takes it without compiling again."""
    device = torch.device(device)
    bs = cfg.batch_size
    train = data.train.take(np.arange(min(len(data.train), 2 * bs + max(2, bs // 3))))
    few = data.test.take(np.arange(min(len(data.test), 8)))  # evaluation pads its one chunk to the full shape
    small = Dataset(data.name, train, few, few, n_classes=data.n_classes)
    one_epoch = SimpleNamespace(**(vars(cfg) | {"epochs": 1}))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        train_cnn(one_epoch, small, device, precision, compile)


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
