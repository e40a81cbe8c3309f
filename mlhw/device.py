"""Which torch device a run uses: --device auto|cpu|cuda[:N]."""

from __future__ import annotations

import torch

from mlhw.errors import MLHWError


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
