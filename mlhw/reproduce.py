"""`mlhw reproduce`: plan the runs of a profile, skip what is done, run what is pending.

A run is identified by its config hash (the resolved config + the fingerprint of the data it sees),
the `mlhw.config_hash` tag every tracked run carries. A FINISHED run with the hash is done; FAILED,
KILLED or stale RUNNING runs are run again. Runs shared by several suites (Adam 5e-5 with BatchNorm
belongs to 2a, 2b and 2c) have one hash and run once.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from mlhw import data as datalib
from mlhw.experiments import RunSpec
from mlhw.runs import (Runtime, load_cnn_data, run_cnn, run_mlp, run_svm_multiclass, run_svm_soft,
                       run_theory)
from mlhw.tracking import Tracker


@dataclass
class PlannedRun:
    spec: RunSpec
    hash: str
    data: datalib.Dataset | None
    status: str = "pending"  # done | pending | failed | killed | running (stale)
    run_id: str | None = None


@dataclass
class Outcome:
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (label, error)


class DataCache:
    """Each dataset is read once per reproduce, however many runs use it."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @functools.lru_cache(maxsize=None)
    def base(self, name: str) -> datalib.Dataset:
        return datalib.load(name, self.runtime.data_dir, self.runtime.download)

    def for_run(self, spec: RunSpec) -> datalib.Dataset | None:
        c = spec.config
        if spec.kind == "theory":
            return self.base("digits") if c.digits else None
        if spec.kind == "cnn":
            return load_cnn_data(c, self.runtime, self.base(c.dataset))
        return datalib.subset(self.base(c.dataset), c.train_size, c.test_size, c.seed)


def run_hash(spec: RunSpec, data: datalib.Dataset | None) -> str:
    if spec.kind == "theory":
        return "theory-" + (data.fingerprint() if data is not None else "generated")
    return spec.config.digest(data.fingerprint() if data is not None else "")


def plan(specs: list[RunSpec], tracker: Tracker, cache: DataCache) -> list[PlannedRun]:
    """Every run with its hash and status; one entry per distinct hash within a suite."""
    latest = tracker.latest_by_hash()
    out = []
    for spec in specs:
        data = cache.for_run(spec)
        h = run_hash(spec, data)
        found = latest.get(h)
        status, run_id = "pending", None
        if found is not None:
            run_id = found["run_id"]
            status = {"FINISHED": "done", "FAILED": "failed", "KILLED": "killed"}.get(found["status"], "running")
            if status != "done":
                run_id = None
        out.append(PlannedRun(spec, h, data, status, run_id))
    return out


def execute(planned: list[PlannedRun], tracker: Tracker, runtime: Runtime, device,
            on_start: Callable[[PlannedRun, int], None] | None = None, on_epoch=None,
            on_done: Callable[[PlannedRun], None] | None = None) -> Outcome:
    """Run every pending run once. MLP runs that differ only in the learning rate train together (one
    batched sweep). A run that raises is marked FAILED in MLflow and the others still run; Ctrl-C
    ends the active run KILLED and propagates."""
    outcome = Outcome()
    todo: dict[str, PlannedRun] = {}
    for p in planned:
        if p.status != "done" and p.hash not in todo:
            todo[p.hash] = p
    groups: list[list[PlannedRun]] = []
    mlp_groups: dict[str, list[PlannedRun]] = {}
    for p in todo.values():
        if p.spec.kind == "mlp":
            key = p.spec.config.model_copy(update={"lr": 1.0}).digest(p.data.fingerprint(), p.spec.part)
            if key not in mlp_groups:
                mlp_groups[key] = []
                groups.append(mlp_groups[key])
            mlp_groups[key].append(p)
        else:
            groups.append([p])
    for group in groups:
        first = group[0]
        if on_start is not None:
            on_start(first, len(group))
        try:
            ids = _run_group(group, tracker, runtime, device, on_epoch)
            for p, run_id in zip(group, ids):
                p.status, p.run_id = "done", run_id
                outcome.ran += 1
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # recorded FAILED by the tracker; the other runs go on
            for p in group:
                p.status = "failed"
                outcome.failed.append((f"{p.spec.suite} {p.spec.label}", f"{type(err).__name__}: {err}"))
        if on_done is not None:
            on_done(first)
    return outcome


def _run_group(group: list[PlannedRun], tracker: Tracker, runtime: Runtime, device, on_epoch) -> list[str]:
    p = group[0]
    spec, cfg = p.spec, p.spec.config
    if spec.kind == "mlp":
        runs, _ = run_mlp(cfg, p.data, device, tracker, runtime, [q.spec.config.lr for q in group], spec.part,
                          on_epoch, figure=False)
        return [r.run_id for r in runs]
    if spec.kind == "cnn":
        return [run_cnn(cfg, p.data, device, tracker, spec.part, spec.variant, on_epoch=on_epoch).run_id]
    if spec.kind == "svm_multiclass":
        return [run_svm_multiclass(cfg, p.data, tracker)["run_id"]]
    if spec.kind == "svm_soft":
        return [run_svm_soft(cfg, p.data, tracker)["run_id"]]
    return [run_theory(tracker, p.data)[1]]
