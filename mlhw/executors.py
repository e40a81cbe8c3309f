"""Where units of work run: in this process, in N local worker processes, or as Ray tasks.

Every executor implements one interface, `run(units, on_event) -> list[UnitResult]`, and reports one
event shape (`Event`): a unit started (with the worker that took it), an epoch ended, a unit ended.
A unit that raises is recorded FAILED in MLflow by its run's lifecycle and comes back as an error;
the other units go on. Ctrl-C and SIGTERM end the active runs KILLED (workers included) and propagate.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlhw import data as datalib
from mlhw.claims import STALE_SECONDS, Claimed, claimer, mark_dead
from mlhw.lifecycle import Terminated, worker_id
from mlhw.processes import QuietSpawnContext, exit_with_parent, start_resource_tracker, writer_signals
from mlhw.runs import DataSource, Job, run_unit
from mlhw.store import Store, signals_deferred


@dataclass
class Event:
    kind: str  # start | epoch | end | note (a worker's word on something that is not a failure, in `label`)
    unit: int
    label: str = ""
    epoch: int = 0
    worker: str = ""
    result: UnitResult | None = None
    # when it happened, by the clock of the process that made it: a worker's start reaches the parent through a
    # queue, as late as its end when a run is short (svm_multiclass printed "0.0 s" where MLflow had 0.175 s)
    at: float = field(default_factory=time.time)


@dataclass
class UnitResult:
    """What became of a unit: the runs it finished (identity -> MLflow run id), or why not."""

    done: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    claimed: bool = False  # another process owned its runs
    # the identities of its runs another process owns (every one where `claimed`; some of an MLP unit, which trains
    # the others): the report waits for them
    claimed_away: list[str] = field(default_factory=list)
    # its error was a failure of the tracking store that would repeat (a server gone, a full disk; not a locked
    # database): no unit is started after it, since each would fail the same way, a dead server's after 2-3 s of
    # MLflow's retries (68 s for a reproduction's 27 units)
    store_down: bool = False
    not_started: bool = False  # left alone after a unit the tracking store failed: the next reproduce runs it
    not_started_why: str = "once the tracking store failed"  # or: its lane's worker died (PoolExecutor)
    store_cause: str | None = None  # where store_down: the failure's root cause ('[Errno 111] Connection refused')


NOT_STARTED = UnitResult(not_started=True)


@dataclass
class Settings:
    """What every worker needs to rebuild the store, the data and the device on its side."""

    uri: str
    experiment: str
    data_dir: str = "data"
    download: bool | None = False
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False  # reproduce --compile: AlexNet's full batches through torch.compile's network
    threads: int = 0
    stale_after: float = STALE_SECONDS
    force: bool = False  # reproduce --force: run again even what is FINISHED


def label_of(unit: list[Job]) -> str:
    """A unit's name: its run's, or for MLP runs trained together what they span (seeds, learning rates)."""
    if len(unit) == 1:
        return unit[0].name
    seeds = len({j.config.seed for j in unit})
    rates = len({j.config.lr for j in unit})
    span = [f"{seeds} seeds"] * (seeds > 1) + [f"{rates} learning rates"] * (rates > 1)
    what = " x ".join(span) + ("" if seeds * rates == len(unit) else f", {len(unit)} runs")
    return f"{unit[0].tags.get('mlhw.suite', 'mlp')}: {what}"


def execute_unit(
    unit: list[Job], store: Store, source: DataSource, device, settings: Settings, on_epoch=None
) -> UnitResult:
    """Run one unit; never raises for a failed run (the error comes back as data), except Ctrl-C/SIGTERM."""
    for job in unit:  # a worker elsewhere must see the data the planner saw
        if source.identity(job.config) != job.identity:
            return UnitResult(error=f"{job.name}: the data or mlhw's code on this worker differs from the planner's")
    if unit[0].config.kind == "mlp" and settings.device == "auto" and device.type == "cuda":
        from mlhw.device import mlp_device

        # never the slower device for Part 1 (see mlhw.device); on CUDA, this worker's GPU
        device = device if mlp_device("auto").type == "cuda" else mlp_device("cpu")
    try:
        claim = claimer(settings.stale_after, settings.force)
        done = run_unit(unit, store, source, device, claim, on_epoch, settings.precision, settings.compile)
        finished = {d.job.identity: d.run_id for d in done}
        # a unit that returns has run each job or lost it to its owner (run_mlp trains the jobs it claimed)
        return UnitResult(finished, claimed_away=[j.identity for j in unit if j.identity not in finished])
    except Claimed:
        return UnitResult(claimed=True, claimed_away=[j.identity for j in unit])
    except Exception as err:  # the lifecycle has marked the run FAILED, with its traceback
        return failed_unit(err, store.uri)


def failed_unit(err: Exception, uri: str | None, opening: bool = False) -> UnitResult:
    """A failed unit, its error as its line says it: a failure of the tracking store by its root cause and the
    store's URI (MLflow's own message was a dozen lines, the SQL and its parameters or the URL and urllib3's
    retries), marked so that no unit starts after it where it would repeat (store_down: not a locked database);
    mlhw's own error as it is; any other as its type and message. `opening`: the worker could not open the store (a
    server gone before its first unit), which also stops the units after it."""
    from mlhw.errors import MLHWError
    from mlhw.store import failed_store, store_down, store_failure

    cause = store_failure(err)
    if cause is not None:
        down = store_down(err)
        return UnitResult(error=failed_store(uri, cause), store_down=down, store_cause=cause if down else None)
    error = str(err) if isinstance(err, MLHWError) else f"{type(err).__name__}: {err}"
    return UnitResult(error=error, store_down=opening, store_cause=error if opening else None)


class LocalExecutor:
    """Every unit in this process, one after the other."""

    def __init__(self, store: Store, source: DataSource, device, settings: Settings):
        self.store, self.source, self.device, self.settings = store, source, device, settings

    def run(self, units: list[list[Job]], on_event: Callable[[Event], None]) -> list[UnitResult]:
        results: list[UnitResult] = []
        for i, unit in enumerate(units):
            if any(r.store_down for r in results):
                results.append(NOT_STARTED)
                continue
            on_event(Event("start", i, label_of(unit), worker=worker_id()))
            result = execute_unit(
                unit,
                self.store,
                self.source,
                self.device,
                self.settings,
                lambda epoch, _row, i=i: on_event(Event("epoch", i, epoch=epoch)),
            )
            results.append(result)
            on_event(Event("end", i, label_of(unit), result=result))
        return results


# --- worker processes: local (--jobs N) and Ray tasks -------------------------------------------

_WORKER: dict = {}  # per worker process: its store, data source and device


def _terminate_in_run(signum, frame):
    if _WORKER.get("busy"):
        if _WORKER.get("terminating"):
            # already ending its runs KILLED: a second SIGTERM (the parent's, after one sent to the whole process
            # group) raised inside that and left a run of an MLP unit RUNNING for the parent to mark
            return
        _WORKER["terminating"] = True
        raise Terminated()  # ends the active runs KILLED
    os._exit(143)  # idle between units: nothing to clean up


def prepare_worker(
    settings: Settings, device: str | None = None, datasets: tuple[str, ...] = (), ray_task: bool = False, warm=None
) -> None:
    """A worker process's start-up, before it has work: PoolExecutor.start runs it as soon as reproduce's plan has
    work, while the parent still checks and creates the store and the suite parents. Ctrl-C goes to the parent,
    which stops the workers with SIGTERM: that ends their runs KILLED (`ray_task`: SIGINT stays live, since
    `ray.cancel` interrupts a task through it; ignored, the cancel did nothing and the parent waited 10 s before
    marking the runs KILLED itself). Then this worker's share of the CPU threads, the imports (torch, the training
    code), its device made ready (the lane's; default --device; on CUDA the context, cuBLAS and cuDNN), the
    planned `datasets` read, on CUDA AlexNet warmed up with `warm` (a planned CNN config: mlhw.cnn.warm_up;
    compiled there under --compile), and MLflow imported.
    Never raises: what fails here fails again in the first unit, which reports it."""
    if not ray_task:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # (and a hangup, ignored from the start: QuietSpawnProcess)
        exit_with_parent()
    signal.signal(signal.SIGTERM, _terminate_in_run)
    _WORKER["device_name"] = device or settings.device
    try:
        import torch

        if settings.threads:  # torch's threads and numpy's BLAS (the SVMs) alike: a worker keeps to its share
            from threadpoolctl import threadpool_limits

            torch.set_num_threads(settings.threads)
            threadpool_limits(limits=settings.threads, user_api="blas")  # the libraries loaded so far (numpy's)
            os.environ.setdefault("OPENBLAS_NUM_THREADS", str(settings.threads))  # those loaded later (scipy's own)
        import mlhw.cnn
        import mlhw.mlp  # noqa: F401 - imported now, not in the first unit's time
        from mlhw.device import resolve_device

        dev = resolve_device(_WORKER["device_name"])
        if dev.type == "cuda":
            warm_cuda(dev)
        _WORKER["device"] = dev
        source = DataSource(settings.data_dir, settings.download)
        _WORKER["source"] = source
        if warm is not None and dev.type == "cuda":  # first: the first unit of a GPU lane is AlexNet's
            try:
                mlhw.cnn.warm_up(warm, source.base(warm.dataset), dev, settings.precision, settings.compile)
            except Exception as err:  # noqa: BLE001 - a speed-up lost, not a failure: said with the first unit
                why = (str(err).strip().splitlines() or [""])[0][:160]
                _WORKER["note"] = (
                    f"AlexNet's warm-up on {dev} failed ({type(err).__name__}: {why}); this worker's first AlexNet "
                    "run pays CUDA's start-up instead"
                )
        for name in datasets:  # the rest (a GPU lane's MNIST, for Part 1's units it may take at the end)
            source.base(name)
    except Exception:  # noqa: BLE001, S110 - said by the unit that needs what failed
        pass
    # last, not in the first unit's time: the parent started this worker before it imported MLflow itself
    with contextlib.suppress(Exception):
        from mlhw.store import import_mlflow

        import_mlflow()


def warm_cuda(dev) -> None:
    """CUDA's context, cuBLAS and cuDNN made ready on `dev` (0.5-1 s on an H100, benchmarks/gpu_warmup.py): paid
    while the worker waits for its first unit rather than in it."""
    import torch
    import torch.nn.functional as F

    with torch.device(dev):
        a = torch.ones(64, 64, dtype=torch.bfloat16)
        (a @ a).sum().item()
        F.conv2d(torch.ones(2, 8, 8, 8), torch.ones(8, 8, 3, 3)).sum().item()


def open_worker_store(settings: Settings, relay=None) -> Store:
    """The worker's store. `relay` (a SQLite store): the parent's one writer, which every MLflow call of this
    worker goes through."""
    client = None
    if relay is not None:
        from mlhw.relay import RelayedClient

        client = RelayedClient(relay)
    return Store(settings.uri, settings.experiment, client=client)


def attach_worker(settings: Settings, relay=None, store: Store | None = None) -> None:
    """The worker's store (`store`, else opened here), data source and device, made at its first unit (the store
    exists by then). All three or none: work() takes a worker with a store for one that has the others too (a
    store kept where the device then failed had its next unit raise KeyError('source') out of the worker)."""
    from mlhw.device import resolve_device

    store = store or open_worker_store(settings, relay)
    _WORKER.update(
        store=store,
        source=_WORKER.get("source") or DataSource(settings.data_dir, settings.download),
        device=_WORKER.get("device") or resolve_device(_WORKER.get("device_name") or settings.device),
    )


def work(unit: list[dict], index: int, settings: Settings, events=None, relay=None) -> UnitResult:
    """A worker's entry point (a local process or a Ray task)."""
    if "device_name" not in _WORKER:  # a Ray task: no initializer ran in this process yet
        prepare_worker(settings, ray_task=True)
    jobs = [Job.from_dict(d) for d in unit]
    if events is not None:
        events.put(Event("start", index, label_of(jobs), worker=worker_id()))
        if note := _WORKER.pop("note", None):
            events.put(Event("note", index, note, worker=worker_id()))
    on_epoch = None if events is None else (lambda epoch, _row: events.put(Event("epoch", index, epoch=epoch)))
    _WORKER["busy"] = True
    try:
        if "store" not in _WORKER:
            try:  # first: a store this worker cannot open (a server gone) stops the units after it too
                store = open_worker_store(settings, relay)
            except Exception as err:
                return failed_unit(err, settings.uri, opening=True)
            try:
                attach_worker(settings, relay, store)
            except Exception as err:  # a device this worker cannot use: the unit says so
                return failed_unit(err, settings.uri)
        return execute_unit(jobs, _WORKER["store"], _WORKER["source"], _WORKER["device"], settings, on_epoch)
    except KeyboardInterrupt:  # SIGTERM from the parent: the run is KILLED; say so and end quietly
        return UnitResult(error="stopped (SIGTERM)")
    finally:
        _WORKER["busy"] = _WORKER["terminating"] = False


