"""A network larger than the machine's memory is refused before any run exists (mlhw.memory): `--hidden 100000000`
made a run and failed it out of memory; `cnn train --width 16` on digits was killed by the kernel."""

import pytest
import torch
import yaml
from helpers import assert_nothing_created, assert_one_line_error, invoke

from mlhw import memory
from mlhw.config import CNNConfig, MLPConfig
from mlhw.runs import DataSource

# The assignment's AlexNet (width 1, 227 px, 10 classes, 3 channels) counted by hand, layer by layer (weights +
# biases; BatchNorm's scale and shift per channel): the well-known 58.3M of the CIFAR-10 AlexNet
CONVS = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
FCS = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 10)]
PLAIN = sum(k * k * a * b + b for a, b, k in CONVS) + sum(a * b + b for a, b in FCS)
BATCHNORM = 2 * sum(b for _, b, _ in CONVS)


@pytest.fixture()
def cifar_shaped():
    """A dataset of CIFAR-10's shape (3 x 32 x 32, 10 classes) without its files: only shapes are read."""

    class Shape:
        n_classes, image_shape = 10, (3, 32, 32)

    return Shape()


def test_alexnet_counted_on_the_meta_device_matches_the_hand_count(cifar_shaped):
    assert PLAIN == 58_322_314
    for bn, adam, factor in ((True, True, 4), (False, True, 4), (False, False, 2)):
        cfg = CNNConfig(dataset="cifar10", batchnorm=bn, optimizer="adam" if adam else "sgd")
        n = PLAIN + (BATCHNORM if bn else 0)
        assert memory.least_bytes(cfg, cifar_shaped, on_cpu=False)[0] == 4 * n  # the weights as drawn
        assert memory.least_bytes(cfg, cifar_shaped, on_cpu=True)[0] == 4 * n * factor  # + grads, Adam's moments
    sgd_momentum = CNNConfig(dataset="cifar10", batchnorm=False, optimizer="sgd", momentum=0.9)
    assert memory.least_bytes(sgd_momentum, cifar_shaped, on_cpu=True)[0] == 4 * PLAIN * 3


def test_mlp_bound_is_the_largest_float64_layer_or_the_weights_as_trained():
    """The MLP's SGD step is fused into its backprop (each layer's gradient added into its weights in place): the
    network holds its weights and no gradient, so the bound is the weights (or the largest layer as drawn in float64).
    It counted the weights twice, 'weights and their gradients', and refused networks that fit."""
    from mlhw import mlp

    data = DataSource().for_config(MLPConfig())  # digits: 64 features, 10 classes
    sizes = [64, 5000, 3000, 10]
    oracle = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
    n = sum(p.numel() for p in oracle.parameters())
    cfg = MLPConfig(hidden=(5000, 3000))
    assert memory.least_bytes(cfg, data, on_cpu=True)[0] == 8 * 5000 * 3000  # > 4 * n: the float64 draw decides
    assert memory.least_bytes(cfg.model_copy(update={"dtype": "float64"}), data, on_cpu=True)[0] == 8 * n
    assert memory.least_bytes(cfg, data, on_cpu=False)[0] == 8 * 5000 * 3000  # drawn on the CPU, a layer at a time
    # what the bound stands on: the core's network holds n numbers, and its training step keeps no gradient
    net = mlp.Network([64, 30, 20, 10])
    assert sum(p.numel() for p in net.params) == 64 * 30 + 30 + 30 * 20 + 20 + 20 * 10 + 10
    x, y = torch.rand(4, 64), torch.nn.functional.one_hot(torch.arange(4), 10).float()
    with torch.inference_mode():
        assert net.backprop(x, y, torch.full((1, 1, 1), -0.1), update=True) is None


