"""`mlhw reproduce`: plan the runs of a profile, skip what is done, run what is pending.

A run is identified by its config hash (the resolved config + the fingerprint of the data it sees),
the `mlhw.config_hash` tag every tracked run carries. A FINISHED run with the hash is done; FAILED,
KILLED or stale RUNNING runs (no heartbeat) are run again; a live RUNNING run belongs to another
process and is left to it. Runs shared by several suites (Adam 5e-5 with BatchNorm belongs to 2a,
2b and 2c) have one hash and run once. Workers claim each run atomically before training (see
Tracker.run), so two reproduce invocations on one store never run a configuration twice.

Executors: in this process (`jobs=1`), N local worker processes (`jobs=N`), or Ray tasks.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mlhw import data as datalib
from mlhw.experiments import RunSpec
from mlhw.runs import Runtime, load_cnn_data, run_cnn, run_mlp, run_svm_multiclass, run_svm_soft, run_theory
from mlhw.tracking import Claimed, Tracker


@dataclass
class PlannedRun:
    spec: RunSpec
    hash: str
    data: datalib.Dataset | None
    status: str = "pending"  # done | pending | failed | killed | stale | running (elsewhere) | claimed
    run_id: str | None = None
    previous: str | None = None  # the unfinished run this one replaces


@dataclass
class Outcome:
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (label, error)
    claimed: int = 0  # runs another process owned when this one tried to start them


class DataCache:
    """Each dataset is read once per reproduce, however many runs use it."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @functools.cache
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
            status = {
                "FINISHED": "done",
                "FAILED": "failed",
                "KILLED": "killed",
                "STALE": "stale",
                "RUNNING": "running",
            }[found["status"]]
        out.append(
            PlannedRun(
                spec, h, data, status, run_id if status == "done" else None, None if status == "done" else run_id
            )
        )
    return out


def end_stale_runs(planned: list[PlannedRun], tracker: Tracker) -> None:
    """Runs still RUNNING with no heartbeat belong to dead processes: mark them FAILED before rerunning."""
    for p in planned:
        if p.status == "stale" and p.previous:
            tracker.end_stale(p.previous)


def groups_of(planned: list[PlannedRun]) -> list[list[PlannedRun]]:
    """The units of work: each pending hash once; MLP runs differing only in lr train together."""
    todo: dict[str, PlannedRun] = {}
    for p in planned:
        if p.status not in ("done", "running") and p.hash not in todo:
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
    return groups


def settle(group: list[PlannedRun], result: dict, outcome: Outcome) -> None:
    """Record a group's result (from this process, a worker process or a Ray task)."""
    if result.get("claimed"):
        for p in group:
            p.status = "claimed"
        outcome.claimed += len(group)
    elif result.get("error"):
        for p in group:
            p.status = "failed"
            outcome.failed.append((f"{p.spec.suite} {p.spec.label}", result["error"]))
    else:
        ids = dict(result["ids"])
        for p in group:
            if p.hash in ids:
                p.status, p.run_id = "done", ids[p.hash]
                outcome.ran += 1
            else:  # an MLP rate another process had claimed
                p.status = "claimed"
                outcome.claimed += 1


def execute(
    planned: list[PlannedRun],
    tracker: Tracker,
    runtime: Runtime,
    device,
    on_start: Callable[[PlannedRun, int], None] | None = None,
    on_epoch=None,
    on_done: Callable[[PlannedRun], None] | None = None,
) -> Outcome:
    """Run every pending run once, in this process. A run that raises is marked FAILED in MLflow and
    the others still run; Ctrl-C ends the active run KILLED and propagates."""
    outcome = Outcome()
    end_stale_runs(planned, tracker)
    for group in groups_of(planned):
        if on_start is not None:
            on_start(group[0], len(group))
        try:
            result = {"ids": _run_group(group, tracker, runtime, device, on_epoch)}
        except (KeyboardInterrupt, SystemExit):
            raise
        except Claimed:
            result = {"claimed": True}
        except Exception as err:  # recorded FAILED by the tracker; the other runs go on
            result = {"error": f"{type(err).__name__}: {err}"}
        settle(group, result, outcome)
        if on_done is not None:
            on_done(group[0])
    return outcome


def _run_group(group: list[PlannedRun], tracker: Tracker, runtime: Runtime, device, on_epoch) -> list[tuple[str, str]]:
    """Run one unit of work; returns (config hash, run id) for each run it finished."""
    p = group[0]
    spec, cfg = p.spec, p.spec.config
    if spec.kind == "mlp":
        runs, _ = run_mlp(
            cfg, p.data, device, tracker, runtime, [q.spec.config.lr for q in group], spec.part, on_epoch, figure=False
        )
        by_lr = {q.spec.config.lr: q.hash for q in group}
        return [(by_lr[r.config.lr], r.run_id) for r in runs]
    if spec.kind == "cnn":
        run_id = run_cnn(cfg, p.data, device, tracker, spec.part, spec.variant, on_epoch=on_epoch).run_id
    elif spec.kind == "svm_multiclass":
        run_id = run_svm_multiclass(cfg, p.data, tracker)["run_id"]
    elif spec.kind == "svm_soft":
        run_id = run_svm_soft(cfg, p.data, tracker)["run_id"]
    else:
        run_id = run_theory(tracker, p.data)[1]
    return [(p.hash, run_id)]


# --- workers: local processes and Ray tasks ----------------------------------------------------


def task_of(group: list[PlannedRun]) -> dict:
    """A unit of work as plain data, so that it can cross to another process or machine."""
    return {
        "runs": [
            {
                "kind": p.spec.kind,
                "suite": p.spec.suite,
                "part": p.spec.part,
                "label": p.spec.label,
                "variant": p.spec.variant,
                "config": p.spec.config.model_dump(mode="json"),
                "hash": p.hash,
            }
            for p in group
        ]
    }


