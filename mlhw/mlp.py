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
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from mlhw.data import Dataset, unit_float
from mlhw.device import mlp_device
from mlhw.divergence import is_diverged

if TYPE_CHECKING:  # the core needs only the config's fields (and stays importable without pydantic)
    from mlhw.config import MLPConfig

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
    diverged_epoch: int | None = None  # first epoch >= 1 whose training loss diverged (mlhw.divergence)
    seconds: float = 0.0
    device: str = "cpu"  # where it trained (under --device auto: mlhw.device.mlp_device's choice)
    cuda_graphs: bool = False  # SGD steps replayed from CUDA graphs

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


def sgd_rows(net: Network, x: torch.Tensor, y: torch.Tensor, batch_size: int, scales: dict) -> None:
    """SGD over the rows of (x, y) in order, `batch_size` rows per step (the last step may be smaller)."""
    n = len(x)
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        net.backprop(x[i : i + m], y[i : i + m], scales[m], update=True)


class GraphedEpoch:
    """An epoch of SGD steps replayed from CUDA graphs: the same kernels on the same numbers as eager.

    The epoch's rows are taken `chunk_steps` batches at a time: one gather of the chunk's shuffled
    rows into static buffers (gx, gy), then one graph replay runs its steps (the eager loop, captured
    once). A run captures at most two graphs: full chunks, and the last, shorter chunk (whose last
    batch may be partial). The parameters are updated in place, at the addresses the graphs hold.
    """

    def __init__(self, net: Network, x, y, batch_size: int, scales: dict, chunk_steps: int = 500):
        self.net, self.x, self.y, self.bs, self.scales = net, x, y, batch_size, scales
        n = len(x)
        self.rows = min(n, chunk_steps * batch_size)  # rows per full chunk, a multiple of the batch size
        self.full_chunks = n // self.rows
        self.tail = n - self.full_chunks * self.rows
        self.gx = torch.empty(self.rows, x.shape[1], dtype=x.dtype, device=x.device)
        self.gy = torch.empty(self.rows, y.shape[1], dtype=y.dtype, device=y.device)
        steps = [functools.partial(sgd_rows, net, self.gx[:r], self.gy[:r], batch_size, scales) for r in self.sizes]
        # On a CPU (tests) a "replay" runs the eager steps: the chunking is exercised without a GPU.
        self.replays = self._capture(steps) if x.is_cuda else steps

    @property
    def sizes(self) -> list[int]:
        return [self.rows] + ([self.tail] if self.tail else [])

    def _capture(self, steps: list[Callable[[], None]]) -> list[Callable[[], None]]:
        net, dev = self.net, self.x.device
        # Warm up each step shape once on a side stream (cuBLAS handles, allocator), then undo its updates.
        saved = [p.clone() for p in net.params]
        self.gx.zero_(), self.gy.zero_()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for fn in steps:
                fn()
        torch.cuda.current_stream(dev).wait_stream(side)
        for p, p0 in zip(net.params, saved):
            p.copy_(p0)
        pool = torch.cuda.graph_pool_handle()
        self.graphs = []
        for fn in steps:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=pool):
                fn()
            self.graphs.append(g)
        return [g.replay for g in self.graphs]

    def run(self, perm: torch.Tensor) -> None:
        """One epoch over the rows in the order `perm` (on the device)."""
        for c in range(self.full_chunks):
            sel = perm[c * self.rows : (c + 1) * self.rows]
            torch.index_select(self.x, 0, sel, out=self.gx)
            torch.index_select(self.y, 0, sel, out=self.gy)
            self.replays[0]()
        if self.tail:
            sel = perm[self.full_chunks * self.rows :]
            self.gx[: self.tail].copy_(self.x[sel])
            self.gy[: self.tail].copy_(self.y[sel])
            self.replays[1]()


def train_mlp(
    cfg: MLPConfig,
    data: Dataset,
    lrs: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, list[dict]], None] | None = None,
    *,
    cuda_graphs: bool | None = None,
    graph_steps: int = 500,
) -> list[MLPResult]:
    """Train one fresh network per learning rate (default: cfg.lr), all on the same data order.

    Returns one MLPResult per rate. Every epoch (and epoch 0, before training) records the
    training loss and accuracy on the whole training set and the test accuracy. A rate whose
    loss diverges (mlhw.divergence: non-finite, or > 10 ln(n_classes)) is recorded with its
    `diverged_epoch` and keeps training and recording: its curve is a result.

    device: "auto" picks by mlhw.device.mlp_device (CUDA only with CUDA graphs, else the CPU);
    any other name or torch.device is obeyed. cuda_graphs: None = on for CUDA; False = eager
    steps; graph_steps: SGD steps per graph replay.
    """
    lrs = [cfg.lr] if lrs is None else list(lrs)
    graphs_wanted = cuda_graphs is not False
    device = mlp_device(device, graphs=graphs_wanted)
    use_graphs = device.type == "cuda" and graphs_wanted
    dtype = DTYPES[cfg.dtype]
    (xtr, ytr), (xte, yte) = prepare(data, device, dtype)
    onehot = torch.nn.functional.one_hot(ytr, data.n_classes).to(dtype)
    net = Network([xtr.shape[1], *cfg.hidden, data.n_classes], len(lrs), cfg.seed, device, dtype)
    rates = torch.tensor(lrs, dtype=dtype, device=device)
    # the update's -lr/len(batch), computed once for the full and the last (partial) batch size
    scales = {m: (-rates / m).view(-1, 1, 1) for m in {cfg.batch_size, len(ytr) % cfg.batch_size} if m}
    shuffle = torch.Generator().manual_seed(cfg.seed)
    results = [MLPResult(lr, device=str(device), cuda_graphs=use_graphs) for lr in lrs]
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
            # Epoch 0 is the N(0, 1) initialisation (16-43 ln C on digits and MNIST), not training.
            if res.diverged_epoch is None and epoch >= 1 and is_diverged(loss, data.n_classes):
                res.diverged_epoch = epoch
            res.history.append(row)
            res.seconds += seconds
            rows.append(row)
        if on_epoch is not None:
            on_epoch(epoch, rows)

    with torch.inference_mode():  # no autograd bookkeeping: the gradients are written by hand
        record(0, 0.0)
        graphed = None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=shuffle).to(device)
            if use_graphs:
                if graphed is None:  # captured once per run, inside epoch 1's time
                    graphed = GraphedEpoch(net, xtr, onehot, bs, scales, graph_steps)
                graphed.run(perm)
            else:
                xs, ys = xtr[perm], onehot[perm]  # one gather per epoch; batches are slices of it
                with step_threads(net, bs):
                    sgd_rows(net, xs, ys, bs, scales)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            record(epoch, time.perf_counter() - t0)
    return results
