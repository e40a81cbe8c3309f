"""The GPU code paths' logic, checked on a CPU: precision and device choices on injected hardware,
the chunked CUDA-graph epoch of the MLP (replays run eagerly on a CPU), fused optimizers, padded evaluation."""

from pathlib import Path

import pytest
import torch

from mlhw.cnn import (
    AlexNet,
    DeviceSplit,
    TrainStep,
    cudnn_autotune,
    evaluate,
    make_optimizer,
    optimizer_impl,
    resolve_precision,
    space_to_depth_conv,
    step_capturable,
)
from mlhw.config import CNNConfig
from mlhw.data import Split
from mlhw.device import DeviceCaps, device_caps, mlp_device, select_precision
from mlhw.errors import MLHWError
from mlhw.mlp import GraphedEpoch, Network

H100 = DeviceCaps("cuda", (9, 0), cuda_graphs=True, name="H100")
A100 = DeviceCaps("cuda", (8, 0), cuda_graphs=True, name="A100")
T4 = DeviceCaps("cuda", (7, 5), cuda_graphs=True, name="T4")
V100 = DeviceCaps("cuda", (7, 0), cuda_graphs=True, name="V100")
CPU_AMX = DeviceCaps("cpu", cpu_bf16=True)
CPU = DeviceCaps("cpu")


@pytest.mark.parametrize(
    "caps, auto",
    [(H100, "bf16"), (A100, "bf16"), (T4, "fp16"), (V100, "fp16"), (CPU_AMX, "bf16"), (CPU, "fp32")],
)
def test_auto_precision_per_device(caps, auto):
    assert select_precision("auto", caps) == auto
    assert select_precision("fp32", caps) == "fp32" and select_precision("bf16", caps) == "bf16"


def test_fp16_needs_cuda_and_unknown_names_are_refused():
    assert select_precision("fp16", H100) == "fp16" and select_precision("fp16", T4) == "fp16"
    with pytest.raises(MLHWError, match="--precision fp16 needs a CUDA GPU"):
        select_precision("fp16", CPU_AMX)
    with pytest.raises(MLHWError, match="--precision 'fp8'.*auto, fp32, bf16, fp16"):
        select_precision("fp8", H100)


def test_resolve_precision_gives_the_autocast_dtype():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, caps=T4) is torch.float16
    assert resolve_precision("auto", cpu, caps=H100) is torch.bfloat16
    assert resolve_precision("auto", cpu, caps=CPU) is None
    # this machine, by an oracle other than torch's probe: the kernel's CPU flags (Linux)
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else None
    if flags is not None:
        native = "avx512_bf16" in flags or "amx_bf16" in flags
        assert device_caps("cpu").cpu_bf16 is native
        assert resolve_precision("auto", cpu) is (torch.bfloat16 if native else None)


def test_mlp_device_rule():
    assert mlp_device("auto", caps=H100) == torch.device("cuda")  # steps captured in CUDA graphs
    assert mlp_device("auto", graphs=False, caps=H100) == torch.device("cpu")  # eager CUDA is the slower device
    assert mlp_device("auto", caps=CPU) == torch.device("cpu")
    assert mlp_device("cpu", caps=H100) == torch.device("cpu")  # an explicit device is obeyed
    assert mlp_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert mlp_device("auto") == torch.device("cpu")
        with pytest.raises(MLHWError, match="CUDA is not available"):
            mlp_device("cuda")


@pytest.mark.parametrize("auto_picks, expected", [("cuda", "cuda:1"), ("cpu", "cpu")])
def test_a_workers_mlp_unit_under_auto_stays_on_its_own_gpu(monkeypatch, auto_picks, expected):
    """--jobs N with several GPUs: the worker on cuda:1 trains Part 1 on cuda:1 (it went to cuda:0 from every
    worker), or on the CPU where auto says CUDA is the slower device; an explicit --device is obeyed."""
    from types import SimpleNamespace

    import mlhw.device
    from mlhw import executors

    seen = []
    monkeypatch.setattr(executors, "run_unit", lambda unit, store, source, device, *a: seen.append(device) or [])
    monkeypatch.setattr(
        mlhw.device, "mlp_device", lambda name="auto", *a, **k: torch.device(auto_picks if name == "auto" else name)
    )
    job = SimpleNamespace(config=SimpleNamespace(kind="mlp"), identity="i", name="mlp")
    source = SimpleNamespace(identity=lambda cfg: "i")
    for device in ("auto", "cuda:1"):
        executors.execute_unit([job], None, source, torch.device("cuda:1"), executors.Settings("u", "e", device=device))
    assert seen == [torch.device(expected), torch.device("cuda:1")]