def _ready() -> None:
    """A task that starts a pool's process (a spawn pool starts one as each task comes and none is idle)."""


@dataclass(frozen=True)
class Lane:
    """`workers` worker processes on one device ("auto", "cpu", "cuda:1"); `cnn`: whether they take
    AlexNet's units (a CPU lane beside GPU lanes does not: a paper-sized AlexNet run is hours on a CPU);
    `cnn_first`: AlexNet's units before the others (a GPU lane: nothing else can take them)."""

    device: str
    workers: int
    cnn: bool = True
    cnn_first: bool = False

    def takes(self, unit: list[Job]) -> bool:
        return self.takes_kind(unit[0].config.kind)

    def takes_kind(self, kind: str) -> bool:
        return self.cnn or kind != "cnn"


def plan_lanes(jobs: int, device: str, gpus: int) -> list[Lane]:
    """Where `--jobs N` workers run. With --device auto and G GPUs: one worker per GPU (N <= G: the first
    N GPUs), each taking any unit, AlexNet's first; the N - G workers beyond the GPUs run on the CPU and take
    the rest (Part 1, the SVMs, theory), so that on a one-GPU machine --jobs 2 trains Part 1 on the CPU
    beside AlexNet on the GPU instead of two processes time-slicing one GPU. Otherwise (no GPU, or an
    explicit --device): N workers on that device, taking any unit."""
    if device != "auto" or gpus < 1:
        return [Lane(device, jobs)]
    out = [Lane(f"cuda:{i}", 1, cnn_first=True) for i in range(min(jobs, gpus))]
    return out + [Lane("cpu", jobs - gpus, cnn=False)] * (jobs > gpus)