def test_a_deep_float64_mlp_that_fits_is_not_refused(workdir, monkeypatch):
    """Six float64 layers of 1,000: 5,080,010 weights, 40.6 MB (its run peaks near 48 MB: the last layer drawn beside
    the others). Charged 81.3 MB for gradients the fused SGD step never holds, it was refused on a 60 MB machine."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ["--hidden", ",".join(["1000"] * 6), "--dtype", "float64", "--epochs", "1", "--tracking-uri", uri]
    monkeypatch.setattr(memory, "machine_memory", lambda: 60 * 10**6)
    res = invoke("mlp", "train", *args, "--train-size", "50", "--test-size", "20")
    assert res.exit_code == 0, res.output
    monkeypatch.setattr(memory, "machine_memory", lambda: 40 * 10**6)  # under the weights themselves: refused
    line = assert_one_line_error(invoke("mlp", "train", *args), "--hidden: 1000,1000,1000,1000,1000,1000 asks for")
    assert "5,080,010 weights (in float64: 40.6 MB), more than this machine's 40 MB of memory" in line


def test_a_deep_network_of_narrow_layers_is_weighed_too(workdir, monkeypatch):
    """Only a layer of 1,000 units or more had the network weighed: 30 layers of 999 on digits (29 million weights,
    116 MB) trained on a 100 MB machine, and 20,000 of them (80 GB) would have met the kernel's OOM killer."""
    assert not memory.may_not_fit(MLPConfig()) and not memory.may_not_fit(MLPConfig(hidden=(1000,)))  # 3 MB
    assert memory.may_not_fit(MLPConfig(hidden=(999,) * 2))  # 1.78 million weights
    monkeypatch.setattr(memory, "machine_memory", lambda: 100 * 10**6)
    uri = f"sqlite:///{workdir}/mlflow.db"
    deep = ",".join(["999"] * 30)
    res = invoke("mlp", "train", "--hidden", deep, "--epochs", "1", "--train-size", "50", "--tracking-uri", uri)
    line = assert_one_line_error(res, f"--hidden: {deep} asks for 29,045,935 weights (in float32: 116 MB)")
    assert line.endswith("more than this machine's 100 MB of memory")
    assert_nothing_created(workdir, uri)


def test_machine_memory_takes_a_containers_lower_limit(tmp_path, monkeypatch):
    whole = memory.machine_memory()
    assert whole and whole > 2**28  # a machine that runs torch has more than 256 MB
    unlimited, limited = tmp_path / "v2", tmp_path / "v1"
    unlimited.write_text("max\n")
    limited.write_text("1073741824\n")
    monkeypatch.setattr(memory, "_cgroup_limits", lambda: [unlimited, tmp_path / "absent"])
    assert memory.machine_memory() == whole
    monkeypatch.setattr(memory, "_cgroup_limits", lambda: [unlimited, limited])
    assert memory.machine_memory() == min(whole, 2**30)


def test_a_cgroup_limit_below_the_root_is_found(tmp_path, monkeypatch):
    """Only /sys/fs/cgroup/memory.max (and v1's root file) were read: a limit on the process's own cgroup deeper in
    the tree (a Slurm job, a systemd slice, a container without a cgroup namespace) went unseen."""
    root = tmp_path / "cgroup"
    v2 = "0::/slurm/job_7/step_0\n"
    v1 = "9:name=systemd:/\n4:cpu,memory:/docker/abc\n1:cpuset:/\n"
    assert memory.cgroup_limit_files(v2, root)[:4] == [
        root / "slurm/job_7/step_0/memory.max",
        root / "slurm/job_7/memory.max",
        root / "slurm/memory.max",
        root / "memory.max",
    ]
    assert memory.cgroup_limit_files(v1, root) == [
        root / "memory.max",
        root / "memory/docker/abc/memory.limit_in_bytes",
        root / "memory/docker/memory.limit_in_bytes",
        root / "memory/memory.limit_in_bytes",
    ]
    assert memory.cgroup_limit_files("", root) == [root / "memory.max", root / "memory/memory.limit_in_bytes"]
    # machine_memory reads them: the job's 512 MB under an unlimited root
    for folder, text in (("", "max"), ("slurm", "max"), ("slurm/job_7", str(2**29)), ("slurm/job_7/step_0", "max")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "memory.max").write_text(text + "\n")
    (tmp_path / "self").write_text(v2)
    monkeypatch.setattr(memory, "_CGROUP_ROOT", root)
    monkeypatch.setattr(memory, "_PROC_CGROUP", str(tmp_path / "self"))
    assert memory.machine_memory() == 2**29


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["mlp", "train", "--hidden", "2000,2000"], "--hidden: 2000,2000 asks for a layer of 4,000,000 weights (dr"),
        (["cnn", "train", "--width", "2"], "--width: 2 at image size 67 asks for AlexNet's"),
        (["cnn", "train", "--image-size", "300", "--width", "0.5"], "--image-size: 300 asks for AlexNet's"),
    ],
)
def test_a_network_larger_than_memory_is_refused_before_any_run(workdir, monkeypatch, args, culprit):
    monkeypatch.setattr(memory, "machine_memory", lambda: 30 * 10**6)  # a 30 MB machine
    uri = f"sqlite:///{workdir}/mlflow.db"
    line = assert_one_line_error(invoke(*args, "--tracking-uri", uri), culprit)
    assert "more than this machine's 30 MB of memory" in line
    assert_nothing_created(workdir, uri)


