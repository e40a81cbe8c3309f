"""Tracked runs: a job (a validated config with its identity) + its data + the numerical core, logged as
MLflow runs. The single-run commands call the runners here (run_mlp, run_cnn, RUNNERS) and every executor of
`reproduce` reaches them through `run_unit`, so a run looks the same whichever way it was started.

A unit is one or more jobs that execute together: MLP jobs that differ only in the seed and the
learning rate train as one batched computation (one MLflow run per job); every other unit is one job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlhw import data as datalib
from mlhw import memory
from mlhw.config import CNN_PRESETS, KINDS, CNNConfig, code_digest, identity
from mlhw.errors import path_errors, refuse_empty
from mlhw.lifecycle import (
    COMPILED_TAG,
    CPU_THREADS_TAG,
    IDENTITY_TAG,
    TOGETHER_TAG,
    RunLogger,
    standard_tags,
    tracked_run,
)
from mlhw.store import Store

EpochHook = Callable[[int, dict], None]  # (epoch, the core's row for that epoch)


@dataclass
class Job:
    """One run to execute: its config, identity, MLflow name, parent and tags. Plain data, so that it
    crosses to a worker process or a Ray task (`to_dict` / `from_dict`)."""

    config: Any
    identity: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = "mlhw"
    parent: str | None = None

    def to_dict(self) -> dict:
        return asdict(self) | {"config": self.config.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(**(d | {"config": KINDS[d["config"]["kind"]](**d["config"])}))


@dataclass
class Done:
    """A run that finished: the job, its MLflow run id and the core's result."""

    job: Job
    run_id: str
    result: Any


def data_dir_errors(data_dir):
    """Around mlhw.data's calls (a core module, whose identity is hashed, looks for the files with Path.is_file): a
    --data-dir that cannot be searched (a folder on the way of another user's, mode 700) or whose name is too long
    is one line naming it, not Python 3.11's PermissionError or 'File name too long' from is_file(), a traceback."""
    from mlhw.errors import DataDirUnusable

    return path_errors(f"--data-dir {data_dir}", data_dir, DataDirUnusable)