def warm_config(lane: Lane, configs):
    """The planned AlexNet config a lane's workers warm up with (mlhw.cnn.warm_up, on a GPU only): the first CNN
    config, where the lane takes AlexNet's units; None otherwise."""
    if not lane.takes_kind("cnn"):
        return None
    return next((c for c in configs if c.kind == "cnn"), None)


def queue_order(units: list[list[Job]]) -> list[int]:
    """The order in which a pool's workers take the units (indexes into `units`): the longest first where that is
    known without running them, so that what is left at the end is short, and the plan's order otherwise.

    - Theory first: its checks take the same seconds whatever the profile or the device (4.7 s on this project's
      2-core CPU, 5.3 s on an H100 machine); last in the plan it ran alone at the end of every --jobs reproduce
      while the other workers had nothing left (ci profile, --jobs 2: 4.7 s of the runs' 8.2 s).
    - Then Part 1's units, the most SGD steps first (mlp_steps): a step of batch 10 is latency-bound, so a unit
      takes about its step count, however many runs it trains together: on the CPU lane of an H100 machine
      (--jobs 2) the paper profile's mlp_full (5 seeds, 150,000 steps each) took 34 s, its mlp_lr_sweep (30 runs,
      30,000 steps) 16 s. mlp_full first lets the GPU lane, once AlexNet's runs are done, take the sweep (7.7 s
      there) instead of the CPU lane starting it last.
    - Then the rest (AlexNet, the SVMs) in plan order."""

    def key(i: int):
        cfg = units[i][0].config
        return (0, 0) if cfg.kind == "theory" else (1, -mlp_steps(cfg)) if cfg.kind == "mlp" else (2, 0)

    return sorted(range(len(units)), key=key)  # stable: plan order among equals


def mlp_steps(cfg, whole: float = math.inf) -> float:
    """An MLP run's SGD steps: epochs x batches per epoch; a run on the whole training split (train_size None) trains
    on `whole` rows, by default counted as larger than any subset of it."""
    rows = cfg.train_size or whole
    return cfg.epochs * math.ceil(rows / cfg.batch_size) if math.isfinite(rows) else math.inf


def next_unit(lane: Lane, queue: list[int], units: list[list[Job]]) -> int | None:
    """The unit (an index into `units`) a free worker of `lane` takes from the queue (queue_order): AlexNet's
    first where the lane says so, else the first unit the lane takes."""
    if lane.cnn_first:
        first_cnn = next((i for i in queue if units[i][0].config.kind == "cnn"), None)
        if first_cnn is not None:
            return first_cnn
    return next((i for i in queue if lane.takes(units[i])), None)


