"""Which torch device a run uses (--device auto|cpu|cuda[:N]), which device Part 1's MLP runs on under
`auto`, and which precision a CNN trains in (--precision auto|fp32|bf16|fp16).

The choices are pure functions of a `DeviceCaps` (what the hardware offers), so that their logic is
tested on a CPU by injecting the capabilities of GPUs the test machine does not have.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from mlhw.errors import MLHWError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MLHWError(f"--device {name!r} is not a device: use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MLHWError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MLHWError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise MLHWError(f"--device {name!r} is not supported: use auto, cpu or cuda[:N]")
    return dev


@dataclass(frozen=True)
class DeviceCaps:
    """What a device offers for the choices below.

    type: "cpu" or "cuda"; capability: CUDA compute capability (major, minor), None on a CPU;
    cpu_bf16: the CPU has native bf16 instructions (AVX512-BF16 or AMX tiles, as torch.cpu reports);
    cuda_graphs: CUDA graphs can be captured (CUDA >= 10 and torch built with them: every CUDA GPU here).
    """

    type: str = "cpu"
    capability: tuple[int, int] | None = None
    cpu_bf16: bool = False
    cuda_graphs: bool = False
    name: str = "cpu"

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix units in hardware: CUDA compute capability >= 8.0 (Ampere, Ada, Hopper, ...)
        or a CPU with AVX512-BF16/AMX. Not torch.cuda.is_bf16_supported(), which also says True
        where bf16 is only emulated (T4: 7.5, V100: 7.0), and there bf16 is slower than fp16."""
        if self.type == "cuda":
            return self.capability is not None and self.capability >= (8, 0)
        return self.cpu_bf16


def device_caps(device: torch.device | str) -> DeviceCaps:
    """Probe the real device."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DeviceCaps(
            "cuda",
            tuple(torch.cuda.get_device_capability(index)),
            cuda_graphs=True,
            name=torch.cuda.get_device_name(index),
        )
    # Not torch.ops.mkldnn._is_mkldnn_bf16_supported(): it is also true on AVX-512 BW/VL/DQ CPUs without bf16
    # instructions (Skylake-SP, Cascade Lake), where oneDNN emulates bf16 and it is slower than fp32.
    cpu_bf16 = False
    with contextlib.suppress(Exception):
        cpu_bf16 = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return DeviceCaps("cpu", None, cpu_bf16=cpu_bf16)


def select_precision(requested: str, caps: DeviceCaps) -> str:
    """The precision a CNN trains in: "fp32", "bf16" (autocast) or "fp16" (autocast + gradient scaler).

    auto: bf16 where the hardware has it natively (CUDA compute capability >= 8.0; CPUs with
    AVX512-BF16 or AMX, where oneDNN's bf16 convolutions train AlexNet 1.7x faster than fp32);
    fp16 on older CUDA GPUs (T4, V100: tensor cores for fp16 only), with a GradScaler against
    gradient underflow; fp32 on other CPUs. Explicit names are obeyed; fp16 needs a CUDA GPU
    (CPU fp16 autocast has no fast kernels here).
    """
    if requested not in PRECISIONS:
        raise MLHWError(f"--precision {requested!r}: use {', '.join(PRECISIONS)}")
    if requested == "fp16" and caps.type != "cuda":
        raise MLHWError("--precision fp16 needs a CUDA GPU: on a CPU use bf16, fp32 or auto")
    if requested != "auto":
        return requested
    if caps.native_bf16:
        return "bf16"
    return "fp16" if caps.type == "cuda" else "fp32"


# Part 1 under --device auto. The [784, 40, 10] network with batch 10 is ~30k multiply-adds per
# step: every device is launch-bound, so the device that issues steps fastest wins.
# Measured by benchmarks/gpu_check.py on an H100 machine (part (c): 50,000 samples, batch 10):
#   eager CUDA, one kernel launch at a time: 0.916 s per epoch; that machine's CPU: 0.390 s (0.43x:
#   eager CUDA is the slower device); CUDA graphs (one replay per 500 steps, mlhw.mlp): 0.188 s
#   (2.08x the CPU). The 6-rate sweep of part (b): 0.042 s with graphs vs 0.154 s on the CPU.
# Rule: auto runs the MLP on CUDA only where its steps are captured in CUDA graphs, else on the CPU.
# (Not measured on pre-Ampere GPUs; a graph replay's cost per kernel is small on any of them.)
MLP_AUTO_NEEDS_GRAPHS = True


def mlp_device(name: str | torch.device = "auto", graphs: bool = True, caps: DeviceCaps | None = None) -> torch.device:
    """Part 1's device. An explicit device (cpu, cuda[:N], or a torch.device) is obeyed.
    auto: CUDA when CUDA is available and the SGD steps will be captured in CUDA graphs
    (`graphs`), else the CPU. `caps` injects the hardware (tests); default: probe cuda:0."""
    if isinstance(name, torch.device) or name != "auto":
        return resolve_device(str(name))
    if caps is None:
        caps = device_caps("cuda") if torch.cuda.is_available() else DeviceCaps()
    if caps.type == "cuda" and (caps.cuda_graphs and graphs or not MLP_AUTO_NEEDS_GRAPHS):
        return torch.device("cuda")
    return torch.device("cpu")
