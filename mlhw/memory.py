"""What a run needs in memory at the least, against what this machine has: checked before any run exists.

`--hidden 100000000` (a 784 x 10^8 layer, 627 GB in float64) and `--width 16 --image-size 1024` (an AlexNet of
2.4 * 10^11 parameters) passed every check, made a run, and failed it out of memory: a FAILED run in the store for
a typo. Only what is certain is counted, so that nothing that fits is refused: both cores draw their weights on the
CPU (the MLP a layer at a time, in float64; AlexNet whole, in float32) before moving them to the device, so that
much must fit in the CPU's memory whatever the device; the device the run trains on (--device: the CPU, or a GPU's
own memory) must hold the whole network as trained (the MLP's weights: its SGD step is fused, no gradient is held;
AlexNet's gradients and the optimizer's state).
Activations come on top: a run that fits this bound and not those still stops with the one-line out-of-memory error
(or, past what Linux overcommits, is killed: `--width 16` on digits, 22 GB of weights on a 25 GB machine, was killed
by the kernel before this bound counted Adam's moments).
"""

from __future__ import annotations

import os
from pathlib import Path

# cgroup v2 and v1: a container's limit, lower than the machine's memory that sysconf reports
_CGROUP_ROOT, _PROC_CGROUP = Path("/sys/fs/cgroup"), "/proc/self/cgroup"
_CGROUP_FILES = (("", "memory.max"), ("memory", "memory.limit_in_bytes"))  # (v1 controller folder, limit file)


def cgroup_limit_files(proc_cgroup: str, root: Path = _CGROUP_ROOT) -> list[Path]:
    """The memory-limit files that bound this process: those of its own cgroup (from /proc/self/cgroup's text) and of
    every cgroup above it, in v2 (`0::/path`) and v1 (`N:memory:/path`). The root's alone missed a limit set lower in
    the tree, as a batch system (Slurm) or a systemd slice sets it where the container has no cgroup namespace."""
    own = {"": "/", "memory": "/"}
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            own[""] = path or "/"
        elif "memory" in controllers.split(","):
            own["memory"] = path or "/"
    files = []
    for folder, name in _CGROUP_FILES:
        here = Path(own[folder])
        for level in [here, *here.parents]:
            files.append(root / folder / level.relative_to("/") / name)
    return list(dict.fromkeys(files))


def _cgroup_limits() -> list[Path]:
    try:
        text = Path(_PROC_CGROUP).read_text()
    except OSError:
        text = ""
    return cgroup_limit_files(text, _CGROUP_ROOT)


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or a container's lower limit; None if unknown."""
    try:
        found = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX
        found = None
    for path in _cgroup_limits():
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (found is None or int(text) < found):  # 'max': no limit
            found = int(text)
    return found


def _mlp_sizes(cfg, data) -> list[int]:
    return [data.n_features, *cfg.hidden, data.n_classes]


def _cnn_parameters(cfg, data) -> int:
    import torch

    from mlhw import cnn

    with torch.device("meta"):  # shapes only: no memory is taken
        return cnn.count_parameters(cnn.build_model(cfg, data))


def trained_bytes(cfg, data, replicas: int = 1) -> tuple[int, str] | None:
    """(bytes, what they hold) of the network as trained, on whichever device trains it; None for the SVMs.
    `replicas`: MLP networks trained together (mlhw.mlp.Network: a sweep's rates, a unit's seeds x rates)."""
    if cfg.kind == "mlp":
        sizes = _mlp_sizes(cfg, data)
        n = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
        # the weights alone: the SGD step is fused into the backprop (Network.backprop(update=True) adds each layer's
        # gradient into its weights in place), so no gradient is held; counting one twice refused networks that fit
        # (--hidden 4000,4000,4000,4000,4000,4000 --dtype float64 peaked at 0.76 GB and was charged 1.28 GB)
        what = f"{n:,} weights" if replicas == 1 else f"{replicas} networks of {n:,} weights, trained together"
        return replicas * n * (8 if cfg.dtype == "float64" else 4), f"{what} (in {cfg.dtype}"
    if cfg.kind == "cnn":
        n = _cnn_parameters(cfg, data)
        states = 2 if cfg.optimizer == "adam" else int(cfg.momentum > 0)  # Adam's two moments; SGD's momentum
        what = {2: ", gradients and Adam's two moments", 1: ", gradients and momentum", 0: " and gradients"}[states]
        return 4 * n * (2 + states), f"AlexNet's {n:,} parameters{what} (in float32"
    return None