def autograd_sgd(params, x, labels, lrs, bs):
    """Independent reference: per replica, autograd gradients of the summed cross-entropy, w -= lr/m * grad."""
    params = [p.clone() for p in params]
    n_layers = len(params) // 2
    for i in range(0, len(x), bs):
        xb, yb = x[i : i + bs], labels[i : i + bs]
        for r, lr in enumerate(lrs):
            leaves = [p[r].clone().requires_grad_() for p in params]
            a = xb
            for k in range(n_layers):
                z = a @ leaves[2 * k].T + leaves[2 * k + 1]
                a = z.clamp_min(0) if k < n_layers - 1 else z
            loss = torch.nn.functional.cross_entropy(a, yb, reduction="sum")
            for p, g in zip(params, torch.autograd.grad(loss, leaves)):
                p[r] -= lr / len(xb) * g
    return params


@pytest.mark.parametrize("n, chunk_steps", [(103, 3), (100, 5), (40, 50), (7, 2)])
def test_graphed_epoch_chunking_equals_sgd(n, chunk_steps):
    """Full chunks, a shorter last chunk and a partial last batch: the same steps in the same order."""
    g = torch.Generator().manual_seed(n)
    sizes, bs, lrs = [6, 8, 4], 10, [0.05, 0.5]
    x = torch.rand(n, sizes[0], generator=g, dtype=torch.float64)
    labels = torch.randint(0, sizes[-1], (n,), generator=g)
    onehot = torch.nn.functional.one_hot(labels, sizes[-1]).double()
    perm = torch.randperm(n, generator=g)
    net = Network(sizes, len(lrs), seed=1, dtype=torch.float64)
    start = [p.clone() for p in net.params]
    rates = torch.tensor(lrs, dtype=torch.float64)
    scales = {m: (-rates / m).view(-1, 1, 1) for m in {bs, n % bs} if m}
    epoch = GraphedEpoch(net, x, onehot, bs, scales, chunk_steps)
    assert epoch.rows % bs == 0 or epoch.rows == n
    with torch.inference_mode():
        epoch.run(perm)
    expected = autograd_sgd(start, x[perm], labels[perm], lrs, bs)
    for got, ref in zip(net.params, expected):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shared", [False, True], ids=["own rows", "shared rows"])
@pytest.mark.parametrize("n, chunk_steps", [(103, 3), (40, 50), (7, 2)])
def test_graphed_epoch_of_groups_equals_each_groups_sgd(n, chunk_steps, shared):
    """Three seeds' groups of two rates: one gather per chunk into (G, rows, n_in), each group in its
    own order over its own rows (or rows they share); each group's replicas equal autograd SGD on it."""
    g = torch.Generator().manual_seed(n)
    sizes, bs, lrs, groups = [6, 8, 4], 10, [0.05, 0.5], 3
    rows = n if shared else groups * n
    x = torch.rand(rows, sizes[0], generator=g, dtype=torch.float64)
    labels = torch.randint(0, sizes[-1], (rows,), generator=g)
    onehot = torch.nn.functional.one_hot(labels, sizes[-1]).double()
    order = torch.stack([torch.randperm(n, generator=g) for _ in range(groups)])
    idx = order if shared else order + torch.arange(groups).view(-1, 1) * n
    net = Network(sizes, len(lrs), dtype=torch.float64, seeds=[1, 2, 3])
    start = [p.clone() for p in net.params]
    rates = torch.tensor(lrs * groups, dtype=torch.float64)
    scales = {m: (-rates / m).view(-1, 1, 1) for m in {bs, n % bs} if m}
    epoch = GraphedEpoch(net, x, onehot, bs, scales, chunk_steps, n)
    assert epoch.gx.shape == (groups, epoch.rows, sizes[0])
    with torch.inference_mode():
        epoch.run(idx)
    for k in range(groups):
        mine = slice(k * len(lrs), (k + 1) * len(lrs))
        expected = autograd_sgd([p[mine] for p in start], x[idx[k]], labels[idx[k]], lrs, bs)
        for got, ref in zip(net.params, expected):
            torch.testing.assert_close(got[mine], ref, rtol=1e-10, atol=1e-12)


