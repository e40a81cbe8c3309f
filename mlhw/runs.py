"""Tracked runs: the numerical core wrapped with data loading, MLflow logging and results/ output.

The CLI and `mlhw reproduce` both call these functions, so a run logged from either looks the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlhw import data as datalib
from mlhw.config import MLPConfig
from mlhw.mlp import MLPResult, train_mlp
from mlhw.tracking import Claimed, Tracker

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


def open_run(
    stack: contextlib.ExitStack,
    tracker: Tracker,
    name: str,
    cfg,
    part: str,
    kind: str,
    data: datalib.Dataset | None,
    device=None,
    parent=None,
    params: dict | None = None,
    config_hash: str | None = None,
    claim: bool = True,
):
    """Open one MLflow run with mlhw's standard params and tags (closed, with its status, by `stack`).
    Raises tracking.Claimed when the tracker claims runs and another process owns this config."""
    if config_hash is None:
        config_hash = cfg.digest(data.fingerprint() if data is not None else "")
    tags = tracker.base_tags(part, config_hash, data, device) | {"mlhw.kind": kind}
    log = stack.enter_context(
        tracker.run(
            name,
            params if params is not None else cfg.model_dump(mode="json"),
            tags,
            parent.run_id if parent else None,
            claim,
        )
    )
    if data is not None:
        log.log_dataset(data)
    return log


@dataclass
class MLPRun:
    config: MLPConfig
    result: MLPResult
    run_id: str


def run_mlp(
    cfg: MLPConfig,
    data: datalib.Dataset,
    device,
    tracker: Tracker,
    runtime: Runtime,
    lrs: Sequence[float] | None = None,
    part: str = "mlp.c",
    on_epoch: EpochHook | None = None,
    figure: bool = True,
) -> tuple[list[MLPRun], Path | None]:
    """Train one network per learning rate, each its own MLflow run, metrics streamed per epoch.

    With several rates (part b) the runs are children of one parent run, which also gets the
    learning-rate figure (written under results/, unless `figure` is False: `reproduce` draws its
    figures from MLflow). Returns the runs and the figure (or None).
    `data` comes from `load_data(...)`, already subset; `device` from `resolve_device`.
    """
    lrs = [cfg.lr] if lrs is None else list(lrs)
    configs = [cfg.model_copy(update={"lr": lr}) for lr in lrs]
    fingerprint = data.fingerprint()
    sweep = len(lrs) > 1

    with contextlib.ExitStack() as stack:  # on any error every open run ends FAILED (or KILLED)
        parent = None
        if sweep:
            parent = open_run(
                stack,
                tracker,
                f"{part} sweep",
                cfg,
                part,
                "mlp-sweep",
                data,
                device,
                params=cfg.model_dump(mode="json", exclude={"lr"}) | {"lrs": lrs},
                config_hash=cfg.model_copy(update={"lr": 0.0}).digest(fingerprint, str(lrs)),
                claim=False,
            )
        logs, kept = [], []
        for c in configs:
            try:
                logs.append(open_run(stack, tracker, f"{part} lr={c.lr:g}", c, part, "mlp", data, device, parent))
                kept.append(c)
            except Claimed:  # another process runs (or ran) this rate: train the others
                continue
        if not kept:
            raise Claimed("all rates", "others")
        configs, lrs = kept, [c.lr for c in kept]

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
        path = None
        if parent is not None and figure:
            from mlhw.plots import lr_sweep_figure

            path = Path(runtime.results_dir) / data.name / "figures" / "mlp_lr_sweep.png"
            series = [(f"lr={r.config.lr:g}", r.result.history) for r in runs]
            title = f"MLP {[data.n_features, *cfg.hidden, data.n_classes]} on {data.name}"
            write_atomically(path, lambda p: lr_sweep_figure(series, p, title))
            parent.log_artifact(path, "figures")
    return runs, path


# --- SVMs and theory ---------------------------------------------------------------------------


def features(split: datalib.Split) -> np.ndarray:
    """A split's images as float64 rows in [0, 1]: the SVMs' design matrix."""
    return datalib.unit_float(split.x).reshape(len(split), -1).astype("float64")


def run_svm_multiclass(cfg, data: datalib.Dataset, tracker: Tracker, on_step=None) -> dict:
    """Q1 on every class of `data`: f*, training and test error, the pointwise bound hinge >= 0-1."""
    from mlhw import svm

    Xtr, Xte = features(data.train), features(data.test)
    if cfg.bias:
        Xtr, Xte = svm.add_bias_feature(Xtr), svm.add_bias_feature(Xte)
    ytr, yte = data.train.y, data.test.y
    with contextlib.ExitStack() as stack:
        log = open_run(stack, tracker, f"svm.q1 {cfg.method}", cfg, "svm.q1", "svm-multiclass", data)

        def step_hook(step, row):
            log.log_metrics({"objective": row["objective"], "train_error": row["train_error"]}, step)
            if on_step is not None:
                on_step(step, row)

        if cfg.method == "exact":
            sol = svm.solve_multiclass(Xtr, ytr, data.n_classes)
        else:
            sol = svm.multiclass_subgradient(Xtr, ytr, cfg.steps, cfg.lr, data.n_classes, step_hook)
        hinge, err01 = svm.multiclass_hinge(sol.W, Xtr, ytr), svm.zero_one(sol.W, Xtr, ytr)
        report = {
            "objective": sol.objective,
            "train_error": float(err01.mean()),
            "test_error": float(svm.zero_one(sol.W, Xte, yte).mean()),
            "bound_violations": int(np.sum(err01 > hinge)),
            "seconds": sol.seconds,
            "method": sol.method,
            "steps": len(sol.history) - 1 if sol.history else 0,
        }
        log.log_metrics({k: v for k, v in report.items() if k != "method"}, step=report["steps"])
        log.set_tags({"solution_method": sol.method})
        log.log_text(json.dumps(report, indent=2), "report.json")
        report["run_id"] = log.run_id
    return report


def run_svm_soft(cfg, data: datalib.Dataset, tracker: Tracker) -> dict:
    """Q3: primal and dual solved independently, duality gap, KKT residuals, Q3(a), liblinear agreement."""
    from mlhw import svm
    from mlhw.errors import MLHWError
    from mlhw.theory import binary_task

    present = sorted(set(data.train.y.tolist()))
    for c in cfg.classes:
        if c not in present:
            raise MLHWError(
                f"--classes: class {c} has no training samples in {data.name} "
                f"({len(data.train)} samples, classes {present})"
            )
    Xtr, ytr = binary_task(features(data.train), data.train.y, cfg.classes)
    Xte, yte = binary_task(features(data.test), data.test.y, cfg.classes)
    prob = svm.SoftSVMProblem(Xtr, ytr, cfg.C, cfg.bias)

    def test_error(theta):
        if not len(yte):
            return float("nan")
        A = Xte if cfg.bias == "none" else svm.add_bias_feature(Xte)
        return svm.binary_error(theta, A, yte)

    with contextlib.ExitStack() as stack:
        log = open_run(
            stack, tracker, f"svm.q3 {cfg.classes[0]} vs {cfg.classes[1]} C={cfg.C:g}", cfg, "svm.q3", "svm-soft", data
        )
        primal = svm.solve_primal(prob)
        report = {
            "n_train": len(ytr),
            "n_test": len(yte),
            "primal_objective": primal.objective,
            "primal_seconds": primal.seconds,
            "newton_iterations": primal.iterations,
            "train_error": svm.binary_error(primal.theta, prob.A, ytr),
            "test_error": test_error(primal.theta),
        }
        if len(ytr) <= 6000:
            dual = svm.solve_dual(prob)
            report |= svm.kkt_report(prob, primal, dual) | {"dual_seconds": dual.seconds}
        if len(ytr) + prob.A.shape[1] <= 3000:
            _, _, f_plain = svm.solve_explicit_qp(prob, nonnegative_slack=False)
            _, _, f_nonneg = svm.solve_explicit_qp(prob, nonnegative_slack=True)
            report |= {
                "qp_objective": f_plain,
                "qp_nonneg_objective": f_nonneg,
                "q3a_relative_difference": abs(f_nonneg - f_plain) / max(1.0, abs(f_plain)),
            }
        ref = prob if cfg.bias != "free" else svm.SoftSVMProblem(Xtr, ytr, cfg.C, "regularized")
        ours = primal.objective if ref is prob else svm.solve_primal(ref).objective
        lib = ref.primal(svm.liblinear_theta(ref))
        report |= {
            "liblinear_formulation": ref.bias,
            "liblinear_objective": lib,
            "liblinear_relative_difference": abs(lib - ours) / max(1.0, abs(ours)),
        }
        log.log_metrics({k: v for k, v in report.items() if isinstance(v, (int, float))}, step=0)
        log.log_text(json.dumps(report, indent=2), "report.json")
        report["run_id"] = log.run_id
    return report


def run_theory(tracker: Tracker, digits: datalib.Dataset | None) -> tuple[list, str]:
    """Every theory check, logged as one run: a metric per check and the table as theory.csv."""
    from mlhw.theory import run_checks

    with contextlib.ExitStack() as stack:
        log = open_run(
            stack,
            tracker,
            "theory Q1-Q4",
            None,
            "theory",
            "theory",
            digits,
            params={"datasets": "generated" + (", digits" if digits is not None else "")},
            config_hash="theory-" + (digits.fingerprint() if digits is not None else "generated"),
        )
        checks = run_checks(digits)
        for i, c in enumerate(checks):
            log.log_metrics({f"check_{i:02d}_error": c.max_error}, step=0)
        log.log_table([c.row() for c in checks], "theory.csv")
        failed = sum(not c.passed for c in checks)
        log.set_tags({"checks_passed": len(checks) - failed, "checks_failed": failed})
    return checks, log.run_id


# --- Part 2: AlexNet ---------------------------------------------------------------------------

CNN_SMALL = {"width": 0.5, "image_size": 67}  # digits on a CPU: the paper topology at half width, 67 px


def cnn_defaults(dataset: str) -> dict:
    """Per-dataset defaults: the paper model (width 1, 227 px, 10% of the pool) for CIFAR-10; a half-width
    model at the topology's minimum size (67 px) on all of digits' training pool."""
    if dataset == "cifar10":
        return {"width": 1.0, "image_size": 227, "train_fraction": 0.1}
    return dict(CNN_SMALL, train_fraction=1.0)


def load_cnn_data(cfg, runtime: Runtime, base: datalib.Dataset | None = None) -> datalib.Dataset:
    """The split a CNN run sees: validation carved out if the dataset has none, then the training fraction."""
    data = base if base is not None else datalib.load(cfg.dataset, runtime.data_dir, runtime.download)
    return datalib.train_fraction(datalib.with_validation(data), cfg.train_fraction)


@dataclass
class CNNRun:
    config: object
    result: object
    run_id: str
    variant: str | None = None


def run_cnn(
    cfg,
    data: datalib.Dataset,
    device,
    tracker: Tracker,
    part: str = "cnn",
    variant: str | None = None,
    parent=None,
    precision: str = "auto",
    compile: bool = False,
    on_epoch=None,
) -> CNNRun:
    """One AlexNet variant as one MLflow run: metrics per epoch (live), test metrics, curves CSV."""
    from mlhw.cnn import train_cnn

    with contextlib.ExitStack() as stack:
        name = f"{part} {variant or cfg.optimizer} lr={cfg.lr:g}" + ("" if cfg.batchnorm else " no-BN")
        log = open_run(stack, tracker, name, cfg, part, "cnn", data, device, parent)
        log.set_tags({"precision": precision, "variant": variant or "custom"})

        def hook(epoch, row):
            log.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, row)

        res = train_cnn(cfg, data, device, precision, compile, hook)
        log.log_metrics(
            {
                "test_loss": res.test_loss,
                "test_acc": res.test_acc,
                "parameters": res.parameters,
                "total_seconds": res.seconds,
            },
            step=len(res.history),
        )
        log.set_tags({"precision": res.precision} | ({"diverged": res.diverged_epoch} if res.diverged_epoch else {}))
        log.log_table(res.history, "history.csv")
        return CNNRun(cfg, res, log.run_id, variant)


def summary_row(run: CNNRun) -> dict:
    final = run.result.history[-1]
    return {
        "optimizer": run.config.optimizer,
        "lr": run.config.lr,
        "batchnorm": run.config.batchnorm,
        "train_loss": final["train_loss"],
        "val_acc": final["val_acc"],
        "test_acc": run.result.test_acc,
        "diverged_epoch": run.result.diverged_epoch,
    }


def run_cnn_compare(
    base,
    parts: list[str],
    data: datalib.Dataset,
    device,
    tracker: Tracker,
    runtime: Runtime,
    precision: str = "auto",
    compile: bool = False,
    on_variant=None,
    on_epoch=None,
) -> tuple[dict[str, CNNRun], dict[str, object], list[Path]]:
    """The assignment's comparisons: every variant the parts need, run once (adam-5e-05 serves all
    three), as children of one parent run; then one seed-style table and one figure per part."""
    from mlhw.plots import cnn_curves_figure
    from mlhw.reference import CNN_PARTS, CNN_VARIANTS, variants_for
    from mlhw.tables import CNN_PART_SUITES, cnn_table, to_markdown

    names = variants_for(parts)
    with contextlib.ExitStack() as stack:
        parent = open_run(
            stack,
            tracker,
            f"cnn compare {','.join(parts)}",
            base,
            "cnn.compare",
            "cnn-compare",
            data,
            device,
            params=base.model_dump(mode="json") | {"parts": parts, "variants": names},
            config_hash=base.digest(data.fingerprint(), ",".join(parts)),
            claim=False,
        )
        runs = {}
        for v in names:
            cfg = base.model_copy(update=CNN_VARIANTS[v])
            if on_variant is not None:
                on_variant(v, cfg)
            parts_of_v = "".join(p for p in parts if v in CNN_PARTS[p][1])
            runs[v] = run_cnn(cfg, data, device, tracker, f"cnn.{parts_of_v}", v, parent, precision, compile, on_epoch)
        tables, figures = {}, []
        for p in parts:
            title, pair = CNN_PARTS[p]
            tables[p] = cnn_table(CNN_PART_SUITES[p], [summary_row(runs[v]) | {"variant": v} for v in pair]).display
            parent.log_text(to_markdown(tables[p]), f"tables/cnn_part_{p}.md")
            path = Path(runtime.results_dir) / data.name / "figures" / f"cnn_part_{p}.png"
            series = [(v, runs[v].result.history) for v in pair]
            write_atomically(path, lambda f: cnn_curves_figure(series, f, f"Part 2 ({p}) {title} on {data.name}"))
            parent.log_artifact(path, "figures")
            figures.append(path)
    return runs, tables, figures