def test_a_network_that_fits_is_not_refused(workdir, monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 40 * 10**6)  # 2000,2000 needs 32 MB
    res = invoke("mlp", "train", "--hidden", "2000,2000", "--epochs", "1", "--train-size", "50", "--test-size", "20")
    assert res.exit_code == 0, res.output


def test_reproduce_names_the_set_that_asked_for_too_much(workdir, monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 30 * 10**6)
    spec = {
        "version": 1,
        "suites": {"m": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 1, "hidden": 60000}}},
        "profiles": {"p": {"defaults": {"dataset": "digits"}}},
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{workdir}/mlflow.db"
    base = ["reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri]
    assert_one_line_error(invoke(*base), "exp.yaml: suites.m.base.hidden: 60000 asks for")
    assert_one_line_error(invoke(*base, "--set", "hidden=[2000, 2000]"), "--set hidden: 2000,2000 asks for")
    assert_nothing_created(workdir, uri)


def test_the_runs_device_decides_whose_memory_is_weighed(cifar_shaped, monkeypatch):
    """With a GPU present only the CPU-side weights were weighed (whatever --device said): an AlexNet larger than the
    GPU made a run and failed it out of memory, and a `--device cpu` run beside a GPU had its training state (its
    gradients, Adam's moments) left out. Now the run's device decides: the CPU holds the weights as drawn, and the
    device that trains holds the network as trained. The GPU is simulated: these machines have none."""
    cfg = CNNConfig(dataset="cifar10", batchnorm=False, optimizer="adam")
    weights = 4 * PLAIN  # 233 MB as drawn; 933 MB with gradients and Adam's two moments
    monkeypatch.setattr(memory, "machine_memory", lambda: 2 * weights)  # the weights fit, the training state not
    monkeypatch.setattr(memory, "gpu_memory", lambda dev: 10 * weights)  # a GPU where all of it fits
    on = {"cuda": torch.device("cuda", 0), "cpu": torch.device("cpu")}
    monkeypatch.setattr(memory, "run_device", lambda cfg, device: on[device])
    assert memory.too_large(cfg, cifar_shaped, "cuda") is None
    field, why = memory.too_large(cfg, cifar_shaped, "cpu")  # the same run on the CPU: Adam's state there too
    assert field == "width" and why.endswith(f"more than this machine's {memory._size(2 * weights)} of memory")
    assert f"AlexNet's {PLAIN:,} parameters, gradients and Adam's two moments (in float32: 933 MB)" in why
    monkeypatch.setattr(memory, "gpu_memory", lambda dev: 3 * weights)  # a GPU smaller than the training state
    field, why = memory.too_large(cfg, cifar_shaped, "cuda")
    assert why.endswith(f"more than cuda:0's {memory._size(3 * weights)} of memory"), why
    monkeypatch.setattr(memory, "machine_memory", lambda: weights // 2)  # the CPU cannot even draw the weights
    assert memory.too_large(cfg, cifar_shaped, "cuda")[1].endswith("more than this machine's 117 MB of memory")
    # DataSource passes --device on: the CPU's training state counted for `cpu`, not for `cuda`
    monkeypatch.setattr(memory, "may_not_fit", lambda cfg, replicas=1: True)
    small = CNNConfig(dataset="digits", batchnorm=False, optimizer="adam")
    drawn = memory.least_bytes(small, DataSource().for_config(small), on_cpu=False)[0]
    monkeypatch.setattr(memory, "machine_memory", lambda: 2 * drawn)
    assert DataSource(device="cuda").unusable(small) is None
    assert DataSource(device="cpu").unusable(small)[0] == "width"


def test_run_device_follows_the_commands_rules():
    """Part 1's `auto` is the CPU where CUDA steps cannot be captured (mlhw.device.mlp_device); on this CPU machine
    every run's `auto` is the CPU."""
    assert memory.run_device(MLPConfig(), "auto").type == "cpu" and memory.run_device(CNNConfig(), "cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert memory.run_device(CNNConfig(), "auto").type == "cpu"
        assert memory.gpu_memory(torch.device("cuda", 0)) is None


def test_networks_trained_together_are_weighed_together():
    """A sweep's rates (and a unit's seeds x rates) are replicas of one Network: one network was weighed for all of
    them, so a 6-rate sweep of 1.5 million weights (8.1 GB at its peak) passed a check that charged it 0.77 GB."""
    data = DataSource().for_config(MLPConfig())  # digits: 64 features, 10 classes
    cfg = MLPConfig(hidden=(20_000,))
    n = 64 * 20_000 + 20_000 + 20_000 * 10 + 10
    assert memory.trained_bytes(cfg, data)[0] == 4 * n
    need, what = memory.trained_bytes(cfg, data, replicas=6)
    assert need == 6 * 4 * n and what.startswith(f"6 networks of {n:,} weights, trained together")
    assert memory.least_bytes(cfg, data, on_cpu=True)[0] == 8 * 64 * 20_000  # one: the float64 draw decides
    assert memory.least_bytes(cfg, data, on_cpu=True, replicas=6)[0] == 6 * 4 * n  # six: their weights
    assert memory.least_bytes(cfg, data, on_cpu=False, replicas=6)[0] == 8 * 64 * 20_000  # on a GPU: the draw
    assert not memory.may_not_fit(MLPConfig(hidden=(500,))) and memory.may_not_fit(MLPConfig(hidden=(500,)), 3)


def test_a_sweep_larger_than_memory_is_refused_though_one_network_fits(workdir, monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 20 * 10**6)  # one network: 10.2 MB; six: 36.1 MB
    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ["--hidden", "20000", "--epochs", "1", "--train-size", "50", "--test-size", "20", "--tracking-uri", uri]
    res = invoke("mlp", "sweep", *args, "--lrs", "0.001,0.01,0.1,1,10,100")
    line = assert_one_line_error(res, "--hidden: 20000 asks for 6 networks of 1,500,010 weights, trained together")
    assert line.endswith("(in float32: 36 MB), more than this machine's 20 MB of memory")
    assert_nothing_created(workdir, uri)
    assert invoke("mlp", "sweep", *args, "--lrs", "0.001").exit_code == 0  # one rate: one network, 10.2 MB


def test_reproduce_weighs_a_units_seeds_times_rates(workdir, monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 20 * 10**6)
    spec = {
        "version": 1,
        "suites": {
            "m": {"kind": "mlp", "part": "mlp.b", "base": {"epochs": 1, "hidden": 20000}, "grid": {"lr": [0.1, 1]}}
        },
        "profiles": {"p": {"defaults": {"dataset": "digits"}}},
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{workdir}/mlflow.db"
    base = ["reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, "--dry-run"]
    assert invoke(*base).exit_code == 0  # 2 networks (one seed, two rates): 12 MB
    line = assert_one_line_error(invoke(*base, "--set", "m.seeds=[0,1,2]"), "exp.yaml: suites.m.base.hidden: 20000")
    assert "asks for 6 networks of 1,500,010 weights, trained together (in float32: 36 MB)" in line
    assert_nothing_created(workdir, uri)