class DataSource:
    """Datasets read once per process, however many runs use them; each run's view of its dataset."""

    def __init__(self, data_dir: str = "data", download: bool | None = None, device: str = "auto"):
        refuse_empty("--data-dir", data_dir, "data")
        self.data_dir, self.download = data_dir, download
        self.device = device  # --device: whose memory a network must fit in (mlhw.memory)
        self._base: dict[str, datalib.Dataset] = {}

    def base(self, name: str) -> datalib.Dataset:
        if name not in self._base:
            with data_dir_errors(self.data_dir):
                self._base[name] = datalib.load(name, self.data_dir, self.download)
        return self._base[name]

    def fingerprint(self, name: str | None) -> str:
        """The fingerprint of a whole dataset (the identity of the runs that read it): cached by file path,
        size and mtime, so an unchanged dataset is neither read nor hashed again (a no-op reproduce)."""
        if name is None:
            return ""
        if name in self._base:
            return self._base[name].fingerprint()
        with data_dir_errors(self.data_dir):
            return datalib.dataset_fingerprint(name, self.data_dir, self.download)

    def for_config(self, cfg) -> datalib.Dataset | None:
        """The split a run sees: a seeded subset (MLP, SVMs); a validation split and a training
        fraction (CNN); the embedded digits or nothing (theory)."""
        name = getattr(cfg, "dataset", None)
        if name is None:
            return None
        data = self.base(name)
        if isinstance(cfg, CNNConfig):
            return datalib.train_fraction(datalib.with_validation(data), cfg.train_fraction)
        if hasattr(cfg, "train_size"):
            return datalib.subset(data, cfg.train_size, cfg.test_size, cfg.seed)
        return data

    def identity(self, cfg) -> str:
        return identity(cfg, self.fingerprint(getattr(cfg, "dataset", None)))

    @staticmethod
    def may_be_unusable(cfg, replicas: int = 1) -> bool:
        """Whether `unusable` has anything to find, known without reading the dataset: a run on a dataset whose
        split depends on more than its preset (a subset size, a soft SVM's classes, a CNN training fraction below
        digits' or CIFAR-10's preset, which are known to be usable)."""
        if getattr(cfg, "dataset", None) is None:
            return False
        if any(getattr(cfg, k, None) is not None for k in ("train_size", "test_size", "classes")):
            return True
        if getattr(cfg, "batchnorm", False) and cfg.batch_size < 2:
            return True
        if getattr(cfg, "method", None) == "exact" and cfg.dataset != "digits":  # Q1's LP may be too large
            return True
        fraction = getattr(cfg, "train_fraction", None)
        if fraction is not None and fraction < CNN_PRESETS[cfg.dataset]["train_fraction"]:
            return True
        return memory.may_not_fit(cfg, replicas)

    def unusable(self, cfg, replicas: int = 1) -> tuple[str, str] | None:
        """(the field to blame, why) when the split a run would see cannot be trained on; None when it can.
        Checked before any run exists: a soft SVM's subset without one of its two classes (a FAILED run before),
        a CNN training split under 2 images or BatchNorm with batches of 1 (BatchNorm skips a 1-image batch: such a
        run trained on nothing and FINISHED), a network larger than this machine's memory (mlhw.memory; `replicas`:
        the MLP networks trained together with this one)."""
        if getattr(cfg, "dataset", None) is None:
            return None
        too_large = datalib.oversized(
            self.base(cfg.dataset), getattr(cfg, "train_size", None), getattr(cfg, "test_size", None)
        )
        if too_large is not None:
            which, size, pool = too_large
            return f"{which}_size", f"{size} is larger than the {which} pool of {cfg.dataset} ({pool})"
        if isinstance(cfg, CNNConfig) and cfg.batchnorm and cfg.batch_size < 2:  # every batch would be skipped
            return "batch_size", "BatchNorm needs batches of 2 images at least (got 1)"
        data = self.for_config(cfg)
        if isinstance(cfg, CNNConfig) and len(data.train) < 2:
            return (
                "train_fraction",
                f"{cfg.train_fraction:g} of {cfg.dataset} is {len(data.train)} image(s); 2 at least",
            )
        if memory.may_not_fit(cfg, replicas) and (problem := memory.too_large(cfg, data, self.device, replicas)):
            return problem
        rows = len(data.train) * (data.n_classes - 1)
        if getattr(cfg, "method", None) == "exact" and rows > Q1_LP_MAX_ROWS:
            most = Q1_LP_MAX_ROWS // (data.n_classes - 1)
            subset = cfg.train_size is not None
            return (
                "train_size" if subset else "dataset",  # where the size came from
                (
                    f"{len(data.train):,} samples"
                    if subset
                    else f"all {len(data.train):,} training samples of {data.name}"
                )
                + f": the exact Q1 may need a linear program of {rows:,} constraints, more "
                f"than {Q1_LP_MAX_ROWS:,} (180,000 ran 20 minutes and out of 16 GB); --train-size {most:,} or "
                "fewer, or --method subgradient",
            )
        classes = getattr(cfg, "classes", None)
        absent = [c for c in classes or () if c not in set(data.train.y.tolist())]
        if absent:
            blame = "train_size" if cfg.train_size is not None else "classes"
            return blame, f"class {absent[0]} has no training samples in {data.name} ({len(data.train)} samples)"
        if classes and cfg.test_size is not None and not set(classes) & set(data.test.y.tolist()):
            # (the run FINISHED with no test error: "-" in its table, no metric in MLflow)
            return "test_size", (
                f"{len(data.test)} test sample{'s' * (len(data.test) != 1)} of {data.name} "
                f"hold{'s' * (len(data.test) == 1)} none of classes "
                f"{' and '.join(map(str, classes))}: no test error to measure"
            )
        return None


# The most constraints (samples x wrong classes) of Q1's exact linear program a run may need: 180,000 (20,000 MNIST
# images, not separable) ran 20 minutes on 2 cores before HiGHS ran out of 16 GB. 90,000 (10,000 images, forced past
# their certificate: they are separable) held 5 GB and ran over 25 minutes unfinished: the bound is one of memory
Q1_LP_MAX_ROWS = 100_000


def run_tags(job: Job, data: datalib.Dataset | None, device) -> dict[str, str]:
    tags = standard_tags(job.source, job.description) | job.tags
    tags |= {"mlhw.kind": job.config.kind, IDENTITY_TAG: job.identity}
    if code := code_digest(job.config.kind):  # which code computed it (part of the identity): config.core_modules
        tags["mlhw.code_digest"] = code
    if data is not None:
        tags |= {
            "mlhw.dataset": data.name,
            "mlhw.dataset_fingerprint": data.fingerprint(),
            "mlhw.dataset_sizes": json.dumps(data.sizes()),
        }
        if data.files:  # official, or not the official files (synthetic, a benchmark's), or embedded (digits)
            tags["mlhw.dataset_files"] = data.files
    if device is not None:
        tags["mlhw.device"] = str(device)
        if job.config.kind in ("mlp", "cnn") and str(device).startswith("cpu"):
            import torch

            # On a CPU torch splits a matmul's or a convolution's sums by its thread count, so the same run differs
            # with it in the last bits, which training amplifies: AlexNet (always) and an MLP unit whose steps are
            # large enough to use the threads (mlhw.mlp.step_threads) train otherwise in a `--jobs N` worker (its
            # share of the cores) than in `--jobs 1` or a single command (all of them). The number is said here to
            # tell such runs apart; like the precision it is a runtime choice, not part of the identity.
            tags[CPU_THREADS_TAG] = str(torch.get_num_threads())
    return tags