def least_bytes(cfg, data, on_cpu: bool, replicas: int = 1) -> tuple[int, str] | None:
    """(bytes, what they hold) that a run of `cfg` on `data` needs in the CPU's memory at the least; None for the
    kinds whose size the data alone bounds (the SVMs: Q1's linear program has its own bound, Q1_LP_MAX_ROWS).
    `on_cpu`: the run trains on the CPU, whose memory then holds the network as trained (AlexNet's gradients and
    optimizer state too), not only the weights as drawn. `replicas`: as trained_bytes's."""
    if cfg.kind == "mlp":
        sizes = _mlp_sizes(cfg, data)
        largest = max(a * b for a, b in zip(sizes, sizes[1:]))
        if on_cpu and (trained := trained_bytes(cfg, data, replicas))[0] > 8 * largest:
            return trained
        return 8 * largest, f"a layer of {largest:,} weights (drawn in float64"
    if cfg.kind == "cnn" and not on_cpu:  # (AlexNet built once: trained_bytes builds it too)
        n = _cnn_parameters(cfg, data)
        return 4 * n, f"AlexNet's {n:,} parameters (in float32"
    return trained_bytes(cfg, data)


def may_not_fit(cfg, replicas: int = 1) -> bool:
    """Whether `too_large` has anything to find, known without reading the data: MLPs of a million weights or
    more, all `replicas` together (counted with MNIST's 784 inputs, the most an MLP reads); an AlexNet wider or
    larger than the paper's (the presets fit any machine that runs torch). It asked for a layer of 1,000 units:
    20,000 layers of 999 (80 GB of weights) were never weighed."""
    if cfg.kind == "mlp":
        sizes = [784, *cfg.hidden, 10]
        return replicas * sum(a * b for a, b in zip(sizes, sizes[1:])) >= 1_000_000
    if cfg.kind == "cnn":
        return cfg.width > 1 or cfg.image_size > 227
    return False


def run_device(cfg, device: str = "auto"):
    """The torch device a run of `cfg` trains on under --device `device` (Part 1's `auto` may pick the CPU)."""
    from mlhw.device import mlp_device, resolve_device

    return mlp_device(device) if cfg.kind == "mlp" else resolve_device(device)


def gpu_memory(dev) -> int | None:
    """Bytes of memory of the CUDA device `dev`; None if unknown."""
    import torch

    try:
        return int(torch.cuda.get_device_properties(dev).total_memory)
    except Exception:  # noqa: BLE001 - no answer is no bound
        return None


def too_large(cfg, data, device: str = "auto", replicas: int = 1) -> tuple[str, str] | None:
    """(the field to blame, why) when a run cannot fit in this machine's memory, or in its GPU's where it trains on
    one (--device); None when it may. On a GPU the CPU still holds the weights as drawn; the GPU, the network as
    trained. A machine's GPU was not weighed before, nor the training state of a `--device cpu` run beside one.
    `replicas`: the MLP networks that train together with this one (one network was weighed for a whole sweep)."""
    dev = run_device(cfg, device)
    checks = [(least_bytes(cfg, data, on_cpu=dev.type == "cpu", replicas=replicas), machine_memory(), "this machine's")]
    if dev.type == "cuda":
        checks.append((trained_bytes(cfg, data, replicas), gpu_memory(dev), f"{dev.type}:{dev.index or 0}'s"))
    over = [(need, have, where) for need, have, where in checks if need and have is not None and need[0] > have]
    if not over:
        return None
    need, have, where = over[0]
    if cfg.kind == "mlp":
        field, asked = "hidden", ",".join(str(h) for h in cfg.hidden)
    else:
        field = "image_size" if cfg.image_size > 227 and cfg.width <= 1 else "width"
        asked = f"{cfg.width:g} at image size {cfg.image_size}" if field == "width" else str(cfg.image_size)
    return field, f"{asked} asks for {need[1]}: {_size(need[0])}), more than {where} {_size(have)} of memory"


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:,} bytes"