def test_fused_adam_on_cpu_is_adam():
    """make_optimizer's CPU Adam is fused (8-10x faster here) and computes Adam's update (the formula, by hand)."""
    torch.manual_seed(0)
    p = torch.randn(50, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer(CNNConfig(optimizer="adam", lr=0.01), [p])
    assert optimizer_impl(opt) == "fused"
    w, m, v = p.detach().clone(), torch.zeros(50, dtype=torch.float64), torch.zeros(50, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    for t in range(1, 6):
        grad = torch.randn(50, generator=g, dtype=torch.float64)
        p.grad = grad.clone()
        opt.step()
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w = w - 0.01 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-12)


def test_cpu_sgd_keeps_the_default_loop_and_fused_can_be_forced():
    p = [torch.zeros(3, requires_grad=True)]
    assert (
        optimizer_impl(make_optimizer(CNNConfig(optimizer="sgd", lr=0.1), p)) != "fused"
    )  # fused SGD is 3x slower on CPU
    assert optimizer_impl(make_optimizer(CNNConfig(optimizer="sgd", lr=0.1), p, fused=True)) == "fused"
    assert optimizer_impl(make_optimizer(CNNConfig(optimizer="adam"), p, fused=False)) != "fused"


def test_a_scaled_fp16_step_is_captured_only_with_a_fused_optimizer():
    """fp16's GradScaler with torch's fused Adam or SGD hands the kernel the scale and the overflow flag; with any
    other optimizer it reads the flag on the host, which a CUDA graph cannot hold."""
    p = [torch.zeros(3, requires_grad=True)]
    scaler = torch.amp.GradScaler("cpu")
    for optimizer, fused, capturable in [("adam", None, True), ("sgd", True, True), ("adam", False, False)]:
        opt = make_optimizer(CNNConfig(optimizer=optimizer, lr=0.1), p, fused=fused)
        assert step_capturable(opt, scaler) is capturable, (optimizer, fused)
        assert step_capturable(opt, None)  # no scaler (fp32, bf16): nothing to read


def _fp16_steps(fused: bool, steps: int = 4, init_scale: float = 2.0**20, **optimizer):
    """A few fp16-autocast steps of TrainStep with a GradScaler on the CPU, from a scale so large that the first
    steps overflow (inf gradients: skipped, the scale halved). Returns the final parameters, the scale, and
    whether a step read a tensor on the host (.item(), .tolist(), bool()): a CUDA graph cannot hold one."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (24, 3, 8, 8), generator=gen, dtype=torch.uint8).numpy()
    y = torch.randint(0, 4, (24,), generator=gen).numpy()
    train = DeviceSplit(Split(x, y), torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, 8)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 4)
    ).to(memory_format=torch.channels_last)
    opt = make_optimizer(CNNConfig(**({"optimizer": "adam", "lr": 0.01} | optimizer)), model.parameters(), fused=fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    step = TrainStep(model, model, opt, scaler, train, torch.float16, torch.device("cpu"))
    host_reads = []

    def spy(name):
        real = getattr(torch.Tensor, name)

        def read(self, *a, **kw):
            host_reads.append(name)
            return real(self, *a, **kw)

        return real, read

    patched = {name: spy(name) for name in ("item", "tolist", "__bool__")}
    for name, (_, read) in patched.items():
        setattr(torch.Tensor, name, read)
    try:
        for i in range(steps):
            step.eager(torch.arange(8 * i, 8 * i + 8) % 24)
    finally:
        for name, (real, _) in patched.items():
            setattr(torch.Tensor, name, real)
    return [q.detach().clone() for q in model.parameters()], scaler.get_scale(), bool(host_reads)


@pytest.mark.parametrize(
    "optimizer", [{"optimizer": "adam", "lr": 0.01}, {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}], ids=str
)
def test_a_scaled_fp16_step_with_a_fused_optimizer_reads_nothing_on_the_host_and_skips_overflows_alike(optimizer):
    """The fused path (what a CUDA graph captures) computes what the host-read path computes: the steps whose
    gradients overflowed are skipped, the scale backs off, the others are Adam's or SGD's. The unfused optimizer is
    the oracle; its host read is seen by the spy, so the spy can fail the fused path. SGD with momentum: torch's
    fused SGD, left to make its buffers at an overflowed first step, kept them uninitialised (off by 1e12 here)."""
    fused, fused_scale, fused_read = _fp16_steps(fused=True, **optimizer)
    plain, plain_scale, plain_read = _fp16_steps(fused=False, **optimizer)
    assert not fused_read and plain_read
    assert fused_scale == plain_scale == 2.0**17  # steps 1 and 2 overflowed (skipped, the scale halved), 3 and 4 not
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    untouched, _, _ = _fp16_steps(fused=True, steps=0, **optimizer)
    assert any(not torch.equal(a, b) for a, b in zip(fused, untouched))  # some step was not skipped


@pytest.mark.parametrize("fused", [False, True])
def test_sgd_momentum_buffers_made_as_zeros_step_as_torchs_own(fused):
    """make_optimizer's zero momentum buffers against torch's SGD left to make its own, bit for bit."""
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    ps = [torch.zeros(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    mine = make_optimizer(CNNConfig(optimizer="sgd", lr=0.1, momentum=0.9), [ps[0]], fused=fused)
    torchs = torch.optim.SGD([ps[1]], lr=0.1, momentum=0.9)
    assert torch.equal(mine.state[ps[0]]["momentum_buffer"], torch.zeros(5, 4, dtype=torch.float64))
    for grad in grads:
        for p, opt in zip(ps, (mine, torchs)):
            p.grad = grad.clone()
            opt.step()
    assert torch.equal(ps[0], ps[1])


@pytest.mark.parametrize("chunk", [4, 7, 13, 64])
def test_padded_evaluation_equals_one_plain_pass(chunk):
    torch.manual_seed(0)
    model = AlexNet(n_classes=10, in_channels=1, width=0.125, image_size=67)
    g = torch.Generator().manual_seed(2)
    split = Split(torch.rand(13, 1, 8, 8, generator=g).numpy(), torch.randint(0, 10, (13,), generator=g).numpy())
    ds = DeviceSplit(split, torch.device("cpu"), (0.5,), (0.25,), 67)
    model.eval()
    with torch.no_grad():
        x, y = ds.batch(torch.arange(13))
        out = model(x)
        ref_loss = torch.nn.functional.cross_entropy(out, y).item()
        ref_acc = (out.argmax(1) == y).double().mean().item()
    for pad in (False, True):
        loss, acc = evaluate(model, ds, None, chunk=chunk, pad=pad)
        assert loss == pytest.approx(ref_loss, rel=1e-5) and acc == pytest.approx(ref_acc)


# --- the first convolution by space-to-depth (on by default on CUDA) ---------------------------------


@pytest.mark.parametrize(
    "c, o, k, s, p, side",
    [
        (3, 96, 11, 4, 0, 227),  # AlexNet's first convolution at the paper's size
        (3, 12, 11, 4, 0, 67),  # ... at the smallest size the topology takes
        (2, 5, 5, 2, 1, 17),  # padding, a kernel that is not a multiple of the stride
        (4, 3, 3, 3, 0, 10),  # a kernel equal to the stride
        (3, 4, 4, 2, 2, 9),  # the blocks reach past the padded input
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_space_to_depth_conv_is_the_convolution(c, o, k, s, p, side, channels_last):
    """Outputs and the gradients w.r.t. input, weight and bias equal F.conv2d's (float64: to rounding)."""
    gen = torch.Generator().manual_seed(k * 100 + side)
    x = torch.randn(2, c, side, side, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(o, c, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, generator=gen, requires_grad=True)
    ref = torch.nn.functional.conv2d(x, w, b, s, p)
    got = space_to_depth_conv(x.contiguous(memory_format=torch.channels_last) if channels_last else x, w, b, s, p)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-11)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    for a, e in zip(torch.autograd.grad((got * g).sum(), (x, w, b)), torch.autograd.grad((ref * g).sum(), (x, w, b))):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


def test_alexnet_with_space_to_depth_keeps_its_parameters_and_outputs():
    torch.manual_seed(0)
    model = AlexNet(width=0.125, image_size=67).double().eval()
    names = [n for n, _ in model.named_parameters()]
    x = torch.randn(3, 3, 67, 67, dtype=torch.float64)
    plain = model(x)
    model.features[0].space_to_depth = True
    assert [n for n, _ in model.named_parameters()] == names  # same state_dict: checkpoints and counts
    torch.testing.assert_close(model(x), plain, rtol=0, atol=1e-10)


def test_train_cnn_reports_space_to_depth_and_trains_the_same_on_cpu():
    """Off by default on a CPU (the oracle loop's rounding); forced on, one epoch ends where the plain
    convolution's does, to float32 rounding amplified by 2 steps."""

    from mlhw.cnn import train_cnn
    from mlhw.data import Dataset

    gen = torch.Generator().manual_seed(3)
    split = Split(
        torch.randint(0, 256, (40, 3, 16, 16), generator=gen, dtype=torch.uint8).numpy(),
        (torch.arange(40) % 10).numpy(),
    )
    data = Dataset("tiny", split, split, split)
    cfg = CNNConfig(width=0.125, image_size=67, epochs=1, batch_size=20)
    plain = train_cnn(cfg, data, "cpu", "fp32")
    s2d = train_cnn(cfg, data, "cpu", "fp32", space_to_depth=True)
    assert not plain.space_to_depth and s2d.space_to_depth
    for key in ("train_loss", "val_loss"):
        assert abs(plain.history[0][key] - s2d.history[0][key]) < 1e-4
    assert abs(plain.test_loss - s2d.test_loss) < 1e-4


def test_cudnn_autotune_is_scoped():
    from mlhw.cnn import CUDNN_AUTOTUNE_LIMIT

    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit
    with cudnn_autotune(not before[0]):
        assert torch.backends.cudnn.benchmark is (not before[0])
        assert torch.backends.cudnn.benchmark_limit == CUDNN_AUTOTUNE_LIMIT
        with cudnn_autotune(True, limit=7):
            assert torch.backends.cudnn.benchmark_limit == 7
        assert torch.backends.cudnn.benchmark_limit == CUDNN_AUTOTUNE_LIMIT
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.benchmark_limit) == before