def without_validation(data: datalib.Dataset) -> datalib.Dataset:
    """The splits a run reads that evaluates no validation split (Part 1's MLP: train and test), for its dataset
    inputs and sizes: MNIST's 10,000 validation images were logged as an input of runs that never read them.
    (Here, not in mlhw.data: a change there makes every run a new one.)"""
    if data.val is None:
        return data
    return dataclasses.replace(data, val=None, _fingerprint=data.fingerprint())


def open_run(
    stack: contextlib.ExitStack, store: Store, job: Job, data, device, claim, params=None, inputs=None
) -> RunLogger:
    """Open the job's MLflow run inside `stack`, which ends it FINISHED, FAILED or KILLED. `inputs`: the data the
    run trains on where that is a part of `data` (Q3's two classes), for its dataset inputs and sizes tag."""
    tags = run_tags(job, data, device)
    if inputs is not None:
        tags["mlhw.dataset_sizes"] = json.dumps(inputs.sizes())
    log = stack.enter_context(tracked_run(store, job.name, params or job.config.to_params(), tags, job.parent, claim))
    if data is not None:
        log.log_dataset(inputs or data)
    return log


def run_unit(
    jobs: list[Job],
    store: Store,
    source: DataSource,
    device=None,
    claim=None,
    on_epoch: EpochHook | None = None,
    precision: str = "auto",
    compile: bool = False,
) -> list[Done]:
    """Run one unit of work; returns the runs it finished. Raises `Claimed` when another process
    owns every job of it; an exception marks the open runs FAILED and propagates."""
    kind = jobs[0].config.kind
    if kind == "mlp":
        return run_mlp(jobs, store, source, device, claim, on_epoch)
    (job,) = jobs
    if kind == "cnn":
        return [run_cnn(job, store, source, device, claim, on_epoch, precision, compile)]
    return [RUNNERS[kind](job, store, source, claim)]


def run_mlp(jobs: list[Job], store: Store, source: DataSource, device, claim, on_epoch=None) -> list[Done]:
    """One network per job (the jobs differ only in seed and lr), trained as one batched computation:
    every seed of the unit with every rate of it (a (seed, lr) pair that is no job here, or whose run
    another process owns, trains too, unlogged: it keeps the batch rectangular). Each job is its own
    MLflow run, its metrics streamed per epoch."""
    from mlhw.claims import Claimed
    from mlhw.mlp import train_mlp_groups

    if len({j.config.batch_key() for j in jobs}) > 1:
        raise ValueError("an MLP unit's jobs may differ only in seed and lr")
    datas: dict[int, datalib.Dataset] = {}  # seed -> the split its runs see
    for job in jobs:
        if job.config.seed not in datas:
            datas[job.config.seed] = source.for_config(job.config)
    with contextlib.ExitStack() as stack:  # on any error every open run ends FAILED (or KILLED)
        logs, kept = [], []
        for job in jobs:
            try:
                data = datas[job.config.seed]
                logs.append(open_run(stack, store, job, data, device, claim, inputs=without_validation(data)))
            except Claimed:  # another process runs (or ran) this one: train the others
                continue
            kept.append(job)
        if not kept:
            raise Claimed(jobs[0].identity, "another process")
        return _train_mlp(kept, logs, datas, device, on_epoch, train_mlp_groups)