class PoolExecutor:
    """`--jobs N`: N spawned worker processes (not forked: torch and MLflow hold threads and connections) in
    lanes, one per GPU and one for the CPU (plan_lanes), each logging to the tracking server, or, on a SQLite
    store, through one writer in the parent's manager process (mlhw.relay). The parent hands a unit to a
    lane when one of its workers is free. A worker that dies (SIGKILL, out of memory) breaks its lane: the
    lane's runs are marked KILLED, what only it could run (or its pool held) is reported not started, and the
    next reproduce runs them."""

    def __init__(self, store: Store | None, settings: Settings, jobs: int, gpus: int | None = None):
        self.store, self.jobs = store, jobs  # store: set before run() where the executor starts before it exists
        # Split the cores: N workers each with torch's default (every core) oversubscribe them, and OpenMP's
        # spinning threads then made the digits profile 2.3x slower with --jobs 2 than with --jobs 1 (2 cores).
        self.settings = Settings(**(settings.__dict__ | {"threads": settings.threads or worker_threads(jobs)}))
        if gpus is None:
            gpus = gpu_count() if settings.device == "auto" else 0
        self.lanes = plan_lanes(jobs, settings.device, gpus)
        self._pools: list | None = None
        self._manager = None
        self._ending: tuple = ()  # the threads that run() left ending its workers and its writer: close() joins them

    def start(self, configs=()) -> None:
        """Start the worker processes now (run() starts them if this was not called): reproduce calls this as soon
        as its plan has work, so that the workers import torch and MLflow, make their device ready and read the
        datasets of `configs` (the planned runs' configs, each lane those it takes) while the parent still checks
        and creates the store and the suite parents. On an H100 a worker took 13.6 s from its spawn to its first
        run, and the parent 16 s from its start to the spawn. A check that fails after this: close()."""
        from concurrent.futures import ProcessPoolExecutor

        from mlhw.relay import RelayManager

        if self._pools is not None:
            return
        start_resource_tracker()  # before the first pool starts it, deaf to a hangup
        ctx = QuietSpawnContext()  # SIGINT ignored from the children's first instruction
        self._manager = RelayManager(ctx=ctx)
        self._manager.start(writer_signals)
        self._pools = []
        for lane in self.lanes:
            datasets = tuple(
                dict.fromkeys(c.dataset for c in configs if getattr(c, "dataset", None) and lane.takes_kind(c.kind))
            )
            pool = ProcessPoolExecutor(
                lane.workers,
                mp_context=ctx,
                initializer=prepare_worker,
                initargs=(self.settings, lane.device, datasets, False, warm_config(lane, configs)),
            )
            for _ in range(lane.workers):  # a spawn pool starts a process for each task that finds none idle
                pool.submit(_ready)
            self._pools.append(pool)

    def close(self) -> None:
        """Stop workers that run() never took (a check failed after start(), Ctrl-C during the checks): still
        starting up or idle, they have nothing in MLflow; SIGTERM ends them at once. After run(): waits until its
        workers and its writer have ended."""
        ending, self._ending = self._ending, ()
        for thread in ending:
            thread.join()
        pools, self._pools = self._pools, None
        for pool in pools or []:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.join(5)
        if self._manager is not None:
            # a signal inside RelayManager.start, after its process started and before it registered shutdown(),
            # left the writer serving: the exit then waited for it forever (multiprocessing joins its children)
            proc = getattr(self._manager, "_process", None)
            _shutdown(self._manager)
            if proc is not None and proc.is_alive():
                proc.kill()
                proc.join(5)
            self._manager = None

    def run(self, units: list[list[Job]], on_event: Callable[[Event], None]) -> list[UnitResult]:
        import queue as queuelib
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from mlhw.store import sqlite_path

        if not units:  # nothing to run: no process to start
            self.close()
            return []
        self.start()
        pools, manager = self._pools, self._manager
        events = manager.Queue()
        relay = manager.Relay(self.settings.uri) if sqlite_path(self.settings.uri) is not None else None
        workers: set[str] = set()
        results: list[UnitResult | None] = [None] * len(units)
        died = "a worker process died (killed or out of memory)"
        started: set[int] = set()  # the units whose start event came: a broken lane's others never started

        def unrun() -> UnitResult:
            # a unit that only a broken lane could run, or that its pool held when a worker died: not a failure of its
            # own (it said "failed: a worker process died" for units that never began), and the next reproduce runs it
            return UnitResult(
                not_started=True, not_started_why="once a worker of its lane died (killed or out of memory)"
            )

        def drain():
            with contextlib.suppress(queuelib.Empty, EOFError, OSError):
                while True:
                    ev = events.get_nowait()
                    if ev.worker:
                        workers.add(ev.worker)
                    if ev.kind == "start":
                        started.add(ev.unit)
                    on_event(ev)

        def finish(i: int, result: UnitResult) -> None:
            results[i] = result
            on_event(Event("end", i, label_of(units[i]), result=result))

        queue, busy, broken = queue_order(units), [0] * len(pools), [False] * len(pools)
        futures: dict = {}  # future -> (unit index, lane index)

        def dispatch():
            if any(r is not None and r.store_down for r in results):  # the units running go on; none starts
                for i in queue:
                    results[i] = NOT_STARTED
                queue.clear()
            for k, lane in enumerate(self.lanes):
                while not broken[k] and busy[k] < lane.workers:
                    i = next_unit(lane, queue, units)
                    if i is None:
                        break
                    queue.remove(i)
                    try:
                        f = pools[k].submit(work, [j.to_dict() for j in units[i]], i, self.settings, events, relay)
                    except BrokenProcessPool:
                        broken[k] = True
                        queue.insert(0, i)
                        break
                    futures[f], busy[k] = (i, k), busy[k] + 1
            live = [lane for lane, b in zip(self.lanes, broken) if not b]
            for i in [i for i in queue if not any(lane.takes(units[i]) for lane in live)]:
                queue.remove(i)  # only a broken lane could have run it
                finish(i, unrun())

        ended = interrupted = False
        try:
            dispatch()
            while futures:
                done, _ = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for f in done:
                    i, k = futures.pop(f)
                    busy[k] -= 1
                    try:
                        result = f.result()
                    except BrokenProcessPool:  # (drained above: a start its worker sent before it died is in)
                        broken[k], result = True, UnitResult(error=died) if i in started else unrun()
                    finish(i, result)
                dispatch()
            ended = True
        except KeyboardInterrupt:
            # every process of the pools, not only those whose start event came through: one that took a unit in
            # the last 0.25 s, with its event still queued, would go on training (workers ignore SIGINT) while
            # shutdown(wait=True) waited for its whole unit, and its run would not be marked KILLED
            workers |= pool_workers(pools)
            interrupted, reason = True, "stopped with the parent (Ctrl-C or SIGTERM)"
            # held until the workers are gone (local and bounded: 10 s, then SIGKILL): a second Ctrl-C (an impatient
            # user) cut the stop half-way, and the shutdown after it waited for workers that never got their
            # sentinel, forever (runs left RUNNING)
            with signals_deferred():
                try:
                    self._stop(pools, workers, list(futures))
                    for pool in pools:  # quick: _stop has ended every worker
                        pool.shutdown(wait=True, cancel_futures=True)
                finally:
                    _shutdown(manager)
            # a store call, on a server possibly for long: not held (what a Ctrl-C cuts here, the next reproduce ends)
            mark_dead(self.store, workers, reason)
            raise
        finally:
            self._pools = self._manager = None  # close() has no worker left to stop
            if ended:  # every unit is back, its runs ended: the idle workers exit and the writer stops while the
                # caller compiles its report (close() joins them). Waiting for that here took 2.3 s after the last run
                # on the ci profile's two CPU workers.
                # each pool's own thread joins its processes; shutdown(wait=False) lets go of it, so it is kept
                joiners = [t for pool in pools if (t := getattr(pool, "_executor_manager_thread", None))]
                for pool in pools:
                    pool.shutdown(wait=False, cancel_futures=True)
                # the proxies go with it, let go of once the writer is stopped: dropped by this thread (or collected
                # by its garbage collector in the report) while it stopped, each told the writer so and waited for an
                # answer that does not come while it shuts down; a SIGTERM there was lost in that finalizer
                # ("Exception ignored in: <Finalize object, dead>", a traceback, exit 0 after the whole report)
                ender = threading.Thread(target=_shutdown, args=(manager, events, relay), name="mlhw-writer-shutdown")
                ender.start()
                self._ending = (*joiners, ender)
            elif not interrupted:
                for pool in pools:
                    pool.shutdown(wait=True, cancel_futures=True)
                _shutdown(manager)
        if any(broken):  # (a worker that died idle left no run of its own RUNNING: nothing of it to mark)
            mark_dead(self.store, workers, "worker process died")
        return [r or UnitResult(error="not run") for r in results]

    STOP_SECONDS = 10.0  # how long _stop waits for SIGTERMed workers to end their runs before it kills them

    def _stop(self, pools, workers: set[str], futures=()) -> None:
        """SIGTERM to every worker (their runs end KILLED; the caller marks whatever is left KILLED). Once every unit in
        `futures` is back, a worker still alive is idle, and it is sent SIGTERM again: a SIGTERM to the whole process
        group (a CI runner's cancel, `kill -- -PGID`) and this one reached a busy worker together, the kernel
        delivered them as one, which ended its run KILLED and left it waiting for work, and this waited its full
        10 s."""

        pids = [int(w.rsplit(":", 1)[1]) for w in workers]
        # the pools' own processes are asked through multiprocessing, which reaps them: one that exited before its
        # pool's thread joined it is a zombie, which os.kill(pid, 0) counts as alive (the whole 10 s waited for it)
        procs = {pid: proc for pool in pools for pid, proc in list((getattr(pool, "_processes", None) or {}).items())}

        def alive(pid: int) -> bool:
            return procs[pid].is_alive() if pid in procs else _alive(pid)

        def signal_alive() -> None:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if alive(pid):  # a reaped pid may be another process's by now
                        os.kill(pid, signal.SIGTERM)

        signal_alive()
        deadline, again = time.time() + self.STOP_SECONDS, time.time() + 0.5
        while time.time() < deadline and any(alive(pid) for pid in pids):
            if time.time() >= again and all(f.done() for f in futures):  # every worker idle: exits at SIGTERM
                signal_alive()
                again = time.time() + 0.5
            time.sleep(0.1)
        # still alive at the deadline (its KILLED writes stalled, a SIGTERM swallowed): run()'s shutdown(wait=True)
        # would wait for it without a limit; its runs are marked below
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def pool_workers(pools) -> set[str]:
    """The worker ids (lifecycle.worker_id: host:pid, as their runs are tagged) of the pools' live processes."""
    from mlhw.lifecycle import worker_id

    return {worker_id(pid) for pool in pools for pid in list(getattr(pool, "_processes", None) or {})}