_WORKER: dict = {}  # per worker process: its data cache and device


def init_worker(threads: int, runtime: dict, device: str) -> None:
    """Process-pool initializer: split the CPU threads, pick this worker's GPU, keep one data cache."""
    import multiprocessing

    import torch

    torch.set_num_threads(max(1, threads))
    if device == "auto" and torch.cuda.is_available():
        index = (multiprocessing.current_process()._identity or (1,))[0] - 1
        device = f"cuda:{index % torch.cuda.device_count()}"
    _WORKER.update(device=device, cache=DataCache(Runtime(**runtime)), runtime=Runtime(**runtime))


def run_task(
    task: dict,
    uri: str,
    experiment: str,
    runtime: dict,
    device: str = "auto",
    threads: int = 0,
    stale_after: float = 60.0,
    events=None,
) -> dict:
    """A worker's entry point (a local process or a Ray task): rebuild the runs, claim and run them.
    Never raises for a failed run: the error comes back as data, so other work goes on."""
    from mlhw.device import resolve_device
    from mlhw.experiments import KINDS, RunSpec

    if "cache" not in _WORKER:  # a Ray task: no initializer ran in this process yet
        init_worker(threads or 1, runtime, device)
    tracker = Tracker(uri, experiment, claim_runs=True, stale_after=stale_after)
    group = []
    for r in task["runs"]:
        spec = RunSpec(r["suite"], r["kind"], r["part"], KINDS[r["kind"]](**r["config"]), r["label"], r["variant"])
        data = _WORKER["cache"].for_run(spec)
        if run_hash(spec, data) != r["hash"]:
            return {"error": f"{r['suite']} {r['label']}: the data on this worker differs from the planner's"}
        group.append(PlannedRun(spec, r["hash"], data))
    on_epoch = None
    if events is not None:
        label = task["runs"][0]["suite"] + " " + task["runs"][0]["label"]
        on_epoch = lambda epoch, _row: events.put((label, epoch))  # noqa: E731
    try:
        return {"ids": _run_group(group, tracker, _WORKER["runtime"], resolve_device(_WORKER["device"]), on_epoch)}
    except Claimed:
        return {"claimed": True}
    except Exception as err:  # the tracker has marked the run FAILED, with its traceback
        return {"error": f"{type(err).__name__}: {err}"}


def execute_parallel(
    planned: list[PlannedRun],
    tracker: Tracker,
    runtime: Runtime,
    device: str,
    jobs: int,
    stale_after: float,
    on_done=None,
    on_epoch=None,
) -> Outcome:
    """Pending work in `jobs` local worker processes, each logging to the (server) tracking store. A worker
    that dies (SIGKILL, out of memory) breaks the pool: its runs are marked KILLED, the rest is reported
    failed, and the next reproduce runs them."""
    import multiprocessing
    import queue as queuelib
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    from dataclasses import asdict

    from mlhw.tracking import worker_id

    outcome = Outcome()
    end_stale_runs(planned, tracker)
    groups = groups_of(planned)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")  # no fork: torch and MLflow hold threads and connections
    manager = ctx.Manager()
    events = manager.Queue()
    rt = asdict(runtime)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(threads, rt, device)) as pool:
        futures = {
            pool.submit(
                run_task, task_of(g), tracker.uri, tracker.experiment_name, rt, device, threads, stale_after, events
            ): g
            for g in groups
        }
        workers = set()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            workers |= {worker_id(pid) for pid in list(getattr(pool, "_processes", {}) or {})}
            with contextlib.suppress(queuelib.Empty):
                while True:
                    label, epoch = events.get_nowait()
                    if on_epoch is not None:
                        on_epoch(label, epoch)
            for f in done:
                try:
                    result = f.result()
                except BrokenProcessPool:
                    result = {"error": "a worker process died (killed or out of memory)"}
                settle(futures[f], result, outcome)
                if on_done is not None:
                    on_done(futures[f][0])
        if any("worker process died" in e for _, e in outcome.failed):
            tracker.mark_dead(workers, "worker process died")
    manager.shutdown()
    return outcome


def execute_ray(
    planned: list[PlannedRun],
    tracker: Tracker,
    runtime: Runtime,
    device: str,
    address: str | None,
    stale_after: float,
    on_done=None,
) -> Outcome:
    """Each pending unit of work as a Ray task (num_gpus=1 where GPUs exist), logging to the tracking
    server; the cluster (`ray up`, KubeRay, or a local ray.init()) schedules them."""
    from dataclasses import asdict

    from mlhw.errors import MLHWError

    # Under `uv run`, Ray would rebuild the uv environment in every worker from the working directory;
    # the workers of a local instance already share this interpreter, where mlhw is installed. (On a
    # cluster, install mlhw on the nodes or pass a runtime_env.) Ray reads this when it is imported.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise MLHWError(
            "--executor ray needs Ray: install the extra, `uv sync --extra ray` (or pip install 'mlhw[ray]')"
        ) from None
    import torch

    outcome = Outcome()
    end_stale_runs(planned, tracker)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            configure_logging=False,
        )
    gpus = 1 if (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda") else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_task)
    rt = asdict(runtime)
    refs = {
        remote.remote(task_of(g), tracker.uri, tracker.experiment_name, rt, device, 1, stale_after): g
        for g in groups_of(planned)
    }
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            group = refs.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as err:  # the task's worker crashed: its run goes stale and is rerun next time
                result = {"error": f"Ray task failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"}
            settle(group, result, outcome)
            if on_done is not None:
                on_done(group[0])
    finally:
        if started_here and address is None:
            ray.shutdown()
    return outcome