def _train_mlp(jobs, logs, datas, device, on_epoch, train_mlp_groups) -> list[Done]:
    seeds = list(dict.fromkeys(j.config.seed for j in jobs))
    lrs = list(dict.fromkeys(j.config.lr for j in jobs))
    at = [(seeds.index(j.config.seed), lrs.index(j.config.lr)) for j in jobs]  # each job's network

    def hook(epoch: int, rows: list[list[dict]]) -> None:
        for log, (g, r) in zip(logs, at):
            row = {k: v for k, v in rows[g][r].items() if k != "epoch"}
            if epoch == 0:  # the initialisation, evaluated before any step: init/train_loss, ..., no epoch time (a 0
                # charted as one). As train/loss's step 0 (17-22 on digits, 46-83 on MNIST) it flattened the UI's chart
                # of the training to a line at 0; history.csv keeps it as epoch 0
                row = {f"init_{k}": v for k, v in row.items() if k != "epoch_seconds"}
            log.log_metrics(row, step=epoch)
        if on_epoch is not None:
            on_epoch(epoch, rows[at[0][0]][at[0][1]])

    results = train_mlp_groups(jobs[0].config, [datas[s] for s in seeds], seeds, lrs, device, hook)
    # runs trained as one computation share its time: the report counts the group's span once
    together = {TOGETHER_TAG: f"{logs[0].run_id[:12]}/{len(jobs)}"} if len(jobs) > 1 else {}
    done = []
    for job, (g, r), log in zip(jobs, at, logs):
        res = results[g][r]
        if res.diverged_epoch is not None or together:
            log.set_tags(together | ({} if res.diverged_epoch is None else {"mlhw.diverged_epoch": res.diverged_epoch}))
        log.log_table(res.history, "history.csv")
        done.append(Done(job, log.run_id, res))
    return done


def run_cnn(job: Job, store, source, device, claim, on_epoch=None, precision="auto", compile=False) -> Done:
    """One AlexNet variant as one MLflow run: metrics per epoch (live), test metrics, history.csv."""
    import torch

    from mlhw.cnn import build_model, count_parameters, precision_name, resolve_precision, train_cnn

    cfg = job.config
    data = source.for_config(cfg)
    with contextlib.ExitStack() as stack:
        log = open_run(stack, store, job, data, device, claim)
        # known before the first step, as train_cnn finds them (the network built on the meta device: no memory, no
        # initialisation): logged after training, a run killed or failed mid-training said neither its size nor its
        # precision
        with torch.device("meta"):
            parameters = count_parameters(build_model(cfg, data))
        log.log_params(
            {"parameters": parameters, "precision": precision_name(resolve_precision(precision, torch.device(device)))}
        )
        if compile:  # the same numbers to the chaos of training (not its identity), another speed: said in the UI
            log.set_tags({COMPILED_TAG: "torch.compile"})

        def hook(epoch, row):
            log.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            if on_epoch is not None:
                on_epoch(epoch, row)

        res = train_cnn(cfg, data, device, precision, compile, hook)
        # measured once, after training: at step 0, as MLflow logs a metric without a step, the UI draws each as a
        # bar with its value; at the last epoch's step it was one dot on a line chart spanning steps 9 to 10.5
        log.log_metrics({"test_loss": res.test_loss, "test_acc": res.test_acc, "total_seconds": res.seconds}, step=0)
        log.log_params({"parameters": res.parameters, "precision": res.precision})  # the same: one param each
        if res.diverged_epoch:
            log.set_tags({"mlhw.diverged_epoch": res.diverged_epoch})
        log.log_table(res.history, "history.csv")
        return Done(job, log.run_id, res)


def run_svm_multiclass(job: Job, store: Store, source: DataSource, claim=None, on_step=None) -> Done:
    """Q1 on every class of the data: f*, training and test error, the pointwise bound hinge >= 0-1."""
    from mlhw import svm

    cfg = job.config
    data = source.for_config(cfg)
    Xtr, Xte = svm.design_matrix(data.train.x), svm.design_matrix(data.test.x)
    if cfg.bias:
        Xtr, Xte = svm.add_bias_feature(Xtr), svm.add_bias_feature(Xte)
    with contextlib.ExitStack() as stack:
        log = open_run(stack, store, job, data, None, claim)

        diverged: list[int] = []  # the first step whose objective is not finite (a rate too large)

        def step_hook(step, row):
            if not diverged and not math.isfinite(row["objective"]):
                diverged.append(step)
            log.log_metrics({"objective": row["objective"], "train_error": row["train_error"]}, step)
            if on_step is not None:
                on_step(step, row)

        import numpy as np

        # a diverging subgradient overflows to inf, then nan: numpy's five RuntimeWarnings (ten lines) said it on
        # stderr; the run records it instead (mlhw.diverged_step), as the MLP's and AlexNet's runs do theirs
        quiet = (
            np.errstate(over="ignore", invalid="ignore") if cfg.method == "subgradient" else contextlib.nullcontext()
        )
        with quiet:
            report = svm.multiclass_report(
                Xtr, data.train.y, Xte, data.test.y, data.n_classes, cfg.method, cfg.steps, cfg.lr, step_hook
            )
        if not diverged and not math.isfinite(report["objective"]):
            diverged.append(report["steps"])
        # the exact method takes no steps: its `steps` of 0 was a metric of its own in the UI, read as a count
        skip = {"method"} | ({"steps"} if cfg.method == "exact" else set())
        log.log_metrics({k: v for k, v in report.items() if k not in skip}, step=report["steps"])
        tags = {"mlhw.solution_method": report["method"]}
        if diverged:
            report["diverged_step"] = tags["mlhw.diverged_step"] = diverged[0]
        log.set_tags(tags)
        log.log_text(json.dumps(report, indent=2), "report.json")
        return Done(job, log.run_id, report)


