"""Tracked runs: the numerical core wrapped with data loading, MLflow logging and results/ output.

The CLI and `mlhw reproduce` both call these functions, so a run logged from either looks the same.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mlhw import data as datalib
from mlhw.config import MLPConfig
from mlhw.mlp import MLPResult, train_mlp
from mlhw.tracking import Tracker

EpochHook = Callable[[int, list[dict]], None]


@dataclass
class Runtime:
    """Where a run reads, computes and writes; not part of a result's identity."""

    device: str = "auto"
    data_dir: str = "data"
    download: bool | None = None
    results_dir: str = "results"


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary file in the same folder, then rename: no half-written results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_data(dataset: str, runtime: Runtime, train_size=None, test_size=None, seed=0) -> datalib.Dataset:
    data = datalib.load(dataset, runtime.data_dir, runtime.download)
    return datalib.subset(data, train_size, test_size, seed)


@dataclass
class MLPRun:
    config: MLPConfig
    result: MLPResult
    run_id: str


def run_mlp(cfg: MLPConfig, data: datalib.Dataset, device, tracker: Tracker, runtime: Runtime,
            lrs: Sequence[float] | None = None, part: str = "mlp.c",
            on_epoch: EpochHook | None = None) -> tuple[list[MLPRun], Path | None]:
    """Train one network per learning rate, each its own MLflow run, metrics streamed per epoch.

    With several rates (part b) the runs are children of one parent run, which also gets the
    learning-rate figure (written under results/). Returns the runs and the figure (or None).
    `data` comes from `load_data(...)`, already subset; `device` from `resolve_device`.
    """
    lrs = [cfg.lr] if lrs is None else list(lrs)
    configs = [cfg.model_copy(update={"lr": lr}) for lr in lrs]
    fingerprint = data.fingerprint()
    sweep = len(lrs) > 1

    with contextlib.ExitStack() as stack:  # on any error every open run ends FAILED (or KILLED)
        parent = None
        if sweep:
            params = cfg.model_dump(mode="json", exclude={"lr"}) | {"lrs": lrs}
            sweep_hash = cfg.model_copy(update={"lr": 0.0}).digest(fingerprint, ",".join(map(str, lrs)))
            tags = tracker.base_tags(part, sweep_hash, data, device) | {"mlhw.kind": "mlp-sweep"}
            parent = stack.enter_context(tracker.run(f"{part} sweep", params, tags))
        logs = []
        for c in configs:
            tags = tracker.base_tags(part, c.digest(fingerprint), data, device) | {"mlhw.kind": "mlp"}
            log = stack.enter_context(tracker.run(f"{part} lr={c.lr:g}", c.model_dump(mode="json"), tags,
                                                  parent.run_id if parent else None))
            log.log_dataset(data)
            logs.append(log)

        def hook(epoch: int, rows: list[dict]) -> None:
            for log, row in zip(logs, rows):
                log.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, rows)

        results = train_mlp(cfg, data, lrs, device, hook)
        runs = []
        for c, res, log in zip(configs, results, logs):
            if res.diverged_epoch is not None:
                log.set_tags({"diverged": res.diverged_epoch})
            log.log_table(res.history, "history.csv")
            runs.append(MLPRun(c, res, log.run_id))
        figure = None
        if parent is not None:
            from mlhw.plots import lr_sweep_figure

            figure = Path(runtime.results_dir) / data.name / "figures" / "mlp_lr_sweep.png"
            series = [(f"lr={r.config.lr:g}", r.result.history) for r in runs]
            title = f"MLP {[data.n_features, *cfg.hidden, data.n_classes]} on {data.name}"
            write_atomically(figure, lambda p: lr_sweep_figure(series, p, title))
            parent.log_artifact(figure, "figures")
    return runs, figure
