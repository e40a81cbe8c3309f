"""Part 1: a fully connected ReLU network with hand-written backprop, trained by the assignment's SGD.

No autograd on the training path. The network is the skeleton's: `sizes = [n_in, 40, 10]`,
ReLU hidden layers, a linear output, softmax + cross-entropy, weights and biases ~ N(0, 1).

`Network` holds independent copies ("replicas") of that network in stacked tensors: G groups (one
per seed: its own initialisation, data order and data) of R replicas each (one per learning rate,
all starting from the group's initialisation and seeing the group's data order), P = G*R replicas,
group-major:
  weights[l]: (P, n_out, n_in)      biases[l]: (P, 1, n_out)
Activations are rows (replica, batch, features). Every layer is a batched matmul. The first layer's
input is shared by a group's replicas: with one group (or a split all groups share, in evaluation)
it is one wide (batch x n_in) @ (n_in x P*n_hidden) matmul; with G groups it is one batched matmul
over the groups, each (batch x n_in) @ (n_in x R*n_hidden). Part (b)'s sweep over 5 seeds costs
about one network 30 times as wide, not 30 networks: on a GPU, where a step of this network is launch
latency, about the time of one.
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
from mlhw.divergence import descending, is_diverged

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
        *,
        seeds: Sequence[int] | None = None,
    ):
        """`replicas` copies of a network per seed: `seeds` (default: [seed]), one group each."""
        seeds = [seed] if seeds is None else list(seeds)
        self.sizes, self.groups, self.per_group = list(sizes), len(seeds), replicas
        self.replicas = self.groups * replicas
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        # One fresh network per seed, drawn in float64 on the CPU (same numbers on every device and dtype),
        # copied into the group's replicas: each learning rate starts from its seed's initial point. One layer of
        # one seed is drawn at a time, straight into its slots: all P replicas were concatenated in float64 first,
        # 8 P n bytes on top of the network (a 6-rate sweep of 1.5 million weights peaked at 8.1 GB, not 0.8)
        self.weights, self.biases = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(self.replicas, n_out, n_in, device=device, dtype=dtype)
            b = torch.empty(self.replicas, 1, n_out, device=device, dtype=dtype)
            for i, g in enumerate(gens):  # (cast and moved as before, then copied within the device)
                w_g = torch.randn(n_out, n_in, generator=g, dtype=torch.float64).to(device, dtype)
                b_g = torch.randn(1, n_out, generator=g, dtype=torch.float64).to(device, dtype)
                w[i * replicas : (i + 1) * replicas], b[i * replicas : (i + 1) * replicas] = w_g, b_g
            self.weights.append(w)
            self.biases.append(b)

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for wb in zip(self.weights, self.biases) for p in wb]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x: (B, n_in), rows every replica sees, or (G, B, n_in), each group's own rows.
        Returns each layer's input activations and the logits (P, B, n_out)."""
        w0, b0 = self.weights[0], self.biases[0]
        if x.dim() == 2:  # the replicas share x: one (B, n_in) @ (n_in, P * n_hidden) matmul
            z = torch.addmm(b0.view(-1), x, w0.view(-1, w0.shape[2]).T)
            z = z.view(x.shape[0], self.replicas, -1).transpose(0, 1)
        else:  # per group: (B, n_in) @ (n_in, R * n_hidden), batched over the groups
            g, batch = self._check_groups(x), x.shape[1]
            z = torch.baddbmm(b0.view(g, 1, -1), x, w0.view(g, -1, w0.shape[2]).transpose(1, 2))
            z = z.view(g, batch, self.per_group, -1).transpose(1, 2).reshape(self.replicas, batch, -1)
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

        x: (B, n_in) and y: one-hot (B, n_out), shared by every replica, or (G, B, n_in) and
        (G, B, n_out), a batch per group. Output delta = softmax(z) - y (Q4), hidden delta
        = delta W * relu'(z). Gradients are multiplied by `scale` (P, 1, 1) when given.
        With `update=True` they are added into the parameters in place (the fused SGD step,
        no gradient tensors kept) and nothing is returned.
        """
        acts, z = self.forward(x)
        delta = torch.softmax(z, dim=2)
        if y.dim() == 3:  # a group's targets, for each of its replicas
            delta.view(self.groups, self.per_group, *delta.shape[1:]).sub_(y.unsqueeze(1))
        else:
            delta.sub_(y)
        if scale is not None:
            delta.mul_(scale)
        grads = []
        for layer in reversed(range(len(self.weights))):
            w, b, a = self.weights[layer], self.biases[layer], acts[layer]
            # The next delta needs this layer's weights before they change.
            below = torch.bmm(delta, w) if layer > 0 else None
            gb = delta.sum(1, keepdim=True)
            if layer == 0 and a.dim() == 2:  # shared input: one wide matmul for every replica's first layer
                flat = delta.transpose(0, 1).reshape(delta.shape[1], -1)  # (B, P * n_hidden)
                if update:
                    w.view(-1, w.shape[2]).addmm_(flat.T, a)
                else:
                    grads.append((torch.mm(flat.T, a).view_as(w), gb))
            elif layer == 0:  # a group's input: one matmul per group, batched
                flat = delta.transpose(1, 2).reshape(self.groups, -1, delta.shape[1])  # (G, R * n_hidden, B)
                if update:
                    w.view(self.groups, -1, w.shape[2]).baddbmm_(flat, a)
                else:
                    grads.append((torch.bmm(flat, a).view_as(w), gb))
            elif update:
                w.baddbmm_(delta.transpose(1, 2), a)
            else:
                grads.append((torch.bmm(delta.transpose(1, 2), a), gb))
            if update:
                b.add_(gb)
            if below is not None:  # relu'(z) is 1 where the layer's output a = relu(z) is > 0
                delta = torch.ops.aten.threshold_backward(below, a, 0)
        return None if update else grads[::-1]

    def _check_groups(self, x: torch.Tensor) -> int:
        if x.shape[0] != self.groups:
            raise ValueError(f"rows for {x.shape[0]} groups, the network has {self.groups}")
        return self.groups

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, labels: torch.Tensor, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy of every replica on (x, labels): x (N, n_in) and labels (N,)
        that every replica sees, or x (G, N, n_in) and labels (G, N), each group's own split."""
        loss = torch.zeros(self.replicas, dtype=torch.float64, device=x.device)
        hits = torch.zeros(self.replicas, dtype=torch.float64, device=x.device)
        n = labels.shape[-1]
        for i in range(0, n, chunk):
            _, z = self.forward(x[..., i : i + chunk, :])
            lab = labels[..., i : i + chunk]
            if lab.dim() == 1:
                lab = lab.view(1, -1).expand(self.replicas, -1)
            else:  # each group's labels, for each of its replicas
                self._check_groups(lab)
                lab = lab.unsqueeze(1).expand(-1, self.per_group, -1).reshape(self.replicas, -1)
            picked = z.gather(2, lab.unsqueeze(2)).squeeze(2)
            loss += (torch.logsumexp(z, dim=2) - picked).sum(1).double()
            hits += (z.argmax(2) == lab).sum(1).double()
        return (loss / n).cpu().numpy(), (hits / n).cpu().numpy()