RAY_MISSING = "--executor ray needs Ray: `uv sync --extra ray` (or pip install 'mlhw[ray]')"


def import_ray():
    """Ray, imported as `--executor ray` needs it (the address check before any run, the executor): under `uv run`,
    Ray would rebuild the uv environment in every worker from the working directory; the workers of a local
    instance already share this interpreter, where mlhw is installed. (On a cluster, install mlhw on the nodes or
    pass a runtime_env.) Ray reads this when it is imported, so it is set before the first import, wherever."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        from mlhw.errors import MLHWError

        raise MLHWError(RAY_MISSING) from None
    return ray


# A GPU driver's files: NVIDIA's (its control device, its /proc entry), WSL2's GPU device and ROCm's kernel driver
# (torch.cuda's other backend). Where none exists, torch.cuda has no device to find.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")


def gpu_driver_absent() -> bool:
    """No GPU driver here (GPU_DRIVER_FILES): torch.cuda would find no device, known without importing torch."""
    return not any(os.path.exists(f) for f in GPU_DRIVER_FILES)


def gpu_count() -> int:
    """The CUDA GPUs here. Asked of NVIDIA's management library where it loads and CUDA_VISIBLE_DEVICES does not
    narrow the choice (as torch's PYTORCH_NVML_BASED_CUDA_CHECK does), so that --jobs plans its lanes and starts
    its workers without importing torch first (4.7 s on an H100 machine); none where no GPU driver is here
    (GPU_DRIVER_FILES: a CPU machine, 2-3 s of torch's import spared on 2 cores); else torch's count."""
    count = nvml_gpu_count()
    if count is not None:
        return count
    if gpu_driver_absent():  # no GPU, and no torch to import
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def nvml_gpu_count() -> int | None:
    """The GPUs torch.cuda would see, from NVIDIA's library without importing torch; None where it cannot say
    (it does not load or fails, CUDA_VISIBLE_DEVICES narrows the choice, or this torch was built without CUDA: a
    CPU wheel on a GPU machine sees none)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ or not torch_built_with_cuda():
        return None
    return _nvml_count()


def torch_built_with_cuda() -> bool:
    """Whether the installed torch has its CUDA library, found without importing torch."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(spec.submodule_search_locations[0]) / "lib").glob("*torch_cuda*"))


def _nvml_count(library: str = "libnvidia-ml.so.1") -> int | None:
    """nvmlDeviceGetCount, or None where NVML does not load or answer (no NVIDIA driver: a CPU machine, macOS)."""
    import ctypes

    try:
        nvml = ctypes.CDLL(library)
        if nvml.nvmlInit_v2() != 0:
            return None
        try:
            count = ctypes.c_uint(0)
            return count.value if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else None
        finally:
            nvml.nvmlShutdown()
    except (OSError, AttributeError):
        return None


# A training split's size where a run takes all of it (train_size None): MNIST's pool, digits' (load_digits' 1,797
# images less its test set)
WHOLE_TRAIN_ROWS = {"mnist": datalib.MNIST_TRAIN_POOL, "digits": 1_797 - datalib.DIGITS_TEST_SIZE}
# An MLP unit of this many SGD steps or more is a long one (--jobs auto): on this project's 2-core CPU the paper
# profile's sweep (30,000 steps, 30 networks batched) took 40 s, its mlp_full (150,000) 48 s; digits' (3,900) 3-5 s.
LONG_MLP_STEPS = 20_000
# CPU workers beside the GPUs at most (auto_jobs): one for the SVMs and theory, one per long Part 1 unit
CPU_BESIDE_GPUS = 3
NUMBERS = {1: "one", 2: "two", 3: "three"}


def long_mlp_unit(cfg) -> bool:
    """Whether an MLP unit trains long enough to earn a worker's start-up (LONG_MLP_STEPS)."""
    return mlp_steps(cfg, WHOLE_TRAIN_ROWS.get(cfg.dataset, math.inf)) >= LONG_MLP_STEPS


def rest_said(configs) -> str:
    """What the first CPU worker beside the GPUs is for (auto_jobs): the plan's units but AlexNet's and Part 1's long
    ones, by name where they are the SVMs and theory; "" where there are none (a plan of Part 1's long units alone)."""
    rest = {c.kind for c in configs if c.kind != "cnn" and not (c.kind == "mlp" and long_mlp_unit(c))}
    if rest - {"svm_soft", "svm_multiclass", "theory"}:
        return "the other units"
    return " and ".join(["the SVMs"] * bool(rest - {"theory"}) + ["theory"] * ("theory" in rest))


def auto_jobs(configs, device: str = "auto", gpus: int | None = None, cores: int | None = None) -> tuple[int, str]:
    """`--jobs auto`: how many worker processes for runs of these configs, and why (said under the plan).

    - Workers only for a plan that trains AlexNet in two units or more (a unit is a run, or MLP runs trained
      together): each worker pays its own start-up (torch's and MLflow's imports, the data), which runs of seconds
      do not earn back. On this project's 2-core CPU (2026-11-28, fresh stores, alternated): the digits profile's
      SVMs alone took 16.7-17.3 s in one process and 23.4-24.0 s in two; with Part 1 (c) and theory 25.4 s and
      30.6 s; the ci profile (tiny AlexNets; it says `jobs: 1`) 15.8-16.6 s and 17.1-17.5 s.
    - Or, without a GPU, two long units of any kind (AlexNet, or Part 1 of LONG_MLP_STEPS or more:
      long_mlp_unit): the paper profile's Part 1 with the SVMs and theory (its suites but CIFAR-10's) took 104.0 s
      in one process and 58.6 s in two on the 2-core AMD EPYC (2026-11-28), the same numbers. (With a GPU, Part 1
      trains there in one process: a CPU lane would take one of its units at a third of the GPU's speed.)
    - Then, a GPU here and --device auto (counted without torch, gpu_count): one worker per GPU, and on the CPU one
      for the SVMs and theory and one more for each long Part 1 unit (long_mlp_unit), up to CPU_BESIDE_GPUS: each
      such unit then starts at once beside AlexNet instead of after the others on one CPU worker. The paper profile
      (its sweep and part (c) are two long units) on one H200 (MLflow on SQLite, 2026-11-29, one call): 60.2 s
      with one worker on the CPU, 58.5 s with two, 55.7 s with three (the GPU worker's 12 AlexNet runs 36 s, part
      (c)'s 5 seeds on the CPU 41 s). On one H100 (2026-11-27): 83.8 s in one process, 76.8 s with one on the CPU.
    - --device cuda[:N] with a GPU here: three workers sharing it (they overlap what does not fill the GPU). The
      paper profile on one H200: 92.2 s in one process, 87.6 s with two workers, 78.6 s with three; on one H100 74.2
      s with three, the fastest measured there.
    - No GPU (or --device cpu): two workers where there are two cores or more, the threads split between them: the
      digits profile on the 2-core CPU took 126.6-126.9 s in one process, 104.4-111.2 s in two; more workers were
      never measured against two.
    - Never more workers than units, nor CPU workers than cores."""
    from mlhw.plan import unit_count

    alexnets = unit_count([c for c in configs if c.kind == "cnn"])
    long_mlps = unit_count([c for c in configs if c.kind == "mlp" and long_mlp_unit(c)])
    if alexnets + long_mlps < 2:
        # the rule as it is (two Part 1 units on MNIST of 2 epochs each are not long): the size, not the dataset
        return 1, f"fewer than two long runs (AlexNet, or Part 1 of {LONG_MLP_STEPS:,} SGD steps or more)"
    if gpus is None:
        gpus = 0 if device == "cpu" else gpu_count()
    if alexnets < 2 and gpus and device != "cpu":
        return 1, "fewer than two AlexNet runs, and Part 1 trains fastest on the GPU"
    units = unit_count(configs)
    if cores is None:
        cores = cpu_cores()
    if gpus and device == "auto":
        # (none where the plan has nothing but AlexNet: a CPU worker would start to wait)
        cpu = min(1 + long_mlps, CPU_BESIDE_GPUS, unit_count([c for c in configs if c.kind != "cnn"]))
        want, limit = gpus + cpu, gpus + min(cpu, cores - 1)
        why = f"one per GPU and {NUMBERS[cpu]} on the CPU" if cpu else "one per GPU (nothing but AlexNet to train)"
        if cpu > 1:
            units_said = "long unit" if long_mlps == 1 else f"{NUMBERS.get(long_mlps, f'{long_mlps:,}')} long units"
            share = rest_said(configs)
            why += f" ({share + ', and ' if share else ''}Part 1's {units_said})"
    elif gpus and device != "cpu":  # cuda[:N]: every worker on that one GPU
        want, limit, why = 3, 3, f"three sharing {device}"
    else:
        want, limit, why = 2, cores, "two on the CPU"
    jobs = max(1, min(want, units, limit))
    if jobs < want:  # what held it back
        n, what = (units, "unit of work") if units < limit else (cores, "CPU core")
        why += f", but {n} {what if n == 1 else what.replace('unit', 'units').replace('core', 'cores')}"
    return jobs, why


def cpu_cores() -> int:
    """The cores this process may run on (its affinity where the system says, e.g. a container's CPU set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_threads(jobs: int) -> int:
    """CPU threads for each of `jobs` workers: this process's cores, split evenly (at least one each)."""
    return max(1, cpu_cores() // jobs)


def _shutdown(manager, *proxies) -> None:
    """Stop the writer; `proxies` (of its objects) are let go of after it stopped, when they no longer call it."""
    with contextlib.suppress(Exception):
        manager.shutdown()
    del proxies


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# ray.init's own, done by this process (connect_ray): RayExecutor.run ends it where it would have ended its own
_RAY = {"connected": False}
# what in a failed ray.init's chain of errors says the cluster wants a token this process did not send (Ray 2.5x+
# clusters from `ray start` enable token authentication; `auto` found its token, an explicit address did not)
RAY_AUTH_SIGNS = ("InvalidAuthToken", "Authentication token is missing")


def ray_address_source(address: str | None) -> str:
    """Where the address ray.init takes (`address`: --ray-address) comes from, as a one-line error names it:
    --ray-address X; RAY_ADDRESS=X where the option is absent or auto (Ray reads it then); else --executor ray."""
    env = os.environ.get("RAY_ADDRESS", "")
    if env and address in (None, "auto") and not (env == "auto" and address == "auto"):
        return f"RAY_ADDRESS={env}"
    return "--executor ray" if address is None else f"--ray-address {address}"


def connect_ray(address: str | None):
    """ray.init, as `--executor ray` needs it: no dashboard, the workers' logs not sent here. Ray's own SIGTERM
    handler (set for the length of ray.init: it exits) becomes mlhw's Terminated, and the SIGINT and SIGTERM handlers
    ray.init installs are put back to this process's own (a SIGTERM must still end runs KILLED). A cluster that does
    not take the connection (a token it wants and did not get, another Ray version, another program at the port the
    address check reached) is one line naming where the address came from, not ray.init's traceback.
    Returns Ray, connected."""
    from mlhw.errors import MLHWError

    ray = import_ray()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            configure_logging=False,
        )
    except SystemExit as stop:
        if stop.code != signal.SIGTERM:
            raise
        from mlhw.lifecycle import terminate

        terminate(signal.SIGTERM)
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, said in one line
        chain, seen = [], exc
        while seen is not None and len(chain) < 10:
            chain.append(seen)
            seen = seen.__cause__ or seen.__context__
        text = "\n".join(str(e) for e in chain)
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if any(sign in text for sign in RAY_AUTH_SIGNS):
            why += (
                " (the cluster wants Ray's authentication token: set RAY_AUTH_MODE=token, with the cluster's token "
                "in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
            )
        raise MLHWError(f"{ray_address_source(address)}: Ray did not connect: {type(exc).__name__}: {why}") from None
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
    return ray


def connect_ray_early(address: str | None) -> None:
    """The connection made before any run exists (reproduce, as soon as its plan has runs to train): a cluster that
    refuses it stopped the command after the suite parent runs existed (left FAILED), with a traceback."""
    ray = import_ray()
    if not ray.is_initialized():
        connect_ray(address)
        _RAY["connected"] = True


def disconnect_ray(address: str | None) -> None:
    """Ends the connection connect_ray_early made, where RayExecutor.run would have ended its own (no --ray-address:
    a local instance, or RAY_ADDRESS's cluster); the next command in this process (a test's) starts afresh."""
    if not _RAY["connected"]:
        return
    _RAY["connected"] = False
    import ray

    if address is None and ray.is_initialized():
        ray.shutdown()


class RayEvents:
    """A Ray task's start, epoch and note events on their way to the driver, through a queue actor (of no CPU): the
    driver said every unit `start` as it sent them all, and timed each from then (on the 2-core machine the ci
    profile's theory printed `start` first and `done ... (19.4 s)` for its 4.5 s, its wait in Ray's queue included).
    Each put is sent without waiting for it: a task blocked in ray.get or ray.wait gives its CPU back to Ray, which
    started another task beside it (two AlexNets at once on a cluster of one CPU). The task returns them with its
    result (ray_work), and the driver waits for them before it says the unit's end. A put that fails (the actor
    gone) is dropped: the unit's own result still comes back."""

    def __init__(self, queue):
        self.queue = queue

    @classmethod
    def open(cls) -> RayEvents | None:
        """The queue, or None where Ray cannot make it (the driver then says each unit started as it is sent)."""
        try:
            from ray.util.queue import Queue

            return cls(Queue(actor_options={"num_cpus": 0}))
        except Exception:  # noqa: BLE001 - progress lines, not the work
            return None

    def __getstate__(self):
        return {"queue": self.queue}  # a task's copy starts with none sent

    def put(self, ev: Event) -> None:
        with contextlib.suppress(Exception):
            self.__dict__.setdefault("_sent", []).append(self.queue.actor.put_nowait.remote(ev))

    def sent(self) -> list:
        """This task's puts (their object refs), taken: the driver waits for them (`arrived`)."""
        return self.__dict__.pop("_sent", [])

    @staticmethod
    def arrived(sent: list) -> None:
        """Waits (10 s at most) for a task's puts to be in the queue: its unit's end is then said after them."""
        with contextlib.suppress(Exception):
            if sent:
                import ray

                ray.wait(sent, num_returns=len(sent), timeout=10)

    def drain(self) -> list[Event]:
        """The events come so far, in their order; none where the queue does not answer."""
        try:
            n = self.queue.qsize()
            return self.queue.get_nowait_batch(n) if n else []
        except Exception:  # noqa: BLE001
            return []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.queue.shutdown(force=True)


def ray_work(unit: list[dict], index: int, settings: Settings, events: RayEvents | None = None):
    """A Ray task's entry point: work()'s result, and the puts of its events (RayEvents.sent)."""
    result = work(unit, index, settings, events)
    return result, events.sent() if events is not None else []


def ray_task_failure(err: BaseException) -> str:
    """A Ray task's failure as its unit's error line: what the task raised (a RayTaskError's cause: mlhw or one of
    its imports missing on a node, another mlhw there), where Ray's own first line named only the task and its
    process, in terminal colours (`Ray task failed: RayTaskError(ModuleNotFoundError): \\x1b[36mray::work()\\x1b[39m
    (pid=10838, ip=192.0.2.2)`); else Ray's message (a worker that died: `WorkerCrashedError: The worker died ...`)."""
    import re

    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        text = str(cause).strip() or type(cause).__name__
        where = re.search(r"\(pid=\d+, ip=[^)]*\)", str(err))
        said = f"{type(cause).__name__}: {text.splitlines()[0][:200]}" + (f" {where.group(0)}" if where else "")
    else:
        lines = [x for x in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines() if x.strip()]
        said = f"{type(err).__name__}: {(lines[0] if lines else '')[:200]}"
    return f"Ray task failed: {said}"


class RayExecutor:
    """`--executor ray`: each unit a Ray task (num_gpus=1 where GPUs exist), logging to the tracking server;
    the cluster (`ray up`, KubeRay, or a local ray.init()) schedules them."""

    def __init__(self, store: Store, settings: Settings, address: str | None):
        self.store, self.settings, self.address = store, settings, address

    def run(self, units: list[list[Job]], on_event: Callable[[Event], None]) -> list[UnitResult]:
        ray = import_ray()
        import torch

        started_here = _RAY["connected"] or not ray.is_initialized()
        if not ray.is_initialized():
            connect_ray(self.address)
        device = self.settings.device
        gpus = 1 if (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda") else 0
        settings = Settings(**(self.settings.__dict__ | {"threads": 1}))
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(ray_work)
        results: list[UnitResult | None] = [None] * len(units)
        events = RayEvents.open()
        sent = time.time()
        refs = {remote.remote([j.to_dict() for j in u], i, settings, events): i for i, u in enumerate(units)}
        started: set[int] = set()

        def take(ev: Event) -> None:
            if ev.kind == "start":
                if ev.unit in started:  # (said already: its event came after the unit's end)
                    return
                started.add(ev.unit)
            elif ev.unit not in refs.values():  # an ended unit's late event
                return
            on_event(ev)

        def start_said(i: int) -> None:  # no start came through the queue (none, or a put that failed)
            if i not in started:
                take(Event("start", i, label_of(units[i]), worker="ray", at=sent))

        if events is None:
            for i in range(len(units)):
                start_said(i)
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)  # a timeout lets Ctrl-C through
                for ev in events.drain() if events is not None else ():
                    take(ev)
                if not done:
                    continue
                i = refs[done[0]]
                try:
                    results[i], sent_events = ray.get(done[0])
                    RayEvents.arrived(sent_events)
                except Exception as err:  # the task's worker crashed: its run goes stale and is rerun next time
                    results[i] = UnitResult(error=ray_task_failure(err))
                for ev in events.drain() if events is not None else ():  # its own, now all in the queue
                    take(ev)
                start_said(i)
                del refs[done[0]]
                on_event(Event("end", i, label_of(units[i]), result=results[i]))
        except KeyboardInterrupt:
            for ref in refs:  # not force: the task gets KeyboardInterrupt and its run ends KILLED
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            with contextlib.suppress(Exception):
                ray.wait(list(refs), num_returns=len(refs), timeout=10)
            self._kill_children({j.parent for u in units for j in u if j.parent})
            raise
        finally:
            if events is not None:
                events.close()
            if started_here and self.address is None:
                _RAY["connected"] = False
                ray.shutdown()
        return [r or UnitResult(error="not run") for r in results]

    def _kill_children(self, parents: set[str]) -> None:
        """Whatever a cancelled task left RUNNING under this reproduction's suite parents ends KILLED."""
        for run in self.store.search("attributes.status = 'RUNNING'"):
            if run.data.tags.get("mlflow.parentRunId") in parents:
                self.store.end_dead(run.info.run_id, "KILLED", "stopped with its parent (Ctrl-C, SIGTERM)")