# what liblinear/objective (and liblinear/relative_difference) is the objective of, in the run's tags
LIBLINEAR_PROBLEM = {
    "free": "this problem with its bias penalised (liblinear penalises its bias): not primal/objective's problem; "
    "liblinear/relative_difference compares it with that variant solved by Newton",
    "regularized": "this run's problem (the bias penalised, folded into the features)",
    "none": "this run's problem (no bias)",
}


def run_svm_soft(job: Job, store: Store, source: DataSource, claim=None, on_stage=None) -> Done:
    """Q3: primal and dual solved independently, duality gap, KKT residuals, Q3(a), liblinear agreement."""
    from mlhw import svm

    cfg = job.config
    data = source.for_config(cfg)
    Xtr, ytr = svm.binary_task(svm.design_matrix(data.train.x), data.train.y, cfg.classes)
    Xte, yte = svm.binary_task(svm.design_matrix(data.test.x), data.test.y, cfg.classes)
    with contextlib.ExitStack() as stack:
        log = open_run(stack, store, job, data, None, claim, inputs=datalib.two_classes(data, cfg.classes))
        report = svm.soft_report(Xtr, ytr, cfg.C, cfg.bias, Xte, yte, on_stage)
        report["liblinear_formulation"] = cfg.bias if cfg.bias != "free" else "regularized"
        # a residual of a constraint the formulation has none of is no check: logged as 0, it read as one passed
        absent = cfg.absent_residuals
        log.log_metrics({k: v for k, v in report.items() if isinstance(v, int | float) and k not in absent}, step=0)
        # a free bias's liblinear/objective is another problem's (liblinear penalises its bias): beside
        # primal/objective, 5.185801 against 5.185426 with a relative difference of 2e-16, it read as a wrong one
        log.set_tags({"mlhw.liblinear_problem": LIBLINEAR_PROBLEM[cfg.bias]})
        log.log_text(json.dumps(report | dict.fromkeys(absent), indent=2), "report.json")  # null: no such constraint
        return Done(job, log.run_id, report)


def question_margins(checks) -> dict[str, float]:
    """Per question (Q1..Q4), its worst check's error over that check's tolerance: at most 1 where every check of
    the question passes. An exact claim (tolerance 0) counts 0 when it holds exactly, inf when not; so does an error
    that is not finite. One number per question: a metric per check (41 of them, each a bar reading 0.00) filled
    the run's page and half the experiment's metric columns in the UI; theory.csv keeps every check."""
    worst: dict[str, float] = {}
    for c in checks:
        exact = c.tolerance <= 0
        if not math.isfinite(c.max_error) or (exact and c.max_error != 0):
            ratio = math.inf
        else:
            ratio = 0.0 if exact else c.max_error / c.tolerance
        q = c.question[:2]
        worst[q] = max(worst.get(q, 0.0), ratio)
    return {f"error_over_tolerance/{q}": worst[q] for q in sorted(worst)}


def run_theory(job: Job, store: Store, source: DataSource, claim=None) -> Done:
    """Every theory check, logged as one run: per question its worst error over tolerance, the counts of passed and
    failed checks, and every check in theory.csv."""
    from mlhw.theory import run_checks

    data = source.for_config(job.config)
    with contextlib.ExitStack() as stack:
        log = open_run(stack, store, job, data, None, claim)
        # in the questions' order (the checks run cheapest first: Q2, Q4, Q1, Q3), for theory.csv and --json alike
        checks = sorted(run_checks(data), key=lambda c: c.question[:2])
        log.log_metrics(question_margins(checks), step=0)
        log.log_table([c.row() for c in checks], "theory.csv")
        failed = sum(not c.passed for c in checks)
        # the counts as metrics too (charted and sorted across runs in the UI, where tags are not)
        log.log_metrics({"checks/passed": len(checks) - failed, "checks/failed": failed}, step=0)
        log.set_tags({"mlhw.checks_passed": len(checks) - failed, "mlhw.checks_failed": failed})
        return Done(job, log.run_id, checks)


RUNNERS = {"svm_multiclass": run_svm_multiclass, "svm_soft": run_svm_soft, "theory": run_theory}