def test_cpu_bf16_means_bf16_instructions_not_avx512_alone(monkeypatch):
    """oneDNN's _is_mkldnn_bf16_supported() is also true on AVX-512 CPUs without bf16 (Skylake-SP, Cascade Lake),
    where `--precision auto` then picked an emulated bf16 slower than fp32."""
    from mlhw.device import device_caps

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    for avx512_bf16, amx, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert device_caps("cpu").cpu_bf16 is expected


def test_gpu_profile_names_libraries_only_on_a_gpu():
    """benchmarks/gpu_profile.py --smoke named a CPU's ops '(cuDNN)' and '(cuBLAS)': the GPU's libraries."""
    import importlib.util

    path = Path(__file__).parent.parent / "benchmarks" / "gpu_profile.py"
    spec = importlib.util.spec_from_file_location("gpu_profile", path)
    gp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gp)
    assert gp.kind_of("aten::mkldnn_convolution", cuda=False) == "convolution"
    assert gp.kind_of("aten::addmm", cuda=False) == "matrix product"
    assert gp.kind_of("sm90_xmma_fprop_implicit_gemm", cuda=True) == "convolution (cuDNN)"
    assert gp.kind_of("nvjet_tst_128x64", cuda=True) == "matrix product (cuBLAS)"
    assert gp.kind_of("aten::bernoulli_", cuda=False) == gp.kind_of("aten::bernoulli_") == "dropout"