@dataclass
class MLPResult:
    lr: float
    history: list[dict] = field(default_factory=list)  # one row per epoch, epoch 0 before training
    diverged_epoch: int | None = None  # first epoch >= 1 whose training loss diverged (mlhw.divergence)
    seconds: float = 0.0
    device: str = "cpu"  # where it trained (under --device auto: mlhw.device.mlp_device's choice)
    cuda_graphs: bool = False  # SGD steps replayed from CUDA graphs
    seed: int | None = None  # its initialisation and data order (the config's seed for train_mlp)

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


def _device_split(s, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(unit_float(s.x).reshape(len(s), -1)).to(device, dtype)
    return x, torch.from_numpy(s.y).to(device)


def group_rows(splits, device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One split per group, on the device once: (x, labels, shared). A split every group has (the same
    arrays) is stored once, x (N, n_in); else the groups' rows follow each other, x (G*N, n_in)."""
    first = splits[0]
    if all(s is first or (s.x is first.x and s.y is first.y) for s in splits):
        return *_device_split(first, device, dtype), True
    n = len(first)
    if any(len(s) != n for s in splits):
        raise ValueError(f"the groups' splits differ in size ({[len(s) for s in splits]}): they train in lockstep")
    x = torch.from_numpy(np.concatenate([unit_float(s.x).reshape(n, -1) for s in splits])).to(device, dtype)
    return x, torch.from_numpy(np.concatenate([s.y for s in splits])).to(device), False


def sgd_rows(net: Network, x: torch.Tensor, y: torch.Tensor, batch_size: int, scales: dict) -> None:
    """SGD over the rows of (x, y) in order, `batch_size` rows per step (the last step may be smaller).
    x (N, n_in) and y (N, n_out), or (G, N, ...): each group's rows."""
    n = x.shape[-2]
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        net.backprop(x[..., i : i + m, :], y[..., i : i + m, :], scales[m], update=True)


class GraphedEpoch:
    """An epoch of SGD steps replayed from CUDA graphs: the same kernels on the same numbers as eager.

    The epoch's rows are taken `chunk_steps` batches at a time: one gather of the chunk's shuffled
    rows into static buffers (gx, gy), then one graph replay runs its steps (the eager loop, captured
    once). A run captures at most two graphs: full chunks, and the last, shorter chunk (whose last
    batch may be partial). The parameters are updated in place, at the addresses the graphs hold.

    With several groups (net.groups = G > 1) the buffers hold every group's chunk, (G, rows, n_in),
    gathered by one index_select, and an epoch's order is (G, n) row indices into x (each group's own
    rows, or rows they share); `n` is the rows per group (default: len(x)). capture: None = on CUDA;
    without capture (a CPU, eager CUDA) a "replay" runs the eager steps: the chunking is exercised
    without a GPU, and G groups' shuffled rows are gathered a chunk at a time, not a whole epoch.
    """

    def __init__(
        self,
        net: Network,
        x,
        y,
        batch_size: int,
        scales: dict,
        chunk_steps: int = 500,
        n: int | None = None,
        capture: bool | None = None,
    ):
        self.net, self.x, self.y, self.bs, self.scales = net, x, y, batch_size, scales
        n = len(x) if n is None else n
        lead = (net.groups,) if net.groups > 1 else ()
        # rows per full chunk: a multiple of the batch size, or every row when the data is smaller than a chunk
        self.rows = min(n, chunk_steps * batch_size)
        self.full_chunks = n // self.rows
        self.tail = n - self.full_chunks * self.rows
        self.gx = torch.empty(*lead, self.rows, x.shape[1], dtype=x.dtype, device=x.device)
        self.gy = torch.empty(*lead, self.rows, y.shape[1], dtype=y.dtype, device=y.device)
        # every group's chunk, one row after another: the target of one gather
        self.flat_x, self.flat_y = self.gx.view(-1, x.shape[1]), self.gy.view(-1, y.shape[1])
        steps = [
            functools.partial(sgd_rows, net, self.gx[..., :r, :], self.gy[..., :r, :], batch_size, scales)
            for r in self.sizes
        ]
        capture = x.is_cuda if capture is None else capture
        self.replays = self._capture(steps) if capture else steps

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
        """One epoch over the rows in the order `perm` (on the device): (n,), or (G, n) with groups."""
        for c in range(self.full_chunks):
            sel = perm[..., c * self.rows : (c + 1) * self.rows].reshape(-1)
            torch.index_select(self.x, 0, sel, out=self.flat_x)
            torch.index_select(self.y, 0, sel, out=self.flat_y)
            self.replays[0]()
        if self.tail:
            sel = perm[..., self.full_chunks * self.rows :]
            self.gx[..., : self.tail, :].copy_(self.x[sel])
            self.gy[..., : self.tail, :].copy_(self.y[sel])
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
    """Train one fresh network per learning rate (default: cfg.lr), all from cfg.seed's initialisation
    and on its data order: `train_mlp_groups` with one group. Returns one MLPResult per rate;
    on_epoch(epoch, rows) gets one row per rate."""
    hook = None if on_epoch is None else (lambda epoch, rows: on_epoch(epoch, rows[0]))
    (results,) = train_mlp_groups(
        cfg, [data], [cfg.seed], lrs, device, hook, cuda_graphs=cuda_graphs, graph_steps=graph_steps
    )
    return results


def train_mlp_groups(
    cfg: MLPConfig,
    datas: Sequence[Dataset],
    seeds: Sequence[int],
    lrs: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, list[list[dict]]], None] | None = None,
    *,
    cuda_graphs: bool | None = None,
    graph_steps: int = 500,
) -> list[list[MLPResult]]:
    """Train one fresh network per seed and learning rate (default: cfg.lr) as one batched computation.

    Seed g (`seeds[g]`, on its data `datas[g]`: its subset, or the dataset every seed shares) is what
    one run with that seed is: its initialisation, its data order, its data; each of its rates starts
    from that initialisation and sees that order. cfg gives the rest (hidden, epochs, batch_size,
    dtype; its seed and lr are not read here). The seeds' splits must be equally long (subsets of one
    config are).

    Returns, per seed, one MLPResult per rate. Every epoch (and epoch 0, before training) records the
    training loss and accuracy on the whole training set and the test accuracy. A network whose loss
    diverges (mlhw.divergence: non-finite, or > 10 ln(n_classes) and not falling) is recorded with its
    `diverged_epoch` and keeps training and recording: its curve is a result. on_epoch(epoch, rows)
    gets rows[g][r], the epoch's row of seed g and rate r.

    device: "auto" picks by mlhw.device.mlp_device (CUDA only with CUDA graphs, else the CPU);
    any other name or torch.device is obeyed. cuda_graphs: None = on for CUDA; False = eager
    steps; graph_steps: SGD steps per graph replay (with several seeds, also per gathered chunk of
    eager steps).
    """
    seeds, datas = list(seeds), list(datas)
    if not seeds or len(datas) != len(seeds):
        raise ValueError(f"one dataset per seed (got {len(datas)} datasets, {len(seeds)} seeds)")
    lrs = [cfg.lr] if lrs is None else list(lrs)
    n_groups, data = len(seeds), datas[0]
    if any((d.n_classes, d.n_features) != (data.n_classes, data.n_features) for d in datas):
        raise ValueError("the seeds' datasets differ in their number of classes or features")
    graphs_wanted = cuda_graphs is not False
    device = mlp_device(device, graphs=graphs_wanted)
    use_graphs = device.type == "cuda" and graphs_wanted
    dtype = DTYPES[cfg.dtype]
    xtr, ytr, shared_train = group_rows([d.train for d in datas], device, dtype)
    xte, yte, shared_test = group_rows([d.test for d in datas], device, dtype)
    n, bs = len(data.train), cfg.batch_size

    def grouped(x, y, shared):  # the shape Network.evaluate reads: rows all share, or each group's
        return (x, y) if shared else (x.view(n_groups, -1, x.shape[1]), y.view(n_groups, -1))

    train_split, test_split = grouped(xtr, ytr, shared_train), grouped(xte, yte, shared_test)
    onehot = torch.nn.functional.one_hot(ytr, data.n_classes).to(dtype)
    net = Network([xtr.shape[1], *cfg.hidden, data.n_classes], len(lrs), device=device, dtype=dtype, seeds=seeds)
    rates = torch.tensor(lrs * n_groups, dtype=dtype, device=device)  # group-major, as the replicas
    # the update's -lr/len(batch), computed once for the full and the last (partial) batch size
    scales = {m: (-rates / m).view(-1, 1, 1) for m in {cfg.batch_size, n % cfg.batch_size} if m}
    shuffles = [torch.Generator().manual_seed(s) for s in seeds]
    # a group's rows in x: its own (one group after another) or the rows every group shares
    offsets = torch.zeros(n_groups, 1, dtype=torch.int64) if shared_train else torch.arange(n_groups).view(-1, 1) * n
    results = [[MLPResult(lr, device=str(device), cuda_graphs=use_graphs, seed=s) for lr in lrs] for s in seeds]
    flat = [res for per_seed in results for res in per_seed]  # in the replicas' order

    def record(epoch: int, seconds: float) -> None:
        tr_loss, tr_acc = net.evaluate(*train_split)
        _, te_acc = net.evaluate(*test_split)
        for r, res in enumerate(flat):
            loss = float(tr_loss[r])
            row = {
                "epoch": epoch,
                "train_loss": loss,
                "train_acc": float(tr_acc[r]),
                "test_acc": float(te_acc[r]),
                "epoch_seconds": seconds,
            }
            # Epoch 0 is the N(0, 1) initialisation (7-16 ln C on digits, 20-43 on MNIST), not training.
            if res.diverged_epoch is None and epoch >= 1:
                falling = descending([h["train_loss"] for h in res.history] + [loss])
                if is_diverged(loss, data.n_classes, falling):
                    res.diverged_epoch = epoch
            res.history.append(row)
            res.seconds += seconds
        if on_epoch is not None:
            on_epoch(epoch, [[res.history[-1] for res in per_seed] for per_seed in results])

    with torch.inference_mode():  # no autograd bookkeeping: the gradients are written by hand
        record(0, 0.0)
        chunked = None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            if n_groups == 1:
                perm = torch.randperm(n, generator=shuffles[0]).to(device)
            else:  # each group's order, as row indices into x
                perm = (torch.stack([torch.randperm(n, generator=g) for g in shuffles]) + offsets).to(device)
            if use_graphs or n_groups > 1:
                if chunked is None:  # captured once per run, inside epoch 1's time
                    chunked = GraphedEpoch(net, xtr, onehot, bs, scales, graph_steps, n, capture=use_graphs)
                with step_threads(net, bs) if device.type == "cpu" else contextlib.nullcontext():
                    chunked.run(perm)
            else:
                xs, ys = xtr[perm], onehot[perm]  # one gather per epoch; batches are slices of it
                with step_threads(net, bs):
                    sgd_rows(net, xs, ys, bs, scales)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            record(epoch, time.perf_counter() - t0)
    return results
