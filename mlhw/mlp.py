"""Part 1: a fully connected ReLU network with hand-written backprop, trained by the assignment's SGD.

No autograd on the training path. The network is the skeleton's: `sizes = [n_in, 40, 10]`,
ReLU hidden layers, a linear output, softmax + cross-entropy, weights and biases ~ N(0, 1).

`Network` holds R independent copies ("replicas") of that network in stacked tensors, so the
learning-rate sweep of part (b) trains all six rates in one computation on the same data order:
  weights[l]: (R, n_out, n_in)      biases[l]: (R, 1, n_out)
Activations are rows (replica, batch, features). Every layer is a batched matmul, and the first
layer, whose input all replicas share, is one wide (batch x n_in) @ (n_in x R*n_hidden) matmul:
the whole sweep costs about one network R times as wide, not R networks.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mlhw.config import MLPConfig
from mlhw.data import Dataset, unit_float

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Network:
    def __init__(
        self,
        sizes: Sequence[int],
        replicas: int = 1,
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.sizes, self.replicas = list(sizes), replicas
        g = torch.Generator().manual_seed(seed)
        # One fresh network, drawn in float64 on the CPU (same numbers on every device and dtype),
        # copied into every replica: each learning rate starts from the same initial point.
        self.weights, self.biases = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64)
            b = torch.randn(1, n_out, generator=g, dtype=torch.float64)
            self.weights.append(w.expand(replicas, -1, -1).to(device, dtype).contiguous())
            self.biases.append(b.expand(replicas, -1, -1).to(device, dtype).contiguous())

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for wb in zip(self.weights, self.biases) for p in wb]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x: (B, n_in). Returns each layer's input activations and the logits (R, B, n_out)."""
        w0, b0 = self.weights[0], self.biases[0]
        # First layer: the replicas share x, so it is one (B, n_in) @ (n_in, R * n_hidden) matmul.
        z = torch.addmm(b0.view(-1), x, w0.view(-1, w0.shape[2]).T)
        z = z.view(x.shape[0], self.replicas, -1).transpose(0, 1)
        acts = [x]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            a = z.clamp_min(0)  # relu
            acts.append(a)
            z = torch.baddbmm(b, a, w.transpose(1, 2))
        return acts, z

    def backprop(
        self, x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None = None, update: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Gradients of the cross-entropy summed over the batch, w.r.t. every weight and bias.

        x: (B, n_in); y: one-hot (B, n_out). Output delta = softmax(z) - y (Q4), hidden delta
        = delta W * relu'(z). Gradients are multiplied by `scale` (R, 1, 1) when given.
        With `update=True` they are added into the parameters in place (the fused SGD step,
        no gradient tensors kept) and nothing is returned.
        """
        acts, z = self.forward(x)
        delta = torch.softmax(z, dim=2).sub_(y)
        if scale is not None:
            delta.mul_(scale)
        grads = []
        for layer in reversed(range(len(self.weights))):
            w, b, a = self.weights[layer], self.biases[layer], acts[layer]
            # The next delta needs this layer's weights before they change.
            below = torch.bmm(delta, w) if layer > 0 else None
            gb = delta.sum(1, keepdim=True)
            if layer == 0:  # shared input: one wide matmul for every replica's first layer
                flat = delta.transpose(0, 1).reshape(delta.shape[1], -1)  # (B, R * n_hidden)
                if update:
                    w.view(-1, w.shape[2]).addmm_(flat.T, a)
                else:
                    grads.append((torch.mm(flat.T, a).view_as(w), gb))
            elif update:
                w.baddbmm_(delta.transpose(1, 2), a)
            else:
                grads.append((torch.bmm(delta.transpose(1, 2), a), gb))
            if update:
                b.add_(gb)
            if below is not None:  # relu'(z) is 1 where the layer's output a = relu(z) is > 0
                delta = torch.ops.aten.threshold_backward(below, a, 0)
        return None if update else grads[::-1]

    def sgd_step(self, x: torch.Tensor, y: torch.Tensor, lrs: torch.Tensor) -> None:
        """The skeleton's update: w -= lr / len(batch) * (sum of per-example gradients)."""
        self.backprop(x, y, scale=(-lrs / x.shape[0]).view(-1, 1, 1), update=True)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, labels: torch.Tensor, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy of every replica on (x, labels)."""
        loss = torch.zeros(self.replicas, dtype=torch.float64, device=x.device)
        hits = torch.zeros(self.replicas, dtype=torch.float64, device=x.device)
        for i in range(0, len(labels), chunk):
            _, z = self.forward(x[i : i + chunk])
            lab = labels[i : i + chunk]
            picked = z.gather(2, lab.view(1, -1, 1).expand(self.replicas, -1, 1)).squeeze(2)
            loss += (torch.logsumexp(z, dim=2) - picked).sum(1).double()
            hits += (z.argmax(2) == lab).sum(1).double()
        n = len(labels)
        return (loss / n).cpu().numpy(), (hits / n).cpu().numpy()


@dataclass
class MLPResult:
    lr: float
    history: list[dict] = field(default_factory=list)  # one row per epoch, epoch 0 before training
    diverged_epoch: int | None = None  # first epoch whose training loss was NaN or inf
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.history[-1]


@contextlib.contextmanager
def step_threads(net: Network, batch_size: int):
    """Run tiny SGD steps on one CPU thread: below a few million multiply-adds per step, handing
    work to a second thread costs more than it saves (measured: 0.068 s vs 0.095 s per epoch for
    784-40-10 with batch 10 on a 2-core CPU). Larger steps keep torch's thread count."""
    macs = net.replicas * batch_size * sum(a * b for a, b in zip(net.sizes[:-1], net.sizes[1:]))
    before = torch.get_num_threads()
    if macs < 4_000_000:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepare(data: Dataset, device, dtype: torch.dtype):
    """Flatten to (N, n_features) on the device once; labels as indices and one-hot rows."""

    def split(s):
        x = torch.from_numpy(unit_float(s.x).reshape(len(s), -1)).to(device, dtype)
        y = torch.from_numpy(s.y).to(device)
        return x, y

    return split(data.train), split(data.test)


def train_mlp(
    cfg: MLPConfig,
    data: Dataset,
    lrs: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, list[dict]], None] | None = None,
) -> list[MLPResult]:
    """Train one fresh network per learning rate (default: cfg.lr), all on the same data order.

    Returns one MLPResult per rate. Every epoch (and epoch 0, before training) records the
    training loss and accuracy on the whole training set and the test accuracy. A rate whose
    loss becomes NaN/inf is recorded as diverged and keeps its (non-finite) curve.
    """
    lrs = [cfg.lr] if lrs is None else list(lrs)
    dtype = DTYPES[cfg.dtype]
    (xtr, ytr), (xte, yte) = prepare(data, device, dtype)
    onehot = torch.nn.functional.one_hot(ytr, data.n_classes).to(dtype)
    net = Network([xtr.shape[1], *cfg.hidden, data.n_classes], len(lrs), cfg.seed, device, dtype)
    rates = torch.tensor(lrs, dtype=dtype, device=device)
    # sgd_step's -lr/len(batch), computed once for the full and the last (partial) batch size
    scales = {m: (-rates / m).view(-1, 1, 1) for m in {cfg.batch_size, len(ytr) % cfg.batch_size} if m}
    shuffle = torch.Generator().manual_seed(cfg.seed)
    results = [MLPResult(lr) for lr in lrs]
    n, bs = len(ytr), cfg.batch_size

    def record(epoch: int, seconds: float) -> None:
        tr_loss, tr_acc = net.evaluate(xtr, ytr)
        _, te_acc = net.evaluate(xte, yte)
        rows = []
        for r, res in enumerate(results):
            loss = float(tr_loss[r])
            row = {
                "epoch": epoch,
                "train_loss": loss,
                "train_acc": float(tr_acc[r]),
                "test_acc": float(te_acc[r]),
                "epoch_seconds": seconds,
            }
            if res.diverged_epoch is None and not math.isfinite(loss):
                res.diverged_epoch = epoch
            res.history.append(row)
            res.seconds += seconds
            rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch, rows)

    with torch.inference_mode():  # no autograd bookkeeping: the gradients are written by hand
        record(0, 0.0)
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=shuffle).to(device)
            xs, ys = xtr[perm], onehot[perm]  # one gather per epoch; batches are slices of it
            with step_threads(net, bs):
                for i in range(0, n, bs):
                    m = min(bs, n - i)
                    net.backprop(xs[i : i + m], ys[i : i + m], scales[m], update=True)
            if xs.is_cuda:
                torch.cuda.synchronize()
            record(epoch, time.perf_counter() - t0)
    return results
